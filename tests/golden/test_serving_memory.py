"""Serving memory against published figures: vLLM/SGLang startup logs, PagedAttention, DeepSeek-V2, the
Llama 3.1 blog, llama.cpp logs and rules of thumb (citations and tolerances in data/serving_memory.toml)."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

import pytest

from suanli.core.inference_memory import inference_memory, llamacpp_compute_buffer_bytes, weight_bytes_per_gpu
from suanli.core.kv_cache import kv_bytes_per_token, kv_cache_bytes
from suanli.spec.engines import EngineKnobs, get_engine
from suanli.spec.hardware import get_accelerator
from suanli.spec.precision import parse_number_format
from suanli.spec.resolve import load_model
from suanli.units import GB, GiB, MiB

DATA = tomllib.loads((Path(__file__).parent / "data" / "serving_memory.toml").read_text())


def _id(case: dict[str, Any]) -> str:
    return "-".join(str(case[k]) for k in ("model", "engine", "format", "tokens", "tp") if k in case)


@pytest.mark.parametrize("case", DATA["vllm_profile"], ids=_id)
def test_vllm_startup_breakdown(case: dict[str, Any]) -> None:
    fmt = parse_number_format(case["weights_format"]) if "weights_format" in case else None
    r = inference_memory(load_model(case["model"]), get_accelerator(case["accelerator"]), prompt_tokens=16000,
                         engine=get_engine(case["engine"]), weights_format=fmt, tp=case["tp"])
    assert r.weights_bytes / GiB == pytest.approx(case["weights_gib"], rel=0.01)
    assert r.activation_bytes / GiB == pytest.approx(case["activation_gib"], rel=0.03)
    assert r.kv_budget_bytes / GiB == pytest.approx(case["kv_gib"], abs=0.25)


@pytest.mark.parametrize("case", DATA["kv_tokens"], ids=_id)
def test_logged_kv_memory_to_tokens(case: dict[str, Any]) -> None:
    engine = get_engine(case["engine"])
    per_token = kv_bytes_per_token(load_model(case["model"]), tp=case["tp"], mla=engine.mla_cache)
    block = case["block_size"]
    tokens = math.floor(case["kv_gib"] * GiB / (block * per_token)) * block
    rel = 0.005 / case["kv_gib"] + block / case["tokens"] + case["extra_rel_tol"]
    assert tokens == pytest.approx(case["tokens"], rel=rel)


@pytest.mark.parametrize("case", DATA["engine_kv_pool"], ids=_id)
def test_engine_kv_pool_for_moe_under_tp(case: dict[str, Any]) -> None:
    engine = get_engine(case["engine"])
    if "memory_fraction" in case:
        engine = EngineKnobs(gpu_memory_utilization=case["memory_fraction"]).apply(engine)
    r = inference_memory(load_model(case["model"]), get_accelerator(case["accelerator"]), prompt_tokens=16000,
                         engine=engine, weights_format=parse_number_format(case["weights_format"]), tp=case["tp"])
    assert r.kv_capacity_tokens == pytest.approx(case["tokens"], rel=case["rel_tol"])


@pytest.mark.parametrize("case", DATA["kv_size"], ids=_id)
def test_published_kv_sizes(case: dict[str, Any]) -> None:
    expected = case["value_bytes"] if "value_bytes" in case else case["value_gib"] * GiB
    got = kv_cache_bytes(load_model(case["model"]), tokens_per_seq=case["tokens"])
    assert got == pytest.approx(expected, rel=case["rel_tol"])


@pytest.mark.parametrize("case", DATA["weights"], ids=_id)
def test_weight_memory(case: dict[str, Any]) -> None:
    expected = case["value_gib"] * GiB if "value_gib" in case else case["value_gb"] * GB
    got = weight_bytes_per_gpu(load_model(case["model"]), parse_number_format(case["format"])).total_bytes
    assert got == pytest.approx(expected, rel=case["rel_tol"])


@pytest.mark.parametrize("case", DATA["linear_ratio"], ids=_id)
def test_linear_weight_ratios(case: dict[str, Any]) -> None:
    spec = load_model(case["model"])
    quantized = weight_bytes_per_gpu(spec, parse_number_format(case["format"])).linear_bytes
    reference = weight_bytes_per_gpu(spec, parse_number_format(case["reference"])).linear_bytes
    assert quantized / reference == pytest.approx(case["ratio"], rel=case["rel_tol"])


@pytest.mark.parametrize("case", DATA["llamacpp_compute"], ids=_id)
def test_llamacpp_compute_buffer(case: dict[str, Any]) -> None:
    got = llamacpp_compute_buffer_bytes(load_model(case["model"]), ubatch=case["ubatch"]) / MiB
    for logged in case["values_mib"]:
        assert got == pytest.approx(logged, rel=case["rel_tol"])
