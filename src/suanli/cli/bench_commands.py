"""``suanli bench``: GEMM, memory, host-link and all-reduce microbenchmarks, saved as a calibration profile."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from suanli.cli.common import Commands

if TYPE_CHECKING:
    from suanli.spec.calibration import Calibration


def register(commands: Commands) -> None:
    bench = commands.add_parser(
        "bench", help="measure this device (GEMM TFLOP/s, memory and host-link bandwidth, all-reduce) into a "
        "calibration profile for --calibration",
        description="Times GEMMs by size and dtype, a large memory copy, pinned host<->device copies and (several "
        "GPUs) all-reduces with torch on the local device, and writes a calibration profile (TOML). train, infer, "
        "simulate and plan accept it as --calibration PROFILE.toml; without --out it is saved where --gpu local "
        "finds it ($SUANLI_CALIBRATION_DIR, else ~/.cache/suanli/calibration/<device key>.toml).")
    bench.add_argument("--device", choices=("cpu", "cuda"), help="default cuda when torch sees a GPU, else cpu")
    bench.add_argument("--quick", action="store_true", help="a short ladder of sizes (~15 s on a 2-core CPU)")
    bench.add_argument("--out", metavar="PROFILE.toml", help="where to write the profile (default: the saved-profile "
                       "folder, under the device's catalog key)")
    bench.add_argument("--json", action="store_true", help="print one JSON object (the profile and its path)")
    bench.set_defaults(run=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    import dataclasses

    from suanli.cli.render import emit_json
    from suanli.errors import SpecError
    from suanli.i18n import say, t
    from suanli.measure.bench import run_bench as bench
    from suanli.spec.calibration import default_profile_path, write_calibration

    device = args.device or _default_device()
    def log(line: str) -> None:
        if not args.json:
            sys.stderr.write(say(line) + "\n")

    profile = bench(device, quick=args.quick, log=log)
    path = Path(args.out) if args.out else default_profile_path(profile.device_key)
    try:
        write_calibration(profile, path)
    except OSError as exc:
        reason = exc.strerror or exc
        raise SpecError(f"cannot write the calibration profile to {path} ({reason}); pass --out with a "
                        "writable path, or set SUANLI_CALIBRATION_DIR", key="error.measure.profile_unwritable",
                        fields={"path": path, "reason": reason}) from None
    if args.json:
        emit_json({"command": "bench", "profile_path": str(path), **dataclasses.asdict(profile)})
        return 0
    print(summary(profile, path))
    for line in profile.warnings:
        sys.stderr.write(t("value.bench.profile_warning", warning=say(line)) + "\n")
    return 0


def _default_device() -> str:
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def summary(profile: Calibration, path: Path) -> str:
    """The profile as a short table: best GEMM rate per dtype, bandwidths, where it was written."""
    from suanli.cli.render import key_values
    from suanli.i18n import t

    rows = [("device", f"{profile.device_name} ({profile.device_key}), torch {profile.torch_version}")]
    for dtype in profile.dtypes:
        best = max(profile.gemm_points(dtype), key=lambda p: p.achieved_flops_per_s)
        rows.append((t("value.bench.gemm_label", dtype=dtype),
                     t("value.bench.gemm_best", tflops=best.achieved_flops_per_s / 1e12, m=best.m, n=best.n,
                       k=best.k, sizes=len(profile.gemm_points(dtype)))))
    rows.append(("memory copy", t("value.bench.copy_rate", gbs=profile.copy_bytes_per_s / 1e9)))
    if profile.kernel_overhead_s is not None:
        rows.append(("op dispatch", t("value.bench.dispatch_rate", us=profile.kernel_overhead_s * 1e6)))
    if profile.eager_call_s is not None:
        rows.append(("eager call", t("value.bench.eager_call_rate", us=profile.eager_call_s * 1e6)))
    if profile.h2d_bytes_per_s and profile.d2h_bytes_per_s:
        rows.append(("host link", t("value.bench.host_link_rate", h2d=profile.h2d_bytes_per_s / 1e9,
                                    d2h=profile.d2h_bytes_per_s / 1e9)))
    for point in profile.allreduce:
        rows.append((f"all-reduce {point.bytes / 2**20:g} MiB",
                     t("value.bench.busbw", gbs=point.busbw_bytes_per_s / 1e9, gpus=point.world_size)))
    rows.append(("profile", t("value.bench.profile_path", path=path)))
    return key_values(rows)
