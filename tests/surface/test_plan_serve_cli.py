"""``suanli plan serve``: the --json contract (DESIGN.md §5) and one-line errors."""

from __future__ import annotations

import pytest
from tests.surface.cli_helpers import assert_one_line_error, run, run_json

ARGS = ("plan", "serve", "llama-3.1-8b", "--gpu", "h100", "--rate", "10", "--prompt", "512", "--output", "128")


def test_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    p = run_json(capsys, *ARGS, "--slo-ttft-ms", "1000", "--slo-tpot-ms", "50")
    best = p["best"]
    for key in ("gpu", "gpus", "tp", "ep", "replicas", "pd", "usd_per_hour", "latency", "throughput"):
        assert key in best
    assert best["latency"]["ttft_s"]["p90"] <= 1.0 and best["latency"]["tpot_s"]["p90"] <= 0.05
    assert p["evaluated"] > 0 and isinstance(p["rejected"], dict)


def test_impossible_targets(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *ARGS, "--slo-ttft-ms", "1000", "--slo-tpot-ms", "0.01")
    assert_one_line_error(code, out, err, "no deployment", "relax a target")


def test_targets_are_required(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, *ARGS)
    assert code == 2 and "--slo-ttft-ms" in err


def test_export_the_best_plan(capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "serve"
    p = run_json(capsys, *ARGS, "--slo-ttft-ms", "1000", "--slo-tpot-ms", "50", "--export", "vllm", str(out))
    launch = (out / "launch.sh").read_text()
    assert "vllm serve" in launch and f"--tensor-parallel-size {p['best']['tp']}" in launch
    assert p["export"]["target"] == "vllm"
