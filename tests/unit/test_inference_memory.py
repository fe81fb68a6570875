"""Per-GPU inference memory and engine KV budgets, derived by hand on tiny models and engine rules."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from suanli.core.inference_memory import (
    activation_bytes,
    block_linears,
    engine_setting,
    inference_memory,
    kv_capacity_tokens,
    max_batch_for_context,
    visible_memory_bytes,
    weight_bytes_per_gpu,
)
from suanli.core.kv_cache import kv_bytes_per_token
from suanli.core.params import attention_params, count_params, mlp_params
from suanli.errors import LayoutError, NotFound, SpecError
from suanli.quantity import plain
from suanli.spec.engines import EnginePreset, framework_overheads, get_engine, load_engines
from suanli.spec.hardware import get_accelerator
from suanli.spec.hf import spec_from_config
from suanli.spec.model import ModelSpec, Moe
from suanli.spec.precision import parse_number_format
from suanli.spec.resolve import load_model
from suanli.units import GiB, MiB

ZERO = dataclasses.replace(framework_overheads(), cuda_reserved_bytes=0.0, cuda_context_bytes=0.0,
                           cublas_workspace_bytes=0.0, non_torch_bytes=0.0, nccl_bytes=0.0, cuda_graph_bytes=0.0)


@pytest.fixture
def tiny(tiny_llama: dict[str, Any]) -> ModelSpec:
    return spec_from_config({**tiny_llama, "torch_dtype": "bfloat16"}, name="tiny")


# ---- weights ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["llama-3.1-8b", "deepseek-v3", "mixtral-8x7b", "qwen1.5-moe-a2.7b", "phi-3-mini"])
def test_block_linears_cover_every_matmul(model: str) -> None:
    spec = load_model(model)
    for layer, _ in spec.layer_groups():
        ffn = layer.ffn
        expected = attention_params(layer.attention, spec.hidden_size, plain, matmul_only=True)
        if isinstance(ffn, Moe):
            expected += ffn.num_experts * mlp_params(ffn.expert, spec.hidden_size, plain, matmul_only=True)
            if ffn.shared is not None:
                expected += mlp_params(ffn.shared, spec.hidden_size, plain, matmul_only=True)
        else:
            expected += mlp_params(ffn, spec.hidden_size, plain, matmul_only=True)
        linears = block_linears(layer, spec.hidden_size)
        assert sum(w.count * w.out_features * w.in_features for w in linears) == expected


def test_bf16_weights_are_two_bytes_per_param(tiny: ModelSpec) -> None:
    assert weight_bytes_per_gpu(tiny).total_bytes == 2 * count_params(tiny).total == 2 * 86_848


def test_tp_split_by_hand(tiny: ModelSpec) -> None:
    # per layer and rank: q 64·64/2, k and v 32·64/2 (one of 2 KV heads), o 64·64/2, gate/up/down 128·64/2
    linear = 2 * (4096 + 2048 + 2048 + 4096 + 3 * 8192) / 2
    w = weight_bytes_per_gpu(tiny, tp=2)
    assert w.linear_bytes == 2 * linear
    assert w.embedding_bytes == w.lm_head_bytes == 2 * 50 * 64  # vocab-parallel: 100 / 2 rows
    assert w.other_bytes == 2 * (2 * 2 * 64 + 64)  # two norms per layer + the final norm, replicated
    # tp = 4 > 2 KV heads: k and v keep one whole head (16 rows) per rank
    w4 = weight_bytes_per_gpu(tiny, tp=4)
    assert w4.linear_bytes == 2 * 2 * (1024 + 16 * 64 * 2 + 1024 + 3 * 2048)
    with pytest.raises(LayoutError, match=r"num_attention_heads \(4\) is not divisible by tp \(3\)"):
        weight_bytes_per_gpu(tiny, tp=3)


def test_quantized_formats_keep_embeddings_and_head_in_16_bits(tiny: ModelSpec) -> None:
    awq = parse_number_format("awq")
    w = weight_bytes_per_gpu(tiny, awq)
    shapes = [(64, 64), (32, 64), (32, 64), (64, 64), (128, 64), (128, 64), (64, 128)]
    assert w.linear_bytes == 2 * sum(awq.tensor_bits(out_features=o, in_features=i) for o, i in shapes) / 8
    assert w.embedding_bytes == w.lm_head_bytes == 100 * 64 * 2
    fp32 = weight_bytes_per_gpu(tiny, parse_number_format("fp32"))
    assert fp32.total_bytes == 4 * count_params(tiny).total  # wide float formats store everything


def test_gguf_file_mix_matches_its_reference_size() -> None:
    spec = load_model("llama-3-8b")  # the Q4_K_M reference: 4.58 GiB (llama.cpp QUANT_OPTIONS)
    w = weight_bytes_per_gpu(spec, parse_number_format("q4_k_m"))
    assert w.total_bytes / GiB == pytest.approx(4.58, rel=0.01)


def test_expert_parallel_keeps_each_expert_whole() -> None:
    spec = load_model("mixtral-8x7b")
    full = weight_bytes_per_gpu(spec, tp=8)
    ep = weight_bytes_per_gpu(spec, tp=8, ep=8)
    assert ep.linear_bytes == pytest.approx(full.linear_bytes, rel=1e-9)  # 1 whole expert = 1/8 of 8 experts
    with pytest.raises(LayoutError, match="8 experts cannot be split over ep=3"):
        weight_bytes_per_gpu(spec, ep=3)


def test_llamacpp_offload_moves_layers_to_host() -> None:
    spec = load_model("llama-3.1-8b")
    q4 = parse_number_format("q4_k_m")
    everything = weight_bytes_per_gpu(spec, q4).total_bytes
    for ngl in (0, 10, 32, 33):
        w = weight_bytes_per_gpu(spec, q4, gpu_layers=ngl)
        assert w.total_bytes + w.host_bytes == pytest.approx(everything, rel=1e-12)
        assert w.embedding_bytes == 0  # token embeddings stay on the host
        assert (w.lm_head_bytes > 0) == (ngl == 33)


# ---- activations ------------------------------------------------------------------------------------------

def test_activation_by_hand(tiny: ModelSpec) -> None:
    # forward: T × 2 B × (2h + 3i) = 100 × 2 × (128 + 384); sampler: T·h·2 + rows × vocab × bytes/logit
    assert activation_bytes(tiny, chunk_tokens=100, sampled_rows=1) == 100 * 2 * (128 + 384)
    assert activation_bytes(tiny, chunk_tokens=100, sampled_rows=300, sampler_bytes_per_logit=8) == \
        100 * 64 * 2 + 300 * 100 * 8
    assert activation_bytes(tiny, chunk_tokens=100, sampled_rows=1, tp=2) == 100 * 2 * (128 + 192)


def test_moe_buffers_hold_at_most_the_fused_moe_chunk() -> None:
    """Qwen3-30B-A3B (h 2048, 32 + 4 heads of 128, 8 of 128 experts of 768): a 65,536-token step with vLLM's
    32,768-token fused-MoE chunk. The MoE buffers are (M, 8, 2·768), (8M, 768), (M, 8, 2048) over M = 32,768; the
    residual pair spans every token; attention's q, k, v, o (36 × 256 per token) stay narrower."""
    spec = load_model("qwen3-30b-a3b")
    tokens, chunk = 65536, 32768
    moe = chunk * 8 * (3 * 768 + 2048) * 2
    assert moe > tokens * 36 * 256 * 2  # the MoE buffers are the widest even over half the tokens
    expected = tokens * 2 * 2 * 2048 + moe
    assert activation_bytes(spec, chunk_tokens=tokens, sampled_rows=1, moe_chunk_tokens=chunk) == expected
    unchunked = activation_bytes(spec, chunk_tokens=tokens, sampled_rows=1)
    assert unchunked == tokens * 2 * 2 * 2048 + 2 * moe  # without a chunk the buffers span every token
    assert activation_bytes(spec, chunk_tokens=8192, sampled_rows=1, moe_chunk_tokens=chunk) == \
        activation_bytes(spec, chunk_tokens=8192, sampled_rows=1)  # a step within the chunk: no change


