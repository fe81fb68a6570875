"""``suanli bench``: microbenchmarks on the local device with torch, returned as a calibration profile.

What is timed (each after warm-up, as the median of repeats; a repeat loops a call until it lasts at least
``min_sample_s`` so that timer resolution and launch jitter stay small):

- GEMMs C = A @ B over a ladder of square sizes n (2n³ FLOPs) and skinny shapes (m = 16 rows, the decode-like
  case), in fp32, bf16 and fp16 (tf32 and fp8 on CUDA where supported; fp8 through ``torch._scaled_mm`` on
  compute capability 8.9 or newer). ``suanli.core.calibrate`` fits the time model's GEMM curve to the square ones
  and to the block-shaped ones (m tokens × 3h outputs × h inputs, the fused QKV/up projection of a small model).
  The CPU ladder runs from 64³ to 1024³ with a size every factor ~1.5: the fit's half-work size h is the knee of
  the curve, and a fit can only place the knee where points lie on both sides of it (four sizes, as the first
  quick ladder had, left h anywhere between 1e3 and 1.4e9 FLOPs from run to run).
- Per-op dispatch (CPU): the wall time of one tiny eager op (a 1-element add whose input requires grad, so
  autograd records it as in a training forward). On a CPU that cost (~5-20 µs in eager PyTorch) is paid by every
  op of a step and is the profile's ``kernel_overhead_s``; on CUDA the launch is asynchronous and it is not timed.
- Per-call cost of an eager training step (CPU, with transformers installed): a tiny 2-layer Llama's training
  step (width 64, 8 tokens: negligible arithmetic) over its top-level aten calls counted with torch.profiler
  (``suanli.measure.eager_ops``), the profile's ``eager_call_s``. A real call also runs its module's Python,
  ``nn.Module.__call__`` and autograd's backward engine, which the bare add above does not; the time model
  charges it per counted call of a transformers step on a CPU (``core/training_block.eager_dispatch_s``).
- Memory bandwidth: ``dst.copy_(src)`` of a large buffer, counted as bytes read + bytes written (STREAM Copy).
- Host<->device bandwidth (CUDA): copies between pinned host memory and the GPU, each direction.
- All-reduce bus bandwidth across the local GPUs (CUDA, more than one GPU) with torch.distributed/NCCL, one
  process per GPU; busbw = bytes / time · 2(n−1)/n (nccl-tests doc/PERFORMANCE.md). Skipped, and said, otherwise.

On CUDA, time comes from ``torch.cuda.Event`` pairs after ``torch.cuda.synchronize``; on CPU from
``time.perf_counter``. With ``rounds`` > 1 (the CPU plans) the whole GEMM ladder is timed ``rounds`` times over,
interleaved, and each shape keeps the minimum of its rounds' medians: other processes on a shared machine only
ever slow a sample down, and their bursts last seconds, so interleaving spreads a burst over many shapes'
rounds instead of spoiling all repeats of one shape, and the least-disturbed round is the device's own speed.
A busy or throttled device is reported, never refused: on CPU a 1-minute load average
above the usable cores before the run, on CUDA NVML's clock-throttle reasons and other processes on the GPU,
and anywhere a GEMM whose repeats spread by more than ``SPREAD_WARNING`` of their median.

torch (and pynvml) are imported here, lazily; nothing in ``suanli.core`` imports this module.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from suanli.errors import SpecError, Unavailable
from suanli.i18n import Text
from suanli.spec.calibration import AllReducePoint, Calibration, GemmPoint

#: A GEMM whose repeat-to-repeat spread (max − min) / median exceeds this is reported as noisy.
SPREAD_WARNING = 0.20
_MAX_LOOPS = 8192
_DTYPES = {"fp32": "float32", "tf32": "float32", "bf16": "bfloat16", "fp16": "float16"}


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchPlan:
    """What to time: square sizes and other (m, n, k) shapes per dtype (``skinny``: decode-like rows and, on CPU,
    block-shaped ones), the copy size, repeats, the sample length and the interleaved rounds."""

    square: Mapping[str, tuple[int, ...]]
    skinny: Mapping[str, tuple[tuple[int, int, int], ...]]
    copy_bytes: int
    repeats: int
    min_sample_s: float
    rounds: int = 1  # interleaved passes over the GEMM ladder; each shape keeps its best round's median


def plan_for(device: str, *, quick: bool) -> BenchPlan:
    """The size ladder: ``--quick`` on CPU stays within ~30 s on two loaded cores; CUDA goes to 8192³."""
    if device == "cpu":
        sizes: tuple[int, ...] = (64, 96, 128, 192, 256, 384, 512, 768, 1024)
        if not quick:
            sizes += (1536, 2048)
        square: dict[str, tuple[int, ...]] = {"fp32": sizes, "bf16": sizes[::2]}
        if not quick:  # CPUs without native fp16 GEMMs run it in a slow fallback: small sizes only
            square["fp16"] = (128, 256)
        skinny_shape = (16, 1024, 1024) if quick else (16, 2048, 2048)
        blocks = tuple((m, 3 * h, h) for m, h in ((128, 256), (256, 256), (256, 512), (512, 512)))
        return BenchPlan(square=square, skinny={"fp32": (*blocks, skinny_shape), "bf16": (skinny_shape,)},
                         copy_bytes=(64 if quick else 256) * 2**20, repeats=5 if quick else 7,
                         min_sample_s=0.001 if quick else 0.005, rounds=3 if quick else 5)
    sizes = (256, 512, 1024, 2048, 4096) if quick else (256, 512, 1024, 2048, 4096, 6144, 8192)
    square = {"fp32": sizes[:4], "tf32": sizes, "bf16": sizes, "fp16": sizes, "fp8": sizes}
    skinny: dict[str, tuple[tuple[int, int, int], ...]] = {d: ((16, 8192, 8192), (128, 8192, 8192))
                                                           for d in ("bf16", "fp16")}
    return BenchPlan(square=square, skinny=skinny, copy_bytes=2**30, repeats=10 if quick else 30,
                     min_sample_s=0.005 if quick else 0.02)


@dataclass(frozen=True, slots=True, kw_only=True)
class Timing:
    """Median seconds per call over the repeats and their spread (max − min) / median."""

    seconds: float
    spread: float


class _Clock:
    """Times ``fn`` on one device: warm up, double the loop count until a sample lasts ``min_sample_s`` (so one
    scheduler stall on a shared machine is averaged over many calls), then take the repeats."""

    def __init__(self, torch: Any, device: str, plan: BenchPlan) -> None:
        self.torch, self.device, self.plan = torch, device, plan

    def _once(self, fn: Callable[[], object], loops: int) -> float:
        if self.device == "cpu":
            start = time.perf_counter()
            for _ in range(loops):
                fn()
            return (time.perf_counter() - start) / loops
        cuda = self.torch.cuda
        begin, end = cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)
        cuda.synchronize()
        begin.record()
        for _ in range(loops):
            fn()
        end.record()
        cuda.synchronize()
        return float(begin.elapsed_time(end)) / 1e3 / loops

    def time(self, fn: Callable[[], object]) -> Timing:
        self._once(fn, 1)  # warm-up: allocation, kernel selection, caches
        loops = 1  # doubled until one sample lasts min_sample_s, as timeit's autorange grows its loop
        while loops < _MAX_LOOPS and self._once(fn, loops) * loops < self.plan.min_sample_s:
            loops *= 2
        samples = [self._once(fn, loops) for _ in range(self.plan.repeats)]
        median = statistics.median(samples)
        return Timing(seconds=median, spread=(max(samples) - min(samples)) / median)


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise Unavailable("suanli bench needs torch: pip install 'suanli[measure]' (or pip install torch)",
                          key="error.measure.bench_needs_torch") from None
    return torch


def _operands(torch: Any, dtype: str, m: int, n: int, k: int, device: str) -> Callable[[], object] | None:
    """A zero-argument GEMM call, or None when this torch/device cannot run ``dtype``."""
    if dtype == "fp8":
        if device == "cpu" or torch.cuda.get_device_capability() < (8, 9) or not hasattr(torch, "float8_e4m3fn"):
            return None
        a = torch.randn(m, k, device=device).to(torch.float8_e4m3fn)
        b = torch.randn(n, k, device=device).to(torch.float8_e4m3fn).t()  # column-major, as _scaled_mm wants
        one = torch.tensor(1.0, device=device)
        return lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    a = torch.randn(m, k, device=device, dtype=getattr(torch, _DTYPES[dtype]))
    b = torch.randn(k, n, device=device, dtype=getattr(torch, _DTYPES[dtype]))
    return lambda: torch.matmul(a, b)


def best_of_rounds(rounds: list[Timing]) -> Timing:
    """The round with the lowest median (interference only adds time); spread: that round's own spread when there
    is one round, else (slowest − fastest) / fastest over the rounds' medians, how far a burst moved the shape."""
    best = min(rounds, key=lambda t: t.seconds)
    if len(rounds) == 1:
        return best
    return Timing(seconds=best.seconds, spread=(max(t.seconds for t in rounds) - best.seconds) / best.seconds)


