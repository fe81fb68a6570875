"""Inputs the fuzzer (``test_fuzz.py``) once broke suanli with, pinned as plain tests: each must now be refused
with exit 2 and one line (or accepted), never an internal error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.surface.cli_helpers import assert_one_line_error, run


def test_model_type_not_a_string(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                 tiny_llama: dict[str, Any]) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**tiny_llama, "model_type": []}))
    code, out, err = run(capsys, "params", str(path))
    assert_one_line_error(code, out, err, "'model_type' must be a string")


def test_wrong_typed_value_read_by_an_adapter(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from suanli.spec.resolve import catalog_config, find_catalog_model

    entry = find_catalog_model("deepseek-v2")
    assert entry is not None
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**catalog_config(entry), "first_k_dense_replace": "0"}))
    code, out, err = run(capsys, "params", str(path))
    assert_one_line_error(code, out, err, "wrong type", "deepseek_v2")
