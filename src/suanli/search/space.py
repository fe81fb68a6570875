"""The training-layout search space of ``suanli plan train``, declared as data, and its cheap pruning.

A candidate is one cluster size and one value of every dimension below (Megatron-LM / DeepSpeed vocabulary, as in
``spec/layout.py``); ``dp`` is not a dimension but what is left: dp = gpus / (tp · pp · cp).

=============  ===========================================  ==================================================
dimension      default values                               note
=============  ===========================================  ==================================================
gpus           powers of two up to ``--max-gpus``, and       whole nodes from one node up
               ``--max-gpus`` itself when whole nodes
tp             1, 2, 4, 8, 16                               kept inside one scale-up domain (NVLink node)
pp             1, 2, 4, …, 128                              uneven stages allowed (Llama 3: 126 layers, pp 16)
cp             1, 2, 4, 8                                   ring attention over the sequence
ep             1, 2, 4, …, 64 (1 for dense models)          inside the dp · cp group
vp             1, 2, 4                                      interleaved 1F1B stages per rank
zero           0, 1, 2, 3                                   ZeRO stage (FSDP full-shard = 3)
micro_batch    1, 2, 4, 8                                   sequences per GPU per micro-step
recompute      none, selective, full
sp             off, on                                      sequence parallelism in the TP region
offload        none (+ optimizer, optimizer+params when      to host memory (ZeRO-Offload / ZeRO-Infinity)
               asked: ``WITH_OFFLOAD``)
=============  ===========================================  ==================================================

Pruning runs cheapest first and counts every rejected candidate under its reason. The rules this module states
(``STRUCTURE_RULES``, ``BATCH_RULE``, ``KNOB_RULES``) are the ones ``spec/layout.py`` does not: the layout's own
validation (``Layout.check``: heads, KV heads and Mamba heads divisible by tp, pp · vp within the layers, the
interleaved schedule's divisibility, ep dividing the experts and dp · cp) runs on every surviving structure and
its message, numbers stripped, is the reason. Rejections by whole blocks are counted by multiplication, so no
candidate is enumerated only to be dropped.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from math import prod
from typing import NamedTuple

from suanli.errors import LayoutError, SpecError
from suanli.spec.layout import Layout, Offload, PipelineSchedule, Recompute
from suanli.spec.model import ModelSpec, Moe


class OffloadChoice(Enum):
    """What moves to host memory: nothing, the optimizer states (ZeRO-Offload, Ren et al. 2021), or the
    optimizer states and the parameters (ZeRO-Infinity's CPU mode, which needs ZeRO-3)."""

    NONE = "none"
    OPTIMIZER = "optimizer"
    OPTIMIZER_AND_PARAMS = "optimizer+params"

    @property
    def optimizer(self) -> Offload:
        return Offload.NONE if self is OffloadChoice.NONE else Offload.CPU

    @property
    def params(self) -> Offload:
        return Offload.CPU if self is OffloadChoice.OPTIMIZER_AND_PARAMS else Offload.NONE


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainSpace:
    """The values each dimension takes (the table in the module docstring)."""

    tp: tuple[int, ...] = (1, 2, 4, 8, 16)
    pp: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128)
    cp: tuple[int, ...] = (1, 2, 4, 8)
    ep: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
    vp: tuple[int, ...] = (1, 2, 4)
    zero: tuple[int, ...] = (0, 1, 2, 3)
    micro_batch: tuple[int, ...] = (1, 2, 4, 8)
    recompute: tuple[Recompute, ...] = (Recompute.NONE, Recompute.SELECTIVE, Recompute.FULL)
    sp: tuple[bool, ...] = (False, True)
    # Offload is searched only when asked (``WITH_OFFLOAD``): the core does not yet charge the host's optimizer step
    # or the parameter fetches of ZeRO-Infinity (core/training_sync.py), so offloading would look almost free and
    # win wherever memory is short.
    offload: tuple[OffloadChoice, ...] = (OffloadChoice.NONE,)

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "cp", "ep", "vp", "zero", "micro_batch", "recompute", "sp", "offload"):
            if not getattr(self, name):
                raise SpecError(f"the search space needs at least one value of {name}", key="error.plan.space_empty",
                                fields={"name": name})

    def for_model(self, spec: ModelSpec) -> TrainSpace:
        """The space for one model: a dense model has no experts to split, so ep is 1 only."""
        from dataclasses import replace

        if any(isinstance(layer.ffn, Moe) for layer in spec.layers):
            return self
        return replace(self, ep=(1,))

    @property
    def knobs_per_structure(self) -> int:
        """Candidates one structure (gpus, tp, pp, cp, ep, vp) spans."""
        return prod(len(v) for v in (self.zero, self.micro_batch, self.recompute, self.sp, self.offload))


WITH_OFFLOAD = (OffloadChoice.NONE, OffloadChoice.OPTIMIZER, OffloadChoice.OPTIMIZER_AND_PARAMS)


def cluster_sizes(max_gpus: int, gpus_per_node: int) -> tuple[int, ...]:
    """Powers of two up to ``max_gpus``, plus ``max_gpus`` itself when it is a whole number of nodes."""
    if max_gpus < 1:
        raise SpecError(f"--max-gpus must be at least 1, got {max_gpus}", key="error.plan.max_gpus",
                        fields={"max_gpus": max_gpus})
    sizes = [1 << k for k in range(max_gpus.bit_length()) if 1 << k <= max_gpus]
    if max_gpus not in sizes and max_gpus % gpus_per_node == 0:
        sizes.append(max_gpus)
    return tuple(sizes)


