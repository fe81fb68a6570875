"""Hugging Face ``config.json`` → ``ModelSpec``, through one explicit adapter per ``model_type``.

Each adapter names the keys it reads and mirrors how the transformers implementation of that family builds
its modules (which projections carry biases, how many norms a block holds, which layers are MoE or use a
sliding window). Nothing is inferred from numeric ratios. A ``model_type`` without an adapter is an error that
lists the supported ones; a missing or ill-typed key is an error that names it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from suanli.errors import ConfigError, UnsupportedArchitecture
from suanli.spec.model import (
    Attention,
    Layer,
    Mla,
    Mlp,
    ModelSpec,
    Moe,
    Norm,
    NormKind,
    PositionKind,
    QkNormKind,
)

_MISSING = object()


class ConfigReader:
    """Typed access to one config.json, with errors that name the file, the key and what was found."""

    def __init__(self, config: Mapping[str, Any], *, name: str) -> None:
        self.config = config
        self.name = name

    def integer(self, key: str, default: Any = _MISSING) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.name}: '{key}' must be an integer, got {value!r}")
        if value <= 0:
            raise ConfigError(f"{self.name}: '{key}' must be positive, got {value}")
        return value

    def optional_integer(self, key: str) -> int | None:
        return None if self.config.get(key) is None else self.integer(key)

    def flag(self, key: str, default: Any = _MISSING) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.name}: '{key}' must be true or false, got {value!r}")
        return value

    def text(self, key: str, default: Any = _MISSING) -> str:
        value = self._get(key, default)
        if not isinstance(value, str):
            raise ConfigError(f"{self.name}: '{key}' must be a string, got {value!r}")
        return value

    def integer_list(self, key: str) -> list[int]:
        value = self.config.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
            raise ConfigError(f"{self.name}: '{key}' must be a list of integers, got {value!r}")
        return value

    def layer_types(self, num_layers: int, default: Callable[[int], bool]) -> list[bool]:
        """Per layer: True where attention is sliding-window. Uses ``layer_types`` when the config has it."""
        types = self.config.get("layer_types")
        if types is None:
            return [default(i) for i in range(num_layers)]
        if not isinstance(types, list) or len(types) != num_layers:
            raise ConfigError(
                f"{self.name}: 'layer_types' must list {num_layers} entries (one per layer), got {types!r}"
            )
        return [t == "sliding_attention" for t in types]

    def _get(self, key: str, default: Any) -> Any:
        value = self.config.get(key, default)
        if value is _MISSING or (value is None and default is _MISSING):
            raise ConfigError(
                f"{self.name}: required key '{key}' is missing; "
                f"a {self.config.get('model_type')} config.json always has it — is this the right file?"
            )
        return value


# --- shared builders ----------------------------------------------------------------------------------------


def _head_dim(r: ConfigReader, hidden: int, heads: int) -> int:
    explicit = r.config.get("head_dim")
    if explicit is not None:
        return r.integer("head_dim")
    if hidden % heads:
        raise ConfigError(
            f"{r.name}: hidden_size ({hidden}) is not divisible by num_attention_heads ({heads}) "
            "and the config gives no head_dim"
        )
    return hidden // heads


def _attention(r: ConfigReader, hidden: int, *, qkv_bias: bool, out_bias: bool,
               qk_norm: QkNormKind | None = None, window: int | None = None) -> Attention:
    heads = r.integer("num_attention_heads")
    kv_heads = r.integer("num_key_value_heads", heads) if r.config.get("num_key_value_heads") else heads
    head_dim = _head_dim(r, hidden, heads)
    return Attention(num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim, v_head_dim=head_dim,
                     qkv_bias=qkv_bias, out_bias=out_bias, qk_norm=qk_norm, sliding_window=window)


def _with_window(attention: Attention, window: int | None) -> Attention:
    return Attention(num_heads=attention.num_heads, num_kv_heads=attention.num_kv_heads,
                     head_dim=attention.head_dim, v_head_dim=attention.v_head_dim,
                     qkv_bias=attention.qkv_bias, out_bias=attention.out_bias, qk_norm=attention.qk_norm,
                     sliding_window=window, mla=attention.mla)


def _gated_mlp(r: ConfigReader, size_key: str = "intermediate_size", *, bias: bool = False) -> Mlp:
    return Mlp(intermediate_size=r.integer(size_key), gated=True, bias=bias,
               activation=r.text("hidden_act", "silu") if "hidden_act" in r.config else "silu")


def _rms(size: int) -> Norm:
    return Norm(kind=NormKind.RMS_NORM, size=size)


def _layer_norm(size: int, bias: bool = True) -> Norm:
    return Norm(kind=NormKind.LAYER_NORM, size=size, bias=bias)


def _decoder(r: ConfigReader, layers: list[Layer], *, final_norm: Norm | None,
             tie_default: bool = False, position: PositionKind = PositionKind.ROTARY,
             **extra: Any) -> ModelSpec:
    return ModelSpec(
        name=r.name,
        model_type=r.text("model_type"),
        vocab_size=r.integer("vocab_size"),
        hidden_size=r.integer("hidden_size"),
        layers=tuple(layers),
        position=position,
        max_position_embeddings=r.integer("max_position_embeddings", 2048),
        tie_word_embeddings=r.flag("tie_word_embeddings", tie_default),
        final_norm=final_norm,
        torch_dtype=_dtype(r),
        **extra,
    )


def _dtype(r: ConfigReader) -> str:
    value = r.config.get("torch_dtype") or r.config.get("dtype") or "float32"
    return str(value)


def _uniform(layer: Layer, count: int) -> list[Layer]:
    return [layer] * count


def _windowed(r: ConfigReader, base: Layer, sliding: list[bool], window: int | None) -> list[Layer]:
    """One layer per entry of ``sliding``, with the sliding window set where it is True."""
    if window is None or not any(sliding):
        return _uniform(base, len(sliding))
    local = Layer(attention=_with_window(base.attention, window), ffn=base.ffn, norms=base.norms,
                  parallel=base.parallel)
    return [local if is_local else base for is_local in sliding]


# --- Llama-like families --------------------------------------------------------------------------------------


def _llama(r: ConfigReader) -> ModelSpec:
    """LlamaForCausalLM: q/k/v/o with ``attention_bias``; SwiGLU with ``mlp_bias``; 2 RMSNorms per block."""
    hidden = r.integer("hidden_size")
    attention = _attention(r, hidden, qkv_bias=r.flag("attention_bias", False),
                           out_bias=r.flag("attention_bias", False))
    layer = Layer(attention=attention, ffn=_gated_mlp(r, bias=r.flag("mlp_bias", False)),
                  norms=(_rms(hidden), _rms(hidden)))
    return _decoder(r, _uniform(layer, r.integer("num_hidden_layers")), final_norm=_rms(hidden))


def _mistral(r: ConfigReader) -> ModelSpec:
    """MistralForCausalLM: Llama without biases, with an optional ``sliding_window`` on every layer."""
    hidden = r.integer("hidden_size")
    attention = _attention(r, hidden, qkv_bias=False, out_bias=False, window=r.optional_integer("sliding_window"))
    layer = Layer(attention=attention, ffn=_gated_mlp(r), norms=(_rms(hidden), _rms(hidden)))
    return _decoder(r, _uniform(layer, r.integer("num_hidden_layers")), final_norm=_rms(hidden))


def _qwen_sliding(r: ConfigReader, num_layers: int) -> tuple[list[bool], int | None]:
    """Qwen2/Qwen3: layers at index >= ``max_window_layers`` slide, only when ``use_sliding_window``."""
    window = r.optional_integer("sliding_window") if r.flag("use_sliding_window", False) else None
    first_local = r.config.get("max_window_layers") or num_layers
    sliding = r.layer_types(num_layers, lambda i: window is not None and i >= first_local)
    return sliding, window


def _qwen2(r: ConfigReader) -> ModelSpec:
    """Qwen2ForCausalLM: biases on q/k/v (not o), SwiGLU, 2 RMSNorms per block."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    attention = _attention(r, hidden, qkv_bias=True, out_bias=False)
    base = Layer(attention=attention, ffn=_gated_mlp(r), norms=(_rms(hidden), _rms(hidden)))
    sliding, window = _qwen_sliding(r, num_layers)
    return _decoder(r, _windowed(r, base, sliding, window), final_norm=_rms(hidden))


