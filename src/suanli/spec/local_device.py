"""Which catalog entry is the hardware of this machine, and an entry for a CPU the catalog does not hold.

Pure functions over what a probe read (``suanli.measure.probe`` reads it: NVML, amdsmi, /proc): the device name
as the driver reports it, its memory, and for a CPU its model string, cores, clock and instruction-set flags.

- ``match_gpu("NVIDIA H100 80GB HBM3", 81559 * 2**20)`` → ``h100-sxm-80gb``. The driver's name, normalised as
  ``get_accelerator`` normalises user input (lowercase, spaces to ``-``, vendor word optional), must be a catalog
  key or alias (the catalog lists the driver names as aliases), and the memory the driver reports must be within
  ``GPU_MEMORY_TOLERANCE`` of the entry's: a "Tesla V100-SXM2-16GB" is not the 32 GB entry. No match gives
  ``catalog_key=None`` and the ``nearest`` entry by name.
- ``match_cpu("Intel(R) Xeon(R) Platinum 8480+")`` → ``xeon-platinum-8480+``, the same way, among CPUs.
- ``generic_cpu(facts)`` builds an ``Accelerator`` from the probe for a CPU with no catalog entry:
  peak FLOP/s = cores x clock x FLOPs per cycle per core of the extensions its flags show
  (``catalog/cpu_isa.toml``, with sources), memory = what the OS reports, bandwidth = cores x a Little's-law
  per-core figure. Every such field is listed in ``estimated``: these are upper bounds until ``suanli bench``
  measures the machine.
"""

from __future__ import annotations

import difflib
import functools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from suanli.errors import SpecError, UnknownAccelerator, require_positive
from suanli.i18n import Text
from suanli.spec.hardware import FORMATS, Accelerator, get_accelerator, load_accelerators
from suanli.units import GB, GIGA, TERA

#: A catalog entry matches a probed GPU only when the driver's total memory is within this fraction of the
#: entry's: drivers report a little less than the DRAM (81,559 MiB of an 80 GiB H100, 143,771 MiB of a 141 GiB
#: H200; GDDR parts up to ~8% less, a T4 15,360 MiB of 16 GiB) or a little more than the marketed figure (97,871 MiB
#: of a 94 GiB H100 NVL), while sibling parts differ by far more (16 vs 32 GB V100, 40 vs 80 GB A100, 80 vs 94 GB
#: H100).
GPU_MEMORY_TOLERANCE = 0.10

#: A catalogued CPU socket stands for the local CPU only when the cores this process may use reach at least this
#: share of the socket's fp32 peak (at the probed clock); a virtual machine with two vCPUs of a 56-core Xeon gets
#: an entry built from its two cores instead of the whole socket's throughput.
WHOLE_SOCKET_SHARE = 0.5

_NOISE = re.compile(r"\((?:r|tm)\)|\bcpu\b|\bprocessor\b|@\s*[\d.]+\s*ghz|\b\d+-core\b")


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceMatch:
    """A probed device's catalog entry (``catalog_key``), or None with the ``nearest`` entry and why not."""

    catalog_key: str | None
    nearest: str | None = None
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CpuFacts:
    """What a probe read about the CPU this process runs on. ``cores``: physical cores it may use."""

    model: str
    vendor_id: str | None
    family: int | None
    cores: int
    clock_hz: float
    flags: frozenset[str]
    memory_total_bytes: int

    def __post_init__(self) -> None:
        require_positive("cpu cores", self.cores)
        no_clock = not self.clock_hz > 0  # the fix is a Text only then: making one reads the message catalogue
        require_positive("cpu clock_hz", self.clock_hz, fix=Text("fix.local_device.no_clock") if no_clock else "")
        require_positive("cpu memory_total_bytes", self.memory_total_bytes)


@dataclass(frozen=True, slots=True, kw_only=True)
class Extension:
    """One row of ``cpu_isa.toml``: FLOPs per cycle per core a core gains from an instruction-set extension."""

    name: str
    flags: tuple[str, ...]
    flops_per_cycle: Mapping[str, float]
    since: int
    vendor_id: str | None = None
    min_family: int | None = None
    max_family: int | None = None
    sources: tuple[str, ...] = field(repr=False)

    def __post_init__(self) -> None:
        for fmt, flops in self.flops_per_cycle.items():
            if fmt not in FORMATS:
                raise SpecError(f"cpu_isa.toml, {self.name!r}: unknown format {fmt!r}; known: {', '.join(FORMATS)}",
                                key="error.local_device.isa_format",
                                fields={"name": self.name, "fmt": fmt, "known": ", ".join(FORMATS)})
            require_positive(f"cpu_isa.toml, {self.name!r}: {fmt} FLOPs per cycle", flops)
        if not self.flags or not self.sources:
            raise SpecError(f"cpu_isa.toml, {self.name!r}: needs at least one flag and one source",
                            key="error.local_device.isa_flags_sources", fields={"name": self.name})

    def applies(self, cpu: CpuFacts) -> bool:
        """Whether ``cpu`` has every flag and meets the vendor and family bounds."""
        family = cpu.family if cpu.family is not None else -1
        return (set(self.flags) <= cpu.flags
                and self.vendor_id in (None, cpu.vendor_id)
                and (self.min_family is None or family >= self.min_family)
                and (self.max_family is None or 0 <= family <= self.max_family))


