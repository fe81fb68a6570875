"""MODEL inputs through the CLI: a transformers-5 config.json, an unknown model_type (closest families, --as), and
``--as FAMILY`` on every command that takes MODEL (approximate in text and in --json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.surface.cli_helpers import assert_one_line_error, run, run_json

from suanli.spec.resolve import catalog_config, find_catalog_model


def _catalog(name: str) -> dict[str, Any]:
    entry = find_catalog_model(name)
    assert entry is not None
    return catalog_config(entry)


def _write(tmp_path: Path, config: dict[str, Any]) -> str:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return str(path)


@pytest.fixture
def unknown_llama(tmp_path: Path) -> str:
    """Llama 3.2 1B under a model_type no adapter knows."""
    return _write(tmp_path, {**_catalog("llama-3.2-1b"), "model_type": "my_llama",
                             "architectures": ["MyLlamaForCausalLM"]})


def test_transformers5_qwen3_moe_file_loads(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Keys as transformers 5's save_pretrained writes them for Qwen3-MoE (num_local_experts, dtype,
    rope_parameters): the same counts as the bundled transformers-4 file."""
    old = _catalog("qwen3-30b-a3b")
    new = {k: v for k, v in old.items() if k not in ("num_experts", "torch_dtype", "rope_theta", "rope_scaling")}
    new.update(num_local_experts=old["num_experts"], dtype=old["torch_dtype"],
               rope_parameters={"rope_theta": old["rope_theta"], "rope_type": "default"})
    ours = run_json(capsys, "params", _write(tmp_path, new))
    reference = run_json(capsys, "params", "qwen3-30b-a3b")
    assert (ours["total_params"], ours["active_params"]) == (reference["total_params"], reference["active_params"])
    assert ours["approximate"] is False


def test_unknown_model_type_lists_closest_and_as(capsys: pytest.CaptureFixture[str], unknown_llama: str) -> None:
    assert_one_line_error(*run(capsys, "params", unknown_llama), "'my_llama'", "closest supported families: llama",
                          "--as llama")


def test_as_llama_text_says_approximate(capsys: pytest.CaptureFixture[str], unknown_llama: str) -> None:
    code, out, err = run(capsys, "params", unknown_llama, "--as", "llama")
    assert code == 0, err
    assert "note: approximate: a 'my_llama' config read as a standard llama decoder" in out
    assert "1,235,814,400" in out  # Llama 3.2 1B, tied embeddings


@pytest.mark.parametrize("command", [["params"], ["flops", "--seq", "128"], ["train", "--gpu", "h100"],
                                     ["infer", "--gpu", "h100"], ["fit"]])
def test_as_llama_json_is_marked_approximate(capsys: pytest.CaptureFixture[str], unknown_llama: str,
                                             command: list[str]) -> None:
    payload = run_json(capsys, command[0], unknown_llama, "--as", "llama", *command[1:])
    assert payload["approximate"] is True
    assert "--as llama" in payload["approximate_reason"] and "my_llama" in payload["approximate_reason"]


def test_exact_reports_say_not_approximate(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_json(capsys, "flops", "llama-3.2-1b", "--seq", "128")["approximate"] is False


def test_as_unknown_family(capsys: pytest.CaptureFixture[str], unknown_llama: str) -> None:
    assert_one_line_error(*run(capsys, "params", unknown_llama, "--as", "lama"), "did you mean llama")