def _qwen3(r: ConfigReader) -> ModelSpec:
    """Qwen3ForCausalLM: per-head RMSNorm on q and k, ``attention_bias`` on all four projections."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    bias = r.flag("attention_bias", False)
    attention = _attention(r, hidden, qkv_bias=bias, out_bias=bias, qk_norm=QkNormKind.PER_HEAD)
    base = Layer(attention=attention, ffn=_gated_mlp(r), norms=(_rms(hidden), _rms(hidden)))
    sliding, window = _qwen_sliding(r, num_layers)
    return _decoder(r, _windowed(r, base, sliding, window), final_norm=_rms(hidden))


def _qwen_moe_layers(r: ConfigReader, attention: Attention, moe: Moe) -> list[Layer]:
    """Qwen2-MoE / Qwen3-MoE: layer i is sparse unless listed in ``mlp_only_layers`` and when
    ``(i + 1) % decoder_sparse_step == 0``; dense layers use ``intermediate_size``."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    dense_only = set(r.integer_list("mlp_only_layers"))
    step = r.integer("decoder_sparse_step", 1)
    norms = (_rms(hidden), _rms(hidden))
    sparse = Layer(attention=attention, ffn=moe, norms=norms)
    dense = Layer(attention=attention, ffn=_gated_mlp(r), norms=norms) if dense_only or step > 1 else sparse
    return [sparse if i not in dense_only and (i + 1) % step == 0 else dense for i in range(num_layers)]


