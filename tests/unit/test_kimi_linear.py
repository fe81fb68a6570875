"""Kimi Linear (arXiv:2510.26692): the adapter's layer pattern, and parameters, FLOPs and per-sequence state of
Kimi Delta Attention, derived by hand from the published shapes."""

from __future__ import annotations

from typing import Any

import pytest

from suanli.core.activation_setup import ActivationSetup, Flavour
from suanli.core.activations_ssm import mixer_activation_bytes
from suanli.core.flops import kimi_delta_backward_extra, kimi_delta_scan_flops
from suanli.core.inference_memory import inference_memory
from suanli.core.kv_cache import kv_bytes_per_token, ssm_state_bytes, ssm_state_elements
from suanli.core.params import count_params, mixer_params
from suanli.errors import ConfigError, LayoutError
from suanli.quantity import plain
from suanli.spec.hardware import get_accelerator
from suanli.spec.model import KimiDeltaAttention, ModelSpec, Moe
from suanli.spec.resolve import catalog_config, model_catalog, spec_from_config

KEY = "kimi-linear-48b-a3b-instruct"
#: the published checkpoint's 32 KDA heads of 128, short conv of 4
KDA = KimiDeltaAttention(num_heads=32, head_dim=128, conv_kernel=4)


def _config() -> dict[str, Any]:
    return catalog_config(next(e for e in model_catalog() if e.key == KEY))


def _spec(config: dict[str, Any] | None = None) -> ModelSpec:
    return spec_from_config(config or _config(), name=KEY)


def test_layer_pattern_follows_the_one_based_lists() -> None:
    """full_attn_layers [4, 8, …, 24, 27] are 1-based: MLA at 0-based 3, 7, …, 23 and 26, KDA elsewhere; layer 0
    (first_k_dense_replace 1) has the dense MLP, every other layer the MoE."""
    spec = _spec()
    mla = [i for i, layer in enumerate(spec.layers) if layer.attention is not None]
    assert mla == [3, 7, 11, 15, 19, 23, 26]
    assert all(isinstance(layer.mixer, KimiDeltaAttention) for layer in spec.layers if layer.attention is None)
    assert [isinstance(layer.ffn, Moe) for layer in spec.layers] == [False] + [True] * 26
    attention = spec.layers[3].attention
    assert attention is not None and attention.mla is not None and not attention.rope  # NoPE MLA


def test_kda_parameters_from_the_checkpoint_shapes() -> None:
    """One KDA layer of the published safetensors: q/k/v [4096, 2304] each, f_a and g_a [128, 2304], f_b and g_b
    [4096, 128], b_proj [32, 2304], o_proj [2304, 4096], three convs [4096, 1, 4], dt_bias [4096], A_log 32."""
    matmuls = 3 * 4096 * 2304 + 2 * 128 * 2304 + 2 * 4096 * 128 + 32 * 2304 + 2304 * 4096
    assert mixer_params(KDA, 2304, plain, matmul_only=True) == matmuls
    assert mixer_params(KDA, 2304, plain) == matmuls + 3 * 4096 * 4 + 4096 + 32


def test_total_is_the_checkpoint_less_the_router_buffers() -> None:
    """The checkpoint holds 49,122,681,728 elements (20 safetensors files, as inventoried next to the published
    config.json); 26 MoE layers × 256 of them are the router's e_score_correction_bias, a buffer in transformers."""
    assert count_params(_spec()).total == 49_122_681_728 - 26 * 256


def test_kda_state_is_conv_tail_plus_head_states() -> None:
    conv, state = ssm_state_elements(KDA)
    assert conv == 3 * 3 * 4096  # (K − 1) × q, k, v channels
    assert state == 32 * 128 * 128  # H × d × d
    assert ssm_state_elements(KDA, tp=4) == (conv / 4, state / 4)
    with pytest.raises(LayoutError, match=r"num_heads .32. is not divisible by tp .3."):
        ssm_state_elements(KDA, tp=3)


def test_serving_cache_is_seven_mla_latents_plus_twenty_states() -> None:
    """Per token, 7 MLA layers cache kv_lora_rank + qk_rope_head_dim = 576 bf16 values; per sequence the 20 KDA
    layers keep their fixed state: 20 × (36,864 + 524,288) × 2 B = 22,446,080 B."""
    spec = _spec()
    assert kv_bytes_per_token(spec) == 7 * 576 * 2
    assert ssm_state_bytes(spec, batch=4) == 4 * 22_446_080
    m = inference_memory(spec, get_accelerator("h200"), batch=4, prompt_tokens=32_000, output_tokens=768)
    assert m.ssm_state_bytes == 4 * 22_446_080
    assert m.kv_cache_attention_bytes == 4 * 32_768 * 7 * 576 * 2  # 32,768 tokens: whole blocks of 16


def test_chunked_scan_flops_by_hand() -> None:
    """100 tokens → 2 chunks of 64 (the second padded); per head 2 × 2 × (3·64²·128 + 3·64·128²)."""
    per_head = 2 * 2 * (3 * 64 * 64 * 128 + 3 * 64 * 128 * 128)
    assert kimi_delta_scan_flops(KDA, 100, plain) == 32 * per_head
    assert kimi_delta_backward_extra(KDA, plain) == -2 * 32 * 4 * 64 * 128 * 128


def test_transformers5_keys_are_read() -> None:
    """What transformers 5 writes: layer_types, mlp_layer_types and the flat linear_* keys."""
    config = {k: v for k, v in _config().items() if k not in ("linear_attn_config", "first_k_dense_replace")}
    old = _spec()
    config.update(layer_types=["full_attention" if layer.attention is not None else "linear_attention"
                               for layer in old.layers],
                  mlp_layer_types=["sparse" if isinstance(layer.ffn, Moe) else "dense" for layer in old.layers],
                  linear_num_heads=32, linear_head_dim=128, linear_conv_kernel_dim=4)
    assert _spec(config).layers == old.layers


def test_layer_lists_must_partition_the_layers() -> None:
    config = _config()
    config["linear_attn_config"] = {**config["linear_attn_config"], "kda_layers": [1, 2, 3, 4]}
    with pytest.raises(ConfigError, match=r"split layers 1\.\.27"):
        _spec(config)


def test_kda_saved_activations_by_hand() -> None:
    """One KDA layer, 2 sequences of 1024 tokens, bf16, tp 2: the replicated input h per token, then per token
    (split over tp) q, k, v (3·W), their conv outputs (3·W), the forget and output gates (2·W), β (H), the core
    and gated-norm outputs (2·W) in bf16, plus 3·H·C fp32 values of the chunked solve; W = H·d = 4096."""
    s = ActivationSetup(seq=1024, micro_batch=2, flavour=Flavour.HUGGINGFACE, tp=2)
    parts = mixer_activation_bytes(KDA, 2304, s, plain)
    tokens, w, heads = 2048, 32 * 128, 32
    assert parts["ssm_input"] == tokens * 2304 * 2
    assert parts["ssm"] == tokens * ((10 * w + heads) * 2 + 3 * heads * 64 * 4) / 2
