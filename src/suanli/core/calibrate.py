"""Turn a calibration profile (what ``suanli bench`` measured) into the peaks and efficiencies the time model uses.

GEMMs. The time model runs a GEMM of F FLOPs at peak · eff(F), eff(F) = p · F / (F + h) (``core/roofline.py``;
p = ``gemm_peak_fraction``, h = ``gemm_half_work_flops``: the saturating curve, a Michaelis-Menten /
Amdahl-style form: a fixed per-call cost of h/(p·peak) seconds on top of F/(p·peak)). With the measured rates
r_i of square GEMMs of F_i FLOPs in one format and that format's catalog peak P, y_i = r_i / P, ``fit_gemm_curve``
minimises the relative squared error Σ ((p·x_i − y_i) / y_i)², x_i = F_i / (F_i + h): for a fixed h the best p
is linear least squares, p(h) = Σ x_i/y_i / Σ x_i²/y_i², and h is found by a golden-section search over
log h (a one-dimensional, unimodal-in-practice problem). When the fitted asymptote p·P exceeds the catalog
peak (catalog CPU peaks are upper bounds from cores x clock x FLOPs/cycle, but an entry built from a
guessed clock can be low), the peak is raised to it and p becomes 1; the report says so.

Narrow formats. The time model runs fp8/int8 GEMMs at p · ``low_precision_gemm_ratio`` of their own peak. Fitted
to an fp8 job's fp8 points, p is stored as p_fp8 / ratio (at most 1), so that the product is what was measured;
fitted to a 16-bit format while the profile also has fp8 points, the ratio becomes p_fp8 / p_16 (at most 1), the
measured counterpart of the published 0.88 (stas00/ml-engineering MAMF: H100 SXM fp8 0.709 vs bf16 0.803).

Memory. ``memory_bandwidth_fraction`` = measured copy bandwidth / catalog bandwidth, where the copy bandwidth
counts bytes read + bytes written over the copy's time, as STREAM's Copy does (McCalpin, STREAM benchmark
documentation: "Copy ... 16 bytes per iteration" for 8-byte elements). ``decode_bandwidth_fraction`` keeps the
ratio to it that the published serving runs were fitted with (decode kernels reach 0.825/0.85 = 0.97 of
streaming-copy speed by default), capped at 1. A copy faster than the catalog bandwidth raises the bandwidth.

Collectives. With all-reduce points and a scale-up link, ``network_bandwidth_fraction`` = the best measured
bus bandwidth / the link's per-GPU bandwidth (nccl-tests' busbw is defined to be comparable to it: NVIDIA
nccl-tests doc/PERFORMANCE.md). Host<->device bandwidth is kept in the profile but not applied: no assumption
of the time model scales the host link.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from suanli.core.serving_plan import NARROW_FORMATS
from suanli.errors import SpecError
from suanli.spec.assumptions import PerformanceAssumptions
from suanli.spec.calibration import Calibration, GemmPoint
from suanli.spec.hardware import Accelerator

#: Formats tried, in order, when the caller names none or one the profile lacks (what training and serving use).
PREFERRED_FORMATS = ("bf16", "fp16", "fp32", "tf32", "fp8")
#: Search range of the half-work size h in FLOPs: below 1e3 a GEMM is one instruction, above 1e16 none saturates.
_LOG_H_RANGE = (3.0, 16.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class GemmFit:
    """p and h of eff(F) = p·F/(F+h) fitted to one format's points, with the root-mean-square relative error."""

    fmt: str
    peak_fraction: float
    half_work_flops: float
    rms_relative_error: float
    points: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CalibrationResult:
    """The calibrated accelerator and assumptions, and what changed, for the report's note and ``--json``."""

    accelerator: Accelerator
    assumptions: PerformanceAssumptions
    gemm: GemmFit
    memory_bandwidth_fraction: float
    decode_bandwidth_fraction: float
    network_bandwidth_fraction: float | None
    low_precision_gemm_ratio: float
    raised: tuple[str, ...]  # "bf16 peak 1.2 -> 1.5 TFLOP/s (measured)" for each catalog figure raised

    def to_dict(self) -> dict[str, object]:
        return {"gemm_format": self.gemm.fmt, "gemm_peak_fraction": self.assumptions.gemm_peak_fraction,
                "low_precision_gemm_ratio": self.low_precision_gemm_ratio,
                "gemm_half_work_flops": self.gemm.half_work_flops,
                "gemm_fit_rms_relative_error": self.gemm.rms_relative_error, "gemm_points": self.gemm.points,
                "memory_bandwidth_fraction": self.memory_bandwidth_fraction,
                "decode_bandwidth_fraction": self.decode_bandwidth_fraction,
                "network_bandwidth_fraction": self.network_bandwidth_fraction, "raised": list(self.raised)}


