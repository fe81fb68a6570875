"""`suanli probe` and `--gpu local`: catalog matching on real driver names, the CPU peak formula against the
catalog's hand-written CPU entries, NVML read through a fake module (2 NVLinked GPUs, a missing driver), and the
real CPU of the machine the tests run on."""

from __future__ import annotations

import json
import os
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from suanli.cli import local_gpu
from suanli.cli.main import main
from suanli.measure import probe as probe_module
from suanli.measure.probe import local_device, parse_cpuinfo, probe, probe_cpu
from suanli.spec.hardware import get_accelerator
from suanli.spec.local_device import CpuFacts, flops_per_cycle, generic_cpu, local_cpu, match_cpu, match_gpu

MiB, GiB = 2**20, 2**30

# Device names exactly as NVML / nvidia-smi / amdsmi print them, with the total memory the driver reports where a
# real machine's is known (else the marketed capacity). Where each string was seen:
#   H200, H100 80GB HBM3: the project's device machine (accelerators.toml driver_memory_source);
#   "NVIDIA H100 NVL" with 97871 MiB, "NVIDIA A100 80GB PCIe" with 81920 MiB, "NVIDIA H800 80GB HBM3",
#   "Tesla V100-SXM2-32GB", "NVIDIA A100-PCIE-40GB", "NVIDIA B200" (191.51 GB in a CUDA device query): public
#   repositories' logs and test fixtures found with the code search; the NVIDIA Linux driver README's table of
#   supported GPUs lists "NVIDIA A100-PCIE-40GB" and "NVIDIA A800-SXM4-80GB".
MATCHES = [
    ("NVIDIA H200", 143771 * MiB, "h200-sxm-141gb"),
    ("NVIDIA H100 80GB HBM3", 81559 * MiB, "h100-sxm-80gb"),
    ("NVIDIA H100 PCIe", 81559 * MiB, "h100-pcie-80gb"),
    ("NVIDIA H100 NVL", 97871 * MiB, "h100-nvl-94gb"),
    ("NVIDIA H800 80GB HBM3", 81559 * MiB, "h800-sxm-80gb"),
    ("NVIDIA A100-SXM4-40GB", 40960 * MiB, "a100-sxm-40gb"),
    ("NVIDIA A100-SXM4-80GB", 81920 * MiB, "a100-sxm-80gb"),
    ("NVIDIA A100-PCIE-40GB", 40960 * MiB, "a100-pcie-40gb"),
    ("NVIDIA A100 80GB PCIe", 81920 * MiB, "a100-pcie-80gb"),
    ("NVIDIA A800-SXM4-80GB", 81920 * MiB, "a800-sxm-80gb"),
    ("Tesla V100-SXM2-32GB", 32768 * MiB, "v100-sxm2-32gb"),
    ("Tesla T4", 15360 * MiB, "t4-16gb"),
    ("NVIDIA A10G", 23028 * MiB, "a10g-24gb"),
    ("NVIDIA L4", 23034 * MiB, "l4-24gb"),
    ("NVIDIA L40S", 46068 * MiB, "l40s-48gb"),
    ("NVIDIA GeForce RTX 4090", 24564 * MiB, "rtx-4090-24gb"),
    ("NVIDIA RTX 6000 Ada Generation", 49140 * MiB, "rtx-6000-ada-48gb"),
    ("NVIDIA B200", round(191.51e9), "b200-sxm-180gb"),
    ("AMD Instinct MI300X", 192 * GiB, "mi300x-192gb"),
    ("NVIDIA H200", None, "h200-sxm-141gb"),  # memory unreadable: the name alone decides
]


@pytest.mark.parametrize(("name", "memory", "key"), MATCHES)
def test_real_driver_names_map_to_their_catalog_entry(name: str, memory: int | None, key: str) -> None:
    match = match_gpu(name, memory)
    assert match.catalog_key == key, match.reason