@dataclass(frozen=True, slots=True, kw_only=True)
class IsaTable:
    """``cpu_isa.toml``: the extensions, the vendor names and the per-core memory bandwidth assumption."""

    extensions: tuple[Extension, ...]
    vendors: Mapping[str, str]
    bandwidth_bytes_per_s_per_core: float
    bandwidth_sources: tuple[str, ...]


@functools.cache
def load_isa_table() -> IsaTable:
    """Read ``catalog/cpu_isa.toml`` once per process; a malformed entry is a SpecError naming it."""
    from importlib import resources

    raw: dict[str, Any] = tomllib.loads(
        resources.files("suanli").joinpath("catalog", "cpu_isa.toml").read_text(encoding="utf-8"))
    try:
        extensions = tuple(Extension(**dict(e, flags=tuple(e["flags"]), sources=tuple(e["sources"])))
                           for e in raw["extension"])
        memory = raw["memory"]
        return IsaTable(extensions=extensions, vendors=dict(raw["vendors"]),
                        bandwidth_bytes_per_s_per_core=memory["bandwidth_gb_s_per_core"] * GB,
                        bandwidth_sources=tuple(memory["sources"]))
    except (KeyError, TypeError) as bad:
        raise SpecError(f"cpu_isa.toml: missing or malformed field {bad}; the file's header lists them",
                        key="error.local_device.isa_field", fields={"field": str(bad)}) from None


def normalise_device_name(name: str) -> str:
    """``"Intel(R) Xeon(R) Platinum 8480+ CPU @ 2.00GHz"`` → ``"intel-xeon-platinum-8480+"``: lowercase, the
    trademark marks, "CPU", "Processor", "NN-Core" and the clock dropped, runs of other characters to ``-``."""
    text = _NOISE.sub(" ", name.lower())
    return re.sub(r"[^a-z0-9.+]+", "-", text).strip("-")


def _named(name: str, kinds: tuple[str, ...]) -> Accelerator | None:
    try:
        entry = get_accelerator(normalise_device_name(name))
    except UnknownAccelerator:
        return None
    return entry if entry.kind in kinds else None


def _nearest(name: str, kinds: tuple[str, ...]) -> str | None:
    """The catalog key whose key or alias is closest to ``name`` by spelling, among ``kinds``."""
    owner = {alias: acc.key for acc in load_accelerators() if acc.kind in kinds for alias in (acc.key, *acc.aliases)}
    wanted = normalise_device_name(name)
    for vendor in sorted({acc.vendor.lower() for acc in load_accelerators()}):
        wanted = wanted.removeprefix(f"{vendor}-")
    close = difflib.get_close_matches(wanted, owner, n=1, cutoff=0.5)
    return owner[close[0]] if close else None


def match_gpu(name: str, memory_total_bytes: int | None) -> DeviceMatch:
    """The catalog entry of a GPU from the name its driver reports and the memory it reports (None: unknown)."""
    kinds = ("gpu", "soc", "npu", "tpu")
    entry = _named(name, kinds)
    if entry is None:
        nearest = _nearest(name, kinds)
        return DeviceMatch(catalog_key=None, nearest=nearest,
                           reason=Text("note.local.no_key", name=normalise_device_name(name)))
    if memory_total_bytes is not None and abs(memory_total_bytes / entry.memory_bytes - 1) > GPU_MEMORY_TOLERANCE:
        return DeviceMatch(catalog_key=None, nearest=entry.key,
                           reason=Text("note.local.memory_differs", name=name, key=entry.key,
                                       gib=memory_total_bytes / 2**30, entry_gib=entry.memory_bytes / 2**30))
    return DeviceMatch(catalog_key=entry.key, reason=Text("note.local.is", name=name, key=entry.key))


def match_cpu(model: str) -> DeviceMatch:
    """The catalog entry of a CPU from its model string (/proc/cpuinfo "model name", lscpu "Model name")."""
    entry = _named(model, ("cpu",))
    if entry is not None:
        return DeviceMatch(catalog_key=entry.key, reason=Text("note.local.is", name=model, key=entry.key))
    return DeviceMatch(catalog_key=None, nearest=_nearest(model, ("cpu",)),
                       reason=Text("note.local.no_cpu_key", name=normalise_device_name(model)))


