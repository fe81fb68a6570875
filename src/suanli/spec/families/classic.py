"""Adapters for the families supported since the first release: Llama, Mistral/Mixtral, Qwen2/Qwen3 (dense
and MoE), Phi-3, Gemma 1/2/3, DeepSeek-V2/V3, GPT-2, GPT-NeoX, OPT, Falcon, OLMo 1/2, StarCoder2 and BERT.

Each mirrors how the transformers implementation of that family builds its modules (which projections carry
biases, how many norms a block holds, which layers are MoE or use a sliding window)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from suanli.errors import ConfigError
from suanli.i18n import Text
from suanli.spec.hf_common import (
    ConfigReader,
    build_attention,
    decoder_spec,
    gated_mlp,
    layer_norm,
    rms_norm,
    shared_experts_mlp,
    torch_dtype_of,
    uniform_layers,
    windowed_layers,
)
from suanli.spec.model import Attention, Layer, Mla, Mlp, ModelSpec, Moe, Norm, NormKind, PositionKind, QkNormKind

# --- Llama-like families --------------------------------------------------------------------------------------


def _llama(r: ConfigReader) -> ModelSpec:
    """LlamaForCausalLM: q/k/v/o with ``attention_bias``; SwiGLU with ``mlp_bias``; 2 RMSNorms per block."""
    hidden = r.integer("hidden_size")
    attention = build_attention(r, hidden, qkv_bias=r.flag("attention_bias", False),
                           out_bias=r.flag("attention_bias", False))
    layer = Layer(attention=attention, ffn=gated_mlp(r, bias=r.flag("mlp_bias", False)),
                  norms=(rms_norm(hidden), rms_norm(hidden)))
    return decoder_spec(r, uniform_layers(layer, r.integer("num_hidden_layers")), final_norm=rms_norm(hidden))


def _mistral(r: ConfigReader) -> ModelSpec:
    """MistralForCausalLM: Llama without biases, with an optional ``sliding_window`` on every layer."""
    hidden = r.integer("hidden_size")
    attention = build_attention(r, hidden, qkv_bias=False, out_bias=False, window=r.optional_integer("sliding_window"))
    layer = Layer(attention=attention, ffn=gated_mlp(r), norms=(rms_norm(hidden), rms_norm(hidden)))
    return decoder_spec(r, uniform_layers(layer, r.integer("num_hidden_layers")), final_norm=rms_norm(hidden))


def _qwen_sliding(r: ConfigReader, num_layers: int) -> tuple[list[bool], int | None]:
    """Qwen2/Qwen3: layers at index >= ``max_window_layers`` slide, only when ``use_sliding_window``."""
    window = r.optional_integer("sliding_window") if r.flag("use_sliding_window", False) else None
    first_local = r.config.get("max_window_layers") or num_layers
    sliding = r.layer_types(num_layers, lambda i: window is not None and i >= first_local)
    return sliding, window


def _qwen2(r: ConfigReader) -> ModelSpec:
    """Qwen2ForCausalLM: biases on q/k/v (not o), SwiGLU, 2 RMSNorms per block."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    attention = build_attention(r, hidden, qkv_bias=True, out_bias=False)
    base = Layer(attention=attention, ffn=gated_mlp(r), norms=(rms_norm(hidden), rms_norm(hidden)))
    sliding, window = _qwen_sliding(r, num_layers)
    return decoder_spec(r, windowed_layers(r, base, sliding, window), final_norm=rms_norm(hidden))


def _qwen3(r: ConfigReader) -> ModelSpec:
    """Qwen3ForCausalLM: per-head RMSNorm on q and k, ``attention_bias`` on all four projections."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    bias = r.flag("attention_bias", False)
    attention = build_attention(r, hidden, qkv_bias=bias, out_bias=bias, qk_norm=QkNormKind.PER_HEAD)
    base = Layer(attention=attention, ffn=gated_mlp(r), norms=(rms_norm(hidden), rms_norm(hidden)))
    sliding, window = _qwen_sliding(r, num_layers)
    return decoder_spec(r, windowed_layers(r, base, sliding, window), final_norm=rms_norm(hidden))


def _qwen_moe_layers(r: ConfigReader, attention: Attention, moe: Moe) -> list[Layer]:
    """Qwen2-MoE / Qwen3-MoE: layer i is sparse unless listed in ``mlp_only_layers`` and when
    ``(i + 1) % decoder_sparse_step == 0``; dense layers use ``intermediate_size``."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    dense_only = set(r.integer_list("mlp_only_layers"))
    step = r.integer("decoder_sparse_step", 1)
    norms = (rms_norm(hidden), rms_norm(hidden))
    sparse = Layer(attention=attention, ffn=moe, norms=norms)
    dense = Layer(attention=attention, ffn=gated_mlp(r), norms=norms) if dense_only or step > 1 else sparse
    return [sparse if i not in dense_only and (i + 1) % step == 0 else dense for i in range(num_layers)]


