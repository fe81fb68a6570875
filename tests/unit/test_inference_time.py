"""The inference time model against hand-derived numbers: decode reads the weights once per step, KV grows
with the context, prefill is compute-bound, TP halves the weight reads and adds all-reduces, int4 cuts
decode, MoE reads only the experts hit, and the static-batch identities hold."""

from __future__ import annotations

import dataclasses
import math

import pytest

from suanli.core.inference_time import (
    decode_step_time,
    expected_distinct_experts,
    inference_time,
    max_load_throughput,
    prefill_time,
    ridge_batch,
    serving_setup,
)
from suanli.core.serving_ops import all_reduce_s, attended_pairs
from suanli.spec.assumptions import PerformanceAssumptions
from suanli.spec.engines import get_engine
from suanli.spec.hardware import get_accelerator
from suanli.spec.precision import parse_number_format
from suanli.spec.resolve import load_model

H100 = get_accelerator("h100")
LLAMA8 = load_model("llama-3.1-8b")
# No fixed costs: what is left is the roofline alone, so hand arithmetic can check it.
BARE = PerformanceAssumptions(engine_step_overhead_s=0, engine_request_overhead_s=0, graph_kernel_overhead_s=0,
                              collective_overhead_s=0, kernel_overhead_s=0)
BF16_WEIGHT_BYTES = 2 * (8_030_261_248 - 128_256 * 4096)  # everything but the token embedding: blocks + lm_head
# (the 66 RMSNorm vectors, 0.27 M parameters, are left out of the weight reads)


def _setup(**kw: object) -> object:
    return serving_setup(LLAMA8, H100, assumptions=BARE, **kw)  # type: ignore[arg-type]


def test_batch_one_decode_is_weight_bytes_over_bandwidth() -> None:
    step = decode_step_time(serving_setup(LLAMA8, H100, assumptions=BARE), batch=1, context=0)
    bandwidth = 3.35e12 * BARE.decode_bandwidth_fraction
    assert step.bound == "memory"
    assert step.weight_bytes == pytest.approx(BF16_WEIGHT_BYTES, rel=1e-3)
    assert step.weights_s == pytest.approx(BF16_WEIGHT_BYTES / bandwidth, rel=1e-3)
    assert step.time_s == pytest.approx(BF16_WEIGHT_BYTES / bandwidth, rel=0.01)  # KV and activations: < 1%


def test_breakdown_adds_up() -> None:
    s = serving_setup(LLAMA8, H100, tp=2)
    for phase in (prefill_time(s, batch=4, prompt_tokens=1000), decode_step_time(s, batch=64, context=3000)):
        parts = (phase.compute_s + phase.weights_s + phase.kv_s + phase.activations_s + phase.comm_s
                 + phase.overhead_s)
        assert parts == pytest.approx(phase.time_s, rel=1e-12)


def test_tpot_grows_with_context_by_the_kv_read() -> None:
    s = serving_setup(LLAMA8, H100, assumptions=BARE)
    short, long = (decode_step_time(s, batch=8, context=c) for c in (1000, 9000))
    kv_bytes_per_token = 2 * 8 * 128 * 2 * 32  # K and V, 8 KV heads of 128, bf16, 32 layers = 131,072 B
    extra = 8 * 8000 * kv_bytes_per_token / (3.35e12 * BARE.decode_bandwidth_fraction)
    assert long.kv_s - short.kv_s == pytest.approx(extra, rel=1e-6)
    assert long.weights_s == pytest.approx(short.weights_s)


def test_prefill_is_compute_bound_and_about_linear_in_the_prompt() -> None:
    s = serving_setup(LLAMA8, H100, assumptions=BARE)
    t4k, t8k = (prefill_time(s, batch=1, prompt_tokens=p) for p in (4096, 8192))
    assert t4k.bound == t8k.bound == "compute"
    assert 2.0 < t8k.time_s / t4k.time_s < 2.3  # linear GEMMs, plus causal attention's P² share
    # 2·N·P FLOPs of the blocks at ~0.8 of 989 TFLOP/s, before attention: 8192 tokens ≈ 0.15 s
    assert t8k.time_s == pytest.approx(2 * 7.5e9 * 8192 / (0.8 * 989.4e12), rel=0.25)


def test_tensor_parallel_halves_weight_reads_and_adds_all_reduces() -> None:
    one = decode_step_time(serving_setup(LLAMA8, H100, assumptions=BARE), batch=1, context=100)
    two = decode_step_time(serving_setup(LLAMA8, H100, assumptions=BARE, tp=2), batch=1, context=100)
    assert two.weight_bytes == pytest.approx(one.weight_bytes / 2, rel=0.01)
    assert one.comm_s == 0
    per_layer = 2 * all_reduce_s(1 * 4096 * 2, 2, H100, BARE)
    logits_gather = two.comm_s - 32 * per_layer
    assert 0 < logits_gather < per_layer  # one all-gather of the sampled row's fp32 logits
    assert two.time_s < one.time_s