@pytest.mark.parametrize(("name", "memory", "nearest"), [
    ("Tesla V100-SXM2-16GB", 16160 * MiB, "v100-sxm2-32gb"),  # a sibling the catalog lacks
    ("NVIDIA A100-SXM4-40GB", 81920 * MiB, "a100-sxm-40gb"),  # the name says 40 GB, the driver 80: refuse
    ("NVIDIA H200 NVL", 143771 * MiB, None),  # not catalogued (a different power limit than the SXM part)
])
def test_unmatched_gpus_have_no_key_and_a_reason(name: str, memory: int, nearest: str | None) -> None:
    match = match_gpu(name, memory)
    assert match.catalog_key is None and match.reason
    if nearest is not None:
        assert match.nearest == nearest


@pytest.mark.parametrize(("model", "key"), [
    ("Intel(R) Xeon(R) Platinum 8480+", "xeon-platinum-8480+"),
    ("AMD EPYC 9654 96-Core Processor", "epyc-9654"),
    ("AMD EPYC", None),  # what a KVM guest of an EPYC often reports
    ("Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", None),
])
def test_cpu_model_strings(model: str, key: str | None) -> None:
    assert match_cpu(model).catalog_key == key


def _facts(**changes: Any) -> CpuFacts:
    base: dict[str, Any] = dict(model="Intel(R) Xeon(R) Platinum 8480+", vendor_id="GenuineIntel", family=6,
                                cores=56, clock_hz=2.0e9, memory_total_bytes=512 * GiB,
                                flags=frozenset({"sse2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16",
                                                 "avx512_vnni", "amx_bf16", "amx_int8"}))
    return CpuFacts(**(base | changes))


def test_the_peak_formula_reproduces_the_catalogs_cpu_entries() -> None:
    """cores x clock x FLOPs/cycle from cpu_isa.toml gives the figures accelerators.toml's CPU entries carry
    (written by hand from their own sources): Sapphire Rapids 56 x 2.0 GHz, Genoa (Zen 4) 96 x 2.4 GHz."""
    spr = generic_cpu(_facts())
    catalog = get_accelerator("xeon-platinum-8480+")
    for fmt in ("fp64", "fp32", "bf16", "int8"):
        assert spr.peak_flops_per_s[fmt] == pytest.approx(catalog.peak_flops_per_s[fmt]), fmt
    genoa = generic_cpu(_facts(model="AMD EPYC 9654 96-Core Processor", vendor_id="AuthenticAMD", family=25, cores=96,
                               clock_hz=2.4e9, flags=frozenset({"sse2", "avx", "avx2", "fma", "avx512f",
                                                                "avx512_bf16"})))
    for fmt in ("fp64", "fp32", "bf16"):
        assert genoa.peak_flops_per_s[fmt] == pytest.approx(get_accelerator("epyc-9654").peak_flops_per_s[fmt]), fmt


def test_formats_without_native_instructions_run_at_the_fp32_rate() -> None:
    haswell = _facts(flags=frozenset({"sse2", "avx", "avx2", "fma"}))
    assert flops_per_cycle(haswell) == {"fp64": 16, "fp32": 32, "bf16": 32, "fp16": 32}
    entry = generic_cpu(haswell)
    assert entry.kind == "cpu" and entry.confidence == "low" and "dense_tflops.bf16" in entry.estimated
    assert entry.memory_bandwidth_bytes_per_s == pytest.approx(56 * 20.48e9)  # cores x the Little's-law figure


def test_a_whole_socket_uses_the_catalog_entry_and_a_slice_its_own() -> None:
    whole, why = local_cpu(_facts(memory_total_bytes=256 * GiB))
    assert whole.key == "xeon-platinum-8480+" and whole.memory_bytes == 256 * GiB, why
    slice_, why = local_cpu(_facts(cores=2))  # a 2-vCPU virtual machine on the same part
    assert slice_.key == "local-intel-xeon-platinum-8480+-2c", why
    assert slice_.peak_flops_per_s["fp32"] == pytest.approx(2 * 2.0e9 * 64)
    assert "2 cores" in why


