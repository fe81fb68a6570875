"""FLOP counts against published figures and closed-form formulas (citations in the data file / docstrings)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from suanli.core.flops import count_flops, six_n_d
from suanli.core.params import count_params
from suanli.spec.assumptions import AttentionSpan
from suanli.spec.hf import spec_from_config
from suanli.spec.layout import Recompute
from suanli.spec.resolve import load_model

DATA = tomllib.loads((Path(__file__).parent / "data" / "published_flops.toml").read_text())


@pytest.mark.parametrize("case", DATA["training_compute"], ids=lambda c: c["model"])
def test_training_compute(case: dict[str, Any]) -> None:
    spec = load_model(case["model"])
    per_token = count_flops(spec, seq=spec.max_position_embeddings).training / spec.max_position_embeddings
    tokens = case["tokens"]
    assert six_n_d(count_params(spec).total, tokens) == pytest.approx(case["value_flops"],
                                                                        rel=case["six_n_d_tolerance"])
    ratio = per_token * tokens / six_n_d(count_params(spec).total, tokens)
    assert case["exact_full_span_ratio_min"] <= ratio <= case["exact_full_span_ratio_max"]


def megatron_flops_per_iteration(batch: int, seq: int, layers: int, hidden: int, vocab: int, *,
                                 recompute: bool) -> float:
    """Narayanan et al. 2021 (arXiv:2104.04473) §5.1, eq. (3): F = 96·B·s·l·h²·(1 + s/6h + V/16lh) with full
    recomputation; without it the 96 becomes 72 and V/16lh becomes V/12lh. Assumes MHA, MLP width 4h,
    attention over all s×s pairs, logits for every position."""
    if recompute:
        return 96 * batch * seq * layers * hidden**2 * (1 + seq / (6 * hidden) + vocab / (16 * layers * hidden))
    return 72 * batch * seq * layers * hidden**2 * (1 + seq / (6 * hidden) + vocab / (12 * layers * hidden))


@pytest.mark.parametrize(("hidden", "layers", "heads", "seq", "vocab"),
                         [(12288, 96, 96, 2048, 51200), (6144, 48, 64, 2048, 51200), (20480, 105, 128, 2048, 51200)])
def test_megatron_closed_form(hidden: int, layers: int, heads: int, seq: int, vocab: int) -> None:
    """The Korthikanti et al. 2022 models (GPT-3 175B, 22B, 530B shapes), biases aside (they are not matmuls)."""
    spec = spec_from_config({"model_type": "gpt2", "n_embd": hidden, "n_layer": layers, "n_head": heads,
                             "n_positions": seq, "vocab_size": vocab}, name="megatron")
    flops = count_flops(spec, seq=seq, batch=4, recompute=Recompute.FULL)
    assert flops.training == pytest.approx(
        megatron_flops_per_iteration(4, seq, layers, hidden, vocab, recompute=False), rel=1e-12)
    assert flops.training_with_recompute == pytest.approx(
        megatron_flops_per_iteration(4, seq, layers, hidden, vocab, recompute=True), rel=1e-12)


def test_causal_span_halves_attention_scores() -> None:
    spec = load_model("gpt3-175b")
    full = count_flops(spec, seq=2048).components["attention_scores"]
    causal = count_flops(spec, seq=2048, span=AttentionSpan.CAUSAL).components["attention_scores"]
    assert causal / full == pytest.approx((2048 + 1) / (2 * 2048))
