"""``suanli plan train``: the --json contract (DESIGN.md §5), equality with ``suanli train`` at the chosen layout,
and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.surface.cli_helpers import assert_one_line_error, run, run_json

ARGS = ("plan", "train", "llama-3.1-8b", "--gpu", "h100", "--tokens", "1e10", "--max-gpus", "16", "--seq", "2048",
        "--global-batch", "64")
TRAIN_KEYS = ("memory", "time", "cost", "layout", "gpu", "gpus")
LAYOUT_KEYS = ("tp", "pp", "dp", "cp", "ep", "vp", "zero", "micro_batch", "recompute")


def test_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    p = run_json(capsys, *ARGS)
    best = p["best"]
    for key in TRAIN_KEYS:
        assert key in best
    for key in LAYOUT_KEYS:
        assert key in best["layout"]
    assert best["memory"]["fits"] and best["memory"]["per_gpu"]["total_bytes"] > 0
    assert best["time"]["total_s"] > 0 and best["cost"]["usd"] > 0 and best["cost"]["energy_kwh"] > 0
    assert p["candidates"][0] == best and len(p["candidates"]) <= 10
    assert isinstance(p["rejected"], dict) and p["evaluated"] == p["feasible"] + sum(p["rejected"].values())
    totals = [c["time"]["total_s"] for c in p["candidates"]]
    assert totals == sorted(totals)
    assert p["pareto"][0]["total_s"] == best["time"]["total_s"]


def test_best_equals_train_at_that_layout(capsys: pytest.CaptureFixture[str]) -> None:
    best = run_json(capsys, *ARGS)["best"]
    lay = best["layout"]
    flags = [f"--{k}={lay[k]}" for k in ("tp", "pp", "dp", "cp", "ep", "vp", "zero", "recompute")]
    flags += [f"--micro-batch={lay['micro_batch']}", "--global-batch=64", "--seq=2048", "--tokens=1e10",
              f"--offload-optimizer={lay['offload_optimizer']}", f"--offload-params={lay['offload_params']}"]
    if lay["sp"]:
        flags.append("--sp")
    train = run_json(capsys, "train", "llama-3.1-8b", "--gpu", "h100", f"--gpus={best['gpus']}", *flags)
    assert train["time"]["total_s"] == best["time"]["total_s"]
    assert train["cost"]["usd"] == best["cost"]["usd"]
    assert train["memory"]["per_gpu"]["total_bytes"] == best["memory"]["per_gpu"]["total_bytes"]
    assert set(train) == set(best)  # the same keys as `train --json`


def test_text_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *ARGS)
    assert code == 0, err
    assert "best" in out and "rejected" in out and "Pareto" in out


def test_unknown_objective(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *ARGS, "--objective", "speed")
    assert_one_line_error(code, out, err, "unknown objective 'speed'", "time, cost or energy")


def test_impossible_deadline_names_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *ARGS, "--deadline-days", "0.001")
    assert_one_line_error(code, out, err, "no layout meets a deadline of 0.001 days", "the closest is 16×")


def test_impossible_budget_names_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *ARGS, "--budget-usd", "1")
    assert_one_line_error(code, out, err, "no layout meets a budget of $1", "the closest is")


def test_no_gpu_count_fits(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "train", "llama-3.1-405b", "--gpu", "h100", "--tokens", "1e10",
                         "--max-gpus", "2", "--seq", "2048", "--global-batch", "8")
    assert_one_line_error(code, out, err, "no layout of llama-3.1-405b fits on up to 2", "raise --max-gpus")


def test_unknown_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, *ARGS[:3], "--gpu", "h100,nosuchgpu", *ARGS[5:])
    assert code == 2 and "nosuchgpu" in err and err.count("\n") == 1


def test_tokens_required(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "plan", "train", "llama-3.1-8b", "--gpu", "h100")
    assert code == 2 and "--tokens" in err


def test_offload_only_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    """405B on two H100s: nothing fits without offload; with --search-offload and a host holding its share of the
    states (16 bytes × 405.9B / 2 ≈ 3.2 TB per GPU) ZeRO-Infinity-style offload of the parameters too is the answer."""
    args = ("plan", "train", "llama-3.1-405b", "--gpu", "h100", "--tokens", "1e10", "--max-gpus", "2", "--seq", "2048",
            "--global-batch", "8")
    code, _, err = run(capsys, *args)
    assert code == 2 and "no layout" in err
    best = run_json(capsys, *args, "--search-offload", "--host-memory-gb", "4000")["best"]
    assert best["layout"]["offload_params"] == "cpu" and best["layout"]["zero"] == 3


def test_absurd_cluster_size(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *ARGS[:-6], "--max-gpus", "1e8")
    assert_one_line_error(code, out, err, "--max-gpus is 100,000,000 GPUs", "sanity limit")


def test_cost_objective_without_a_price(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "train", "qwen2.5-0.5b", "--gpu", "m3-max", "--tokens", "1e9",
                         "--max-gpus", "1", "--objective", "cost")
    assert_one_line_error(code, out, err, "no price for m3-max", "--price")


def test_plan_train_exports_its_best_layout(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """16 H100s for an 8B model: the best layout is data-parallel only, which DeepSpeed expresses, so
    the export must be written and its ZeRO stage must be the plan's."""
    out = tmp_path / "ds"
    payload = run_json(capsys, "plan", "train", "llama-3.1-8b", "--gpu", "h100", "--max-gpus", "16", "--tokens", "1e11",
                       "--export", "deepspeed", str(out))
    layout = payload["best"]["layout"]
    assert (layout["tp"], layout["pp"], layout["cp"], layout["ep"]) == (1, 1, 1, 1)
    assert payload["export"]["target"] == "deepspeed" and payload["export"]["files"] == ["ds_config.json", "launch.sh"]
    config = json.loads((out / "ds_config.json").read_text())
    assert config["zero_optimization"]["stage"] == layout["zero"]


def test_plan_train_unknown_export_target(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "x"
    code, stdout, err = run(capsys, *ARGS, "--export", "nemo", str(out))
    assert_one_line_error(code, stdout, err, "unknown --export target 'nemo'", "deepspeed")
    assert not out.exists()


def test_gpu_list_naming_none_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *ARGS[:3], "--gpu", " , ", *ARGS[5:])
    assert_one_line_error(code, out, err, "name at least one accelerator", "--gpu h100")
