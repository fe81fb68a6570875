"""What this machine holds: its GPUs (NVML for NVIDIA, amdsmi for AMD) and its CPU (/proc, lscpu, sysctl).

``probe()`` reads, and never fails: a reading the driver refuses is None, a missing library or driver is a note
("nvidia-ml-py is not installed", "NVML: Driver Not Loaded"), and a machine with no GPU is a normal answer,
an empty ``gpus``. Each device is mapped to its catalog entry by ``suanli.spec.local_device`` (pure functions,
tested on real driver names); ``local_accelerator`` turns the probe into the entry ``--gpu local`` means.

nvidia-ml-py (``import pynvml``) and amdsmi are optional and imported here, lazily, only when probing.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import math
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suanli.i18n import Text

if TYPE_CHECKING:  # pragma: no cover - typing only
    from suanli.spec.hardware import Accelerator
    from suanli.spec.local_device import CpuFacts

#: nvidia-smi topo's legend for the PCIe path between two GPUs, by NVML's nvmlGpuTopologyLevel_t value.
_TOPOLOGY = {0: "SELF", 10: "PIX", 20: "PXB", 30: "PHB", 40: "NODE", 50: "SYS"}


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbedGpu:
    """One GPU as its driver reports it; every reading it refused is None."""

    index: int
    vendor: str
    name: str
    memory_total_bytes: int | None
    catalog_key: str | None
    nearest_catalog_key: str | None
    match: str
    uuid: str | None = None
    pci_bus_id: str | None = None
    ecc: bool | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    pcie_gen: int | None = None
    pcie_width: int | None = None
    pcie_max_gen: int | None = None
    pcie_max_width: int | None = None
    nvlink_links: int | None = None
    sm_clock_mhz: int | None = None
    sm_clock_max_mhz: int | None = None
    memory_clock_mhz: int | None = None
    memory_clock_max_mhz: int | None = None
    compute_capability: str | None = None
    mig_mode: bool | None = None
    memory_used_bytes: int | None = None
    utilization_percent: int | None = None  # share of the last sample period a kernel ran (NVML), busy if > 0
    nvlink_peers: tuple[str, ...] = field(default=(), repr=False)  # PCI bus ids at the far end of each link


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbedCpu:
    """The CPU this process runs on. ``cores``: physical cores it may use (affinity and cgroup quota applied)."""

    model: str
    vendor_id: str | None
    family: int | None
    cores: int
    logical_cpus: int
    sockets: int | None
    clock_hz: float | None
    clock_source: str | None
    isa_flags: tuple[str, ...]  # the flags cpu_isa.toml knows, for the peak estimate
    memory_total_bytes: int
    memory_available_bytes: int | None
    catalog_key: str | None
    nearest_catalog_key: str | None
    match: str
    flags: frozenset[str] = field(default=frozenset(), repr=False)

    def facts(self) -> CpuFacts:
        """The plain values ``suanli.spec.local_device`` builds an entry from."""
        from suanli.errors import Unavailable
        from suanli.spec.local_device import CpuFacts

        if self.clock_hz is None:
            raise Unavailable(f"could not read the clock of the CPU {self.model!r} (no '@ GHz' in its name, no "
                              "cpufreq, lscpu or cpuinfo MHz); name a catalog CPU with --gpu instead of local",
                              key="error.measure.cpu_clock_unknown", fields={"model": self.model})
        return CpuFacts(model=self.model, vendor_id=self.vendor_id, family=self.family, cores=self.cores,
                        clock_hz=self.clock_hz, flags=self.flags, memory_total_bytes=self.memory_total_bytes)


@dataclass(frozen=True, slots=True, kw_only=True)
class GpuPair:
    """How two local GPUs reach each other: ``NV<n>`` for n NVLinks, else the PCIe path (PIX, PXB, PHB, NODE,
    SYS, as in ``nvidia-smi topo -m``)."""

    gpus: tuple[int, int]
    link: str | None
    nvlink_links: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MachineProbe:
    gpus: tuple[ProbedGpu, ...]
    cpu: ProbedCpu
    topology: tuple[GpuPair, ...] = ()
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The ``suanli probe --json`` object (DESIGN.md §5 keys, and more)."""
        data = asdict(self)
        for gpu in data["gpus"]:
            gpu["nvlink_peers"] = list(gpu["nvlink_peers"])
        data["cpu"].pop("flags")
        data["cpu"]["isa_flags"] = list(self.cpu.isa_flags)
        data["topology"] = [{"gpus": list(p.gpus), "link": p.link, "nvlink_links": p.nvlink_links}
                            for p in self.topology]
        data["notes"] = list(self.notes)
        return data


