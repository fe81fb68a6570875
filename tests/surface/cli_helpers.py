"""Running the CLI in-process for surface tests: exit code, stdout, stderr, parsed JSON, one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from suanli.cli.main import main

#: The ``keyed_error(argv, key)`` fixture of tests/conftest.py: runs a failing command, returns its error.
KeyedError = Callable[[list[str], str], Exception]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``suanli ARGV`` in this process; argparse's --help and usage errors arrive as SystemExit."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    """``suanli ARGV --json``, which must succeed and print exactly one JSON object."""
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    payload: dict[str, Any] = json.loads(out)
    return payload


def assert_one_line_error(code: int, out: str, err: str, *fragments: str) -> None:
    """Bad input: exit 2, nothing on stdout, one line on stderr naming the problem, no traceback."""
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("suanli: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
