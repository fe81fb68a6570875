"""Recent mixture-of-experts families (gpt-oss, Llama 4, GLM-4.5, ...): KV-cache bytes, FLOPs of chunked
attention and parameter details, derived by hand from the published shapes."""

from __future__ import annotations

import pytest

from suanli.core.flops import chunked_pairs, count_flops
from suanli.core.kv_cache import kv_bytes_per_token, kv_cache_bytes, mean_kv_bytes_per_token
from suanli.core.params import count_params
from suanli.core.roofline import layer_ops
from suanli.core.serving_ops import Device, LayerPlan, _attention_cost
from suanli.errors import SpecError
from suanli.spec.assumptions import AttentionSpan, PerformanceAssumptions
from suanli.spec.model import Attention, Moe
from suanli.spec.resolve import load_model


def test_gpt_oss_120b_sliding_layers_hold_the_window() -> None:
    spec = load_model("gpt-oss-120b")
    # K and V × 8 KV heads × head_dim 64 × 2 bytes (bf16) = 2,048 B per token per layer, 36 layers
    per_layer = 2 * 8 * 64 * 2
    assert kv_bytes_per_token(spec) == per_layer * 36 == 73_728
    # 4,096 tokens: the 18 sliding layers keep their 128-token window, the 18 full layers all 4,096
    assert kv_cache_bytes(spec, tokens_per_seq=4096) == per_layer * (18 * 128 + 18 * 4096) == 155_713_536
    assert kv_cache_bytes(spec, tokens_per_seq=100) == per_layer * 36 * 100
    assert mean_kv_bytes_per_token(spec, tokens_per_seq=4096) == pytest.approx(per_layer * 18 * (1 + 128 / 4096))


def test_llama_4_scout_chunked_layers_hold_the_chunk() -> None:
    spec = load_model("llama-4-scout")
    # 2 × 8 KV heads × 128 × 2 bytes = 4,096 B per token per layer; 36 chunked RoPE layers, 12 global NoPE ones
    per_layer = 2 * 8 * 128 * 2
    assert sum(layer.attention.chunk_size == 8192 for layer in spec.layers) == 36
    assert kv_bytes_per_token(spec) == per_layer * 48
    assert kv_cache_bytes(spec, tokens_per_seq=32768) == per_layer * (36 * 8192 + 12 * 32768) == 2_818_572_288
    assert kv_cache_bytes(spec, tokens_per_seq=8000) == per_layer * 48 * 8000