def probe() -> MachineProbe:
    """Read this machine's GPUs and CPU. Never raises for missing hardware, libraries or permissions."""
    notes: list[str] = []
    nvidia, topology, driver, cuda = _probe_nvidia(notes)
    amd = _probe_amd(notes, first_index=len(nvidia))
    return MachineProbe(gpus=(*nvidia, *amd), cpu=probe_cpu(), topology=topology, driver_version=driver,
                        cuda_driver_version=cuda, notes=tuple(notes))


# ---------------------------------------------------------------- NVIDIA (NVML)

def _call(module: Any, function: str, *args: Any) -> Any:
    """``module.function(*args)``, or None when the library lacks it or the driver refuses (NVMLError)."""
    try:
        return getattr(module, function)(*args)
    except Exception:  # NVMLError_NotSupported, _NoPermission, an old binding without the function, ...
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _scaled(value: Any, divisor: float) -> float | None:
    return None if value is None else value / divisor


def _pair(value: Any) -> bool | None:
    """NVML's (current, pending) enable states → whether it is enabled now."""
    return None if value is None else bool(value[0])


def _probe_nvidia(notes: list[str]) -> tuple[list[ProbedGpu], tuple[GpuPair, ...], str | None, str | None]:
    try:
        nv = importlib.import_module("pynvml")
    except ImportError:
        notes.append(Text("note.probe.no_nvml"))
        return [], (), None, None
    try:
        nv.nvmlInit()
    except Exception as err:  # NVMLError_LibraryNotFound / _DriverNotLoaded: no NVIDIA driver here
        notes.append(Text("note.probe.nvml_init", err=str(err)))
        return [], (), None, None
    try:
        count = _call(nv, "nvmlDeviceGetCount") or 0
        handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        gpus = [_nvidia_gpu(nv, i, h) for i, h in enumerate(handles)]
        return (gpus, _topology(nv, handles, gpus), _text(_call(nv, "nvmlSystemGetDriverVersion")),
                _cuda_version(_call(nv, "nvmlSystemGetCudaDriverVersion")))
    except Exception as err:  # a device lost between count and handle: report what was read before it
        notes.append(Text("note.probe.nvml_list", err=str(err)))
        return [], (), None, None
    finally:
        _call(nv, "nvmlShutdown")


def _cuda_version(value: Any) -> str | None:
    """NVML's 12040 → "12.4"."""
    return None if value is None else f"{value // 1000}.{value % 1000 // 10}"


def _nvidia_gpu(nv: Any, index: int, h: Any) -> ProbedGpu:
    from suanli.spec.local_device import match_gpu

    name = _text(_call(nv, "nvmlDeviceGetName", h)) or "unknown NVIDIA GPU"
    memory = _call(nv, "nvmlDeviceGetMemoryInfo", h)
    total = None if memory is None else int(memory.total)
    match = match_gpu(name, total)
    links, peers = _nvlinks(nv, h)
    sm, mem = getattr(nv, "NVML_CLOCK_SM", 1), getattr(nv, "NVML_CLOCK_MEM", 2)
    capability = _call(nv, "nvmlDeviceGetCudaComputeCapability", h)
    pci = _call(nv, "nvmlDeviceGetPciInfo", h)
    return ProbedGpu(
        index=index, vendor="NVIDIA", name=name, memory_total_bytes=total, catalog_key=match.catalog_key,
        nearest_catalog_key=match.nearest, match=match.reason, uuid=_text(_call(nv, "nvmlDeviceGetUUID", h)),
        pci_bus_id=None if pci is None else _text(pci.busId), ecc=_pair(_call(nv, "nvmlDeviceGetEccMode", h)),
        temperature_c=_call(nv, "nvmlDeviceGetTemperature", h, getattr(nv, "NVML_TEMPERATURE_GPU", 0)),
        power_w=_scaled(_call(nv, "nvmlDeviceGetPowerUsage", h), 1000),  # NVML reports milliwatts
        power_limit_w=_scaled(_call(nv, "nvmlDeviceGetEnforcedPowerLimit", h), 1000),
        pcie_gen=_call(nv, "nvmlDeviceGetCurrPcieLinkGeneration", h),
        pcie_width=_call(nv, "nvmlDeviceGetCurrPcieLinkWidth", h),
        pcie_max_gen=_call(nv, "nvmlDeviceGetMaxPcieLinkGeneration", h),
        pcie_max_width=_call(nv, "nvmlDeviceGetMaxPcieLinkWidth", h),
        nvlink_links=links, nvlink_peers=peers,
        sm_clock_mhz=_call(nv, "nvmlDeviceGetClockInfo", h, sm),
        sm_clock_max_mhz=_call(nv, "nvmlDeviceGetMaxClockInfo", h, sm),
        memory_clock_mhz=_call(nv, "nvmlDeviceGetClockInfo", h, mem),
        memory_clock_max_mhz=_call(nv, "nvmlDeviceGetMaxClockInfo", h, mem),
        compute_capability=None if capability is None else f"{capability[0]}.{capability[1]}",
        mig_mode=_pair(_call(nv, "nvmlDeviceGetMigMode", h)),
        memory_used_bytes=None if memory is None else int(memory.used),
        utilization_percent=getattr(_call(nv, "nvmlDeviceGetUtilizationRates", h), "gpu", None))


