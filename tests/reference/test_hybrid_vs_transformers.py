"""Hybrid families without a bundled checkpoint (Bamba, Granite 4.0-H, Falcon-H1; no complete published config.json
was reachable from here): their adapters against the transformers implementation on small synthetic configs that
exercise every block kind. Parameters equal ``model.parameters()`` exactly and FLOPs equal ``FlopCounterMode``
exactly, forward and backward, over one and two SSD chunks (24 and 40 tokens with chunks of 16)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.reference.hf_reference import hf_forward_flops, hf_param_breakdown

from suanli.core.flops import count_flops
from suanli.core.params import count_params
from suanli.spec.resolve import spec_from_config

SYNTHETIC: dict[str, dict[str, Any]] = {
    # attention at layer 1 only, Mamba-2 (8 heads of 8, 2 groups) elsewhere, SwiGLU in every block
    "bamba": dict(model_type="bamba", hidden_size=32, num_attention_heads=4, num_key_value_heads=2,
                  num_hidden_layers=3, attn_layer_indices=[1], mamba_n_heads=8, mamba_d_head=8, mamba_n_groups=2,
                  mamba_d_state=16, mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=16, intermediate_size=48,
                  vocab_size=64, tie_word_embeddings=False),
    # three Mamba layers, one attention layer, MoE (4 experts, top-2) plus a shared MLP in every block, NoPE
    "granitemoehybrid": dict(model_type="granitemoehybrid", hidden_size=64, num_attention_heads=4,
                             num_key_value_heads=2, num_hidden_layers=4,
                             layer_types=["mamba", "mamba", "mamba", "attention"], mamba_n_heads=8, mamba_d_head=16,
                             mamba_n_groups=2, mamba_d_state=16, mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=16,
                             num_local_experts=4, num_experts_per_tok=2, intermediate_size=32,
                             shared_intermediate_size=48, vocab_size=64, tie_word_embeddings=True,
                             position_embedding_type="nope"),
    # attention and Mamba-2 side by side in every block; gated norm and out_proj bias switched on
    "falcon_h1": dict(model_type="falcon_h1", hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                      head_dim=16, num_hidden_layers=2, mamba_n_heads=8, mamba_d_head=16, mamba_d_ssm=128,
                      mamba_n_groups=2, mamba_d_state=16, mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=16,
                      mamba_rms_norm=True, projectors_bias=True, mamba_proj_bias=False, intermediate_size=96,
                      vocab_size=64, tie_word_embeddings=False),
}


@pytest.mark.parametrize("model_type", list(SYNTHETIC))
def test_params_exact(model_type: str) -> None:
    config = SYNTHETIC[model_type]
    ours = count_params(spec_from_config(config, name=model_type))
    theirs = hf_param_breakdown(config)
    assert ours.total == sum(theirs.values())
    for component in ("embedding", "experts", "router", "lm_head"):
        assert ours.components.get(component, 0) == theirs.get(component, 0), component


@pytest.mark.parametrize("seq", [24, 40])
@pytest.mark.parametrize("model_type", list(SYNTHETIC))
def test_flops_exact(model_type: str, seq: int) -> None:
    config = SYNTHETIC[model_type]
    ours = count_flops(spec_from_config(config, name=model_type), seq=seq, batch=2)
    assert ours.forward == hf_forward_flops(config, batch=2, seq=seq, device="cpu")
    assert ours.training == hf_forward_flops(config, batch=2, seq=seq, device="cpu", backward=True)
