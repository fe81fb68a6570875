"""Rendering for people: aligned text tables and JSON. No numbers are computed here."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from suanli.quantity import Quantity

if TYPE_CHECKING:
    from suanli.report import Report

# Where emit_json sends its object: stdout, or (inside ``captured_json()``, as the web server runs a command) a list
# owned by the caller. A ContextVar, so concurrent requests in threads never see each other's output.
_JSON_SINK: ContextVar[list[dict[str, Any]] | None] = ContextVar("suanli_json_sink", default=None)


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
    """Exactly one JSON object on stdout (or into the list of an enclosing ``captured_json()``)."""
    sink = _JSON_SINK.get()
    if sink is not None:
        sink.append(json.loads(json.dumps(payload, ensure_ascii=False, default=str)))  # the same object as stdout's
        return
    sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n")


@contextmanager
def captured_json() -> Iterator[list[dict[str, Any]]]:
    """Inside this block ``emit_json`` appends its object (as stdout would parse it) to the yielded list."""
    sink: list[dict[str, Any]] = []
    token = _JSON_SINK.set(sink)
    try:
        yield sink
    finally:
        _JSON_SINK.reset(token)


def report_json(report: Report, *, explain: bool) -> dict[str, Any]:
    """``--json``'s object: ``report.to_dict()``, plus with ``--explain`` an ``explanations`` list (name, value,
    unit, formula over named inputs, the same with numbers, source, and the ``--explain`` text)."""
    payload = report.to_dict()
    if explain:
        payload["explanations"] = [{"name": q.name, "value": q.value, "unit": q.unit, "formula": q.formula(),
                                    "formula_values": q.formula(values=True), "source": q.source,
                                    "text": q.explain()} for q in report.explanations]
    return payload