def _nvlinks(nv: Any, h: Any) -> tuple[int | None, tuple[str, ...]]:
    """Active NVLinks and the PCI bus id at the far end of each. A GPU whose driver says NVLink is not supported
    on link 0 has none (0); any other refusal there is unknown (None)."""
    enabled = getattr(nv, "NVML_FEATURE_ENABLED", 1)
    peers: list[str] = []
    for link in range(getattr(nv, "NVML_NVLINK_MAX_LINKS", 18)):
        try:
            state = nv.nvmlDeviceGetNvLinkState(h, link)
        except Exception as err:
            if link == 0 and getattr(err, "value", None) != getattr(nv, "NVML_ERROR_NOT_SUPPORTED", 3):
                return None, ()
            break  # links are numbered from 0; the first one past the last refuses
        if state == enabled:
            remote = _call(nv, "nvmlDeviceGetNvLinkRemotePciInfo", h, link)
            peers.append((_text(remote.busId) if remote is not None else None) or "")
    return len(peers), tuple(peers)


def _topology(nv: Any, handles: list[Any], gpus: list[ProbedGpu]) -> tuple[GpuPair, ...]:
    pairs = []
    for i, j in itertools.combinations(range(len(gpus)), 2):
        bus = (gpus[j].pci_bus_id or "").lower()
        links = sum(1 for peer in gpus[i].nvlink_peers if bus and peer.lower() == bus)
        level = _call(nv, "nvmlDeviceGetTopologyCommonAncestor", handles[i], handles[j])
        link = f"NV{links}" if links else _TOPOLOGY.get(level) if level is not None else None
        pairs.append(GpuPair(gpus=(i, j), link=link, nvlink_links=links))
    return tuple(pairs)


# ---------------------------------------------------------------- AMD (amdsmi)

def _probe_amd(notes: list[str], *, first_index: int) -> list[ProbedGpu]:
    try:
        am = importlib.import_module("amdsmi")
    except ImportError:
        return []  # the ROCm library ships with the driver; without it there is no AMD GPU to read
    try:
        am.amdsmi_init()
    except Exception as err:
        notes.append(Text("note.probe.amdsmi_init", err=str(err)))
        return []
    try:
        handles = _call(am, "amdsmi_get_processor_handles") or []
        return [_amd_gpu(am, first_index + i, h) for i, h in enumerate(handles)]
    finally:
        _call(am, "amdsmi_shut_down")


def _amd_gpu(am: Any, index: int, h: Any) -> ProbedGpu:
    from suanli.spec.local_device import match_gpu

    asic = _call(am, "amdsmi_get_gpu_asic_info", h) or {}
    name = str(asic.get("market_name") or "unknown AMD GPU")
    memory_type = getattr(getattr(am, "AmdSmiMemoryType", None), "VRAM", None)
    total = _call(am, "amdsmi_get_gpu_memory_total", h, memory_type)
    match = match_gpu(name, total)
    kinds, metric = getattr(am, "AmdSmiTemperatureType", None), getattr(am, "AmdSmiTemperatureMetric", None)
    temperature = None if kinds is None or metric is None else _call(
        am, "amdsmi_get_temp_metric", h, kinds.HOTSPOT, metric.CURRENT)
    power = _call(am, "amdsmi_get_power_info", h) or {}
    pcie = (_call(am, "amdsmi_get_pcie_info", h) or {}).get("pcie_metric", {})
    return ProbedGpu(index=index, vendor="AMD", name=name, memory_total_bytes=total,
                     catalog_key=match.catalog_key, nearest_catalog_key=match.nearest, match=match.reason,
                     temperature_c=temperature, power_limit_w=_number(power.get("power_limit")),
                     power_w=_number(power.get("current_socket_power")) or _number(power.get("average_socket_power")),
                     pcie_width=_number(pcie.get("pcie_width")),
                     compute_capability=_text(asic.get("target_graphics_version")))