def _timed_rounds(torch: Any, clock: _Clock, device: str, plan: BenchPlan, warnings: list[str],
                  log: Callable[[str], None]) -> dict[tuple[str, int, int, int], list[Timing]]:
    """Every shape of every dtype timed ``plan.rounds`` times, the ladder interleaved (module docstring); operands
    are made afresh each round so that only one shape's matrices are held at a time."""
    timings: dict[tuple[str, int, int, int], list[Timing]] = {}
    skipped: set[str] = set()
    for _ in range(max(1, plan.rounds)):
        for dtype in dict.fromkeys([*plan.square, *plan.skinny]):
            shapes = [(n, n, n) for n in plan.square.get(dtype, ())] + list(plan.skinny.get(dtype, ()))
            if device == "cuda":
                torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
            for m, n, k in shapes if dtype not in skipped else ():
                try:
                    call = _operands(torch, dtype, m, n, k, device)
                except (RuntimeError, TypeError) as exc:  # a dtype this build or device lacks
                    call = None
                    warnings.append(Text("note.bench.dtype_skipped", dtype=dtype, reason=str(exc).splitlines()[0]))
                if call is None:
                    log(Text("value.bench.dtype_unsupported", dtype=dtype))
                    skipped.add(dtype)
                    break
                timings.setdefault((dtype, m, n, k), []).append(clock.time(call))
    return timings