def test_cpuinfo_parsing() -> None:
    text = ("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2\n\n"
            "processor\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx2\n")
    blocks = parse_cpuinfo(text)
    assert [b["processor"] for b in blocks] == ["0", "1"] and blocks[0]["model name"] == "AMD EPYC"


# ---------------------------------------------------------------- a fake NVML

class _NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


def _fake_nvml(*, names: tuple[str, ...] = ("NVIDIA H100 80GB HBM3",) * 2, init_error: int | None = None,
               links: int = 18) -> types.ModuleType:
    """pynvml as nvidia-ml-py exposes it, for GPUs whose NVLinks all reach each other (an HGX pair)."""
    nv = types.ModuleType("pynvml")
    ns: Any = nv
    ns.NVMLError, ns.NVML_ERROR_NOT_SUPPORTED, ns.NVML_FEATURE_ENABLED = _NVMLError, 3, 1
    ns.NVML_NVLINK_MAX_LINKS, ns.NVML_CLOCK_SM, ns.NVML_CLOCK_MEM, ns.NVML_TEMPERATURE_GPU = 18, 1, 2, 0
    bus = [f"00000000:{0x18 + 0x10 * i:02X}:00.0" for i in range(len(names))]

    def init() -> None:
        if init_error is not None:
            raise _NVMLError(init_error)

    def nvlink_state(h: int, link: int) -> int:
        if link >= links:
            raise _NVMLError(2)  # invalid argument past the last link
        return 1

    def power_usage(h: int) -> int:
        raise _NVMLError(4)  # no permission: that reading alone is None

    ns.nvmlInit, ns.nvmlShutdown = init, lambda: None
    ns.nvmlDeviceGetCount = lambda: len(names)
    ns.nvmlDeviceGetHandleByIndex = lambda i: i
    ns.nvmlDeviceGetName = lambda h: names[h].encode()  # older bindings return bytes
    ns.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=81559 * MiB, used=0, free=81559 * MiB)
    ns.nvmlDeviceGetUUID = lambda h: f"GPU-{h}"
    ns.nvmlDeviceGetPciInfo = lambda h: types.SimpleNamespace(busId=bus[h])
    ns.nvmlDeviceGetEccMode = lambda h: [1, 1]
    ns.nvmlDeviceGetTemperature = lambda h, sensor: 31
    ns.nvmlDeviceGetPowerUsage = power_usage
    ns.nvmlDeviceGetEnforcedPowerLimit = lambda h: 700_000
    ns.nvmlDeviceGetCurrPcieLinkGeneration = lambda h: 5
    ns.nvmlDeviceGetCurrPcieLinkWidth = lambda h: 16
    ns.nvmlDeviceGetMaxPcieLinkGeneration = lambda h: 5
    ns.nvmlDeviceGetMaxPcieLinkWidth = lambda h: 16
    ns.nvmlDeviceGetNvLinkState = nvlink_state
    ns.nvmlDeviceGetNvLinkRemotePciInfo = lambda h, link: types.SimpleNamespace(busId=bus[1 - h])
    ns.nvmlDeviceGetClockInfo = lambda h, kind: {1: 1980, 2: 2619}[kind]
    ns.nvmlDeviceGetMaxClockInfo = lambda h, kind: {1: 1980, 2: 2619}[kind]
    ns.nvmlDeviceGetCudaComputeCapability = lambda h: (9, 0)
    ns.nvmlDeviceGetMigMode = lambda h: [0, 0]
    ns.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=0, memory=0)
    ns.nvmlDeviceGetTopologyCommonAncestor = lambda a, b: 50
    ns.nvmlSystemGetDriverVersion = lambda: "580.159.04"
    ns.nvmlSystemGetCudaDriverVersion = lambda: 13000
    return nv


@pytest.fixture
def fresh_local() -> Iterator[None]:
    """`--gpu local` probes once per process: forget it around each test."""
    local_gpu.local_device.cache_clear()
    yield
    local_gpu.local_device.cache_clear()


