"""``suanli probe``: this machine's GPUs and CPU, each mapped to its catalog entry, and what ``--gpu local`` means."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from suanli.cli.common import Commands

if TYPE_CHECKING:
    from suanli.measure.probe import MachineProbe, ProbedGpu


def register(commands: Commands) -> None:
    probe = commands.add_parser(
        "probe", help="this machine's GPUs and CPU, mapped to the catalog (what --gpu local means)",
        description="Reads the local GPUs (NVIDIA through nvidia-ml-py, AMD through amdsmi: name, memory, ECC, "
        "temperature, power and limit, clocks, compute capability, PCIe link, NVLink links and topology, MIG) and the "
        "CPU (/proc, lscpu), and maps each to its catalog entry. No GPU is a normal answer: then --gpu local means "
        "the CPU, its catalog entry or one estimated from its cores, clock and instruction set.")
    probe.add_argument("--json", action="store_true", help="print one JSON object (stable keys) instead of a table")
    probe.set_defaults(run=run_probe)


def run_probe(args: argparse.Namespace) -> int:
    from suanli.cli.render import emit_json
    from suanli.measure.probe import probe

    machine = probe()
    local = _local(machine)
    if args.json:
        emit_json({"command": "probe", **machine.to_dict(), "local": local})
        return 0
    print(_render(machine, local))
    return 0


def _local(machine: MachineProbe) -> dict[str, Any]:
    """What ``--gpu local`` resolves to here, or why it cannot (a GPU the catalog lacks, an unreadable clock: the
    error's English, which the table says in the reader's language)."""
    from suanli.cli.local_gpu import saved_profile
    from suanli.errors import SuanliError
    from suanli.i18n import ErrorMessage
    from suanli.measure.probe import local_device

    try:
        device = local_device(machine)
    except SuanliError as err:
        return {"accelerator": None, "error": ErrorMessage(err)}
    acc = device.accelerator
    profile = saved_profile(acc.key)
    return {"accelerator": acc.key, "name": acc.name, "count": device.count, "note": device.note,
            "estimated": list(acc.estimated), "memory_bytes": acc.memory_bytes,
            "memory_bandwidth_bytes_per_s": acc.memory_bandwidth_bytes_per_s,
            "peak_flops_per_s": dict(acc.peak_flops_per_s), "calibration_profile": str(profile) if profile else None}


def _render(machine: MachineProbe, local: dict[str, Any]) -> str:
    from suanli.cli.render import key_values, table
    from suanli.i18n import say, t
    from suanli.units import GB, TERA, format_bytes

    parts = []
    if machine.gpus:
        parts.append(table(["#", "name", "memory", "catalog", "ECC", "temp", "power / limit", "PCIe", "NVLink",
                            "SM clock", "CC", "MIG"], [_gpu_row(g) for g in machine.gpus], align="llrllrrlrrll"))
        if machine.driver_version:
            cuda = t("value.probe.cuda", version=machine.cuda_driver_version) if machine.cuda_driver_version else ""
            parts.append(t("value.probe.driver", version=machine.driver_version, cuda=cuda))
        if machine.topology:
            parts.append(t("value.probe.topology", links=", ".join(f"{a}-{b} {p.link or '?'}"
                                                                   for p in machine.topology for a, b in [p.gpus])))
    else:
        parts.append(t("value.probe.no_gpus"))
    cpu = machine.cpu
    sockets = t("value.probe.sockets", sockets=cpu.sockets) if cpu.sockets else ""
    parts.append(key_values([
        ("cpu", cpu.model),
        ("cores", t("value.probe.cores", cores=cpu.cores, logical=cpu.logical_cpus, sockets=sockets)),
        ("clock", t("value.probe.unknown") if cpu.clock_hz is None
         else f"{cpu.clock_hz / 1e9:.3g} GHz ({cpu.clock_source})"),
        ("vector/matrix", " ".join(cpu.isa_flags) or t("value.probe.none_known")),
        (t("value.probe.host_memory"), format_bytes(cpu.memory_total_bytes)),  # "memory" alone says GPU memory
        ("catalog", cpu.catalog_key or t("value.probe.cpu_not_in_catalog", nearest=cpu.nearest_catalog_key or "—")),
    ]))
    if local["accelerator"] is None:
        parts.append(t("value.probe.local_unavailable", error=local["error"]))
    else:
        peaks = ", ".join(f"{fmt} {flops / TERA:.3g}" for fmt, flops in local["peak_flops_per_s"].items())
        parts.append(key_values([
            ("--gpu local", f"{local['accelerator']} x {local['count']}"),
            ("", say(local["note"])),
            ("peak TFLOP/s", peaks + (t("value.probe.estimated") if local["estimated"] else "")),
            ("bandwidth", f"{local['memory_bandwidth_bytes_per_s'] / GB:,.1f} GB/s"),
            ("calibration", local["calibration_profile"] or t("value.probe.no_profile")),
        ]))
    parts.extend(t("cli.note_line", text=say(note)) for note in machine.notes)
    return "\n\n".join(parts)


def _gpu_row(g: ProbedGpu) -> list[Any]:
    from suanli.units import format_bytes

    def text(value: Any, unit: str = "") -> str:
        return "—" if value is None else f"{value:g}{unit}" if isinstance(value, float) else f"{value}{unit}"

    from suanli.i18n import t

    flag = {True: t("value.probe.on"), False: t("value.probe.off"), None: "—"}
    return [g.index, g.name, "—" if g.memory_total_bytes is None else format_bytes(g.memory_total_bytes),
            g.catalog_key or t("value.probe.gpu_not_in_catalog", nearest=g.nearest_catalog_key or "—"), flag[g.ecc],
            text(g.temperature_c, " °C"), f"{text(g.power_w, ' W')} / {text(g.power_limit_w, ' W')}",
            f"gen {text(g.pcie_gen)} x{text(g.pcie_width)}", text(g.nvlink_links),
            text(g.sm_clock_mhz, " MHz"), text(g.compute_capability), flag[g.mig_mode]]
