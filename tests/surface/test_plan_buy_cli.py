"""``suanli plan buy``: the --json contract (DESIGN.md §5), agreement with ``fit`` and ``train``, and one-line
errors."""

from __future__ import annotations

import pytest
from tests.surface.cli_helpers import assert_one_line_error, run, run_json

TRAIN = ("plan", "buy", "--budget-usd", "400000", "--train", "llama-3.1-8b", "--gpu", "h100,4090", "--tokens", "1e10")
ROW_KEYS = ("option", "gpu", "count", "capex_usd", "usd_per_year", "break_even_months", "fits", "total_usd",
            "within_budget", "job")


def test_json_contract_for_training(capsys: pytest.CaptureFixture[str]) -> None:
    p = run_json(capsys, *TRAIN)
    rows = p["rows"]
    assert {(r["option"], r["gpu"]) for r in rows} == {("buy", "h100-sxm-80gb"), ("rent", "h100-sxm-80gb"),
                                                      ("buy", "rtx-4090-24gb"), ("rent", "rtx-4090-24gb")}
    for row in rows:
        for key in ROW_KEYS:
            assert key in row, key
        assert row["fits"] and row["job"]["job_s"] > 0
    totals = [r["total_usd"] for r in rows]
    assert totals == sorted(totals)
    assert p["best"] == rows[0] and p["verdict"].startswith("over 3 years")
    buy = next(r for r in rows if r["option"] == "buy" and r["gpu"] == "h100-sxm-80gb")
    assert buy["count"] % 8 == 0 and buy["capex_usd"] == buy["purchase"]["usd"] * buy["count"] / 8
    assert buy["total_usd"] == pytest.approx(buy["capex_usd"] + 3 * buy["usd_per_year"])
    saving = buy["rent_usd_per_year"] - buy["usd_per_year"]
    assert buy["break_even_months"] == pytest.approx(12 * buy["capex_usd"] / saving)
    assert buy["purchase"]["source"] and buy["purchase"]["date"]
    rent = next(r for r in rows if r["option"] == "rent" and r["gpu"] == "h100-sxm-80gb")
    assert rent["capex_usd"] == 0 and rent["break_even_months"] is None
    assert rent["usd_per_year"] == pytest.approx(rent["count"] * 8766 * rent["rent"]["usd_per_gpu_hour"])


def test_counts_come_from_fit(capsys: pytest.CaptureFixture[str]) -> None:
    rows = run_json(capsys, *TRAIN)["rows"]
    fit = {r["gpu"]: r["min_gpus"] for r in run_json(capsys, "fit", "llama-3.1-8b", "--mode", "train")["rows"]}
    for row in rows:
        assert row["min_gpus"] == fit[row["gpu"]]


def test_training_time_is_trains_at_the_fit_layout(capsys: pytest.CaptureFixture[str]) -> None:
    rent = next(r for r in run_json(capsys, *TRAIN)["rows"] if r["option"] == "rent" and r["gpu"] == "h100-sxm-80gb")
    zero = ["--zero=3"] if rent["count"] > 1 else []
    recompute = rent["job"]["layout"].rsplit(" ", 1)[-1]
    train = run_json(capsys, "train", "llama-3.1-8b", "--gpu", "h100", f"--gpus={rent['count']}", *zero,
                     f"--recompute={recompute}", "--seq=2048", "--tokens=1e10")
    assert train["time"]["total_s"] == pytest.approx(rent["job"]["job_s"])


def test_serving_sizes_replicas_for_the_rate(capsys: pytest.CaptureFixture[str]) -> None:
    p = run_json(capsys, "plan", "buy", "--budget-usd", "1e6", "--serve", "llama-3.1-8b", "--gpu", "h100",
                 "--rate", "60", "--prompt", "1000", "--output", "200", "--utilization", "0.5")
    for row in p["rows"]:
        job = row["job"]
        assert job["serves_rate"] is True and job["requests_per_s"] >= 60
        assert row["count"] == row["min_gpus"] * job["replicas"] or row["option"] == "buy"
    assert p["utilization"] == 0.5


def test_text_table_and_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *TRAIN)
    assert code == 0, err
    assert "verdict: over 3 years" in out and "break-even" in out and "Thinkmate" in out


def test_budget_that_buys_nothing_names_the_cheapest(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "buy", "--budget-usd", "100", "--train", "llama-3.1-8b", "--gpu", "h100")
    assert_one_line_error(code, out, err, "buys nothing that fits", "8× h100-sxm-80gb", "--budget-usd", "rent")


@pytest.mark.parametrize(("flag", "value"), [("--years", "0"), ("--years", "-2"), ("--budget-usd", "0"),
                                             ("--usd-per-kwh", "-0.1"), ("--utilization", "1.5")])
def test_non_positive_inputs_exit_2(capsys: pytest.CaptureFixture[str], flag: str, value: str) -> None:
    args = ["plan", "buy", "--budget-usd", "1e6", "--train", "gpt2", flag, value]
    code, out, err = run(capsys, *args)
    assert_one_line_error(code, out, err, flag)


def test_mixed_job_options_and_unknown_gpu_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "buy", "--budget-usd", "1e6", "--train", "gpt2", "--rate", "3")
    assert_one_line_error(code, out, err, "--serve")
    code, out, err = run(capsys, "plan", "buy", "--budget-usd", "1e6", "--serve", "gpt2", "--tokens", "1e9")
    assert_one_line_error(code, out, err, "--train")
    code, out, err = run(capsys, "plan", "buy", "--budget-usd", "1e6", "--train", "gpt2", "--gpu", "h1000")
    assert_one_line_error(code, out, err, "h1000")
    code, out, err = run(capsys, "plan", "buy", "--budget-usd", "1e6")
    assert code == 2 and "--train" in err


def test_parts_without_the_training_format_are_left_out(capsys: pytest.CaptureFixture[str]) -> None:
    rows = run_json(capsys, "plan", "buy", "--budget-usd", "1e6", "--train", "llama-3.1-8b", "--precision", "fp8",
                    "--gpu", "a100-80gb,h100")["rows"]
    assert {r["gpu"] for r in rows} == {"h100-sxm-80gb"}  # the A100 has no fp8 tensor path


def test_unpriced_gpu_names_the_priced_ones(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "buy", "--budget-usd", "1e6", "--train", "gpt2", "--gpu", "tpu-v5p")
    assert_one_line_error(code, out, err, "no purchase or on-demand rental price for tpu-v5p", "h100-sxm-80gb")


def test_user_prices_replace_the_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    rows = run_json(capsys, "plan", "buy", "--budget-usd", "1e6", "--train", "llama-3.1-8b", "--gpu", "h100,mi300x",
                    "--purchase-usd", "h100=30000,mi300x=15000")["rows"]
    buys = {r["gpu"]: r for r in rows if r["option"] == "buy"}
    assert buys["h100-sxm-80gb"]["capex_usd"] == 30000 * buys["h100-sxm-80gb"]["count"]  # per GPU, not per server
    assert buys["mi300x-192gb"]["purchase"]["kind"] == "user"  # a part the catalog does not price
    code, out, err = run(capsys, "plan", "buy", "--budget-usd", "1e6", "--train", "gpt2", "--purchase-usd", "h100=x")
    assert_one_line_error(code, out, err, "--purchase-usd")


def test_gpu_list_naming_none_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "buy", "--budget-usd", "1e6", "--train", "gpt2", "--gpu", ",")
    assert_one_line_error(code, out, err, "name at least one accelerator", "--gpu h100")
