"""Rendering for people: aligned text tables and JSON. No numbers are computed here."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from suanli.i18n import display_width, say, t, translate_label
from suanli.quantity import Quantity

if TYPE_CHECKING:
    from suanli.report import Report

# Where emit_json sends its object: stdout, or (inside ``captured_json()``, as the web server runs a command) a list
# owned by the caller. A ContextVar, so concurrent requests in threads never see each other's output.
_JSON_SINK: ContextVar[list[dict[str, Any]] | None] = ContextVar("suanli_json_sink", default=None)
_RAW_SINK: ContextVar[list[dict[str, Any]] | None] = ContextVar("suanli_raw_json_sink", default=None)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, align: str = "") -> str:
    """A plain aligned table; ``align`` holds one of 'l'/'r' per column (default: text left, numbers right).
    Headings and first-column labels are said in the current language (``suanli.i18n.translate_label``)."""
    cells = [[translate_label(str(h)) for h in headers]] + [_row_cells(row) for row in rows]
    widths = [max(display_width(row[i]) for row in cells) for i in range(len(headers))]
    if not align:
        align = "".join("r" if rows and _is_number(rows[0][i]) else "l" for i in range(len(headers)))
    lines = []
    for index, row in enumerate(cells):
        padded = [_pad(c, w, a) for c, w, a in zip(row, widths, align, strict=True)]
        lines.append("  ".join(padded).rstrip())
        if index == 0:
            lines.append("  ".join("─" * w for w in widths))
    return "\n".join(lines)


def _row_cells(row: Sequence[Any]) -> list[str]:
    cells = ["" if c is None else say(c) for c in row]  # a Text value is said in the current language
    return [translate_label(cells[0]), *cells[1:]] if cells and isinstance(row[0], str) else cells


def _pad(text: str, width: int, align: str) -> str:
    """``text`` padded to ``width`` terminal columns (a CJK character takes two)."""
    gap = " " * (width - display_width(text))
    return gap + text if align == "r" else text + gap


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def key_values(pairs: Sequence[tuple[str, Any]]) -> str:
    """``name  value`` lines, names padded to one width (and said in the current language)."""
    names = [translate_label(k) for k, _ in pairs]
    width = max((display_width(k) for k in names), default=0)
    return "\n".join(f"{_pad(k, width, 'l')}  {say(v)}" for k, (_, v) in zip(names, pairs, strict=True))


def explanations(quantities: Sequence[Quantity]) -> str:
    """The derivation block printed by ``--explain`` (formulas keep their code names; "where" is translated)."""
    text = "\n".join(q.explain() for q in quantities)
    where = t("cli.where")
    return text if where == "where" else text.replace("\n  where ", f"\n  {where} ")


def emit_json(payload: dict[str, Any]) -> None:
    """Exactly one JSON object on stdout (or into the list of an enclosing ``captured_json()``)."""
    sink = _JSON_SINK.get()
    if sink is not None:
        raw = _RAW_SINK.get()
        if raw is not None:  # before serialising: its i18n.Text values still know their catalogue key
            raw.append(payload)
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


@contextmanager
def captured_payloads() -> Iterator[list[dict[str, Any]]]:
    """Inside an enclosing ``captured_json()``, also the objects as the command built them (the web page's ``said``)."""
    raw: list[dict[str, Any]] = []
    token = _RAW_SINK.set(raw)
    try:
        yield raw
    finally:
        _RAW_SINK.reset(token)


def report_json(report: Report, *, explain: bool) -> dict[str, Any]:
    """``--json``'s object: ``report.to_dict()``, plus with ``--explain`` an ``explanations`` list (name, value,
    unit, formula over named inputs, the same with numbers, source, and the ``--explain`` text)."""
    payload = report.to_dict()
    if explain:
        payload["explanations"] = [{"name": q.name, "value": q.value, "unit": q.unit, "formula": q.formula(),
                                    "formula_values": q.formula(values=True), "source": q.source,
                                    "text": q.explain()} for q in report.explanations]
    return payload
