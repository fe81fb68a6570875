"""The errors of the core formulas are said in Chinese with ``--lang zh``: the mistakes users meet there (a KV cache
dtype that only weights can use, a tp that does not divide the heads, LoRA targets that select nothing or split an
expert's fused gate/up, Adafactor with adapters, a teacher with another tokenizer, a GRPO group size for PPO, a
calibration profile measured on another GPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.surface.cli_helpers import KeyedError

from suanli.cli.main import main
from suanli.spec.calibration import Calibration, GemmPoint, write_calibration

BAD = [  # (argv, the key it must raise)
    (["infer", "llama-3.1-8b", "--gpu", "h100", "--kv-dtype", "nf4"], "error.core.kv_weight_only_format"),
    (["infer", "llama-3.1-8b", "--gpu", "h100", "--gpus", "3", "--tp", "3"], "error.core.attention_heads_tp"),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--method", "lora", "--lora-targets", "experts"],
     "error.core.lora_targets_none"),
    (["train", "qwen3-30b-a3b", "--gpu", "h100", "--gpus", "8", "--method", "lora", "--lora-targets", "experts,gate"],
     "error.core.lora_gate_up"),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--method", "lora", "--optimizer", "adafactor"],
     "error.core.adafactor_peft"),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--teacher", "qwen2.5-7b"], "error.core.distill_vocab"),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--rl", "ppo", "--group-size", "4"], "error.core.group_size_not_grpo"),
]


@pytest.mark.parametrize(("argv", "key"), BAD, ids=[key for _, key in BAD])
def test_core_errors_say_the_same_in_english_and_translate(argv: list[str], key: str,
                                                           keyed_error: KeyedError) -> None:
    keyed_error(argv, key)


def _gemm(n: int, seconds: float) -> GemmPoint:
    return GemmPoint(dtype="bf16", m=n, n=n, k=n, seconds=seconds, achieved_flops_per_s=2.0 * n**3 / seconds)


def test_a_profile_measured_on_another_gpu(tmp_path: Path, keyed_error: KeyedError,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    profile = Calibration(device_name="NVIDIA A100-SXM4-80GB", device_key="a100-80gb", device_kind="cuda",
                          torch_version="2.5.0", date="2026-12-03T12:00:00+00:00", quick=True, warnings=(),
                          copy_bytes_per_s=1.5e12, gemm=(_gemm(1024, 1e-5), _gemm(4096, 5e-4)))
    path = write_calibration(profile, tmp_path / "a100.toml")
    keyed_error(["infer", "llama-3.2-1b", "--gpu", "h100", "--calibration", str(path)], "error.core.calibration_device")
    assert main(["infer", "llama-3.2-1b", "--gpu", "h100", "--calibration", str(path), "--lang", "zh"]) == 2
    said = capsys.readouterr().err
    assert "请传入 --gpu a100-80gb（或在那台机器上用 --gpu local）" in said  # the fix inside is said in Chinese too