# ---- engines ----------------------------------------------------------------------------------------------

def test_vllm_batch_defaults_follow_gpu_size() -> None:
    vllm = get_engine("vllm")
    for gpu, expected in [("h100", (8192, 1024)), ("h200", (8192, 1024)), ("a100-80gb", (2048, 256)),
                          ("rtx-4090", (2048, 256))]:
        acc = get_accelerator(gpu)
        setting = engine_setting(vllm, acc)
        assert (setting.chunk_tokens, setting.max_num_seqs) == expected, gpu


def test_sglang_mem_fraction_static_heuristic() -> None:
    sglang = get_engine("sglang")
    h100 = get_accelerator("h100")  # nvidia-smi 81,559 MiB: chunk 8192, cuda_graph_max_bs 256 (tp < 4)
    assert engine_setting(sglang, h100).memory_fraction == round((81559 - (512 + 8192 * 1.5 + 512 + 128)) / 81559, 3)
    assert engine_setting(sglang, h100, tp=8).memory_fraction == round((81559 - (512 + 12288 + 1024 + 1024)) / 81559, 3)
    small = get_accelerator("rtx-4090")  # 24,576 MiB: chunk 2048, graphs 24, no 10 GiB floor
    assert engine_setting(sglang, small).memory_fraction == round((24576 - (512 + 3072 + 48 + 128)) / 24576, 3)


