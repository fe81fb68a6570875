"""All-reduce bus bandwidth across the local GPUs: one process per GPU, torch.distributed with NCCL.

busbw = size / time · 2(n − 1)/n, the ring all-reduce's per-GPU traffic, which nccl-tests defines so that it is
comparable to the hardware's link bandwidth whatever n is (NVIDIA nccl-tests doc/PERFORMANCE.md). Time is the
median over repeats of the slowest rank, measured with CUDA events after a barrier.
"""

from __future__ import annotations

import importlib
import os
import statistics
import tempfile
from typing import Any

from suanli.spec.calibration import AllReducePoint


def _sizes(quick: bool) -> tuple[int, ...]:
    return (2**20, 2**26) if quick else (2**20, 2**24, 2**26, 2**28, 2**30)


def _worker(rank: int, world: int, init_file: str, quick: bool, results: Any) -> None:  # pragma: no cover - GPUs
    torch: Any = importlib.import_module("torch")
    dist: Any = importlib.import_module("torch.distributed")

    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"file://{init_file}", rank=rank, world_size=world)
    for size in _sizes(quick):
        buffer = torch.ones(size // 2, dtype=torch.bfloat16, device="cuda")
        for _ in range(3):
            dist.all_reduce(buffer)
        samples = []
        for _ in range(5 if quick else 20):
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            dist.barrier()
            begin.record()
            dist.all_reduce(buffer)
            end.record()
            torch.cuda.synchronize()
            seconds = torch.tensor(begin.elapsed_time(end) / 1e3, device="cuda")
            dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
            samples.append(float(seconds))
        if rank == 0:
            results.put((size, statistics.median(samples)))
    dist.destroy_process_group()


def all_reduce_points(world: int, *, quick: bool) -> tuple[AllReducePoint, ...]:  # pragma: no cover - GPUs
    """Bus bandwidth of bf16 all-reduces of each size across ``world`` local GPUs."""
    mp: Any = importlib.import_module("torch.multiprocessing")

    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    with tempfile.TemporaryDirectory() as folder:
        init_file = os.path.join(folder, "init")
        mp.start_processes(_worker, args=(world, init_file, quick, results), nprocs=world, start_method="spawn")
    points = []
    while not results.empty():
        size, seconds = results.get()
        points.append(AllReducePoint(bytes=size, world_size=world,
                                     busbw_bytes_per_s=size / seconds * 2 * (world - 1) / world))
    return tuple(sorted(points, key=lambda p: p.bytes))
