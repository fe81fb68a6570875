"""`suanli bench`: the quick CPU run end to end (deselect with -m 'not bench'), its warnings, its errors."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from tests.surface.cli_helpers import KeyedError

from suanli.cli.main import main
from suanli.measure import bench
from suanli.spec.calibration import Calibration, GemmPoint, load_calibration, write_calibration
from suanli.spec.hardware import get_accelerator


@pytest.fixture(scope="module")
def quick_profile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """One `suanli bench --device cpu --quick` run shared by the tests of this module (~5-15 s on 2 cores)."""
    path = tmp_path_factory.mktemp("bench") / "cpu.toml"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["bench", "--device", "cpu", "--quick", "--out", str(path), "--json"]) == 0
    return path, json.loads(out.getvalue())


@pytest.mark.bench
def test_quick_cpu_bench_writes_a_profile_that_loads(quick_profile: tuple[Path, dict[str, object]]) -> None:
    path, printed = quick_profile
    profile = load_calibration(path)
    assert printed["profile_path"] == str(path)
    assert profile.device_kind == "cpu" and profile.quick
    assert set(profile.dtypes) == {"fp32", "bf16"}
    square = bench.plan_for("cpu", quick=True).square["fp32"]
    assert [p.m for p in profile.gemm_points("fp32") if p.m == p.n == p.k] == list(square)
    for point in profile.gemm:
        assert point.achieved_flops_per_s == pytest.approx(point.flops / point.seconds)
    assert profile.copy_bytes_per_s > 1e8  # any machine that runs the tests copies faster than 100 MB/s
    assert profile.allreduce == () and profile.h2d_bytes_per_s is None
    assert profile.kernel_overhead_s is not None and 1e-7 < profile.kernel_overhead_s < 1e-3  # eager dispatch: µs


@pytest.mark.bench
def test_profile_of_this_machine_calibrates_a_local_training_estimate(
        quick_profile: tuple[Path, dict[str, object]], capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUANLI_CALIBRATION_DIR", str(tmp_path))  # no saved profile: the first run is uncalibrated
    path, _ = quick_profile
    args = ["train", "tinyllama-stories15m", "--gpu", "local", "--precision", "fp32", "--framework", "hf",
            "--seq", "256", "--json"]
    assert main(args) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main([*args, "--calibration", str(path)]) == 0
    calibrated = json.loads(capsys.readouterr().out)
    assert calibrated["calibration"]["profile_path"] == str(path)
    assert calibrated["time"]["step_s"] != plain["time"]["step_s"]


def test_cuda_without_a_gpu_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["bench", "--device", "cuda", "--quick", "--out", os.devnull]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "torch sees no CUDA GPU" in err and "--device cpu" in err


def test_busy_cpu_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    cores = len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "getloadavg", lambda: (cores + 1.5, 0.0, 0.0))
    (warning,) = bench._busy_warnings(None, "cpu")
    assert f"load average {cores + 1.5:.2f} is above the {cores} usable cores" in warning
    monkeypatch.setattr(os, "getloadavg", lambda: (cores - 0.5, 0.0, 0.0))
    assert bench._busy_warnings(None, "cpu") == []


class _NoisyClock:
    def time(self, fn: object) -> bench.Timing:
        return bench.Timing(seconds=1e-3, spread=0.35)


def test_noisy_repeats_are_reported() -> None:
    torch = pytest.importorskip("torch")
    plan = bench.BenchPlan(square={"fp32": (8, 16)}, skinny={}, copy_bytes=1024, repeats=1, min_sample_s=0)
    warnings: list[str] = []
    points = bench._gemms(torch, _NoisyClock(), "cpu", plan, lambda _: None, warnings)  # type: ignore[arg-type]
    assert [p.m for p in points] == [8, 16]
    assert warnings == ["repeat-to-repeat spread above 20% on 2 of 2 GEMMs (fp32 8x8x8 (35%), fp32 16x16x16 (35%)): "
                        "the device looks busy; rerun on an idle machine for a profile to trust"]


def test_clock_takes_the_median_and_spread() -> None:
    torch = pytest.importorskip("torch")
    plan = bench.BenchPlan(square={}, skinny={}, copy_bytes=0, repeats=3, min_sample_s=0.0)
    clock = bench._Clock(torch, "cpu", plan)
    times = iter([1.0, 1.0, 2.0, 4.0, 3.0])  # warm-up, one loop (already >= min_sample_s), three repeats
    clock._once = lambda fn, loops: next(times)  # type: ignore[method-assign]
    assert clock.time(lambda: None) == bench.Timing(seconds=3.0, spread=(4.0 - 2.0) / 3.0)


def test_malformed_profile_is_exit_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('schema = 1\n[device]\nname = "x"\nkey = "h100"\nkind = "cuda"\n[run]\ntorch_version = "2"\n'
                   'date = "2026"\n[memory]\ncopy_bytes_per_s = "fast"\n[[gemm]]\ndtype = "bf16"\nm = 8\nn = 8\nk = 8\n'
                   'seconds = 1.0\nachieved_flops_per_s = 1024.0\n')
    for command in (["train", "tinyllama-stories15m", "--gpu", "h100"],
                    ["infer", "tinyllama-stories15m", "--gpu", "h100", "--prompt", "64", "--output", "64"]):
        assert main([*command, "--calibration", str(bad), "--json"]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err
        assert f"calibration profile {bad}: memory.copy_bytes_per_s must be a positive number, got 'fast'" in err


@pytest.mark.bench
def test_profile_of_another_gpu_is_exit_2(quick_profile: tuple[Path, dict[str, object]],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = quick_profile
    assert main(["train", "tinyllama-stories15m", "--gpu", "h100", "--calibration", str(path)]) == 2
    err = capsys.readouterr().err
    assert "but --gpu is h100-sxm-80gb" in err and "--gpu local" in err


def _synthetic(path: Path, fraction: float, half_work: float, bandwidth_fraction: float) -> Path:
    """A profile for the catalog's EPYC 9654 whose bf16 GEMMs run at fraction·peak·F/(F + half_work)."""
    acc = get_accelerator("epyc-9654")
    peak = acc.peak_flops("bf16")
    points = []
    for n in (256, 512, 1024, 2048, 4096):
        rate = fraction * peak * 2 * n**3 / (2 * n**3 + half_work)
        points.append(GemmPoint(dtype="bf16", m=n, n=n, k=n, seconds=2 * n**3 / rate, achieved_flops_per_s=rate))
    profile = Calibration(device_name="EPYC 9654", device_key=acc.key, device_kind="cpu", torch_version="2.13.0",
                          date="2026-12-03", copy_bytes_per_s=bandwidth_fraction * acc.memory_bandwidth_bytes_per_s,
                          gemm=tuple(points))
    return write_calibration(profile, path)


