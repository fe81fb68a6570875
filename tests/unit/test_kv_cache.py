"""KV-cache bytes, derived by hand from the model shapes."""

from __future__ import annotations

from typing import Any

import pytest

from suanli.core.kv_cache import (
    default_kv_format,
    kv_bytes_per_token,
    kv_cache_bytes,
    kv_heads_per_rank,
    kv_vector_bits,
    mean_kv_bytes_per_token,
    parse_kv_format,
)
from suanli.errors import LayoutError, SpecError
from suanli.spec.engines import MlaCache
from suanli.spec.hf import spec_from_config
from suanli.spec.precision import parse_number_format
from suanli.spec.resolve import load_model


def test_llama_3_1_8b_bf16() -> None:
    # 2 (K and V) × 8 KV heads × 128 head_dim × 2 bytes × 32 layers
    assert kv_bytes_per_token(load_model("llama-3.1-8b")) == 2 * 8 * 128 * 2 * 32 == 131_072


def test_deepseek_v3_latent_and_decompressed() -> None:
    spec = load_model("deepseek-v3")
    # (kv_lora_rank 512 + qk_rope_head_dim 64) × 2 bytes × 61 layers, identical on every TP rank
    assert kv_bytes_per_token(spec) == (512 + 64) * 2 * 61 == 70_272
    assert kv_bytes_per_token(spec, tp=8) == 70_272
    # transformers: 128 heads × (K of 128 + 64, V of 128) × 2 bytes × 61 layers; heads split by TP
    decompressed = kv_bytes_per_token(spec, mla=MlaCache.DECOMPRESSED)
    assert decompressed == 128 * (192 + 128) * 2 * 61 == 4_997_120
    assert kv_bytes_per_token(spec, mla=MlaCache.DECOMPRESSED, tp=8) == decompressed / 8


def test_gemma_2_local_layers_hold_4096_tokens() -> None:
    spec = load_model("gemma-2-9b")  # 42 layers alternating local (window 4096) / global; 8 KV heads of 256
    per_layer = 2 * 8 * 256 * 2
    assert kv_bytes_per_token(spec) == 42 * per_layer
    assert kv_cache_bytes(spec, tokens_per_seq=4096) == 4096 * 42 * per_layer
    assert kv_cache_bytes(spec, tokens_per_seq=8192, batch=3) == 3 * (21 * 8192 + 21 * 4096) * per_layer
    assert mean_kv_bytes_per_token(spec, tokens_per_seq=8192) == (21 + 21 / 2) * per_layer


def test_mistral_v0_1_window_caps_every_layer() -> None:
    spec = load_model("mistral-7b-v0.1")
    assert kv_cache_bytes(spec, tokens_per_seq=10_000) == 32 * 4096 * 2 * 8 * 128 * 2


@pytest.mark.parametrize(("fmt", "bytes_per_vector"), [
    ("bf16", 128 * 2),
    ("fp8", 128),  # e4m3, one fp32 scale per layer: not per token
    ("int8", 128 + 4),  # one fp32 scale per token and head
    ("int4", (128 * 4 + 16 + 16) / 8),  # one group of 128: 16-bit scale + 16-bit zero
    ("int4-g64", (128 * 4 + 2 * 32) / 8),  # two groups along head_dim
    ("q8_0", (128 * 8 + 4 * 16) / 8),  # llama.cpp: four blocks of 32 with an fp16 scale each
    ("q4_0", (128 * 4 + 4 * 16) / 8),
])
def test_kv_dtypes(fmt: str, bytes_per_vector: float) -> None:
    spec = load_model("llama-3.1-8b")
    assert kv_bytes_per_token(spec, kv_format=parse_number_format(fmt)) == bytes_per_vector * 2 * 8 * 32


def test_group_never_spans_heads() -> None:
    int4 = parse_number_format("int4-g128")
    assert kv_vector_bits(int4, 64) == 64 * 4 + 32  # a 64-wide head still carries one whole scale + zero


def test_tp_splits_then_replicates_kv_heads() -> None:
    spec = load_model("llama-3.1-8b")  # 8 KV heads
    attention = spec.layers[0].attention
    assert [kv_heads_per_rank(attention, tp) for tp in (1, 2, 4, 8, 16, 32)] == [8, 4, 2, 1, 1, 1]
    assert kv_bytes_per_token(spec, tp=16) == kv_bytes_per_token(spec, tp=8) == 131_072 / 8
    with pytest.raises(LayoutError, match=r"num_key_value_heads \(8\) and tp \(3\)"):
        kv_bytes_per_token(spec, tp=3)


def test_mqa_is_replicated_on_every_rank(tiny_llama: dict[str, Any]) -> None:
    spec = spec_from_config({**tiny_llama, "num_key_value_heads": 1}, name="mqa")
    assert kv_bytes_per_token(spec, tp=4) == kv_bytes_per_token(spec) == 2 * 16 * 2 * 2


def test_paged_blocks_round_each_sequence_up(tiny_llama: dict[str, Any]) -> None:
    spec = spec_from_config(tiny_llama, name="tiny")
    per_token = 2 * 2 * 16 * 2 * 2  # K+V × 2 KV heads × 16 × 2 B × 2 layers
    assert kv_cache_bytes(spec, tokens_per_seq=17, batch=2, block_size=16) == 2 * 32 * per_token
    assert kv_cache_bytes(spec, tokens_per_seq=17, batch=2) == 2 * 17 * per_token


def test_parse_kv_format() -> None:
    spec = load_model("llama-3.1-8b")
    assert parse_kv_format(None, spec).key == "bf16" == parse_kv_format("auto", spec).key
    assert parse_kv_format("fp8", spec).key == "fp8_e4m3"
    assert default_kv_format(load_model("gpt2")).key == "bf16"  # fp32 checkpoints are served in bf16
    with pytest.raises(SpecError, match="weight-only"):
        parse_kv_format("gptq", spec)
    with pytest.raises(SpecError, match="weight-only"):
        kv_bytes_per_token(spec, kv_format=parse_number_format("q4_k_m"))
