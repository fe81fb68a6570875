"""The command-line contract (DESIGN.md §5): help, --json keys, and exit 2 with one line on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.surface.cli_helpers import assert_one_line_error, run, run_json

from suanli.spec.resolve import model_catalog


@pytest.mark.parametrize("command", [[], ["models"], ["params"], ["flops"], ["gpus"], ["train"], ["infer"], ["fit"],
                                     ["simulate"], ["plan"], ["plan", "train"], ["plan", "serve"], ["plan", "buy"],
                                     ["roofline"], ["web"], ["probe"], ["bench"], ["measure"], ["explain"]])
def test_help(capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0
    assert "usage: suanli" in out


def test_entry_point_runs_as_module() -> None:
    result = subprocess.run([sys.executable, "-m", "suanli", "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert "params" in result.stdout


def test_params_json_keys(capsys: pytest.CaptureFixture[str]) -> None:
    payload = run_json(capsys, "params", "llama-3.1-8b")
    assert payload["total_params"] == 8_030_261_248
    assert payload["active_params"] == 8_030_261_248
    assert payload["embedding_params"] == 128_256 * 4096
    assert sum(payload["components_params"].values()) == payload["total_params"]


def test_params_moe_active(capsys: pytest.CaptureFixture[str]) -> None:
    payload = run_json(capsys, "params", "Mixtral-8x7B")
    assert payload["total_params"] == 46_702_792_704
    # 32 layers × (8 − 2) idle experts × 3·4096·14336 weights
    assert payload["total_params"] - payload["active_params"] == 32 * 6 * 3 * 4096 * 14336


def test_flops_json_keys(capsys: pytest.CaptureFixture[str]) -> None:
    payload = run_json(capsys, "flops", "llama-3.1-8b", "--seq", "2048", "--batch", "2")
    assert payload["tokens"] == 4096
    assert payload["backward_flops"] == 2 * payload["forward_flops"]
    assert payload["training_flops"] == payload["forward_flops"] + payload["backward_flops"]


def test_params_explain_shows_formula(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "params", "llama-3.1-8b", "--explain")
    assert code == 0
    assert "total_params = " in out and "vocab_size × hidden_size = 128,256 × 4,096" in out


def test_models_lists_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    payload = run_json(capsys, "models")
    assert len(payload["models"]) == len(model_catalog()) >= 40


@pytest.mark.parametrize("key", [entry.key for entry in model_catalog()])
def test_every_catalog_model_through_cli(capsys: pytest.CaptureFixture[str], key: str) -> None:
    payload = run_json(capsys, "params", key)
    assert payload["total_params"] >= payload["active_params"] > 0
    flops = run_json(capsys, "flops", key, "--seq", "128")
    assert flops["forward_flops"] > 0


def test_unknown_model_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line_error(*run(capsys, "params", "llama-3.1-8"), "unknown model", "did you mean")


def test_unknown_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line_error(*run(capsys, "gpus", "h1000"), "h1000")


def test_malformed_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "llama", "hidden_size": 64,')
    assert_one_line_error(*run(capsys, "params", str(path)), "not valid JSON")


def test_config_missing_keys(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    assert_one_line_error(*run(capsys, "params", str(path)), "required key", "is missing")


def test_unsupported_model_type(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "rwkv"}))
    assert_one_line_error(*run(capsys, "params", str(path)), "not supported", "llama")


def test_directory_without_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert_one_line_error(*run(capsys, "params", str(tmp_path)), "no config.json")


def test_negative_size_in_config(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                 tiny_llama: dict[str, Any]) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**tiny_llama, "intermediate_size": -128}))
    assert_one_line_error(*run(capsys, "params", str(path)), "intermediate_size", "positive")


@pytest.mark.parametrize("args", [["--seq", "0"], ["--seq", "-5"], ["--seq", "128", "--batch", "0"],
                                  ["--seq", "abc"], ["--seq", "128", "--tokens", "-1"]])
def test_bad_flops_sizes(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    assert_one_line_error(*run(capsys, "flops", "gpt2", *args))


def test_unknown_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line_error(*run(capsys, "params", "gpt2", "--bogus"), "--bogus")


def test_version_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("suanli ")
