"""Kimi Linear against transformers' ``KimiLinearForCausalLM`` beyond the bundled checkpoint (which the
catalog-wide tests already cover): a small config in transformers 5's spelling that switches on what the release
leaves off (a query latent, attention biases, a dense MLP after a MoE layer, two shared experts). Parameters equal
``model.parameters()``; FLOPs equal ``FlopCounterMode`` forward and backward over one chunk of the chunked KDA
(24 tokens, padded to 64) and over two (72 tokens)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.reference.hf_reference import hf_forward_flops, hf_param_breakdown

from suanli.core.flops import count_flops
from suanli.core.params import count_params
from suanli.spec.resolve import spec_from_config

CONFIG: dict[str, Any] = dict(
    model_type="kimi_linear", hidden_size=64, num_hidden_layers=4, vocab_size=128, tie_word_embeddings=False,
    layer_types=["linear_attention", "full_attention", "linear_attention", "linear_attention"],
    mlp_layer_types=["sparse", "dense", "sparse", "dense"], linear_num_heads=2, linear_head_dim=16,
    linear_conv_kernel_dim=3, num_attention_heads=4, num_key_value_heads=4, q_lora_rank=24, kv_lora_rank=16,
    qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8, attention_bias=True, intermediate_size=96,
    moe_intermediate_size=16, num_local_experts=8, num_experts_per_tok=2, n_shared_experts=2,
    pad_token_id=0, bos_token_id=1, eos_token_id=2)


def test_params_exact() -> None:
    ours = count_params(spec_from_config(CONFIG, name="tiny-kimi"))
    theirs = hf_param_breakdown(CONFIG)
    assert ours.total == sum(theirs.values())
    for component in ("embedding", "mlp", "experts", "shared_experts", "router", "lm_head"):
        assert ours.components.get(component, 0) == theirs.get(component, 0), component


@pytest.mark.parametrize("seq", [24, 72])
def test_flops_exact(seq: int) -> None:
    ours = count_flops(spec_from_config(CONFIG, name="tiny-kimi"), seq=seq, batch=2)
    assert ours.forward == hf_forward_flops(CONFIG, batch=2, seq=seq, device="cpu")
    assert ours.training == hf_forward_flops(CONFIG, batch=2, seq=seq, device="cpu", backward=True)
