"""The simulator's per-step timeline, averaged into at most N equal time buckets: a bounded object that
``suanli simulate --timeline-points N --json`` prints and the web page draws (the same function for both).

A raw timeline has one row per engine step (or per fast-forwarded stretch of decode steps) of each replica:
``(start_s, end_s, steps, replica, running, waiting, prefill_tokens, kv_blocks_used)``, tens of thousands of
rows for a few hundred requests. Bucket ``b`` covers ``[t0 + b·w, t0 + (b+1)·w)`` with ``w = (t1 - t0) / n``,
``n = min(N, engine steps)`` (a fast-forwarded row is many steps at one level, so
buckets may be finer than rows), and holds:

- ``running``, ``waiting``, ``kv_blocks_used``: time-weighted means over the bucket, summed over replicas
  (Σ_rows value × overlap / w; a replica idle between steps counts as zero for that time);
- ``steps``, ``prefill_tokens``: sums, a row spread over the buckets it spans in proportion to the overlap
  (a fast-forwarded stretch of 40 decode steps across two buckets gives each its share);
- ``kv_utilization`` = ``kv_blocks_used`` / ``kv_blocks_total`` (blocks of every replica's pool);
- ``prefill_tokens_per_step`` = ``prefill_tokens`` / ``steps`` (0 when the bucket has no step).

Nothing is lost in the sums (Σ steps and Σ prefill_tokens equal the raw timeline's); the levels are exact means.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from suanli.errors import SpecError

RawRow = tuple[float, float, int, int, int, int, int, int]
RAW_COLUMNS = ("start_s", "end_s", "steps", "replica", "running", "waiting", "prefill_tokens", "kv_blocks_used")
BUCKET_COLUMNS = ("start_s", "end_s", "steps", "running", "waiting", "prefill_tokens", "kv_blocks_used",
                  "kv_utilization", "prefill_tokens_per_step")
_LEVELS = {name: RAW_COLUMNS.index(name) for name in ("running", "waiting", "kv_blocks_used")}  # time-averaged
_SUMS = {name: RAW_COLUMNS.index(name) for name in ("steps", "prefill_tokens")}


@dataclass(frozen=True, slots=True, kw_only=True)
class BucketedTimeline:
    """At most ``points`` rows of BUCKET_COLUMNS, from ``raw_rows`` rows of the raw timeline."""

    rows: tuple[tuple[float, ...], ...]
    raw_rows: int
    bucket_s: float
    kv_blocks_total: int

    def to_dict(self) -> dict[str, Any]:
        return {"columns": list(BUCKET_COLUMNS), "rows": [list(r) for r in self.rows], "raw_rows": self.raw_rows,
                "bucket_s": self.bucket_s, "kv_blocks_total": self.kv_blocks_total}


def bucket_timeline(raw: Sequence[RawRow], *, points: int, kv_blocks_total: int) -> BucketedTimeline:
    """``raw`` averaged into ``min(points, steps)`` equal time buckets (module docstring)."""
    if points < 1:
        raise SpecError(f"--timeline-points {points}: give at least 1 point",
                        key="error.simulate.timeline_points", fields={"points": points})
    if not raw:
        return BucketedTimeline(rows=(), raw_rows=0, bucket_s=0.0, kv_blocks_total=kv_blocks_total)
    t0, t1 = min(r[0] for r in raw), max(r[1] for r in raw)
    n = min(points, max(1, sum(r[2] for r in raw)))
    width = (t1 - t0) / n if t1 > t0 else 1.0
    acc = [dict.fromkeys((*_LEVELS, *_SUMS), 0.0) for _ in range(n)]
    for row in raw:
        _spread(row, acc, t0=t0, width=width)
    rows = tuple(_bucket_row(b, acc[b], t0=t0, width=width, kv_blocks_total=kv_blocks_total) for b in range(n))
    return BucketedTimeline(rows=rows, raw_rows=len(raw), bucket_s=width, kv_blocks_total=kv_blocks_total)


def _spread(row: RawRow, acc: list[dict[str, float]], *, t0: float, width: float) -> None:
    """Add one raw row to the buckets it overlaps: levels × overlap seconds, sums × overlap fraction."""
    start, end = row[0], row[1]
    last = len(acc) - 1
    first_b, last_b = min(int((start - t0) / width), last), min(int((end - t0) / width), last)
    for b in range(first_b, last_b + 1):
        lo, hi = max(start, t0 + b * width), min(end, t0 + (b + 1) * width) if b < last else end
        overlap = max(0.0, hi - lo)
        share = overlap / (end - start) if end > start else (1.0 if b == first_b else 0.0)
        for name, index in _LEVELS.items():
            acc[b][name] += row[index] * overlap
        for name, index in _SUMS.items():
            acc[b][name] += row[index] * share


def _bucket_row(b: int, sums: dict[str, float], *, t0: float, width: float,
                kv_blocks_total: int) -> tuple[float, ...]:
    levels = {name: sums[name] / width for name in _LEVELS}
    steps = sums["steps"]
    return (t0 + b * width, t0 + (b + 1) * width, steps, levels["running"], levels["waiting"],
            sums["prefill_tokens"], levels["kv_blocks_used"],
            levels["kv_blocks_used"] / kv_blocks_total if kv_blocks_total else 0.0,
            sums["prefill_tokens"] / steps if steps else 0.0)
