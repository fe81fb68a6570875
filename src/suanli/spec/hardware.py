"""Accelerators and the links between them, as validated frozen data read from the bundled catalog.

``catalog/accelerators.toml`` and ``catalog/interconnects.toml`` hold the numbers, each entry with its
sources; this module types, converts and checks them. Units are converted once, at load: TFLOPS to FLOP/s,
decimal GB/s to bytes/s, and memory from the binary GiB the part really has (an "80 GB" H100 holds 80 GiB).

Derived figures (``ridge_point_flops_per_byte``, ``flops_per_watt``, ``flop_per_usd``) are methods, never
stored. ``get_accelerator`` takes a key or an alias, case-insensitive, ``_`` or spaces for ``-``, with an
optional vendor prefix: "H100", "nvidia_h100" and "h100-sxm-80gb" name the same part.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, NoReturn, TypeVar, get_args

from suanli.errors import NotFound, SpecError, UnknownAccelerator, close_matches, require_positive, suggest
from suanli.i18n import ErrorMessage, Text
from suanli.units import GB, MEGA, SECONDS_PER_HOUR, TERA, GiB, MiB

AcceleratorKind = Literal["gpu", "tpu", "npu", "lpu", "cpu", "soc"]
InterconnectKind = Literal["scale-up", "host", "scale-out"]
BandwidthScope = Literal["per-gpu", "per-link", "per-port", "per-x16"]
Topology = Literal["switch", "pair", "full-mesh", "mesh", "torus"]
PriceKind = Literal["on-demand", "spot", "reserved"]
Confidence = Literal["high", "medium", "low"]
LatencyBasis = Literal["source", "assumption"]

#: Keys of ``Accelerator.peak_flops_per_s``; int8 and int4 count integer operations.
FORMATS = ("fp64", "fp64_tensor", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "fp4")

_NAME = re.compile(r"[a-z0-9][a-z0-9.+-]*")
_DATE = re.compile(r"\d{4}-\d{2}(-\d{2})?")
_T = TypeVar("_T")


def _check_choice(what: str, value: str, choices: Any) -> None:
    if value not in get_args(choices):
        raise SpecError(f"{what} {value!r} is not one of {', '.join(get_args(choices))}",
                        key="error.hardware.not_one_of",
                        fields={"what": what, "value": value, "choices": ", ".join(get_args(choices))})


def _check_name(what: str, name: str) -> None:
    if not _NAME.fullmatch(name):
        raise SpecError(f"{what} {name!r} must use lowercase letters, digits, '.', '+' and '-' only",
                        key="error.hardware.name_characters", fields={"what": what, "name": name})


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise SpecError(f"unknown number format {fmt!r}{suggest(fmt, FORMATS)}; known: {', '.join(FORMATS)}",
                        key="error.unknown_tensor_format",
                        fields={"fmt": fmt, "suggestions": close_matches(fmt, FORMATS), "known": ", ".join(FORMATS)})


def _check_sources(what: str, sources: tuple[str, ...]) -> None:
    if not sources or not all(s.strip() for s in sources):
        raise SpecError(f"{what} needs at least one non-empty source; cite the datasheet or page behind it",
                        key="error.hardware.no_source", fields={"what": what})


class FlopsTable(dict[str, float]):
    """Peak FLOP/s by format: a read-only ``dict``, so ``dataclasses.asdict``, ``copy`` and ``pickle`` work."""

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError("peak_flops_per_s is read-only; make a new Accelerator with dataclasses.replace")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse

    def __reduce__(self) -> tuple[type[FlopsTable], tuple[dict[str, float]]]:
        return type(self), (dict(self),)

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))


@dataclass(frozen=True, slots=True, kw_only=True)
class Interconnect:
    """A link technology; ``bandwidth_bytes_per_s`` is one direction, for the unit ``bandwidth_scope``."""

    key: str
    name: str
    kind: InterconnectKind
    bandwidth_bytes_per_s: float
    bandwidth_scope: BandwidthScope
    latency_s: float
    latency_basis: LatencyBasis  # "assumption" where no published figure exists
    notes: tuple[str, ...] = field(default=(), repr=False)
    sources: tuple[str, ...] = field(repr=False)

    def __post_init__(self) -> None:
        _check_name("interconnect key", self.key)
        _check_choice(f"{self.key}: kind", self.kind, InterconnectKind)
        _check_choice(f"{self.key}: bandwidth_scope", self.bandwidth_scope, BandwidthScope)
        require_positive(f"{self.key}: bandwidth_bytes_per_s", self.bandwidth_bytes_per_s)
        require_positive(f"{self.key}: latency_s", self.latency_s)
        _check_choice(f"{self.key}: latency_basis", self.latency_basis, LatencyBasis)
        _check_sources(f"interconnect {self.key}", self.sources)


@dataclass(frozen=True, slots=True, kw_only=True)
class Link:
    """One accelerator's share of a fabric: bandwidth per direction to all peers together and to one peer."""

    interconnect: Interconnect
    bandwidth_bytes_per_s: float
    peer_bandwidth_bytes_per_s: float
    domain_size: int
    topology: Topology

    def __post_init__(self) -> None:
        what = f"{self.interconnect.key} link"
        total, peer = self.bandwidth_bytes_per_s, self.peer_bandwidth_bytes_per_s
        require_positive(f"{what} bandwidth_bytes_per_s", total)
        require_positive(f"{what} peer_bandwidth_bytes_per_s", peer)
        _check_choice(f"{what} topology", self.topology, Topology)
        if peer > total:
            raise SpecError(f"{what}: peer bandwidth {peer:.4g} B/s exceeds the total to all peers "
                            f"{total:.4g} B/s; the two are swapped",
                            key="error.hardware.peer_above_total", fields={"what": what, "peer": peer, "total": total})
        if self.domain_size < 2:
            raise SpecError(f"{what}: domain_size {self.domain_size} is below 2; leave scale_up out instead",
                            key="error.hardware.domain_size", fields={"what": what, "size": self.domain_size})


