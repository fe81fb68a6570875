"""Activation bytes derived by hand: Korthikanti et al. 2022's closed forms (Table 2) for the MEGATRON
flavour, and op-by-op counts of tiny transformers models for the HUGGINGFACE flavour."""

from __future__ import annotations

from typing import Any

import pytest

from suanli.core.activations import (
    ActivationSetup,
    Flavour,
    activation_bytes,
    layer_activation_bytes,
    stage_activation_bytes,
)
from suanli.errors import SpecError
from suanli.quantity import Quantity, plain, traced
from suanli.spec.hf import spec_from_config
from suanli.spec.layout import AttentionImpl, Layout, Recompute
from suanli.spec.model import ModelSpec
from suanli.spec.training import PrecisionMode, TrainingJob

S, B, H, A = 16, 2, 64, 4  # sequence, micro-batch, hidden, heads of a GPT layer
SBH = S * B * H
SCORES = 5 * A * S * S * B  # Korthikanti's 5as²b: fp16 softmax output, 1-byte dropout mask, fp16 dropout output


def gpt(layers: int = 1) -> ModelSpec:
    return spec_from_config({"model_type": "gpt2", "n_embd": H, "n_layer": layers, "n_head": A,
                             "n_positions": 64, "vocab_size": 96}, name="gpt")


def megatron_layer(**layout: Any) -> float:
    layout = {"attention": AttentionImpl.EAGER, **layout}
    breakdown = activation_bytes(gpt(), seq=S, micro_batch=B, flavour=Flavour.MEGATRON, act_bytes=2, **layout)
    return breakdown.per_layer_bytes[0]


# --- Korthikanti et al. 2022, Table 2 -----------------------------------------------------------------------


def test_megatron_layer_is_34sbh_plus_5as2b() -> None:
    assert megatron_layer() == 34 * SBH + SCORES


@pytest.mark.parametrize("t", [2, 4])
def test_tensor_parallel_replicates_10sbh(t: int) -> None:
    assert megatron_layer(tp=t) == pytest.approx(SBH * (10 + 24 / t) + SCORES / t)


@pytest.mark.parametrize("t", [2, 4])
def test_sequence_parallel_shards_everything(t: int) -> None:
    assert megatron_layer(tp=t, sp=True) == pytest.approx((34 * SBH + SCORES) / t)


def test_selective_recompute_drops_the_5as2b_term() -> None:
    assert megatron_layer(tp=4, recompute=Recompute.SELECTIVE) == pytest.approx(SBH * (10 + 24 / 4))
    assert megatron_layer(tp=4, sp=True, recompute=Recompute.SELECTIVE) == pytest.approx(34 * SBH / 4)


def test_full_recompute_keeps_the_block_input() -> None:
    assert megatron_layer(tp=4, recompute=Recompute.FULL) == 2 * SBH
    assert megatron_layer(tp=4, sp=True, recompute=Recompute.FULL) == 2 * SBH / 4  # the sharded input


def test_no_dropout_no_masks() -> None:
    # softmax output only (2as²b); no residual-dropout masks (2sbh·1 byte)
    assert megatron_layer(hidden_dropout=0.0, attention_dropout=0.0) == 32 * SBH + 2 * A * S * S * B


def test_flash_attention_keeps_row_statistics_not_scores() -> None:
    assert megatron_layer(attention=AttentionImpl.FLASH) == 34 * SBH + 4 * A * S * B  # fp32 logsumexp


def test_megatron_head_is_norm_input_head_input_and_fp32_logits() -> None:
    """Korthikanti §4.3: 4sbh/t·(1 + v/h) with sequence parallelism; dropout sbh/t at the embedding."""
    t = 4
    breakdown = activation_bytes(gpt(), seq=S, micro_batch=B, flavour=Flavour.MEGATRON, tp=t, sp=True)
    assert breakdown.head_bytes == pytest.approx(4 * SBH / t * (1 + 96 / H))
    assert breakdown.embedding_bytes == pytest.approx(SBH / t)


# --- Hugging Face transformers, op by op --------------------------------------------------------------------


def hf(config: dict[str, Any], **kwargs: Any) -> Any:
    return activation_bytes(spec_from_config(config, name="t"), flavour=Flavour.HUGGINGFACE, **kwargs)


def test_tiny_llama_sdpa_bf16_by_hand(tiny_llama: dict[str, Any]) -> None:
    t, h, i = 3 * 8, 64, 128  # tokens; 4 heads of 16, 2 KV heads
    norm = 4 * h + 4 + 2 * h  # fp32 input copy, fp32 1/rms, bf16 normalised
    layer = (2 * t * norm + t * h * 2  # 2 RMSNorms, the q/k/v input
             + t * 2 * (64 + 32 + 32)  # Q; K and V at the KV heads' width
             + t * 4 * 4  # fp32 logsumexp per head and row
             + t * 64 * 2 + t * h * 2  # o_proj input, MLP input
             + t * i * 2 * 4)  # gate out, SiLU out, up out, product
    breakdown = hf(tiny_llama, seq=8, micro_batch=3, act_bytes=2, attention=AttentionImpl.SDPA)
    assert breakdown.per_layer_bytes == (layer, layer)
    assert breakdown.embedding_bytes == t * 8 + 2 * 8 * 16 * 2  # int64 ids, cos and sin tables
    assert breakdown.head_bytes == t * norm + t * h * 2 + t * 100 * 4 + t * 8  # norm, head input, fp32 logp, labels