def _number(value: Any) -> Any:
    """amdsmi reports "N/A" for readings a part lacks."""
    return value if isinstance(value, int | float) else None


# ---------------------------------------------------------------- CPU

def probe_cpu() -> ProbedCpu:
    """The CPU and memory this process may use, from /proc/cpuinfo, /proc/meminfo, cgroups and lscpu
    (sysctl on macOS)."""
    if sys.platform == "darwin":
        return _probe_mac()
    blocks = parse_cpuinfo(_read("/proc/cpuinfo") or "")
    lscpu = parse_colon_lines(_run(["lscpu"]) or "")
    first = blocks[0] if blocks else {}
    allowed = _allowed_cpus()
    model = first.get("model name") or lscpu.get("Model name") or "unknown CPU"
    flags = frozenset((first.get("flags") or first.get("Features") or lscpu.get("Flags") or "").split())
    clock, source = _clock(model, first, lscpu)
    meminfo = parse_colon_lines(_read("/proc/meminfo") or "")
    total = _kib(meminfo.get("MemTotal")) or _sysconf_memory()
    limit = _cgroup_memory_limit()
    return _cpu(model=model, vendor_id=first.get("vendor_id") or lscpu.get("Vendor ID"),
                family=_int(first.get("cpu family")), cores=_usable_cores(blocks, allowed), logical=len(allowed),
                sockets=_int(lscpu.get("Socket(s)")), clock=(clock, source), flags=flags,
                memory_total=min(total, limit) if limit else total, available=_kib(meminfo.get("MemAvailable")))


def _cpu(*, model: str, vendor_id: str | None, family: int | None, cores: int, logical: int, sockets: int | None,
         clock: tuple[float | None, str | None], flags: frozenset[str], memory_total: int,
         available: int | None) -> ProbedCpu:
    from suanli.spec.local_device import load_isa_table, match_cpu

    known = {flag for ext in load_isa_table().extensions for flag in ext.flags}
    match = match_cpu(model)
    return ProbedCpu(model=model, vendor_id=vendor_id, family=family, cores=cores, logical_cpus=logical,
                     sockets=sockets, clock_hz=clock[0], clock_source=clock[1], isa_flags=tuple(sorted(flags & known)),
                     memory_total_bytes=memory_total, memory_available_bytes=available, catalog_key=match.catalog_key,
                     nearest_catalog_key=match.nearest, match=match.reason, flags=flags)


def parse_cpuinfo(text: str) -> list[dict[str, str]]:
    """/proc/cpuinfo → one ``{field: value}`` per logical CPU, in order."""
    return [parse_colon_lines(block) for block in re.split(r"\n\s*\n", text) if block.strip()]