def test_int4_weights_cut_decode_time() -> None:
    bf16 = decode_step_time(serving_setup(LLAMA8, H100, assumptions=BARE), batch=1, context=100)
    int4 = decode_step_time(serving_setup(LLAMA8, H100, assumptions=BARE, weights_format=parse_number_format("int4")),
                            batch=1, context=100)
    # blocks at 4 + 32/128 bits (g128 scale and zero), lm_head kept in bf16
    head = 2 * 128_256 * 4096
    expected = ((BF16_WEIGHT_BYTES - head) * 4.25 / 16 + head) / BF16_WEIGHT_BYTES
    assert int4.weight_bytes / bf16.weight_bytes == pytest.approx(expected, rel=0.01)
    assert int4.time_s / bf16.time_s == pytest.approx(expected / BARE.quantized_weight_bandwidth_fraction, rel=0.03)


def test_decode_turns_compute_bound_past_the_ridge_batch() -> None:
    s = serving_setup(LLAMA8, H100, assumptions=BARE)
    ridge = ridge_batch(s)
    assert 200 < ridge < 600  # 0.8 × 989 TFLOP/s / (0.775 × 3.35 TB/s) ≈ 305 FLOP/B; × 2 B per weight / 2
    assert decode_step_time(s, batch=8, context=0).bound == "memory"
    assert decode_step_time(s, batch=4096, context=0).bound == "compute"


def test_expected_distinct_experts() -> None:
    assert expected_distinct_experts(8, 2, 1) == pytest.approx(2)
    assert expected_distinct_experts(8, 2, 4) == pytest.approx(8 * (1 - 0.75**4))  # 5.47
    assert expected_distinct_experts(128, 8, 512) == pytest.approx(128, rel=1e-6)
    assert expected_distinct_experts(8, 2, 0) == 0


def test_moe_decode_reads_only_the_experts_hit() -> None:
    mixtral = load_model("mixtral-8x7b")
    s = serving_setup(mixtral, H100, assumptions=BARE, tp=2)
    one, many = (decode_step_time(s, batch=b, context=0) for b in (1, 256))
    # per layer: attention (4096·(4096+2·1024+4096)·2 B / 2 GPUs) + 2 of 8 experts (3·4096·14336·2 B / 2)
    attention = 4096 * (4096 + 1024 + 1024 + 4096) * 2 / 2
    expert = 3 * 4096 * 14336 * 2 / 2
    head = 32_000 * 4096 * 2 / 2
    assert one.weight_bytes == pytest.approx(32 * (attention + 2 * expert) + head, rel=0.01)
    assert many.flops > one.flops * 200
    assert max(one.weight_bytes, many.weight_bytes) <= 32 * (attention + 8 * expert) + head


def test_static_batch_identities() -> None:
    r = inference_time(LLAMA8, H100, batch=8, prompt_tokens=1000, output_tokens=200)
    assert r.e2e_s == pytest.approx(r.ttft_s + 199 * r.tpot_s)
    assert r.output_tokens_per_s == pytest.approx(8 * 200 / r.e2e_s)
    assert r.requests_per_s == pytest.approx(8 / r.e2e_s)
    assert r.total_tokens_per_s == pytest.approx(8 * 1200 / r.e2e_s)
    assert r.prefill.bound == "compute" and r.decode.bound == "memory"


def test_cpu_decode_is_bandwidth_bound_by_the_bandwidth_ratio() -> None:
    xeon = get_accelerator("xeon-platinum-8480+")
    gpu = decode_step_time(serving_setup(LLAMA8, H100, assumptions=BARE), batch=1, context=0)
    cpu = decode_step_time(serving_setup(LLAMA8, xeon, assumptions=BARE), batch=1, context=0)
    assert cpu.bound == "memory"
    assert cpu.time_s / gpu.time_s == pytest.approx(3350 / 307.2, rel=0.02)  # ≈ 10.9×


def test_engine_effects() -> None:
    kw = {"batch": 1, "prompt_tokens": 512, "output_tokens": 64}
    vllm = inference_time(LLAMA8, H100, engine=get_engine("vllm"), **kw)  # type: ignore[arg-type]
    eager = inference_time(LLAMA8, H100, engine=get_engine("vllm"), cuda_graphs=False, **kw)  # type: ignore[arg-type]
    hf = inference_time(LLAMA8, H100, engine=get_engine("hf"), **kw)  # type: ignore[arg-type]
    a = PerformanceAssumptions()
    kernels = (eager.decode.overhead_s - vllm.decode.overhead_s) / (a.kernel_overhead_s - a.graph_kernel_overhead_s)
    assert 250 < kernels < 500  # ~10 kernels per layer × 32 layers, plus the head
    assert hf.tpot_s - eager.tpot_s == pytest.approx(32 * a.eager_python_overhead_s_per_layer, rel=0.05)


