"""Recent dense families (spec/families/dense_recent.py): layer layouts, parameters and KV-cache bytes derived
by hand from the config shapes. Exact agreement with transformers is checked model by model in
tests/reference/ (every bundled config)."""

from __future__ import annotations

from typing import Any

import pytest

from suanli.core.kv_cache import kv_bytes_per_token, kv_cache_bytes, mean_kv_bytes_per_token
from suanli.core.params import count_params
from suanli.errors import ConfigError
from suanli.report import architecture_summary
from suanli.spec.hf import spec_from_config
from suanli.spec.resolve import load_model

BF16 = 2


def tiny(model_type: str, **extra: Any) -> dict[str, Any]:
    """hidden 64, 4 heads / 2 KV heads of 16, MLP 128, vocab 100, 4 layers."""
    return {"model_type": model_type, "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
            "intermediate_size": 128, "vocab_size": 100, "num_hidden_layers": 4, **extra}


# 64·64 (q) + 2·64·32 (k, v) + 64·64 (o)
ATTENTION = 64 * 64 + 2 * 64 * 32 + 64 * 64


# --- layer layouts --------------------------------------------------------------------------------------------


def test_command_r7b_three_local_rope_layers_then_a_global_nope_one() -> None:
    spec = load_model("command-r7b")
    windows = [layer.attention.sliding_window for layer in spec.layers if layer.attention]
    rope = [layer.attention.rope for layer in spec.layers if layer.attention]
    assert windows == [4096, 4096, 4096, None] * 8
    assert rope == [True, True, True, False] * 8
    assert all(layer.parallel and len(layer.norms) == 1 for layer in spec.layers)
    summary = architecture_summary(spec)
    assert (summary["sliding_window_layers"], summary["nope_layers"]) == (24, 8)


def test_smollm3_every_fourth_layer_is_nope_without_a_window() -> None:
    spec = load_model("smollm3-3b")
    assert [layer.attention.rope for layer in spec.layers if layer.attention] == [True, True, True, False] * 9
    assert all(layer.attention and layer.attention.sliding_window is None for layer in spec.layers)
    assert spec.tie_word_embeddings


def test_smollm3_default_interval_and_sliding_nope_layers() -> None:
    spec = spec_from_config(tiny("smollm3", no_rope_layers=None, no_rope_layer_interval=2, use_sliding_window=True,
                                 sliding_window=32), name="t")
    assert [(a.rope, a.sliding_window) for a in (layer.attention for layer in spec.layers) if a] == [
        (True, None), (False, 32), (True, None), (False, 32)]


def test_exaone4_string_pattern_and_no_window() -> None:
    spec = spec_from_config(tiny("exaone4", sliding_window=16, sliding_window_pattern="LG"), name="t")
    assert [(a.sliding_window, a.rope) for a in (layer.attention for layer in spec.layers) if a] == [
        (16, True), (None, False)] * 2
    plain = spec_from_config(tiny("exaone4", sliding_window=None), name="t")
    assert all(layer.attention and layer.attention.rope and layer.attention.sliding_window is None
               for layer in plain.layers)


def test_bad_pattern_and_rope_list_name_the_key() -> None:
    with pytest.raises(ConfigError, match="sliding_window_pattern"):
        spec_from_config(tiny("exaone4", sliding_window=16, sliding_window_pattern="LX"), name="t")
    with pytest.raises(ConfigError, match="no_rope_layers"):
        spec_from_config(tiny("smollm3", no_rope_layers=[1, 0]), name="t")


# --- parameters -----------------------------------------------------------------------------------------------


def test_apertus_counts_two_xielu_scalars_per_mlp() -> None:
    counts = count_params(spec_from_config(tiny("apertus", hidden_act="xielu"), name="t"))
    mlp = 2 * 64 * 128 + 2  # up, down and xIELU's alpha_p, alpha_n
    per_layer = ATTENTION + 2 * 16 + mlp + 2 * 64  # + per-head q/k RMSNorms + 2 RMSNorms
    assert counts.components["mlp"] == 4 * mlp
    assert counts.total == 2 * 100 * 64 + 4 * per_layer + 64  # untied embedding and head, final norm