def test_calibration_moves_the_step_time_the_way_the_measurement_says(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", "llama-3-8b", "--gpu", "epyc-9654", "--seq", "512", "--json"]

    def step_s(*extra: str) -> float:
        assert main([*args, *extra]) == 0
        return float(json.loads(capsys.readouterr().out)["time"]["step_s"])

    default = step_s()  # gemm_peak_fraction 0.8, half-work 2e9, memory fraction 0.85
    slow = step_s("--calibration", str(_synthetic(tmp_path / "slow.toml", 0.3, 2e9, 0.85)))
    fast = step_s("--calibration", str(_synthetic(tmp_path / "fast.toml", 1.0, 1e8, 1.0)))
    assert fast < default < slow
    # only p changed (0.8 -> 0.3): the GEMM share of the step scales by 0.8/0.3, the rest (attention, streams) not,
    # so the step slows by less than 0.8/0.3 and, GEMMs dominating a CPU step at seq 512, by more than 2
    assert 2.0 < slow / default < 0.8 / 0.3


def _slow_h100(path: Path) -> Path:
    """An H100 profile whose bf16 GEMMs reach 0.3 of peak (default 0.8) and whose copy 0.4 of the bandwidth (0.85)."""
    acc = get_accelerator("h100")
    peak = acc.peak_flops("bf16")
    points = []
    for n in (1024, 2048, 4096, 8192):
        rate = 0.3 * peak * 2 * n**3 / (2 * n**3 + 2e9)
        points.append(GemmPoint(dtype="bf16", m=n, n=n, k=n, seconds=2 * n**3 / rate, achieved_flops_per_s=rate))
    profile = Calibration(device_name="H100", device_key=acc.key, device_kind="cuda", torch_version="2.13.0",
                          date="2026-12-03", copy_bytes_per_s=0.4 * acc.memory_bandwidth_bytes_per_s,
                          gemm=tuple(points))
    return write_calibration(profile, path)


@pytest.mark.parametrize(("command", "slower"), [
    (["simulate", "qwen3-0.6b", "--concurrency", "4", "--requests", "20", "--prompt", "256", "--output", "32"],
     lambda d: d["latency"]["tpot_s"]["mean"]),
    (["infer", "qwen3-0.6b", "--prompt", "256", "--output", "32"], lambda d: d["latency"]["ttft_s"]),
    (["plan", "train", "qwen3-0.6b", "--tokens", "1e9", "--max-gpus", "8"], lambda d: d["best"]["time"]["step_s"]),
    (["plan", "serve", "qwen3-0.6b", "--rate", "5", "--prompt", "256", "--output", "32", "--slo-ttft-ms", "2000",
      "--slo-tpot-ms", "100"], lambda d: d["best"]["latency"]["tpot_s"]["p50"]),
])
def test_every_command_takes_a_profile_and_slows_with_a_slow_one(
        command: list[str], slower: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def run(*extra: str) -> dict[str, object]:
        assert main([*command, "--gpu", "h100", "--json", *extra]) == 0
        return dict(json.loads(capsys.readouterr().out))

    plain, calibrated = run(), run("--calibration", str(_slow_h100(tmp_path / "h100.toml")))
    assert slower(calibrated) > slower(plain)  # type: ignore[operator]
    where = calibrated["best"] if command[:2] == ["plan", "train"] else calibrated
    assert where["calibration"]["gemm_peak_fraction"] == pytest.approx(0.3)  # type: ignore[index]


def test_plan_with_several_gpus_refuses_one_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _slow_h100(tmp_path / "h100.toml")
    assert main(["plan", "train", "qwen3-0.6b", "--gpu", "h100,a100", "--tokens", "1e9", "--calibration",
                 str(path)]) == 2
    assert "--calibration describes one device, but --gpu names 2" in capsys.readouterr().err


def test_unwritable_out_is_one_clear_line(tmp_path: Path, keyed_error: KeyedError,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    fake = Calibration(device_name="x", device_key="local-x-1c", device_kind="cpu", torch_version="2", date="d",
                       copy_bytes_per_s=1.0, gemm=(GemmPoint(dtype="fp32", m=2, n=2, k=2, seconds=1.0,
                                                             achieved_flops_per_s=16.0),))
    monkeypatch.setattr(bench, "run_bench", lambda device, *, quick, log: fake)
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = blocker / "p.toml"
    exc = keyed_error(["bench", "--device", "cpu", "--out", str(out)], "error.measure.profile_unwritable")
    assert f"cannot write the calibration profile to {out}" in str(exc)  # one line, said in both languages


def test_a_cuda_device_without_nvml_is_named_from_torch() -> None:
    """No nvidia-ml-py: the probe sees no GPU, so bench maps the name and memory torch reports (H200 as the
    device machine's driver reports it: 143,771 MiB)."""
    import types

    def fake_torch(name: str, mib: int) -> object:
        props = types.SimpleNamespace(name=name, total_memory=mib * 2**20)
        cuda = types.SimpleNamespace(get_device_properties=lambda index: props, device_count=lambda: 2)
        return types.SimpleNamespace(cuda=cuda)

    from suanli.measure.probe import local_device, probe

    if local_device(probe()).accelerator.kind != "cpu":
        pytest.skip("this machine's probe sees a GPU")
    assert bench._device_identity(fake_torch("NVIDIA H200", 143771), "cuda") == ("NVIDIA H200", "h200-sxm-141gb", 2)
    from suanli.errors import UnknownAccelerator

    with pytest.raises(UnknownAccelerator, match="'NVIDIA Quantum 9000' is not in the catalog"):
        bench._device_identity(fake_torch("NVIDIA Quantum 9000", 1000), "cuda")


def test_rounds_are_interleaved_and_each_shape_keeps_its_best_round() -> None:
    torch = pytest.importorskip("torch")
    plan = bench.BenchPlan(square={"fp32": (8, 16)}, skinny={}, copy_bytes=1024, repeats=1, min_sample_s=0, rounds=3)
    medians = iter([4.0, 1.0, 2.0, 3.0, 1.0, 2.0])  # 8³, 16³ in round 1, then rounds 2 and 3: a burst hit 8³'s first
    order: list[int] = []

    class Clock:
        def time(self, fn: object) -> bench.Timing:
            order.append(len(order))
            return bench.Timing(seconds=next(medians), spread=0.0)

    points = bench._gemms(torch, Clock(), "cpu", plan, lambda _: None, [])  # type: ignore[arg-type]
    assert len(order) == 6
    assert [(p.m, p.seconds) for p in points] == [(8, 1.0), (16, 1.0)]
    assert bench.best_of_rounds([bench.Timing(seconds=s, spread=0.1) for s in (4.0, 2.0)]) == \
        bench.Timing(seconds=2.0, spread=1.0)
    assert bench.best_of_rounds([bench.Timing(seconds=2.0, spread=0.1)]) == bench.Timing(seconds=2.0, spread=0.1)


def test_quick_cpu_ladder_spans_the_knee() -> None:
    plan = bench.plan_for("cpu", quick=True)
    sizes = plan.square["fp32"]
    assert sizes[0] <= 64 and sizes[-1] >= 1024 and len(sizes) >= 8
    assert all(b / a <= 1.5 for a, b in itertools.pairwise(sizes))  # a point every factor ≤ 1.5
    assert plan.rounds >= 3


def test_summary_shows_both_measured_dispatch_costs() -> None:
    from suanli.cli.bench_commands import summary

    point = GemmPoint(dtype="fp32", m=256, n=256, k=256, seconds=2 * 256**3 / 1e11, achieved_flops_per_s=1e11)
    profile = Calibration(device_name="x", device_key="epyc-9654", device_kind="cpu", torch_version="2", date="d",
                          copy_bytes_per_s=2e10, gemm=(point,), kernel_overhead_s=1.8e-6, eager_call_s=6.7e-6)
    text = summary(profile, Path("p.toml"))
    assert "1.8 us per eager op" in text and "6.7 us per call" in text
    assert "us per call" not in summary(replace(profile, eager_call_s=None), Path("p.toml"))
