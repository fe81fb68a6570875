"""NCCL's NVLink SHARP buffers in an engine's memory: communicators x tp x nvlsPerRankSize (288 MiB), only above
two GPUs inside one NVSwitch (gen 3+) domain and only where the engine leaves NVLS on (vLLM, not SGLang)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from suanli.core.engine_rules import nvls_bytes
from suanli.core.inference_memory import inference_memory
from suanli.spec.engines import framework_overheads, get_engine
from suanli.spec.hardware import get_accelerator
from suanli.spec.resolve import load_model
from suanli.units import GiB, MiB


def test_vllm_tp4_on_h100_holds_two_communicators_of_nvls_buffers() -> None:
    got = nvls_bytes(get_engine("vllm"), get_accelerator("h100"), tp=4)
    assert got == 2 * 4 * 288 * MiB == 2.25 * GiB


@pytest.mark.parametrize("tp", [1, 2])
def test_no_nvls_at_two_gpus_or_fewer(tp: int) -> None:
    assert nvls_bytes(get_engine("vllm"), get_accelerator("h100"), tp=tp) == 0.0


def test_sglang_turns_nvls_off() -> None:
    assert nvls_bytes(get_engine("sglang"), get_accelerator("h100"), tp=8) == 0.0


def test_no_nvls_without_a_gen3_nvswitch() -> None:
    assert nvls_bytes(get_engine("vllm"), get_accelerator("a100"), tp=8) == 0.0  # NVLink 3 switch: no SHARP


def test_nvls_comes_out_of_vllms_kv_pool() -> None:
    spec, h100 = load_model("qwen3-235b-a22b"), get_accelerator("h100")
    without = replace(framework_overheads(), nvls_per_rank_bytes=0.0)
    for engine, expected in (("vllm", 2.25 * GiB), ("vllm-0.10", 2.25 * GiB), ("sglang", 0.0)):
        on = inference_memory(spec, h100, prompt_tokens=1000, engine=get_engine(engine), tp=4)
        off = inference_memory(spec, h100, prompt_tokens=1000, engine=get_engine(engine), tp=4, overheads=without)
        assert off.kv_budget_bytes - on.kv_budget_bytes == pytest.approx(expected)
