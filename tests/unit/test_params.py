"""Parameter counts of tiny models, derived by hand from the module shapes."""

from __future__ import annotations

from typing import Any

import pytest

from suanli.core.params import count_params
from suanli.errors import ConfigError, SpecError, UnsupportedArchitecture
from suanli.spec.hf import spec_from_config


def test_tiny_llama_by_hand(tiny_llama: dict[str, Any]) -> None:
    h, i, v, layers, head_dim = 64, 128, 100, 2, 16
    attention = h * 4 * head_dim + 2 * h * 2 * head_dim + 4 * head_dim * h  # q, k, v (2 KV heads), o
    mlp = 3 * h * i
    norms = 2 * h
    expected = v * h + layers * (attention + mlp + norms) + h + h * v
    counts = count_params(spec_from_config(tiny_llama, name="tiny"))
    assert counts.total == expected == 86_848
    assert counts.embedding == v * h
    assert counts.active == counts.total
    assert counts.components["lm_head"] == h * v
    assert counts.per_layer == (attention + mlp + norms,) * layers


def test_tied_embeddings_count_once(tiny_llama: dict[str, Any]) -> None:
    untied = count_params(spec_from_config(tiny_llama, name="tiny")).total
    tied = count_params(spec_from_config({**tiny_llama, "tie_word_embeddings": True}, name="tiny")).total
    assert untied - tied == 100 * 64


def test_biases_add_their_widths(tiny_llama: dict[str, Any]) -> None:
    plain = count_params(spec_from_config(tiny_llama, name="t")).total
    biased = count_params(spec_from_config({**tiny_llama, "attention_bias": True, "mlp_bias": True}, name="t"))
    # per layer: q 64 + k 32 + v 32 + o 64, gate 128 + up 128 + down 64
    assert biased.total - plain == 2 * (64 + 32 + 32 + 64 + 128 + 128 + 64)


def test_gpt2_small_is_124m() -> None:
    config = {"model_type": "gpt2", "n_embd": 768, "n_layer": 12, "n_head": 12, "n_positions": 1024,
              "vocab_size": 50257}
    # per block: c_attn 768·2304+2304, c_proj 768²+768, c_fc 768·3072+3072, c_proj 3072·768+768, 2 LN of 1536
    block = 768 * 2304 + 2304 + 768 * 768 + 768 + 768 * 3072 + 3072 + 3072 * 768 + 768 + 2 * 1536
    expected = 50257 * 768 + 1024 * 768 + 12 * block + 1536
    assert count_params(spec_from_config(config, name="gpt2")).total == expected == 124_439_808


def test_moe_active_params_count_top_k_experts() -> None:
    config = {"model_type": "mixtral", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 50, "num_local_experts": 8,
              "num_experts_per_tok": 2, "max_position_embeddings": 64}
    counts = count_params(spec_from_config(config, name="tiny-moe"))
    expert = 3 * 32 * 64
    assert counts.components["experts"] == 2 * 8 * expert
    assert counts.components["router"] == 2 * 32 * 8
    assert counts.total - counts.active == 2 * (8 - 2) * expert


def test_mla_attention_by_hand() -> None:
    config = {"model_type": "deepseek_v3", "hidden_size": 64, "intermediate_size": 96,
              "moe_intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 10,
              "q_lora_rank": 24, "kv_lora_rank": 32, "qk_rope_head_dim": 8, "qk_nope_head_dim": 16,
              "v_head_dim": 16, "n_routed_experts": 4, "n_shared_experts": 1, "num_experts_per_tok": 2,
              "first_k_dense_replace": 1, "max_position_embeddings": 64}
    counts = count_params(spec_from_config(config, name="tiny-mla"))
    q = 64 * 24 + 24 + 24 * 4 * (16 + 8)  # q_a, q_a_layernorm, q_b
    kv = 64 * (32 + 8) + 32 + 32 * 4 * (16 + 16)  # kv_a_proj_with_mqa, kv_a_layernorm, kv_b
    o = 4 * 16 * 64
    assert counts.components["attention"] == q + kv + o


def test_unknown_model_type_lists_supported() -> None:
    with pytest.raises(UnsupportedArchitecture, match=r"supported: .*llama.*qwen3"):
        spec_from_config({"model_type": "mamba"}, name="x")


def test_missing_key_is_named(tiny_llama: dict[str, Any]) -> None:
    del tiny_llama["hidden_size"]
    with pytest.raises(ConfigError, match="'hidden_size' is missing"):
        spec_from_config(tiny_llama, name="x")


@pytest.mark.parametrize(("key", "value"), [("num_hidden_layers", 0), ("hidden_size", -4),
                                            ("vocab_size", "lots"), ("num_attention_heads", 2.5)])
def test_bad_sizes_are_rejected(tiny_llama: dict[str, Any], key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=key):
        spec_from_config({**tiny_llama, key: value}, name="x")


def test_gqa_groups_must_be_whole(tiny_llama: dict[str, Any]) -> None:
    with pytest.raises(SpecError, match=r"num_attention_heads \(4\) is not a multiple of num_key_value_heads \(3\)"):
        spec_from_config({**tiny_llama, "num_key_value_heads": 3}, name="x")