def flops_per_cycle(cpu: CpuFacts) -> dict[str, float]:
    """Dense FLOPs per cycle per core by format: the largest figure of the extensions ``cpu`` has; bf16 and fp16
    without native instructions at the fp32 figure (computed through fp32)."""
    best: dict[str, float] = {}
    for ext in load_isa_table().extensions:
        if ext.applies(cpu):
            for fmt, flops in ext.flops_per_cycle.items():
                best[fmt] = max(best.get(fmt, 0.0), flops)
    for emulated in ("bf16", "fp16"):
        if "fp32" in best and emulated not in best:
            best[emulated] = best["fp32"]
    return {fmt: best[fmt] for fmt in FORMATS if fmt in best}


def cpu_peak_flops(cpu: CpuFacts) -> dict[str, float]:
    """Peak FLOP/s by format = cores x clock (Hz) x FLOPs per cycle per core (the FLOPS article's product)."""
    return {fmt: cpu.cores * cpu.clock_hz * per_cycle for fmt, per_cycle in flops_per_cycle(cpu).items()}


def generic_cpu_key(cpu: CpuFacts) -> str:
    """``local-amd-epyc-2c``: stable for one machine type, so a calibration profile can be found again."""
    return f"local-{normalise_device_name(cpu.model) or 'cpu'}-{cpu.cores}c"


def generic_cpu(cpu: CpuFacts) -> Accelerator:
    """An accelerator entry for ``cpu`` built from the probe; every derived field is listed in ``estimated``."""
    table = load_isa_table()
    peaks = cpu_peak_flops(cpu)
    if not peaks:
        raise SpecError(f"no FLOPs-per-cycle figure for the CPU {cpu.model!r} (flags: none of cpu_isa.toml's); "
                        "name a catalog CPU with --gpu instead of local", key="error.local_device.no_isa",
                        fields={"model": cpu.model})
    years = [ext.since for ext in table.extensions if ext.applies(cpu)]
    per_cycle = flops_per_cycle(cpu)
    formula = ", ".join(f"{fmt} {cpu.cores} x {cpu.clock_hz / GIGA:.3g} GHz x {per_cycle[fmt]:g} = "
                        f"{peak / TERA:.4g} TFLOP/s" for fmt, peak in peaks.items())
    return Accelerator(
        key=generic_cpu_key(cpu), name=f"{cpu.model} ({cpu.cores} cores, from suanli probe)",
        vendor=table.vendors.get(cpu.vendor_id or "", "Unknown"), kind="cpu", release_year=max(years),
        memory_gb=cpu.memory_total_bytes / GB, memory_bytes=cpu.memory_total_bytes, memory_type="DRAM",
        memory_bandwidth_bytes_per_s=cpu.cores * table.bandwidth_bytes_per_s_per_core,
        peak_flops_per_s=peaks, confidence="low",
        estimated=("memory_bandwidth_gb_s", *(f"dense_tflops.{fmt}" for fmt in peaks)),
        notes=("Built from the probe of this machine, not from a datasheet: peak = cores x clock x FLOPs per "
               f"cycle per core of its instruction-set extensions: {formula}. Upper bounds.",
               f"Memory bandwidth = {cpu.cores} cores x {table.bandwidth_bytes_per_s_per_core / GB:g} GB/s "
               "(Little's law per core; see cpu_isa.toml). Run `suanli bench` to measure both.",
               "release_year is the year the newest extension it has first shipped (a lower bound)."),
        sources=(f"suanli probe: {cpu.model!r}, {cpu.cores} cores, {cpu.clock_hz / GIGA:.3g} GHz, "
                 f"{cpu.memory_total_bytes} bytes of memory", "catalog/cpu_isa.toml",
                 *table.bandwidth_sources))


def local_cpu(cpu: CpuFacts) -> tuple[Accelerator, str]:
    """The entry ``--gpu local`` uses on a machine with no GPU, and a sentence saying which and why.

    The catalog entry when the model string names one and this process may use at least ``WHOLE_SOCKET_SHARE``
    of its fp32 peak (its memory replaced by what this machine has: a CPU's capacity is a configuration);
    otherwise ``generic_cpu``."""
    match = match_cpu(cpu.model)
    generic = generic_cpu(cpu)
    if match.catalog_key is None:
        nearest = Text("note.local.nearest_cpu", nearest=match.nearest) if match.nearest else ""
        return generic, Text("note.local.cpu_not_in_catalog", model=cpu.model, nearest=nearest, key=generic.key)
    entry = get_accelerator(match.catalog_key)
    share = generic.peak_flops_per_s.get("fp32", 0.0) / entry.peak_flops_per_s.get("fp32", float("inf"))
    if share < WHOLE_SOCKET_SHARE:
        return generic, Text("note.local.cpu_share", model=cpu.model, entry=entry.key, cores=cpu.cores, share=share,
                             key=generic.key)
    local = replace(entry, memory_gb=cpu.memory_total_bytes / GB, memory_bytes=cpu.memory_total_bytes,
                    estimated=tuple(dict.fromkeys((*entry.estimated, "memory_gb"))))
    return local, Text("note.local.cpu_entry", model=cpu.model, entry=entry.key, gb=cpu.memory_total_bytes / GB)
