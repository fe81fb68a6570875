"""``plan train``'s search (search/space.py, search/plan_train.py): the rules of thumb come out of the scores, every
candidate is counted once, the bounds skip nothing that a brute-force walk would rank, and the numbers are
``suanli train``'s."""

from __future__ import annotations

from dataclasses import replace
from math import prod

import pytest

from suanli.core.memory import training_memory
from suanli.core.training_time import GPUS_PER_NODE, training_time
from suanli.errors import LayoutError
from suanli.search.fit import usable_memory_bytes
from suanli.search.plan_train import OUT_OF_MEMORY, Objective, PlanRequest, TrainPlan, plan_train
from suanli.search.space import (
    Candidate,
    Context,
    Enumeration,
    OffloadChoice,
    Structure,
    TrainSpace,
    cluster_sizes,
    layout_reason,
)
from suanli.spec.hardware import get_accelerator
from suanli.spec.layout import Layout, Recompute
from suanli.spec.model import ModelSpec
from suanli.spec.resolve import load_model
from suanli.spec.training import TrainingJob
from suanli.train_report import training_report

H100 = get_accelerator("h100")
SMALL = TrainSpace(tp=(1, 2, 4), pp=(1, 2), cp=(1, 2), vp=(1,), zero=(0, 1, 3), micro_batch=(1, 2),
                   recompute=(Recompute.NONE, Recompute.FULL), sp=(False,),
                   offload=(OffloadChoice.NONE, OffloadChoice.OPTIMIZER))


