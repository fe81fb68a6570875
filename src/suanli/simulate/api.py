"""``simulate()``: a model served on an accelerator by an engine, under a workload — the public entry point.

It resolves the same things ``suanli infer`` does (engine preset and knobs, weight and KV formats, the KV pool
of ``inference_memory``) and hands the simulator a replica factory: each replica gets its engine's scheduler
(``scheduler.py``), a block pool of ``kv_capacity_tokens`` tokens, and a step cost from the roofline
(``cost.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from suanli.core.comms import path_for_group
from suanli.core.inference_memory import engine_setting, serving_memory
from suanli.core.inference_time import ServingSetup, deployment_setup, serving_setup
from suanli.errors import SpecError, require_positive
from suanli.i18n import Text
from suanli.simulate.cost import RooflineStepCost
from suanli.simulate.engine import Recorder, Replica, Speculation
from suanli.simulate.kv_blocks import BlockPool
from suanli.simulate.metrics import Slo
from suanli.simulate.run import Disaggregation, Router, SimulationResult, simulate_deployment
from suanli.simulate.scheduler import ReservingScheduler, Scheduler, SglangScheduler, StaticScheduler, VllmScheduler
from suanli.simulate.workload import Workload
from suanli.spec import serving
from suanli.spec.engines import EngineKnobs, EnginePreset, KvBudget
from suanli.spec.model import ModelSpec
from suanli.spec.serving import StaticBatch
from suanli.spec.support import model_len_violation, startup_note

# DeepSeek-V3 Technical Report (arXiv:2412.19437) §5.4.3: the second token predicted by its MTP module is accepted
# 85-90% of the time across generation topics; the lower end is the default for --speculative-mtp.
MTP_DEFAULT_ACCEPTANCE = 0.85


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeculativeDecoding:
    """``k`` draft tokens per step, each accepted with probability ``acceptance``, proposed by ``draft`` (a
    smaller model of the same tokenizer, run on the same GPUs) or, when ``draft`` is None, by MTP/EAGLE-style
    heads: one more decoder block of the target and its output head per draft token."""

    k: int
    acceptance: float
    draft: ModelSpec | None = None

    def __post_init__(self) -> None:
        require_positive("num_speculative_tokens", self.k, fix=Text("fix.simulate.speculative_tokens"))
        if not 0 <= self.acceptance <= 1:
            raise SpecError(f"--acceptance-rate must be in [0, 1], got {self.acceptance}",
                            key="error.simulate.acceptance_option", fields={"value": self.acceptance})


@dataclass(frozen=True, slots=True, kw_only=True)
class Deployment(serving.Deployment):
    """How a model is served: ``replicas`` copies of the replica ``spec.serving.Deployment`` describes (a ``tp`` ×
    ``ep`` group on ``accelerator``), or prefill/decode disaggregation (``pd`` = (prefill replicas, decode
    replicas)), behind a ``router``."""

    replicas: int = 1
    pd: tuple[int, int] | None = None
    router: Router = Router.LEAST_OUTSTANDING

    def __post_init__(self) -> None:
        serving.Deployment.__post_init__(self)
        require_positive("replicas", self.replicas, fix=Text("fix.simulate.replicas"))
        if self.pd is not None:
            prefill, decode = self.pd
            if prefill < 1 or decode < 1:
                raise SpecError(f"--pd needs at least one prefill and one decode replica, got {prefill}:{decode}",
                                key="error.simulate.pd_pools", fields={"prefill": prefill, "decode": decode})
        if self.engine.kv_budget is KvBudget.CONTEXT:
            raise SpecError(f"the simulator does not model {self.engine.name}'s slot scheduler; use --engine vllm, "
                            "sglang, trtllm, tgi or hf",
                            key="error.simulate.slot_engine", fields={"engine": self.engine.name})

    @property
    def gpus(self) -> int:
        groups = sum(self.pd) if self.pd is not None else self.replicas
        return groups * self.tp


def simulate(spec: ModelSpec, deployment: Deployment, workload: Workload, *, slo: Slo | None = None,
             speculative: SpeculativeDecoding | None = None, keep_timeline: bool = True) -> SimulationResult:
    """Simulate ``workload`` on ``deployment`` (module docstring)."""
    d = deployment
    setup = deployment_setup(spec, d)
    engine = setup.engine
    # the pool as infer sizes it for the longest request (windowed layers and HF's prefill reserve depend on it)
    memory = serving_memory(spec, d, StaticBatch(prompt_tokens=min(_longest(workload), spec.max_position_embeddings)))
    speculation, draft_bytes = _speculation(spec, setup, speculative)
    capacity = memory.kv_capacity_tokens - int(draft_bytes / max(memory.kv_bytes_per_token, 1e-9))
    if capacity < engine.block_size:
        raise SpecError(f"{spec.name} leaves no KV cache on {d.accelerator.key} with tp {d.tp} "
                        f"({memory.total_bytes / 2**30:.1f} GiB needed before the cache); use more GPUs or a smaller "
                        "format",
                        key="error.simulate.no_kv",
                        fields={"model": spec.name, "gpu": d.accelerator.key, "tp": d.tp,
                                "needed_gib": memory.total_bytes / 2**30})
    _check_lengths(spec, engine, workload, capacity)
    cost = RooflineStepCost(setup)
    prefix = bool(d.knobs.enable_prefix_caching) if d.knobs.enable_prefix_caching is not None \
        else engine.key.startswith(("vllm", "sglang", "tgi"))  # on by default in vLLM V1, SGLang (radix), TGI v3

    def make(index: int, recorder: Recorder, role: str) -> Replica:
        pool = BlockPool(num_blocks=capacity // engine.block_size, block_size=engine.block_size,
                         prefix_caching=prefix)
        return Replica(index, _scheduler(setup, workload, d.knobs), pool, cost, recorder,
                       prefill_only=role == "prefill", speculation=None if role == "prefill" else speculation,
                       seed=workload.seed)

    pd = None
    if d.pd is not None:
        path = path_for_group(d.accelerator, d.gpus)
        pd = Disaggregation(prefill=d.pd[0], decode=d.pd[1], transfer_s=lambda tokens: cost.kv_transfer_s(
            tokens, path.bandwidth_bytes_per_s, path.latency_s))
    result = simulate_deployment(workload, make, replicas=d.replicas, router=d.router, pd=pd, slo=slo,
                                 keep_timeline=keep_timeline)
    startup = startup_note(spec, engine, memory.kv_capacity_tokens)
    return result if startup is None else replace(result, notes=(*result.notes, startup))


def _speculation(spec: ModelSpec, setup: ServingSetup,
                 speculative: SpeculativeDecoding | None) -> tuple[Speculation | None, float]:
    """The engine-side speculation and the draft's weight bytes per GPU (they come out of the KV pool)."""
    if speculative is None:
        return None, 0.0
    s = setup
    if speculative.draft is not None:
        draft = speculative.draft
        if draft.vocab_size != spec.vocab_size:
            raise SpecError(f"the draft model {draft.name} has a vocabulary of {draft.vocab_size:,}, the target "
                            f"{spec.vocab_size:,}; a draft must share the target's tokenizer",
                            key="error.simulate.draft_vocab",
                            fields={"draft": draft.name, "draft_vocab": draft.vocab_size,
                                    "target_vocab": spec.vocab_size})
        draft_setup = serving_setup(draft, s.accelerator, engine=s.engine, tp=s.tp)
    else:  # MTP / EAGLE: one more block of the target plus its output head
        draft = replace(spec, name=f"{spec.name} MTP head", layers=spec.layers[-1:])
        draft_setup = serving_setup(draft, s.accelerator, engine=s.engine, weights_format=s.weights_format,
                                    kv_format=s.kv_format, tp=s.tp, ep=s.ep)
    draft_cost = RooflineStepCost(draft_setup)
    weights = draft_setup.placement.weights.total_bytes if speculative.draft is not None else \
        draft_setup.placement.weights.linear_bytes + draft_setup.placement.weights.other_bytes
    k = speculative.k
    return (Speculation(k=k, acceptance=speculative.acceptance,
                        draft_s=lambda rows, context: draft_cost.decode_steps_s(k, rows, context)), weights)


