"""When a training job does not fit: the cheapest changes that make it fit, each evaluated, not guessed.

Each change has a price in throughput or complexity, and the candidates are tried cheapest first, single
changes before combinations (a combination is only proposed when no single change fits):

======================================  =====================================================================
change (same GPUs)                      what it costs
======================================  =====================================================================
ZeRO-1, ZeRO-2                          nothing in traffic: reduce-scatter + all-gather move the same 2Ψ as
                                        DDP's all-reduce (Rajbhandari et al. 2020, ZeRO, §7.2.1)
micro-batch 1 (same global batch)       smaller GEMMs, more accumulation steps; same arithmetic
selective recomputation                 the attention core again: +2.7% FLOPs on GPT-3 175B (Korthikanti
                                        et al. 2022, Table 4)
ZeRO-3                                  1.5× DDP's traffic, 3Ψ (ZeRO §7.2.2)
full recomputation                      one more forward per step, ≈ +33% compute (Chen et al. 2016;
                                        Korthikanti et al. 2022: 36% on GPT-3)
optimizer offload to CPU                the optimizer step on the host and gradients/weights over PCIe
                                        (Ren et al. 2021, ZeRO-Offload)
======================================  =====================================================================

Then more GPUs (ZeRO-3 over a larger data-parallel group, with the cheapest recomputation that fits), then a
cheaper method (LoRA, QLoRA), which changes what is trained and so comes last. Each candidate is a real
evaluation of ``training_memory``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import combinations

from suanli.core.memory import training_memory
from suanli.errors import SuanliError
from suanli.i18n import Joined, Text
from suanli.spec.assumptions import MemoryAssumptions
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
    layout: Layout | None = None  # the layout and method after the change (the web page applies them on a click)
    method: Method | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Change:
    """One layout change, as a label and how it rewrites the layout."""

    label: str
    zero: int | None = None
    micro_batch_one: bool = False
    recompute: Recompute | None = None
    offload: bool = False

    def apply(self, layout: Layout) -> Layout:
        out = layout
        if self.micro_batch_one:
            out = replace(out, micro_batch=1, global_batch=layout.effective_global_batch)
        if self.zero is not None:
            out = replace(out, zero=max(out.zero, self.zero))
        if self.recompute is not None:
            out = replace(out, recompute=self.recompute)
        if self.offload:
            out = replace(out, zero=max(out.zero, 2), offload_optimizer=Offload.CPU)
        return out


def fit_suggestions(spec: ModelSpec, job: TrainingJob, layout: Layout, *, capacity_bytes: float,
                    limit: int = 3, assumptions: MemoryAssumptions | None = None,
                    host_offload: bool = True) -> list[Suggestion]:
    """Up to ``limit`` of the cheapest changes that make the job fit (module docstring for the order); a
    combination holding a change that fits alone is skipped, and so are larger GPU counts once one fits.
    ``host_offload=False`` (a CPU accelerator) leaves out offloading to host memory."""
    found: list[Suggestion] = []
    fitting: set[str] = set()
    for parts, new_job, new_layout in _candidates(job, layout, host_offload=host_offload):
        if fitting & set(parts) or (parts[0].startswith("ZeRO-3 across ") and "more GPUs" in fitting):
            continue
        try:
            memory = training_memory(spec, new_job, new_layout, capacity_bytes=capacity_bytes,
                                     assumptions=assumptions)
        except SuanliError:
            continue  # the change is impossible for this model (e.g. tp does not divide heads)
        if memory.fits:
            found.append(Suggestion(change=Joined("join.plus", parts), total_bytes=memory.total_bytes,
                                    headroom_bytes=memory.headroom_bytes, gpus=new_layout.gpus, layout=new_layout,
                                    method=new_job.method))
            fitting.update(parts if len(parts) == 1 else ())
            if new_layout.gpus > layout.gpus:
                fitting.add("more GPUs")
            if len(found) == limit:
                break
    return found


def single_changes(layout: Layout, *, host_offload: bool = True) -> list[_Change]:
    """The layout changes open to this layout, cheapest first (module docstring). ``host_offload`` is False when
    the accelerator is itself a CPU: its memory is the host's, so moving the optimizer states there frees nothing."""
    changes: list[_Change] = []
    if layout.dp > 1:
        changes += [_Change(label=Text("advice.zero_over_dp", stage=stage, dp=layout.dp), zero=stage)
                    for stage in (1, 2) if stage > layout.zero]
    if layout.micro_batch > 1:
        steps = layout.effective_global_batch // layout.dp
        changes.append(_Change(label=Text("advice.micro_batch_one", steps=steps),
                               micro_batch_one=True))
    if _rank(layout.recompute) < _rank(Recompute.SELECTIVE):
        changes.append(_Change(label=Text("advice.selective_recompute"), recompute=Recompute.SELECTIVE))
    if layout.dp > 1 and layout.zero < 3:
        changes.append(_Change(label=Text("advice.zero_over_dp", stage=3, dp=layout.dp), zero=3))
    if _rank(layout.recompute) < _rank(Recompute.FULL):
        changes.append(_Change(label=Text("advice.full_recompute"), recompute=Recompute.FULL))
    if host_offload and layout.offload_optimizer is Offload.NONE:
        changes.append(_Change(label=Text("advice.offload_optimizer"), offload=True))
    return changes


