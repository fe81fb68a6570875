"""Activation bytes derived by hand: Korthikanti et al. 2022's closed forms (Table 2) for the MEGATRON
flavour, and op-by-op counts of tiny transformers models for the HUGGINGFACE flavour."""

from __future__ import annotations

from typing import Any

import pytest

from suanli.core.activation_setup import LossImpl
from suanli.core.activations import (
    ActivationSetup,
    Flavour,
    activation_bytes,
    job_setup,
    layer_activation_bytes,
    stage_activation_bytes,
    stage_workspace_bytes,
)
from suanli.core.activations_head import FRAMEWORK_LOSS, loss_workspace_per_element
from suanli.errors import SpecError
from suanli.quantity import Quantity, plain, traced
from suanli.spec.hf import spec_from_config
from suanli.spec.layout import AttentionImpl, Layout, Recompute
from suanli.spec.model import ModelSpec
from suanli.spec.training import Framework, PrecisionMode, TrainingJob

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


def test_tiny_llama_under_autocast_by_hand(tiny_llama: dict[str, Any]) -> None:
    """torch.autocast on fp32 weights (AMP_BF16): fp32 norms and RoPE tables, a bf16 copy of every linear's fp32
    input (q, k, v, gate, up each make their own; o_proj and down_proj read bf16) and of every weight."""
    t, h, i = 3 * 8, 64, 128
    norm = 4 * h + 4 + 4 * h  # fp32 input, fp32 1/rms, fp32 normalised
    weights = (64 * 64 + 2 * 64 * 32 + 64 * 64 + 3 * h * i) * 2  # q, k, v, o, gate, up, down in bf16
    layer = (2 * t * norm + 3 * t * h * 2  # 2 RMSNorms, the q/k/v input copies
             + t * 2 * (64 + 32 + 32) + t * 4 * 4 + t * 64 * 2  # Q, K, V; fp32 logsumexp; o_proj input
             + 2 * t * h * 2 + t * i * 2 * 4  # the gate/up input copies; gate out, SiLU out, up out, product
             + weights)
    breakdown = hf(tiny_llama, seq=8, micro_batch=3, act_bytes=2, attention=AttentionImpl.SDPA, autocast=True)
    assert breakdown.per_layer_bytes == (layer, layer)
    assert breakdown.embedding_bytes == t * 8 + 2 * 8 * 16 * 4  # int64 ids, fp32 cos and sin tables
    # fp32 final norm, the head's bf16 input and weight copies, fp32 log-probabilities, labels
    assert breakdown.head_bytes == t * norm + t * h * 2 + 100 * h * 2 + t * 100 * 4 + t * 8
    full = hf(tiny_llama, seq=8, micro_batch=3, act_bytes=2, attention=AttentionImpl.SDPA, autocast=True,
              recompute=Recompute.FULL)
    assert full.per_layer_bytes == (t * h * 4,) * 2  # the fp32 residual stream at each block's input
    assert full.transient_bytes["autocast_cache"] == 2 * weights  # the cast cache, alive until the forward ends
    assert full.peak_extra_bytes == t * 100 * 8 + 2 * weights  # beside the loss's buffers (8 bytes per logit)


def test_autocast_needs_huggingface_and_a_two_byte_dtype() -> None:
    with pytest.raises(SpecError, match="autocast is modelled for the huggingface flavour only"):
        ActivationSetup(seq=8, micro_batch=1, flavour=Flavour.MEGATRON, act_bytes=2, autocast=True)
    with pytest.raises(SpecError, match="autocast needs a 2-byte compute dtype"):
        ActivationSetup(seq=8, micro_batch=1, flavour=Flavour.HUGGINGFACE, act_bytes=4, autocast=True)