def test_arcee_plain_relu2_mlp_with_bias() -> None:
    counts = count_params(spec_from_config(tiny("arcee", mlp_bias=True), name="t"))
    assert counts.components["mlp"] == 4 * (64 * 128 + 128 + 128 * 64 + 64)


def test_cohere_parallel_block_bias_free_layernorm_tied() -> None:
    counts = count_params(spec_from_config(tiny("cohere", use_qk_norm=True), name="t"))
    # one LayerNorm weight per block (no bias) + the final one; q/k norms: a weight per head and channel
    assert counts.components["norms"] == 4 * 64 + 64
    assert counts.components["attention"] == 4 * (ATTENTION + 4 * 16 + 2 * 16)
    assert "lm_head" not in counts.components


def test_internlm3_aliases_and_seed_oss_output_bias() -> None:
    internlm = count_params(spec_from_config(tiny("internlm3", qkv_bias=True, bias=True), name="t"))
    assert internlm.components["attention"] == 4 * (ATTENTION + 64 + 2 * 32 + 64)
    assert internlm.components["mlp"] == 4 * (3 * 64 * 128 + 2 * 128 + 64)
    seed = count_params(spec_from_config(tiny("seed_oss", attention_bias=True, attention_out_bias=False),
                                         name="t"))
    assert seed.components["attention"] == 4 * (ATTENTION + 64 + 2 * 32)


def test_glm4_ernie_hunyuan_biases_and_norms() -> None:
    glm = count_params(spec_from_config(tiny("glm4", head_dim=16, attention_bias=True), name="t"))
    assert glm.components["attention"] == 4 * (ATTENTION + 64 + 2 * 32)  # q/k/v biases, none on o_proj
    assert glm.components["norms"] == 4 * 4 * 64 + 64  # four RMSNorms per block + the final one
    ernie = count_params(spec_from_config(tiny("ernie4_5", use_bias=True), name="t"))
    assert ernie.components["attention"] == 4 * (ATTENTION + 64 + 2 * 32 + 64)
    assert ernie.components["mlp"] == 4 * (3 * 64 * 128 + 2 * 128 + 64)
    assert "lm_head" not in ernie.components  # tied by default
    hunyuan = count_params(spec_from_config(tiny("hunyuan_v1_dense"), name="t"))
    assert hunyuan.components["attention"] == 4 * (ATTENTION + 2 * 16)  # + per-head q/k RMSNorm


# --- KV cache -------------------------------------------------------------------------------------------------


def test_command_r7b_kv_local_layers_cap_at_4096() -> None:
    spec = load_model("command-r7b")
    per_layer = 2 * 8 * 128 * BF16  # K and V, 8 KV heads of 128
    assert kv_bytes_per_token(spec) == 32 * per_layer
    # 24 local layers hold 4096 tokens, 8 global ones all 32768
    assert kv_cache_bytes(spec, tokens_per_seq=32_768) == (24 * 4096 + 8 * 32_768) * per_layer
    assert mean_kv_bytes_per_token(spec, tokens_per_seq=32_768) == (24 / 8 + 8) * per_layer


def test_olmo_3_kv_mha_with_local_layers() -> None:
    spec = load_model("olmo-3-7b")
    per_layer = 2 * 32 * 128 * BF16  # MHA: 32 KV heads of 128
    assert kv_bytes_per_token(spec) == 32 * per_layer == 524_288
    assert kv_cache_bytes(spec, tokens_per_seq=65_536, batch=2) == 2 * (24 * 4096 + 8 * 65_536) * per_layer


def test_smollm3_and_exaone4_kv() -> None:
    # SmolLM3: NoPE layers cache K and V like the others; no window
    smol = load_model("smollm3-3b")
    assert kv_cache_bytes(smol, tokens_per_seq=10_000) == 10_000 * 36 * 2 * 4 * 128 * BF16
    exaone = load_model("exaone-4.0-32b")  # 48 local (window 4096) + 16 global layers, 8 KV heads of 128
    per_layer = 2 * 8 * 128 * BF16
    assert kv_cache_bytes(exaone, tokens_per_seq=131_072) == (48 * 4096 + 16 * 131_072) * per_layer
