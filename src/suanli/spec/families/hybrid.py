"""Adapters for state-space and hybrid families: Mamba-2, Nemotron-H, Bamba and Jamba.

Each reads the layer pattern exactly as transformers does: Nemotron-H's ``hybrid_override_pattern`` (or
``layers_block_type``), Bamba's ``attn_layer_indices``, Jamba's ``attn_layer_period``/``attn_layer_offset``
and ``expert_layer_period``/``expert_layer_offset``. Mamba mixers are described by the fields their
transformers modules read (``Mamba2Mixer``, ``NemotronHMamba2Mixer``, ``BambaMixer``, ``JambaMambaMixer``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import replace

from suanli.errors import ConfigError, UnsupportedArchitecture
from suanli.spec.hf_common import ConfigReader, build_attention, decoder_spec, gated_mlp, rms_norm
from suanli.spec.model import (
    UNBOUNDED_CONTEXT,
    GatedDeltaNet,
    Layer,
    LightningAttention,
    Mamba2Mixer,
    MambaMixer,
    Mlp,
    ModelSpec,
    Moe,
    PositionKind,
    QkNormKind,
    ShortConv,
)

_NO_POSITION = PositionKind.NONE
_SSM_NOTE = ("state-space", "Mamba layers keep a fixed conv + SSM state per sequence instead of a KV cache "
                            "(memory.per_gpu.ssm_state_bytes); their training activations are approximate "
                            "(core/activations_ssm.py), their parameters and FLOPs exact")


def _mamba2_mixer(r: ConfigReader, *, heads: str, head_dim: int, state: str, groups: str, conv: str,
                  chunk: str, proj_bias: bool, conv_bias: bool) -> Mamba2Mixer:
    return Mamba2Mixer(num_heads=r.integer(heads), head_dim=head_dim, d_state=r.integer(state),
                       n_groups=r.integer(groups), conv_kernel=r.integer(conv), chunk_size=r.integer(chunk),
                       proj_bias=proj_bias, conv_bias=conv_bias)


def _check_inner(r: ConfigReader, mixer: Mamba2Mixer, expand_key: str, hidden: int) -> None:
    """transformers sizes in_proj from expand · hidden but the heads from num_heads · head_dim; they must agree."""
    inner = int(r.integer(expand_key) * hidden)
    if inner != mixer.intermediate_size:
        raise ConfigError(f"{r.name}: {expand_key} × hidden_size ({inner}) differs from mamba heads × head_dim "
                          f"({mixer.num_heads} × {mixer.head_dim} = {mixer.intermediate_size})",
                          key="error.model.mamba_inner",
                          fields={"name": r.name, "expand_key": expand_key, "inner": inner, "heads": mixer.num_heads,
                                  "head_dim": mixer.head_dim, "width": mixer.intermediate_size})


def _mamba_n_mixer(r: ConfigReader, hidden: int) -> Mamba2Mixer:
    """The Mamba-2 mixer of Bamba and GraniteMoeHybrid (``mamba_n_*`` keys): head_dim is ``mamba_d_head`` or,
    when "auto", expand · h / heads."""
    heads = r.integer("mamba_n_heads")
    auto = r.config.get("mamba_d_head", "auto") == "auto"
    head_dim = r.integer("mamba_expand") * hidden // heads if auto else r.integer("mamba_d_head")
    mixer = _mamba2_mixer(r, heads="mamba_n_heads", head_dim=head_dim, state="mamba_d_state",
                          groups="mamba_n_groups", conv="mamba_d_conv", chunk="mamba_chunk_size",
                          proj_bias=r.flag("mamba_proj_bias", False), conv_bias=r.flag("mamba_conv_bias", True))
    _check_inner(r, mixer, "mamba_expand", hidden)
    return mixer


def _mamba2(r: ConfigReader) -> ModelSpec:
    """Mamba2ForCausalLM: every block is RMSNorm + Mamba2Mixer (no MLP, no attention); final ``norm_f``."""
    hidden = r.integer("hidden_size")
    mixer = _mamba2_mixer(r, heads="num_heads", head_dim=r.integer("head_dim"), state="state_size",
                          groups="n_groups", conv="conv_kernel", chunk="chunk_size",
                          proj_bias=r.flag("use_bias", False), conv_bias=r.flag("use_conv_bias", True))
    _check_inner(r, mixer, "expand", hidden)
    layer = Layer(mixer=mixer, norms=(rms_norm(hidden),))
    spec = decoder_spec(r, [layer] * r.integer("num_hidden_layers"), final_norm=rms_norm(hidden), extras=(_SSM_NOTE,),
                        position=_NO_POSITION)
    if "max_position_embeddings" in r.config:
        return spec
    return replace(spec, max_position_embeddings=UNBOUNDED_CONTEXT)  # Mamba-2 configs state none


_NEMOTRON_PATTERN = {"M": "linear_attention", "E": "moe", "*": "full_attention", "-": "mlp"}


def _nemotron_types(r: ConfigReader) -> list[str]:
    """``layers_block_type`` when given, else ``hybrid_override_pattern`` (M mamba, * attention, - MLP, E MoE)."""
    types = r.config.get("layers_block_type")
    if types is None:
        pattern = r.text("hybrid_override_pattern")
        unknown = sorted(set(pattern) - set(_NEMOTRON_PATTERN))
        if unknown:
            raise ConfigError(f"{r.name}: hybrid_override_pattern has unknown symbols {unknown}; "
                              "transformers reads M, *, - and E", key="error.model.nemotron_pattern_symbols",
                              fields={"name": r.name, "unknown": unknown})
        types = [_NEMOTRON_PATTERN[c] for c in pattern]
    legacy = {"mamba": "linear_attention", "attention": "full_attention"}
    return [legacy.get(t, t) for t in types]


def _nemotron_h(r: ConfigReader) -> ModelSpec:
    """NemotronHForCausalLM: each block is one RMSNorm and one mixer: Mamba-2, attention (no biases), a
    non-gated MLP (relu² by ``mlp_hidden_act``) or MoE. ``intermediate_size`` = mamba_num_heads ×
    mamba_head_dim; the Mamba projections carry ``use_bias``."""
    hidden = r.integer("hidden_size")
    types = _nemotron_types(r)
    norms = (rms_norm(hidden),)
    mixer = _mamba2_mixer(r, heads="mamba_num_heads", head_dim=r.integer("mamba_head_dim"),
                          state="ssm_state_size", groups="n_groups", conv="conv_kernel", chunk="chunk_size",
                          proj_bias=r.flag("use_bias", False), conv_bias=r.flag("use_conv_bias", True))
    attention = build_attention(r, hidden, qkv_bias=r.flag("attention_bias", False),
                                out_bias=r.flag("attention_bias", False))
    blocks: dict[str, Layer] = {"linear_attention": Layer(mixer=mixer, norms=norms),
                                "full_attention": Layer(attention=attention, norms=norms)}
    if "mlp" in types:
        mlp = Mlp(intermediate_size=r.integer("intermediate_size"), gated=False, bias=r.flag("mlp_bias", False),
                  activation=r.text("mlp_hidden_act", "relu2"))
        blocks["mlp"] = Layer(ffn=mlp, norms=norms)
    unknown = sorted(set(types) - set(blocks))
    if unknown:
        raise UnsupportedArchitecture(f"{r.name}: Nemotron-H block types {unknown} are not supported yet "
                                      "(supported: Mamba-2 'M', attention '*', MLP '-')",
                                      key="error.model.nemotron_block_types",
                                      fields={"name": r.name, "unknown": unknown})
    return decoder_spec(r, [blocks[t] for t in types], final_norm=rms_norm(hidden), extras=(_SSM_NOTE,),
                        position=_NO_POSITION)


def _bamba(r: ConfigReader) -> ModelSpec:
    """BambaForCausalLM: attention at ``attn_layer_indices``, Mamba-2 elsewhere; every block also holds a
    SwiGLU MLP and two RMSNorms; the mixer is :func:`_mamba_n_mixer`."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    mixer = _mamba_n_mixer(r, hidden)
    norms = (rms_norm(hidden), rms_norm(hidden))
    mlp = gated_mlp(r)
    attention = build_attention(r, hidden, qkv_bias=r.flag("attention_bias", False),
                                out_bias=r.flag("attention_bias", False))
    attn_layer = Layer(attention=attention, ffn=mlp, norms=norms)
    mamba_layer = Layer(mixer=mixer, ffn=mlp, norms=norms)
    indices = set(r.integer_list("attn_layer_indices"))
    return decoder_spec(r, [attn_layer if i in indices else mamba_layer for i in range(num_layers)],
                        final_norm=rms_norm(hidden), extras=(_SSM_NOTE,))


