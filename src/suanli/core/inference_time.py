"""Inference time on one replica: prefill (time to first token), decode (time per output token), end-to-end
latency and throughput, for a static batch and for a continuously batched server at steady state.
The setup and one engine step's time, which these build on, are in ``core/serving_step.py``.

One forward pass over T new tokens for each of B sequences already holding c₀ cached tokens is, per layer,
a list of kernels (``serving_ops``), each timed on the roofline (``core.roofline``)::

    time(kernel) = max(flops / (peak · eff(flops)), weight_bytes / (bw · f · q) + other_bytes / (bw · f))
                   + launch overhead

with f = ``decode_bandwidth_fraction``, q = ``quantized_weight_bandwidth_fraction`` for weight-only quantized
formats (1 otherwise), eff the GEMM efficiency curve taken at ≥ 64 rows (``serving_ops.tiled_efficiency``;
× ``low_precision_gemm_ratio`` for fp8/int8 GEMMs; block-scaled fp8 weights, DeepSeek-V3's 128×128 blocks:
``block_scaled_gemm_peak_fraction`` of the fp8 peak and ``block_scaled_gemm_latency_s`` more per GEMM;
attention: ``attention_peak_fraction``). A kernel's time
is booked to ``compute_s`` when compute bounds it, else to ``weights_s`` / ``kv_s`` / ``activations_s`` by its
bytes; TP all-reduces and the logits all-gather (α–β, ``core.comms``, plus ``collective_overhead_s`` each) to
``comm_s``; launches and the engine's per-step CPU work to ``overhead_s``. The parts add up to ``time_s``.
MoE layers read only the experts some token of the step picked, E·(1 − (1 − k/E)^m) of E for m tokens
(``expected_distinct_experts``): k at batch 1, all E for large batches; expert parallelism shares the TP group.

The inference-only assumptions were fitted by ``benchmarks/calibrate_inference.py`` on the calibration half
of ``tests/golden/data/inference_perf.toml`` (TensorRT-LLM, NIM and llama.cpp measurements); the held-out
half is reported beside it by that script and checked by ``tests/golden/test_inference_perf.py``.

- Prefill (TTFT) is one pass with T = prompt, c₀ = 0, the output head on the last position only. Long
  prompts are compute-bound: time grows ~linearly with B·P (attention adds a P² term).
- A decode step is T = 1 at context c: weights read once and shared by the batch, each sequence's KV read,
  2·N_active·B FLOPs plus attention over c. Memory-bound at small B, compute-bound once the batch passes the
  ridge point. TPOT is the mean step over the output (context P+1 … P+O−1, sampled at four midpoints).
- Static batch: e2e = TTFT + (O − 1)·TPOT; output tokens/s = B·O / e2e; requests/s = B / e2e.
- Max load (``max_load_throughput``): a continuously batching server holds C sequences (the engine's
  max_num_seqs, or as many P+O-token sequences as its KV pool holds, whichever is fewer: reserving each
  request's whole length, TensorRT-LLM's default GUARANTEED_NO_EVICT). Each request costs its prefill
  (run in chunks of max_num_batched_tokens) plus (O − 1) decode steps shared by C sequences at the mean
  context P + O/2::

      output tokens/s = O / (prefill_s_per_request + (O − 1) · step(C, P + O/2) / C + request overhead)

  Approximation: prefill chunks and decode steps are timed apart and added; a real mixed batch shares one
  weight read between them (small at large C), and queueing is not modelled.

Engines: vLLM, SGLang and TensorRT-LLM replay decode as CUDA graphs (``graph_kernel_overhead_s`` per
kernel); eager engines pay ``kernel_overhead_s`` per kernel, and transformers ``generate()`` also its Python
dispatch (``eager_python_overhead_s_per_layer``). Every step pays the serving loop's CPU time: a Python
scheduler's (``engine_step_overhead_s``) or llama.cpp's C++ loop's (``native_step_overhead_s``; the preset
with the context-sized KV budget). llama.cpp layers left on the host (-ngl < layers) decode at
host bandwidth; in prefill their weights cross the host link to the GPU. Not modelled: speculative decoding,
prefix caching, pipeline parallelism, CPU/GPU overlap beyond the above, and per-kernel quirks (e.g. dp4a vs
tensor-core integer GEMMs).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from suanli.core.inference_memory import engine_setting, kv_capacity_tokens
from suanli.core.serving_ops import compute_format, expected_distinct_experts
from suanli.core.serving_step import (
    PhaseTime,
    ServingSetup,
    deployment_setup,
    serving_setup,
    step_head_cost,
    step_overhead_s,
    step_time,
    step_time_split,
    step_token_cost,
)
from suanli.errors import SpecError, require_positive
from suanli.spec.assumptions import PerformanceAssumptions
from suanli.spec.engines import EnginePreset, get_engine
from suanli.spec.hardware import Accelerator
from suanli.spec.model import ModelSpec
from suanli.spec.precision import NumberFormat
from suanli.spec.serving import Deployment, StaticBatch

__all__ = ["InferenceTime", "PhaseTime", "ServingSetup", "ServingThroughput", "decode_step_time", "deployment_setup",
           "expected_distinct_experts", "inference_time", "max_load_throughput", "mean_decode_time", "mean_phase",
           "prefill_time", "ridge_batch", "serving_setup", "serving_time", "step_head_cost", "step_overhead_s",
           "step_time", "step_time_split", "step_token_cost"]  # the setup and one engine step: core/serving_step.py

_DECODE_SAMPLES = 4  # midpoints at which the decode step is averaged over the output


def _pass(setup: ServingSetup, *, batch: int, new_tokens: int, context: int, sampled_rows: int,
          graphs: bool) -> PhaseTime:
    """One forward over ``new_tokens`` per sequence on top of ``context`` cached tokens."""
    return step_time(setup, rows=((batch, new_tokens, context),), sampled_rows=sampled_rows, graphs=graphs)


def prefill_time(setup: ServingSetup, *, batch: int, prompt_tokens: int) -> PhaseTime:
    """Time to first token of a static batch: the whole batch's prompts in one eager pass, head on the last
    position of each prompt (prefill is never graph-captured)."""
    require_positive("batch", batch)
    require_positive("prompt_tokens", prompt_tokens)
    return _pass(setup, batch=batch, new_tokens=prompt_tokens, context=0, sampled_rows=batch, graphs=False)


def decode_step_time(setup: ServingSetup, *, batch: int, context: int) -> PhaseTime:
    """One decode step: ``batch`` sequences each add one token after ``context`` cached ones."""
    require_positive("batch", batch)
    if context < 0:
        raise SpecError(f"context must be zero or positive, got {context}", key="error.core.context_negative",
                        fields={"context": context})
    return _pass(setup, batch=batch, new_tokens=1, context=context, sampled_rows=batch, graphs=setup.cuda_graphs)


def mean_phase(phases: list[PhaseTime]) -> PhaseTime:
    """The field-wise mean of several passes (e.g. decode steps over a growing context)."""
    n = len(phases)
    return PhaseTime(**{f.name: sum(getattr(p, f.name) for p in phases) / n for f in fields(PhaseTime)})


def mean_decode_time(setup: ServingSetup, *, batch: int, prompt_tokens: int, output_tokens: int) -> PhaseTime:
    """The decode step averaged over an output of ``output_tokens``: contexts P+1 … P+O−1, sampled at
    midpoints (exact where the step is affine in the context, i.e. within one roofline regime)."""
    span = max(output_tokens - 1, 1)
    contexts = [prompt_tokens + 1 + round((i + 0.5) * (span - 1) / _DECODE_SAMPLES) for i in range(_DECODE_SAMPLES)]
    return mean_phase([decode_step_time(setup, batch=batch, context=c) for c in contexts])


@dataclass(frozen=True, slots=True, kw_only=True)
class InferenceTime:
    """A static batch of ``batch`` requests of ``prompt_tokens`` in and ``output_tokens`` out on one replica."""

    engine: str
    accelerator: str
    tp: int
    ep: int
    batch: int
    prompt_tokens: int
    output_tokens: int
    prefill: PhaseTime
    decode: PhaseTime  # one step, averaged over the output
    vision_encoder_s: float = 0.0  # a VLM encoding the batch's images before prefill (core/vision.py)

    @property
    def ttft_s(self) -> float:
        return self.prefill.time_s + self.vision_encoder_s

    @property
    def tpot_s(self) -> float:
        return self.decode.time_s

    @property
    def e2e_s(self) -> float:
        return self.ttft_s + max(self.output_tokens - 1, 0) * self.tpot_s

    @property
    def output_tokens_per_s(self) -> float:
        return self.batch * self.output_tokens / self.e2e_s

    @property
    def requests_per_s(self) -> float:
        return self.batch / self.e2e_s

    @property
    def total_tokens_per_s(self) -> float:
        return self.batch * (self.prompt_tokens + self.output_tokens) / self.e2e_s


def serving_time(spec: ModelSpec, deployment: Deployment, batch: StaticBatch) -> InferenceTime:
    """TTFT, TPOT, end-to-end latency and throughput of a static batch (formulas in the module docstring)."""
    setup, b = deployment_setup(spec, deployment), batch
    return InferenceTime(engine=setup.engine.key, accelerator=setup.accelerator.key, tp=setup.tp, ep=setup.ep,
                         batch=b.batch, prompt_tokens=b.prompt_tokens, output_tokens=b.output_tokens,
                         prefill=prefill_time(setup, batch=b.batch, prompt_tokens=b.prompt_tokens),
                         decode=mean_decode_time(setup, batch=b.batch, prompt_tokens=b.prompt_tokens,
                                                 output_tokens=b.output_tokens))


def inference_time(spec: ModelSpec, accelerator: Accelerator, *, batch: int = 1, prompt_tokens: int,
                   output_tokens: int, engine: EnginePreset | None = None, weights_format: NumberFormat | None = None,
                   kv_format: NumberFormat | None = None, tp: int = 1, ep: int = 1,
                   assumptions: PerformanceAssumptions | None = None, cuda_graphs: bool | None = None,
                   host: Accelerator | None = None) -> InferenceTime:
    """``serving_time`` with its Deployment and StaticBatch given as keywords (vLLM by default)."""
    deployment = Deployment(accelerator=accelerator, engine=engine or get_engine("vllm"), tp=tp, ep=ep,
                            weights_format=weights_format, kv_format=kv_format, cuda_graphs=cuda_graphs, host=host,
                            assumptions=assumptions)
    return serving_time(spec, deployment, StaticBatch(batch=batch, prompt_tokens=prompt_tokens,
                                                      output_tokens=output_tokens))


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingThroughput:
    """Steady state of a continuously batching server at ``concurrency`` running sequences (module docstring)."""

    concurrency: int
    kv_capacity_tokens: int
    prompt_tokens: int
    output_tokens: int
    prefill_s_per_request: float
    decode: PhaseTime  # one step at ``concurrency`` sequences of mean context P + O/2

    @property
    def tpot_s(self) -> float:
        return self.decode.time_s

    request_overhead_s: float = 0.0  # engine CPU time per request (``engine_request_overhead_s``)

    @property
    def request_s(self) -> float:
        """Time one request costs the replica: its prefill, its share of (O − 1) shared decode steps and the
        engine's per-request CPU work."""
        steps = max(self.output_tokens - 1, 0)
        return (self.prefill_s_per_request + steps * self.decode.time_s / max(self.concurrency, 1)
                + self.request_overhead_s)

    @property
    def requests_per_s(self) -> float:
        return 1 / self.request_s if self.concurrency else 0.0

    @property
    def output_tokens_per_s(self) -> float:
        return self.output_tokens * self.requests_per_s

    @property
    def total_tokens_per_s(self) -> float:
        return (self.prompt_tokens + self.output_tokens) * self.requests_per_s