def _best_p(xs: Sequence[float], ys: Sequence[float]) -> float:
    """argmin_p Σ ((p·x − y)/y)² = Σ x/y / Σ (x/y)²."""
    return sum(x / y for x, y in zip(xs, ys, strict=True)) / sum((x / y) ** 2 for x, y in zip(xs, ys, strict=True))


def _loss(log_h: float, flops: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    xs = [f / (f + 10**log_h) for f in flops]
    p = _best_p(xs, ys)
    return sum(((p * x - y) / y) ** 2 for x, y in zip(xs, ys, strict=True)), p


def fit_gemm_curve(flops: Sequence[float], fractions: Sequence[float], *, fmt: str = "") -> GemmFit:
    """Least-squares fit of y = p·F/(F+h) to GEMM sizes ``flops`` and achieved fractions of peak ``fractions``."""
    if len(flops) != len(fractions) or not flops:
        raise SpecError(f"need GEMM points to fit, got {len(flops)} sizes and {len(fractions)} rates")
    lo, hi = _LOG_H_RANGE
    grid = [lo + (hi - lo) * i / 260 for i in range(261)]
    start = min(grid, key=lambda g: _loss(g, flops, fractions)[0])
    lo, hi = max(_LOG_H_RANGE[0], start - 0.05), min(_LOG_H_RANGE[1], start + 0.05)
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(40):  # golden-section refinement inside the best grid cell
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        lo, hi = (lo, b) if _loss(a, flops, fractions)[0] <= _loss(b, flops, fractions)[0] else (a, hi)
    loss, p = _loss((lo + hi) / 2, flops, fractions)
    return GemmFit(fmt=fmt, peak_fraction=p, half_work_flops=10 ** ((lo + hi) / 2),
                   rms_relative_error=math.sqrt(loss / len(flops)), points=len(flops))


def pick_format(calibration: Calibration, accelerator: Accelerator, fmt: str | None) -> str:
    """``fmt`` when the profile measured it and the catalog has its peak; else the first of PREFERRED_FORMATS that
    both have (bench measures fp32 everywhere). No common format is a SpecError naming both lists."""
    usable = [d for d in calibration.dtypes if d in accelerator.peak_flops_per_s]
    for candidate in (fmt, *PREFERRED_FORMATS):
        if candidate in usable:
            return candidate
    raise SpecError(f"the calibration profile measured {', '.join(calibration.dtypes)} GEMMs but {accelerator.key} "
                    f"lists peaks for {', '.join(accelerator.peak_flops_per_s)} only; run `suanli bench` again")


def square_points(calibration: Calibration, fmt: str) -> tuple[GemmPoint, ...]:
    """The square GEMMs (m = n = k) of ``fmt``, which the curve is fitted to; all of ``fmt``'s points when none is
    square. Skinny GEMMs (few rows) are bound by reading the weight matrix, which the roofline's memory term
    models, not the efficiency curve."""
    points = calibration.gemm_points(fmt)
    return tuple(p for p in points if p.m == p.n == p.k) or points


def _gemm(accelerator: Accelerator, points: Sequence[GemmPoint], fmt: str) -> tuple[GemmFit, float]:
    """The fit for ``fmt`` and the peak to use: the catalog's, or the fitted asymptote where that is higher."""
    peak = accelerator.peak_flops(fmt)
    fit = fit_gemm_curve([p.flops for p in points], [p.achieved_flops_per_s / peak for p in points], fmt=fmt)
    if fit.peak_fraction <= 1:
        return fit, peak
    return replace(fit, peak_fraction=1.0), peak * fit.peak_fraction


def _raised_peaks(accelerator: Accelerator, calibration: Calibration, fmt: str, fitted_peak: float) -> dict[str, float]:
    """Catalog peaks below what was measured: the fitted format's asymptote, other formats' best measured rate."""
    raised = {fmt: fitted_peak} if fitted_peak > accelerator.peak_flops(fmt) else {}
    for other in calibration.dtypes:
        if other != fmt and other in accelerator.peak_flops_per_s:
            best = max(p.achieved_flops_per_s for p in calibration.gemm_points(other))
            if best > accelerator.peak_flops_per_s[other]:
                raised[other] = best
    return raised


def calibrate(accelerator: Accelerator, assumptions: PerformanceAssumptions, calibration: Calibration, *,
              fmt: str | None = None) -> CalibrationResult:
    """The accelerator and assumptions ``calibration`` implies (formulas in the module docstring). ``fmt``: the
    format the job's GEMMs run in (the fit uses that format's points when the profile has them)."""
    fmt = pick_format(calibration, accelerator, fmt)
    fit, fitted_peak = _gemm(accelerator, square_points(calibration, fmt), fmt)
    peaks = _raised_peaks(accelerator, calibration, fmt, fitted_peak)
    raised = [f"{f} peak {accelerator.peak_flops(f) / 1e12:.4g} -> {v / 1e12:.4g} TFLOP/s (measured)"
              for f, v in peaks.items()]
    bandwidth = accelerator.memory_bandwidth_bytes_per_s
    if calibration.copy_bytes_per_s > bandwidth:
        raised.append(f"memory bandwidth {bandwidth / 1e9:.4g} -> {calibration.copy_bytes_per_s / 1e9:.4g} GB/s "
                      "(measured copy)")
        bandwidth = calibration.copy_bytes_per_s
    memory_fraction = calibration.copy_bytes_per_s / bandwidth
    decode = min(1.0, memory_fraction * assumptions.decode_bandwidth_fraction / assumptions.memory_bandwidth_fraction)
    network = _network_fraction(accelerator, calibration)
    calibrated = replace(accelerator, peak_flops_per_s={**accelerator.peak_flops_per_s, **peaks},
                         memory_bandwidth_bytes_per_s=bandwidth,
                         notes=(*accelerator.notes, f"calibrated by suanli bench ({calibration.date})"))
    peak_fraction, ratio = _fractions(fit, calibration, accelerator, assumptions)
    tuned = replace(assumptions, gemm_peak_fraction=peak_fraction, gemm_half_work_flops=fit.half_work_flops,
                    low_precision_gemm_ratio=ratio,
                    memory_bandwidth_fraction=memory_fraction, decode_bandwidth_fraction=decode,
                    network_bandwidth_fraction=network or assumptions.network_bandwidth_fraction)
    return CalibrationResult(accelerator=calibrated, assumptions=tuned, gemm=fit,
                             memory_bandwidth_fraction=memory_fraction, decode_bandwidth_fraction=decode,
                             network_bandwidth_fraction=network, low_precision_gemm_ratio=ratio,
                             raised=tuple(raised))


def _fractions(fit: GemmFit, calibration: Calibration, accelerator: Accelerator,
               a: PerformanceAssumptions) -> tuple[float, float]:
    """``gemm_peak_fraction`` and ``low_precision_gemm_ratio`` from the fit (module docstring, narrow formats)."""
    if fit.fmt in NARROW_FORMATS:
        return min(1.0, fit.peak_fraction / a.low_precision_gemm_ratio), a.low_precision_gemm_ratio
    narrow = next((f for f in NARROW_FORMATS if f in calibration.dtypes and f in accelerator.peak_flops_per_s), None)
    if narrow is None:
        return fit.peak_fraction, a.low_precision_gemm_ratio
    narrow_fit, _ = _gemm(accelerator, square_points(calibration, narrow), narrow)
    return fit.peak_fraction, min(1.0, narrow_fit.peak_fraction / fit.peak_fraction)


def _network_fraction(accelerator: Accelerator, calibration: Calibration) -> float | None:
    if not calibration.allreduce or accelerator.scale_up is None:
        return None
    best = max(a.busbw_bytes_per_s for a in calibration.allreduce)
    return min(1.0, best / accelerator.scale_up.bandwidth_bytes_per_s)


def check_device(calibration: Calibration, accelerator: Accelerator, *, source: str) -> None:
    """The profile must describe the accelerator asked for; a mismatch is a SpecError naming both and the fix."""
    if calibration.device_key != accelerator.key:
        local = calibration.device_key.startswith("local-")  # an entry built by the probe: only `local` names it
        use = "--gpu local on the machine it was measured on" if local else \
            f"--gpu {calibration.device_key} (or --gpu local on that machine)"
        raise SpecError(f"calibration profile {source} was measured on {calibration.device_key} "
                        f"({calibration.device_name}) but --gpu is {accelerator.key}; pass {use}, or a profile "
                        f"measured on {accelerator.key} (`suanli bench` there)")