def test_llamacpp_layers_on_the_host_decode_at_host_bandwidth() -> None:
    base = get_engine("llamacpp")
    gpu_only = serving_setup(LLAMA8, H100, engine=base, assumptions=BARE)
    half = serving_setup(LLAMA8, H100, engine=dataclasses.replace(base, n_gpu_layers=16), assumptions=BARE)
    t_gpu, t_half = (decode_step_time(s, batch=1, context=0) for s in (gpu_only, half))
    host_bw = BARE.host_memory_bandwidth_bytes_per_s * BARE.decode_bandwidth_fraction
    gpu_bw = 3.35e12 * BARE.decode_bandwidth_fraction
    head = 2 * 128_256 * 4096  # -ngl 16 of 32 leaves the output layer on the host too
    block = (BF16_WEIGHT_BYTES - head) / 32
    moved = (16 * block + head) * (1 / host_bw - 1 / gpu_bw)
    assert t_half.time_s - t_gpu.time_s == pytest.approx(moved, rel=0.02)


def test_max_load_concurrency_and_throughput() -> None:
    s = serving_setup(LLAMA8, H100, engine=get_engine("trtllm"), weights_format=parse_number_format("fp8"))
    r = max_load_throughput(s, prompt_tokens=1000, output_tokens=1000)
    assert r.concurrency == r.kv_capacity_tokens // 2000
    assert r.output_tokens_per_s == pytest.approx(1000 / r.request_s)
    capped = max_load_throughput(s, prompt_tokens=1000, output_tokens=1000, concurrency=8)
    assert capped.concurrency == 8 and capped.output_tokens_per_s < r.output_tokens_per_s


def test_attended_pairs() -> None:
    assert attended_pairs(0, 4, None) == 10  # 1 + 2 + 3 + 4
    assert attended_pairs(100, 1, None) == 101
    assert attended_pairs(0, 10, 4) == 1 + 2 + 3 + 4 * 7
    assert attended_pairs(100, 1, 4) == 4
    assert attended_pairs(2, 4, 4) == 3 + 4 + 4 + 4
    assert math.isclose(attended_pairs(0, 4096, None), 4096 * 4097 / 2)


def test_cpu_vs_gpu_doc_is_current() -> None:
    """docs/cpu-vs-gpu.md is generated from this model; regenerate with benchmarks/cpu_vs_gpu.py."""
    from benchmarks.cpu_vs_gpu import DOC, render

    assert DOC.read_text() == render(), "docs/cpu-vs-gpu.md is stale: run .venv/bin/python benchmarks/cpu_vs_gpu.py"


def test_infer_cli_reports_latency_throughput_and_phases(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.surface.cli_helpers import run, run_json

    payload = run_json(capsys, "infer", "llama-3.1-8b", "--gpu", "h100", "--batch", "8", "--prompt", "1000",
                       "--output", "200", "--quant", "fp8", "--kv-dtype", "fp8")
    lat, thr = payload["latency"], payload["throughput"]
    assert lat["e2e_s"] == pytest.approx(lat["ttft_s"] + 199 * lat["tpot_s"])
    assert thr["output_tokens_per_s"] == pytest.approx(8 * 200 / lat["e2e_s"])
    assert thr["requests_per_s"] == pytest.approx(8 / lat["e2e_s"])
    assert thr["total_tokens_per_s"] == pytest.approx(8 * 1200 / lat["e2e_s"])
    assert thr["max_load"]["output_tokens_per_s"] > thr["output_tokens_per_s"]
    assert payload["phases"]["prefill"]["bound"] == "compute" and payload["phases"]["decode"]["bound"] == "memory"
    code, out, _ = run(capsys, "infer", "llama-3.1-8b", "--gpu", "h100", "--explain")
    assert code == 0 and "ttft_s = " in out and "tpot_s = " in out and "decode_weights_bytes_read" in out


def test_busiest_expert_parallel_rank() -> None:
    """The busiest of r EP ranks sets the step: mean n/r plus σ·√(2 ln r), σ = √(n (1/r)(1 − 1/r))."""
    import math

    from suanli.core.serving_ops import busiest_rank_rows

    assert busiest_rank_rows(64.0, 1) == 64.0  # no expert parallelism: every assignment is on the one rank
    n, r = 1024.0, 8
    expected = n / r + math.sqrt(n / r * (1 - 1 / r)) * math.sqrt(2 * math.log(r))
    assert busiest_rank_rows(n, r) == pytest.approx(expected)
    assert busiest_rank_rows(n, r) == pytest.approx(149.58, abs=0.005)  # 128 + √112 · √(2 ln 8) = 128 + 10.583 × 2.039
    assert 1.0 <= busiest_rank_rows(2.0, 8) <= 2.0  # exact: 1 + 1/8 = 1.125; never more than all of them
    # relative imbalance shrinks as the batch grows
    assert busiest_rank_rows(1e6, 8) / (1e6 / 8) < busiest_rank_rows(1e3, 8) / (1e3 / 8)