@dataclass(frozen=True, slots=True, kw_only=True)
class Price:
    """A public rental price per accelerator-hour, with when and where it was seen."""

    usd_per_hour: float
    kind: PriceKind
    provider: str
    date: str
    source: str

    def __post_init__(self) -> None:
        require_positive(f"price from {self.provider!r}: usd_per_hour", self.usd_per_hour)
        _check_choice(f"price from {self.provider!r}: kind", self.kind, PriceKind)
        if not _DATE.fullmatch(self.date):
            raise SpecError(f"price from {self.provider!r}: date {self.date!r} must be YYYY-MM or YYYY-MM-DD",
                            key="error.hardware.price_date", fields={"provider": self.provider, "date": self.date})
        _check_sources(f"price from {self.provider!r}", (self.source,))


@dataclass(frozen=True, slots=True, kw_only=True)
class Accelerator:
    """One accelerator (a GPU, TPU chip, GCD or CPU socket) with its dense peak throughput per format."""

    key: str
    name: str
    vendor: str
    kind: AcceleratorKind
    aliases: tuple[str, ...] = ()
    release_year: int
    memory_gb: float  # the marketed label
    memory_bytes: int  # what the part holds: DRAM is binary-sized
    driver_memory_bytes: int | None = None  # total nvidia-smi reported on a real machine, where seen...
    driver_memory_source: str | None = None  # ...and which machine, driver and date
    memory_type: str
    memory_bandwidth_bytes_per_s: float
    peak_flops_per_s: Mapping[str, float]  # dense, by FORMATS key; stored as a read-only FlopsTable
    unverified_formats: tuple[str, ...] = ()  # supported by the hardware, no published dense peak
    inference_only: bool = False  # no training stack exists for it (Groq's LPU)
    tdp_w: float | None = None
    # the share of peak that FlashAttention-2-generation kernels reach here, as a multiple of their share on
    # Ampere (1.0: no penalty known); see the catalog header
    ampere_attention_ratio: float = 1.0
    scale_up: Link | None = None
    host_link: Interconnect | None = None
    prices: tuple[Price, ...] = ()
    confidence: Confidence
    estimated: tuple[str, ...] = ()  # catalog fields that are derived or third-party
    notes: tuple[str, ...] = field(default=(), repr=False)
    sources: tuple[str, ...] = field(repr=False)

    def __post_init__(self) -> None:
        for name in (self.key, *self.aliases):
            _check_name(f"{self.key}: name", name)
        _check_choice(f"{self.key}: kind", self.kind, AcceleratorKind)
        _check_choice(f"{self.key}: confidence", self.confidence, Confidence)
        for what in ("release_year", "memory_gb", "memory_bytes", "memory_bandwidth_bytes_per_s"):
            require_positive(f"{self.key}: {what}", getattr(self, what))
        if self.tdp_w is not None:
            require_positive(f"{self.key}: tdp_w", self.tdp_w)
        if not 0 < self.ampere_attention_ratio <= 1:
            raise SpecError(f"{self.key}: ampere_attention_ratio must be in (0, 1], got {self.ampere_attention_ratio}",
                            key="error.hardware.attention_ratio",
                            fields={"key": self.key, "ratio": self.ampere_attention_ratio})
        if (self.driver_memory_bytes is None) != (self.driver_memory_source is None):
            raise SpecError(f"{self.key}: driver_memory_bytes and driver_memory_source go together",
                            key="error.hardware.driver_memory_pair", fields={"key": self.key})
        if self.driver_memory_bytes is not None and not 0 < self.driver_memory_bytes <= self.memory_bytes:
            raise SpecError(f"{self.key}: driver_memory_bytes {self.driver_memory_bytes} must be positive "
                            f"and at most memory_bytes {self.memory_bytes}", key="error.hardware.driver_memory",
                            fields={"key": self.key, "driver": self.driver_memory_bytes, "memory": self.memory_bytes})
        self._check_flops()
        for fmt in self.unverified_formats:
            _check_format(fmt)
            if fmt in self.peak_flops_per_s:
                raise SpecError(f"{self.key}: {fmt} has a dense peak and is listed in unverified_formats; "
                                "keep it in one place", key="error.hardware.unverified_twice",
                                fields={"key": self.key, "fmt": fmt})
        _check_sources(f"accelerator {self.key}", self.sources)
        object.__setattr__(self, "peak_flops_per_s", FlopsTable(self.peak_flops_per_s))

    def _check_flops(self) -> None:
        for fmt, flops in self.peak_flops_per_s.items():
            _check_format(fmt)
            require_positive(f"{self.key}: dense {fmt} TFLOPS", flops / TERA)
        present = {"memory_gb", "memory_bandwidth_gb_s", *(f"dense_tflops.{x}" for x in self.formats)}
        present |= {name for name in ("tdp_w", "scale_up", "host_link") if getattr(self, name) is not None}
        if unknown := sorted(set(self.estimated) - present):
            raise SpecError(f"{self.key}: 'estimated' lists {', '.join(unknown)}, which the entry does not "
                            f"set; name catalog fields it has, such as {', '.join(sorted(present)[:3])}",
                            key="error.hardware.estimated_unset",
                            fields={"key": self.key, "unknown": ", ".join(unknown),
                                    "present": ", ".join(sorted(present)[:3])})

    @property
    def formats(self) -> tuple[str, ...]:
        """The number formats with a catalogued dense peak, in ``FORMATS`` order."""
        return tuple(fmt for fmt in FORMATS if fmt in self.peak_flops_per_s)

    @property
    def platform(self) -> str:
        """``vendor-kind`` ("nvidia-gpu", "google-tpu", "intel-cpu"): what engines' ``runs_on`` lists name."""
        return f"{self.vendor.lower()}-{self.kind}"

    @property
    def on_chip_memory_only(self) -> bool:
        """True for parts whose only memory is on-chip SRAM (Groq's LPU): weights are spread over many chips."""
        return self.memory_type == "SRAM"

    def supports(self, fmt: str) -> bool:
        """Whether the hardware computes in ``fmt``: it has a dense peak, or is listed in ``unverified_formats``.
        A format in neither is unsupported (bf16 on Volta, fp8 before Ada/Hopper)."""
        _check_format(fmt)
        return fmt in self.peak_flops_per_s or fmt in self.unverified_formats

    def peak_flops(self, fmt: str) -> float:
        """Dense peak FLOP/s (integer op/s for int8/int4) in ``fmt``."""
        _check_format(fmt)
        if fmt not in self.peak_flops_per_s:
            raise SpecError(f"{self.name} has no {fmt} throughput in the catalog; formats it supports: "
                            f"{', '.join(self.formats) or 'none'}",
                            key="error.no_format_peak",
                            fields={"gpu": self.name, "fmt": fmt, "formats": ", ".join(self.formats) or "none"})
        return self.peak_flops_per_s[fmt]

    def ridge_point_flops_per_byte(self, fmt: str) -> float:
        """Roofline ridge point = peak FLOP/s / memory bandwidth: kernels in ``fmt`` with more FLOPs per
        byte of memory traffic than this are compute-bound, fewer are bandwidth-bound."""
        return self.peak_flops(fmt) / self.memory_bandwidth_bytes_per_s

    def flops_per_watt(self, fmt: str) -> float:
        """Peak FLOP/s per watt of ``tdp_w``: compute density at the power limit, not a measured draw."""
        if self.tdp_w is None:
            raise SpecError(f"{self.name} has no published power limit (tdp_w); FLOP/s per watt is unknown",
                            key="error.no_tdp", fields={"gpu": self.name})
        return self.peak_flops(fmt) / self.tdp_w

    def flop_per_usd(self, fmt: str, usd_per_hour: float) -> float:
        """FLOP bought per US dollar at peak = peak FLOP/s x 3600 s / price per hour."""
        require_positive("usd_per_hour", usd_per_hour)
        return self.peak_flops(fmt) * SECONDS_PER_HOUR / usd_per_hour