def test_autocast_moe_experts_run_in_fp32() -> None:
    """grouped_mm is not autocast: transformers casts the dispatched input to the fp32 expert weights, so the
    experts keep fp32 tensors and no weight copies; the router's linear is autocast (bf16 input and weight)."""
    config = {"model_type": "mixtral", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
              "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 50, "num_local_experts": 8,
              "num_experts_per_tok": 2, "max_position_embeddings": 64}
    b = hf(config, seq=4, micro_batch=1, act_bytes=2, autocast=True)
    slot = 2 * 32 * 4 + 4 + 3 * 8  # fp32 input copy and expert output, fp32 weight, grouped_mm's 3 int64 indices
    assert b.components["experts"] == 4 * 2 * slot + 4 * 2 * 64 * 4 * 4 + 8 * 4  # + fp32 SwiGLU, int32 offsets
    assert b.components["router"] == 4 * (8 * 4 + 2 * 8 + (2 + 1) * 4)  # as in bf16: fp32 softmax, renormalised
    attention = 4 * 32 * 32  # q, k, v, o
    assert b.components["autocast_weight_copies"] == (attention + 32 * 8) * 2 + 50 * 32 * 2  # + router, + head


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
    assert b.components["router"] == 4 * (8 * 4 + 2 * 8 + (2 + 1) * 4)  # fp32 probs, int64 top-k, renormalisation
    slot = 2 * 32 * 2 + 4 + 3 * 8  # input copy and expert output (bf16), fp32 weight, grouped_mm's 3 int64 indices
    assert b.components["experts"] == 4 * 2 * slot + 4 * 2 * 64 * 2 * 4 + 8 * 4  # + SwiGLU per slot, int32 offsets


def test_megatron_moe_is_unchanged() -> None:
    config = {"model_type": "mixtral", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
              "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 50, "num_local_experts": 8,
              "num_experts_per_tok": 2, "max_position_embeddings": 64}
    b = activation_bytes(spec_from_config(config, name="t"), seq=4, micro_batch=1, flavour=Flavour.MEGATRON)
    assert b.components["router"] == 4 * (8 * 4 + 2 * (8 + 4))
    assert b.components["experts"] == 4 * 2 * (2 * 32 * 2 + 4) + 4 * 2 * 64 * 2 * 3


def test_deepseek_router_runs_in_fp32() -> None:
    """DeepseekV3TopkRouter: fp32 copies of its input (per token) and weight (per layer) in a bf16 model."""
    config = {"model_type": "deepseek_v3", "hidden_size": 32, "intermediate_size": 64, "moe_intermediate_size": 16,
              "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 2, "n_routed_experts": 8,
              "num_experts_per_tok": 2, "n_shared_experts": 1, "first_k_dense_replace": 0, "kv_lora_rank": 16,
              "q_lora_rank": 24, "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8, "vocab_size": 50,
              "max_position_embeddings": 64}
    bf16 = hf(config, seq=4, micro_batch=1, act_bytes=2)
    assert bf16.components["router"] == 4 * (8 * 4 + 2 * 8 + 32 * 4 + 3 * 4) + 8 * 32 * 4
    fp32 = hf(config, seq=4, micro_batch=1, act_bytes=4)  # the copies are no-ops
    assert fp32.components["router"] == 4 * (8 * 4 + 2 * 8 + 3 * 4)


def test_gemma_norms_keep_fp32_outputs_and_weight_copies() -> None:
    config = {"model_type": "gemma", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
              "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 50,
              "max_position_embeddings": 64}
    b = hf(config, seq=4, micro_batch=1, act_bytes=2)
    norm = 4 * (4 * 32 + 4 * 32 + 4)  # fp32 input copy, fp32 normalised, fp32 1/rms; 4 tokens
    assert b.components["norms"] == 3 * norm + 3 * 32 * 4  # 2 block norms + final, each with its 1 + w copy


def test_gemma2_soft_caps_keep_tanh_outputs() -> None:
    config = {"model_type": "gemma2", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 50,
              "max_position_embeddings": 64, "sliding_window": 8}
    b = hf(config, seq=4, micro_batch=1, act_bytes=2, attention=AttentionImpl.EAGER)
    assert b.components["attention_scores"] == 2 * 2 * 4 * 4 * (4 + 2 + 2)  # fp32 softmax, bf16 copy, tanh
    assert b.components["logit_softcap"] == 4 * 50 * 2


