"""Adapters for dense families released since 2024: Cohere Command-R (cohere) and Command-R7B / Command-A
(cohere2), InternLM3, SmolLM3, OLMo 3, Seed-OSS, EXAONE 4.0, Apertus, Arcee AFM, GLM-4-0414 (glm4), ERNIE 4.5
(ernie4_5) and Hunyuan dense (hunyuan_v1_dense).

Each mirrors how the transformers implementation of that family builds its modules (which projections carry
biases, how many norms a block holds, which layers use a sliding window and which skip RoPE). Read the
``modeling_<type>.py`` (or ``modular_<type>.py``) of transformers 5.23 next to each function."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from suanli.errors import ConfigError
from suanli.spec.hf_common import (
    ConfigReader,
    build_attention,
    decoder_spec,
    gated_mlp,
    layer_norm,
    rms_norm,
    uniform_layers,
)
from suanli.spec.model import Attention, Layer, Mlp, ModelSpec, QkNormKind

# --- shared helpers -------------------------------------------------------------------------------------------


def _per_layer(base: Layer, sliding: list[bool], rope: list[bool], window: int | None) -> list[Layer]:
    """One layer per index: the sliding window where ``sliding`` is True (and a window is set), RoPE where
    ``rope`` is True. Equal variants are one shared object, so ``ModelSpec`` groups them cheaply."""
    if base.attention is None:
        raise ConfigError("a dense decoder layer needs attention", key="error.model.dense_needs_attention")
    variants: dict[tuple[bool, bool], Layer] = {}
    layers = []
    for is_local, has_rope in zip(sliding, rope, strict=True):
        key = (is_local and window is not None, has_rope)
        if key not in variants:
            attention = replace(base.attention, sliding_window=window if key[0] else None, rope=has_rope)
            variants[key] = replace(base, attention=attention)
        layers.append(variants[key])
    return layers


def _plain_mlp(r: ConfigReader, *, bias: bool, activation: str, activation_params: int = 0) -> Mlp:
    """An up/down MLP without a gate (NemotronMLP: ``down(act(up(x)))``)."""
    return Mlp(intermediate_size=r.integer("intermediate_size"), gated=False, bias=bias, activation=activation,
               activation_params=activation_params)


def _pattern_sliding(r: ConfigReader, num_layers: int, pattern: int | str | None) -> list[bool]:
    """Local/global layers from ``layer_types`` or, on older configs, ``sliding_window_pattern``: an integer P
    makes every P-th layer global; a string such as "LLLG" repeats from layer 0 (L local, G global)."""
    if isinstance(pattern, str) and pattern and set(pattern) <= {"L", "G"}:
        return r.layer_types(num_layers, lambda i: pattern[i % len(pattern)] == "L")
    if isinstance(pattern, int) and not isinstance(pattern, bool) and pattern > 0:
        return r.layer_types(num_layers, lambda i: (i + 1) % pattern != 0)
    if pattern is None or pattern == 0:
        return r.layer_types(num_layers, lambda i: False)
    raise ConfigError(f"{r.name}: 'sliding_window_pattern' must be a positive integer or a string of L and G "
                      f"(e.g. \"LLLG\"), got {pattern!r}", key="error.model.sliding_window_pattern",
                      fields={"name": r.name, "value": pattern})


# --- Cohere ---------------------------------------------------------------------------------------------------


def _cohere(r: ConfigReader) -> ModelSpec:
    """CohereForCausalLM (Command-R, Aya 23): one bias-free LayerNorm per block feeding attention and the SwiGLU
    MLP in parallel; ``attention_bias`` on q/k/v/o; with ``use_qk_norm`` a LayerNorm weight per head and
    channel on q and k (heads·head_dim + kv_heads·head_dim weights, counted as ``QkNormKind.FULL``); tied
    head whose logits are scaled by ``logit_scale`` (a multiply, no parameter, no matmul)."""
    hidden = r.integer("hidden_size")
    bias = r.flag("attention_bias", False)
    qk_norm = QkNormKind.FULL if r.flag("use_qk_norm", False) else None
    attention = build_attention(r, hidden, qkv_bias=bias, out_bias=bias, qk_norm=qk_norm)
    layer = Layer(attention=attention, ffn=gated_mlp(r), norms=(layer_norm(hidden, bias=False),), parallel=True)
    return decoder_spec(r, uniform_layers(layer, r.integer("num_hidden_layers")),
                        final_norm=layer_norm(hidden, bias=False), tie_default=True)


def _cohere2(r: ConfigReader) -> ModelSpec:
    """Cohere2ForCausalLM (Command-R7B, Command-A): Cohere's parallel block with local/global layers. Sliding
    layers (``layer_types``, else every ``sliding_window_pattern``-th layer global, default 4) use RoPE;
    global layers use no positional encoding. head_dim is always hidden_size / num_attention_heads."""
    hidden, heads, num_layers = r.integer("hidden_size"), r.integer("num_attention_heads"), r.integer(
        "num_hidden_layers")
    if hidden % heads:
        raise ConfigError(f"{r.name}: hidden_size ({hidden}) is not divisible by num_attention_heads ({heads}); "
                          "Cohere2 derives head_dim from them", key="error.model.cohere2_head_dim",
                          fields={"name": r.name, "hidden": hidden, "heads": heads})
    bias = r.flag("attention_bias", False)
    kv_heads = r.integer("num_key_value_heads") if r.config.get("num_key_value_heads") else heads
    attention = Attention(num_heads=heads, num_kv_heads=kv_heads, head_dim=hidden // heads,
                          v_head_dim=hidden // heads, qkv_bias=bias, out_bias=bias)
    base = Layer(attention=attention, ffn=gated_mlp(r), norms=(layer_norm(hidden, bias=False),), parallel=True)
    sliding = _pattern_sliding(r, num_layers, r.config.get("sliding_window_pattern", 4))
    layers = _per_layer(base, sliding, rope=sliding, window=r.optional_integer("sliding_window"))
    return decoder_spec(r, layers, final_norm=layer_norm(hidden, bias=False), tie_default=True)


# --- Llama-layout families ------------------------------------------------------------------------------------


def _llama_layout(r: ConfigReader, *, qkv_bias: bool, out_bias: bool, ffn: Mlp,
                  qk_norm: QkNormKind | None = None) -> Layer:
    hidden = r.integer("hidden_size")
    attention = build_attention(r, hidden, qkv_bias=qkv_bias, out_bias=out_bias, qk_norm=qk_norm)
    return Layer(attention=attention, ffn=ffn, norms=(rms_norm(hidden), rms_norm(hidden)))


def _internlm3(r: ConfigReader) -> ModelSpec:
    """InternLM3 (built by transformers as LlamaForCausalLM): ``qkv_bias`` on q/k/v/o and ``bias`` on the
    SwiGLU MLP (aliases of attention_bias / mlp_bias), explicit head_dim."""
    attention_bias = r.flag("qkv_bias", r.flag("attention_bias", False))
    mlp_bias = r.flag("bias", r.flag("mlp_bias", False))
    layer = _llama_layout(r, qkv_bias=attention_bias, out_bias=attention_bias, ffn=gated_mlp(r, bias=mlp_bias))
    return decoder_spec(r, uniform_layers(layer, r.integer("num_hidden_layers")),
                        final_norm=rms_norm(r.integer("hidden_size")))


def _smollm3(r: ConfigReader) -> ModelSpec:
    """SmolLM3ForCausalLM: Llama layout; layer i uses RoPE when ``no_rope_layers[i]`` is 1 (default: every
    ``no_rope_layer_interval``-th layer is NoPE); with ``use_sliding_window`` the layers ``layer_types`` marks
    (by default the NoPE ones) slide. Tied embeddings by default."""
    num_layers = r.integer("num_hidden_layers")
    bias = r.flag("attention_bias", False)
    base = _llama_layout(r, qkv_bias=bias, out_bias=bias, ffn=gated_mlp(r, bias=r.flag("mlp_bias", False)))
    rope = _rope_layers(r, num_layers)
    window = r.optional_integer("sliding_window") if r.flag("use_sliding_window", False) else None
    sliding = r.layer_types(num_layers, lambda i: window is not None and not rope[i])
    return decoder_spec(r, _per_layer(base, sliding, rope, window), final_norm=rms_norm(r.integer("hidden_size")),
                        tie_default=True)


def _rope_layers(r: ConfigReader, num_layers: int) -> list[bool]:
    flags = r.integer_list("no_rope_layers") if r.config.get("no_rope_layers") is not None else None
    if flags is None:
        interval = r.integer("no_rope_layer_interval", 4)
        return [(i + 1) % interval != 0 for i in range(num_layers)]
    if len(flags) != num_layers:
        raise ConfigError(f"{r.name}: 'no_rope_layers' must list {num_layers} entries (1 = RoPE, 0 = NoPE), "
                          f"got {len(flags)}", key="error.model.no_rope_layers_flags",
                          fields={"name": r.name, "layers": num_layers, "count": len(flags)})
    return [bool(flag) for flag in flags]


def _olmo3(r: ConfigReader) -> ModelSpec:
    """Olmo3ForCausalLM: OLMo 2's block (post-norm RMSNorms, q/k RMSNorm over the whole projections) with
    sliding-window layers from ``layer_types`` (default: three local, then one global)."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    bias = r.flag("attention_bias", False)
    base = _llama_layout(r, qkv_bias=bias, out_bias=bias, ffn=gated_mlp(r), qk_norm=QkNormKind.FULL)
    sliding = r.layer_types(num_layers, lambda i: (i + 1) % 4 != 0)
    layers = _per_layer(base, sliding, [True] * num_layers, r.optional_integer("sliding_window"))
    return decoder_spec(r, layers, final_norm=rms_norm(hidden))


