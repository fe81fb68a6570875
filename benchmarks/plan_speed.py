"""How fast ``plan train`` searches, and how much of that is the core model.

Targets (issue 9): ``plan train llama-3.1-405b --gpu h100 --max-gpus 16384 --tokens 15e12`` over the full declared
space in under 5 s, and at least 50,000 candidate layouts per second per core in the search path. Each row runs
``search.plan_train.plan_train`` once per repeat (the model spec and accelerators loaded outside the clock, as
the CLI holds them) and reports the median CPU time (``time.process_time``) with:

Offload is not in the default space (``search/space.py`` says why); the second row searches it too, the whole
declared space. Columns:

- ``considered``: every candidate of the declared space (= feasible + Σ rejected), and its rate;
- ``screened``: those past the cheap rules of the space (divisibility, node size, batch, ZeRO/offload pairing),
  each given exact time/cost/energy floors, and its rate: the stricter reading of "in the search path";
- ``core calls``: ``training_memory`` and ``training_time`` evaluations actually made, and their share of the
  time (the rest is enumeration, floors, sorting and book-keeping).

    .venv/bin/python benchmarks/plan_speed.py            # the table and whether the targets are met
    .venv/bin/python benchmarks/plan_speed.py --quick    # the headline row only, one repeat

Numbers and findings: docs/speed.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import suanli.search.plan_train as plan_module
from suanli.search.plan_train import PlanRequest, TrainPlan, default_global_batch
from suanli.search.space import WITH_OFFLOAD, TrainSpace
from suanli.spec.hardware import get_accelerator
from suanli.spec.resolve import load_model
from suanli.spec.training import TrainingJob

TARGET_S = 5.0
TARGET_RATE = 50_000.0


@dataclass(frozen=True)
class Row:
    label: str
    model: str
    gpus: tuple[str, ...]
    max_gpus: int
    tokens: float
    seq: int
    global_batch: int | None = None
    space: TrainSpace = field(default_factory=TrainSpace)


ROWS = (
    Row("headline (4M-token batch)", "llama-3.1-405b", ("h100",), 16384, 15e12, 8192),
    Row("headline + offload searched", "llama-3.1-405b", ("h100",), 16384, 15e12, 8192,
        space=TrainSpace(offload=WITH_OFFLOAD)),
    Row("Llama 3 405B's 16M-token batch", "llama-3.1-405b", ("h100",), 16384, 15e12, 8192, 2048),
    Row("70B, two accelerator types", "llama-3.1-70b", ("h100", "a100-80gb"), 4096, 2e12, 4096),
    Row("MoE (ep searched)", "mixtral-8x7b", ("h100",), 1024, 1e12, 4096),
)


def _request(row: Row) -> PlanRequest:
    spec = load_model(row.model)
    job = TrainingJob(seq=row.seq)
    return PlanRequest(spec=spec, job=job, accelerators=tuple(get_accelerator(g) for g in row.gpus),
                       tokens=row.tokens, global_batch=row.global_batch or default_global_batch(row.seq),
                       max_gpus=row.max_gpus, space=row.space)


def _timed(function: Callable[..., Any], clock: list[float]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            clock[0] += time.process_time() - start
    return wrapper


def measure(row: Row, repeats: int) -> tuple[float, float, TrainPlan]:
    """Median CPU seconds of the search, median CPU seconds inside the core calls, and the plan."""
    request = _request(row)
    totals, core = [], []
    plan = None
    memory, timing = plan_module.training_memory, plan_module.training_time
    for _ in range(repeats):
        clock = [0.0]
        plan_module.training_memory = _timed(memory, clock)  # type: ignore[assignment]
        plan_module.training_time = _timed(timing, clock)  # type: ignore[assignment]
        try:
            start = time.process_time()
            plan = plan_module.plan_train(request)
            totals.append(time.process_time() - start)
        finally:
            plan_module.training_memory, plan_module.training_time = memory, timing  # type: ignore[assignment]
        core.append(clock[0])
    assert plan is not None
    return statistics.median(totals), statistics.median(core), plan


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the headline row only, one repeat")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = ROWS[:1] if args.quick else ROWS
    repeats = 1 if args.quick else args.repeat
    print(f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    header = (f"{'row':34s} {'CPU s':>6s} {'considered':>10s} {'per s':>9s} {'screened':>9s} {'per s':>8s} "
              f"{'core calls':>10s} {'core share':>10s}")
    print(header)
    headline = None
    for row in rows:
        seconds, core_s, plan = measure(row, repeats)
        print(f"{row.label:34s} {seconds:6.2f} {plan.considered:10,d} {plan.considered / seconds:9,.0f} "
              f"{plan.screened:9,d} {plan.screened / seconds:8,.0f} {plan.model_evaluations:10,d} "
              f"{core_s / seconds:10.0%}")
        best = plan.ranked[0]
        lay = best.layout
        print(f"{'':34s} best: {lay.gpus}× {best.accelerator.key} tp {lay.tp} pp {lay.pp} dp {lay.dp} cp {lay.cp} "
              f"ep {lay.ep} vp {lay.vp} ZeRO-{lay.zero} mb {lay.micro_batch} {lay.recompute.value}"
              f"{' sp' if lay.sp else ''}: {best.total_s / 86400:.1f} days")
        headline = headline or (seconds, plan)
    assert headline is not None
    seconds, plan = headline
    print(f"\nheadline: {seconds:.2f} s (target {TARGET_S:.0f} s: {'met' if seconds < TARGET_S else 'MISSED'}); "
          f"{plan.considered / seconds:,.0f} candidates/s considered, {plan.screened / seconds:,.0f}/s screened "
          f"(target {TARGET_RATE:,.0f}/s: {'met' if plan.screened / seconds >= TARGET_RATE else 'missed'} on the "
          "screened count)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
