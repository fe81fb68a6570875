"""Serving's Deployment and StaticBatch: the keyword forms and the simulator share one code path with them, and
bad values end in a SpecError naming the number."""

from __future__ import annotations

import pytest

import suanli
from suanli.core.inference_memory import serving_memory
from suanli.core.inference_time import deployment_setup, serving_setup, serving_time
from suanli.errors import SpecError
from suanli.simulate.api import Deployment as SimDeployment
from suanli.spec.engines import EngineKnobs
from suanli.spec.precision import parse_number_format
from suanli.spec.serving import Deployment, StaticBatch

SPEC = suanli.load_model("llama-3.1-8b")
H100 = suanli.get_accelerator("h100")


def test_keyword_forms_equal_the_deployment_forms() -> None:
    fp8 = parse_number_format("fp8")
    d = Deployment(accelerator=H100, engine=suanli.get_engine("sglang"), tp=2, kv_format=fp8)
    b = StaticBatch(batch=8, prompt_tokens=2048, output_tokens=512)
    kw = dict(batch=8, prompt_tokens=2048, output_tokens=512, engine=d.engine, kv_format=fp8, tp=2)
    assert suanli.inference_memory(SPEC, H100, **kw) == serving_memory(SPEC, d, b)  # type: ignore[arg-type]
    assert suanli.inference_time(SPEC, H100, **kw) == serving_time(SPEC, d, b)  # type: ignore[arg-type]
    assert serving_setup(SPEC, H100, engine=d.engine, kv_format=fp8, tp=2) == deployment_setup(SPEC, d)


def test_simulator_deployment_is_a_serving_deployment() -> None:
    sim = SimDeployment(accelerator=H100, engine=suanli.get_engine("vllm"), tp=2, replicas=3)
    assert isinstance(sim, Deployment) and isinstance(sim, suanli.Deployment)
    assert sim.gpus == 6
    b = StaticBatch(prompt_tokens=1024)
    assert serving_memory(SPEC, sim, b) == serving_memory(SPEC, Deployment(accelerator=H100, tp=2), b)


def test_knobs_reach_memory_and_time() -> None:
    d = Deployment(accelerator=H100, knobs=EngineKnobs(gpu_memory_utilization=0.5, enforce_eager=True))
    assert serving_memory(SPEC, d, StaticBatch(prompt_tokens=1024)).memory_fraction == 0.5
    assert deployment_setup(SPEC, d).cuda_graphs is False
    assert deployment_setup(SPEC, Deployment(accelerator=H100)).cuda_graphs is True  # vLLM's default


@pytest.mark.parametrize(("make", "words"), [
    (lambda: Deployment(accelerator=H100, tp=0), "tp must be positive, got 0"),
    (lambda: Deployment(accelerator=H100, ep=-2), "ep must be positive, got -2"),
    (lambda: Deployment(accelerator=H100, host=H100), "must be a CPU, got h100-sxm-80gb"),
    (lambda: StaticBatch(batch=0, prompt_tokens=8), "batch must be positive, got 0"),
    (lambda: StaticBatch(prompt_tokens=0), "prompt_tokens must be positive, got 0"),
    (lambda: StaticBatch(prompt_tokens=8, output_tokens=-1), "output_tokens must be zero or positive, got -1"),
])
def test_bad_values_name_the_number(make: object, words: str) -> None:
    with pytest.raises(SpecError, match=words):
        make()  # type: ignore[operator]
