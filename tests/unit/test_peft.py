"""Trainable parameters of fine-tuning methods, derived by hand from the module shapes (and published figures)."""

from __future__ import annotations

from typing import Any

import pytest

from suanli.core.activation_setup import ActivationBreakdown, Flavour
from suanli.core.activations import job_setup, model_activations
from suanli.core.activations_peft import peft_activations
from suanli.core.params import count_params
from suanli.core.peft import (
    IA3_DEFAULTS,
    PeftParams,
    model_linears,
    prefix_params,
    trainable_params,
)
from suanli.errors import SpecError
from suanli.spec.hf import spec_from_config
from suanli.spec.layout import AttentionImpl, Layout, Recompute
from suanli.spec.model import ModelSpec
from suanli.spec.precision import parse_number_format
from suanli.spec.resolve import load_model
from suanli.spec.training import Method, PeftConfig, PrecisionMode, TrainingJob

ATTENTION = ("q", "k", "v", "o")


def params(spec: ModelSpec, method: Method, **knobs: Any) -> PeftParams:
    return trainable_params(spec, TrainingJob(seq=512, method=method, peft=PeftConfig(**knobs)))


@pytest.fixture(scope="module")
def llama31_8b() -> ModelSpec:
    """32 layers, hidden 4096, 32 query heads and 8 KV heads of 128 (KV width 1024), SwiGLU 14336."""
    return load_model("llama-3.1-8b")


def test_lora_r16_attention_of_llama31_8b(llama31_8b: ModelSpec) -> None:
    # per layer: q 16·(4096+4096), k and v 16·(4096+1024) each, o 16·(4096+4096)
    per_layer = 16 * (4096 + 4096) + 2 * 16 * (4096 + 1024) + 16 * (4096 + 4096)
    assert per_layer == 425_984
    p = params(llama31_8b, Method.LORA, rank=16, target_modules=ATTENTION)
    assert p.trainable == 32 * per_layer == 13_631_488
    assert p.trainable_by_component == {"attention": p.trainable}
    assert p.frozen == count_params(llama31_8b).total
    assert p.adapted_linears == 32 * 4


def test_qlora_llama2_7b_all_linear_r64_is_the_quoted_160m() -> None:
    """QLoRA's setting (Dettmers et al. 2023, arXiv:2305.14314 §4: r=64 on every linear layer): PEFT prints
    "trainable params: 159,907,840 || all params: 6,898,323,456" for Llama-2-7B."""
    spec = load_model("llama-2-7b")
    attention = 4 * 64 * (4096 + 4096)
    mlp = 3 * 64 * (4096 + 11008)
    p = params(spec, Method.QLORA, rank=64, target_modules=("all-linear",))
    assert p.trainable == 32 * (attention + mlp) == 159_907_840
    assert p.total == 6_898_323_456
    assert params(spec, Method.QLORA, rank=64).trainable == p.trainable  # the seven roles are all of them


def test_qlora_frozen_base_is_nf4_linears_and_bf16_rest() -> None:
    spec = load_model("llama-2-7b")
    p = params(spec, Method.QLORA, rank=64)
    linears = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008)
    assert p.quantized_params == linears == 6_476_005_376
    rest = count_params(spec).total - linears  # embeddings, lm_head, norms: 2·32000·4096 + 65·4096
    assert rest == 2 * 32000 * 4096 + 65 * 4096
    # NF4 with double quant: 4 bits + 8 bits per 64 + 32 bits per 64·256 (+ one fp32 offset per tensor)
    bits = 4 + 8 / 64 + 32 / (64 * 256)
    assert parse_number_format("nf4").bits_per_param == pytest.approx(bits)
    expected = linears * bits / 8 + 32 * 7 * 4 + rest * 2
    assert p.frozen_bytes == pytest.approx(expected, rel=1e-12)
    assert 3.8e9 < p.frozen_bytes < 3.9e9  # vs 13.5 GB in bf16
    assert params(spec, Method.LORA, rank=64).frozen_bytes is None


def test_dora_adds_one_magnitude_per_output(llama31_8b: ModelSpec) -> None:
    lora = params(llama31_8b, Method.LORA, rank=8, target_modules=ATTENTION)
    dora = params(llama31_8b, Method.DORA, rank=8, target_modules=ATTENTION)
    assert dora.trainable - lora.trainable == 32 * (4096 + 1024 + 1024 + 4096)


