"""A number that remembers how it was computed.

Formulas in ``core/`` are written once, as ordinary arithmetic over a type variable ``Num`` (``float`` or
``Quantity``). Called with plain numbers they run at full speed (search); called with ``Quantity`` leaves
they record an expression tree, so ``explain()`` can print the formula, its inputs and its source::

    >>> h = Quantity.input(4096, "hidden_size")
    >>> v = Quantity.input(128256, "vocab_size")
    >>> emb = (v * h).named("embedding_params", "params", source="HF LlamaModel.embed_tokens")
    >>> print(emb.explain())
    embedding_params = vocab_size × hidden_size = 128,256 × 4,096 = 525,336,576 params  [HF LlamaModel.embed_tokens]

This is deliberately small: four operators, names, units and sources. It is not a computer algebra system.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar, Union

from suanli.i18n import say

Num = TypeVar("Num", float, "Quantity")
Operand = Union[float, "Quantity"]

_SYMBOLS = {"+": " + ", "-": " − ", "*": " × ", "/": " / "}
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


@dataclass(frozen=True, slots=True)
class Quantity:
    """A value with an optional name, unit, source and the expression that produced it."""

    value: float
    name: str = ""
    unit: str = ""
    source: str = ""
    op: str = ""  # "" for a leaf, else one of + - * /
    args: tuple[Quantity, ...] = ()

    @staticmethod
    def input(value: float, name: str, unit: str = "", source: str = "") -> Quantity:
        """A named leaf: a config field, a catalog figure or an assumption."""
        return Quantity(value, name=name, unit=unit, source=source)

    def named(self, name: str, unit: str = "", *, source: str = "") -> Quantity:
        """Label an intermediate result so explanations refer to it by name."""
        return Quantity(self.value, name, unit, source, self.op, self.args)

    # --- arithmetic -------------------------------------------------------------------------------
    def __add__(self, other: Operand) -> Quantity:
        return _combine("+", self, other)

    def __radd__(self, other: Operand) -> Quantity:
        return _combine("+", other, self)

    def __sub__(self, other: Operand) -> Quantity:
        return _combine("-", self, other)

    def __rsub__(self, other: Operand) -> Quantity:
        return _combine("-", other, self)

    def __mul__(self, other: Operand) -> Quantity:
        return _combine("*", self, other)

    def __rmul__(self, other: Operand) -> Quantity:
        return _combine("*", other, self)

    def __truediv__(self, other: Operand) -> Quantity:
        return _combine("/", self, other)

    def __rtruediv__(self, other: Operand) -> Quantity:
        return _combine("/", other, self)

    def __float__(self) -> float:
        return float(self.value)

    # --- explanation ------------------------------------------------------------------------------
    def formula(self, *, values: bool = False) -> str:
        """The expression in terms of named inputs (``values=False``) or their numbers (``values=True``)."""
        return _render(self, values=values, top=True)

    def explain(self) -> str:
        """``name = formula = numbers = value unit  [source]``, one line per named sub-result, deepest last."""
        lines = [_explain_line(self)]
        seen = {self.name}
        for node in _named_descendants(self):
            if node.name not in seen and node.op:
                seen.add(node.name)
                lines.append("  where " + _explain_line(node))
        return "\n".join(lines)

    def leaves(self) -> list[Quantity]:
        """Named inputs this value depends on, each once, in first-use order."""
        found: dict[str, Quantity] = {}
        _collect_leaves(self, found)
        return list(found.values())


def value_of(x: Operand) -> float:
    """The plain number behind a float or a Quantity."""
    return x.value if isinstance(x, Quantity) else x


def _combine(op: str, left: Operand, right: Operand) -> Quantity:
    a = left if isinstance(left, Quantity) else Quantity(left)
    b = right if isinstance(right, Quantity) else Quantity(right)
    if op == "+":
        value = a.value + b.value
    elif op == "-":
        value = a.value - b.value
    elif op == "*":
        value = a.value * b.value
    else:
        value = a.value / b.value
    return Quantity(value, op=op, args=(a, b))


def _render(q: Quantity, *, values: bool, top: bool = False, parent_op: str = "") -> str:
    if not q.op or (q.name and not top):
        return _format_number(q.value) if values or not q.name else q.name
    left, right = q.args
    text = (_render(left, values=values, parent_op=q.op)
            + _SYMBOLS[q.op]
            + _render(right, values=values, parent_op=q.op + "r"))
    needs_parens = parent_op and (
        _PRECEDENCE[parent_op[0]] > _PRECEDENCE[q.op]
        or (parent_op in ("-r", "/r") and _PRECEDENCE[parent_op[0]] == _PRECEDENCE[q.op])
    )
    return f"({text})" if needs_parens else text


def _explain_line(q: Quantity) -> str:
    unit = f" {q.unit}" if q.unit else ""
    source = f"  [{say(q.source)}]" if q.source else ""  # a catalogue Text is said in the reader's language
    head = q.name or "value"
    if not q.op:
        return f"{head} = {_format_number(q.value)}{unit}{source}"
    symbolic = q.formula()
    numeric = q.formula(values=True)
    parts = [head, symbolic] + ([numeric] if numeric != symbolic else [])
    return " = ".join(parts) + f" = {_format_number(q.value)}{unit}{source}"


def _named_descendants(q: Quantity) -> list[Quantity]:
    found: list[Quantity] = []
    for arg in q.args:
        if arg.name:
            found.append(arg)
        found.extend(_named_descendants(arg))
    return found


def _collect_leaves(q: Quantity, found: dict[str, Quantity]) -> None:
    if not q.op:
        if q.name:
            found.setdefault(q.name, q)
        return
    for arg in q.args:
        _collect_leaves(arg, found)


def _format_number(value: float) -> str:
    if float(value).is_integer() and abs(value) < 1e18:
        return f"{int(value):,}"
    return f"{value:.6g}"


def plain(value: float, name: str) -> float:
    """Lift an input as a bare number: formulas run at full speed (search, evaluation)."""
    return value


def traced(value: float, name: str) -> Quantity:
    """Lift an input as a named leaf: formulas record their expression (``--explain``)."""
    return Quantity.input(value, name)