def _qwen2_moe(r: ConfigReader) -> ModelSpec:
    """Qwen2MoeForCausalLM: routed experts plus one gated shared expert (``shared_expert_intermediate_size``)."""
    hidden = r.integer("hidden_size")
    attention = build_attention(r, hidden, qkv_bias=r.flag("qkv_bias", True), out_bias=False)
    moe = Moe(num_experts=r.integer("num_experts"), top_k=r.integer("num_experts_per_tok"),
              expert=gated_mlp(r, "moe_intermediate_size"),
              shared=gated_mlp(r, "shared_expert_intermediate_size"), shared_gate=True)
    return decoder_spec(r, _qwen_moe_layers(r, attention, moe), final_norm=rms_norm(hidden))


def _qwen3_moe(r: ConfigReader) -> ModelSpec:
    """Qwen3MoeForCausalLM: Qwen3 attention (q/k norms) with routed experts only."""
    hidden = r.integer("hidden_size")
    bias = r.flag("attention_bias", False)
    attention = build_attention(r, hidden, qkv_bias=bias, out_bias=bias, qk_norm=QkNormKind.PER_HEAD)
    moe = Moe(num_experts=r.integer("num_experts"), top_k=r.integer("num_experts_per_tok"),
              expert=gated_mlp(r, "moe_intermediate_size"))
    return decoder_spec(r, _qwen_moe_layers(r, attention, moe), final_norm=rms_norm(hidden))


def _mixtral(r: ConfigReader) -> ModelSpec:
    """MixtralForCausalLM: every layer routes ``num_experts_per_tok`` of ``num_local_experts`` SwiGLU experts."""
    hidden = r.integer("hidden_size")
    attention = build_attention(r, hidden, qkv_bias=False, out_bias=False, window=r.optional_integer("sliding_window"))
    moe = Moe(num_experts=r.integer("num_local_experts"), top_k=r.integer("num_experts_per_tok"), expert=gated_mlp(r))
    layer = Layer(attention=attention, ffn=moe, norms=(rms_norm(hidden), rms_norm(hidden)))
    return decoder_spec(r, uniform_layers(layer, r.integer("num_hidden_layers")), final_norm=rms_norm(hidden))


# --- Gemma ----------------------------------------------------------------------------------------------------


def _gemma(r: ConfigReader) -> ModelSpec:
    """GemmaForCausalLM: explicit head_dim, GeGLU, tied embeddings, 2 RMSNorms per block."""
    hidden = r.integer("hidden_size")
    attention = build_attention(r, hidden, qkv_bias=r.flag("attention_bias", False),
                           out_bias=r.flag("attention_bias", False))
    layer = Layer(attention=attention, ffn=_gemma_mlp(r), norms=(rms_norm(hidden), rms_norm(hidden)))
    return decoder_spec(r, uniform_layers(layer, r.integer("num_hidden_layers")), final_norm=rms_norm(hidden),
                        tie_default=True)


def _gemma_mlp(r: ConfigReader) -> Mlp:
    """GeGLU: the Gemma config classes default to ``gelu_pytorch_tanh`` (published Gemma 3 text configs omit
    the key), and the official Gemma configs' ``hidden_act: "gelu"`` is rewritten by GemmaConfig (transformers 5
    ``__post_init__``) to the tanh approximation the models were trained with, so both read the same."""
    activation = r.text("hidden_act", "gelu_pytorch_tanh")
    return replace(gated_mlp(r), activation="gelu_pytorch_tanh" if activation == "gelu" else activation)


