"""Units and their formatting.

Decimal and binary prefixes are different words and are never mixed: ``GB`` is 1e9 bytes, ``GiB`` is 2**30
bytes. Hardware vendors state memory bandwidth, link speed and FLOP/s in decimal units; GPU memory capacity
is marketed in decimal GB but allocators report binary GiB. Names in code carry their unit
(``memory_bytes``, ``bandwidth_bytes_per_s``, ``step_time_s``); these constants convert at the edges.
"""

from __future__ import annotations

KB = 1e3
MB = 1e6
GB = 1e9
TB = 1e12

KiB = 2**10
MiB = 2**20
GiB = 2**30
TiB = 2**40

KILO = 1e3
MEGA = 1e6
GIGA = 1e9
TERA = 1e12
PETA = 1e15

SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86400.0

_DECIMAL_PREFIXES = ((1e24, "Y"), (1e21, "Z"), (1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"),
                     (1e6, "M"), (1e3, "k"))
_BINARY_PREFIXES = ((2.0**50, "Pi"), (2.0**40, "Ti"), (2.0**30, "Gi"), (2.0**20, "Mi"), (2.0**10, "Ki"))
_COUNT_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K"))


def format_decimal(value: float, unit: str, *, digits: int = 3) -> str:
    """``format_decimal(3.14e23, "FLOP")`` → ``"314 ZFLOP"``; decimal (SI) prefixes only."""
    magnitude = abs(value)
    for scale, prefix in _DECIMAL_PREFIXES:
        if magnitude >= scale:
            return f"{_significant(value / scale, digits)} {prefix}{unit}"
    return f"{_significant(value, digits)} {unit}"


def format_bytes(value: float, *, binary: bool = True, digits: int = 3) -> str:
    """Bytes as GiB/MiB (binary, default: what allocators and nvidia-smi report) or GB/MB (decimal)."""
    if not binary:
        return format_decimal(value, "B", digits=digits)
    magnitude = abs(value)
    for scale, prefix in _BINARY_PREFIXES:
        if magnitude >= scale:
            return f"{_significant(value / scale, digits)} {prefix}B"
    return f"{value:.0f} B"


def format_count(value: float, *, digits: int = 4) -> str:
    """Parameter and token counts the way model cards write them: 8.03B, 405B, 124M."""
    magnitude = abs(value)
    for scale, suffix in _COUNT_SUFFIXES:
        if magnitude >= scale:
            return f"{_significant(value / scale, digits)}{suffix}"
    return f"{value:.0f}"


def _significant(value: float, digits: int) -> str:
    """``value`` rounded to ``digits`` significant figures, without scientific notation."""
    if value == 0:
        return "0"
    text = f"{value:.{digits}g}"
    if "e" in text:
        text = f"{value:.0f}"
    return text
