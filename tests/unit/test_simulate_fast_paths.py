"""The simulator's speed-ups give the same floats as the plain computations they replace (issue 8's speed target
was met without changing any result): the step cost's cached token part and Cost-free context part equal
``step_time_split``'s exactly, a decode stretch's offset pricer equals ``step_s`` at each offset, the percentile
search equals the definition's running sum, and a run without the offset pricer is identical."""

from __future__ import annotations

import math
import random

import pytest

import suanli
from suanli.core.inference_time import serving_setup, step_time_split
from suanli.simulate.api import Deployment, simulate
from suanli.simulate.cost import RooflineStepCost
from suanli.simulate.engine import StepWork
from suanli.simulate.metrics import weighted_distribution
from suanli.simulate.workload import LengthDist, Workload
from suanli.spec.engines import get_engine

MODELS = [("llama-3.1-8b", "h100", 1), ("mixtral-8x7b", "h100", 2), ("gemma-2-9b", "a100-80gb", 1),
          ("deepseek-v3", "h200", 8), ("jamba-1.5-mini", "h100", 2)]


@pytest.mark.parametrize("model, gpu, tp", MODELS)
def test_step_cost_parts_equal_step_time_split_exactly(model: str, gpu: str, tp: int) -> None:
    cost = RooflineStepCost(serving_setup(suanli.load_model(model), suanli.get_accelerator(gpu), tp=tp))
    for rows, sampled, graphs in ((((1, 700, 0),), 1, False), (((1, 256, 3000), (12, 1, 1500.5)), 13, False),
                                  (((64, 1, 4000),), 64, True), (((3, 4, 333.25),), 12, True)):
        token, context = step_time_split(cost.setup, rows=rows, sampled_rows=sampled, graphs=graphs)
        tokens = sum(b * n for b, n, _ in rows)
        assert cost._context_s(rows, graphs) == context
        assert cost._token_part_s(tokens, sampled, graphs) == token  # built from its two cached pieces
        assert cost._token_part_s(tokens, sampled, graphs) == token  # from the cache
    work = StepWork(chunks=((128, 64),), decode_contexts=(900, 1101))
    token, context = step_time_split(cost.setup, rows=((1, 128, 64),) + (
        tuple((1, 1, c) for c in work.decode_contexts) if cost._windowed else ((2, 1, 1000.5),)),
                                     sampled_rows=3, graphs=False)
    assert cost.step_s(work) == token + context


@pytest.mark.parametrize("model, gpu, tp", MODELS)
def test_offset_pricer_equals_step_s_exactly(model: str, gpu: str, tp: int) -> None:
    cost = RooflineStepCost(serving_setup(suanli.load_model(model), suanli.get_accelerator(gpu), tp=tp))
    for new in (1, 3):
        work = StepWork(chunks=(), decode_contexts=(17, 900, 4097, 1234), decode_new_tokens=new)
        price = cost.offset_pricer(work)
        if cost._windowed:  # each windowed row is its own group: priced step by step
            assert price is None
            continue
        assert price is not None
        for j in (0, 1, 7, 100, 4095):
            assert price(j) == cost.step_s(StepWork(chunks=(), decode_contexts=work.decode_contexts,
                                                    context_offset=j, decode_new_tokens=new))
    assert cost.offset_pricer(StepWork(chunks=((64, 0),), decode_contexts=(100,))) is None


def _percentile_by_running_sum(samples: list[tuple[float, int]], q: int) -> float:
    total, seen = sum(w for _, w in samples), 0
    for value, weight in sorted(samples):
        seen += weight
        if seen >= math.ceil(q / 100 * total):
            return value
    raise AssertionError("unreachable")


def test_weighted_percentiles_equal_the_running_sum() -> None:
    rng = random.Random(5)
    for n in (1, 2, 3, 10, 999):
        samples = [(rng.choice((0.5, 0.25, rng.random())), rng.randint(1, 40)) for _ in range(n)]
        d = weighted_distribution(samples)
        assert (d.p50, d.p90, d.p99) == tuple(_percentile_by_running_sum(samples, q) for q in (50, 90, 99))
        ordered = sorted(samples)
        assert d.mean == sum(v * w for v, w in ordered) / sum(w for _, w in samples)


@pytest.mark.parametrize("rate, replicas", [(None, 1), (30.0, 3)])
def test_a_run_without_the_offset_pricer_is_identical(monkeypatch: pytest.MonkeyPatch, rate: float | None,
                                                       replicas: int) -> None:
    spec, acc = suanli.load_model("llama-3.1-8b"), suanli.get_accelerator("h100")
    workload = Workload(prompt=LengthDist(edges=(64, 512, 2048), weights=(3, 1)),
                        output=LengthDist(edges=(16, 128, 512), weights=(2, 1)), requests=150,
                        concurrency=None if rate else 24, rate_per_s=rate, seed=2)
    deployment = Deployment(accelerator=acc, engine=get_engine("vllm"), replicas=replicas)
    fast = simulate(spec, deployment, workload)
    monkeypatch.setattr(RooflineStepCost, "offset_pricer", lambda self, work: None)
    plain = simulate(spec, deployment, workload)
    assert fast.metrics == plain.metrics
    assert fast.timeline == plain.timeline