def _jamba(r: ConfigReader) -> ModelSpec:
    """JambaForCausalLM: layer i is attention when i % attn_layer_period == attn_layer_offset, else Mamba-1
    (with dt/B/C RMSNorms); its feed-forward is MoE when i % expert_layer_period == expert_layer_offset,
    else a SwiGLU MLP; two RMSNorms per block. ``mamba_dt_rank`` "auto" is ⌈h / 16⌉."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    rank = r.config.get("mamba_dt_rank", "auto")
    mixer = MambaMixer(intermediate_size=r.integer("mamba_expand") * hidden, d_state=r.integer("mamba_d_state"),
                       conv_kernel=r.integer("mamba_d_conv"),
                       dt_rank=math.ceil(hidden / 16) if rank == "auto" else r.integer("mamba_dt_rank"),
                       proj_bias=r.flag("mamba_proj_bias", False), conv_bias=r.flag("mamba_conv_bias", True),
                       inner_norms=True)
    attention = build_attention(r, hidden, qkv_bias=False, out_bias=False)
    mlp = gated_mlp(r)
    moe = Moe(num_experts=r.integer("num_experts"), top_k=r.integer("num_experts_per_tok"), expert=mlp)
    attn_period, attn_offset = r.integer("attn_layer_period"), r.config.get("attn_layer_offset", 4)
    expert_period, expert_offset = r.integer("expert_layer_period"), r.config.get("expert_layer_offset", 1)
    norms = (rms_norm(hidden), rms_norm(hidden))
    layers: dict[tuple[bool, bool], Layer] = {}
    chosen = []
    for i in range(num_layers):
        key = (i % attn_period == attn_offset, moe.num_experts > 1 and i % expert_period == expert_offset)
        if key not in layers:
            ffn: Mlp | Moe = moe if key[1] else mlp
            layers[key] = (Layer(attention=attention, ffn=ffn, norms=norms) if key[0]
                           else Layer(mixer=mixer, ffn=ffn, norms=norms))
        chosen.append(layers[key])
    return decoder_spec(r, chosen, final_norm=rms_norm(hidden), extras=(_SSM_NOTE,), position=_NO_POSITION)


def _qwen3_next_types(r: ConfigReader, num_layers: int) -> list[str]:
    """``layer_types`` when given, else full attention every ``full_attention_interval`` (default 4) layers, at
    layer i when (i + 1) is a multiple of it (Qwen3NextConfig)."""
    types = r.config.get("layer_types")
    if types is None:
        interval = r.integer("full_attention_interval", 4)
        return ["linear_attention" if (i + 1) % interval else "full_attention" for i in range(num_layers)]
    if not isinstance(types, list) or len(types) != num_layers or set(types) - {"linear_attention", "full_attention"}:
        raise ConfigError(f"{r.name}: 'layer_types' must list {num_layers} entries, each 'linear_attention' or "
                          f"'full_attention'; got {types!r}", key="error.model.layer_types_attention",
                          fields={"name": r.name, "layers": num_layers, "value": types})
    return list(types)


def _qwen3_next(r: ConfigReader) -> ModelSpec:
    """Qwen3NextForCausalLM: Gated DeltaNet layers and gated attention (q_proj also emits an output gate;
    per-head q/k RMSNorms; ``attention_bias``); each layer's feed-forward is MoE (routed experts, one shared
    expert with a sigmoid gate) unless listed in ``mlp_only_layers`` or off the ``decoder_sparse_step``;
    two RMSNorms per block."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    bias = r.flag("attention_bias", False)
    attention = replace(build_attention(r, hidden, qkv_bias=bias, out_bias=bias, qk_norm=QkNormKind.PER_HEAD),
                        output_gate=True)
    mixer = GatedDeltaNet(num_k_heads=r.integer("linear_num_key_heads"),
                          num_v_heads=r.integer("linear_num_value_heads"),
                          head_k_dim=r.integer("linear_key_head_dim"), head_v_dim=r.integer("linear_value_head_dim"),
                          conv_kernel=r.integer("linear_conv_kernel_dim"))
    shared_size = r.config.get("shared_expert_intermediate_size") or 0
    moe = Moe(num_experts=r.integer("num_experts"), top_k=r.integer("num_experts_per_tok"),
              expert=gated_mlp(r, "moe_intermediate_size"),
              shared=gated_mlp(r, "shared_expert_intermediate_size") if shared_size else None, shared_gate=True)
    dense = gated_mlp(r)
    dense_only, step = set(r.integer_list("mlp_only_layers")), r.integer("decoder_sparse_step", 1)
    norms = (rms_norm(hidden), rms_norm(hidden))
    blocks: dict[tuple[str, bool], Layer] = {}
    layers = []
    for i, kind in enumerate(_qwen3_next_types(r, num_layers)):
        sparse = i not in dense_only and (i + 1) % step == 0
        if (kind, sparse) not in blocks:
            ffn: Mlp | Moe = moe if sparse else dense
            blocks[(kind, sparse)] = (Layer(attention=attention, ffn=ffn, norms=norms) if kind == "full_attention"
                                      else Layer(mixer=mixer, ffn=ffn, norms=norms))
        layers.append(blocks[(kind, sparse)])
    return decoder_spec(r, layers, final_norm=rms_norm(hidden), extras=(_SSM_NOTE,))