def test_adalora_adds_singular_values_and_rank_counter(llama31_8b: ModelSpec) -> None:
    lora = params(llama31_8b, Method.LORA, rank=12, target_modules=("q", "v"))
    adalora = params(llama31_8b, Method.ADALORA, rank=12, target_modules=("q", "v"))
    assert adalora.trainable - lora.trainable == 32 * 2 * (12 + 1)  # Λ (r) and ranknum (1) per adapted layer


def test_dylora_is_lora_at_its_maximum_rank(llama31_8b: ModelSpec) -> None:
    assert (params(llama31_8b, Method.DYLORA, rank=32).trainable
            == params(llama31_8b, Method.LORA, rank=32).trainable)


def test_ia3_llama_defaults_are_k_v_and_down_input(llama31_8b: ModelSpec) -> None:
    assert IA3_DEFAULTS["llama"][0] == {"k", "v", "down"}
    p = params(llama31_8b, Method.IA3)
    assert p.trainable == 32 * (1024 + 1024 + 14336) == 524_288
    assert p.trainable_by_component == {"attention": 32 * 2048, "mlp": 32 * 14336}
    assert p.notes == ()


def test_prefix_tuning_is_sized_by_kv_heads(llama31_8b: ModelSpec) -> None:
    n = 20
    assert params(llama31_8b, Method.PREFIX_TUNING, num_virtual_tokens=n).trainable == n * 32 * 2 * 1024
    assert params(llama31_8b, Method.P_TUNING_V2, num_virtual_tokens=n).trainable == n * 32 * 2 * 1024
    # reparameterised: Embedding(n, 1024) -> Linear(1024, 1024) -> tanh -> Linear(1024, 32·2·1024)
    mlp = n * 1024 + (1024 * 1024 + 1024) + (1024 * 65536 + 65536)
    assert prefix_params(llama31_8b, n, projection=True) == mlp
    job = TrainingJob(seq=512, method=Method.PREFIX_TUNING, peft=PeftConfig(num_virtual_tokens=n))
    assert trainable_params(llama31_8b, job, prefix_projection=True).trainable == mlp
    assert prefix_params(llama31_8b, n, projection=True, encoder_hidden_size=512) == (
        n * 1024 + (1024 * 512 + 512) + (512 * 65536 + 65536))


def test_prompt_tuning_is_one_embedding_per_virtual_token(llama31_8b: ModelSpec) -> None:
    p = params(llama31_8b, Method.PROMPT_TUNING, num_virtual_tokens=20)
    assert p.trainable == 20 * 4096
    assert p.trainable_by_component == {"prompt": 20 * 4096}


def test_houlsby_adapters_on_bert_base() -> None:
    spec = load_model("bert-base-uncased")
    one = 768 * 64 + 64 + 64 * 768 + 768  # down h×m + m, up m×h + h
    p = params(spec, Method.ADAPTER, adapter_size=64)
    assert p.trainable == 12 * 2 * one == 2_379_264


def test_bitfit_bert_counts_layernorm_biases() -> None:
    """Ben Zaken et al. 2022 (arXiv:2106.10199, Table 1): BitFit tunes 0.08% of BERT-large's parameters."""
    base = load_model("bert-base-uncased")
    per_layer = 4 * 768 + 3072 + 768 + 2 * 768  # q k v o, intermediate, output, two LayerNorms
    p = params(base, Method.BITFIT)
    assert p.trainable == 12 * per_layer + 768 + 768 == 102_912  # + embedding LayerNorm + pooler
    assert p.frozen + p.trainable == count_params(base).total
    large = params(load_model("bert-large-uncased"), Method.BITFIT)
    assert large.trainable_fraction == pytest.approx(0.0008, abs=0.00005)


def test_bitfit_has_nothing_to_train_on_llama(llama31_8b: ModelSpec) -> None:
    p = params(llama31_8b, Method.BITFIT)
    assert p.trainable == 0
    assert "no bias" in p.notes[0]
    qwen = params(load_model("qwen2.5-0.5b"), Method.BITFIT)
    assert qwen.trainable == 24 * (896 + 2 * 128)  # q, k and v biases only (2 KV heads of 64)


def test_full_trains_everything(llama31_8b: ModelSpec) -> None:
    p = params(llama31_8b, Method.FULL)
    assert (p.trainable, p.frozen) == (count_params(llama31_8b).total, 0)
    assert p.trainable_fraction == 1


