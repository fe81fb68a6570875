"""The errors of `suanli measure`, `suanli bench`, `--gpu local` and `--calibration` are said in Chinese with
``--lang zh``: the mistakes users meet there (no CUDA, a sequence beyond the context, a run too big for the
machine, a GPU the catalog lacks, a profile for several GPUs, an unwritable profile path)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import pytest
from tests.surface.cli_helpers import KeyedError

from suanli.errors import Unavailable
from suanli.i18n import error_text


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch sees no CUDA device, on any machine the tests run on."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def local_gpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, int], None]]:
    """``local_gpu(name, bytes)``: the probe of this machine finds one GPU so named (``--gpu local`` uses it)."""
    from suanli.cli import local_gpu as local
    from suanli.measure import probe
    from suanli.spec.local_device import match_gpu

    def install(name: str, memory_bytes: int) -> None:
        match = match_gpu(name, memory_bytes)
        gpu = probe.ProbedGpu(index=0, vendor="NVIDIA", name=name, memory_total_bytes=memory_bytes,
                              catalog_key=match.catalog_key, nearest_catalog_key=match.nearest, match=match.reason)
        machine = probe.MachineProbe(gpus=(gpu,), cpu=probe.probe_cpu())
        monkeypatch.setattr(probe, "probe", lambda: machine)
        local.local_device.cache_clear()

    yield install
    local.local_device.cache_clear()


def test_measure_beyond_the_models_context(keyed_error: KeyedError) -> None:
    keyed_error(["measure", "tinyllama-stories15m", "--mode", "infer", "--seq", "4096"], "error.measure.beyond_context")


def test_measure_on_cuda_without_a_gpu(no_cuda: None, keyed_error: KeyedError) -> None:
    keyed_error(["measure", "tinyllama-stories15m", "--device", "cuda"], "error.measure.measure_no_cuda")


def test_bench_on_cuda_without_a_gpu(no_cuda: None, keyed_error: KeyedError) -> None:
    keyed_error(["bench", "--device", "cuda", "--quick"], "error.measure.bench_no_cuda")


def test_measure_a_run_bigger_than_the_free_memory(keyed_error: KeyedError, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from suanli.measure import run

    monkeypatch.setattr(run, "meminfo_available_bytes", lambda: 2**20)
    keyed_error(["measure", "tinyllama-stories15m", "--seq", "64", "--steps", "1", "--warmup", "1"],
                "error.measure.run_too_big")


@pytest.mark.parametrize(("name", "memory_bytes"), [("NVIDIA H100 80GB HBM3", 40 * 2**30),
                                                    ("Zork Accelerator 9000", 16 * 2**30)])
def test_a_local_gpu_the_catalog_lacks(name: str, memory_bytes: int, local_gpu: Callable[[str, int], None],
                                       keyed_error: KeyedError) -> None:
    local_gpu(name, memory_bytes)
    keyed_error(["infer", "llama-3.2-1b", "--gpu", "local"], "error.measure.local_gpu_not_in_catalog")


def test_one_profile_for_several_gpus(keyed_error: KeyedError) -> None:
    keyed_error(["plan", "serve", "llama-3.2-1b", "--rate", "1", "--prompt", "256", "--output", "32",
                 "--slo-ttft-ms", "500", "--slo-tpot-ms", "50", "--gpu", "h100,a100", "--calibration", "h100.toml"],
                "error.measure.calibration_one_device")


def test_meminfo_without_its_fields_is_said_in_chinese() -> None:
    from suanli.measure.run import meminfo_available_bytes

    with pytest.raises(Unavailable) as caught:
        meminfo_available_bytes("MemTotal: 100 kB\n")
    exc = caught.value
    assert exc.key == "error.measure.meminfo_fields" and error_text(exc.key, exc.fields, "en") == str(exc)
    assert error_text(exc.key, exc.fields, "zh") == "/proc/meminfo 中既没有 MemAvailable 也没有 MemFree"


def test_a_cpu_without_a_clock_is_said_in_chinese() -> None:
    from suanli.measure import probe

    cpu = dataclasses.replace(probe.probe_cpu(), model="Mystery CPU", clock_hz=None)
    with pytest.raises(Unavailable) as caught:
        cpu.facts()
    exc = caught.value
    assert error_text(exc.key, exc.fields, "en") == str(exc)
    assert error_text(exc.key, exc.fields, "zh").startswith("读不到 CPU 'Mystery CPU' 的主频（")