def _granite_types(r: ConfigReader, num_layers: int) -> list[str]:
    """``layer_types`` (alias ``layers_block_type``) with "mamba"/"attention" read as transformers' legacy
    names for "linear_attention"/"full_attention"; all Mamba when absent (GraniteMoeHybridConfig)."""
    types = r.config.get("layer_types") or r.config.get("layers_block_type")
    if types is None:
        return ["linear_attention"] * num_layers
    legacy = {"mamba": "linear_attention", "attention": "full_attention"}
    types = [legacy.get(t, t) for t in types] if isinstance(types, list) else types
    if not isinstance(types, list) or len(types) != num_layers or set(types) - {"linear_attention", "full_attention"}:
        raise ConfigError(f"{r.name}: 'layer_types' must list {num_layers} entries, each 'mamba' or 'attention'; "
                          f"got {r.config.get('layer_types')!r}", key="error.model.layer_types_mamba",
                          fields={"name": r.name, "layers": num_layers, "value": r.config.get("layer_types")})
    return types


def _granitemoehybrid(r: ConfigReader) -> ModelSpec:
    """GraniteMoeHybridForCausalLM (Granite 4.0-H): Mamba-2 or attention by ``layer_types``; every block holds
    a MoE (``num_local_experts`` gated experts of ``intermediate_size``, bias-free router) when it has
    experts, and always a gated shared MLP of ``shared_intermediate_size``; two RMSNorms per block. RoPE
    only when ``position_embedding_type`` is "rope" (the released H models use "nope")."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    mixer = _mamba_n_mixer(r, hidden)
    bias = r.flag("attention_bias", False)
    attention = build_attention(r, hidden, qkv_bias=bias, out_bias=bias)
    shared = gated_mlp(r, "shared_intermediate_size")
    experts = r.config.get("num_local_experts") or 0
    ffn: Mlp | Moe = (Moe(num_experts=r.integer("num_local_experts"), top_k=r.integer("num_experts_per_tok"),
                          expert=gated_mlp(r), shared=shared) if experts else shared)
    norms = (rms_norm(hidden), rms_norm(hidden))
    blocks = {"full_attention": Layer(attention=attention, ffn=ffn, norms=norms),
              "linear_attention": Layer(mixer=mixer, ffn=ffn, norms=norms)}
    rope = r.config.get("position_embedding_type") == "rope"
    return decoder_spec(r, [blocks[t] for t in _granite_types(r, num_layers)], final_norm=rms_norm(hidden),
                        extras=(_SSM_NOTE,), position=PositionKind.ROTARY if rope else _NO_POSITION)


def _lfm2_ff_dim(r: ConfigReader) -> int:
    """Lfm2MLP's width: ``intermediate_size`` (alias ``block_ff_dim``), with ``block_auto_adjust_ff_dim`` taken
    to int(2/3 × it), times ``block_ffn_dim_multiplier`` and rounded up to ``block_multiple_of``."""
    size = r.integer("block_ff_dim") if "block_ff_dim" in r.config else r.integer("intermediate_size")
    if not r.flag("block_auto_adjust_ff_dim", True):
        return size
    size = int(2 * size / 3)
    multiplier = r.config.get("block_ffn_dim_multiplier", 1.0)
    if multiplier is None:
        return size
    if isinstance(multiplier, bool) or not isinstance(multiplier, int | float) or multiplier <= 0:
        raise ConfigError(f"{r.name}: 'block_ffn_dim_multiplier' must be a positive number, got {multiplier!r}",
                          key="error.model.ffn_multiplier", fields={"name": r.name, "value": multiplier})
    size = int(multiplier * size)
    multiple = r.integer("block_multiple_of", 256)
    return multiple * ((size + multiple - 1) // multiple)


def _lfm2_types(r: ConfigReader, num_layers: int) -> list[bool]:
    """Per layer, True for attention: ``layer_types`` ("conv" or "full_attention") when given, else
    ``full_attn_idxs`` (every layer when absent, as Lfm2Config)."""
    types = r.config.get("layer_types")
    if types is not None:
        if not isinstance(types, list) or len(types) != num_layers:
            raise ConfigError(f"{r.name}: 'layer_types' must list {num_layers} entries, got {types!r}",
                              key="error.model.layer_types_count",
                              fields={"name": r.name, "layers": num_layers, "value": types})
        return [t != "conv" for t in types]
    indices = set(r.integer_list("full_attn_idxs")) if "full_attn_idxs" in r.config else set(range(num_layers))
    return [i in indices for i in range(num_layers)]


def _lfm2(r: ConfigReader) -> ModelSpec:
    """Lfm2ForCausalLM: gated short-convolution layers and attention (per-head q/k RMSNorms, no biases)
    interleaved; a SwiGLU MLP (``_lfm2_ff_dim``) and two RMSNorms per block; the final norm is named
    ``embedding_norm``; ``tie_embedding`` is the legacy name of tie_word_embeddings."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    conv = ShortConv(channels=hidden, conv_kernel=r.integer("conv_L_cache", 3), bias=r.flag("conv_bias", False))
    attention = build_attention(r, hidden, qkv_bias=False, out_bias=False, qk_norm=QkNormKind.PER_HEAD)
    mlp = Mlp(intermediate_size=_lfm2_ff_dim(r), gated=True)
    norms = (rms_norm(hidden), rms_norm(hidden))
    attn_layer, conv_layer = Layer(attention=attention, ffn=mlp, norms=norms), Layer(mixer=conv, ffn=mlp, norms=norms)
    tie = r.flag("tie_embedding", True) if "tie_embedding" in r.config else r.flag("tie_word_embeddings", True)
    spec = decoder_spec(r, [attn_layer if a else conv_layer for a in _lfm2_types(r, num_layers)],
                        final_norm=rms_norm(hidden), extras=(_SSM_NOTE,))
    return replace(spec, tie_word_embeddings=tie)