def _read_catalog(filename: str, table: str) -> list[dict[str, Any]]:
    from importlib import resources  # here, not at module top: it costs ~10 ms of import time

    text = resources.files("suanli").joinpath("catalog", filename).read_text(encoding="utf-8")
    entries: list[dict[str, Any]] = tomllib.loads(text).get(table, [])
    return entries


def _interconnect(raw: dict[str, Any]) -> Interconnect:
    r = dict(raw, notes=tuple(raw.get("notes", ())), sources=tuple(raw.get("sources", ())))
    r["bandwidth_bytes_per_s"] = r.pop("bandwidth_gb_s_per_direction") * GB
    r["latency_s"] = r.pop("latency_us") / MEGA
    return Interconnect(**r)


def _link(raw: dict[str, Any]) -> Link:
    r = dict(raw, interconnect=get_interconnect(raw["interconnect"]))
    total_gb_s = r.pop("bandwidth_gb_s_per_direction")
    r["bandwidth_bytes_per_s"] = total_gb_s * GB
    r["peer_bandwidth_bytes_per_s"] = r.pop("peer_bandwidth_gb_s_per_direction", total_gb_s) * GB
    return Link(**r)


def _accelerator(raw: dict[str, Any]) -> Accelerator:
    r = dict(raw, prices=tuple(Price(**p) for p in raw.get("prices", ())))
    r.update({name: tuple(raw.get(name, ())) for name in ("aliases", "estimated", "notes", "sources",
                                                          "unverified_formats")})
    r["memory_bytes"] = round(r.pop("memory_gib") * GiB)
    if "driver_memory_mib" in r:
        r["driver_memory_bytes"] = round(r.pop("driver_memory_mib") * MiB)
    r["memory_bandwidth_bytes_per_s"] = r.pop("memory_bandwidth_gb_s") * GB
    r["peak_flops_per_s"] = {fmt: float(round(tflops * TERA)) for fmt, tflops in r.pop("dense_tflops", {}).items()}
    if "scale_up" in r:
        r["scale_up"] = _link(r["scale_up"])
    if "host_link" in r:
        r["host_link"] = get_interconnect(r["host_link"])
    return Accelerator(**r)