def test_fused_qkv_pins_its_output_through_v() -> None:
    """Phi3: V is a slice of qkv_proj's output; RoPE makes new, head-major Q and K, whose flash output the
    model copies for o_proj. Eager copies V unless the batch is 1 and nothing repeats it."""
    config = {"model_type": "phi3", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 50, "max_position_embeddings": 64}
    t = 2 * 8
    sdpa = hf(config, seq=8, micro_batch=2, act_bytes=2, attention=AttentionImpl.SDPA)
    assert sdpa.components["qkv"] == t * 2 * (64 + 32 + (64 + 32 + 32))  # Q, K and the whole fused output
    assert sdpa.components["attention_output"] == 2 * t * 64 * 2  # the kernel's output and o_proj's copy
    eager = hf(config, seq=8, micro_batch=2, act_bytes=2, attention=AttentionImpl.EAGER)
    assert eager.components["qkv"] == t * 2 * (64 + 64 + 64)  # K and V repeated to 4 heads
    mha = hf({**config, "num_key_value_heads": 4}, seq=8, micro_batch=1, act_bytes=2, attention=AttentionImpl.EAGER)
    assert mha.components["qkv"] == 8 * 2 * (64 + 64 + 192)  # batch 1: matmul keeps V as a view


def test_sliding_window_gives_sdpa_a_mask_once_it_bites() -> None:
    config = {"model_type": "mistral", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 50, "max_position_embeddings": 64,
              "sliding_window": 8}
    short = hf(config, seq=4, micro_batch=2, act_bytes=2, attention=AttentionImpl.SDPA)
    assert "attention_mask" not in short.components
    assert short.components["qkv"] == 8 * 2 * (64 + 32 + 32)  # GQA K/V read directly
    long = hf(config, seq=8, micro_batch=2, act_bytes=2, attention=AttentionImpl.SDPA)
    assert long.components["attention_mask"] == 16 * 8 * 2  # b×1×S×S in bf16, kept by the kernel
    assert long.components["qkv"] == 16 * 2 * (64 + 64 + 64)  # with a mask, repeat_kv
    flash = hf(config, seq=8, micro_batch=2, act_bytes=2, attention=AttentionImpl.FLASH)
    assert "attention_mask" not in flash.components


def test_falcon_multi_query_sdpa_falls_back_to_math() -> None:
    """One K/V head and no enable_gqa: neither fused kernel takes it, so SDPA keeps fp32 q, k, v and scores."""
    config = {"model_type": "falcon", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 1,
              "vocab_size": 50, "multi_query": True, "parallel_attn": True, "new_decoder_architecture": False}
    b2 = hf(config, seq=8, micro_batch=2, act_bytes=2, attention=AttentionImpl.SDPA)
    assert b2.components["attention_scores"] == 16 * 4 * 8 * 4
    assert b2.components["qkv"] == 16 * (64 + 64 + 64) * 4  # K and V broadcast to every head by matmul
    b1 = hf(config, seq=8, micro_batch=1, act_bytes=2, attention=AttentionImpl.SDPA)
    assert b1.components["qkv"] == 8 * (64 + 16 + 16) * 4  # batch 1: the broadcast stays a view