def _falcon_h1(r: ConfigReader) -> ModelSpec:
    """FalconH1ForCausalLM: every block runs attention and a Mamba-2 mixer side by side on the same normed
    input (parallel hybrid heads), then a SwiGLU MLP (``mlp_bias``); two RMSNorms per block. The mixer's
    width is ``mamba_d_ssm`` (else expand · h) = mamba_n_heads × mamba_d_head; in_proj carries
    ``mamba_proj_bias``, out_proj ``projectors_bias``; the gated RMSNorm exists only with ``mamba_rms_norm``.
    The µP multipliers scale activations and add no parameters."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    heads = r.integer("mamba_n_heads")
    inner = r.integer("mamba_d_ssm") if r.config.get("mamba_d_ssm") else r.integer("mamba_expand") * hidden
    head_dim = r.integer("mamba_d_head") if r.config.get("mamba_d_head") not in (None, "auto") else inner // heads
    if heads * head_dim != inner:
        raise ConfigError(f"{r.name}: mamba_n_heads × mamba_d_head ({heads} × {head_dim}) must equal the Mamba "
                          f"width mamba_d_ssm ({inner})", key="error.model.falcon_h1_mamba_width",
                          fields={"name": r.name, "heads": heads, "head_dim": head_dim, "inner": inner})
    mixer = replace(_mamba2_mixer(r, heads="mamba_n_heads", head_dim=head_dim, state="mamba_d_state",
                                  groups="mamba_n_groups", conv="mamba_d_conv", chunk="mamba_chunk_size",
                                  proj_bias=r.flag("mamba_proj_bias", False),
                                  conv_bias=r.flag("mamba_conv_bias", True)),
                    gated_norm=r.flag("mamba_rms_norm", False), out_bias=r.flag("projectors_bias", False))
    bias = r.flag("attention_bias", False)
    attention = build_attention(r, hidden, qkv_bias=bias, out_bias=bias)
    layer = Layer(attention=attention, mixer=mixer, ffn=gated_mlp(r, bias=r.flag("mlp_bias", False)),
                  norms=(rms_norm(hidden), rms_norm(hidden)))
    return decoder_spec(r, [layer] * num_layers, final_norm=rms_norm(hidden), extras=(_SSM_NOTE,))


def _minimax(r: ConfigReader) -> ModelSpec:
    """MiniMaxForCausalLM (MiniMax-Text-01 / M1): ``layer_types`` picks lightning attention
    ("linear_attention") or softmax GQA ("full_attention", no biases) per layer; transformers' default when
    absent alternates them (full at even layers); the original ``attn_type_list`` is not read by transformers,
    so it is not here either. Every block has a MoE of ``num_local_experts`` SwiGLU experts (bias-free router)
    and two RMSNorms; the residual alpha/beta factors add no parameters."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    heads = r.integer("num_attention_heads")
    head_dim = r.integer("head_dim") if r.config.get("head_dim") else hidden // heads
    types = r.config.get("layer_types")
    if types is None:
        types = ["full_attention" if (i + 1) % 2 else "linear_attention" for i in range(num_layers)]
    if not isinstance(types, list) or len(types) != num_layers or set(types) - {"linear_attention", "full_attention"}:
        raise ConfigError(f"{r.name}: 'layer_types' must list {num_layers} entries, each 'linear_attention' or "
                          f"'full_attention'; got {types!r}", key="error.model.layer_types_attention",
                          fields={"name": r.name, "layers": num_layers, "value": types})
    lightning = LightningAttention(num_heads=heads, head_dim=head_dim, block_size=r.integer("block_size", 256))
    attention = build_attention(r, hidden, qkv_bias=False, out_bias=False)
    moe = Moe(num_experts=r.integer("num_local_experts"), top_k=r.integer("num_experts_per_tok"),
              expert=gated_mlp(r))
    norms = (rms_norm(hidden), rms_norm(hidden))
    blocks = {"full_attention": Layer(attention=attention, ffn=moe, norms=norms),
              "linear_attention": Layer(mixer=lightning, ffn=moe, norms=norms)}
    return decoder_spec(r, [blocks[t] for t in types], final_norm=rms_norm(hidden), extras=(_SSM_NOTE,))


HYBRID_ADAPTERS: Mapping[str, Callable[[ConfigReader], ModelSpec]] = {
    "minimax": _minimax,
    "falcon_h1": _falcon_h1,
    "lfm2": _lfm2,
    "granitemoehybrid": _granitemoehybrid,
    "qwen3_next": _qwen3_next,
    "mamba2": _mamba2,
    "nemotron_h": _nemotron_h,
    "bamba": _bamba,
    "jamba": _jamba,
}
