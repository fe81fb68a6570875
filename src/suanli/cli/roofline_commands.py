"""``suanli roofline MODEL --gpu G``: the forward pass's kernels against the accelerator's compute and bandwidth
roofs (FLOPs, bytes, arithmetic intensity, time, bound)."""

from __future__ import annotations

import argparse

from suanli.cli.common import Commands, positive_int
from suanli.cli.model_arg import add_model_argument

FORMATS = ("bf16", "fp16", "fp8", "fp32")


def register(commands: Commands) -> None:
    roof = commands.add_parser(
        "roofline", help="the forward pass's kernels under the GPU's compute and bandwidth roofs",
        description="Each kernel of one forward pass over --batch sequences of --seq tokens on one GPU (per distinct "
        "layer, and the output head): FLOPs, bytes moved, arithmetic intensity, time and whether compute or memory "
        "bandwidth bounds it (Williams et al. 2009).")
    add_model_argument(roof)
    roof.add_argument("--gpu", required=True, help="accelerator (see `suanli gpus`), e.g. h100, a100-40gb, 4090")
    roof.add_argument("--seq", type=positive_int, default=2048, help="tokens per sequence (default 2048)")
    roof.add_argument("--batch", type=positive_int, default=1, help="sequences (default 1)")
    roof.add_argument("--tp", type=positive_int, default=1, help="tensor parallel degree: one GPU's shard (default 1)")
    roof.add_argument("--precision", choices=FORMATS, default="bf16", help="compute format (default bf16)")
    roof.add_argument("--json", action="store_true", help="print one JSON object (stable keys) instead of a table")
    roof.set_defaults(run=run_roofline)


def run_roofline(args: argparse.Namespace) -> int:
    from suanli.cli.local_gpu import resolve_accelerator
    from suanli.cli.model_arg import load_model_arg
    from suanli.cli.render import emit_json, key_values, table
    from suanli.i18n import say, t
    from suanli.roofline_report import roofline_report
    from suanli.units import format_decimal

    report = roofline_report(load_model_arg(args), resolve_accelerator(args.gpu), seq=args.seq, batch=args.batch,
                             tp=args.tp, compute_format=args.precision)
    if args.json:
        emit_json(report.to_dict())
        return 0
    values = report.values
    roofs = values["roofs"]
    print(key_values([("model", report.model), ("gpu", values["gpu"]),
                      ("tokens", f"{args.batch} × {args.seq} = {values['tokens']:,}"),
                      ("compute roof", format_decimal(roofs["peak_flops_per_s"], "FLOP/s")),
                      ("bandwidth roof", format_decimal(roofs["memory_bandwidth_bytes_per_s"], "B/s")),
                      ("ridge point", f"{roofs['ridge_flops_per_byte']:.0f} FLOP/byte"),
                      ("forward", f"{values['forward_s'] * 1e3:.3f} ms")]))
    print()
    print(table(["kernel", "where", "× layers", "FLOP", "bytes", "FLOP/byte", "time µs", "bound"],
                [[r["name"], r["group"], r["layers"], format_decimal(r["flops"], ""), format_decimal(r["bytes"], ""),
                  f"{r['intensity_flops_per_byte']:.1f}", f"{r['time_s'] * 1e6:.1f}",
                  t(f"value.roofline.bound_{r['bound']}")]
                 for r in values["ops"]], align="llrrrrrl"))
    for note in report.notes:
        print(t("cli.note_line", text=say(note)))
    return 0