def _candidates(job: TrainingJob, layout: Layout, *,
                host_offload: bool) -> Iterator[tuple[tuple[str, ...], TrainingJob, Layout]]:
    singles = single_changes(layout, host_offload=host_offload)
    for change in singles:
        yield (change.label,), job, change.apply(layout)
    rank = {change.label: index for index, change in enumerate(singles)}
    combos = [combo for size in (2, 3) for combo in combinations(singles, size) if _compatible(combo)]
    combos.sort(key=lambda combo: (len(combo), sum(rank[c.label] for c in combo), max(rank[c.label] for c in combo)))
    for combo in combos:  # the cheapest pairs first (by their parts' ranks), then triples
        applied = layout
        for change in combo:
            applied = change.apply(applied)
        yield tuple(c.label for c in combo), job, applied
    yield from _more_gpus(job, layout)
    cheapest = replace(layout, micro_batch=1, global_batch=layout.effective_global_batch, recompute=Recompute.FULL)
    if job.method is Method.FULL:
        yield (Text("advice.lora"),), replace(job, method=Method.LORA), cheapest
        yield (Text("advice.qlora"),), \
            replace(job, method=Method.QLORA), cheapest


def _more_gpus(job: TrainingJob, layout: Layout) -> Iterator[tuple[tuple[str, ...], TrainingJob, Layout]]:
    for factor in (2, 4, 8, 16, 32, 64):
        dp = layout.dp * factor
        for recompute in (Recompute.NONE, Recompute.SELECTIVE, Recompute.FULL):
            if _rank(recompute) < _rank(layout.recompute):
                continue
            grown = replace(layout, dp=dp, zero=3, global_batch=None, recompute=recompute)
            label = (Text("advice.more_gpus", gpus=grown.gpus, dp=dp) if recompute is layout.recompute else
                     Text("advice.more_gpus_recompute", gpus=grown.gpus, dp=dp,
                          recompute=Text(f"term.recompute.{recompute.value}")))
            yield (label,), job, grown


def _compatible(combo: tuple[_Change, ...]) -> bool:
    """At most one ZeRO stage and one recomputation mode in a combination (the larger includes the smaller)."""
    zeros = sum(c.zero is not None for c in combo)
    recomputes = sum(c.recompute is not None for c in combo)
    return zeros <= 1 and recomputes <= 1


def _rank(recompute: Recompute) -> int:
    return {Recompute.NONE: 0, Recompute.SELECTIVE: 1, Recompute.FULL: 2}[recompute]
