"""Does ``plan train`` find layouts at least as fast as the published ones, by our own model?

Quality target (issue 9): on the published training runs (``tests/golden/data/training_throughput.toml``, each
with its citation), the plan's best layout predicts at least the throughput our model gives the published
layout; where they differ, say why. For every case this runs ``plan_train`` with the case's model, job
(sequence, precision, attention, framework), accelerator, network and global batch, over cluster sizes up to the
published GPU count, objective time, and compares tokens/s:

- ``published``: our model of the published layout (``training_time`` at it; ``fits`` is our memory model's
  verdict on it);
- ``default space``: the plan's best over the declared default space (``search/space.py``);
- ``+ published values``: the same space with the published micro-batch, pp and vp added to their dimensions
  (published runs use micro-batches such as 3, 14 or 40 and pp 35, which the default powers of two leave out).

    .venv/bin/python benchmarks/plan_quality.py            # every case (a few minutes)
    .venv/bin/python benchmarks/plan_quality.py --quick    # the first case of each source

Findings: docs/plan.md.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.calibrate_training import Case, load_cases

from suanli.core.memory import training_memory
from suanli.core.training_time import training_time
from suanli.search.fit import usable_memory_bytes
from suanli.search.plan_train import PlanRequest, Scored, plan_train
from suanli.search.space import TrainSpace
from suanli.spec.hardware import get_accelerator
from suanli.spec.layout import Layout

TOKENS = 1e12  # any run length: the comparison is of throughput


def _with_published(space: TrainSpace, layout: Layout) -> TrainSpace:
    def add(values: tuple[int, ...], value: int) -> tuple[int, ...]:
        return tuple(sorted({*values, value}))

    return replace(space, micro_batch=add(space.micro_batch, layout.micro_batch), pp=add(space.pp, layout.pp),
                   vp=add(space.vp, layout.vp))


def _best(case: Case, space: TrainSpace) -> Scored | None:
    request = PlanRequest(spec=case.spec, job=case.job, accelerators=(get_accelerator(case.gpu),), tokens=TOKENS,
                          global_batch=case.layout.effective_global_batch, max_gpus=case.layout.gpus, space=space,
                          scale_out=case.scale_out, top=1)
    plan = plan_train(request)
    return plan.ranked[0] if plan.ranked else None


def _describe(s: Scored) -> str:
    lay = s.layout
    return (f"{lay.gpus}: tp{lay.tp} pp{lay.pp} dp{lay.dp} cp{lay.cp}{f' vp{lay.vp}' if lay.vp > 1 else ''} "
            f"Z{lay.zero} mb{lay.micro_batch} {lay.recompute.value}{' sp' if lay.sp else ''}"
            f"{' off' if lay.offload_optimizer.value != 'none' else ''}")


def _published(case: Case) -> str:
    lay = case.layout
    return (f"{lay.gpus}: tp{lay.tp} pp{lay.pp} dp{lay.dp} cp{lay.cp}{f' vp{lay.vp}' if lay.vp > 1 else ''} "
            f"Z{lay.zero} mb{lay.micro_batch} {lay.recompute.value}{' sp' if lay.sp else ''}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first case of each source")
    args = parser.parse_args()
    cases = load_cases()
    if args.quick:
        cases = [c for k, c in enumerate(cases) if k == 0 or c.id.split("-")[0] != cases[k - 1].id.split("-")[0]]
    print(f"{'case':50s} {'published layout':34s} {'fits':>4s} {'tok/s':>9s}  {'default space':34s} {'ratio':>6s}  "
          f"{'+ published values':34s} {'ratio':>6s}")
    below: list[str] = []
    for case in cases:
        accelerator = get_accelerator(case.gpu)
        ours = training_time(case.spec, case.job, case.layout, accelerator, scale_out=case.scale_out).tokens_per_s
        fits = training_memory(case.spec, case.job, case.layout, capacity_bytes=usable_memory_bytes(accelerator)).fits
        columns, ratios = [], []
        for space in (TrainSpace(), _with_published(TrainSpace(), case.layout)):
            best = _best(case, space)
            if best is None:
                columns.append(f"{'nothing fits':34s} {'—':>6s}")
                continue
            ratios.append(TOKENS / best.total_s / ours)
            columns.append(f"{_describe(best):34s} {ratios[-1]:6.2f}")
        if not ratios or ratios[-1] < 1 - 1e-9:
            below.append(f"{case.id} ({'fits' if fits else 'does not fit our memory model'})")
        print(f"{case.id:50s} {_published(case):34s} {'yes' if fits else 'NO':>4s} {ours:9,.0f}  {'  '.join(columns)}")
    print(f"\ncases where the plan (published values in its space) predicts less than the published layout: "
          f"{len(below)} of {len(cases)}")
    for line in below:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
