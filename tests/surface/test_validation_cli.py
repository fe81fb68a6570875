"""Nonsense input ends in exit 2 with one line naming the limit and the fix; hardware that cannot run a format,
engine or method is refused unless --force, which then says which check it overrode; the catalog's Cambricon
and Groq parts say what they can run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from tests.surface.cli_helpers import assert_one_line_error, run, run_json

from suanli.spec.resolve import load_model
from suanli.spec.support import max_context_tokens

CATALOG = Path(__file__).parents[2] / "src" / "suanli" / "catalog" / "models"


def _config(tmp_path: Path, base: str, **changes: Any) -> str:
    config = json.loads((CATALOG / f"{base}.json").read_text(encoding="utf-8"))
    config.update(changes)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return str(path)


# ---- sizes beyond anything real --------------------------------------------------------------------------


def test_a_trillion_layers_is_refused_not_a_memory_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = _config(tmp_path, "llama-3.1-8b", num_hidden_layers=10**12)
    assert_one_line_error(*run(capsys, "params", path), "'num_hidden_layers' is 1,000,000,000,000", "100,000")


def test_a_hidden_size_of_1e15_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = _config(tmp_path, "llama-3.1-8b", hidden_size=10**15)
    assert_one_line_error(*run(capsys, "params", path), "'hidden_size'", "1,000,000")


def test_a_billion_gpus_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line_error(*run(capsys, "train", "llama-3.1-8b", "--gpu", "h100", "--gpus", "1e9"),
                          "1,000,000,000 GPUs", "10,000,000")


# ---- context length -------------------------------------------------------------------------------------


def test_prompt_beyond_the_context_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "infer", "llama-3.1-8b", "--gpu", "h100", "--prompt", "200000", "--output", "10")
    assert_one_line_error(code, out, err, "200,010 tokens", "131,072-token context", "--force")


def test_sliding_windows_do_not_lift_the_max_position(capsys: pytest.CaptureFixture[str]) -> None:
    """Mistral 7B v0.1 attends within 4,096-token windows but its positions stop at 32,768."""
    code, out, err = run(capsys, "infer", "mistral-7b-v0.1", "--gpu", "h100", "--prompt", "40000", "--output", "1")
    assert_one_line_error(code, out, err, "32,768-token context")


def test_yarn_extends_the_context(tmp_path: Path) -> None:
    """Qwen2.5's model card adds YaRN factor 4 over 32,768 original positions: 131,072 tokens."""
    path = _config(tmp_path, "qwen2.5-7b", max_position_embeddings=32768,
                   rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768})
    assert max_context_tokens(load_model(path)) == 4 * 32768
    assert max_context_tokens(load_model("gemma-3-27b")) == 131072  # a bare linear factor is already inside


# ---- contradictory or impossible layouts ----------------------------------------------------------------


@pytest.mark.parametrize(("argv", "fragments"), [
    (["train", "llama-3.1-8b", "--gpu", "h100", "--gpus", "8", "--fsdp", "full-shard", "--zero", "1"],
     ["--fsdp full-shard is ZeRO-3", "--zero 1"]),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--gpus", "8", "--pp", "2", "--vp", "3"],
     ["num_layers (32) divisible by pp × vp = 2 × 3", "use vp in {1, 2, 4, 8, 16}"]),
    (["infer", "llama-3.1-8b", "--gpu", "h100", "--gpus", "2", "--ep", "2"], ["--ep 2", "dense"]),
    (["gpus", "--format", "nonsense"], ["unknown number format 'nonsense'", "bf16"]),
    (["gpus", "--vendor", "nvdia"], ["unknown vendor 'nvdia'", "did you mean nvidia"]),
    (["fit", "llama-3.1-8b", "--vendor", "nvdia"], ["did you mean nvidia"]),
])
def test_contradictions_are_one_line_errors(capsys: pytest.CaptureFixture[str], argv: list[str],
                                            fragments: list[str]) -> None:
    assert_one_line_error(*run(capsys, *argv), *fragments)


