"""``suanli gpus``: the accelerator catalog, filtered and sorted."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from suanli.cli.common import Commands, add_output_flags

if TYPE_CHECKING:
    from suanli.spec.hardware import Accelerator

SORT_KEYS = ("name", "memory", "bandwidth", "flops", "year", "price", "flops-per-watt", "flops-per-usd")


def register(commands: Commands) -> None:
    gpus = commands.add_parser("gpus", help="accelerators: memory, bandwidth, dense peak FLOP/s, power, price",
                               description="The accelerator catalog (dense peaks only, never 2:4-sparsity "
                               "figures), filtered and sorted. Name accelerators to show just those.")
    gpus.add_argument("names", nargs="*", metavar="GPU", help="catalog keys or aliases (e.g. h100 a100-40gb 4090)")
    gpus.add_argument("--vendor", help="only this vendor (nvidia, amd, google, intel, huawei, apple, cambricon, groq)")
    gpus.add_argument("--kind", help="only this kind (gpu, tpu, npu, lpu, cpu, soc)")
    gpus.add_argument("--min-memory-gb", type=float, default=0.0, help="only parts with at least this much memory")
    gpus.add_argument("--format", default="bf16", dest="number_format",
                      help="number format for the FLOP/s column and FLOP-based sorts (default bf16)")
    gpus.add_argument("--sort", choices=SORT_KEYS, default="flops", help="sort order, largest first (default flops)")
    add_output_flags(gpus)
    gpus.set_defaults(run=run_gpus)


def run_gpus(args: argparse.Namespace) -> int:
    from suanli.cli.local_gpu import resolve_accelerator
    from suanli.cli.render import emit_json, table
    from suanli.errors import SpecError
    from suanli.i18n import t
    from suanli.spec.hardware import check_filters, load_accelerators
    from suanli.units import GB, TERA, format_bytes

    if args.min_memory_gb < 0:
        raise SpecError(f"--min-memory-gb must be zero or positive, got {args.min_memory_gb:g}",
                        key="error.cli.min_memory", fields={"value": args.min_memory_gb})
    check_filters(vendor=args.vendor, kind=args.kind, number_format=args.number_format)
    chosen = [resolve_accelerator(n) for n in args.names] if args.names else list(load_accelerators())
    chosen = [a for a in chosen if _matches(a, args) and a.memory_bytes >= args.min_memory_gb * GB]
    chosen.sort(key=lambda a: _sort_value(a, args.sort, args.number_format), reverse=args.sort != "name")
    rows = [_row(a, args.number_format) for a in chosen]
    if args.json:
        emit_json({"command": "gpus", "number_format": args.number_format, "gpus": rows})
        return 0
    print(table(
        ["gpu", "name", "memory", "bandwidth", t("value.gpus.dense", fmt=args.number_format), "TDP", "$/h", "year"],
        [[r["gpu"], r["name"], format_bytes(r["memory_bytes"]),
          f"{r['memory_bandwidth_bytes_per_s'] / GB:,.0f} GB/s",
          "—" if r["peak_flops_per_s"] is None else f"{r['peak_flops_per_s'] / TERA:,.1f} TFLOP/s",
          "—" if r["tdp_w"] is None else f"{r['tdp_w']:.0f} W",
          "—" if r["usd_per_hour"] is None else f"{r['usd_per_hour']:.2f}",
          r["release_year"]] for r in rows],
        align="llrrrrrr"))
    if args.explain:
        print("\n" + t("value.gpus.explain"))
    return 0


def _matches(a: Accelerator, args: argparse.Namespace) -> bool:
    return ((not args.vendor or a.vendor.lower() == args.vendor.lower())
            and (not args.kind or a.kind.lower() == args.kind.lower()))


def _peak(a: Accelerator, number_format: str) -> float | None:
    return a.peak_flops_per_s.get(number_format)


def _price(a: Accelerator) -> float | None:
    on_demand = [p.usd_per_hour for p in a.prices if p.kind == "on-demand"]
    return min(on_demand) if on_demand else None


def _sort_value(a: Accelerator, key: str, number_format: str) -> Any:
    peak = _peak(a, number_format) or 0.0
    price = _price(a)
    return {
        "name": a.key,
        "memory": a.memory_bytes,
        "bandwidth": a.memory_bandwidth_bytes_per_s,
        "flops": peak,
        "year": a.release_year,
        "price": price or 0.0,
        "flops-per-watt": peak / a.tdp_w if a.tdp_w else 0.0,
        "flops-per-usd": peak / price if price else 0.0,
    }[key]


def _row(a: Accelerator, number_format: str) -> dict[str, Any]:
    peak = _peak(a, number_format)
    price = _price(a)
    return {
        "gpu": a.key, "name": a.name, "vendor": a.vendor, "kind": a.kind, "aliases": list(a.aliases),
        "memory_bytes": a.memory_bytes, "memory_bandwidth_bytes_per_s": a.memory_bandwidth_bytes_per_s,
        "peak_flops_per_s": peak, "dense_peak_flops_per_s": dict(a.peak_flops_per_s), "tdp_w": a.tdp_w,
        "flops_per_watt": peak / a.tdp_w if peak and a.tdp_w else None,
        "usd_per_hour": price, "flops_per_usd_hour": peak / price if peak and price else None,
        "release_year": a.release_year, "sources": list(a.sources), **_runs(a),
    }


def _runs(a: Accelerator) -> dict[str, Any]:
    """What the part can run: its formats (a dense peak or ``unverified_formats``), the serving engines whose
    ``runs_on`` names its platform, whether it trains, and whether its memory is on-chip SRAM only."""
    from suanli.spec.engines import load_engines
    from suanli.spec.hardware import FORMATS

    return {"platform": a.platform, "formats": [f for f in FORMATS if a.supports(f)],
            "engines": [e.key for e in load_engines() if a.platform in e.runs_on],
            "inference_only": a.inference_only, "on_chip_memory_only": a.on_chip_memory_only}