def max_load_throughput(setup: ServingSetup, *, prompt_tokens: int, output_tokens: int,
                        concurrency: int | None = None) -> ServingThroughput:
    """Throughput of one replica under maximum load (every request queued at once): C = min(max_num_seqs,
    KV pool / (P + O), ``concurrency`` if given)."""
    require_positive("prompt_tokens", prompt_tokens)
    require_positive("output_tokens", output_tokens)
    s = setup
    setting = engine_setting(s.engine, s.accelerator, tp=s.tp, spec=s.spec)
    length = prompt_tokens + output_tokens
    capacity = kv_capacity_tokens(s.spec, s.accelerator, s.engine, tp=s.tp, ep=s.ep, weights_format=s.weights_format,
                                  kv_format=s.kv_format, context_tokens=length)
    limits = [capacity // length, setting.max_num_seqs or capacity // length]
    if concurrency is not None:
        require_positive("concurrency", concurrency)
        limits.append(concurrency)
    c = max(min(limits), 0)
    chunk = setting.chunk_tokens or prompt_tokens
    per_pass = max(1, chunk // prompt_tokens)
    prefill = prefill_time(s, batch=per_pass, prompt_tokens=prompt_tokens).time_s / per_pass
    decode = decode_step_time(s, batch=max(c, 1), context=prompt_tokens + output_tokens // 2)
    return ServingThroughput(concurrency=c, kv_capacity_tokens=capacity, prompt_tokens=prompt_tokens,
                             output_tokens=output_tokens, prefill_s_per_request=prefill, decode=decode,
                             request_overhead_s=s.assumptions.engine_request_overhead_s)


def ridge_batch(setup: ServingSetup) -> float:
    """The decode batch at which a weight GEMM turns compute-bound: peak / (bandwidth · f) FLOPs per byte,
    over the 2 / bytes_per_weight FLOPs a batch row does per weight byte."""
    a, acc = setup.assumptions, setup.accelerator
    peak = acc.peak_flops(compute_format(setup.weights_format, acc)) * a.gemm_peak_fraction
    bytes_per_weight = setup.layers[0].bytes_per_weight if setup.layers else 2.0
    return peak / (acc.memory_bandwidth_bytes_per_s * a.decode_bandwidth_fraction) * bytes_per_weight / 2