def test_gpt2_fused_qkv_is_one_linear() -> None:
    spec = load_model("gpt2")
    p = params(spec, Method.LORA, rank=8, target_modules=("q", "v"))
    assert p.trainable == 12 * 8 * (768 + 3 * 768)  # c_attn: 768 -> 2304, adapted once
    assert params(spec, Method.LORA, rank=8, target_modules=("q",)).trainable == p.trainable
    with pytest.raises(SpecError, match=r"select no linear layer.*gpt2"):
        params(spec, Method.LORA, target_modules=("gate",))


def _tiny_moe(**extra: Any) -> ModelSpec:
    config = {"model_type": "mixtral", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 50, "num_local_experts": 8,
              "num_experts_per_tok": 2, "max_position_embeddings": 64, **extra}
    return spec_from_config(config, name="tiny-moe")


def test_moe_experts_multiply_by_num_experts() -> None:
    spec = _tiny_moe()
    r, h, i, experts, layers = 4, 32, 64, 8, 2
    attention_only = params(spec, Method.LORA, rank=r, target_modules=ATTENTION)
    assert "no adapter" in attention_only.notes[0]
    with_experts = params(spec, Method.LORA, rank=r, target_modules=(*ATTENTION, "gate", "up", "down", "experts"))
    # per expert: the fused gate_up [2i, h] at rank 2r (r for gate and for up), down [h, i] at rank r
    per_expert = 2 * r * (h + 2 * i) + r * (i + h)
    assert with_experts.trainable_by_component["experts"] == layers * experts * per_expert
    assert with_experts.trainable - attention_only.trainable == layers * experts * per_expert
    everything = params(spec, Method.LORA, rank=r, target_modules=("all-linear", "experts"))
    assert everything.trainable_by_component["router"] == layers * r * (h + experts)
    assert params(spec, Method.LORA, rank=r, target_modules=("all-linear",)).trainable == attention_only.trainable


def test_expert_targets_that_peft_cannot_build_are_refused() -> None:
    spec = _tiny_moe()
    with pytest.raises(SpecError, match="target both or neither"):
        params(spec, Method.LORA, target_modules=("gate", "experts"))
    with pytest.raises(SpecError, match="drop \"experts\""):
        params(spec, Method.DORA, target_modules=("q", "down", "experts"))


def test_qlora_moe_counts_experts_in_nf4_and_says_so() -> None:
    spec = _tiny_moe()
    p = params(spec, Method.QLORA, rank=4)
    experts = 2 * 8 * 3 * 32 * 64
    attention = 2 * (2 * 32 * 32 + 2 * 32 * 16)  # q and o 32×32; k and v 32×16 (2 KV heads of 8)
    assert p.quantized_params == experts + attention  # the router stays in bf16
    assert any("#1849" in note for note in p.notes)


def test_mla_k_and_v_select_the_latent_projections() -> None:
    spec = load_model("deepseek-v2-lite")  # q_proj (no q_lora_rank), kv_a 2048 -> 512 + 64, kv_b 512 -> 16·(128+128)
    p = params(spec, Method.LORA, rank=8, target_modules=("k",))
    assert p.trainable == 27 * (8 * (2048 + 512 + 64) + 8 * (512 + 16 * 256))
    names = {lin.name for lin in model_linears(spec)}
    assert {"q", "kv_a", "kv_b", "o", "router"} <= names


# --- activations: a frozen base, op by op (tiny Llama: h 64, 4 heads of 16, 2 KV heads, SwiGLU 128, vocab 100) ---

T, H, MLP, R = 3 * 8, 64, 128, 4  # tokens of a 3 × 8 micro-batch, hidden, intermediate, LoRA rank
FROZEN_NORM = 4 * H + 4  # RMSNorm with a frozen weight: fp32 input copy and 1/rms, no normalised output


def peft_breakdown(config: dict[str, Any], method: Method, *, precision: PrecisionMode = PrecisionMode.PURE_BF16,
                   recompute: Recompute = Recompute.NONE, lora_dropout: float = 0.0,
                   **knobs: Any) -> ActivationBreakdown:
    spec = spec_from_config(config, name="t")
    job = TrainingJob(seq=8, method=method, peft=PeftConfig(lora_dropout=lora_dropout, **knobs), precision=precision,
                      attention=AttentionImpl.SDPA)
    setup = job_setup(spec, job, Layout(micro_batch=3, recompute=recompute), flavour=Flavour.HUGGINGFACE)
    return model_activations(spec, setup)


