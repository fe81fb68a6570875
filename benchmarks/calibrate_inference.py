"""Fit the inference-only named assumptions to the CALIBRATION half of the published inference figures, then
report both halves (tests/golden/data/inference_perf.toml; the split is fixed in that file).

Only fields used by serving alone are fitted; the ones shared with training (gemm_peak_fraction,
gemm_half_work_flops, attention_peak_fraction, kernel_overhead_s, network_bandwidth_fraction) keep their
defaults. Objective: mean |ln(predicted / published)| over the calibration cases that are not known gaps.
Search: coordinate descent over a grid per parameter, repeated until no step improves.

    .venv/bin/python benchmarks/calibrate_inference.py            # fit from the defaults, print both halves
    .venv/bin/python benchmarks/calibrate_inference.py --no-fit   # report the current defaults only
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.golden.test_inference_perf import group, load_cases, predict

from suanli.spec.assumptions import PerformanceAssumptions

GRID: dict[str, list[float]] = {
    "decode_bandwidth_fraction": [0.60 + 0.025 * i for i in range(17)],
    "quantized_weight_bandwidth_fraction": [0.50 + 0.05 * i for i in range(11)],
    "engine_step_overhead_s": [0.25e-3 * i for i in range(13)],
    "graph_kernel_overhead_s": [0.5e-6 * i for i in range(11)],
    "native_step_overhead_s": [0.1e-3 * i for i in range(11)],
    "engine_request_overhead_s": [0.1e-3 * i for i in range(11)],
    "collective_overhead_s": [2e-6 * i for i in range(11)],
}


def loss(cases: list[dict[str, Any]], a: PerformanceAssumptions) -> float:
    return statistics.fmean(abs(math.log(predict(c, a) / c["value"])) for c in cases)


def fit(cases: list[dict[str, Any]], start: PerformanceAssumptions) -> PerformanceAssumptions:
    best, best_loss = start, loss(cases, start)
    improved = True
    while improved:
        improved = False
        for name, values in GRID.items():
            for value in values:
                trial = dataclasses.replace(best, **{name: value})
                trial_loss = loss(cases, trial)
                if trial_loss < best_loss - 1e-9:
                    best, best_loss, improved = trial, trial_loss, True
    return best


def report(cases: list[dict[str, Any]], a: PerformanceAssumptions) -> None:
    rows = [(c, predict(c, a)) for c in cases]
    print("| half | case | kind | published | ours | error |")
    print("|---|---|---|---:|---:|---:|")
    for c, ours in rows:
        err = ours / c["value"] - 1
        gap = " (known gap)" if c.get("known_gap") else ""
        print(f"| {c['half']} | {c['id']} | {c['kind']} | {c['value']:.4g} | {ours:.4g} | {err:+.1%}{gap} |")
    print()
    for half in ("calibration", "held_out"):
        for name in ("throughput", "latency"):
            errs = [abs(ours / c["value"] - 1) for c, ours in rows
                    if c["half"] == half and group(c) == name and not c.get("known_gap")]
            print(f"{half:11s} {name:10s} n={len(errs):2d}  median |error| {statistics.median(errs):6.1%}  "
                  f"worst {max(errs):6.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-fit", action="store_true", help="report the current defaults without fitting")
    args = parser.parse_args()
    cases = load_cases()
    calibration = [c for c in cases if c["half"] == "calibration" and not c.get("known_gap")]
    a = PerformanceAssumptions()
    if not args.no_fit:
        start = time.perf_counter()
        a = fit(calibration, a)
        print(f"fitted in {time.perf_counter() - start:.0f} s on {len(calibration)} calibration cases:")
        for name in GRID:
            print(f"  {name} = {getattr(a, name):.6g}   (default {getattr(PerformanceAssumptions(), name):.6g})")
        before = loss(calibration, PerformanceAssumptions())
        print(f"  calibration loss {loss(calibration, a):.4f} (defaults {before:.4f})")
        print()
    report(cases, a)


if __name__ == "__main__":
    main()