def _request(spec: ModelSpec, max_gpus: int, **kw: object) -> PlanRequest:
    base = PlanRequest(spec=spec, job=TrainingJob(seq=2048), accelerators=(H100,), tokens=1e9, global_batch=64,
                       max_gpus=max_gpus)
    return replace(base, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def small_model() -> ModelSpec:
    return load_model("qwen2.5-0.5b")


@pytest.fixture(scope="module")
def llama_70b() -> ModelSpec:
    return load_model("llama-3.1-70b")


def test_cluster_sizes_are_powers_of_two_and_whole_nodes() -> None:
    assert cluster_sizes(16, 8) == (1, 2, 4, 8, 16)
    assert cluster_sizes(24, 8) == (1, 2, 4, 8, 16, 24)  # three whole nodes
    assert cluster_sizes(12, 8) == (1, 2, 4, 8)  # 12 is not whole nodes of 8


def test_layout_reason_drops_the_numbers() -> None:
    message = "num_attention_heads (14) is not divisible by tp (4); use tp in {1, 2, 7, 14}"
    assert layout_reason(message) == "num_attention_heads is not divisible by tp"


def test_a_model_that_fits_on_one_gpu_trains_data_parallel(small_model: ModelSpec) -> None:
    """0.5B parameters: 16 bytes each is 8 GB, it fits one H100, so the fastest use of 8 is 8 replicas."""
    plan = plan_train(_request(small_model, 8))
    best = plan.ranked[0].layout
    assert (best.gpus, best.tp, best.pp, best.cp, best.dp) == (8, 1, 1, 1, 8)


def test_a_70b_model_on_8_gpus_needs_sharding(llama_70b: ModelSpec) -> None:
    """70.6B parameters × 16 bytes (bf16 weights and grads, fp32 master and Adam moments) = 1.13 TB: 141 GB per
    GPU even spread over 8, above an H100's 80 GB, so no plain replica fits and the winner shards the states."""
    plan = plan_train(_request(llama_70b, 8, space=SMALL))
    assert plan.rejected[OUT_OF_MEMORY] > 0
    best = plan.ranked[0].layout
    assert best.gpus == 8
    assert best.tp * best.pp > 1 or best.zero == 3
    assert all(s.layout.gpus == 8 for s in plan.ranked)  # fewer GPUs cannot hold it at all


def test_every_candidate_is_counted_once(small_model: ModelSpec) -> None:
    """considered = feasible + Σ rejected = the size of the declared space (ep is 1 for a dense model)."""
    plan = plan_train(_request(small_model, 16, space=SMALL, deadline_s=2000.0))
    space = SMALL.for_model(small_model)
    size = len(cluster_sizes(16, GPUS_PER_NODE)) * prod(len(getattr(space, d)) for d in (
        "tp", "pp", "cp", "ep", "vp", "zero", "micro_batch", "recompute", "sp", "offload"))
    assert plan.considered == plan.feasible + sum(plan.rejected.values()) == size
    assert plan.feasible > 0 and plan.rejected["misses the deadline"] > 0
    assert plan.rejected["num_attention_heads is not divisible by tp"] > 0  # 14 heads: tp 4 is refused
    assert plan.rejected["tp · pp · cp does not divide the GPU count"] > 0


def test_the_layout_check_rejects_with_its_own_reason(small_model: ModelSpec) -> None:
    """Qwen2.5-0.5B has 14 attention heads: tp 4 is refused by Layout.check, counted under its message."""
    walk = Enumeration(small_model, SMALL.for_model(small_model), Context(gpus_per_node=8, seq=2048, global_batch=64))
    found = list(walk.candidates((8,)))
    assert walk.rejected["num_attention_heads is not divisible by tp"] > 0
    assert all(c.structure.tp != 4 for c in found)
    with pytest.raises(LayoutError):
        Layout(tp=4, dp=2).check(small_model)


def _brute_force(request: PlanRequest) -> tuple[list[tuple[float, float, Layout]], int]:
    """Every candidate through training_memory and training_time, no bounds: (total_s, usd, layout) of those
    that fit, and the number of core calls that took."""
    spec, job = request.spec, request.job
    walk = Enumeration(spec, request.space.for_model(spec),
                       Context(gpus_per_node=GPUS_PER_NODE, seq=job.seq, global_batch=request.global_batch))
    out, calls = [], 0
    for c in walk.candidates(cluster_sizes(request.max_gpus, GPUS_PER_NODE)):
        layout = c.layout(request.global_batch)
        calls += 1
        memory = training_memory(spec, job, layout, capacity_bytes=usable_memory_bytes(H100))
        if memory.fits and memory.host_bytes <= request.host_bytes_per_gpu:
            total = request.tokens / training_time(spec, job, layout, H100).tokens_per_s
            price = next(p.usd_per_hour for p in sorted(H100.prices, key=lambda p: p.usd_per_hour)
                         if p.kind == "on-demand")
            out.append((total, layout.gpus * total / 3600 * price, layout))
            calls += 1
    return out, calls


@pytest.mark.parametrize("objective", [Objective.TIME, Objective.COST])
def test_the_bounds_skip_nothing_a_brute_force_walk_ranks(llama_70b: ModelSpec, objective: Objective) -> None:
    """Same ranked objective values and the same time–cost front as evaluating every candidate."""
    request = _request(llama_70b, 16, space=replace(SMALL, zero=(1, 3)), objective=objective, top=5)
    plan = plan_train(request)
    every, calls = _brute_force(request)
    key = 0 if objective is Objective.TIME else 1
    expected = sorted(x[0] if key == 0 else x[1] for x in every)[:5]
    assert [s.value(objective) for s in plan.ranked] == pytest.approx(expected, rel=1e-12)
    front: list[tuple[float, float]] = []
    for total, usd, _ in sorted(every, key=lambda x: (x[0], x[1])):
        if not front or usd < front[-1][1]:
            front.append((total, usd))
    assert len(plan.pareto) == len(front)
    for s, (total, usd) in zip(plan.pareto, front, strict=True):
        assert (s.total_s, s.usd) == pytest.approx((total, usd), rel=1e-12)
    assert plan.model_evaluations < calls  # the bounds did skip work


def test_the_pareto_front_is_not_dominated(llama_70b: ModelSpec) -> None:
    plan = plan_train(_request(llama_70b, 32, space=SMALL, objective=Objective.COST))
    points = [(s.total_s, s.usd or 0.0) for s in plan.pareto]
    assert len(points) >= 2
    for a in points:
        assert not any(b != a and b[0] <= a[0] and b[1] <= a[1] for b in points)
    assert plan.ranked[0].usd == min(points, key=lambda p: p[1])[1]  # the cheapest is on the front


def test_the_best_equals_train_at_that_layout(llama_70b: ModelSpec) -> None:
    request = _request(llama_70b, 16, space=SMALL)
    best = plan_train(request).ranked[0]
    report = training_report(llama_70b, request.job, best.layout, H100, tokens=request.tokens).values
    assert report["memory"]["fits"]
    assert best.total_s == report["time"]["total_s"]
    assert best.usd == report["cost"]["usd"]
    assert best.energy_kwh == report["cost"]["energy_kwh"]


def test_the_step_floor_does_not_depend_on_dp(llama_70b: ModelSpec) -> None:
    """The floor's premise: one micro-batch's stage work and the bubble are the same at dp 1 and dp 4 (and
    ZeRO-3), so one training_time call per (tp, cp, pp, vp, ep, micro-batch, sp, recompute) serves every dp."""
    job = TrainingJob(seq=2048)
    one = training_time(llama_70b, job, Layout(tp=4, pp=4, dp=1, global_batch=8), H100)
    four = training_time(llama_70b, job, Layout(tp=4, pp=4, dp=4, zero=3, global_batch=32), H100)

    def work(t: object) -> tuple[float, float]:
        b = t.breakdown  # type: ignore[attr-defined]
        stage = b.compute_s + b.recompute_s + b.tp_comm_s + b.cp_comm_exposed_s + b.ep_comm_s
        return stage / t.micro_batches, b.bubble_s  # type: ignore[attr-defined]

    assert work(one) == pytest.approx(work(four), rel=1e-12)
    assert four.breakdown.dp_comm_exposed_s > 0


def test_memory_grows_with_the_micro_batch(llama_70b: ModelSpec) -> None:
    """The micro-batch pruning's premise: with as many micro-batches in flight (here m = 32/mb ≥ pp = 4 on every
    stage), a larger micro-batch never needs less memory. With fewer in flight it may (2 in flight of 4 sequences
    against 4 of 2: each in-flight micro-batch's batch-independent buffers count fewer times), which is why the
    search only compares micro-batches with equal counts in flight."""
    job, capacity = TrainingJob(seq=2048), usable_memory_bytes(H100)

    def total(mb: int, global_batch: int) -> float:
        layout = Layout(tp=4, pp=4, dp=2, zero=1, micro_batch=mb, global_batch=global_batch)
        return training_memory(llama_70b, job, layout, capacity_bytes=capacity).total_bytes

    totals = [total(mb, 64) for mb in (1, 2, 4, 8)]
    assert totals == sorted(totals)
    assert total(4, 16) < total(2, 16)  # 2 in flight of 4 against 4 in flight of 2


def test_no_layout_fits(llama_70b: ModelSpec) -> None:
    plan: TrainPlan = plan_train(_request(llama_70b, 1, space=replace(SMALL, offload=(OffloadChoice.NONE,))))
    assert not plan.ranked and not plan.pareto and plan.rejected[OUT_OF_MEMORY] > 0


def test_candidate_layout_round_trip() -> None:
    c = Candidate(Structure(16, 2, 2, 1, 1, 2), 3, 2, Recompute.SELECTIVE, True, OffloadChoice.OPTIMIZER_AND_PARAMS)
    lay = c.layout(64)
    assert (lay.tp, lay.pp, lay.dp, lay.vp, lay.zero, lay.micro_batch, lay.grad_accumulation_steps) == (
        2, 2, 4, 2, 3, 2, 8)
    assert lay.offload_params.value == "cpu" and lay.schedule.value == "interleaved"


@pytest.mark.parametrize("sp", [False, True])
def test_the_floor_without_recompute_is_below_every_recompute(llama_70b: ModelSpec, sp: bool) -> None:
    """The first floor's premise: recompute only adds to each stage's micro-batch work and so to the bubble."""
    job = TrainingJob(seq=2048)

    def work(recompute: Recompute) -> tuple[float, float]:
        t = training_time(llama_70b, job, Layout(tp=4, pp=4, cp=2, dp=1, sp=sp, global_batch=8, recompute=recompute),
                          H100)
        b = t.breakdown
        stage = b.compute_s + b.recompute_s + b.tp_comm_s + b.cp_comm_exposed_s + b.ep_comm_s
        return stage / t.micro_batches, b.bubble_s

    none = work(Recompute.NONE)
    for recompute in (Recompute.SELECTIVE, Recompute.FULL):
        w, bubble = work(recompute)
        assert w > none[0] and bubble > none[1]


@pytest.mark.parametrize("case_id", ["korthikanti-22b-seqsel", "korthikanti-175b-seqsel"])
def test_the_plan_is_at_least_as_fast_as_a_published_layout(case_id: str) -> None:
    """Issue 9's quality target on two of Korthikanti et al.'s runs (tests/golden/data/training_throughput.toml):
    with the published micro-batch, pp and vp in the space, the plan's best predicts at least the throughput our
    model gives the published layout (benchmarks/plan_quality.py runs all 38)."""
    from benchmarks.calibrate_training import load_cases

    case = next(c for c in load_cases() if c.id == case_id)
    accelerator = get_accelerator(case.gpu)
    published = training_time(case.spec, case.job, case.layout, accelerator, scale_out=case.scale_out).tokens_per_s
    lay = case.layout
    space = replace(TrainSpace(), micro_batch=tuple(sorted({1, 2, 4, 8, lay.micro_batch})),
                    pp=tuple(sorted({*TrainSpace().pp, lay.pp})), vp=tuple(sorted({*TrainSpace().vp, lay.vp})))
    request = PlanRequest(spec=case.spec, job=case.job, accelerators=(accelerator,), tokens=1e12,
                          global_batch=lay.effective_global_batch, max_gpus=lay.gpus, space=space,
                          scale_out=case.scale_out, top=1)
    best = plan_train(request).ranked[0]
    assert 1e12 / best.total_s >= published * (1 - 1e-12)


def test_zero_comes_out_when_memory_is_short() -> None:
    """Data parallel only (tp = pp = cp = 1) for Llama-3.1-8B on 8 H100s: plain replicas need 16 bytes × 8.03B =
    128 GB of states each, above 80 GB, so every ZeRO-0 candidate is out of memory and the answer shards them."""
    spec = load_model("llama-3.1-8b")
    space = replace(SMALL, tp=(1,), pp=(1,), cp=(1,))
    plan = plan_train(_request(spec, 8, space=space))
    assert plan.ranked and all(s.layout.zero > 0 for s in plan.ranked)
    assert plan.rejected[OUT_OF_MEMORY] > 0
