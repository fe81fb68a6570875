"""Rendering for people: aligned text tables and JSON. No numbers are computed here."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from suanli.quantity import Quantity


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, align: str = "") -> str:
    """A plain aligned table; ``align`` holds one of 'l'/'r' per column (default: text left, numbers right)."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    if not align:
        align = "".join("r" if rows and _is_number(rows[0][i]) else "l" for i in range(len(headers)))
    lines = []
    for index, row in enumerate(cells):
        padded = [c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(row, widths, align, strict=True)]
        lines.append("  ".join(padded).rstrip())
        if index == 0:
            lines.append("  ".join("─" * w for w in widths))
    return "\n".join(lines)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def key_values(pairs: Sequence[tuple[str, Any]]) -> str:
    """``name  value`` lines, names padded to one width."""
    width = max((len(k) for k, _ in pairs), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in pairs)


def explanations(quantities: Sequence[Quantity]) -> str:
    """The derivation block printed by ``--explain``."""
    return "\n".join(q.explain() for q in quantities)


def emit_json(payload: dict[str, Any]) -> None:
    """Exactly one JSON object on stdout."""
    sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")