def _gemma_sandwich(r: ConfigReader, *, qk_norm: QkNormKind | None,
                    default_sliding: Callable[[int], bool]) -> ModelSpec:
    """Gemma 2/3: four RMSNorms per block (pre/post attention, pre/post MLP) and local/global layers."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    bias = r.flag("attention_bias", False)
    attention = build_attention(r, hidden, qkv_bias=bias, out_bias=bias, qk_norm=qk_norm)
    base = Layer(attention=attention, ffn=_gemma_mlp(r), norms=(rms_norm(hidden),) * 4)
    sliding = r.layer_types(num_layers, default_sliding)
    layers = windowed_layers(r, base, sliding, r.optional_integer("sliding_window"))
    return decoder_spec(r, layers, final_norm=rms_norm(hidden), tie_default=True)


def _gemma2(r: ConfigReader) -> ModelSpec:
    """Gemma2ForCausalLM: even-indexed layers are local (sliding window), odd ones global."""
    return _gemma_sandwich(r, qk_norm=None, default_sliding=lambda i: (i + 1) % 2 == 1)


def _gemma3_text(r: ConfigReader) -> ModelSpec:
    """Gemma3ForCausalLM (text): q/k RMSNorm per head; every ``sliding_window_pattern``-th layer is global."""
    pattern = r.integer("sliding_window_pattern", 6)
    return _gemma_sandwich(r, qk_norm=QkNormKind.PER_HEAD, default_sliding=lambda i: (i + 1) % pattern != 0)


# --- DeepSeek (MLA + MoE) -------------------------------------------------------------------------------------


def _deepseek(r: ConfigReader) -> ModelSpec:
    """DeepseekV2/V3ForCausalLM: MLA attention; layers from ``first_k_dense_replace`` on are MoE with
    ``n_shared_experts`` shared experts fused into one MLP of n_shared × moe_intermediate_size."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    heads = r.integer("num_attention_heads")
    mla = Mla(q_lora_rank=r.optional_integer("q_lora_rank"), kv_lora_rank=r.integer("kv_lora_rank"),
              qk_rope_head_dim=r.integer("qk_rope_head_dim"), qk_nope_head_dim=r.integer("qk_nope_head_dim"))
    bias = r.flag("attention_bias", False)
    attention = Attention(num_heads=heads, num_kv_heads=heads,
                          head_dim=mla.qk_nope_head_dim + mla.qk_rope_head_dim,
                          v_head_dim=r.integer("v_head_dim"), qkv_bias=bias, out_bias=bias, mla=mla)
    mlp_bias = r.flag("mlp_bias", False) if r.text("model_type") == "deepseek_v2" else False
    expert = gated_mlp(r, "moe_intermediate_size", bias=mlp_bias)
    moe = Moe(num_experts=r.integer("n_routed_experts"), top_k=r.integer("num_experts_per_tok"), expert=expert,
              shared=shared_experts_mlp(r, expert, "n_shared_experts"))
    norms = (rms_norm(hidden), rms_norm(hidden))
    dense = Layer(attention=attention, ffn=gated_mlp(r, bias=mlp_bias), norms=norms)
    sparse = Layer(attention=attention, ffn=moe, norms=norms)
    first_sparse = r.config.get("first_k_dense_replace") or 0
    layers = [sparse if i >= first_sparse else dense for i in range(num_layers)]
    extras: tuple[tuple[str, str], ...] = ()
    if r.config.get("num_nextn_predict_layers"):
        extras = (("mtp", Text("note.model.mtp_module")),)
    return decoder_spec(r, layers, final_norm=rms_norm(hidden), extras=extras)


# --- GPT-2, GPT-NeoX, OPT, Falcon, OLMo, StarCoder2, BERT -----------------------------------------------------