@pytest.fixture
def no_amd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "amdsmi", None)  # `import amdsmi` raises ImportError


def test_two_nvlinked_gpus(monkeypatch: pytest.MonkeyPatch, no_amd: None) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml())
    machine = probe()
    assert [g.catalog_key for g in machine.gpus] == ["h100-sxm-80gb", "h100-sxm-80gb"]
    first = machine.gpus[0]
    assert (first.name, first.memory_total_bytes, first.ecc, first.temperature_c) == (
        "NVIDIA H100 80GB HBM3", 81559 * MiB, True, 31)
    assert first.power_w is None and first.power_limit_w == 700.0  # refused reading; milliwatts to watts
    assert (first.pcie_gen, first.pcie_width, first.nvlink_links, first.compute_capability, first.mig_mode) == (
        5, 16, 18, "9.0", False)
    assert (first.memory_used_bytes, first.utilization_percent) == (0, 0)
    assert [(p.gpus, p.link, p.nvlink_links) for p in machine.topology] == [((0, 1), "NV18", 18)]
    assert (machine.driver_version, machine.cuda_driver_version) == ("580.159.04", "13.0")
    device = local_device(machine)
    assert (device.accelerator.key, device.count) == ("h100-sxm-80gb", 2)
    if machine.cpu.clock_hz is not None:
        assert local_device(machine, cpu=True).accelerator.kind == "cpu"


def test_pcie_gpus_without_nvlink(monkeypatch: pytest.MonkeyPatch, no_amd: None) -> None:
    nv: Any = _fake_nvml(names=("NVIDIA H100 PCIe",) * 2)

    def not_supported(h: int, link: int) -> int:
        raise _NVMLError(3)

    nv.nvmlDeviceGetNvLinkState = not_supported
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    machine = probe()
    assert [g.nvlink_links for g in machine.gpus] == [0, 0]
    assert [p.link for p in machine.topology] == ["SYS"]


def test_nvml_error_is_no_gpu_with_a_note(monkeypatch: pytest.MonkeyPatch, no_amd: None) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(init_error=9))  # driver not loaded
    machine = probe()
    assert machine.gpus == ()
    assert any("NVML" in note and "no NVIDIA GPU" in note for note in machine.notes)


def test_missing_nvidia_ml_py_is_a_note(monkeypatch: pytest.MonkeyPatch, no_amd: None) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    assert any("nvidia-ml-py is not installed" in note for note in probe().notes)


def test_real_cpu_of_this_machine(monkeypatch: pytest.MonkeyPatch, no_amd: None) -> None:
    """Runs in CI on whatever CPU it has: the probe reads it, and `local` builds an entry from it."""
    cpu = probe_cpu()
    assert cpu.model and 1 <= cpu.cores <= (os.cpu_count() or 1) and cpu.logical_cpus >= 1
    assert cpu.memory_total_bytes > 0
    monkeypatch.setitem(sys.modules, "pynvml", None)
    if cpu.clock_hz is None:
        pytest.skip("this machine's CPU clock is unreadable; --gpu local says so (tested below)")
    device = local_device(probe())
    acc = device.accelerator
    assert acc.kind == "cpu" and device.count == 1
    if cpu.catalog_key is None:  # built from the probe: the formula, by hand
        assert acc.peak_flops_per_s["fp32"] == pytest.approx(cpu.cores * cpu.clock_hz * flops_per_cycle(
            cpu.facts())["fp32"])
        assert acc.memory_bytes == cpu.memory_total_bytes