class Structure(NamedTuple):
    """How the GPUs are split: the degrees, and dp = gpus / (tp · pp · cp) when that divides (a tuple: the search
    builds and hashes many)."""

    gpus: int
    tp: int
    pp: int
    cp: int
    ep: int
    vp: int

    @property
    def dp(self) -> int:
        return self.gpus // (self.tp * self.pp * self.cp)


class Candidate(NamedTuple):
    """One point of the space that passed every cheap rule."""

    structure: Structure
    zero: int
    micro_batch: int
    recompute: Recompute
    sp: bool
    offload: OffloadChoice

    def layout(self, global_batch: int) -> Layout:
        s = self.structure
        return Layout(tp=s.tp, pp=s.pp, dp=s.dp, cp=s.cp, ep=s.ep, vp=s.vp, sp=self.sp, zero=self.zero,
                      offload_optimizer=self.offload.optimizer, offload_params=self.offload.params,
                      micro_batch=self.micro_batch, global_batch=global_batch,
                      schedule=PipelineSchedule.INTERLEAVED if s.vp > 1 else PipelineSchedule.ONE_F_ONE_B,
                      recompute=self.recompute)


@dataclass(frozen=True, slots=True)
class Rule:
    """A cheap rule: the reason a candidate is rejected, and the test that says it is."""

    reason: str
    rejects: Callable[..., bool]


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What the rules read besides the candidate: the node's scale-up domain, the sequence, the global batch."""

    gpus_per_node: int
    seq: int
    global_batch: int


STRUCTURE_RULES = (
    Rule("tp · pp · cp does not divide the GPU count", lambda s, c: s.gpus % (s.tp * s.pp * s.cp) != 0),
    Rule("tp spans more than one node's scale-up domain", lambda s, c: s.tp > c.gpus_per_node),
    Rule("vp > 1 needs pp > 1", lambda s, c: s.vp > 1 and s.pp == 1),
    # Megatron-Core's load-balanced ring attention gives each rank two chunks of seq / (2·cp)
    Rule("seq is not divisible by 2 · cp", lambda s, c: s.cp > 1 and c.seq % (2 * s.cp) != 0),
)
BATCH_RULE = Rule("global batch is not a multiple of dp × micro-batch",
                  lambda s, c, mb: c.global_batch % (s.dp * mb) != 0)
KNOB_RULES = (
    Rule("ZeRO with dp = 1 shards nothing (same as ZeRO-0)", lambda s, zero, sp, off: zero > 0 and s.dp == 1),
    Rule("sequence parallelism needs tp > 1", lambda s, zero, sp, off: sp and s.tp == 1),
    Rule("optimizer offload needs ZeRO ≥ 1 (ZeRO-Offload)",
         lambda s, zero, sp, off: off is not OffloadChoice.NONE and zero == 0),
    Rule("parameter offload needs ZeRO-3", lambda s, zero, sp, off: off.params is not Offload.NONE and zero != 3),
)


def layout_reason(message: str) -> str:
    """A LayoutError message as a reason shared by every candidate it rejects: the part before the fix, without
    the numbers in parentheses (``num_attention_heads is not divisible by tp``)."""
    head = message.split(";")[0]
    head = re.sub(r"\s*\([^)]*\)", "", head)
    return re.sub(r"\d+", "N", head).strip()


class Enumeration:
    """Walks the space for one model and accelerator, yielding the candidates that pass every cheap rule and
    counting the others in ``rejected`` by reason."""

    def __init__(self, spec: ModelSpec, space: TrainSpace, context: Context) -> None:
        self.spec, self.space, self.context = spec, space, context
        self.rejected: Counter[str] = Counter()
        self._checked: dict[tuple[int, int, int, int, int, int], str | None] = {}

    def candidates(self, sizes: tuple[int, ...]) -> Iterator[Candidate]:
        for structure in self._structures(sizes):
            yield from self._knobs(structure)

    def _structures(self, sizes: tuple[int, ...]) -> Iterator[Structure]:
        sp, per = self.space, self.space.knobs_per_structure
        for gpus in sizes:
            for tp in sp.tp:
                for pp in sp.pp:
                    for cp in sp.cp:
                        for ep in sp.ep:
                            for vp in sp.vp:
                                structure = Structure(gpus, tp, pp, cp, ep, vp)
                                reason = self._structure_reason(structure)
                                if reason is None:
                                    yield structure
                                else:
                                    self.rejected[reason] += per

    def _structure_reason(self, s: Structure) -> str | None:
        for rule in STRUCTURE_RULES:
            if rule.rejects(s, self.context):
                return rule.reason
        key = (s.tp, s.pp, s.vp, s.ep, s.dp, s.cp)
        if key not in self._checked:
            self._checked[key] = self._layout_check(s)
        return self._checked[key]

    def _layout_check(self, s: Structure) -> str | None:
        try:
            Candidate(s, 0, 1, Recompute.NONE, False, OffloadChoice.NONE).layout(s.dp).check(self.spec)
        except LayoutError as exc:
            return layout_reason(str(exc))
        return None

    def _knobs(self, s: Structure) -> Iterator[Candidate]:
        """The structure's candidates, those sharing a time floor (micro-batch, sp, recompute) next to each other."""
        sp = self.space
        per_mb = len(sp.zero) * len(sp.recompute) * len(sp.sp) * len(sp.offload)
        for mb in sp.micro_batch:
            if BATCH_RULE.rejects(s, self.context, mb):
                self.rejected[BATCH_RULE.reason] += per_mb
                continue
            for seq_parallel in sp.sp:
                for recompute in sp.recompute:
                    for zero in sp.zero:
                        for offload in sp.offload:
                            reason = next((r.reason for r in KNOB_RULES if r.rejects(s, zero, seq_parallel, offload)),
                                          None)
                            if reason is None:
                                yield Candidate(s, zero, mb, recompute, seq_parallel, offload)
                            else:
                                self.rejected[reason] += 1