def _build(make: Callable[[dict[str, Any]], _T], entries: list[dict[str, Any]], what: str) -> tuple[_T, ...]:
    """``make`` each entry; a missing, unknown or malformed field becomes a SpecError naming the entry."""
    built = []
    for raw in entries:
        try:
            built.append(make(raw))
        except (KeyError, TypeError, NotFound, SpecError) as bad:
            problem = entry_problem(bad)
            raise SpecError(f"{what}s.toml, entry {raw.get('key', '?')!r}: {problem}; the file's header "
                            "lists the fields and their units", key="error.hardware.catalog_entry",
                            fields={"what": what, "entry": raw.get("key", "?"), "problem": problem}) from None
    return tuple(built)


def entry_problem(bad: Exception) -> str:
    """What was wrong with a catalog entry, for the error that names the entry: "missing field 'x'" for a
    KeyError, else the inner error's message (said in the reader's language through its catalogue key)."""
    if isinstance(bad, KeyError):
        return Text("fix.hardware.missing_field", field=str(bad))
    return ErrorMessage(bad)


def _check_unique(what: str, names: list[tuple[str, str]]) -> None:
    owner: dict[str, str] = {}
    for name, key in names:
        if name in owner:
            raise SpecError(f"{what} {name!r} is used twice ({owner[name]} and {key}); names must be unique",
                            key="error.hardware.name_twice",
                            fields={"what": what, "name": name, "first": owner[name], "second": key})
        owner[name] = key