def _seed_oss(r: ConfigReader) -> ModelSpec:
    """SeedOssForCausalLM (ByteDance Seed-OSS): ``attention_bias`` on q/k/v, ``attention_out_bias`` on o,
    ``mlp_bias`` on the SwiGLU MLP, explicit head_dim."""
    layer = _llama_layout(r, qkv_bias=r.flag("attention_bias", False), out_bias=r.flag("attention_out_bias", False),
                          ffn=gated_mlp(r, bias=r.flag("mlp_bias", False)))
    return decoder_spec(r, uniform_layers(layer, r.integer("num_hidden_layers")),
                        final_norm=rms_norm(r.integer("hidden_size")))


def _exaone4(r: ConfigReader) -> ModelSpec:
    """Exaone4ForCausalLM (EXAONE 4.0): bias-free q/k/v/o with per-head q/k RMSNorm, post-norm RMSNorms after
    attention and MLP (OLMo 2's layout), bias-free SwiGLU. With a ``sliding_window``, local layers follow
    ``layer_types`` or ``sliding_window_pattern`` and global layers skip RoPE (hybrid NoPE)."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    base = _llama_layout(r, qkv_bias=False, out_bias=False, ffn=gated_mlp(r), qk_norm=QkNormKind.PER_HEAD)
    window = r.optional_integer("sliding_window")
    if window is None:
        return decoder_spec(r, uniform_layers(base, num_layers), final_norm=rms_norm(hidden))
    sliding = _pattern_sliding(r, num_layers, r.config.get("sliding_window_pattern", 4))
    return decoder_spec(r, _per_layer(base, sliding, rope=sliding, window=window), final_norm=rms_norm(hidden))


def _apertus(r: ConfigReader) -> ModelSpec:
    """ApertusForCausalLM (Swiss AI): Llama attention with ``attention_bias`` plus per-head q/k RMSNorm (built
    whatever the config's ``qk_norm`` says), a bias-free up/down MLP with the xIELU activation, whose
    alpha_p and alpha_n are learnable (2 parameters per MLP; arXiv:2411.13010), 2 RMSNorms per block."""
    bias = r.flag("attention_bias", False)
    activation = r.text("hidden_act", "xielu")
    mlp = _plain_mlp(r, bias=False, activation=activation, activation_params=2 if activation == "xielu" else 0)
    layer = _llama_layout(r, qkv_bias=bias, out_bias=bias, ffn=mlp, qk_norm=QkNormKind.PER_HEAD)
    return decoder_spec(r, uniform_layers(layer, r.integer("num_hidden_layers")),
                        final_norm=rms_norm(r.integer("hidden_size")))


def _arcee(r: ConfigReader) -> ModelSpec:
    """ArceeForCausalLM (AFM-4.5B): Llama with a non-gated up/down MLP (``mlp_bias``) and ReLU² activation."""
    bias = r.flag("attention_bias", False)
    mlp = _plain_mlp(r, bias=r.flag("mlp_bias", False), activation=r.text("hidden_act", "relu2"))
    layer = _llama_layout(r, qkv_bias=bias, out_bias=bias, ffn=mlp)
    return decoder_spec(r, uniform_layers(layer, r.integer("num_hidden_layers")),
                        final_norm=rms_norm(r.integer("hidden_size")))


def _glm4(r: ConfigReader) -> ModelSpec:
    """Glm4ForCausalLM (GLM-4-0414): ``attention_bias`` on q/k/v only (o_proj has none), fused gate_up SwiGLU
    (the same sizes as separate matrices), four RMSNorms per block (before and after attention and MLP);
    RoPE on ``partial_rotary_factor`` of head_dim (no parameters)."""
    hidden = r.integer("hidden_size")
    attention = build_attention(r, hidden, qkv_bias=r.flag("attention_bias", False), out_bias=False)
    layer = Layer(attention=attention, ffn=gated_mlp(r), norms=(rms_norm(hidden),) * 4)
    return decoder_spec(r, uniform_layers(layer, r.integer("num_hidden_layers")), final_norm=rms_norm(hidden))


def _ernie4_5(r: ConfigReader) -> ModelSpec:
    """Ernie4_5ForCausalLM (ERNIE 4.5 dense): ``use_bias`` on q/k/v/o and on the SwiGLU MLP, explicit head_dim,
    tied embeddings by default."""
    bias = r.flag("use_bias", False)
    layer = _llama_layout(r, qkv_bias=bias, out_bias=bias, ffn=gated_mlp(r, bias=bias))
    return decoder_spec(r, uniform_layers(layer, r.integer("num_hidden_layers")),
                        final_norm=rms_norm(r.integer("hidden_size")), tie_default=True)


def _hunyuan_v1_dense(r: ConfigReader) -> ModelSpec:
    """HunYuanDenseV1ForCausalLM (Hunyuan-7B and its smaller siblings): Llama attention with ``attention_bias``
    plus per-head q/k RMSNorm after RoPE (built whatever ``use_qk_norm`` says), bias-free SwiGLU."""
    bias = r.flag("attention_bias", False)
    layer = _llama_layout(r, qkv_bias=bias, out_bias=bias, ffn=gated_mlp(r), qk_norm=QkNormKind.PER_HEAD)
    return decoder_spec(r, uniform_layers(layer, r.integer("num_hidden_layers")),
                        final_norm=rms_norm(r.integer("hidden_size")))


RECENT_DENSE_ADAPTERS: Mapping[str, Callable[[ConfigReader], ModelSpec]] = {
    "cohere": _cohere,
    "cohere2": _cohere2,
    "internlm3": _internlm3,
    "smollm3": _smollm3,
    "olmo3": _olmo3,
    "seed_oss": _seed_oss,
    "exaone4": _exaone4,
    "apertus": _apertus,
    "arcee": _arcee,
    "glm4": _glm4,
    "ernie4_5": _ernie4_5,
    "hunyuan_v1_dense": _hunyuan_v1_dense,
}