def test_lora_frozen_base_keeps_no_linear_input(tiny_llama: dict[str, Any]) -> None:
    b = peft_breakdown(tiny_llama, Method.LORA, rank=R, target_modules=("q", "v"))
    adapters = 2 * (T * H * 4 + T * R * 4)  # q and v: each its own fp32 copy of the input, A's fp32 output
    layer = (2 * T * FROZEN_NORM + T * 2 * (64 + 32 + 32) + T * 4 * 4  # norms; Q, K, V; fp32 logsumexp
             + T * 64 * 2 + T * MLP * 2 * 3 + adapters)  # the kernel's output; gate out, SiLU out, up out
    assert b.per_layer_bytes == (layer - T * FROZEN_NORM, layer)  # no gradient reaches the first input norm
    assert b.embedding_bytes == 2 * 8 * 16 * 2  # RoPE tables only: a frozen embedding keeps no ids
    assert b.head_bytes == T * FROZEN_NORM + T * 100 * 4 + T * 8  # no LM head input: norm, fp32 log-probs, labels
    assert "attention_input" not in b.components and "mlp_input" not in b.components


@pytest.mark.parametrize(("precision", "adapters"), [
    (PrecisionMode.PURE_BF16, 3 * T * H * 4 + 3 * T * R * 4),  # PEFT's fp32 adapters: a copy each
    (PrecisionMode.AMP_BF16, 3 * T * H * 2 + 3 * T * R * 2),  # autocast: a bf16 copy each, bf16 A output
    (PrecisionMode.MIXED_BF16, T * H * 2 + 3 * T * R * 2),  # adapters cast with the module: the input, once
    (PrecisionMode.FP32, T * H * 4 + 3 * T * R * 4),
])
def test_adapter_input_copies_follow_the_adapter_dtype(tiny_llama: dict[str, Any], precision: PrecisionMode,
                                                       adapters: int) -> None:
    b = peft_breakdown(tiny_llama, Method.LORA, precision=precision, rank=R, target_modules=("q", "k", "v"))
    assert b.components["adapters"] == 2 * adapters


def test_lora_dropout_masks_only_where_gradients_flow(tiny_llama: dict[str, Any]) -> None:
    b = peft_breakdown(tiny_llama, Method.LORA, rank=R, target_modules=("q", "o"), lora_dropout=0.1)
    no_mask, mask = T * H * 4 + T * R * 4, T * H * (4 + 1) + T * R * 4  # dropped fp32 input (+ 1-byte mask)
    assert b.components["adapters"] == no_mask + 3 * mask  # the first block's q input carries no gradient


def test_dora_keeps_base_and_lora_outputs(tiny_llama: dict[str, Any]) -> None:
    lora = peft_breakdown(tiny_llama, Method.LORA, rank=R, target_modules=("q",))
    dora = peft_breakdown(tiny_llama, Method.DORA, rank=R, target_modules=("q",))
    assert dora.components["adapters"] - lora.components["adapters"] == 2 * (T * 64 * (2 + 4) + 3 * 64 * 4)
    assert dora.transient_bytes["weights"] == 64 * (64 + 4 * 64) * 4  # identity, B·A, W copy, s·B·A, W + s·B·A


def test_qlora_saves_like_lora_and_dequantizes_one_weight(tiny_llama: dict[str, Any]) -> None:
    lora = peft_breakdown(tiny_llama, Method.LORA, rank=R)
    qlora = peft_breakdown(tiny_llama, Method.QLORA, rank=R)
    assert qlora.total_bytes == lora.total_bytes  # bitsandbytes >= 0.43.2 keeps no 4-bit matmul input
    assert qlora.transient_bytes["weights"] == MLP * H * 2  # the largest linear, dequantized to bf16
    assert qlora.peak_extra_bytes == qlora.transient_bytes["logits"]


def test_full_recompute_moves_adapters_into_the_recomputed_block(tiny_llama: dict[str, Any]) -> None:
    none = peft_breakdown(tiny_llama, Method.LORA, rank=R, target_modules=("q", "v"))
    full = peft_breakdown(tiny_llama, Method.LORA, rank=R, target_modules=("q", "v"), recompute=Recompute.FULL)
    assert full.per_layer_bytes == (T * H * 2, T * H * 2)
    assert full.transient_bytes["recompute"] == none.per_layer_bytes[1]


def test_ia3_keeps_scaled_outputs_and_fp32_feedforward_inputs(tiny_llama: dict[str, Any]) -> None:
    assert IA3_DEFAULTS["llama"] == (frozenset({"k", "v", "down"}), frozenset({"down"}))
    b = peft_breakdown(tiny_llama, Method.IA3)
    assert b.components["adapters"] == 2 * (2 * T * 32 * 2 + T * MLP * 4)  # k, v outputs (bf16); down's input (fp32)


