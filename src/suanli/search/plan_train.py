"""``plan train``: the best training layouts over the declared space (``search/space.py``), scored with the same
core model as ``suanli train`` (``core.memory.training_memory``, ``core.training_time.training_time``,
``core.cost.run_cost``), never a second copy of it.

Each candidate ends in exactly one place: rejected by a cheap rule of the space, out of memory, bounded out,
outside the deadline or budget, or feasible (``considered = feasible + Σ rejected``). The rules of thumb (one GPU
fits → data parallel; TP inside a node, PP across nodes; ZeRO when memory is short) are not coded: they are what
the scores choose. The scored layouts, their order and the time–cost front: ``search/train_ranking.py``.

Speed comes from exact bounds, not from a cheaper copy of the formulas:

- **Step-time floor.** ``training_time``'s step is m·W + bubble + pipeline sends + exposed data-parallel comm +
  optimizer, where W (one micro-batch's forward, backward, recompute, TP/EP/CP comm on the slowest stage) and the
  bubble ((pp − 1)/vp × the mean stage's micro-batch time) depend only on (tp, cp, pp, vp, ep, micro-batch, sp,
  recompute), not on dp, ZeRO or offload. One ``training_time`` call per such key gives m·W + bubble, a floor of
  every step sharing the key (the other terms are ≥ 0). Candidates get the floor of their key without recompute
  (recompute only adds), and the exact one once any call with their key has run. A candidate is skipped unseen
  when its floor of time, cost and energy is dominated by a layout already found (so the time–cost Pareto front
  stays exact) and its floor of the objective cannot enter the ranked list (so the ranking stays exact).
  Candidates are visited best floor first, which finds the dominating layouts early.
- **Memory floors.** Model states + CUDA context of a (tp, pp, vp, ep, dp, ZeRO, offload) is a floor of every
  cp, micro-batch and recompute choice on it (the states follow the stage's parameters and the ZeRO shards). And
  with the same number of micro-batches in flight on every stage (min(pp − s, m), equal for two micro-batch sizes
  when pp = 1 or both leave m ≥ pp) each stage's memory grows with the micro-batch, so there a micro-batch that
  did not fit rules out the larger ones and one that fit vouches for the smaller. (Across different in-flight
  counts it need not: each micro-batch in flight also holds a few batch-independent buffers, so 2 in flight of 4
  sequences can take a little less than 4 in flight of 2.)
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from math import inf
from typing import NamedTuple

from suanli.core.comms import DEFAULT_SCALE_OUT
from suanli.core.cost import run_cost
from suanli.core.memory import TrainingMemory, device_memory_assumptions, training_memory
from suanli.core.training_time import GPUS_PER_NODE, TrainingTime, training_time
from suanli.errors import SpecError
from suanli.i18n import Text
from suanli.search.fit import usable_memory_bytes
from suanli.search.space import Candidate, Context, Enumeration, TrainSpace, cluster_sizes
from suanli.search.train_ranking import Objective, Scored, TrainPlan, closest, pareto_time_cost, rank_order
from suanli.spec.assumptions import PerformanceAssumptions
from suanli.spec.hardware import Accelerator, PriceKind
from suanli.spec.layout import Recompute
from suanli.spec.limits import check_gpu_count
from suanli.spec.model import ModelSpec
from suanli.spec.training import TrainingJob
from suanli.train_report import CostRequest

__all__ = [  # the scored layouts, their ranking and the Pareto front live in search/train_ranking.py
    "BOUNDED", "DEFAULT_HOST_BYTES_PER_GPU", "DEFAULT_TOKENS_PER_STEP", "MISSES_DEADLINE", "OUT_OF_HOST_MEMORY",
    "OUT_OF_MEMORY", "OVER_BUDGET", "Objective", "PlanRequest", "Scored", "TrainPlan", "closest",
    "default_global_batch", "plan_train"]

# Default optimizer step when no --global-batch is given: about 4M tokens, Llama 2's batch (Touvron et al. 2023,
# arXiv:2307.09288 §2.2: "a global batch-size of 4M tokens"); 2^22 tokens, rounded to whole sequences.
DEFAULT_TOKENS_PER_STEP = 1 << 22
OUT_OF_MEMORY = "out of memory"
OUT_OF_HOST_MEMORY = "offloaded states exceed the host memory"
# Host memory per GPU that offloaded states may use: a DGX H100 holds 2 TB of system memory for 8 GPUs (NVIDIA DGX
# H100 datasheet), 256 GB each; override per request (``--host-memory-gb``).
DEFAULT_HOST_BYTES_PER_GPU = 256e9
BOUNDED = "cannot beat the layouts found (lower bound on its time, cost and energy)"
MISSES_DEADLINE = "misses the deadline"
OVER_BUDGET = "over the budget"


def default_global_batch(seq: int) -> int:
    """Sequences per step when none is given: ``DEFAULT_TOKENS_PER_STEP`` tokens, at least one sequence."""
    return max(1, DEFAULT_TOKENS_PER_STEP // seq)


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanRequest:
    """One planning question: a model and job, accelerators to choose from, and what to minimise."""

    spec: ModelSpec
    job: TrainingJob
    accelerators: tuple[Accelerator, ...]
    tokens: float
    global_batch: int
    max_gpus: int
    objective: Objective = Objective.TIME
    deadline_s: float | None = None
    budget_usd: float | None = None
    cost: CostRequest = field(default_factory=CostRequest)
    space: TrainSpace = field(default_factory=TrainSpace)
    top: int = 10
    host_bytes_per_gpu: float = DEFAULT_HOST_BYTES_PER_GPU
    scale_out: str = DEFAULT_SCALE_OUT  # the network between nodes, as ``training_time`` takes it
    assumptions: PerformanceAssumptions | None = None  # the time model's efficiencies (None: the defaults)

    def __post_init__(self) -> None:
        if not self.accelerators:
            raise SpecError("name at least one accelerator, e.g. --gpu h100 or --gpu h100,a100-80gb",
                            key="error.cli.no_accelerator")
        if self.top < 1:
            raise SpecError(f"the ranked list needs at least 1 entry, got {self.top}", key="error.plan.top",
                            fields={"top": self.top})
        check_gpu_count("--max-gpus", self.max_gpus)


@dataclass(slots=True)
class _Rates:
    """Per GPU-hour price and energy of one accelerator (``run_cost`` of one GPU for an hour): floors only."""

    usd: float
    kwh: float


class _Floor(NamedTuple):
    """A candidate with the floors of its run's time, price and energy (a tuple: built once per candidate)."""

    candidate: Candidate
    accelerator: int
    point: tuple[float, float, float]
    objective: float