def test_hidden_dropout_sits_where_the_family_puts_it() -> None:
    opt = {"model_type": "opt", "hidden_size": 32, "ffn_dim": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
           "vocab_size": 50, "max_position_embeddings": 64}
    b = hf(opt, seq=4, micro_batch=1, act_bytes=2, hidden_dropout=0.1)
    assert b.components["dropout_masks"] == 2 * 4 * 32  # after attention and after the MLP
    assert "embedding_dropout_mask" not in b.components
    falcon = {"model_type": "falcon", "hidden_size": 64, "num_attention_heads": 4, "num_hidden_layers": 1,
              "vocab_size": 50, "multi_query": True, "parallel_attn": True}
    assert hf(falcon, seq=4, micro_batch=1, hidden_dropout=0.1).components["dropout_masks"] == 4 * 64  # one
    llama = hf({"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                "num_attention_heads": 2, "vocab_size": 50}, seq=4, micro_batch=1, hidden_dropout=0.1)
    assert "dropout_masks" not in llama.components  # transformers' Llama has no hidden dropout


def test_bert_pooler_keeps_the_last_hidden_state() -> None:
    config = {"model_type": "bert", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
              "num_attention_heads": 2, "vocab_size": 50, "max_position_embeddings": 64}
    b = hf(config, seq=4, micro_batch=2, act_bytes=2)
    assert b.components["pooler"] == (8 + 2) * 32 * 2  # the [CLS] slice is a view of all 8 tokens; tanh output


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
    assert b.transient_bytes["logits"] == 2 * 8 * 100 * 8  # two fp32 gradients beside the saved log-probabilities
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


# --- the loss's workspace, per implementation ----------------------------------------------------------------


@pytest.mark.parametrize(("impl", "act", "extra"), [
    # beside the 4 saved bytes per token·vocab: transformers' backward holds two fp32 gradients (peak 12, 14 with
    # the caller's bf16 logits), its forward the logits and their fp32 copy (10); the measured CPU replays give
    # 12.09 / 14.09 (bf16) and 12.16 / 16.16 (fp32, where .float() makes no copy)
    (LossImpl.TRANSFORMERS, 2.0, 8.0), (LossImpl.TRANSFORMERS_KEEP_LOGITS, 2.0, 10.0),
    (LossImpl.TRANSFORMERS, 4.0, 8.0), (LossImpl.TRANSFORMERS_KEEP_LOGITS, 4.0, 12.0),
    # torchtune: all bf16 logits until the loss returns, one chunk of 8 upcast (6.5; replay 6.59), fp32 8 (8.16)
    (LossImpl.CHUNKED, 2.0, 2.5), (LossImpl.CHUNKED, 4.0, 4.0),
    # Megatron: the bf16 logits (forward) or gradient (backward) beside the fp32 softmax made in place
    (LossImpl.VOCAB_PARALLEL, 2.0, 2.0), (LossImpl.VOCAB_PARALLEL, 4.0, 0.0),
])
def test_loss_workspace_per_token_and_vocab_entry(impl: LossImpl, act: float, extra: float) -> None:
    assert loss_workspace_per_element(impl, act) == extra


def test_framework_picks_the_loss(tiny_llama: dict[str, Any]) -> None:
    assert FRAMEWORK_LOSS[Framework.HF] is LossImpl.TRANSFORMERS
    assert FRAMEWORK_LOSS[Framework.MEGATRON] is LossImpl.VOCAB_PARALLEL
    spec = spec_from_config(tiny_llama, name="t")
    job, layout = TrainingJob(seq=8, framework=Framework.MEGATRON), Layout(micro_batch=2, tp=2)
    assert job_setup(spec, job, layout, flavour=Flavour.MEGATRON).loss_impl is LossImpl.VOCAB_PARALLEL
    megatron = stage_workspace_bytes(spec, job, layout, last=True, flavour=Flavour.MEGATRON)
    assert megatron == 2 * 8 * 100 / 2 * 2  # this rank's vocab slice, the bf16 logits beside the fp32 softmax
    hf_job, hf_ops = TrainingJob(seq=8, framework=Framework.FSDP), Flavour.HUGGINGFACE
    assert job_setup(spec, hf_job, Layout(micro_batch=2), flavour=hf_ops).loss_impl is LossImpl.TRANSFORMERS
    assert stage_workspace_bytes(spec, hf_job, Layout(micro_batch=2), last=False, flavour=Flavour.HUGGINGFACE) == 0


def test_chunked_loss_keeps_the_same_probabilities(tiny_llama: dict[str, Any]) -> None:
    whole = hf(tiny_llama, seq=8, micro_batch=2, act_bytes=2)
    chunked = hf(tiny_llama, seq=8, micro_batch=2, act_bytes=2, loss=LossImpl.CHUNKED)
    assert chunked.total_bytes == whole.total_bytes
    assert chunked.transient_bytes["logits"] == 2 * 8 * 100 * 2.5
