"""TGI v3 as an engine preset: its compute-sized prefill budget, its KV pool (free memory after the warm-up
prefill less a 10% reserve), and its reserving, chunking scheduler in the simulator."""

from __future__ import annotations

import pytest

import suanli
from suanli.core.engine_rules import compute_optimal_prefill_tokens
from suanli.core.inference_memory import engine_setting, inference_memory
from suanli.simulate.api import Deployment, simulate
from suanli.simulate.workload import LengthDist, Workload
from suanli.spec.engines import get_engine
from suanli.units import GiB


def _llama_31_8b_flops_per_token() -> float:
    """TGI's Config::flop for Llama-3.1-8B by hand: per layer 2·(q + k + v + o) + 2·H·d·h + 2·3·h·i."""
    h, heads, kv, d, i, layers = 4096, 32, 8, 128, 14336, 32
    projections = 2 * (h * heads * d + 2 * h * kv * d + heads * d * h)
    attention = 2 * heads * d * h
    mlp = 2 * 3 * h * i
    norms = 2 * (2 * h) + 2 * h / layers  # our parameter count includes the RMSNorm weights (negligible)
    return layers * (projections + attention + mlp + norms)


def test_prefill_budget_is_one_second_of_f16_peak() -> None:
    spec, h100 = suanli.load_model("llama-3.1-8b"), suanli.get_accelerator("h100")
    flops = _llama_31_8b_flops_per_token()
    got = compute_optimal_prefill_tokens(spec, h100, tp=1, seconds=1.0)
    assert got is not None
    assert got == pytest.approx(h100.peak_flops_per_s["fp16"] / flops, abs=1)
    # TGI's own card table has 900 TFLOP/s for an H100: ~60,000 tokens, 9% below ours
    assert got * 900e12 / h100.peak_flops_per_s["fp16"] == pytest.approx(60_000, rel=0.01)
    assert engine_setting(get_engine("tgi"), h100, spec=spec).chunk_tokens == got
    assert engine_setting(get_engine("tgi"), h100).chunk_tokens == 4096  # no model: the launcher's fallback


def test_prefill_budget_is_capped_by_the_context() -> None:
    spec, h100 = suanli.load_model("qwen3-0.6b"), suanli.get_accelerator("h100")
    assert compute_optimal_prefill_tokens(spec, h100, tp=1, seconds=1.0) == spec.max_position_embeddings


def test_kv_pool_is_free_memory_less_a_tenth_of_the_gpu() -> None:
    spec, h100 = suanli.load_model("llama-3.1-8b"), suanli.get_accelerator("h100")
    r = inference_memory(spec, h100, prompt_tokens=1000, engine=get_engine("tgi"))
    parts = dict(r.overheads)
    assert "cuda_graphs" in parts and "non_torch" not in parts
    expected = (r.visible_bytes - parts["cuda_context"] - parts["cublas_workspace"] - r.weights_bytes
                - r.activation_bytes - 0.1 * r.visible_bytes)  # graphs come out of the 10% reserve
    assert r.kv_budget_bytes == pytest.approx(expected, rel=1e-12)
    assert r.kv_capacity_tokens == int(r.kv_budget_bytes // r.kv_bytes_per_token)  # token-level pages (flashinfer)
    assert 45 * GiB < r.kv_budget_bytes < 52 * GiB


def test_simulated_tgi_never_preempts_and_finishes_every_request() -> None:
    spec, acc = suanli.load_model("llama-3.1-8b"), suanli.get_accelerator("h100")
    result = simulate(spec, Deployment(accelerator=acc, engine=get_engine("tgi")),
                      Workload(prompt=LengthDist.constant(2000), output=LengthDist.constant(64), requests=40,
                               concurrency=16))
    assert len(result.sequences) == 40
    assert result.metrics.preemptions == 0
