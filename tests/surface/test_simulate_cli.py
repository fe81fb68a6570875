"""``suanli simulate``: the --json contract (DESIGN.md §5), the timeline file, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.surface.cli_helpers import assert_one_line_error, run, run_json

QUICK = ("llama-3.1-8b", "--gpu", "h100", "--requests", "40", "--prompt", "512", "--output", "64")


def test_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    p = run_json(capsys, "simulate", *QUICK, "--concurrency", "8", "--slo-ttft-ms", "500", "--slo-tpot-ms", "50")
    for key in ("ttft_s", "tpot_s", "itl_s", "e2e_s"):
        assert set(p["latency"][key]) == {"mean", "p50", "p90", "p99"}
        assert p["latency"][key]["p50"] <= p["latency"][key]["p99"]
    assert p["throughput"]["output_tokens_per_s"] > 0 and p["throughput"]["requests_per_s"] > 0
    assert 0 <= p["goodput"]["requests_per_s"] <= p["throughput"]["requests_per_s"] + 1e-9
    assert 0 < p["kv"]["peak_utilization"] <= 1
    assert 0 < p["batch"]["mean_running"] <= 8 + 1e-9
    assert p["preemptions"] == 0 and p["workload"]["requests"] == 40


@pytest.mark.parametrize("extra", [["--engine", "sglang"], ["--engine", "trtllm"], ["--engine", "hf"],
                                   ["--pd", "1:1"], ["--replicas", "2", "--router", "round-robin"],
                                   ["--rate", "4", "--burstiness", "2"]])
def test_modes_run(capsys: pytest.CaptureFixture[str], extra: list[str]) -> None:
    load = [] if "--rate" in extra else ["--concurrency", "8"]
    p = run_json(capsys, "simulate", *QUICK, *load, *extra)
    assert p["workload"]["requests"] == 40


def test_pd_counts_gpus(capsys: pytest.CaptureFixture[str]) -> None:
    p = run_json(capsys, "simulate", *QUICK, "--concurrency", "8", "--pd", "1:3", "--tp", "2")
    assert p["deployment"]["pd"] == "1:3" and p["deployment"]["gpus"] == 8


def test_timeline_csv(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "steps.csv"
    run_json(capsys, "simulate", *QUICK, "--concurrency", "4", "--timeline", str(out))
    header, *rows = out.read_text().splitlines()
    assert header.split(",")[:3] == ["start_s", "end_s", "steps"] and rows


def test_trace_replay(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_text("\n".join(json.dumps({"arrival_s": i * 0.1, "prompt_tokens": 200, "output_tokens": 20})
                               for i in range(10)))
    p = run_json(capsys, "simulate", "llama-3.1-8b", "--gpu", "h100", "--trace", str(trace))
    assert p["workload"]["requests"] == 10


@pytest.mark.parametrize("argv, words", [
    (["--concurrency", "0"], ["must be at least 1"]),
    (["--rate", "-2"], ["positive"]),
    ([], ["--concurrency C", "--rate QPS"]),
    (["--concurrency", "4", "--pd", "2"], ["PREFILL:DECODE"]),
    (["--concurrency", "4", "--pd", "1:1", "--gpus", "3"], ["--pd 1:1 needs 2 GPUs"]),
    (["--concurrency", "4", "--prompt", "200000"], ["context"]),
    (["--concurrency", "4", "--engine", "llamacpp"], ["invalid choice"]),
    (["--concurrency", "4", "--timeline", "/nonexistent/dir/t.csv"], ["does not exist"]),
    (["--concurrency", "4", "--dataset", "nope"], ["--dataset"]),
    (["--concurrency", "4", "--dataset", "sharegpt"], ["--dataset sharegpt", "azure-conv-2023"]),
])
def test_bad_input(capsys: pytest.CaptureFixture[str], argv: list[str], words: list[str]) -> None:
    code, out, err = run(capsys, "simulate", "llama-3.1-8b", "--gpu", "h100", "--requests", "5", *argv)
    assert_one_line_error(code, out, err, *words)


def test_nothing_half_written(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "t.csv"
    code, _, _ = run(capsys, "simulate", "llama-3.1-8b", "--gpu", "h100", "--concurrency", "2", "--prompt", "200000",
                     "--timeline", str(out))
    assert code == 2 and not out.exists()


def test_speculative_decoding_cuts_tpot(capsys: pytest.CaptureFixture[str]) -> None:
    base = run_json(capsys, "simulate", *QUICK, "--concurrency", "2")
    drafted = run_json(capsys, "simulate", *QUICK, "--concurrency", "2", "--speculative-model", "llama-3.2-1b",
                       "--num-speculative-tokens", "3", "--acceptance-rate", "0.7")
    mtp = run_json(capsys, "simulate", *QUICK, "--concurrency", "2", "--speculative-mtp")
    assert drafted["latency"]["tpot_s"]["mean"] < base["latency"]["tpot_s"]["mean"]
    assert mtp["latency"]["tpot_s"]["mean"] < base["latency"]["tpot_s"]["mean"]


@pytest.mark.parametrize("argv, words", [
    (["--speculative-model", "llama-3.2-1b"], ["--acceptance-rate"]),
    (["--speculative-mtp", "--acceptance-rate", "1.5"], ["[0, 1]"]),
    (["--speculative-model", "gpt2", "--num-speculative-tokens", "3", "--acceptance-rate", "0.5"], ["tokenizer"]),
    (["--acceptance-rate", "0.5"], ["need --speculative-model"]),
])
def test_speculative_bad_input(capsys: pytest.CaptureFixture[str], argv: list[str], words: list[str]) -> None:
    code, out, err = run(capsys, "simulate", *QUICK, "--concurrency", "2", *argv)
    assert_one_line_error(code, out, err, *words)


def test_concurrency_sweep(capsys: pytest.CaptureFixture[str]) -> None:
    p = run_json(capsys, "simulate", *QUICK, "--concurrency", "1,4,16")
    assert p["swept"] == "concurrency"
    points = p["sweep"]
    assert [q["workload"]["concurrency"] for q in points] == [1, 4, 16]
    throughput = [q["throughput"]["output_tokens_per_s"] for q in points]
    assert throughput == sorted(throughput)  # more clients, more tokens per second (below saturation)
    code, out, _ = run(capsys, "simulate", *QUICK, "--concurrency", "1,4")
    assert code == 0 and "TTFT p50 ms" in out


def test_engine_knobs_on_infer_match_the_server(capsys: pytest.CaptureFixture[str]) -> None:
    default = run_json(capsys, "infer", "llama-3.1-8b", "--gpu", "h100")
    halved = run_json(capsys, "infer", "llama-3.1-8b", "--gpu", "h100", "--gpu-memory-utilization", "0.5")
    assert halved["memory"]["kv_capacity_tokens"] < default["memory"]["kv_capacity_tokens"] / 2
    code, out, err = run(capsys, "infer", "llama-3.1-8b", "--gpu", "h100", "--gpu-memory-utilization", "1.5")
    assert_one_line_error(code, out, err, "(0, 1]")


def test_bundled_length_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    p = run_json(capsys, "simulate", "llama-3.1-8b", "--gpu", "h100", "--rate", "5", "--requests", "200",
                 "--dataset", "azure-conv-2023")
    assert 500 < p["workload"]["prompt_tokens_mean"] < 3000  # conversation prompts: median 1,020 tokens