# ---- what the hardware runs ------------------------------------------------------------------------------


@pytest.mark.parametrize(("argv", "fragments"), [
    (["train", "llama-3.1-8b", "--gpu", "v100", "--precision", "bf16"], ["no bf16", "--precision fp16"]),
    (["train", "llama-3.1-8b", "--gpu", "a100", "--precision", "fp8"], ["no fp8", "h100"]),
    (["infer", "llama-3.1-8b", "--gpu", "t4", "--quant", "fp8"], ["neither fp8", "T4"]),
    (["infer", "llama-3.1-8b", "--gpu", "v100", "--quant", "bf16"], ["cannot compute in bf16", "--quant fp16"]),
    (["infer", "deepseek-v3", "--gpu", "v100", "--gpus", "8"], ["V100", "fp8-block"]),  # the checkpoint's fp8
    (["infer", "llama-3.1-8b", "--gpu", "tpu-v5p", "--engine", "trtllm"],
     ["TensorRT-LLM does not run on Google TPU v5p", "--engine vllm"]),
    (["train", "llama-3.1-8b", "--gpu", "tpu-v5p", "--method", "qlora"], ["bitsandbytes", "--method lora"]),
    (["train", "llama-3.1-8b", "--gpu", "mlu370-x8", "--method", "qlora"], ["bitsandbytes"]),
    (["infer", "llama-3.1-8b", "--gpu", "mlu370-x8", "--engine", "sglang"], ["SGLang does not run", "vllm"]),
    (["infer", "llama-3.1-8b", "--gpu", "groq"], ["does not run on Groq", "no catalogued engine"]),
    (["train", "llama-3.1-8b", "--gpu", "groq"], ["inference-only"]),
])
def test_hardware_that_cannot_run_it_is_refused(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                fragments: list[str]) -> None:
    assert_one_line_error(*run(capsys, *argv), *fragments, "--force")


def test_force_runs_and_says_which_check_it_overrode(capsys: pytest.CaptureFixture[str]) -> None:
    payload = run_json(capsys, "train", "llama-3.1-8b", "--gpu", "a100", "--precision", "fp8", "--force")
    assert len(payload["forced_checks"]) == 1 and "number-format" in payload["forced_checks"][0]
    assert payload["notes"][0] == payload["forced_checks"][0]
    code, out, _ = run(capsys, "infer", "llama-3.1-8b", "--gpu", "h100", "--prompt", "200000", "--force")
    assert code == 0 and "note: forced past the context-length check" in out


def test_defaults_follow_the_hardware_and_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    """V100 has no bf16, so the default is fp16; GPT-2's learned positions stop at 1,024 tokens."""
    payload = run_json(capsys, "train", "gpt2", "--gpu", "v100")
    assert payload["job"]["precision"] == "mixed-fp16"
    assert payload["job"]["seq"] == 1024


def test_vllm_runs_on_cambricon_through_its_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    payload = run_json(capsys, "infer", "llama-3.1-8b", "--gpu", "mlu370-x8")
    assert payload["gpu"] == "mlu370-x8-48gb" and payload["memory"]["fits"] is True


def test_fit_spreads_weights_over_groq_sram(capsys: pytest.CaptureFixture[str]) -> None:
    """Llama 3.1 8B in bf16: 8,030,261,248 params × 2 B over 220 MiB of SRAM per chip = 69.6 → 70 chips."""
    rows = {row["gpu"]: row for row in run_json(capsys, "fit", "llama-3.1-8b")["rows"]}
    groq = rows["groq-lpu"]
    assert groq["min_gpus"] == math.ceil(8_030_261_248 * 2 / (220 * 2**20)) == 70
    assert "SRAM" in groq["note"] and "weights" in groq["note"]
    assert rows["mlu370-x8-48gb"]["min_gpus"] == 1
    trained = {row["gpu"]: row for row in run_json(capsys, "fit", "llama-3.1-8b", "--mode", "train")["rows"]}
    assert trained["groq-lpu"]["min_gpus"] is None and "inference-only" in trained["groq-lpu"]["note"]
