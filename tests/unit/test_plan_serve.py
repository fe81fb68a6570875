"""``plan serve``: analytic sizing then simulation; the answer meets the targets in simulation, the cheapest
candidate wins, impossible targets are reported with their reasons."""

from __future__ import annotations

import pytest

import suanli
from suanli.search.plan_serve import SIMULATED_SECONDS, Objective, ServeTarget, plan_serve
from suanli.simulate.api import Deployment, simulate
from suanli.simulate.workload import LengthDist, Workload
from suanli.spec.engines import get_engine

TARGET = ServeTarget(rate_per_s=20.0, prompt_tokens=512, output_tokens=128, ttft_s=1.0, tpot_s=0.05)


@pytest.fixture(scope="module")
def plan():  # type: ignore[no-untyped-def]
    accs = [suanli.get_accelerator(g) for g in ("h100", "l4")]
    return plan_serve(suanli.load_model("llama-3.1-8b"), TARGET, accs, engine=get_engine("vllm"))


def test_best_meets_the_targets_and_is_fewest_gpus(plan) -> None:  # type: ignore[no-untyped-def]
    best = plan.best
    assert best is not None
    assert best.metrics.ttft.p90 <= TARGET.ttft_s and best.metrics.tpot.p90 <= TARGET.tpot_s
    assert all(best.candidate.gpus <= c.candidate.gpus for c in plan.checked)
    assert plan.simulated >= len(plan.checked)


def test_best_reproduces_in_simulate(plan) -> None:  # type: ignore[no-untyped-def]
    """The plan's numbers are simulate's: the same deployment and traffic give the same percentiles."""
    c = plan.best.candidate
    result = simulate(suanli.load_model("llama-3.1-8b"),
                      Deployment(accelerator=c.accelerator, engine=get_engine("vllm"), tp=c.tp,
                                 replicas=1 if c.pd else c.replicas, pd=c.pd),
                      Workload(requests=round(TARGET.rate_per_s * SIMULATED_SECONDS), prompt=LengthDist.constant(512),
                               output=LengthDist.constant(128), rate_per_s=TARGET.rate_per_s, seed=0),
                      keep_timeline=False)
    assert result.metrics.ttft.p90 == pytest.approx(plan.best.metrics.ttft.p90)
    assert result.metrics.tpot.p90 == pytest.approx(plan.best.metrics.tpot.p90)


def test_cost_objective_prefers_dollars() -> None:
    accs = [suanli.get_accelerator(g) for g in ("h100", "a100-80gb")]
    plan = plan_serve(suanli.load_model("llama-3.1-8b"), TARGET, accs, engine=get_engine("vllm"),
                      objective=Objective.COST)
    assert plan.best is not None
    costs = [c.candidate.usd_per_hour for c in plan.checked]
    assert plan.best.candidate.usd_per_hour == min(c for c in costs if c is not None)


def test_impossible_target_rejects_with_reasons() -> None:
    tight = ServeTarget(rate_per_s=1.0, prompt_tokens=512, output_tokens=128, ttft_s=1.0, tpot_s=1e-5)
    plan = plan_serve(suanli.load_model("llama-3.1-8b"), tight, [suanli.get_accelerator("h100")],
                      engine=get_engine("vllm"))
    assert plan.best is None
    assert plan.rejected.get("TPOT target below one sequence's decode step", 0) >= 1


def test_moe_models_try_expert_parallelism() -> None:
    """A MoE model whose experts split over the tp group is sized with ep = tp too; a dense one never."""
    from suanli.search.plan_serve import _ep_degrees

    mixtral, llama = suanli.load_model("mixtral-8x7b"), suanli.load_model("llama-3.1-8b")
    assert _ep_degrees(mixtral, 2) == (1, 2) and _ep_degrees(mixtral, 8) == (1, 8)
    assert _ep_degrees(mixtral, 16) == (1,)  # 8 experts do not split 16 ways
    assert _ep_degrees(llama, 8) == (1,)
    target = ServeTarget(rate_per_s=5.0, prompt_tokens=512, output_tokens=64, ttft_s=2.0, tpot_s=0.1)
    plan = plan_serve(mixtral, target, [suanli.get_accelerator("h100")], engine=get_engine("vllm"))
    assert plan.best is not None
    assert plan.evaluated == 5 + 3  # tp 1, 2, 4, 8, 16, and ep = tp at 2, 4 and 8 (8 experts do not split 16 ways)