def _qwen2_moe(r: ConfigReader) -> ModelSpec:
    """Qwen2MoeForCausalLM: routed experts plus one gated shared expert (``shared_expert_intermediate_size``)."""
    hidden = r.integer("hidden_size")
    attention = _attention(r, hidden, qkv_bias=r.flag("qkv_bias", True), out_bias=False)
    moe = Moe(num_experts=r.integer("num_experts"), top_k=r.integer("num_experts_per_tok"),
              expert=_gated_mlp(r, "moe_intermediate_size"),
              shared=_gated_mlp(r, "shared_expert_intermediate_size"), shared_gate=True)
    return _decoder(r, _qwen_moe_layers(r, attention, moe), final_norm=_rms(hidden))


def _qwen3_moe(r: ConfigReader) -> ModelSpec:
    """Qwen3MoeForCausalLM: Qwen3 attention (q/k norms) with routed experts only."""
    hidden = r.integer("hidden_size")
    bias = r.flag("attention_bias", False)
    attention = _attention(r, hidden, qkv_bias=bias, out_bias=bias, qk_norm=QkNormKind.PER_HEAD)
    moe = Moe(num_experts=r.integer("num_experts"), top_k=r.integer("num_experts_per_tok"),
              expert=_gated_mlp(r, "moe_intermediate_size"))
    return _decoder(r, _qwen_moe_layers(r, attention, moe), final_norm=_rms(hidden))


def _mixtral(r: ConfigReader) -> ModelSpec:
    """MixtralForCausalLM: every layer routes ``num_experts_per_tok`` of ``num_local_experts`` SwiGLU experts."""
    hidden = r.integer("hidden_size")
    attention = _attention(r, hidden, qkv_bias=False, out_bias=False, window=r.optional_integer("sliding_window"))
    moe = Moe(num_experts=r.integer("num_local_experts"), top_k=r.integer("num_experts_per_tok"), expert=_gated_mlp(r))
    layer = Layer(attention=attention, ffn=moe, norms=(_rms(hidden), _rms(hidden)))
    return _decoder(r, _uniform(layer, r.integer("num_hidden_layers")), final_norm=_rms(hidden))


