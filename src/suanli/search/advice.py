"""When a training job does not fit: the smallest changes that make it fit, each evaluated, not guessed.

Candidates are tried in order of how little they change the job (same GPUs first, then recompute, then
sharding and offload, then a cheaper method, then more GPUs). Each is a real evaluation of
``training_memory``; the first few that fit are returned with their totals.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

from suanli.core.memory import training_memory
from suanli.errors import SuanliError
from suanli.spec.layout import Layout, Offload, Recompute
from suanli.spec.model import ModelSpec
from suanli.spec.training import Method, TrainingJob


@dataclass(frozen=True, slots=True, kw_only=True)
class Suggestion:
    """One change that makes the job fit, with what it costs in memory afterwards."""

    change: str
    total_bytes: float
    headroom_bytes: float
    gpus: int


def fit_suggestions(spec: ModelSpec, job: TrainingJob, layout: Layout, *, capacity_bytes: float,
                    limit: int = 3) -> list[Suggestion]:
    """Up to ``limit`` changes (alone or combined with the ones before) that make the job fit."""
    found: list[Suggestion] = []
    for change, new_job, new_layout in _candidates(job, layout):
        try:
            memory = training_memory(spec, new_job, new_layout, capacity_bytes=capacity_bytes)
        except SuanliError:
            continue  # the change is impossible for this model (e.g. tp does not divide heads)
        if memory.fits:
            found.append(Suggestion(change=change, total_bytes=memory.total_bytes,
                                    headroom_bytes=memory.headroom_bytes, gpus=new_layout.gpus))
            if len(found) == limit:
                break
    return found


def _candidates(job: TrainingJob, layout: Layout) -> Iterator[tuple[str, TrainingJob, Layout]]:
    micro_one = replace(layout, micro_batch=1, global_batch=layout.effective_global_batch)
    if layout.micro_batch > 1:
        steps = layout.effective_global_batch // layout.dp
        yield f"micro-batch 1 with {steps} accumulation steps (same global batch)", job, micro_one
    for recompute in (Recompute.SELECTIVE, Recompute.FULL):
        if _rank(recompute) > _rank(layout.recompute):
            yield f"{recompute.value} activation recomputation", job, replace(layout, recompute=recompute)
    full = replace(micro_one, recompute=Recompute.FULL)
    if layout.dp > 1:
        for stage in range(layout.zero + 1, 4):
            yield f"ZeRO-{stage} across the {layout.dp} data-parallel GPUs (+ full recompute)", job, \
                replace(full, zero=stage)
    yield "ZeRO-Offload: optimizer states to CPU memory (+ full recompute)", job, \
        replace(full, zero=max(layout.zero, 2), offload_optimizer=Offload.CPU)
    if job.method is Method.FULL:
        yield "LoRA instead of full fine-tuning (+ full recompute)", replace(job, method=Method.LORA), full
        yield "QLoRA (NF4 base) instead of full fine-tuning (+ full recompute)", \
            replace(job, method=Method.QLORA), full
    for factor in (2, 4, 8, 16, 32, 64):
        dp = layout.dp * factor
        grown = replace(full, dp=dp, zero=3, global_batch=None)
        yield f"ZeRO-3 across {grown.gpus} GPUs (dp={dp}, + full recompute)", job, grown


def _rank(recompute: Recompute) -> int:
    return {Recompute.NONE: 0, Recompute.SELECTIVE: 1, Recompute.FULL: 2}[recompute]
