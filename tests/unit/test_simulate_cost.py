"""The simulator's step cost is ``infer``'s roofline: one client alone gets exactly infer's batch-1 TTFT and
TPOT; a mixed step is priced as one pass (weights read once), not as the sum of its parts."""

from __future__ import annotations

import pytest

import suanli
from suanli.core.inference_time import decode_step_time, prefill_time, serving_setup
from suanli.simulate.api import Deployment, simulate
from suanli.simulate.cost import RooflineStepCost
from suanli.simulate.engine import StepWork
from suanli.simulate.workload import LengthDist, Workload
from suanli.spec.engines import EngineKnobs, get_engine


@pytest.mark.parametrize("model, gpu, tp", [("llama-3.1-8b", "h100", 1), ("mixtral-8x7b", "a100-80gb", 2),
                                            ("gemma-2-2b", "l4", 1), ("deepseek-v2-lite", "h100", 1)])
def test_one_client_matches_infer(model: str, gpu: str, tp: int) -> None:
    spec, acc = suanli.load_model(model), suanli.get_accelerator(gpu)
    result = simulate(spec, Deployment(accelerator=acc, engine=get_engine("vllm"), tp=tp),
                      Workload(prompt=LengthDist.constant(512), output=LengthDist.constant(64), requests=2,
                               concurrency=1))
    static = suanli.inference_time(spec, acc, batch=1, prompt_tokens=512, output_tokens=64, tp=tp)
    assert result.metrics.ttft.mean == pytest.approx(static.ttft_s, rel=1e-9)
    # infer's TPOT samples the decode step at a few contexts; the simulator prices every step
    assert result.metrics.tpot.mean == pytest.approx(static.tpot_s, rel=1e-3)


def test_mixed_step_reads_the_weights_once() -> None:
    spec, acc = suanli.load_model("llama-3.1-8b"), suanli.get_accelerator("h100")
    setup = serving_setup(spec, acc)
    cost = RooflineStepCost(setup)
    mixed = cost.step_s(StepWork(chunks=((256, 0),), decode_contexts=(1000,) * 16))
    prefill = prefill_time(setup, batch=1, prompt_tokens=256).time_s
    decode = decode_step_time(setup, batch=16, context=1000).time_s
    assert max(prefill, decode) < mixed < prefill + decode


def test_decode_rows_at_their_mean_context_are_exact() -> None:
    # attention work is affine in each row's context (no window): one group at the mean equals the rows apart
    spec, acc = suanli.load_model("llama-3.1-8b"), suanli.get_accelerator("h100")
    cost = RooflineStepCost(serving_setup(spec, acc))
    grouped = cost.step_s(StepWork(chunks=(), decode_contexts=(100, 900, 5000)))
    from suanli.core.inference_time import step_time

    apart = step_time(cost.setup, rows=((1, 1, 100), (1, 1, 900), (1, 1, 5000)), sampled_rows=3, graphs=True)
    assert grouped == pytest.approx(apart.time_s, rel=1e-12)


def test_knobs_change_the_pool_as_the_server_would() -> None:
    spec, acc = suanli.load_model("llama-3.1-8b"), suanli.get_accelerator("h100")
    engine = EngineKnobs(gpu_memory_utilization=0.5, max_num_seqs=8).apply(get_engine("vllm"))
    full = suanli.inference_memory(spec, acc, prompt_tokens=1024).kv_capacity_tokens
    half = suanli.inference_memory(spec, acc, prompt_tokens=1024, engine=engine).kv_capacity_tokens
    assert half < full / 2  # the weights come out of a smaller budget
    result = simulate(spec, Deployment(accelerator=acc, engine=get_engine("vllm"), knobs=EngineKnobs(max_num_seqs=8)),
                      Workload(prompt=LengthDist.constant(128), output=LengthDist.constant(64), requests=32,
                               concurrency=32))
    assert result.metrics.mean_running <= 8 + 1e-9


@pytest.mark.parametrize("model, gpu, tp", [("llama-3.1-8b", "h100", 1), ("qwen2.5-32b", "a100-80gb", 2)])
def test_throughput_within_infer_max_load_band(model: str, gpu: str, tp: int) -> None:
    """At infer's max-load concurrency the simulated throughput never exceeds infer's steady-state figure by
    more than its uncertainty band (both price the same steps; the simulator adds the scheduler)."""
    from suanli.infer_report import inference_report

    spec, acc = suanli.load_model(model), suanli.get_accelerator(gpu)
    report = inference_report(spec, acc, engine=get_engine("vllm"), tp=tp, ep=1, batch=1, prompt_tokens=1024,
                              output_tokens=256, weights_format=None, kv_format=None)
    load = report.values["throughput"]["max_load"]
    result = simulate(spec, Deployment(accelerator=acc, engine=get_engine("vllm"), tp=tp),
                      Workload(prompt=LengthDist.constant(1024), output=LengthDist.constant(256),
                               requests=3 * load["concurrency"], concurrency=load["concurrency"]), keep_timeline=False)
    assert result.metrics.output_tokens_per_s <= load["output_tokens_per_s_range"][1]
    assert result.metrics.output_tokens_per_s >= 0.5 * load["output_tokens_per_s"]


@pytest.mark.parametrize("model, gpu, tp", [("llama-3.1-8b", "h100", 1), ("mixtral-8x7b", "h100", 2),
                                            ("gemma-2-9b", "a100-80gb", 1), ("deepseek-v3", "h200", 8)])
def test_split_step_time_adds_up(model: str, gpu: str, tp: int) -> None:
    """The simulator caches the token-count part of a step; both parts must add up to step_time exactly."""
    from suanli.core.inference_time import step_time, step_time_split

    setup = serving_setup(suanli.load_model(model), suanli.get_accelerator(gpu), tp=tp)
    for rows, sampled, graphs in ((((1, 700, 0),), 1, False), (((1, 256, 3000), (12, 1, 1500.5)), 13, False),
                                  (((64, 1, 4000),), 64, True)):
        token, context = step_time_split(setup, rows=rows, sampled_rows=sampled, graphs=graphs)
        assert token + context == pytest.approx(step_time(setup, rows=rows, sampled_rows=sampled,
                                                          graphs=graphs).time_s, rel=1e-12)
    cost = RooflineStepCost(setup)
    work = StepWork(chunks=((128, 64),), decode_contexts=(900, 1100))
    first, again = cost.step_s(work), cost.step_s(work)  # the second comes from the cache
    assert first == again == pytest.approx(step_time(setup, rows=((1, 128, 64), (2, 1, 1000.0)), sampled_rows=3,
                                                     graphs=False).time_s, rel=1e-12)
