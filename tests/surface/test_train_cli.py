"""`suanli train`: DESIGN.md §5 keys, and impossible layouts exit 2 with the numbers and a fix."""

from __future__ import annotations

import pytest
from tests.surface.cli_helpers import run, run_json


def test_design_keys(capsys: pytest.CaptureFixture[str]) -> None:
    payload = run_json(capsys, "train", "llama-3.1-8b", "--gpu", "h100", "--gpus", "8", "--zero", "3", "--seq", "4096")
    per_gpu = payload["memory"]["per_gpu"]
    for key in ("total_bytes", "activations_bytes", "weights_bytes", "gradients_bytes", "optimizer_bytes"):
        assert per_gpu[key] >= 0
    assert payload["memory"]["fits"] is (per_gpu["total_bytes"] <= payload["memory"]["capacity_bytes"])
    assert payload["layout"]["dp"] == 8


def test_does_not_fit_proposes_changes(capsys: pytest.CaptureFixture[str]) -> None:
    payload = run_json(capsys, "train", "llama-3.1-70b", "--gpu", "a100-80gb", "--seq", "4096")
    assert payload["memory"]["fits"] is False
    suggestions = payload["memory"]["suggestions"]
    assert suggestions and all(s["total_bytes"] <= payload["memory"]["capacity_bytes"] for s in suggestions)


def test_qlora_70b_fits_one_80gb_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    """QLoRA's headline: a 65–70B model fine-tuned on one 48–80 GB GPU (Dettmers et al. 2023)."""
    payload = run_json(capsys, "train", "llama-3.1-70b", "--gpu", "a100-80gb", "--method", "qlora", "--seq", "512",
                         "--recompute", "full")
    assert payload["memory"]["fits"] is True
    assert payload["job"]["optimizer"] == "paged-adamw-8bit"


def test_framework_sets_precision_mode(capsys: pytest.CaptureFixture[str]) -> None:
    megatron = run_json(capsys, "train", "gpt2", "--gpu", "h100", "--framework", "megatron")
    hf = run_json(capsys, "train", "gpt2", "--gpu", "h100", "--framework", "hf")
    assert megatron["job"]["precision"] == "mixed-bf16-fp32-grads"
    assert hf["job"]["precision"] == "amp-bf16"


@pytest.mark.parametrize(("args", "fragments"), [
    (["--tp", "3"], ["num_attention_heads (32) is not divisible by tp (3)", "use tp in"]),
    (["--pp", "64"], ["exceeds the 32 layers"]),
    (["--ep", "2", "--gpus", "2"], ["dense"]),
    (["--gpus", "6", "--tp", "4"], ["not a multiple of tp × pp × cp = 4"]),
    (["--gpus", "8", "--dp", "3"], ["must equal tp × pp × dp × cp"]),
    (["--gpus", "8", "--global-batch", "12"], ["global batch 12 is not a multiple"]),
    (["--seq", "0"], ["--seq"]),
    (["--gpu", "h1000"], ["h1000"]),
    (["--offload-params", "cpu"], ["ZeRO-3"]),
])
def test_impossible_layouts_exit_2(capsys: pytest.CaptureFixture[str], args: list[str], fragments: list[str]) -> None:
    argv = ["train", "llama-3.1-8b", *(["--gpu", "h100"] if "--gpu" not in args else []), *args]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


def test_moe_expert_parallel(capsys: pytest.CaptureFixture[str]) -> None:
    one = run_json(capsys, "train", "mixtral-8x7b", "--gpu", "h100", "--gpus", "8", "--zero", "1")
    ep = run_json(capsys, "train", "mixtral-8x7b", "--gpu", "h100", "--gpus", "8", "--zero", "1", "--ep", "8")
    assert ep["memory"]["per_gpu"]["weights_bytes"] < one["memory"]["per_gpu"]["weights_bytes"] / 4


def test_rl_and_distillation(capsys: pytest.CaptureFixture[str]) -> None:
    ppo = run_json(capsys, "train", "llama-3.1-8b", "--gpu", "h100", "--gpus", "8", "--zero", "3", "--rl", "ppo",
                   "--reward-model", "llama-3.2-1b")
    per_gpu = ppo["memory"]["per_gpu"]
    assert {"reference_bytes", "reward_model_bytes", "critic_states_bytes"} <= set(per_gpu)
    assert per_gpu["total_bytes"] > per_gpu["weights_bytes"] + per_gpu["reference_bytes"]
    assert ppo["job"]["seq"] == 512 + 1024
    distill = run_json(capsys, "train", "llama-3.2-1b", "--gpu", "h100", "--teacher", "llama-3.1-8b")
    assert distill["memory"]["per_gpu"]["teacher_weights_bytes"] > 15e9


@pytest.mark.parametrize(("args", "fragment"), [
    (["--group-size", "8"], "need --rl"),
    (["--rl", "ppo", "--group-size", "8"], "applies to GRPO"),
    (["--rl", "grpo", "--teacher", "gpt2"], "not both"),
    (["--teacher", "gpt2"], "vocabulary"),
])
def test_bad_rl_input(capsys: pytest.CaptureFixture[str], args: list[str], fragment: str) -> None:
    code, out, err = run(capsys, "train", "llama-3.1-8b", "--gpu", "h100", *args)
    assert code == 2 and out == "" and fragment in err and err.count("\n") == 1


def test_run_time_cost_and_energy(capsys: pytest.CaptureFixture[str]) -> None:
    payload = run_json(capsys, "train", "llama-3.1-8b", "--gpu", "h100", "--gpus", "8", "--zero", "1",
                       "--seq", "4096", "--global-batch", "64", "--tokens", "1e10", "--price", "2.0",
                       "--pue", "1.2", "--grid-co2", "0.4")
    time, cost = payload["time"], payload["cost"]
    for key in ("step_s", "tokens_per_s", "mfu", "tflops_per_gpu", "total_s"):
        assert time[key] > 0
    assert time["total_s"] == pytest.approx(1e10 / time["tokens_per_s"])
    assert cost["gpu_hours"] == pytest.approx(8 * time["total_s"] / 3600)
    assert cost["usd"] == pytest.approx(2.0 * cost["gpu_hours"])
    assert cost["energy_kwh"] == pytest.approx(cost["gpu_hours"] * cost["power_per_gpu_w"] / 1000 * 1.2)
    assert cost["co2_kg"] == pytest.approx(0.4 * cost["energy_kwh"])


def test_unpriced_gpu_is_a_note_not_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    payload = run_json(capsys, "train", "gpt2", "--gpu", "v100", "--tokens", "1e9")
    assert payload["cost"]["usd"] is None
    assert any("--price" in note for note in payload["notes"])


def test_cost_options_need_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "train", "gpt2", "--gpu", "h100", "--price", "2")
    assert code == 2 and out == "" and "--tokens" in err