def parse_colon_lines(text: str) -> dict[str, str]:
    """``"Model name:   AMD EPYC"`` lines (lscpu, /proc/meminfo, one cpuinfo block) → a dict; first one wins."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    return fields


def _usable_cores(blocks: list[dict[str, str]], allowed: set[int]) -> int:
    """Physical cores among the logical CPUs this process may run on (hyperthreads share a core's FMA units),
    capped by a cgroup CPU quota (``docker --cpus``)."""
    cores = {(b.get("physical id"), b.get("core id")) for b in blocks if _int(b.get("processor")) in allowed}
    counted = len(cores) if cores and all(c != (None, None) for c in cores) else len(allowed)
    quota = _cgroup_cpu_quota()
    return max(1, min(counted, quota) if quota else counted)


def _allowed_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def _clock(model: str, first: dict[str, str], lscpu: dict[str, str]) -> tuple[float | None, str | None]:
    """The clock for the peak: the base clock in the model name ("@ 2.00GHz"), else cpufreq's base frequency,
    else lscpu's max MHz, else cpuinfo's current MHz (in a virtual machine: the host's nominal clock)."""
    if found := re.search(r"@\s*([\d.]+)\s*GHz", model):
        return float(found.group(1)) * 1e9, "model name"
    if base := _int(_read("/sys/devices/system/cpu/cpu0/cpufreq/base_frequency")):
        return base * 1e3, "cpufreq base_frequency"
    if (mhz := _float(lscpu.get("CPU max MHz"))) is not None:
        return mhz * 1e6, "lscpu CPU max MHz"
    if (mhz := _float(first.get("cpu MHz"))) is not None:
        return mhz * 1e6, "cpuinfo cpu MHz"
    return None, None


def _cgroup_cpu_quota() -> int | None:
    """cgroup v2 ``cpu.max`` ("200000 100000" → 2 CPUs; "max ..." → no quota)."""
    quota, _, period = (_read("/sys/fs/cgroup/cpu.max") or "max").partition(" ")
    if not quota.isdigit() or not period.strip().isdigit():
        return None
    return max(1, math.ceil(int(quota) / int(period)))


def _cgroup_memory_limit() -> int | None:
    return _int(_read("/sys/fs/cgroup/memory.max"))


def _sysconf_memory() -> int:
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return 0


def _probe_mac() -> ProbedCpu:
    def sysctl(name: str) -> str | None:
        return (_run(["sysctl", "-n", name]) or "").strip() or None

    logical = os.cpu_count() or 1
    hz = _int(sysctl("hw.cpufrequency"))
    flags = frozenset((sysctl("machdep.cpu.features") or "").lower().split())
    if sysctl("hw.optional.AdvSIMD") == "1":
        flags |= {"asimd"}
    return _cpu(model=sysctl("machdep.cpu.brand_string") or "unknown CPU", vendor_id=sysctl("machdep.cpu.vendor"),
                family=None, cores=_int(sysctl("hw.physicalcpu")) or logical, logical=logical, sockets=1,
                clock=(float(hz), "sysctl hw.cpufrequency") if hz else (None, None), flags=flags,
                memory_total=_int(sysctl("hw.memsize")) or 0, available=None)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _run(command: list[str]) -> str | None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=5, check=False,
                              env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.strip().isdigit() else None


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _kib(text: str | None) -> int | None:
    """/proc/meminfo's "24683664 kB" → bytes (the kernel's kB is KiB)."""
    number = _int((text or "").removesuffix("kB").strip() or None)
    return None if number is None else number * 1024


# ---------------------------------------------------------------- what --gpu local means

@dataclass(frozen=True, slots=True, kw_only=True)
class LocalDevice:
    """The accelerator ``--gpu local`` stands for, how many of it this machine has, and a sentence saying why."""

    accelerator: Accelerator
    count: int
    note: str


def local_device(machine: MachineProbe, *, cpu: bool = False) -> LocalDevice:
    """The first GPU's catalog entry (``count``: how many GPUs share its name and memory), or, with no GPU or
    with ``cpu`` (``measure --device cpu`` on a GPU machine), the CPU's entry
    (``suanli.spec.local_device.local_cpu``). A GPU the catalog lacks is an UnknownAccelerator."""
    from suanli.errors import UnknownAccelerator
    from suanli.spec.hardware import get_accelerator
    from suanli.spec.local_device import local_cpu

    if machine.gpus and not cpu:
        first = machine.gpus[0]
        if first.catalog_key is None:
            fix = Text("fix.measure.pass_nearest", nearest=first.nearest_catalog_key) \
                if first.nearest_catalog_key else Text("fix.measure.pass_closest")
            raise UnknownAccelerator(f"the local GPU {first.name!r} is not in the catalog ({first.match}){fix}",
                                     key="error.measure.local_gpu_not_in_catalog",
                                     fields={"name": first.name, "reason": first.match, "fix": fix})
        same = sum(1 for g in machine.gpus if (g.name, g.memory_total_bytes) == (first.name, first.memory_total_bytes))
        others = len(machine.gpus) - same
        note = Text("note.local.gpus", count=same, name=first.name, key=first.catalog_key,
                    others=Text("note.local.others", others=others) if others else "",
                    mig=Text("note.local.mig") if first.mig_mode else "")
        return LocalDevice(accelerator=get_accelerator(first.catalog_key), count=same, note=note)
    accelerator, why = local_cpu(machine.cpu.facts())
    return LocalDevice(accelerator=accelerator, count=1,
                       note=Text("note.local.the_cpu" if cpu else "note.local.no_gpu", why=why))

