"""``suanli roofline``: the forward pass's kernels as points under an accelerator's compute and bandwidth roofs.

Each kernel of ``core/roofline.py`` (per distinct layer, plus the output head) for ``batch × seq`` tokens on one
GPU under tensor parallelism ``tp``: its FLOPs, bytes moved, arithmetic intensity (FLOPs per byte) and the time
``op_time`` gives it. The point a chart draws is (intensity, achieved FLOP/s = FLOPs / time); the roofs are

    attainable(I) = min(peak_flops_per_s, I · memory_bandwidth_bytes_per_s)   (Williams et al. 2009, "Roofline")

with the ridge at peak / bandwidth. Times include the efficiencies of ``PerformanceAssumptions`` (GEMM size
curve, FlashAttention fraction, achieved bandwidth, launch overhead), so points sit below the roofs.
"""

from __future__ import annotations

from typing import Any

from suanli.core.roofline import Op, head_ops, layer_ops, op_time
from suanli.i18n import Text
from suanli.report import Report
from suanli.spec.assumptions import AttentionSpan, PerformanceAssumptions
from suanli.spec.family_match import approximation
from suanli.spec.hardware import Accelerator
from suanli.spec.model import ModelSpec
from suanli.spec.precision import parse_number_format


def roofline_report(spec: ModelSpec, accelerator: Accelerator, *, seq: int, batch: int = 1, tp: int = 1,
                    compute_format: str = "bf16", assumptions: PerformanceAssumptions | None = None) -> Report:
    """The forward pass of ``batch`` sequences of ``seq`` tokens, kernel by kernel (module docstring)."""
    a = assumptions or PerformanceAssumptions()
    dtype_bytes = parse_number_format(compute_format).bits_per_element / 8
    peak, bandwidth = accelerator.peak_flops(compute_format), accelerator.memory_bandwidth_bytes_per_s
    tokens = batch * seq
    layers = spec.layer_groups()  # distinct layers with their counts
    rows: list[dict[str, Any]] = []
    for index, (layer, count) in enumerate(layers):
        ops = layer_ops(layer, spec, tokens=tokens, seq=seq, tp=tp, dtype_bytes=dtype_bytes, span=AttentionSpan.CAUSAL)
        group = Text("value.roofline.layer_n", index=index) if len(layers) > 1 else Text("value.roofline.layer")
        rows += [_op_row(op, group, count, accelerator, compute_format, a) for op in ops]
    rows += [_op_row(op, Text("value.roofline.head"), 1, accelerator, compute_format, a)
             for op in head_ops(spec, tokens=tokens, tp=tp, dtype_bytes=dtype_bytes)]
    total_s = sum(r["time_s"] * r["layers"] for r in rows)
    values = {
        "gpu": accelerator.key, "tp": tp, "batch": batch, "seq": seq, "tokens": tokens,
        "compute_format": compute_format,
        "roofs": {"peak_flops_per_s": peak, "memory_bandwidth_bytes_per_s": bandwidth,
                  "ridge_flops_per_byte": peak / bandwidth,
                  "achieved_peak_fraction": a.gemm_peak_fraction,
                  "achieved_bandwidth_fraction": a.memory_bandwidth_fraction},
        "ops": rows,
        "forward_s": total_s,
        "forward_flops": sum(r["flops"] * r["layers"] for r in rows),
    }
    notes = (Text("note.roofline.share"),)
    return Report(command="roofline", model=spec.name, values=values, notes=notes, approximate=approximation(spec))


def _op_row(op: Op, group: str, layers: int, accelerator: Accelerator, compute_format: str,
            a: PerformanceAssumptions) -> dict[str, Any]:
    """One kernel (all ``op.count`` launches of it, in one layer): its work, intensity, time and bound."""
    timed = op_time(op, accelerator, compute_format, a)
    flops, moved = op.flops * op.count, op.bytes * op.count
    return {"name": op.name, "group": group, "kind": op.kind.value, "layers": layers, "count": op.count,
            "flops": flops, "bytes": moved, "intensity_flops_per_byte": op.intensity_flops_per_byte,
            "compute_s": timed.compute_s, "memory_s": timed.memory_s, "time_s": timed.time_s, "bound": timed.bound,
            "achieved_flops_per_s": flops / timed.time_s if timed.time_s else 0.0}