class _Search:
    """The search's state: the rejected counts, the front, the ranked heap and the caches of core results."""

    def __init__(self, request: PlanRequest) -> None:
        self.r = request
        self.rejected: Counter[str] = Counter()
        self.front: list[Scored] = []  # no found layout is at least as good on time, cost and energy
        self.front_points: list[tuple[float, float, float]] = []
        self.heap: list[tuple[float, int, Scored]] = []  # max-heap of the ranked list by negated objective
        self.feasible = self.evaluations = 0
        self.times: dict[tuple[int, Candidate], TrainingTime] = {}
        self.work: dict[tuple[object, ...], tuple[float, float]] = {}
        self.states: dict[tuple[object, ...], float] = {}
        self.mb_oom: dict[tuple[object, ...], int] = {}
        self.mb_fit: dict[tuple[object, ...], int] = {}
        self.host_full: set[tuple[object, ...]] = set()
        self.objective_index = (Objective.TIME, Objective.COST, Objective.ENERGY).index(request.objective)
        self.screened = 0  # candidates past the cheap rules, each given floors
        self.rates = [_rates(a, request.cost) for a in request.accelerators]

    # ---- core calls ------------------------------------------------------------------------------------------

    def time(self, a: int, c: Candidate) -> TrainingTime:
        key = (a, c)
        if key not in self.times:
            self.evaluations += 1
            t = training_time(self.r.spec, self.r.job, c.layout(self.r.global_batch), self.r.accelerators[a],
                              scale_out=self.r.scale_out, assumptions=self.r.assumptions)
            self.times[key] = t
            b = t.breakdown
            stage = b.compute_s + b.recompute_s + b.tp_comm_s + b.cp_comm_exposed_s + b.ep_comm_s
            self.work[self._work_key(a, c)] = (stage / t.micro_batches, b.bubble_s)
        return self.times[key]

    def memory(self, a: int, c: Candidate) -> TrainingMemory:
        self.evaluations += 1
        capacity = usable_memory_bytes(self.r.accelerators[a])
        return training_memory(self.r.spec, self.r.job, c.layout(self.r.global_batch), capacity_bytes=capacity,
                               assumptions=device_memory_assumptions(self.r.accelerators[a]))

    # ---- floors ----------------------------------------------------------------------------------------------

    @staticmethod
    def _work_key(a: int, c: Candidate) -> tuple[object, ...]:
        s = c.structure
        return (a, s.tp, s.cp, s.pp, s.vp, s.ep, c.micro_batch, c.sp, c.recompute.value)

    def step_floor_s(self, a: int, c: Candidate, *, exact: bool) -> float | None:
        """m·W + bubble (module docstring). Exact: from this candidate's work key, None until a ``training_time``
        of that key has run. Not exact: from the key without recompute (one call per key), a floor for every
        recompute choice, since recompute only adds (its forward again, and with full recompute the TP/EP
        all-reduces and CP hops of that forward) to every stage."""
        if not exact and c.recompute is not Recompute.NONE:
            c = c._replace(recompute=Recompute.NONE)
        key = self._work_key(a, c)
        if key not in self.work:
            if exact and c.recompute is not Recompute.NONE:
                return None
            self.time(a, c)
        per_micro_batch, bubble = self.work[key]
        return self.r.global_batch // (c.micro_batch * c.structure.dp) * per_micro_batch + bubble

    def floor(self, a: int, c: Candidate, *, exact: bool = False) -> _Floor | None:
        step = self.step_floor_s(a, c, exact=exact)
        if step is None:
            return None
        total = self.r.tokens / (self.r.global_batch * self.r.job.seq) * step
        hours = c.structure.gpus * total / 3600
        rates = self.rates[a]
        point = (total, hours * rates.usd, hours * rates.kwh)
        return _Floor(c, a, point, point[self.objective_index])

    # ---- the walk --------------------------------------------------------------------------------------------

    def visit(self, f: _Floor) -> None:
        """Bounded out by the floor without recompute, then by the exact floor when a ``training_time`` of its work
        key has run (any candidate's with that key), then out of memory; else scored (which runs that call)."""
        if self._reject_bounded(f):
            return
        if f.candidate.recompute is not Recompute.NONE:
            exact = self.floor(f.accelerator, f.candidate, exact=True)
            if exact is not None and self._reject_bounded(exact):
                return
        reason = self._memory_reason(f.accelerator, f.candidate)
        if reason is not None:
            self.rejected[reason] += 1
            return
        scored = self._score(f.accelerator, f.candidate)
        self._add_to_front(scored)
        if self.r.deadline_s is not None and scored.total_s > self.r.deadline_s:
            self.rejected[MISSES_DEADLINE] += 1
        elif self.r.budget_usd is not None and (scored.usd is None or scored.usd > self.r.budget_usd):
            self.rejected[OVER_BUDGET] += 1
        else:
            self.feasible += 1
            self._rank(scored)

    def _reject_bounded(self, f: _Floor) -> bool:
        if not self._bounded(f):
            return False
        self.rejected[MISSES_DEADLINE if self._misses(f.point) else BOUNDED] += 1
        return True

    def _misses(self, point: tuple[float, float, float]) -> bool:
        return ((self.r.deadline_s is not None and point[0] > self.r.deadline_s)
                or (self.r.budget_usd is not None and point[1] > self.r.budget_usd))

    def _bounded(self, f: _Floor) -> bool:
        """Skip when the floor can enter neither the ranked list (it misses a constraint, or cannot beat the
        ranked list's last) nor the front (a found layout dominates it)."""
        ranked_out = (len(self.heap) >= self.r.top and f.objective >= -self.heap[0][0]) or self._misses(f.point)
        if not ranked_out:
            return False
        t, c, e = f.point
        return any(p[0] <= t and p[1] <= c and p[2] <= e for p in self.front_points)

    def _memory_reason(self, a: int, c: Candidate) -> str | None:
        """Why the candidate does not fit (None when it does): from the floors when they decide it, else from
        ``training_memory``. Offloaded states must also fit the host's share of memory per GPU."""
        s = c.structure
        # states do not depend on the gpus beyond these; cp joins dp in the sharded optimizer (Layout.zero_shards)
        states_key = (a, s.tp, s.pp, s.vp, s.ep, s.dp, s.cp, c.zero, c.offload)
        if states_key in self.host_full:
            return OUT_OF_HOST_MEMORY
        capacity = usable_memory_bytes(self.r.accelerators[a])
        if self.states.get(states_key, 0.0) > capacity:
            return OUT_OF_MEMORY
        in_flight = min(s.pp, self.r.global_batch // (c.micro_batch * s.dp))
        mb_key = (a, s, c.zero, c.offload, c.sp, c.recompute, in_flight)
        if c.micro_batch >= self.mb_oom.get(mb_key, 1 << 62):
            return OUT_OF_MEMORY
        if c.micro_batch <= self.mb_fit.get(mb_key, 0):
            return None
        memory = self.memory(a, c)
        if memory.host_bytes > self.r.host_bytes_per_gpu:  # offloaded states only: the same for every mb
            self.host_full.add(states_key)
            return OUT_OF_HOST_MEMORY
        floor = memory.model_states_bytes + memory.cuda_context_bytes
        self.states[states_key] = max(self.states.get(states_key, 0.0), floor)
        if not memory.fits:
            self.mb_oom[mb_key] = min(c.micro_batch, self.mb_oom.get(mb_key, 1 << 62))
            return OUT_OF_MEMORY
        self.mb_fit[mb_key] = max(c.micro_batch, self.mb_fit.get(mb_key, 0))
        return None

    def _score(self, a: int, c: Candidate) -> Scored:
        t = self.time(a, c)
        total_s = self.r.tokens / t.tokens_per_s
        acc, req = self.r.accelerators[a], self.r.cost
        run = run_cost(acc, c.structure.gpus, total_s, price_kind=_price_kind(acc, req),
                       usd_per_gpu_hour=req.usd_per_gpu_hour, power_per_gpu_w=req.power_per_gpu_w,
                       assumptions=req.assumptions)
        return Scored(accelerator=acc, layout=c.layout(self.r.global_batch), total_s=total_s, usd=run.usd,
                      energy_kwh=run.energy_kwh)

    def _add_to_front(self, s: Scored) -> None:
        t, c, e = s.point
        if any(p[0] <= t and p[1] <= c and p[2] <= e for p in self.front_points):
            return
        self.front = [p for p in self.front if not (t <= p.point[0] and c <= p.point[1] and e <= p.point[2])]
        self.front.append(s)
        self.front_points = [p.point for p in self.front]

    def _rank(self, s: Scored) -> None:
        entry = (-s.value(self.r.objective), -len(self.heap) - self.feasible, s)
        if len(self.heap) < self.r.top:
            heapq.heappush(self.heap, entry)
        elif entry[0] > self.heap[0][0]:
            heapq.heapreplace(self.heap, entry)


def _price_kind(accelerator: Accelerator, request: CostRequest) -> PriceKind | None:
    """The asked price kind when the catalog lists it (or a --price is given), else None (left unpriced)."""
    if request.usd_per_gpu_hour is not None or any(p.kind == request.price_kind for p in accelerator.prices):
        return request.price_kind
    return None


def _rates(accelerator: Accelerator, request: CostRequest) -> _Rates:
    unit = run_cost(accelerator, 1, 3600.0, price_kind=_price_kind(accelerator, request),
                    usd_per_gpu_hour=request.usd_per_gpu_hour, power_per_gpu_w=request.power_per_gpu_w,
                    assumptions=request.assumptions)
    return _Rates(usd=inf if unit.usd is None else unit.usd, kwh=inf if unit.energy_kwh is None else unit.energy_kwh)


def plan_train(request: PlanRequest) -> TrainPlan:
    """Search the space for ``request``; see the module docstring for what is exact and why."""
    search = _Search(request)
    space = request.space.for_model(request.spec)
    floors: list[_Floor] = []
    for a, accelerator in enumerate(request.accelerators):
        rates = search.rates[a]
        context = Context(gpus_per_node=GPUS_PER_NODE, seq=request.job.seq, global_batch=request.global_batch)
        walk = Enumeration(request.spec, space, context)
        found = list(walk.candidates(cluster_sizes(request.max_gpus, GPUS_PER_NODE)))
        search.rejected.update(walk.rejected)
        if request.objective is not Objective.TIME and inf in (rates.usd if request.objective is Objective.COST
                                                               else rates.kwh,):
            key = "reason.no_price_for" if request.objective is Objective.COST else "reason.no_power_for"
            search.rejected[Text(key, gpu=accelerator.key)] += len(found)
            continue
        floors.extend(_floors(search, a, found))
    search.screened = len(floors)
    floors.sort(key=lambda f: (f.objective, f.point))
    for f in floors:
        search.visit(f)
    return _result(search)


def _floors(search: _Search, a: int, found: list[Candidate]) -> Iterator[_Floor]:
    """Each candidate with its floors; neighbours that differ only in ZeRO or offload share them (the enumeration
    puts them together), so the floor is worked out once per run of them."""
    key: tuple[object, ...] = ()
    floor: _Floor | None = None
    for c in found:
        here = (c.structure, c.micro_batch, c.sp, c.recompute)
        if here != key:
            key, floor = here, search.floor(a, c)
        if floor is not None:
            yield _Floor(c, a, floor.point, floor.objective)


def _result(search: _Search) -> TrainPlan:
    objective = search.r.objective
    ranked = sorted((entry[2] for entry in search.heap), key=lambda s: rank_order(s, objective))
    pareto = pareto_time_cost(search.front)
    rejected = dict(sorted(search.rejected.items(), key=lambda kv: -kv[1]))
    return TrainPlan(ranked=tuple(ranked), pareto=pareto, rejected=rejected, feasible=search.feasible,
                     considered=search.feasible + sum(rejected.values()), screened=search.screened,
                     model_evaluations=search.evaluations)
