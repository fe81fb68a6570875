"""Purchase prices of accelerators, as validated frozen data read from ``catalog/purchase_prices.toml``.

A price buys one ``unit``: a card or module on its own (``"gpu"``, the host server bought separately) or a whole
server as it is sold (``"node"``, host included). Every entry carries its date and source; a part with no price
in the file has none here (``purchases_for`` returns an empty tuple), never a guessed one.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal, get_args

from suanli.errors import NotFound, SpecError, require_positive
from suanli.spec.hardware import _read_catalog, entry_problem, get_accelerator

PurchaseUnit = Literal["gpu", "node"]
PurchaseKind = Literal["msrp", "list", "quote", "street", "estimate", "user"]
PurchaseConfidence = Literal["high", "medium", "low"]

_DATE = re.compile(r"\d{4}-\d{2}(-\d{2})?")
_CONFIDENCE_RANK = {"low": 0, "medium": 1, "high": 2}


@dataclass(frozen=True, slots=True, kw_only=True)
class Purchase:
    """One published price: ``usd`` buys ``gpus_per_unit`` GPUs of ``accelerator`` (a catalog key)."""

    accelerator: str
    unit: PurchaseUnit
    gpus_per_unit: int
    usd: float
    kind: PurchaseKind
    description: str
    date: str
    source: str
    confidence: PurchaseConfidence
    usd_low: float | None = None
    usd_high: float | None = None

    def __post_init__(self) -> None:
        acc, date = self.accelerator, self.date
        what = f"purchase price of {acc} ({date})"
        for name, value, choices in (("unit", self.unit, PurchaseUnit), ("kind", self.kind, PurchaseKind),
                                     ("confidence", self.confidence, PurchaseConfidence)):
            if value not in get_args(choices):
                raise SpecError(f"{what}: {name} {value!r} is not one of {', '.join(get_args(choices))}",
                                key="error.purchase.not_one_of",
                                fields={"accelerator": acc, "date": date, "name": name, "value": value,
                                        "choices": ", ".join(get_args(choices))})
        require_positive(f"{what}: usd", self.usd)
        require_positive(f"{what}: gpus_per_unit", self.gpus_per_unit)
        if self.unit == "gpu" and self.gpus_per_unit != 1:
            raise SpecError(f"{what}: a unit of 'gpu' holds one GPU, not {self.gpus_per_unit}; use unit = 'node'",
                            key="error.purchase.gpu_unit",
                            fields={"accelerator": acc, "date": date, "gpus": self.gpus_per_unit})
        if (self.usd_low is None) != (self.usd_high is None):
            raise SpecError(f"{what}: usd_low and usd_high go together (the quoted range)",
                            key="error.purchase.range_pair", fields={"accelerator": acc, "date": date})
        if self.usd_low is not None and self.usd_high is not None and not 0 < self.usd_low <= self.usd <= self.usd_high:
            raise SpecError(f"{what}: usd {self.usd} must lie in the quoted range [{self.usd_low}, {self.usd_high}]",
                            key="error.purchase.outside_range",
                            fields={"accelerator": acc, "date": date, "usd": self.usd, "low": self.usd_low,
                                    "high": self.usd_high})
        if not _DATE.fullmatch(date):
            raise SpecError(f"{what}: date {date!r} must be YYYY-MM or YYYY-MM-DD", key="error.purchase.date",
                            fields={"accelerator": acc, "date": date})
        if not self.source.strip() or not self.description.strip():
            raise SpecError(f"{what}: needs a source and a description; cite the page behind the price",
                            key="error.purchase.no_source", fields={"accelerator": acc, "date": date})

    @property
    def usd_per_gpu(self) -> float:
        """Price per GPU = usd / gpus_per_unit (a node's host share included)."""
        return self.usd / self.gpus_per_unit

    @property
    def includes_host(self) -> bool:
        """A node price includes the server around the GPUs; a card price does not."""
        return self.unit == "node"


@functools.cache
def load_purchases() -> tuple[Purchase, ...]:
    """Every catalogued purchase price, in file order, each naming a known accelerator."""
    built = []
    for raw in _read_catalog("purchase_prices.toml", "purchase"):
        try:
            get_accelerator(raw["accelerator"])
            built.append(Purchase(**raw))
        except (KeyError, TypeError, NotFound, SpecError) as bad:
            problem = entry_problem(bad)
            raise SpecError(f"purchase_prices.toml, entry {raw.get('accelerator', '?')!r} {raw.get('date', '')}: "
                            f"{problem}; the file's header lists the fields", key="error.purchase.catalog_entry",
                            fields={"entry": raw.get("accelerator", "?"), "date": raw.get("date", ""),
                                    "problem": problem}) from None
    return tuple(built)


def purchases_for(accelerator_key: str) -> tuple[Purchase, ...]:
    """The prices of one accelerator, in file order (empty when none is catalogued)."""
    return tuple(p for p in load_purchases() if p.accelerator == accelerator_key)


def preferred_purchase(accelerator_key: str) -> Purchase | None:
    """The price ``plan buy`` uses: the highest confidence, then the most recent, then a whole node; None when
    the catalog has no price for the part."""
    offers = purchases_for(accelerator_key)
    if not offers:
        return None
    return max(offers, key=lambda p: (_CONFIDENCE_RANK[p.confidence], _sortable_date(p.date), p.unit == "node"))


def _sortable_date(date: str) -> str:
    """"2024-08" sorts as the start of its month, before any dated day of it."""
    return date if len(date) == 10 else f"{date}-00"