def test_probe_json_keys(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, no_amd: None) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml())
    assert main(["probe", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    for key in ("name", "memory_total_bytes", "catalog_key", "ecc", "temperature_c", "power_w", "power_limit_w",
                "pcie_gen", "pcie_width", "nvlink_links"):
        assert key in payload["gpus"][0], key
    for key in ("model", "cores", "memory_total_bytes", "catalog_key"):
        assert key in payload["cpu"], key
    assert payload["local"]["accelerator"] == "h100-sxm-80gb" and payload["local"]["count"] == 2


def test_gpu_local_in_train(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, no_amd: None,
                            fresh_local: None) -> None:
    """Two local H100s: `train --gpu local` trains on h100-sxm-80gb with --gpus 2 as the default."""
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml())
    assert main(["train", "stories15m", "--gpu", "local", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["gpu"] == "h100-sxm-80gb" and payload["gpus"] == 2


def test_gpu_local_on_a_cpu_machine(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                    no_amd: None, fresh_local: None) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setattr(probe_module, "probe_cpu", lambda: _cpu_probe(cores=2))
    assert main(["infer", "stories15m", "--gpu", "local", "--batch", "1", "--prompt", "32", "--output", "8",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gpu"] == "local-intel-xeon-platinum-8480+-2c"


def test_gpu_local_with_an_uncatalogued_gpu_is_one_line(capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch, no_amd: None,
                                                         fresh_local: None) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(names=("Tesla V100-SXM2-16GB",)))
    code = main(["train", "stories15m", "--gpu", "local"])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1
    assert "Tesla V100-SXM2-16GB" in err and "--gpu v100-sxm2-32gb" in err


def test_gpu_local_without_a_clock_is_one_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                               no_amd: None, fresh_local: None) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setattr(probe_module, "probe_cpu", lambda: _cpu_probe(cores=2, clock=None))
    code = main(["train", "stories15m", "--gpu", "local"])
    _, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "clock" in err


def _cpu_probe(*, cores: int, clock: float | None = 2.0e9) -> probe_module.ProbedCpu:
    facts = _facts(cores=cores)
    return probe_module._cpu(model=facts.model, vendor_id=facts.vendor_id, family=facts.family, cores=cores,
                             logical=cores, sockets=1, clock=(clock, "test" if clock else None), flags=facts.flags,
                             memory_total=16 * GiB, available=None)


def test_mixed_gpus_count_only_the_first_kind(monkeypatch: pytest.MonkeyPatch, no_amd: None) -> None:
    nv: Any = _fake_nvml(names=("NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe"))
    nv.nvmlDeviceGetNvLinkRemotePciInfo = lambda h, link: types.SimpleNamespace(busId="")
    nv.nvmlDeviceGetMigMode = lambda h: [1, 1]
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    device = local_device(probe())
    assert (device.accelerator.key, device.count) == ("h100-sxm-80gb", 2)
    assert "1 other GPU" in device.note and "MIG is on" in device.note


def test_amd_gpus_through_amdsmi(monkeypatch: pytest.MonkeyPatch) -> None:
    am: Any = types.ModuleType("amdsmi")
    am.amdsmi_init, am.amdsmi_shut_down = (lambda: None), (lambda: None)
    am.amdsmi_get_processor_handles = lambda: ["gpu0"]
    am.amdsmi_get_gpu_asic_info = lambda h: {"market_name": "AMD Instinct MI300X", "target_graphics_version": "gfx942"}
    am.AmdSmiMemoryType = types.SimpleNamespace(VRAM=0)
    am.amdsmi_get_gpu_memory_total = lambda h, kind: 192 * GiB
    am.amdsmi_get_power_info = lambda h: {"current_socket_power": "N/A", "average_socket_power": 151,
                                          "power_limit": 750}
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setitem(sys.modules, "amdsmi", am)
    (gpu,) = probe().gpus
    assert (gpu.vendor, gpu.catalog_key, gpu.power_w, gpu.power_limit_w) == ("AMD", "mi300x-192gb", 151, 750)
    assert gpu.temperature_c is None and gpu.compute_capability == "gfx942"  # amdsmi without the enum types


def test_a_misspelt_local_is_suggested(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "stories15m", "--gpu", "lokal"])
    assert code == 2 and "did you mean local" in capsys.readouterr().err


def test_fit_on_the_local_device_only(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                      no_amd: None, fresh_local: None) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml())
    assert main(["fit", "stories15m", "--gpu", "local,a100-40gb", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert sorted(r["gpu"] for r in rows) == ["a100-sxm-40gb", "h100-sxm-80gb"]
    assert all(r["min_gpus"] == 1 for r in rows)  # 15M parameters fit anywhere


def test_local_picks_up_the_saved_calibration_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Any,
                                                      no_amd: None, fresh_local: None) -> None:
    """`--gpu local` with no --calibration takes the profile `suanli bench` saved for that device, if any."""
    import argparse

    pytest.importorskip("suanli.spec.calibration")
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml())
    monkeypatch.setenv("SUANLI_CALIBRATION_DIR", str(tmp_path))
    args = argparse.Namespace(gpu="local", calibration=None, json=True)
    local_gpu.apply_local_defaults(args)
    assert args.calibration is None  # nothing saved yet
    (tmp_path / "h100-sxm-80gb.toml").write_text("schema = 1\n")
    local_gpu.apply_local_defaults(args)
    assert args.calibration == str(tmp_path / "h100-sxm-80gb.toml")
    named = argparse.Namespace(gpu="local", calibration="mine.toml", json=True)
    local_gpu.apply_local_defaults(named)
    assert named.calibration == "mine.toml"  # the user's choice stands


def test_probe_table(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, no_amd: None) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml())
    assert main(["probe"]) == 0
    out = capsys.readouterr().out
    assert "NVIDIA H100 80GB HBM3" in out and "0-1 NV18" in out and "h100-sxm-80gb x 2" in out
    assert "driver: 580.159.04 (CUDA 13.0)" in out


