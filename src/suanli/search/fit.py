"""``suanli fit``: for every catalog accelerator, the fewest GPUs that hold a job, with the headroom.

GPU counts tried: 1, 2, 4, 8, then whole 8-GPU nodes up to ``MAX_GPUS``. For each count the cheapest
layout that the frameworks users reach for first would run is evaluated:

- training modes (full, LoRA, QLoRA): one GPU without sharding, else ZeRO-3 / FSDP full-shard over all
  GPUs; activation recomputation off, then full (memory first, as a person short of memory would);
- inference: tensor parallelism over the GPUs (vLLM's default way to spread a model), else the layout
  is impossible for that count (tp must divide the attention heads).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from suanli.core.memory import training_memory
from suanli.errors import SuanliError
from suanli.spec.hardware import Accelerator, load_accelerators
from suanli.spec.layout import Layout, Recompute
from suanli.spec.model import ModelSpec
from suanli.spec.training import Method, Optimizer, PeftConfig, TrainingJob

MAX_GPUS = 1024
GPUS_PER_NODE = 8

Evaluate = Callable[[int, float], "FitTry | None"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FitTry:
    """One evaluated GPU count: per-GPU total and a short description of the layout used."""

    per_gpu_total_bytes: float
    capacity_bytes: float
    layout: str

    @property
    def headroom_bytes(self) -> float:
        return self.capacity_bytes - self.per_gpu_total_bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class FitRow:
    """The answer for one accelerator: ``min_gpus`` is None when nothing up to MAX_GPUS holds the job."""

    gpu: str
    name: str
    min_gpus: int | None
    per_gpu_total_bytes: float | None
    headroom_bytes: float | None
    layout: str | None
    capacity_bytes: float


def gpu_counts() -> Iterator[int]:
    yield from (1, 2, 4)
    n = GPUS_PER_NODE
    while n <= MAX_GPUS:
        yield n
        n *= 2


def fit_table(evaluate: Evaluate, accelerators: tuple[Accelerator, ...] | None = None) -> list[FitRow]:
    """One row per accelerator, using ``evaluate(gpus, capacity_bytes)`` (None when the count is impossible)."""
    from suanli.train_report import usable_memory_bytes

    rows = []
    for accelerator in accelerators or load_accelerators():
        capacity = usable_memory_bytes(accelerator)
        found = _first_fit(evaluate, capacity)
        rows.append(FitRow(gpu=accelerator.key, name=accelerator.name, capacity_bytes=capacity,
                           min_gpus=found[0] if found else None,
                           per_gpu_total_bytes=found[1].per_gpu_total_bytes if found else None,
                           headroom_bytes=found[1].headroom_bytes if found else None,
                           layout=found[1].layout if found else None))
    return rows


def _first_fit(evaluate: Evaluate, capacity: float) -> tuple[int, FitTry] | None:
    for gpus in gpu_counts():
        result = evaluate(gpus, capacity)
        if result is not None and result.headroom_bytes >= 0:
            return gpus, result
    return None


def training_evaluator(spec: ModelSpec, method: Method, *, seq: int, micro_batch: int) -> Evaluate:
    """Evaluate a training job on ``gpus`` GPUs: no sharding on one GPU, else ZeRO-3 over all of them."""
    optimizer = Optimizer.PAGED_ADAMW_8BIT if method is Method.QLORA else Optimizer.ADAMW
    job = TrainingJob(seq=seq, method=method, optimizer=optimizer, peft=PeftConfig())

    def evaluate(gpus: int, capacity: float) -> FitTry | None:
        best: FitTry | None = None
        for recompute in (Recompute.NONE, Recompute.FULL):
            layout = Layout(dp=gpus, zero=3 if gpus > 1 else 0, micro_batch=micro_batch, recompute=recompute)
            try:
                memory = training_memory(spec, job, layout, capacity_bytes=capacity)
            except SuanliError:
                return None
            attempt = FitTry(per_gpu_total_bytes=memory.total_bytes, capacity_bytes=capacity,
                             layout=f"{'ZeRO-3, ' if gpus > 1 else ''}recompute {recompute.value}")
            if memory.fits:
                return attempt
            best = best or attempt
        return best

    return evaluate
