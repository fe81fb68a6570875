"""What runs where (spec/support.py) and the sanity limits (spec/limits.py): the limits sit far above every real
model, the format rules follow the tensor cores each generation has, engines run on their platforms only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from suanli.errors import SpecError
from suanli.spec.engines import get_engine
from suanli.spec.hardware import get_accelerator, load_accelerators
from suanli.spec.limits import MAX_GPUS, MODEL_LIMITS
from suanli.spec.precision import parse_number_format
from suanli.spec.support import (
    Violation,
    enforce,
    engine_violation,
    method_violation,
    training_format_violation,
    weights_format_violation,
)
from suanli.spec.training import Method, PrecisionMode

CATALOG = Path(__file__).parents[2] / "src" / "suanli" / "catalog" / "models"


def _values(config: object, key: str) -> list[int]:
    """Every integer under ``key`` anywhere in a (nested) config."""
    if isinstance(config, dict):
        found = [v for k, v in config.items() if k == key and isinstance(v, int) and not isinstance(v, bool)]
        return found + [x for v in config.values() for x in _values(v, key)]
    return [x for v in config for x in _values(v, key)] if isinstance(config, list) else []


def test_limits_are_far_above_every_bundled_model() -> None:
    """A limit within 10x of a real model would be a cap, not a sanity check."""
    configs = [json.loads(path.read_text(encoding="utf-8")) for path in sorted(CATALOG.glob("*.json"))]
    assert len(configs) > 50
    for key, (limit, _) in MODEL_LIMITS.items():
        largest = max((v for config in configs for v in _values(config, key)), default=0)
        assert largest * 10 <= limit, (key, largest, limit)
    assert MAX_GPUS >= 10 * 1_000_000  # announced plans reach a million GPUs


@pytest.mark.parametrize(("gpu", "fmt", "supported"), [
    ("v100", "bf16", False), ("t4", "bf16", False), ("a100", "bf16", True),  # bf16 arrives with Ampere
    ("a100", "fp8", False), ("rtx-3090", "fp8", False), ("h100", "fp8", True), ("rtx-4090", "fp8", True),
    ("h100", "fp4", False), ("b200", "fp4", True), ("rtx-5090", "fp8", True),  # Blackwell, no published peak
    ("tpu-v5p", "fp16", False), ("mi250x", "fp8", False), ("mi300x", "fp8", True), ("ascend-910b", "bf16", True),
])
def test_format_support_follows_the_tensor_cores(gpu: str, fmt: str, supported: bool) -> None:
    assert get_accelerator(gpu).supports(fmt) is supported


def test_training_formats() -> None:
    assert training_format_violation(PrecisionMode.MIXED_BF16, get_accelerator("v100")) is not None
    assert training_format_violation(PrecisionMode.MIXED_FP16, get_accelerator("v100")) is None
    assert training_format_violation(PrecisionMode.FP8, get_accelerator("a100")) is not None
    assert training_format_violation(PrecisionMode.FP32, get_accelerator("tpu-v5p")) is None


def test_weight_only_fp8_needs_bf16() -> None:
    """fp8 weights run natively on H100, weight-only (Marlin, into bf16) on A100, not at all on T4."""
    fp8 = parse_number_format("fp8")
    assert weights_format_violation(fp8, get_accelerator("h100")) is None
    assert weights_format_violation(fp8, get_accelerator("a100")) is None
    assert weights_format_violation(fp8, get_accelerator("t4")) is not None
    assert weights_format_violation(parse_number_format("gptq"), get_accelerator("t4")) is None


def test_engines_run_on_their_platforms() -> None:
    for accelerator in load_accelerators():
        nvidia = accelerator.vendor == "NVIDIA"
        assert (engine_violation(get_engine("trtllm"), accelerator) is None) is nvidia, accelerator.key
    groq = get_accelerator("groq")
    assert all(engine_violation(get_engine(e), groq) is not None for e in ("vllm", "sglang", "llamacpp", "hf"))
    mlu = get_accelerator("mlu370-x8")
    assert engine_violation(get_engine("vllm"), mlu) is None  # the vllm-mlu hardware plugin
    assert engine_violation(get_engine("llamacpp"), mlu) is not None


def test_methods_and_enforce() -> None:
    assert method_violation(Method.QLORA, get_accelerator("mi300x")) is None
    assert method_violation(Method.QLORA, get_accelerator("mlu370-x8")) is not None
    assert method_violation(Method.LORA, get_accelerator("groq")) is not None
    assert enforce([None, None], force=False) == ()
    broken = Violation("number-format", "no bf16")
    with pytest.raises(SpecError, match="no bf16; or add --force"):
        enforce([None, broken], force=False)
    assert enforce([broken], force=True) == ("forced past the number-format check: no bf16",)