def _phi3(r: ConfigReader) -> ModelSpec:
    """Phi3ForCausalLM: fused qkv_proj and gate_up_proj (same sizes as separate matrices), no biases."""
    hidden = r.integer("hidden_size")
    attention = _attention(r, hidden, qkv_bias=False, out_bias=False, window=r.optional_integer("sliding_window"))
    layer = Layer(attention=attention, ffn=_gated_mlp(r), norms=(_rms(hidden), _rms(hidden)))
    return _decoder(r, _uniform(layer, r.integer("num_hidden_layers")), final_norm=_rms(hidden))


# --- Gemma ----------------------------------------------------------------------------------------------------


def _gemma(r: ConfigReader) -> ModelSpec:
    """GemmaForCausalLM: explicit head_dim, GeGLU, tied embeddings, 2 RMSNorms per block."""
    hidden = r.integer("hidden_size")
    attention = _attention(r, hidden, qkv_bias=r.flag("attention_bias", False),
                           out_bias=r.flag("attention_bias", False))
    layer = Layer(attention=attention, ffn=_gated_mlp(r), norms=(_rms(hidden), _rms(hidden)))
    return _decoder(r, _uniform(layer, r.integer("num_hidden_layers")), final_norm=_rms(hidden), tie_default=True)


def _gemma_sandwich(r: ConfigReader, *, qk_norm: QkNormKind | None,
                    default_sliding: Callable[[int], bool]) -> ModelSpec:
    """Gemma 2/3: four RMSNorms per block (pre/post attention, pre/post MLP) and local/global layers."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    bias = r.flag("attention_bias", False)
    attention = _attention(r, hidden, qkv_bias=bias, out_bias=bias, qk_norm=qk_norm)
    base = Layer(attention=attention, ffn=_gated_mlp(r), norms=(_rms(hidden),) * 4)
    sliding = r.layer_types(num_layers, default_sliding)
    layers = _windowed(r, base, sliding, r.optional_integer("sliding_window"))
    return _decoder(r, layers, final_norm=_rms(hidden), tie_default=True)


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
    expert = _gated_mlp(r, "moe_intermediate_size", bias=mlp_bias)
    shared_count = r.config.get("n_shared_experts") or 0
    shared = Mlp(intermediate_size=expert.intermediate_size * shared_count, gated=True, bias=mlp_bias,
                 activation=expert.activation) if shared_count else None
    moe = Moe(num_experts=r.integer("n_routed_experts"), top_k=r.integer("num_experts_per_tok"), expert=expert,
              shared=shared)
    norms = (_rms(hidden), _rms(hidden))
    dense = Layer(attention=attention, ffn=_gated_mlp(r, bias=mlp_bias), norms=norms)
    sparse = Layer(attention=attention, ffn=moe, norms=norms)
    first_sparse = r.config.get("first_k_dense_replace") or 0
    layers = [sparse if i >= first_sparse else dense for i in range(num_layers)]
    extras: tuple[tuple[str, str], ...] = ()
    if r.config.get("num_nextn_predict_layers"):
        extras = (("mtp", "the multi-token-prediction module is not counted (transformers does not build it)"),)
    return _decoder(r, layers, final_norm=_rms(hidden), extras=extras)


# --- GPT-2, GPT-NeoX, OPT, Falcon, OLMo, StarCoder2, BERT -----------------------------------------------------


def _gpt2(r: ConfigReader) -> ModelSpec:
    """GPT2LMHeadModel (GPT-3 architectures too): learned positions, biases everywhere, 2 LayerNorms per
    block, MLP width ``n_inner`` (default 4·n_embd), tied output head. Keys: n_embd, n_layer, n_head."""
    hidden, heads = r.integer("n_embd"), r.integer("n_head")
    width = r.config.get("n_inner") or 4 * hidden
    attention = Attention(num_heads=heads, num_kv_heads=heads, head_dim=hidden // heads,
                          v_head_dim=hidden // heads, qkv_bias=True, out_bias=True)
    mlp = Mlp(intermediate_size=width, gated=False, bias=True, activation=r.text("activation_function", "gelu_new"))
    layer = Layer(attention=attention, ffn=mlp, norms=(_layer_norm(hidden), _layer_norm(hidden)))
    positions = r.integer("n_positions")
    return ModelSpec(name=r.name, model_type="gpt2", vocab_size=r.integer("vocab_size"), hidden_size=hidden,
                     layers=tuple(_uniform(layer, r.integer("n_layer"))), position=PositionKind.LEARNED,
                     max_position_embeddings=positions, learned_position_rows=positions,
                     tie_word_embeddings=r.flag("tie_word_embeddings", True), final_norm=_layer_norm(hidden),
                     torch_dtype=_dtype(r))


def _gpt_neox(r: ConfigReader) -> ModelSpec:
    """GPTNeoXForCausalLM: fused qkv with ``attention_bias``, plain GELU MLP with biases, parallel residual
    when ``use_parallel_residual``, 2 LayerNorms per block, untied ``embed_out``."""
    hidden = r.integer("hidden_size")
    bias = r.flag("attention_bias", True)
    attention = _attention(r, hidden, qkv_bias=bias, out_bias=bias)
    mlp = Mlp(intermediate_size=r.integer("intermediate_size"), gated=False, bias=True,
              activation=r.text("hidden_act", "gelu"))
    layer = Layer(attention=attention, ffn=mlp, norms=(_layer_norm(hidden), _layer_norm(hidden)),
                  parallel=r.flag("use_parallel_residual", True))
    return _decoder(r, _uniform(layer, r.integer("num_hidden_layers")), final_norm=_layer_norm(hidden))


def _opt(r: ConfigReader) -> ModelSpec:
    """OPTForCausalLM: learned positions with 2 extra rows, biases (``enable_bias``), plain ReLU MLP of
    ``ffn_dim``, 2 LayerNorms per block, final LayerNorm when ``do_layer_norm_before``; tied head."""
    hidden = r.integer("hidden_size")
    if r.config.get("word_embed_proj_dim", hidden) != hidden:
        raise ConfigError(
            f"{r.name}: word_embed_proj_dim ({r.config['word_embed_proj_dim']}) differs from hidden_size "
            f"({hidden}); OPT variants with input/output projections (opt-350m) are not supported yet"
        )
    bias = r.flag("enable_bias", True)
    affine = r.flag("layer_norm_elementwise_affine", True)
    norm = _layer_norm(hidden) if affine else Norm(kind=NormKind.NON_PARAMETRIC, size=hidden)
    heads = r.integer("num_attention_heads")
    attention = Attention(num_heads=heads, num_kv_heads=heads, head_dim=hidden // heads,
                          v_head_dim=hidden // heads, qkv_bias=bias, out_bias=bias)
    mlp = Mlp(intermediate_size=r.integer("ffn_dim"), gated=False, bias=bias, activation="relu")
    layer = Layer(attention=attention, ffn=mlp, norms=(norm, norm))
    final = norm if r.flag("do_layer_norm_before", True) and not r.config.get("_remove_final_layer_norm") else None
    positions = r.integer("max_position_embeddings")
    return _decoder(r, _uniform(layer, r.integer("num_hidden_layers")), final_norm=final, tie_default=True,
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
    layer = Layer(attention=attention, ffn=mlp, norms=(_layer_norm(hidden),) * norm_count, parallel=parallel)
    position = PositionKind.ALIBI if r.flag("alibi", False) else PositionKind.ROTARY
    return _decoder(r, _uniform(layer, r.integer("num_hidden_layers")), final_norm=_layer_norm(hidden),
                    tie_default=True, position=position)


def _olmo(r: ConfigReader) -> ModelSpec:
    """OlmoForCausalLM: Llama layout with non-parametric LayerNorms (no weights, no biases)."""
    hidden = r.integer("hidden_size")
    bias = r.flag("attention_bias", False)
    attention = _attention(r, hidden, qkv_bias=bias, out_bias=bias)
    norm = Norm(kind=NormKind.NON_PARAMETRIC, size=hidden)
    layer = Layer(attention=attention, ffn=_gated_mlp(r), norms=(norm, norm))
    return _decoder(r, _uniform(layer, r.integer("num_hidden_layers")), final_norm=norm)


def _olmo2(r: ConfigReader) -> ModelSpec:
    """Olmo2ForCausalLM: post-norm RMSNorms after attention and MLP, and RMSNorm over the whole q and k
    projections (num_heads·head_dim and num_kv_heads·head_dim channels)."""
    hidden = r.integer("hidden_size")
    bias = r.flag("attention_bias", False)
    attention = _attention(r, hidden, qkv_bias=bias, out_bias=bias, qk_norm=QkNormKind.FULL)
    layer = Layer(attention=attention, ffn=_gated_mlp(r), norms=(_rms(hidden), _rms(hidden)))
    return _decoder(r, _uniform(layer, r.integer("num_hidden_layers")), final_norm=_rms(hidden))


def _starcoder2(r: ConfigReader) -> ModelSpec:
    """Starcoder2ForCausalLM: GQA with ``use_bias`` on all projections, plain GELU MLP, LayerNorms with bias,
    optional sliding window, tied head."""
    hidden = r.integer("hidden_size")
    bias = r.flag("use_bias", True)
    attention = _attention(r, hidden, qkv_bias=bias, out_bias=bias, window=r.optional_integer("sliding_window"))
    mlp = Mlp(intermediate_size=r.integer("intermediate_size"), gated=False, bias=bias,
              activation=r.text("hidden_act", "gelu_pytorch_tanh"))
    layer = Layer(attention=attention, ffn=mlp, norms=(_layer_norm(hidden), _layer_norm(hidden)))
    return _decoder(r, _uniform(layer, r.integer("num_hidden_layers")), final_norm=_layer_norm(hidden),
                    tie_default=True)


def _bert(r: ConfigReader) -> ModelSpec:
    """BertModel (encoder-only, with pooler): word + learned position + token-type embeddings and their
    LayerNorm; post-norm blocks with biases everywhere and 2 LayerNorms; no LM head."""
    hidden = r.integer("hidden_size")
    attention = _attention(r, hidden, qkv_bias=True, out_bias=True)
    mlp = Mlp(intermediate_size=r.integer("intermediate_size"), gated=False, bias=True,
              activation=r.text("hidden_act", "gelu"))
    layer = Layer(attention=attention, ffn=mlp, norms=(_layer_norm(hidden), _layer_norm(hidden)))
    positions = r.integer("max_position_embeddings")
    return _decoder(r, _uniform(layer, r.integer("num_hidden_layers")), final_norm=None, tie_default=True,
                    position=PositionKind.LEARNED, learned_position_rows=positions,
                    token_type_vocab_size=r.integer("type_vocab_size", 2), embedding_norm=_layer_norm(hidden),
                    lm_head=False, pooler=True, causal=False)


ADAPTERS: Mapping[str, Callable[[ConfigReader], ModelSpec]] = {
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
    "phi3": _phi3,
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


def spec_from_config(config: Mapping[str, Any], *, name: str, source: str = "") -> ModelSpec:
    """Build a ModelSpec from a parsed config.json through the adapter for its ``model_type``."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"{name}: config.json must hold a JSON object, got {type(config).__name__}")
    model_type = config.get("model_type")
    if "text_config" in config and model_type not in ADAPTERS:
        return spec_from_config(config["text_config"], name=name, source=source)
    if model_type is None:
        raise ConfigError(f"{name}: config.json has no 'model_type'; add it (e.g. \"llama\")")
    adapter = ADAPTERS.get(model_type)
    if adapter is None:
        raise UnsupportedArchitecture(
            f"{name}: model_type '{model_type}' is not supported; supported: {', '.join(sorted(ADAPTERS))}"
        )
    spec = adapter(ConfigReader(config, name=name))
    return replace(spec, source=source) if source else spec
