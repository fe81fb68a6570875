"""FLOP counts of tiny models, derived by hand."""

from __future__ import annotations

from typing import Any

import pytest

from suanli.core.flops import attended_pairs, count_flops, six_n_d
from suanli.core.params import count_params
from suanli.errors import SpecError
from suanli.spec.assumptions import AttentionSpan
from suanli.spec.hf import spec_from_config
from suanli.spec.layout import Recompute


def test_tiny_llama_forward_by_hand(tiny_llama: dict[str, Any]) -> None:
    s, h, layers = 8, 64, 2
    projections = 2 * s * (h * 64 + 2 * h * 32 + 64 * h)  # q, k, v, o weights × 2 FLOPs
    scores = 2 * 4 * (16 + 16) * s * s  # QKᵀ and PV for 4 heads of 16 over S×S
    mlp = 2 * s * 3 * h * 128
    head = 2 * s * h * 100
    flops = count_flops(spec_from_config(tiny_llama, name="t"), seq=s, batch=3)
    assert flops.forward == 3 * (layers * (projections + scores + mlp) + head)
    assert flops.backward == 2 * flops.forward
    assert flops.training == 3 * flops.forward
    assert flops.recompute == 0


def test_recompute_adds_block_forward(tiny_llama: dict[str, Any]) -> None:
    spec = spec_from_config(tiny_llama, name="t")
    none = count_flops(spec, seq=8)
    full = count_flops(spec, seq=8, recompute=Recompute.FULL)
    selective = count_flops(spec, seq=8, recompute=Recompute.SELECTIVE)
    assert full.recompute == none.forward - none.components["lm_head"]
    assert selective.recompute == none.components["attention_scores"]
    assert full.training == none.training  # model FLOPs do not include recompute


def test_causal_and_window_pairs() -> None:
    assert attended_pairs(4, None, AttentionSpan.FULL) == 16
    assert attended_pairs(4, None, AttentionSpan.CAUSAL) == 1 + 2 + 3 + 4
    assert attended_pairs(6, 2, AttentionSpan.CAUSAL) == 1 + 2 + 2 + 2 + 2 + 2
    assert attended_pairs(6, 2, AttentionSpan.FULL) == 36  # eager attention computes then masks


def test_moe_counts_top_k_experts() -> None:
    config = {"model_type": "mixtral", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
              "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 50, "num_local_experts": 8,
              "num_experts_per_tok": 2, "max_position_embeddings": 64}
    flops = count_flops(spec_from_config(config, name="m"), seq=4)
    assert flops.components["experts"] == 4 * 2 * 2 * 3 * 32 * 64
    assert flops.components["router"] == 4 * 2 * 32 * 8


def test_dense_training_is_close_to_six_n_d(tiny_llama: dict[str, Any]) -> None:
    # for a wide model with a short sequence, attention is small and exact ≈ 6·N·D
    wide = {**tiny_llama, "hidden_size": 2048, "intermediate_size": 8192, "num_attention_heads": 16,
            "num_key_value_heads": 16, "vocab_size": 32000}
    spec = spec_from_config(wide, name="w")
    flops = count_flops(spec, seq=128)
    n = count_params(spec).total - count_params(spec).embedding  # the embedding lookup is not a matmul
    assert flops.training == pytest.approx(six_n_d(n, 128), rel=0.02)


@pytest.mark.parametrize(("seq", "batch"), [(0, 1), (8, 0), (-1, 2)])
def test_non_positive_sizes_rejected(tiny_llama: dict[str, Any], seq: int, batch: int) -> None:
    with pytest.raises(SpecError, match="must be positive"):
        count_flops(spec_from_config(tiny_llama, name="t"), seq=seq, batch=batch)
