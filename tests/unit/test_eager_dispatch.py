"""The eager-dispatch term of a CPU training step (``core/training_block.eager_dispatch_s``), derived by hand.

tinyllama-stories15m (6 Llama blocks, tied embedding) in fp32 with the hf framework: each block's roofline
kernels are 10 single launches with backward factor 2 (norms, rope, residuals, activation, 4 GEMMs: 3 launches
each) and FlashAttention with 2.5, so 33.5 launches are charged per block; the head (final norm, head GEMM,
loss) and the embedding lookup add 4 × 3 = 12. The counted calls are 200 per block and 66 per step, so a CPU
step pays (6 · (200 − 33.5) + (66 − 12)) · kernel_overhead_s = 1053 · kernel_overhead_s more than without the
counts; a GPU, or Megatron-LM (its own fused modules), nothing.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from suanli.core.training_block import block_kernels, charged_launches
from suanli.core.training_time import _setup, training_time
from suanli.errors import SpecError
from suanli.spec.assumptions import PerformanceAssumptions
from suanli.spec.hardware import get_accelerator
from suanli.spec.layout import Layout
from suanli.spec.resolve import load_model
from suanli.spec.training import Framework, PrecisionMode, TrainingJob

SPEC = load_model("tinyllama-stories15m")
CPU = get_accelerator("epyc-9654")
A = PerformanceAssumptions(kernel_overhead_s=2e-6)
NONE = dataclasses.replace(A, eager_training_ops_per_layer=0, eager_training_ops_fixed=0)


def _step(framework: Framework, accelerator_key: str, a: PerformanceAssumptions) -> float:
    job = TrainingJob(seq=256, framework=framework, precision=PrecisionMode.FP32)
    return training_time(SPEC, job, Layout(), get_accelerator(accelerator_key), assumptions=a).step_s


def test_charged_launches_of_a_llama_block() -> None:
    job = TrainingJob(seq=256, framework=Framework.HF, precision=PrecisionMode.FP32)
    s = _setup(SPEC, job, Layout(), CPU, A, 8, "ib-ndr")
    assert charged_launches(block_kernels(SPEC.layers[0], s), s) == 33.5


@pytest.mark.parametrize("framework", [Framework.HF, Framework.DEEPSPEED, Framework.FSDP])
def test_cpu_step_pays_every_counted_call(framework: Framework) -> None:
    extra = _step(framework, "epyc-9654", A) - _step(framework, "epyc-9654", NONE)
    assert extra == pytest.approx((6 * (200 - 33.5) + (66 - 12)) * 2e-6, rel=1e-9)


@pytest.mark.parametrize(("framework", "key"), [(Framework.HF, "h100"), (Framework.MEGATRON, "epyc-9654"),
                                                (Framework.TORCHTUNE, "epyc-9654")])
def test_no_term_on_a_gpu_or_outside_transformers_modules(framework: Framework, key: str) -> None:
    assert _step(framework, key, A) == _step(framework, key, NONE)


def test_negative_count_is_refused() -> None:
    with pytest.raises(SpecError, match="eager_training_ops_per_layer"):
        PerformanceAssumptions(eager_training_ops_per_layer=-1)


def test_measured_per_call_cost_replaces_the_charged_launches() -> None:
    """With a measured per-call cost e: counted · e − charged · kernel_overhead_s, per block and per step."""
    measured = dataclasses.replace(A, eager_call_overhead_s=7e-6)
    extra = _step(Framework.HF, "epyc-9654", measured) - _step(Framework.HF, "epyc-9654", NONE)
    assert extra == pytest.approx(6 * (200 * 7e-6 - 33.5 * 2e-6) + (66 * 7e-6 - 12 * 2e-6), rel=1e-9)


def test_calibration_profile_carries_the_per_call_cost(tmp_path: Path) -> None:
    from suanli.core.calibrate import calibrate
    from suanli.spec.calibration import Calibration, GemmPoint, load_calibration, to_toml

    point = GemmPoint(dtype="fp32", m=256, n=256, k=256, seconds=2 * 256**3 / 1e11, achieved_flops_per_s=1e11)
    profile = Calibration(device_name="x", device_key=CPU.key, device_kind="cpu", torch_version="2", date="d",
                          copy_bytes_per_s=2e10, gemm=(point,), kernel_overhead_s=2e-6, eager_call_s=7e-6)
    (tmp_path / "cpu.toml").write_text(to_toml(profile))
    assert load_calibration(tmp_path / "cpu.toml").eager_call_s == 7e-6
    assert calibrate(CPU, A, profile).assumptions.eager_call_overhead_s == 7e-6
    assert calibrate(CPU, A, profile).to_dict()["eager_call_overhead_s"] == 7e-6  # --json's calibration object
    with pytest.raises(SpecError, match="eager_call_overhead_s"):
        PerformanceAssumptions(eager_call_overhead_s=-1.0)
