"""State-space (Mamba) layers: parameters, FLOPs and per-sequence state, derived by hand."""

from __future__ import annotations

import pytest

from suanli.core.flops import count_flops, mamba2_scan_flops
from suanli.core.inference_memory import inference_memory
from suanli.core.kv_cache import kv_cache_bytes, ssm_state_bytes, ssm_state_elements
from suanli.core.params import count_params
from suanli.errors import LayoutError, SpecError
from suanli.quantity import plain
from suanli.spec.hardware import get_accelerator
from suanli.spec.model import Attention, Layer, Mamba2Mixer, MambaMixer, ModelSpec, PositionKind
from suanli.spec.precision import parse_number_format
from suanli.spec.resolve import catalog_config, model_catalog, spec_from_config

# Mamba-Codestral-7B's mixer: I = 128 × 64 = 8192, conv_dim = 8192 + 2 × 8 × 128 = 10240
CODESTRAL = Mamba2Mixer(num_heads=128, head_dim=64, d_state=128, n_groups=8, conv_kernel=4, chunk_size=256)


def _catalog(key: str) -> ModelSpec:
    entry = next(e for e in model_catalog() if e.key == key)
    return spec_from_config(catalog_config(entry), name=key)


def test_mamba2_state_is_conv_tail_plus_ssm_state() -> None:
    conv, ssm = ssm_state_elements(CODESTRAL)
    assert conv == 3 * (8192 + 2 * 8 * 128)  # (K − 1) × conv_dim
    assert ssm == 128 * 64 * 128  # H × P × N


def test_mamba2_state_under_tp_replicates_groups_only_when_needed() -> None:
    conv, ssm = ssm_state_elements(CODESTRAL, tp=4)
    assert (conv, ssm) == (3 * (2048 + 2 * 2 * 128), 32 * 64 * 128)  # 8 groups split 4 ways
    one_group = Mamba2Mixer(num_heads=8, head_dim=8, d_state=16, n_groups=1, conv_kernel=4, chunk_size=16)
    assert ssm_state_elements(one_group, tp=2)[0] == 3 * (32 + 2 * 1 * 16)  # the single group on both ranks
    with pytest.raises(LayoutError, match="num_heads"):
        ssm_state_elements(CODESTRAL, tp=3)


def test_mamba1_state() -> None:
    mixer = MambaMixer(intermediate_size=8192, d_state=16, conv_kernel=4, dt_rank=256)
    assert ssm_state_elements(mixer) == (3 * 8192, 8192 * 16)


def test_codestral_state_bytes_independent_of_context() -> None:
    spec = _catalog("mamba-codestral-7b")
    per_seq = (3 * (8192 + 2048) + 128 * 64 * 128) * 2 * 64  # bf16, 64 layers
    assert ssm_state_bytes(spec) == per_seq == 138_149_888
    assert ssm_state_bytes(spec, batch=8) == 8 * per_seq
    assert kv_cache_bytes(spec, tokens_per_seq=100_000) == 0  # no attention layer caches tokens


def test_mamba2_params_by_hand() -> None:
    h = 4096
    layer = Layer(mixer=CODESTRAL, norms=())
    spec = ModelSpec(name="one", model_type="mamba2", vocab_size=16, hidden_size=h, layers=(layer,),
                     position=PositionKind.NONE, max_position_embeddings=16, tie_word_embeddings=True,
                     final_norm=None)
    in_proj = h * (2 * 8192 + 2 * 8 * 128 + 128)
    conv = 10240 * 4 + 10240
    expected = in_proj + conv + 3 * 128 + 8192 + 8192 * h  # + A_log, D, dt_bias + gated norm + out_proj
    assert count_params(spec).per_layer == (expected,)


def test_mamba2_scan_flops_by_hand() -> None:
    small = Mamba2Mixer(num_heads=2, head_dim=4, d_state=8, n_groups=1, conv_kernel=4, chunk_size=16)
    # 24 tokens: 2 chunks of 16 (the second padded); per head c·Q²·(N+P) + 2·c·Q·N·P + (c+1)²·N·P
    per_head = 2 * 256 * 12 + 2 * 2 * 16 * 32 + 9 * 32
    assert mamba2_scan_flops(small, 24, plain) == 2 * 2 * per_head


def test_mamba_layers_add_no_attention_flops() -> None:
    spec = _catalog("mamba-codestral-7b")
    parts = count_flops(spec, seq=512).components
    assert "attention_scores" not in parts
    assert {"ssm_proj", "ssm_conv", "ssm_scan"} <= set(parts)


def test_layer_needs_some_block() -> None:
    with pytest.raises(SpecError, match="needs attention"):
        Layer(norms=())


def test_parallel_hybrid_layer_counts_attention_and_mixer() -> None:
    """Falcon-H1 runs attention and Mamba side by side: the layer caches K/V per token and keeps a state."""
    attention = Attention(num_heads=2, num_kv_heads=2, head_dim=4, v_head_dim=4)
    both = Layer(attention=attention, mixer=CODESTRAL, norms=())
    spec = ModelSpec(name="p", model_type="falcon_h1", vocab_size=16, hidden_size=8, layers=(both,),
                     position=PositionKind.ROTARY, max_position_embeddings=64, tie_word_embeddings=True,
                     final_norm=None)
    assert kv_cache_bytes(spec, tokens_per_seq=10) == 10 * 2 * 2 * 4 * 2  # K and V, 2 heads of 4, bf16
    assert ssm_state_bytes(spec) == (3 * 10240 + 128 * 64 * 128) * 2


def test_hybrid_serving_reports_state_and_far_less_kv() -> None:
    """Nemotron-H-8B keeps KV in 4 of its 52 layers: at 8 × 8,192 tokens its per-request cache is the 4
    attention layers' KV (2 × 8 heads × 128 × 2 B per token and layer) plus 24 fixed Mamba states."""
    h100 = get_accelerator("h100")
    spec = _catalog("nemotron-h-8b")
    m = inference_memory(spec, h100, batch=8, prompt_tokens=8000, output_tokens=192)
    state = 24 * (3 * (8192 + 2 * 8 * 128) + 128 * 64 * 128) * 2
    assert m.ssm_state_bytes == pytest.approx(8 * state)
    attention = 8 * 8192 * 4 * 2 * 8 * 128 * 2  # paged in blocks of 16: 8,192 tokens exactly
    assert m.kv_cache_attention_bytes == pytest.approx(attention)
    assert m.kv_cache_bytes == pytest.approx(attention + 8 * state)
    llama = _catalog("llama-3.1-8b")
    dense = inference_memory(llama, h100, batch=8, prompt_tokens=8000, output_tokens=192)
    assert m.kv_cache_bytes < dense.kv_cache_bytes / 4


def test_pure_state_space_capacity_counts_whole_sequences() -> None:
    """With no attention layer the pool holds sequences, not tokens: capacity = sequences × their length."""
    h100 = get_accelerator("h100")
    spec = _catalog("mamba-codestral-7b")
    m = inference_memory(spec, h100, batch=1, prompt_tokens=1000, output_tokens=24,
                         kv_format=parse_number_format("fp8"))
    assert m.kv_cache_bytes == m.ssm_state_bytes == 138_149_888  # the state stays in bf16 under an fp8 KV
    assert m.kv_capacity_tokens == int(m.kv_budget_bytes / m.ssm_state_bytes * 1024)