def test_vllm_budget_and_block_rounding(tiny: ModelSpec) -> None:
    h100 = get_accelerator("h100")
    vllm = get_engine("vllm-0.10")
    r = inference_memory(tiny, h100, prompt_tokens=10, engine=vllm, overheads=ZERO)
    activation = activation_bytes(tiny, chunk_tokens=8192, sampled_rows=1024, sampler_bytes_per_logit=38)
    assert r.activation_bytes == activation
    assert r.kv_budget_bytes == 0.9 * 81559 * MiB - 2 * 86_848 - activation
    per_block = 16 * kv_bytes_per_token(tiny)
    assert r.kv_capacity_tokens == int(r.kv_budget_bytes // per_block) * 16
    assert r.kv_cache_bytes == 16 * kv_bytes_per_token(tiny)  # 10 tokens take one 16-token block
    assert kv_capacity_tokens(tiny, h100, get_engine("trtllm"), overheads=ZERO) % 32 == 0


def test_engines_budget_rules(tiny: ModelSpec) -> None:
    h100 = get_accelerator("h100")
    o = framework_overheads()
    visible = visible_memory_bytes(h100, o)
    assert visible == 81559 * MiB - 0.5 * GiB
    w = 2 * 86_848
    sglang = inference_memory(tiny, h100, prompt_tokens=10, engine=get_engine("sglang"), overheads=o)
    assert sglang.kv_budget_bytes == pytest.approx(sglang.memory_fraction * (visible - o.cuda_context_bytes) - w)
    trt = inference_memory(tiny, h100, prompt_tokens=10, engine=get_engine("trtllm"), overheads=o)
    assert trt.kv_budget_bytes == pytest.approx(0.9 * (visible - trt.overhead_bytes - w - trt.activation_bytes))
    hf = inference_memory(tiny, h100, prompt_tokens=10, engine=get_engine("hf"), overheads=o)
    assert hf.kv_budget_bytes == pytest.approx(visible - hf.overhead_bytes - w - hf.activation_bytes)
    assert hf.activation_bytes == activation_bytes(tiny, chunk_tokens=10, sampled_rows=1)


def test_current_vllm_subtracts_cuda_graphs(tiny: ModelSpec) -> None:
    h100 = get_accelerator("h100")
    new = inference_memory(tiny, h100, prompt_tokens=10, engine=get_engine("vllm"))
    old = inference_memory(tiny, h100, prompt_tokens=10, engine=get_engine("vllm-0.10"))
    visible = new.visible_bytes
    assert new.kv_budget_bytes - old.kv_budget_bytes == pytest.approx(0.02 * visible - 0.5 * GiB)


def test_too_big_does_not_fit() -> None:
    spec = load_model("llama-3.1-70b")
    r = inference_memory(spec, get_accelerator("h100"), prompt_tokens=1000)
    assert not r.fits and r.kv_capacity_tokens == 0 and r.kv_budget_bytes < 0
    assert max_batch_for_context(spec, get_accelerator("h100"), context_tokens=1000) == 0
    assert inference_memory(spec, get_accelerator("h100"), prompt_tokens=1000, tp=2).fits


def test_max_batch_is_the_last_batch_that_fits() -> None:
    spec, h100 = load_model("llama-3.1-8b"), get_accelerator("h100")
    for engine in (get_engine("vllm"), get_engine("hf")):
        best = max_batch_for_context(spec, h100, engine, context_tokens=8000)
        assert inference_memory(spec, h100, batch=best, prompt_tokens=8000, engine=engine).fits
        assert not inference_memory(spec, h100, batch=best + 1, prompt_tokens=8000, engine=engine).fits


def test_llamacpp_context_and_offload() -> None:
    spec, gpu = load_model("llama-3.1-8b"), get_accelerator("rtx-4090")
    engine = get_engine("llamacpp")
    q4 = parse_number_format("q4_k_m")
    assert kv_capacity_tokens(spec, gpu, engine, weights_format=q4, context_tokens=8192) == 8192
    partial = dataclasses.replace(engine, n_gpu_layers=16)
    r = inference_memory(spec, gpu, prompt_tokens=4096, engine=partial, weights_format=q4)
    assert r.kv_cache_bytes == 4096 * 16 * 2 * 8 * 128 * 2  # f16 KV for the 16 GPU layers only
    assert r.host_bytes > r.weights_bytes  # the other 16 layers, the embeddings and the head


def test_hf_caches_decompressed_mla() -> None:
    spec, h200 = load_model("deepseek-v2-lite"), get_accelerator("h200")
    hf = inference_memory(spec, h200, prompt_tokens=100, engine=get_engine("hf"))
    vllm = inference_memory(spec, h200, prompt_tokens=100, engine=get_engine("vllm"))
    assert hf.kv_bytes_per_token / vllm.kv_bytes_per_token == pytest.approx(16 * (192 + 128) / (512 + 64))


def test_engine_catalog() -> None:
    keys = [e.key for e in load_engines()]
    assert {"vllm", "vllm-0.10", "sglang", "trtllm", "llamacpp", "hf"} <= set(keys)
    assert get_engine("TensorRT-LLM").key == "trtllm" and get_engine("llama.cpp").key == "llamacpp"
    with pytest.raises(NotFound, match="unknown engine 'vlm'; did you mean"):
        get_engine("vlm")
    vllm = get_engine("vllm")
    with pytest.raises(SpecError, match="no source for memory_fraction"):
        EnginePreset(**{f.name: getattr(vllm, f.name) for f in dataclasses.fields(vllm)
                        if f.name != "sources"}, sources={k: v for k, v in vllm.sources.items()
                                                          if k != "memory_fraction"})
    with pytest.raises(SpecError, match=r"memory fraction 1.5 must be in \(0, 1\]"):
        dataclasses.replace(vllm, memory_fraction=1.5)
    assert math.isclose(get_engine("vllm").memory_fraction or 0, 0.92)
