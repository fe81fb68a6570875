"""Arguments shared by several commands, parsed once at the edge."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from suanli.spec.hardware import Accelerator

Commands: TypeAlias = "argparse._SubParsersAction[Any]"


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1 (``8``, or ``1e3`` for a whole number in scientific notation), with a
    one-line error otherwise."""
    try:
        value = int(text)
    except ValueError:
        value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _whole_number(text: str) -> int:
    """``"1e9"`` → 1000000000; anything that is not a finite whole number is a one-line argparse error."""
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if not number.is_integer():
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    return int(number)


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object (stable keys) instead of a table")
    parser.add_argument("--explain", action="store_true", help="show the formulas, inputs and sources")


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0 (``2e12`` or ``2000000000000``), with a one-line error otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number such as 2e12, got '{text}'") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def fraction(text: str) -> float:
    """argparse type: a number in (0, 1] (a share: of GPU memory, of the year), with a one-line error otherwise."""
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def accelerator_list(text: str) -> tuple[Accelerator, ...]:
    """``--gpu h100,a100-80gb`` (or ``local``) → the accelerators, each once, in order; a list naming none is a
    SpecError."""
    from suanli.cli.local_gpu import resolve_accelerator
    from suanli.errors import SpecError

    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise SpecError("name at least one accelerator, e.g. --gpu h100 or --gpu h100,a100-80gb",
                        key="error.cli.no_accelerator")
    return tuple(dict.fromkeys(resolve_accelerator(name) for name in names))