def test_prompt_tuning_runs_every_layer_on_more_tokens(tiny_llama: dict[str, Any]) -> None:
    b = peft_breakdown(tiny_llama, Method.PROMPT_TUNING, num_virtual_tokens=4)
    t = 3 * (8 + 4)
    assert b.per_layer_bytes[0] == b.per_layer_bytes[1]  # the prompt trains: gradients reach the first block
    assert b.components["logits"] == t * 100 * 4  # logits over the virtual tokens too


def test_prefix_tuning_lengthens_keys_and_masks_sdpa(tiny_llama: dict[str, Any]) -> None:
    b = peft_breakdown(tiny_llama, Method.PREFIX_TUNING, num_virtual_tokens=4)
    assert b.components["attention_mask"] == 2 * T * (8 + 4) * 2  # explicit mask: query and key lengths differ
    assert b.components["prefix_kv"] == 2 * 3 * 4 * 4 * (16 + 16) * 2  # K, V repeated to 4 heads under the mask
    assert b.components["qkv"] == 2 * T * (64 + 4 * 16 + 4 * 16) * 2


def test_peft_activations_summary(llama31_8b: ModelSpec) -> None:
    job = TrainingJob(seq=512, method=Method.LORA, peft=PeftConfig(rank=16, target_modules=ATTENTION))
    shared = peft_activations(llama31_8b, job)  # DeepSpeed bf16: adapters in bf16 share the QKV input
    assert shared.adapter_bytes_per_token == 32 * (4096 * 2 + 4 * 16 * 2)  # o's input is the kernel's output
    pure = peft_activations(llama31_8b, TrainingJob(seq=512, method=Method.LORA, precision=PrecisionMode.PURE_BF16,
                                                    peft=PeftConfig(rank=16, target_modules=ATTENTION)))
    assert pure.adapter_bytes_per_token == 32 * (4 * 4096 * 4 + 4 * 16 * 4)
    qlora = peft_activations(llama31_8b, TrainingJob(seq=512, method=Method.QLORA))
    assert qlora.transient_bytes == 4096 * 14336 * 2  # the largest dequantized weight, bf16
    prompt = peft_activations(llama31_8b, TrainingJob(seq=512, method=Method.PROMPT_TUNING,
                                                      peft=PeftConfig(num_virtual_tokens=30)))
    assert (prompt.adapter_bytes_per_token, prompt.extra_tokens) == (0, 30)
    assert peft_activations(llama31_8b, TrainingJob(seq=512)).notes == ()


def test_bitfit_on_mamba2_counts_conv_and_dt_biases() -> None:
    """Mamba-Codestral-7B: 64 Mamba-2 mixers, bias-free projections and RMSNorms; each mixer's conv1d has a bias
    per channel (I + 2·G·N = 8192 + 2·8·128) and ``dt_bias`` one per head (128)."""
    p = params(load_model("mamba-codestral-7b"), Method.BITFIT)
    assert p.trainable == 64 * (8192 + 2 * 8 * 128 + 128) == 663_552
    assert p.trainable_by_component == {"ssm": p.trainable}


def test_lora_on_a_mamba_out_proj_is_refused_like_peft() -> None:
    """PEFT's ``_check_lora_target_modules_mamba`` refuses out_proj on mamba2/nemotron_h, all-linear included."""
    spec = load_model("mamba-codestral-7b")
    for targets in (("all-linear",), ("in_proj", "out_proj")):
        with pytest.raises(SpecError, match="in_proj"):
            params(spec, Method.LORA, rank=8, target_modules=targets)
    assert params(spec, Method.LORA, rank=8, target_modules=("in_proj",)).trainable == (
        64 * 8 * (4096 + 2 * 8192 + 2 * 8 * 128 + 128))


def test_qwen3_next_gated_attention_q_and_deltanet_dt_bias() -> None:
    """Qwen3-Coder-Next: 12 gated-attention layers whose q_proj emits queries and gates (2·16·256 = 8192 wide),
    and 36 Gated DeltaNet layers with 32 value heads, one ``dt_bias`` each (nothing else has a bias)."""
    spec = load_model("qwen3-coder-next")
    assert params(spec, Method.LORA, rank=8, target_modules=("q",)).trainable == 12 * 8 * (2048 + 8192)
    assert params(spec, Method.BITFIT).trainable == 36 * 32
