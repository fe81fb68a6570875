"""``--calibration PROFILE.toml``: the option train, infer, simulate and plan share, and what it does to a report.

The profile (``suanli bench``) must have been measured on the accelerator ``--gpu`` names; ``core.calibrate``
turns it into that accelerator's measured peaks and the time model's efficiencies. The report then carries a
note with the fitted values and, in ``--json``, a ``calibration`` object (``profile_path`` plus the fit).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from suanli.core.calibrate import CalibrationResult
    from suanli.report import Report
    from suanli.spec.assumptions import PerformanceAssumptions
    from suanli.spec.calibration import Calibration
    from suanli.spec.hardware import Accelerator


def add_calibration_option(parser: argparse._ActionsContainer) -> None:
    parser.add_argument("--calibration", metavar="PROFILE.toml", help="a profile from `suanli bench` measured on "
                        "this --gpu: its GEMM curve and bandwidths replace the default efficiencies (with --gpu "
                        "local, the device's saved profile is used when there is one)")


@dataclass(frozen=True, slots=True, kw_only=True)
class Calibrated:
    """The accelerator and assumptions to evaluate with, and what to add to the report (None: not calibrated)."""

    accelerator: Accelerator
    assumptions: PerformanceAssumptions | None = None
    values: dict[str, Any] | None = None

    @property
    def note(self) -> str:
        if self.values is None:
            return ""
        v = self.values
        raised = f"; raised {', '.join(v['raised'])}" if v["raised"] else ""
        return (f"calibrated by {v['profile_path']} ({v['device_key']}, {v['date']}): {v['gemm_format']} GEMMs at "
                f"{v['gemm_peak_fraction']:.3g} of peak, half-work {v['gemm_half_work_flops']:.3g} FLOPs (fit rms "
                f"{v['gemm_fit_rms_relative_error']:.0%} over {v['gemm_points']} sizes), memory bandwidth fraction "
                f"{v['memory_bandwidth_fraction']:.3g}{raised}"
                + "".join(f"; WARNING: {w}" for w in v.get("gemm_fit_warnings", ())))

    def apply(self, report: Report) -> Report:
        """``report`` with the ``calibration`` key and the note, when calibrated."""
        if self.values is None:
            return report
        return replace(report, values={**report.values, "calibration": self.values},
                       notes=(*report.notes, self.note))


def calibrated_one(args: argparse.Namespace, accelerators: Sequence[Accelerator], *,
                   fmt: str | None = None) -> Calibrated:
    """``calibrated`` for a command that takes a list of --gpu: a profile describes one device, so the list must
    name only it."""
    if getattr(args, "calibration", None) and len(accelerators) > 1:
        from suanli.errors import SpecError

        names = ", ".join(a.key for a in accelerators)
        raise SpecError(f"--calibration describes one device, but --gpu names {len(accelerators)} "
                        f"({names}); pass only the profiled one", key="error.measure.calibration_one_device",
                        fields={"count": len(accelerators), "names": names})
    return calibrated(args, accelerators[0], fmt=fmt)


def calibrated(args: argparse.Namespace, accelerator: Accelerator, *, fmt: str | None = None,
               base: PerformanceAssumptions | None = None) -> Calibrated:
    """Load ``args.calibration`` (when given), check it was measured on ``accelerator`` and fit it; ``fmt``: the
    format the job's GEMMs run in."""
    path = getattr(args, "calibration", None)
    if not path:
        return Calibrated(accelerator=accelerator, assumptions=base)
    profile, result = fit_profile(str(path), accelerator, fmt=fmt, base=base)
    values = {"profile_path": str(path), "device_key": profile.device_key, "date": profile.date,
              "quick": profile.quick, "warnings": list(profile.warnings), **result.to_dict()}
    return Calibrated(accelerator=result.accelerator, assumptions=result.assumptions, values=values)


def fit_profile(path: str, accelerator: Accelerator, *, fmt: str | None = None,
                base: PerformanceAssumptions | None = None) -> tuple[Calibration, CalibrationResult]:
    """The profile at ``path``, checked to be ``accelerator``'s, and its fit (``core.calibrate``) over ``base``."""
    from suanli.core.calibrate import calibrate, check_device
    from suanli.spec.assumptions import PerformanceAssumptions
    from suanli.spec.calibration import load_calibration

    profile = load_calibration(path)
    check_device(profile, accelerator, source=path)
    return profile, calibrate(accelerator, base or PerformanceAssumptions(), profile, fmt=fmt)