def test_eager_repeats_kv_and_keeps_fp32_softmax_and_its_copy(tiny_llama: dict[str, Any]) -> None:
    t = 3 * 8
    sdpa = hf(tiny_llama, seq=8, micro_batch=3, act_bytes=2, attention=AttentionImpl.SDPA)
    eager = hf(tiny_llama, seq=8, micro_batch=3, act_bytes=2, attention=AttentionImpl.EAGER)
    extra_kv = t * 2 * 2 * 32  # K and V repeated from 2 to 4 heads
    scores = 3 * 4 * 8 * 8 * (4 + 2)  # fp32 softmax + bf16 copy, S×S per head
    assert eager.per_layer_bytes[0] - sdpa.per_layer_bytes[0] == extra_kv + scores - t * 4 * 4
    fp32 = hf(tiny_llama, seq=8, micro_batch=3, act_bytes=4, attention=AttentionImpl.EAGER)
    assert fp32.components["attention_scores"] == 2 * 3 * 4 * 8 * 8 * 4  # the fp32 softmax is the P·V input


def test_gpt2_plain_mlp_with_python_gelu_and_dropout() -> None:
    config = {"model_type": "gpt2", "n_embd": 32, "n_layer": 1, "n_head": 2, "n_positions": 16, "vocab_size": 40}
    b = hf(config, seq=4, micro_batch=1, act_bytes=2, attention=AttentionImpl.EAGER, hidden_dropout=0.1,
           attention_dropout=0.1)
    assert b.components["mlp"] == 4 * 128 * 2 * 5  # fc1 out, 3 gelu_new intermediates, gelu out
    assert b.components["attention_scores"] == 2 * 4 * 4 * (2 + 1 + 2)  # softmax in bf16, mask, dropout out
    assert b.components["dropout_masks"] == 2 * 4 * 32
    assert b.components["embedding_dropout_mask"] == 4 * 32
    assert b.components["position_ids"] == 4 * 8


def test_moe_router_and_top_k_slots() -> None:
    config = {"model_type": "mixtral", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
              "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 50, "num_local_experts": 8,
              "num_experts_per_tok": 2, "max_position_embeddings": 64}
    b = hf(config, seq=4, micro_batch=1, act_bytes=2)
    assert b.components["router"] == 4 * (8 * 4 + 2 * (8 + 4))  # fp32 scores, int64 + fp32 top-k
    assert b.components["experts"] == 4 * 2 * (2 * 32 * 2 + 4) + 4 * 2 * 64 * 2 * 4


def test_context_parallel_shards_queries_not_keys(tiny_llama: dict[str, Any]) -> None:
    one = hf(tiny_llama, seq=16, micro_batch=1, attention=AttentionImpl.EAGER)
    two = hf(tiny_llama, seq=16, micro_batch=1, attention=AttentionImpl.EAGER, cp=2)
    assert two.components["attention_scores"] == one.components["attention_scores"] / 2
    assert two.components["mlp"] == one.components["mlp"] / 2


# --- totals, transients, layout glue, validation, tracing ---------------------------------------------------


def test_components_add_up_and_transients_are_separate(tiny_llama: dict[str, Any]) -> None:
    b = hf(tiny_llama, seq=8, micro_batch=2, recompute=Recompute.FULL)
    assert sum(b.components.values()) == pytest.approx(b.total_bytes)
    none = hf(tiny_llama, seq=8, micro_batch=2)
    assert b.transient_bytes["recompute"] == none.per_layer_bytes[0]
    assert b.transient_bytes["logits"] == 2 * 8 * 100 * (2 + 4)
    assert b.peak_extra_bytes == max(b.transient_bytes.values())
    assert b.per_layer_bytes[0] == 2 * 8 * 64 * 2


def test_stage_sums_its_layers_and_ends(tiny_llama: dict[str, Any]) -> None:
    spec = spec_from_config(tiny_llama, name="t")
    job, layout = TrainingJob(seq=8, precision=PrecisionMode.MIXED_BF16), Layout(micro_batch=2)
    whole = activation_bytes(spec, seq=8, micro_batch=2, flavour=Flavour.MEGATRON)
    first = stage_activation_bytes(spec, job, layout, (0,), first=True, last=False)
    last = stage_activation_bytes(spec, job, layout, (1,), first=False, last=True)
    assert first + last == pytest.approx(whole.total_bytes)
    assert first == whole.per_layer_bytes[0] + whole.embedding_bytes


@pytest.mark.parametrize(("field", "value", "message"), [
    ("act_bytes", 0, "act_bytes must be positive, got 0"),
    ("hidden_dropout", 1.0, "hidden_dropout must be in [0, 1), got 1.0"),
    ("cp", 0, "cp must be at least 1, got 0"),
])
def test_setup_errors_name_the_number(field: str, value: float, message: str) -> None:
    with pytest.raises(SpecError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        ActivationSetup(**{"seq": 8, "micro_batch": 1, "flavour": Flavour.HUGGINGFACE, field: value})


def test_traced_formula_matches_plain(tiny_llama: dict[str, Any]) -> None:
    spec = spec_from_config(tiny_llama, name="t")
    setup = ActivationSetup(seq=8, micro_batch=2, flavour=Flavour.HUGGINGFACE, attention=AttentionImpl.EAGER)
    fast = layer_activation_bytes(spec.layers[0], spec.hidden_size, spec.model_type, setup, plain)
    explained = layer_activation_bytes(spec.layers[0], spec.hidden_size, spec.model_type, setup, traced)
    assert {k: float(v) for k, v in explained.items()} == fast
    scores = explained["attention_scores"]
    assert isinstance(scores, Quantity)
    assert {leaf.name for leaf in scores.leaves()} >= {"micro_batch", "seq", "num_heads", "fp32_bytes"}