def test_chunked_causal_pairs() -> None:
    # chunks of 4 over 10 tokens: two whole chunks (1+2+3+4 each) and a partial one of 2 (1+2)
    assert chunked_pairs(10, 4, AttentionSpan.CAUSAL) == 2 * 10 + 3
    assert chunked_pairs(10, 4, AttentionSpan.FULL) == 100
    spec = load_model("llama-4-scout")
    seq = 3 * 8192 + 100
    causal = count_flops(spec, seq=seq, span=AttentionSpan.CAUSAL).components["attention_scores"]
    # 2 × 40 heads × (128 + 128) per pair; chunked layers: 3 whole chunks + 100; global layers: S(S+1)/2
    chunked = 3 * 8192 * 8193 // 2 + 100 * 101 // 2
    assert causal == 2 * 40 * 256 * (36 * chunked + 12 * seq * (seq + 1) // 2)


def test_one_kind_of_local_attention_per_layer() -> None:
    with pytest.raises(SpecError, match=r"sliding window .* attention chunk"):
        Attention(num_heads=8, num_kv_heads=8, head_dim=64, v_head_dim=64, sliding_window=128, chunk_size=8192)


def test_gpt_oss_parameters_by_hand() -> None:
    counts = count_params(load_model("gpt-oss-20b"))
    h, heads, kv, d, e, i = 2880, 64, 8, 64, 32, 2880
    attention = (h * heads * d + heads * d) + 2 * (h * kv * d + kv * d) + (heads * d * h + h) + heads  # + sinks
    experts = e * (2 * (h * i + i) + (i * h + h))  # gate/up and down, each with a bias
    router = h * e + e
    assert counts.components["attention"] == 24 * attention
    assert counts.components["experts"] == 24 * experts
    assert counts.components["router"] == 24 * router
    # OpenAI's model card: 20.91B total, 3.61B active without the 0.58B input embedding
    assert counts.total / 1e9 == pytest.approx(20.91, abs=0.005)
    assert (counts.active - counts.embedding) / 1e9 == pytest.approx(3.61, abs=0.005)


def test_gpt_oss_120b_published_sizes() -> None:
    counts = count_params(load_model("gpt-oss-120b"))
    assert counts.total / 1e9 == pytest.approx(116.83, abs=0.005)
    assert (counts.active - counts.embedding) / 1e9 == pytest.approx(5.13, abs=0.005)


def test_llama_4_scout_layers() -> None:
    spec = load_model("llama-4-scout")
    assert all(layer.is_moe for layer in spec.layers)
    globals_ = [i for i, layer in enumerate(spec.layers) if layer.attention.chunk_size is None]
    assert globals_ == list(range(3, 48, 4))


def test_deepseek_v3_2_index_key_cache() -> None:
    spec = load_model("deepseek-v3.2-exp")
    # MLA latent (512 + 64) plus the indexer's one 128-wide key, bf16, 61 layers, the same on every TP rank
    assert kv_bytes_per_token(spec) == (512 + 64 + 128) * 2 * 61 == 85_888
    assert kv_bytes_per_token(spec, tp=8) == 85_888
    assert kv_bytes_per_token(spec) - kv_bytes_per_token(load_model("deepseek-v3")) == 128 * 2 * 61
    # the cache is not capped: sparse attention selects keys, it keeps them all
    assert kv_cache_bytes(spec, tokens_per_seq=100_000) == 85_888 * 100_000


def test_deepseek_v3_2_indexer_parameters_and_flops() -> None:
    v32, v3 = load_model("deepseek-v3.2-exp"), load_model("deepseek-v3")
    h, heads, d, q_rank = 7168, 64, 128, 1536
    per_layer = q_rank * heads * d + h * d + 2 * d + h * heads  # wq_b, wk, k_norm (weight, bias), weights_proj
    assert count_params(v32).total - count_params(v3).total == 61 * per_layer == 851_524_864
    seq = 4096
    ours = count_flops(v32, seq=seq, span=AttentionSpan.CAUSAL)
    pairs = seq * (seq + 1) // 2
    projections = q_rank * heads * d + h * d + h * heads
    assert ours.components["indexer"] == 61 * (2 * seq * projections + 2 * heads * (d + 1) * pairs)
    # causal sparse attention: each query attends min(i + 1, 2048) keys, 128 heads × (192 + 128) per pair
    sparse_pairs = 2048 * 2049 // 2 + (seq - 2048) * 2048
    assert ours.components["attention_scores"] == 61 * 2 * 128 * (192 + 128) * sparse_pairs
    # the indexer passes no gradient back: backward is twice the rest of the forward
    assert ours.backward == 2 * (ours.forward - ours.components["indexer"])


# The publishers' own figures. Whether "active" counts the input embedding differs between them (OpenAI
# leaves it out, Meta keeps it), so the closer of the two readings must be within 8%.
@pytest.mark.parametrize(("key", "total", "active", "total_rel"), [
    ("ernie-4.5-21b-a3b", 21e9, 3e9, 0.05),  # Baidu model card: 21B total, 3B active ("21B" rounds 21.8B)
    ("hunyuan-a13b", 80e9, 13e9, 0.01),  # Tencent model card: 80B total, 13B active
    ("minimax-m2", 230e9, 10e9, 0.01),  # MiniMax model card: 230B total (its MTP modules included), 10B active
    ("glm-4.5-air", 106e9, 12e9, 0.01),  # GLM-4.5 report (arXiv:2508.06471): 106B total, 12B active
    ("glm-4.6", 355e9, 32e9, 0.01),  # Z.ai model card: 355B total (its MTP layer included), 32B active
    ("llama-4-scout", 109e9, 17e9, 0.02),  # Meta model card: 109B with the vision encoder, 17B active
    ("llama-4-maverick", 400e9, 17e9, 0.01),  # Meta model card: 400B total, 17B active
    ("deepseek-v3.2-exp", 685e9, 37e9, 0.02),  # DeepSeek: 685B with the 14B MTP module, 37B active
])
def test_published_sizes(key: str, total: float, active: float, total_rel: float) -> None:
    counts = count_params(load_model(key))
    assert counts.total == pytest.approx(total, rel=total_rel)
    readings = (counts.active, counts.active - counts.embedding)
    assert min(abs(r - active) for r in readings) / active < 0.08


def test_longcat_flash_zero_computation_experts() -> None:
    spec = load_model("longcat-flash-chat")
    assert spec.num_layers == 56  # 28 blocks of two attention + MLP sublayers
    moe = spec.layers[0].ffn
    assert isinstance(moe, Moe) and moe.zero_experts == 256
    assert moe.experts_per_token == 12 * 512 / 768 == 8
    h, i, dense = 6144, 2048, 12288
    counts = count_params(spec)
    assert counts.components["experts"] == 28 * 512 * 3 * h * i  # zero experts hold no weights
    assert counts.components["router"] == 28 * h * (512 + 256)  # but the router scores them
    assert counts.components["mlp"] == counts.components["shared_experts"] == 28 * 3 * h * dense
    assert counts.total - counts.active == 28 * (512 - 8) * 3 * h * i
    flops = count_flops(spec, seq=1)
    assert flops.components["experts"] == 28 * 2 * 8 * 3 * h * i
    assert flops.components["router"] == 28 * 2 * h * 768
    # two MLA caches per block: (512 + 64) × 2 bytes × 56
    assert kv_bytes_per_token(spec) == 576 * 2 * 56


def test_longcat_flash_roofline_runs_the_real_experts_only() -> None:
    spec = load_model("longcat-flash-chat")
    ops = {op.name: op.flops for op in layer_ops(spec.layers[0], spec, tokens=512, seq=512)}
    h, i = 6144, 2048
    assert ops["router"] == 2 * 512 * (512 + 256) * h  # the router scores the 256 identity experts too
    # balanced routing: 512 tokens × 8 real experts / 512 experts = 8 rows per expert (not 12)
    assert ops["expert_up_gate"] == 2 * 8 * (2 * i) * h


def test_deepseek_v3_2_decode_reads_the_selected_keys_and_scores_all() -> None:
    spec = load_model("deepseek-v3.2-exp")
    layer = spec.layers[-1]
    latent, index = (512 + 64) * 2, 128 * 2  # bf16 bytes per token
    plan = LayerPlan(layer=layer, gemms=(), bytes_per_weight=1.0, heads=128 / 8, kv_heads=1, qk_dim=192,
                     v_dim=128, absorbed_dims=(576, 512), kv_bytes_per_token=latent + index,
                     stream_elements_per_token=0.0, index_bytes_per_token=index)
    d = Device(peak_flops_per_s=1e15, attention_flops_per_s=1e15, bandwidth_bytes_per_s=1e12,
               weight_bandwidth_bytes_per_s=1e12, launch_s=0.0)
    context = 100_000
    cost = _attention_cost(plan, ((1, 1, context),), d, PerformanceAssumptions())
    # absorbed MLA over the 2,048 selected keys; the indexer's 64 heads × (128 + 1) over all 100,001
    assert cost.flops == 2 * 16 * (576 + 512) * 2048 + 2 * 64 * 129 * (context + 1)
    # the selected latents (plus the new token's) and every index key (plus the new one)
    assert cost.kv_bytes == (2048 + 1) * latent + (context + 1 + 1) * index


def test_llama_4_maverick_interleaves_moe_and_dense() -> None:
    spec = load_model("llama-4-maverick")
    assert [layer.is_moe for layer in spec.layers[:4]] == [False, True, False, True]
    dense = spec.layers[0].ffn
    assert not isinstance(dense, Moe) and dense.intermediate_size == 16384