def _gemms(torch: Any, clock: _Clock, device: str, plan: BenchPlan, log: Callable[[str], None],
           warnings: list[str]) -> list[GemmPoint]:
    points: list[GemmPoint] = []
    noisy: list[str] = []
    for (dtype, m, n, k), rounds in _timed_rounds(torch, clock, device, plan, warnings, log).items():
        timing = best_of_rounds(rounds)
        rate = 2.0 * m * n * k / timing.seconds
        points.append(GemmPoint(dtype=dtype, m=m, n=n, k=k, seconds=timing.seconds,  # type: ignore[arg-type]
                                achieved_flops_per_s=rate))
        log(Text("value.bench.gemm", dtype=dtype, m=m, n=n, k=k, tflops=rate / 1e12, spread=timing.spread))
        if timing.spread > SPREAD_WARNING:
            noisy.append(f"{dtype} {m}x{n}x{k} ({timing.spread:.0%})")
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    if noisy:
        shapes = f"{', '.join(noisy[:4])}{', ...' if len(noisy) > 4 else ''}"
        warnings.append(Text("note.bench.noisy", limit=SPREAD_WARNING, noisy=len(noisy), total=len(points),
                             shapes=shapes))
    return points


def _dispatch_overhead_s(torch: Any, clock: _Clock, plan: BenchPlan) -> float:
    """Wall time of one eager ``torch.add`` of two 1-element CPU tensors, one requiring grad (autograd records a
    node, as for every op of a training forward): the op's arithmetic is nil, so this is the per-op cost of
    Python → dispatcher → kernel → autograd bookkeeping. Best round's median, like the GEMMs."""
    with torch.inference_mode(False), torch.enable_grad():
        a, b = torch.ones(1, requires_grad=True), torch.ones(1)
        return best_of_rounds([clock.time(lambda: torch.add(a, b)) for _ in range(max(1, plan.rounds))]).seconds


