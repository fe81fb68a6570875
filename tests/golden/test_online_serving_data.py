"""Schema of the published online-serving data the simulator is judged on: tests/golden/data/online_serving.toml
(concurrency and request-rate runs with TTFT/TPOT/throughput, sources in docs/serving-references.md) and the
request-length histograms of src/suanli/catalog/workloads.toml. Data checks only; no simulator is run here."""

from __future__ import annotations

import bisect
import itertools
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

import suanli
from suanli.spec.hardware import get_accelerator
from suanli.spec.precision import parse_number_format
from suanli.spec.resolve import find_catalog_model

CASES_FILE = Path(__file__).parent / "data" / "online_serving.toml"
WORKLOADS_FILE = Path(suanli.__file__).parent / "catalog" / "workloads.toml"

ENGINES = {"vllm", "sglang", "trtllm", "tgi"}
SPLITS = {"calibration", "held-out"}
MEASURED = ("ttft_mean_s", "ttft_median_s", "ttft_p99_s", "tpot_mean_s", "tpot_median_s", "tpot_p99_s",
            "itl_mean_s", "itl_median_s", "e2e_median_s", "output_tokens_per_s", "requests_per_s")
MEAN_TOLERANCE = 0.05  # histogram mean (bin midpoints) within 5% of the published mean
BINS = range(6, 16)  # 6..15 bins


def _cases() -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = tomllib.loads(CASES_FILE.read_text())["case"]
    return cases


def _workloads() -> list[dict[str, Any]]:
    workloads: list[dict[str, Any]] = tomllib.loads(WORKLOADS_FILE.read_text())["workload"]
    return workloads


CASES = _cases()
WORKLOADS = _workloads()
WORKLOAD_KEYS = {w["key"] for w in WORKLOADS}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case_schema(case: dict[str, Any]) -> None:
    assert find_catalog_model(case["model"]) is not None, f"{case['id']}: model {case['model']!r} not in the catalog"
    get_accelerator(case["gpu"])  # raises on an unknown GPU
    assert case["source"].startswith("https://"), case["id"]
    assert case["engine"] in ENGINES, case["id"]
    assert case["split"] in SPLITS, case["id"]
    assert ("concurrency" in case) != ("rate_per_s" in case), f"{case['id']}: give one of concurrency / rate_per_s"
    load = case.get("concurrency", case.get("rate_per_s"))
    assert isinstance(load, int | float) and load > 0, case["id"]
    assert ("dataset" in case) != ("prompt_tokens" in case and "output_tokens" in case), \
        f"{case['id']}: give dataset or fixed prompt_tokens + output_tokens"
    if "dataset" in case:
        assert case["dataset"] in WORKLOAD_KEYS, case["id"]
    parse_number_format(case["quant"])
    if case["kv_dtype"] != "auto":
        parse_number_format(case["kv_dtype"])
    for key in ("gpus", "tp", "ep", "replicas"):
        assert isinstance(case[key], int) and case[key] >= 1, (case["id"], key)
    assert case["gpus"] % case["tp"] == 0, case["id"]
    measured = {k: case[k] for k in MEASURED if k in case}
    assert measured, f"{case['id']}: no measured latency or throughput"
    assert all(v > 0 for v in measured.values()), case["id"]
    for metric in ("ttft", "tpot"):  # a median never exceeds the p99 of the same run
        if f"{metric}_median_s" in case and f"{metric}_p99_s" in case:
            assert case[f"{metric}_median_s"] <= case[f"{metric}_p99_s"], case["id"]


def test_case_ids_unique() -> None:
    ids = [c["id"] for c in CASES]
    assert len(ids) == len(set(ids))


def test_every_source_has_both_halves() -> None:
    halves: dict[str, set[str]] = defaultdict(set)
    for case in CASES:
        halves[case["source"]].add(case["split"])
    assert {source: s for source, s in halves.items() if s != SPLITS} == {}


def test_sweeps_vary_only_the_load() -> None:
    """Cases sharing a sweep differ in load (or, in *-osl sweeps, output length), not in model, hardware or engine."""
    sweeps: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for case in CASES:
        if "sweep" in case:
            sweeps[case["sweep"]].append(case)
    for name, members in sweeps.items():
        assert len(members) >= 2, name
        for key in ("model", "gpu", "gpus", "tp", "ep", "engine", "quant", "kv_dtype"):
            assert len({m[key] for m in members}) == 1, (name, key)


def _histogram_mean(edges: list[int], weights: list[float]) -> float:
    """Each bin is the integers edges[i] .. edges[i+1]-1 spread evenly (the convention in workloads.toml)."""
    total = sum(weights)
    return sum((lo + hi - 1) / 2 * w for (lo, hi), w in zip(itertools.pairwise(edges), weights, strict=True)) / total


def _bin_of_quantile(weights: list[float], q: float) -> int:
    cumulative, running = [], 0.0
    for w in weights:
        running += w
        cumulative.append(running / sum(weights))
    return bisect.bisect_left(cumulative, q)


@pytest.mark.parametrize("workload", WORKLOADS, ids=[w["key"] for w in WORKLOADS])
def test_workload_histograms(workload: dict[str, Any]) -> None:
    key = workload["key"]
    assert workload["source"].startswith("https://"), key
    stats = workload["published_stats"]
    if "histogram_unavailable" in workload:
        assert not any(f"{side}_{part}" in workload for side in ("prompt", "output") for part in ("edges", "weights"))
        assert stats["prompt_mean"] > 0 and stats["output_mean"] > 0, key
        return
    for side in ("prompt", "output"):
        edges, weights = workload[f"{side}_edges"], workload[f"{side}_weights"]
        assert all(isinstance(e, int) for e in edges) and edges[0] >= 1, key
        assert all(a < b for a, b in itertools.pairwise(edges)), f"{key}: {side} edges must rise"
        assert len(weights) == len(edges) - 1 and len(weights) in BINS, f"{key}: {side} needs 6-15 bins"
        assert all(w >= 0 for w in weights) and sum(weights) > 0, key
        if f"{side}_max" in stats:
            assert edges[-1] > stats[f"{side}_max"], f"{key}: {side} edges must cover the published max"
        if f"{side}_mean" in stats:
            mean = _histogram_mean(edges, weights)
            assert mean == pytest.approx(stats[f"{side}_mean"], rel=MEAN_TOLERANCE), f"{key}: {side} mean"
        for name, q in (("median", 0.5), ("p90", 0.9), ("p99", 0.99)):
            if f"{side}_{name}" in stats:  # the published percentile lies in the bin where the weight crosses q
                i = _bin_of_quantile(weights, q)
                assert edges[i] <= stats[f"{side}_{name}"] < edges[i + 1], f"{key}: {side} {name}"
