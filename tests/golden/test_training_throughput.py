"""Training step time and throughput against published figures (tests/golden/data/training_throughput.toml).

Each case is one published number with its citation: Korthikanti et al. 2022's Megatron-LM batch times on
Selene (all held out), torchtitan's and llm-foundry's tokens/s per GPU (alternating calibration / held-out).
The error is ours / published − 1 in the published metric; the tolerance is uniform per half, never per case.
A case marked ``known_gap`` states the physical reason it misses and must keep missing (strict xfail), so a
change that closes the gap shows up. The data are read by ``benchmarks/calibrate_training.py``, the same code
that fitted the efficiencies, so the test and the fit cannot read a case differently.
"""

from __future__ import annotations

import statistics

import pytest
from benchmarks.calibrate_training import Case, error, fit_cases, load_cases, load_data

DATA = load_data()
CASES = load_cases()
TOLERANCE = {"calibration": DATA["tolerance_calibration"], "held-out": DATA["tolerance_held_out"]}


def _param(case: Case) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=case.reason)] if case.known_gap else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_published_training_figure(case: Case) -> None:
    assert abs(error(case)) <= TOLERANCE[case.half], f"{case.id}: {error(case):+.1%} ({case.half})"


def test_every_case_is_cited_and_split() -> None:
    for raw in DATA["case"]:
        assert raw["source"].strip() and raw["claim"].strip(), raw["id"]
        assert raw["half"] in TOLERANCE, raw["id"]
        assert not raw.get("known_gap") or len(raw.get("reason", "")) > 40, f"{raw['id']}: a gap needs its reason"
    assert all(c.half == "held-out" for c in CASES if c.id.startswith("korthikanti-"))
    halves = [c.half for c in CASES]
    assert halves.count("calibration") >= 10 and halves.count("held-out") >= 10


def test_held_out_median_error_meets_the_target() -> None:
    """The issue's accuracy target: median |error| ≤ 15% on the held-out half (known gaps included)."""
    held_out = [abs(error(c)) for c in CASES if c.half == "held-out"]
    assert statistics.median(held_out) <= 0.15


def test_korthikanti_mean_error() -> None:
    """Korthikanti et al.'s eight batch times, none of them seen by the fit: mean |error| within 10% (Calculon,
    whose efficiencies were set on this hardware, reports 3.65%; ``benchmarks/calibrate_training.py`` prints both)."""
    assert statistics.fmean(abs(error(c)) for c in CASES if c.id.startswith("korthikanti-")) <= 0.10


def test_the_fit_sees_only_calibration_cases_without_gaps() -> None:
    chosen = fit_cases(CASES)
    assert chosen and all(c.half == "calibration" and not c.known_gap for c in chosen)
