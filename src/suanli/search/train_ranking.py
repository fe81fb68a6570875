"""``plan train``'s answer: the scored layouts, the order of the ranked list and the time–cost Pareto front.

A layout that fits is ``Scored`` with its run's wall time, price and energy as ``core`` computes them. The ranked
list orders them by the objective (``Objective``: time, cost or energy), ties going to the simpler layout: fewer
model-parallel ranks ``tp·pp·cp·ep`` (``rank_order``). The time–cost front keeps every layout no other beats on both
wall time and price, fastest first (``pareto_time_cost``; the search keeps the 3-objective front with energy while
it walks, ``search/plan_train.py``). When nothing meets the deadline or budget, ``closest`` names the front's layout
that misses them by the smallest factor: ``max(1, time/deadline, price/budget)``. Split out of
``search/plan_train.py``, which re-exports these names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from math import inf
from typing import TYPE_CHECKING

from suanli.spec.hardware import Accelerator
from suanli.spec.layout import Layout

if TYPE_CHECKING:  # annotations only: search/plan_train.py builds on this module
    from suanli.search.plan_train import PlanRequest


class Objective(Enum):
    """What the plan minimises: the run's wall time, its price, or its energy."""

    TIME = "time"
    COST = "cost"
    ENERGY = "energy"


@dataclass(frozen=True, slots=True, kw_only=True)
class Scored:
    """A layout that fits, with the run's time, price and energy as ``core`` computes them."""

    accelerator: Accelerator
    layout: Layout
    total_s: float
    usd: float | None
    energy_kwh: float | None

    def value(self, objective: Objective) -> float:
        if objective is Objective.TIME:
            return self.total_s
        found = self.usd if objective is Objective.COST else self.energy_kwh
        return inf if found is None else found

    @property
    def point(self) -> tuple[float, float, float]:
        return (self.total_s, inf if self.usd is None else self.usd,
                inf if self.energy_kwh is None else self.energy_kwh)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainPlan:
    """The search's answer: the best layouts meeting the constraints, the time–cost front, and the count of
    every candidate by what became of it."""

    ranked: tuple[Scored, ...]  # best first, at most ``top``, meeting the deadline and budget
    pareto: tuple[Scored, ...]  # time vs cost, every layout that fits (constraints aside), fastest first
    rejected: dict[str, int]
    feasible: int
    considered: int
    screened: int  # candidates past the space's cheap rules, each given floors
    model_evaluations: int  # calls of training_memory and training_time


def rank_order(s: Scored, objective: Objective) -> tuple[float, ...]:
    """Best objective first; among equals, the simpler layout (fewer model-parallel ranks: tp·pp·cp·ep), which
    is easier to run and to debug and loses nothing the model can see (e.g. ring attention fully hidden)."""
    model_parallel = s.layout.tp * s.layout.pp * s.layout.cp * s.layout.ep
    return (s.value(objective), s.total_s, s.layout.gpus, model_parallel, s.point[1])


def pareto_time_cost(points: Iterable[Scored]) -> tuple[Scored, ...]:
    """The layouts no other beats on both wall time and price, fastest first."""
    front: list[Scored] = []
    for s in sorted(points, key=lambda p: (p.point[0], p.point[1])):
        if not front or s.point[1] < front[-1].point[1]:
            front.append(s)
    return tuple(front)


def closest(plan: TrainPlan, request: PlanRequest) -> Scored | None:
    """When nothing meets the constraints: the front's layout that misses them by the smallest factor."""
    def miss(s: Scored) -> float:
        ratios = [1.0]
        if request.deadline_s is not None:
            ratios.append(s.total_s / request.deadline_s)
        if request.budget_usd is not None:
            ratios.append(s.point[1] / request.budget_usd)
        return max(ratios)

    return min(plan.pareto, key=miss, default=None)