@functools.cache
def load_interconnects() -> tuple[Interconnect, ...]:
    """Every catalogued interconnect, in catalog order (the file is read once per process)."""
    links = _build(_interconnect, _read_catalog("interconnects.toml", "interconnect"), "interconnect")
    _check_unique("interconnect key", [(link.key, link.key) for link in links])
    return links


@functools.cache
def load_accelerators() -> tuple[Accelerator, ...]:
    """Every catalogued accelerator, in catalog order (the file is read once per process)."""
    accs = _build(_accelerator, _read_catalog("accelerators.toml", "accelerator"), "accelerator")
    _check_unique("accelerator name", [(name, acc.key) for acc in accs for name in (acc.key, *acc.aliases)])
    return accs


def get_interconnect(key: str) -> Interconnect:
    """The interconnect with this key: ``"nvlink4"``, ``"pcie5-x16"``, ``"ib-ndr"``, ..."""
    by_key = {link.key: link for link in load_interconnects()}
    if key not in by_key:
        raise NotFound(f"unknown interconnect {key!r}{suggest(key, by_key)}; known: {', '.join(by_key)}",
                       key="error.unknown_interconnect",
                       fields={"name": key, "suggestions": close_matches(key, by_key), "known": ", ".join(by_key)})
    return by_key[key]


@functools.cache
def _accelerator_index() -> Mapping[str, Accelerator]:
    return MappingProxyType({name: acc for acc in load_accelerators() for name in (acc.key, *acc.aliases)})


def _candidates(name: str) -> Iterator[str]:
    """``name`` normalised, then without a leading vendor word ("nvidia-h100" -> "h100")."""
    wanted = re.sub(r"[\s_]+", "-", name.strip().lower())
    yield wanted
    for vendor in sorted({acc.vendor.lower() for acc in load_accelerators()}):
        if wanted.startswith(f"{vendor}-"):
            yield wanted.removeprefix(f"{vendor}-")


def check_filters(*, vendor: str | None = None, kind: str | None = None, number_format: str | None = None) -> None:
    """Raise NotFound / SpecError for a vendor, kind or number format the catalog does not know, with the
    closest names ("nvdia" → "nvidia"), so a typo never shows an empty or silently unfiltered table."""
    if vendor is not None:
        vendors = sorted({acc.vendor.lower() for acc in load_accelerators()})
        if vendor.lower() not in vendors:
            raise NotFound(f"unknown vendor {vendor!r}{suggest(vendor, vendors)}; known: {', '.join(vendors)}",
                           key="error.unknown_vendor",
                           fields={"name": vendor, "suggestions": close_matches(vendor, vendors),
                                   "known": ", ".join(vendors)})
    if kind is not None and kind.lower() not in get_args(AcceleratorKind):
        kinds = get_args(AcceleratorKind)
        raise NotFound(f"unknown kind {kind!r}{suggest(kind, kinds)}; known: {', '.join(kinds)}",
                       key="error.unknown_kind",
                       fields={"name": kind, "suggestions": close_matches(kind, kinds), "known": ", ".join(kinds)})
    if number_format is not None:
        _check_format(number_format)


def get_accelerator(name: str) -> Accelerator:
    """The accelerator with this key or alias (case-insensitive, ``_``/space for ``-``, vendor optional)."""
    index = _accelerator_index()
    for candidate in _candidates(name):
        if candidate in index:
            return index[candidate]
    wanted = next(_candidates(name))
    hint = suggest(wanted, index)
    raise UnknownAccelerator(f"unknown accelerator {name!r}{hint}; run `suanli gpus` for the catalog",
                             key="error.unknown_accelerator",
                             fields={"name": name, "suggestions": close_matches(wanted, index)})