def _scheduler(setup: ServingSetup, workload: Workload, knobs: EngineKnobs) -> Scheduler:
    engine = setup.engine
    setting = engine_setting(engine, setup.accelerator, tp=setup.tp, spec=setup.spec)
    chunk, seqs = setting.chunk_tokens, setting.max_num_seqs
    if engine.key.startswith("vllm"):  # chunked prefill off: chunk is the whole-prompt budget (engine_setting)
        return VllmScheduler(max_num_batched_tokens=chunk or 2048, max_num_seqs=seqs or 256,
                             chunked_prefill=engine.chunked_prefill)
    if engine.new_token_reserve is not None:  # SGLang
        return SglangScheduler(chunked_prefill_size=knobs.max_num_batched_tokens or chunk or 8192,
                               max_running_requests=knobs.max_num_seqs or engine.max_running_requests or seqs or 2048,
                               max_prefill_tokens=engine.max_prefill_tokens or chunk or 8192,
                               reserve=engine.new_token_reserve)
    if engine.key == "trtllm":
        return ReservingScheduler(token_budget=chunk or 8192, max_running=seqs or 2048, chunked_prefill=False,
                                  decode_rows_count=False, name="trtllm")
    if engine.key == "tgi":  # v3 router: chunked prefills within max_batch_prefill_tokens less the decode rows
        return ReservingScheduler(token_budget=knobs.max_num_batched_tokens or chunk or 4096,
                                  max_running=knobs.max_num_seqs or seqs or 128, chunked_prefill=True,
                                  decode_rows_count=True, name="tgi")
    batch = seqs or workload.concurrency or 8
    return StaticScheduler(batch_size=batch)


def _check_lengths(spec: ModelSpec, engine: EnginePreset, workload: Workload, capacity: int) -> None:
    """Every request must fit the context, --max-model-len and the KV pool, or the engine would reject it
    (vLLM: 'too long')."""
    longest = _longest(workload)
    # a trace or a length distribution sets the longest request, not --prompt + --output
    if (violation := model_len_violation(spec, engine, longest, Text("error.simulate.longest_request"))) is not None:
        raise SpecError(violation.message, key=violation.message.key, fields=violation.message.fields)
    if longest > spec.max_position_embeddings:
        raise SpecError(f"requests of up to {longest:,} tokens exceed {spec.name}'s context of "
                        f"{spec.max_position_embeddings:,}; shorten --prompt/--output",
                        key="error.simulate.context",
                        fields={"longest": longest, "model": spec.name, "context": spec.max_position_embeddings})
    if longest > capacity:
        raise SpecError(f"a request of {longest:,} tokens does not fit the KV pool of {capacity:,} tokens; use more "
                        "GPUs (--tp), an fp8 KV cache (--kv-dtype fp8) or shorter requests",
                        key="error.simulate.kv_pool", fields={"longest": longest, "capacity": capacity})


def _longest(workload: Workload) -> int:
    """Tokens of the longest request the workload can send (prompt + output)."""
    return max((r.prompt_tokens + r.output_tokens for r in workload.trace), default=0) or \
        workload.prompt.max + workload.output.max
