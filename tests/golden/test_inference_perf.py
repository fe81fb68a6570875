"""Inference latency and throughput against published measurements: TensorRT-LLM's performance tables (v0.5,
v0.6.1, v1.0), NVIDIA NIM and llama.cpp's llama-bench (citations, halves and known gaps in
data/inference_perf.toml). One tolerance for every case; ``benchmarks/calibrate_inference.py`` fits the
inference-only assumptions on the calibration half and reuses ``predict`` and ``load_cases`` from here."""

from __future__ import annotations

import dataclasses
import statistics
import tomllib
from pathlib import Path
from typing import Any

import pytest

from suanli.core.inference_time import (
    decode_step_time,
    inference_time,
    max_load_throughput,
    mean_phase,
    prefill_time,
    serving_setup,
)
from suanli.spec.assumptions import PerformanceAssumptions
from suanli.spec.engines import get_engine
from suanli.spec.hardware import get_accelerator
from suanli.spec.precision import parse_number_format
from suanli.spec.resolve import load_model

DATA = Path(__file__).parent / "data" / "inference_perf.toml"
TOLERANCE = 0.25  # every case, both halves: |predicted / published - 1| <= 25%
MEDIAN_TARGET = 0.20  # held-out median |error| per group (throughput, latency)
THROUGHPUT_KINDS = ("max_load", "static")


def load_cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = tomllib.loads(DATA.read_text())["case"]
    return cases


def group(case: dict[str, Any]) -> str:
    return "throughput" if case["kind"] in THROUGHPUT_KINDS else "latency"


def predict(case: dict[str, Any], assumptions: PerformanceAssumptions | None = None) -> float:
    """Our figure for a case, in the published unit."""
    engine = get_engine(case["engine"])
    if "memory_fraction" in case:
        engine = dataclasses.replace(engine, memory_fraction=case["memory_fraction"])
    setup = serving_setup(load_model(case["model"]), get_accelerator(case["gpu"]), engine=engine,
                          weights_format=parse_number_format(case["quant"]),
                          kv_format=parse_number_format(case["kv_dtype"]), tp=case["tp"], assumptions=assumptions,
                          cuda_graphs=case.get("cuda_graphs"))
    kind, p, o = case["kind"], case["prompt"], case["output"]
    if kind == "max_load":
        return max_load_throughput(setup, prompt_tokens=p, output_tokens=o).output_tokens_per_s
    if kind == "prefill_rate":
        return p / prefill_time(setup, batch=1, prompt_tokens=p).time_s
    if kind == "decode_rate":  # llama-bench tg N: N steps from an empty context
        steps = [decode_step_time(setup, batch=1, context=c) for c in (o // 8, 3 * o // 8, 5 * o // 8, 7 * o // 8)]
        return 1 / mean_phase(steps).time_s
    r = inference_time(setup.spec, setup.accelerator, batch=case["batch"], prompt_tokens=p, output_tokens=o,
                       engine=engine, weights_format=setup.weights_format, kv_format=setup.kv_format, tp=case["tp"],
                       assumptions=assumptions, cuda_graphs=case.get("cuda_graphs"))
    if kind == "static":
        return r.output_tokens_per_s / (case["tp"] if case.get("per_gpu") else 1)
    return r.ttft_s if kind == "ttft" else r.tpot_s


def error(case: dict[str, Any], assumptions: PerformanceAssumptions | None = None) -> float:
    """predicted / published − 1."""
    return predict(case, assumptions) / case["value"] - 1


CASES = load_cases()


def _param(case: dict[str, Any]) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=case["gap_reason"])] if case.get("known_gap") else []
    return pytest.param(case, id=case["id"], marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_published_inference_figure(case: dict[str, Any]) -> None:
    ours = predict(case)
    err = ours / case["value"] - 1
    assert abs(err) <= TOLERANCE, f"{case['id']}: predicted {ours:.4g} vs published {case['value']} ({err:+.0%})"


@pytest.mark.parametrize("name", ["throughput", "latency"])
def test_held_out_median_error(name: str) -> None:
    errors = [abs(error(c)) for c in CASES if c["half"] == "held_out" and group(c) == name and not c.get("known_gap")]
    assert len(errors) >= 4
    median = statistics.median(errors)
    assert median <= MEDIAN_TARGET, f"{name}: held-out median |error| {median:.1%}"


def test_halves_are_fixed_and_cited() -> None:
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids))
    for c in CASES:
        assert c["half"] in ("calibration", "held_out"), c["id"]
        assert c["source"].strip(), c["id"]
        assert not c.get("known_gap") or c.get("gap_reason", "").strip(), c["id"]
    halves = {h: sum(c["half"] == h for c in CASES) for h in ("calibration", "held_out")}
    assert min(halves.values()) >= 0.4 * len(CASES)
