"""Turn a calibration profile (what ``suanli bench`` measured) into the peaks and efficiencies the time model uses.

GEMMs. The time model runs a GEMM of F FLOPs at peak · eff(F), eff(F) = p · F / (F + h) (``core/roofline.py``;
p = ``gemm_peak_fraction``, h = ``gemm_half_work_flops``: the saturating curve, a Michaelis-Menten /
Amdahl-style form: a fixed per-call cost of h/(p·peak) seconds on top of F/(p·peak)). With the measured rates
r_i of the GEMMs of F_i FLOPs in one format (square and block-shaped; skinny ones are left out, see
``square_points``) and that format's catalog peak P, y_i = r_i / P, ``fit_gemm_curve`` fits in log space:
it minimises Σ (ln(p·x_i) − ln y_i)², x_i = F_i / (F_i + h). Log space because the points span three decades
of F and rates that differ ~10× between the smallest and largest; a ratio error is what matters for a time,
and the log makes one slow outlier count as its ratio, not as its linear distance. For a fixed h the best p is
closed-form, ln p = mean(ln y_i − ln x_i), and h is found on a grid over log h refined by golden section.
h is bounded to [min F_i / 100, max F_i]: the data can only place the knee of the curve where there are points
on both sides of it. Below the smallest size the loss flattens out (every point saturated: h = min F / 100
already runs the smallest GEMM at 99% of p, and any smaller h predicts the same for all sizes the data covers);
above the largest the curve has not saturated and p·P is an extrapolation. An unbounded search wandered from 1e3
to 1.4e9 FLOPs between two profiles of the same CPU. A fit at the upper bound, or one whose root-mean-square
relative error exceeds ``POOR_FIT_RMS``, is named in ``GemmFit.warnings`` and in the note.

The rates fitted are their upper envelope over size (``rate_envelope``: each point at least as fast as the
fastest smaller GEMM of the format). The curve is monotone in F, so it cannot represent a larger GEMM running
slower than a smaller one; on a shared CPU that happens when the GEMM outlasts a scheduler time slice and a
descheduled thread stalls the others at a barrier (this machine, load 4.4 on 2 cores: 384³ at 18 GFLOP/s beside
256³ at 131 GFLOP/s), which is interference, not the device. On an idle device the envelope moves the points
by the few percent a cache boundary costs.

Per-op cost. When the profile measured one eager op's dispatch time d (``Calibration.kernel_overhead_s``, CPU),
it becomes ``kernel_overhead_s``, which the roofline adds to every op, and the fit sees each GEMM's time less d
(at most half of it), so that the GEMM curve does not charge that cost a second time.
The per-call cost of a tiny eager transformers training step (``Calibration.eager_call_s``, CPU) becomes
``eager_call_overhead_s``, charged per counted call of a CPU training step (``core/training_block.eager_dispatch_s``).

When the fitted asymptote p·P exceeds the catalog
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
from suanli.i18n import Text
from suanli.spec.assumptions import PerformanceAssumptions
from suanli.spec.calibration import Calibration, GemmPoint
from suanli.spec.hardware import Accelerator

#: Formats tried, in order, when the caller names none or one the profile lacks (what training and serving use).
PREFERRED_FORMATS = ("bf16", "fp16", "fp32", "tf32", "fp8")
#: Search range of the half-work size h in FLOPs: below 1e3 a GEMM is one instruction, above 1e16 none saturates.
_LOG_H_RANGE = (3.0, 16.0)
#: A GEMM fit whose root-mean-square relative error is above this is reported as poor (typical idle fits: < 10%).
POOR_FIT_RMS = 0.25
#: GEMMs with fewer rows than this (decode-like, m = 16) are bound by reading the weights, not by the curve.
MIN_FIT_ROWS = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class GemmFit:
    """p and h of eff(F) = p·F/(F+h) fitted to one format's points, with the root-mean-square relative error."""

    fmt: str
    peak_fraction: float
    half_work_flops: float
    rms_relative_error: float
    points: int
    warnings: tuple[str, ...] = ()


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
                "gemm_fit_warnings": list(self.gemm.warnings), "kernel_overhead_s": self.assumptions.kernel_overhead_s,
                "eager_call_overhead_s": self.assumptions.eager_call_overhead_s,
                "memory_bandwidth_fraction": self.memory_bandwidth_fraction,
                "decode_bandwidth_fraction": self.decode_bandwidth_fraction,
                "network_bandwidth_fraction": self.network_bandwidth_fraction, "raised": list(self.raised)}