def test_train_on_local_uses_the_saved_profile(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Any, no_amd: None, fresh_local: None) -> None:
    """End to end without running bench: a profile saved under the local CPU's key calibrates `train --gpu local`;
    GEMMs measured at under 1% of the estimated 4.1 TFLOP/s bf16 peak (2 cores x 2 GHz x 1024) make the step slower."""
    calibration = pytest.importorskip("suanli.spec.calibration")
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setattr(probe_module, "probe_cpu", lambda: _cpu_probe(cores=2))
    monkeypatch.setenv("SUANLI_CALIBRATION_DIR", str(tmp_path))
    assert main(["train", "stories15m", "--gpu", "local", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    key = plain["gpu"]
    points = tuple(calibration.GemmPoint(dtype="bf16", m=n, n=n, k=n, seconds=2 * n**3 / rate,
                                         achieved_flops_per_s=rate)
                   for n, rate in ((256, 1e10), (512, 2e10), (1024, 3e10), (2048, 3.5e10)))  # < 1% of the peak
    profile = calibration.Calibration(device_name="test CPU", device_key=key, device_kind="cpu", torch_version="test",
                                      date="2026-12-03", copy_bytes_per_s=2e9, gemm=points)  # 5% of the estimate
    calibration.write_calibration(profile, calibration.default_profile_path(key))
    assert main(["train", "stories15m", "--gpu", "local", "--json"]) == 0
    calibrated = json.loads(capsys.readouterr().out)
    assert calibrated["calibration"]["profile_path"] == str(calibration.default_profile_path(key))
    assert calibrated["time"]["step_s"] > plain["time"]["step_s"]


def test_probe_says_why_local_is_unavailable_in_the_readers_language(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, no_amd: None, fresh_local: None) -> None:
    """A CPU without a readable clock leaves --gpu local unavailable: probe's table says the error in --lang zh,
    its --json keeps the English."""
    monkeypatch.setitem(sys.modules, "pynvml", None)
    monkeypatch.setattr(probe_module, "probe_cpu", lambda: _cpu_probe(cores=2, clock=None))
    assert main(["probe", "--json"]) == 0
    english = json.loads(capsys.readouterr().out)["local"]["error"]
    assert "clock" in english
    assert main(["probe"]) == 0
    assert f"--gpu local: unavailable: {english}" in capsys.readouterr().out
    assert main(["probe", "--lang", "zh"]) == 0
    out = capsys.readouterr().out
    assert "--gpu local：不可用：" in out and english not in out