def _gpt2(r: ConfigReader) -> ModelSpec:
    """GPT2LMHeadModel (GPT-3 architectures too): learned positions, biases everywhere, 2 LayerNorms per
    block, MLP width ``n_inner`` (default 4·n_embd), tied output head. Keys: n_embd, n_layer, n_head."""
    hidden, heads = r.integer("n_embd"), r.integer("n_head")
    width = r.config.get("n_inner") or 4 * hidden
    attention = Attention(num_heads=heads, num_kv_heads=heads, head_dim=hidden // heads,
                          v_head_dim=hidden // heads, qkv_bias=True, out_bias=True)
    mlp = Mlp(intermediate_size=width, gated=False, bias=True, activation=r.text("activation_function", "gelu_new"))
    layer = Layer(attention=attention, ffn=mlp, norms=(layer_norm(hidden), layer_norm(hidden)))
    positions = r.integer("n_positions")
    return ModelSpec(name=r.name, model_type="gpt2", vocab_size=r.integer("vocab_size"), hidden_size=hidden,
                     layers=tuple(uniform_layers(layer, r.integer("n_layer"))), position=PositionKind.LEARNED,
                     max_position_embeddings=positions, learned_position_rows=positions,
                     tie_word_embeddings=r.flag("tie_word_embeddings", True), final_norm=layer_norm(hidden),
                     torch_dtype=torch_dtype_of(r))


def _gpt_neox(r: ConfigReader) -> ModelSpec:
    """GPTNeoXForCausalLM: fused qkv with ``attention_bias``, plain GELU MLP with biases, parallel residual
    when ``use_parallel_residual``, 2 LayerNorms per block, untied ``embed_out``."""
    hidden = r.integer("hidden_size")
    bias = r.flag("attention_bias", True)
    attention = build_attention(r, hidden, qkv_bias=bias, out_bias=bias)
    mlp = Mlp(intermediate_size=r.integer("intermediate_size"), gated=False, bias=True,
              activation=r.text("hidden_act", "gelu"))
    layer = Layer(attention=attention, ffn=mlp, norms=(layer_norm(hidden), layer_norm(hidden)),
                  parallel=r.flag("use_parallel_residual", True))
    return decoder_spec(r, uniform_layers(layer, r.integer("num_hidden_layers")), final_norm=layer_norm(hidden))


def _opt(r: ConfigReader) -> ModelSpec:
    """OPTForCausalLM: learned positions with 2 extra rows, biases (``enable_bias``), plain ReLU MLP of
    ``ffn_dim``, 2 LayerNorms per block, final LayerNorm when ``do_layer_norm_before``; tied head."""
    hidden = r.integer("hidden_size")
    if r.config.get("word_embed_proj_dim", hidden) != hidden:
        raise ConfigError(
            f"{r.name}: word_embed_proj_dim ({r.config['word_embed_proj_dim']}) differs from hidden_size "
            f"({hidden}); OPT variants with input/output projections (opt-350m) are not supported yet",
            key="error.model.opt_projection",
            fields={"name": r.name, "proj": r.config["word_embed_proj_dim"], "hidden": hidden},
        )
    bias = r.flag("enable_bias", True)
    affine = r.flag("layer_norm_elementwise_affine", True)
    norm = layer_norm(hidden) if affine else Norm(kind=NormKind.NON_PARAMETRIC, size=hidden)
    heads = r.integer("num_attention_heads")
    attention = Attention(num_heads=heads, num_kv_heads=heads, head_dim=hidden // heads,
                          v_head_dim=hidden // heads, qkv_bias=bias, out_bias=bias)
    mlp = Mlp(intermediate_size=r.integer("ffn_dim"), gated=False, bias=bias, activation="relu")
    layer = Layer(attention=attention, ffn=mlp, norms=(norm, norm))
    final = norm if r.flag("do_layer_norm_before", True) and not r.config.get("_remove_final_layer_norm") else None
    positions = r.integer("max_position_embeddings")
    return decoder_spec(r, uniform_layers(layer, r.integer("num_hidden_layers")), final_norm=final, tie_default=True,
                    position=PositionKind.LEARNED, learned_position_rows=positions + 2)


def _falcon(r: ConfigReader) -> ModelSpec:
    """FalconForCausalLM: fused qkv (MQA when ``multi_query``, GQA with ``num_kv_heads`` under
    ``new_decoder_architecture``), plain GELU MLP of ``ffn_hidden_size`` (default 4·hidden), parallel
    attention; one LayerNorm per block, or two (ln_attn, ln_mlp) in the new architecture."""
    hidden, heads = r.integer("hidden_size"), r.integer("num_attention_heads")
    new_arch = r.flag("new_decoder_architecture", False)
    legacy_kv_heads = 1 if r.flag("multi_query", True) else heads
    kv_heads = r.integer("num_kv_heads", heads) if new_arch else legacy_kv_heads
    bias = r.flag("bias", False)
    attention = Attention(num_heads=heads, num_kv_heads=kv_heads, head_dim=hidden // heads,
                          v_head_dim=hidden // heads, qkv_bias=bias, out_bias=bias)
    mlp = Mlp(intermediate_size=r.config.get("ffn_hidden_size") or 4 * hidden, gated=False, bias=bias,
              activation="gelu")
    parallel = r.flag("parallel_attn", True)
    norm_count = (r.config.get("num_ln_in_parallel_attn") or 2) if new_arch and parallel else 1 + (not parallel)
    layer = Layer(attention=attention, ffn=mlp, norms=(layer_norm(hidden),) * norm_count, parallel=parallel)
    position = PositionKind.ALIBI if r.flag("alibi", False) else PositionKind.ROTARY
    return decoder_spec(r, uniform_layers(layer, r.integer("num_hidden_layers")), final_norm=layer_norm(hidden),
                    tie_default=True, position=position)


def _olmo(r: ConfigReader) -> ModelSpec:
    """OlmoForCausalLM: Llama layout with non-parametric LayerNorms (no weights, no biases)."""
    hidden = r.integer("hidden_size")
    bias = r.flag("attention_bias", False)
    attention = build_attention(r, hidden, qkv_bias=bias, out_bias=bias)
    norm = Norm(kind=NormKind.NON_PARAMETRIC, size=hidden)
    layer = Layer(attention=attention, ffn=gated_mlp(r), norms=(norm, norm))
    return decoder_spec(r, uniform_layers(layer, r.integer("num_hidden_layers")), final_norm=norm)


def _olmo2(r: ConfigReader) -> ModelSpec:
    """Olmo2ForCausalLM: post-norm RMSNorms after attention and MLP, and RMSNorm over the whole q and k
    projections (num_heads·head_dim and num_kv_heads·head_dim channels)."""
    hidden = r.integer("hidden_size")
    bias = r.flag("attention_bias", False)
    attention = build_attention(r, hidden, qkv_bias=bias, out_bias=bias, qk_norm=QkNormKind.FULL)
    layer = Layer(attention=attention, ffn=gated_mlp(r), norms=(rms_norm(hidden), rms_norm(hidden)))
    return decoder_spec(r, uniform_layers(layer, r.integer("num_hidden_layers")), final_norm=rms_norm(hidden))


def _starcoder2(r: ConfigReader) -> ModelSpec:
    """Starcoder2ForCausalLM: GQA with ``use_bias`` on all projections, plain GELU MLP, LayerNorms with bias,
    optional sliding window, tied head."""
    hidden = r.integer("hidden_size")
    bias = r.flag("use_bias", True)
    attention = build_attention(r, hidden, qkv_bias=bias, out_bias=bias, window=r.optional_integer("sliding_window"))
    mlp = Mlp(intermediate_size=r.integer("intermediate_size"), gated=False, bias=bias,
              activation=r.text("hidden_act", "gelu_pytorch_tanh"))
    layer = Layer(attention=attention, ffn=mlp, norms=(layer_norm(hidden), layer_norm(hidden)))
    return decoder_spec(r, uniform_layers(layer, r.integer("num_hidden_layers")), final_norm=layer_norm(hidden),
                    tie_default=True)


def _bert(r: ConfigReader) -> ModelSpec:
    """BertModel (encoder-only, with pooler): word + learned position + token-type embeddings and their
    LayerNorm; post-norm blocks with biases everywhere and 2 LayerNorms; no LM head."""
    hidden = r.integer("hidden_size")
    attention = build_attention(r, hidden, qkv_bias=True, out_bias=True)
    mlp = Mlp(intermediate_size=r.integer("intermediate_size"), gated=False, bias=True,
              activation=r.text("hidden_act", "gelu"))
    layer = Layer(attention=attention, ffn=mlp, norms=(layer_norm(hidden), layer_norm(hidden)))
    positions = r.integer("max_position_embeddings")
    return decoder_spec(r, uniform_layers(layer, r.integer("num_hidden_layers")), final_norm=None, tie_default=True,
                    position=PositionKind.LEARNED, learned_position_rows=positions,
                    token_type_vocab_size=r.integer("type_vocab_size", 2), embedding_norm=layer_norm(hidden),
                    lm_head=False, pooler=True, causal=False)


CLASSIC_ADAPTERS: Mapping[str, Callable[[ConfigReader], ModelSpec]] = {
    "llama": _llama,
    "mistral": _mistral,
    "mixtral": _mixtral,
    "qwen2": _qwen2,
    "qwen2_moe": _qwen2_moe,
    "qwen3": _qwen3,
    "qwen3_moe": _qwen3_moe,
    "gemma": _gemma,
    "gemma2": _gemma2,
    "gemma3_text": _gemma3_text,
    # Phi3ForCausalLM fuses qkv_proj and gate_up_proj, same sizes as Mistral's separate bias-free matrices.
    "phi3": _mistral,
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
    "gpt2": _gpt2,
    "gpt_neox": _gpt_neox,
    "opt": _opt,
    "falcon": _falcon,
    "olmo": _olmo,
    "olmo2": _olmo2,
    "starcoder2": _starcoder2,
    "bert": _bert,
}