def _log_p(xs: Sequence[float], ys: Sequence[float]) -> float:
    """argmin over ln p of Σ (ln p + ln x − ln y)²: the mean of ln y − ln x."""
    return sum(math.log(y) - math.log(x) for x, y in zip(xs, ys, strict=True)) / len(xs)


def _loss(log_h: float, flops: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    xs = [f / (f + 10**log_h) for f in flops]
    log_p = _log_p(xs, ys)
    return sum((log_p + math.log(x) - math.log(y)) ** 2 for x, y in zip(xs, ys, strict=True)), math.exp(log_p)


def _h_bounds(flops: Sequence[float]) -> tuple[float, float]:
    """log10 of [min F / 100, max F] within ``_LOG_H_RANGE`` (module docstring: where the data can place the knee)."""
    lo = min(max(math.log10(min(flops)) - 2, _LOG_H_RANGE[0]), _LOG_H_RANGE[1])
    return lo, max(lo, min(math.log10(max(flops)), _LOG_H_RANGE[1]))


def _fit_warnings(fmt: str, log_h: float, bounds: tuple[float, float], rms: float, n: int) -> tuple[str, ...]:
    found = []
    if n >= 2 and bounds[1] > bounds[0] and bounds[1] - log_h < 1e-3:
        found.append(f"{fmt} GEMM curve's half-work size sits at the largest size measured ({10**log_h:.3g} FLOPs): "
                     "the rates have not levelled off; bench larger GEMMs (suanli bench without --quick)")
    if rms > POOR_FIT_RMS:
        found.append(f"{fmt} GEMM curve fits the measured rates poorly (rms relative error {rms:.0%} > "
                     f"{POOR_FIT_RMS:.0%}): the device was probably busy; rerun suanli bench on an idle machine")
    return tuple(found)


def fit_gemm_curve(flops: Sequence[float], fractions: Sequence[float], *, fmt: str = "") -> GemmFit:
    """Fit of y = p·F/(F+h) to GEMM sizes ``flops`` and achieved fractions of peak ``fractions``, in log space,
    h within the measured sizes (module docstring); the rms error reported is the relative one, p·x/y − 1."""
    if len(flops) != len(fractions) or not flops:
        raise SpecError(f"need GEMM points to fit, got {len(flops)} sizes and {len(fractions)} rates",
                        key="error.core.gemm_fit_points", fields={"sizes": len(flops), "rates": len(fractions)})
    bounds = _h_bounds(flops)
    lo, hi = bounds
    grid = [lo + (hi - lo) * i / 200 for i in range(201)]
    start = min(grid, key=lambda g: _loss(g, flops, fractions)[0])
    step = (hi - lo) / 200
    lo, hi = max(bounds[0], start - step), min(bounds[1], start + step)
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(40):  # golden-section refinement inside the best grid cell
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        lo, hi = (lo, b) if _loss(a, flops, fractions)[0] <= _loss(b, flops, fractions)[0] else (a, hi)
    log_h = (lo + hi) / 2
    _, p = _loss(log_h, flops, fractions)
    h = 10**log_h
    rms = math.sqrt(sum((p * f / (f + h) / y - 1) ** 2 for f, y in zip(flops, fractions, strict=True)) / len(flops))
    return GemmFit(fmt=fmt, peak_fraction=p, half_work_flops=h, rms_relative_error=rms, points=len(flops),
                   warnings=_fit_warnings(fmt, log_h, bounds, rms, len(flops)))


def pick_format(calibration: Calibration, accelerator: Accelerator, fmt: str | None) -> str:
    """``fmt`` when the profile measured it and the catalog has its peak; else the first of PREFERRED_FORMATS that
    both have (bench measures fp32 everywhere). No common format is a SpecError naming both lists."""
    usable = [d for d in calibration.dtypes if d in accelerator.peak_flops_per_s]
    for candidate in (fmt, *PREFERRED_FORMATS):
        if candidate in usable:
            return candidate
    measured, listed = ", ".join(calibration.dtypes), ", ".join(accelerator.peak_flops_per_s)
    raise SpecError(f"the calibration profile measured {measured} GEMMs but {accelerator.key} "
                    f"lists peaks for {listed} only; run `suanli bench` again", key="error.core.calibration_formats",
                    fields={"measured": measured, "gpu": accelerator.key, "listed": listed})


def square_points(calibration: Calibration, fmt: str) -> tuple[GemmPoint, ...]:
    """The GEMMs of ``fmt`` the curve is fitted to: square ones and block-shaped ones (every dimension at least
    ``MIN_FIT_ROWS``); all of ``fmt``'s points when there are none. Skinny GEMMs (few rows) are bound by reading
    the weight matrix, which the roofline's memory term models, not the efficiency curve."""
    points = calibration.gemm_points(fmt)
    return tuple(p for p in points if min(p.m, p.n, p.k) >= MIN_FIT_ROWS) or points


def rate_envelope(flops: Sequence[float], rates: Sequence[float]) -> list[float]:
    """Each rate raised to the best rate of any GEMM of no more FLOPs (module docstring), in the input's order."""
    order = sorted(range(len(flops)), key=lambda i: flops[i])
    best, out = 0.0, list(rates)
    for i in order:
        best = max(best, rates[i])
        out[i] = best
    return out


def _busy_s(point: GemmPoint, overhead_s: float) -> float:
    """The GEMM's time less the per-op dispatch cost the roofline adds on its own (at most half the time)."""
    return point.seconds - min(overhead_s, point.seconds / 2)


def _gemm(accelerator: Accelerator, points: Sequence[GemmPoint], fmt: str,
          overhead_s: float = 0.0) -> tuple[GemmFit, float]:
    """The fit for ``fmt`` and the peak to use: the catalog's, or the fitted asymptote where that is higher."""
    peak = accelerator.peak_flops(fmt)
    flops = [p.flops for p in points]
    rates = rate_envelope(flops, [p.flops / _busy_s(p, overhead_s) for p in points])
    fit = fit_gemm_curve(flops, [r / peak for r in rates], fmt=fmt)
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
    overhead = calibration.kernel_overhead_s or 0.0
    fit, fitted_peak = _gemm(accelerator, square_points(calibration, fmt), fmt, overhead)
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
                    network_bandwidth_fraction=network or assumptions.network_bandwidth_fraction,
                    kernel_overhead_s=calibration.kernel_overhead_s or assumptions.kernel_overhead_s,
                    eager_call_overhead_s=calibration.eager_call_s or assumptions.eager_call_overhead_s)
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
    narrow_fit, _ = _gemm(accelerator, square_points(calibration, narrow), narrow, calibration.kernel_overhead_s or 0.0)
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
        use = Text("fix.core.calibration_local") if local else \
            Text("fix.core.calibration_gpu", gpu=calibration.device_key)
        raise SpecError(f"calibration profile {source} was measured on {calibration.device_key} "
                        f"({calibration.device_name}) but --gpu is {accelerator.key}; pass {use}, or a profile "
                        f"measured on {accelerator.key} (`suanli bench` there)", key="error.core.calibration_device",
                        fields={"source": source, "measured_on": calibration.device_key,
                                "device_name": calibration.device_name, "gpu": accelerator.key, "use": use})
