"""Engine knobs set by the user on presets whose default has no fixed value (SGLang's mem_fraction_static is a
heuristic): the knob replaces it, with "set by the user" as its source, and the pool follows."""

from __future__ import annotations

import pytest

import suanli
from suanli.core.inference_memory import inference_memory
from suanli.spec.engines import EngineKnobs, get_engine


def test_mem_fraction_static_on_sglang() -> None:
    engine = EngineKnobs(gpu_memory_utilization=0.8).apply(get_engine("sglang"))
    assert engine.memory_fraction == 0.8 and engine.sources["memory_fraction"] == "set by the user"
    spec, h100 = suanli.load_model("qwen3-8b"), suanli.get_accelerator("h100")
    r = inference_memory(spec, h100, prompt_tokens=100, engine=engine)
    # SGLang: pool = mem_fraction_static x (visible - CUDA context) - weights (model_runner profile_max_num_token)
    expected = 0.8 * (r.visible_bytes - r.overheads["cuda_context"]) - r.weights_bytes
    assert r.kv_budget_bytes == pytest.approx(expected, rel=1e-12)
