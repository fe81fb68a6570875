"""The Quantity type records formulas without changing values."""

from __future__ import annotations

from suanli.core.params import attention_params
from suanli.quantity import Quantity, plain, traced
from suanli.spec.model import Attention


def test_arithmetic_matches_plain_numbers() -> None:
    a, b = Quantity.input(3, "a"), Quantity.input(4, "b")
    assert ((a + b) * 2 - a / b).value == (3 + 4) * 2 - 3 / 4


def test_explain_shows_names_numbers_and_source() -> None:
    h, v = Quantity.input(4096, "hidden_size"), Quantity.input(128256, "vocab_size")
    emb = (v * h).named("embedding_params", "params", source="HF embed_tokens")
    assert emb.explain() == ("embedding_params = vocab_size × hidden_size = 128,256 × 4,096 "
                             "= 525,336,576 params  [HF embed_tokens]")


def test_parentheses_follow_precedence() -> None:
    a, b, c = (Quantity.input(n, name) for n, name in ((1, "a"), (2, "b"), (3, "c")))
    assert ((a + b) * c).formula() == "(a + b) × c"
    assert (a - (b - c)).formula() == "a − (b − c)"
    assert (a * b + c).formula() == "a × b + c"


def test_same_formula_traced_and_plain() -> None:
    attention = Attention(num_heads=8, num_kv_heads=2, head_dim=64, v_head_dim=64, qkv_bias=True)
    assert attention_params(attention, 512, traced).value == attention_params(attention, 512, plain)
    assert attention_params(attention, 512, traced).leaves()[0].name == "hidden_size"