def _eager_call_s(torch: Any, log: Callable[[str], None]) -> float | None:
    """Per top-level call of a tiny eager transformers training step (``suanli.measure.eager_ops.eager_call_s``):
    the 1-element add above leaves out what a real step's calls also pay (module ``__call__``, the model's Python,
    autograd's backward engine), 4-6x its time on a 2-core CPU; None, and said so, without transformers."""
    try:
        from suanli.measure.eager_ops import eager_call_s

        with torch.inference_mode(False), torch.enable_grad():
            value = eager_call_s()
    except ImportError:
        log(Text("value.bench.no_transformers"))
        return None
    log(Text("value.bench.eager_call", us=value * 1e6))
    return value


def _copy_bandwidth(torch: Any, clock: _Clock, device: str, plan: BenchPlan) -> float:
    """(bytes read + bytes written) / time of ``dst.copy_(src)``; the best of ``plan.rounds`` rounds' medians, as
    for the GEMMs (one round under a burst of load read 11 GB/s on a machine that copies at 31 GB/s)."""
    src = torch.empty(plan.copy_bytes // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    rounds = [clock.time(lambda: dst.copy_(src)) for _ in range(max(1, plan.rounds))]
    return 2.0 * plan.copy_bytes / best_of_rounds(rounds).seconds


def _host_links(torch: Any, clock: _Clock, plan: BenchPlan) -> tuple[float, float]:
    """Pinned host -> device and device -> host bandwidth, bytes moved / time."""
    size = min(plan.copy_bytes, 2**28) // 4
    host = torch.empty(size, dtype=torch.float32).pin_memory()
    gpu = torch.empty(size, dtype=torch.float32, device="cuda")
    h2d = clock.time(lambda: gpu.copy_(host, non_blocking=True)).seconds
    d2h = clock.time(lambda: host.copy_(gpu, non_blocking=True)).seconds
    return size * 4 / h2d, size * 4 / d2h


def _busy_warnings(torch: Any, device: str) -> list[str]:
    """What says the device is shared or slowed before the run starts."""
    if device == "cpu":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        return [Text("note.bench.load", load=load, cores=cores)] if load > cores else []
    return _nvml_warnings(torch.cuda.current_device())


def _nvml_warnings(index: int) -> list[str]:
    try:
        import pynvml as nv
    except ImportError:
        return []
    found: list[str] = []
    try:
        nv.nvmlInit()
        handle = nv.nvmlDeviceGetHandleByIndex(index)
        reasons = nv.nvmlDeviceGetCurrentClocksThrottleReasons(handle)
        harmful = reasons & ~(nv.nvmlClocksThrottleReasonGpuIdle | nv.nvmlClocksThrottleReasonApplicationsClockSetting)
        if harmful:
            found.append(Text("note.bench.throttled", mask=harmful))
        others = [p for p in nv.nvmlDeviceGetComputeRunningProcesses(handle) if p.pid != os.getpid()]
        if others:
            found.append(Text("note.bench.other_processes", count=len(others), index=index))
    except nv.NVMLError as exc:
        found.append(Text("note.bench.nvml_unreadable", err=str(exc)))
    finally:
        with contextlib.suppress(nv.NVMLError):
            nv.nvmlShutdown()
    return found


def _device_identity(torch: Any, device: str) -> tuple[str, str, int]:
    """Name, catalog key and count of the device benchmarked, from ``suanli probe``'s mapping; on CUDA without
    NVML (no nvidia-ml-py) from the name and memory torch reports, mapped the same way."""
    from suanli.errors import UnknownAccelerator
    from suanli.measure.probe import local_device, probe
    from suanli.spec.local_device import match_gpu

    local = local_device(probe(), cpu=device == "cpu")
    if device == "cpu":
        return local.accelerator.name, local.accelerator.key, 1
    if local.accelerator.kind != "cpu":
        return local.accelerator.name, local.accelerator.key, local.count
    props = torch.cuda.get_device_properties(0)
    match = match_gpu(props.name, int(props.total_memory))
    if match.catalog_key is None:
        nearest = Text("fix.measure.nearest", nearest=match.nearest) if match.nearest else ""
        raise UnknownAccelerator(f"the CUDA device {props.name!r} is not in the catalog ({match.reason}){nearest}; "
                                 "a profile needs a catalog entry to calibrate (add one to accelerators.toml)",
                                 key="error.measure.cuda_not_in_catalog",
                                 fields={"name": props.name, "reason": match.reason, "nearest": nearest})
    return props.name, match.catalog_key, int(torch.cuda.device_count())


def run_bench(device: str, *, quick: bool, log: Callable[[str], None] = lambda _: None) -> Calibration:
    """Run the microbenchmarks on ``device`` ("cpu" or "cuda") and return the profile (nothing written)."""
    torch = _import_torch()
    if device == "cuda" and not torch.cuda.is_available():
        raise SpecError("--device cuda: torch sees no CUDA GPU here (torch.cuda.is_available() is False); "
                        "use --device cpu, or install a CUDA build of torch", key="error.measure.bench_no_cuda")
    name, key, count = _device_identity(torch, device)
    warnings = _busy_warnings(torch, device)
    for line in warnings:
        log(Text("value.bench.warning", warning=line))
    plan = plan_for(device, quick=quick)
    clock = _Clock(torch, device, plan)
    with torch.inference_mode():
        gemm = _gemms(torch, clock, device, plan, log, warnings)
        copy = _copy_bandwidth(torch, clock, device, plan)
        log(Text("value.bench.copy", gbs=copy / 1e9))
        h2d = d2h = overhead = eager = None
        if device == "cpu":
            overhead = _dispatch_overhead_s(torch, clock, plan)
            log(Text("value.bench.dispatch", us=overhead * 1e6))
            eager = _eager_call_s(torch, log)
        if device == "cuda":
            h2d, d2h = _host_links(torch, clock, plan)
            log(Text("value.bench.host_link", h2d=h2d / 1e9, d2h=d2h / 1e9))
    allreduce: tuple[AllReducePoint, ...] = ()
    if device == "cuda" and torch.cuda.device_count() > 1:
        from suanli.measure.bench_allreduce import all_reduce_points

        allreduce = all_reduce_points(torch.cuda.device_count(), quick=quick)
    else:
        log(Text("value.bench.allreduce_one_gpu" if device == "cuda" else "value.bench.allreduce_cpu"))
    if not any(p.dtype in ("fp32", "bf16", "fp16") for p in gemm):
        raise SpecError("no GEMM could be timed on this device; check the torch installation",
                        key="error.measure.no_gemm")
    return Calibration(device_name=name, device_key=key, device_kind=device, device_count=count,  # type: ignore[arg-type]
                       torch_version=str(torch.__version__),
                       date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), quick=quick,
                       warnings=tuple(warnings), copy_bytes_per_s=copy, h2d_bytes_per_s=h2d, d2h_bytes_per_s=d2h,
                       gemm=tuple(gemm), allreduce=allreduce, kernel_overhead_s=overhead,
                       eager_call_s=eager)
