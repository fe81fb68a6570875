"""Adapters for mixture-of-experts families released since 2024: gpt-oss, Llama 4, GLM-4.5, ERNIE 4.5 MoE,
Hunyuan-A13B, MiniMax-M2, DeepSeek-V3.2-Exp and LongCat-Flash.

Each mirrors how the transformers implementation of that family (5.x) builds its modules: which projections
carry biases, which layers are dense, local or chunked, what the router and the experts hold."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from suanli.errors import ConfigError
from suanli.i18n import Text
from suanli.spec.families.classic import CLASSIC_ADAPTERS
from suanli.spec.hf_common import (
    ConfigReader,
    build_attention,
    decoder_spec,
    gated_mlp,
    rms_norm,
    shared_experts_mlp,
)
from suanli.spec.model import Attention, Indexer, Layer, Mla, Mlp, ModelSpec, Moe, QkNormKind

# --- gpt-oss ----------------------------------------------------------------------------------------------------


def _gpt_oss(r: ConfigReader) -> ModelSpec:
    """GptOssForCausalLM: biases on q/k/v/o (``attention_bias``) and one learnable sink logit per head;
    ``layer_types`` alternates sliding-window (``sliding_window``) and full attention. Every layer routes
    ``num_experts_per_tok`` of ``num_local_experts`` experts through a router with a bias; each expert is a
    clamped SwiGLU (gate_up and down) with biases of ``intermediate_size``; 2 RMSNorms per block; untied head.
    The checkpoint stores the experts in MXFP4 (``quantization_config``)."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    bias = r.flag("attention_bias", True)
    attention = replace(build_attention(r, hidden, qkv_bias=bias, out_bias=bias), sinks=True)
    expert = Mlp(intermediate_size=r.integer("intermediate_size"), gated=True, bias=True,
                 activation=r.text("hidden_act", "silu"))
    moe = Moe(num_experts=r.integer("num_local_experts"), top_k=r.integer("num_experts_per_tok"), expert=expert,
              router_bias=True)
    norms = (rms_norm(hidden), rms_norm(hidden))
    full = Layer(attention=attention, ffn=moe, norms=norms)
    local = Layer(attention=replace(attention, sliding_window=r.integer("sliding_window")), ffn=moe, norms=norms)
    sliding = r.layer_types(num_layers, lambda i: i % 2 == 0)
    return decoder_spec(r, [local if s else full for s in sliding], final_norm=rms_norm(hidden))


# --- Llama 4 ----------------------------------------------------------------------------------------------------


def _llama4_chunked(r: ConfigReader, num_layers: int) -> list[bool]:
    """Per layer: True where attention is chunked. ``layer_types`` when given; else Llama4TextConfig's rule:
    RoPE layers (``no_rope_layers[i]`` = 1, by default all but every ``no_rope_layer_interval``-th) are chunked,
    NoPE layers global."""
    types = r.config.get("layer_types")
    if types is not None:
        if not isinstance(types, list) or len(types) != num_layers:
            raise ConfigError(f"{r.name}: 'layer_types' must list {num_layers} entries, got {types!r}",
                              key="error.model.layer_types_count",
                              fields={"name": r.name, "layers": num_layers, "value": types})
        return [t == "chunked_attention" for t in types]
    rope = r.config.get("no_rope_layers") or []
    if not rope:
        interval = r.integer("no_rope_layer_interval", 4)
        return [(i + 1) % interval != 0 for i in range(num_layers)]
    if len(rope) != num_layers:
        raise ConfigError(f"{r.name}: 'no_rope_layers' must list {num_layers} entries, got {len(rope)}",
                          key="error.model.no_rope_layers", fields={"name": r.name, "layers": num_layers,
                                                                    "count": len(rope)})
    return [bool(v) for v in rope]


def _llama4_moe_layers(r: ConfigReader, num_layers: int) -> set[int]:
    """``moe_layers`` when given, else every ``interleave_moe_layer_step``-th layer (step - 1, 2·step - 1, ...)."""
    if r.config.get("moe_layers") is not None:
        return set(r.integer_list("moe_layers"))
    step = r.integer("interleave_moe_layer_step", 1)
    return set(range(step - 1, num_layers, step))


def _llama4_text(r: ConfigReader) -> ModelSpec:
    """Llama4ForCausalLM (text): MoE layers route ``num_experts_per_tok`` of ``num_local_experts`` SwiGLU
    experts of ``intermediate_size`` plus one shared expert of the same width (router without bias); dense
    layers use ``intermediate_size_mlp``. RoPE layers attend within chunks of ``attention_chunk_size`` and
    L2-normalise q and k (no parameters); NoPE layers attend globally. 2 RMSNorms per block, untied head."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    bias = r.flag("attention_bias", False)
    attention = build_attention(r, hidden, qkv_bias=bias, out_bias=bias)
    chunk = r.optional_integer("attention_chunk_size")
    chunked = replace(attention, chunk_size=chunk)
    width = r.integer("intermediate_size")
    expert = Mlp(intermediate_size=width, gated=True, activation=r.text("hidden_act", "silu"))
    moe = Moe(num_experts=r.integer("num_local_experts"), top_k=r.integer("num_experts_per_tok"), expert=expert,
              shared=expert)
    dense = gated_mlp(r, "intermediate_size_mlp")
    norms = (rms_norm(hidden), rms_norm(hidden))
    sparse_layers = _llama4_moe_layers(r, num_layers)
    nope = replace(attention, rope=False)  # the global layers are Llama 4's NoPE layers
    kinds = {(c, s): Layer(attention=chunked if c else nope, ffn=moe if s else dense, norms=norms)
             for c in (False, True) for s in (False, True)}
    layers = [kinds[(c, i in sparse_layers)] for i, c in enumerate(_llama4_chunked(r, num_layers))]
    return decoder_spec(r, layers, final_norm=rms_norm(hidden))


# --- GLM-4.5 ----------------------------------------------------------------------------------------------------


def _mtp_note(r: ConfigReader) -> tuple[tuple[str, str], ...]:
    if r.config.get("num_nextn_predict_layers"):
        return (("mtp", "the multi-token-prediction layers are not counted (transformers does not build them)"),)
    return ()


def _glm4_moe(r: ConfigReader) -> ModelSpec:
    """Glm4MoeForCausalLM (GLM-4.5, 4.5-Air): biases on q/k/v only (``attention_bias``), per-head q/k RMSNorm
    when ``use_qk_norm``; the first ``first_k_dense_replace`` layers dense (``intermediate_size``), the rest
    route ``num_experts_per_tok`` of ``n_routed_experts`` experts plus ``n_shared_experts`` shared ones; the
    router's score-correction bias is a buffer, not a parameter."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    qk_norm = QkNormKind.PER_HEAD if r.flag("use_qk_norm", False) else None
    attention = build_attention(r, hidden, qkv_bias=r.flag("attention_bias", False), out_bias=False,
                                qk_norm=qk_norm)
    expert = gated_mlp(r, "moe_intermediate_size")
    moe = Moe(num_experts=r.integer("n_routed_experts"), top_k=r.integer("num_experts_per_tok"), expert=expert,
              shared=shared_experts_mlp(r, expert, "n_shared_experts"))
    norms = (rms_norm(hidden), rms_norm(hidden))
    dense = Layer(attention=attention, ffn=gated_mlp(r), norms=norms)
    sparse = Layer(attention=attention, ffn=moe, norms=norms)
    first_sparse = r.config.get("first_k_dense_replace") or 0
    layers = [sparse if i >= first_sparse else dense for i in range(num_layers)]
    return decoder_spec(r, layers, final_norm=rms_norm(hidden), extras=_mtp_note(r))


# --- ERNIE 4.5, Hunyuan, MiniMax-M2 ----------------------------------------------------------------------------


def _ernie4_5_moe(r: ConfigReader) -> ModelSpec:
    """Ernie4_5_MoeForCausalLM: ``use_bias`` on every projection and on the output head; layer i routes
    ``moe_k`` of ``moe_num_experts`` experts (plus ``moe_num_shared_experts`` shared ones) when
    (i + 1) % ``moe_layer_interval`` == 0 and ``moe_layer_start_index`` <= i <= ``moe_layer_end_index``
    (-1: the last layer), else it is dense. The router's ``e_score_correction_bias`` is a (frozen)
    parameter in transformers, so it counts as a router bias (one per expert)."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    bias = r.flag("use_bias", False)
    attention = build_attention(r, hidden, qkv_bias=bias, out_bias=bias)
    expert = gated_mlp(r, "moe_intermediate_size")
    moe = Moe(num_experts=r.integer("moe_num_experts"), top_k=r.integer("moe_k"), expert=expert,
              shared=shared_experts_mlp(r, expert, "moe_num_shared_experts"), router_bias=True)
    norms = (rms_norm(hidden), rms_norm(hidden))
    sparse = Layer(attention=attention, ffn=moe, norms=norms)
    dense = Layer(attention=attention, ffn=gated_mlp(r, bias=bias), norms=norms)
    start, interval = r.config.get("moe_layer_start_index", 1), r.integer("moe_layer_interval", 1)
    end = r.config.get("moe_layer_end_index")
    end = num_layers - 1 if end is None or end == -1 else end
    layers = [sparse if (i + 1) % interval == 0 and start <= i <= end else dense for i in range(num_layers)]
    return decoder_spec(r, layers, final_norm=rms_norm(hidden), tie_default=True, lm_head_bias=bias,
                        extras=_mtp_note(r))


def _per_layer(r: ConfigReader, key: str, num_layers: int) -> list[int]:
    """A key that Hunyuan gives either once or as one value per layer."""
    value = r.config.get(key)
    if isinstance(value, list):
        if len(value) != num_layers or not all(isinstance(v, int) and v > 0 for v in value):
            raise ConfigError(f"{r.name}: '{key}' must be a positive integer or a list of {num_layers} "
                              f"(one per layer), got {value!r}", key="error.model.per_layer_value",
                              fields={"name": r.name, "key": key, "layers": num_layers, "value": value})
        return value
    return [r.integer(key)] * num_layers


def _hunyuan_v1_moe(r: ConfigReader) -> ModelSpec:
    """HunYuanMoEV1ForCausalLM (Hunyuan-A13B): ``attention_bias`` on all four projections and per-head q/k
    RMSNorms; every layer routes ``moe_topk`` (per layer) of ``num_experts`` SwiGLU experts and adds one
    shared MLP, all of ``intermediate_size`` as transformers builds them (``moe_intermediate_size`` and
    ``num_shared_expert`` are not read by it)."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    bias = r.flag("attention_bias", False)
    attention = build_attention(r, hidden, qkv_bias=bias, out_bias=bias, qk_norm=QkNormKind.PER_HEAD)
    expert = gated_mlp(r)
    experts, top_ks = _per_layer(r, "num_experts", num_layers), _per_layer(r, "moe_topk", num_layers)
    norms = (rms_norm(hidden), rms_norm(hidden))
    kinds: dict[tuple[int, int], Layer] = {}
    for pair in zip(experts, top_ks, strict=True):
        if pair not in kinds:
            moe = Moe(num_experts=pair[0], top_k=pair[1], expert=expert, shared=expert)
            kinds[pair] = Layer(attention=attention, ffn=moe, norms=norms)
    layers = [kinds[pair] for pair in zip(experts, top_ks, strict=True)]
    return decoder_spec(r, layers, final_norm=rms_norm(hidden))


def _minimax_m2(r: ConfigReader) -> ModelSpec:
    """MiniMaxM2ForCausalLM: no biases; RMSNorm over the whole q and k projections (``qk_norm_type``
    per_layer); every layer routes ``num_experts_per_tok`` of ``num_local_experts`` SwiGLU experts of
    ``intermediate_size`` (sigmoid scores; the routing bias is a buffer). The multi-token-prediction modules
    (``num_mtp_modules``) are not built by transformers."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    attention = build_attention(r, hidden, qkv_bias=False, out_bias=False, qk_norm=QkNormKind.FULL)
    moe = Moe(num_experts=r.integer("num_local_experts"), top_k=r.integer("num_experts_per_tok"),
              expert=gated_mlp(r))
    layer = Layer(attention=attention, ffn=moe, norms=(rms_norm(hidden), rms_norm(hidden)))
    extras: tuple[tuple[str, str], ...] = ()
    if r.config.get("use_mtp") and r.config.get("num_mtp_modules"):
        extras = (("mtp", Text("note.model.mtp_modules")),)
    return decoder_spec(r, [layer] * num_layers, final_norm=rms_norm(hidden), extras=extras)


# --- DeepSeek-V3.2 -----------------------------------------------------------------------------------------------


def _deepseek_v32(r: ConfigReader) -> ModelSpec:
    """DeepseekV32ForCausalLM (DeepSeek-V3.2-Exp): DeepSeek-V3 (MLA, dense first layers, routed and shared
    experts) with a lightning indexer in every layer's attention: ``index_n_heads`` heads of
    ``index_head_dim`` from the ``q_lora_rank`` query latent, keeping ``index_topk`` keys per query."""
    base = CLASSIC_ADAPTERS["deepseek_v3"](r)
    indexer = Indexer(num_heads=r.integer("index_n_heads"), head_dim=r.integer("index_head_dim"),
                      topk=r.integer("index_topk"), q_rank=r.integer("q_lora_rank"))
    sparse: dict[int, Layer] = {}
    for layer in base.layers:
        if id(layer) not in sparse and layer.attention is not None:
            sparse[id(layer)] = replace(layer, attention=replace(layer.attention, indexer=indexer))
    return replace(base, layers=tuple(sparse.get(id(layer), layer) for layer in base.layers))


# --- LongCat-Flash ---------------------------------------------------------------------------------------------


def _longcat_flash(r: ConfigReader) -> ModelSpec:
    """LongcatFlashForCausalLM: each of ``num_layers`` blocks holds two MLA attentions and two dense SwiGLU
    MLPs of ``ffn_hidden_size``, plus a shortcut MoE fed from the first MLP's input: ``moe_topk`` picks among
    ``n_routed_experts`` SwiGLU experts of ``expert_ffn_hidden_size`` and ``zero_expert_num`` identity
    (zero-computation) experts. Built as two layers per block: the first one's MoE carries the first dense
    MLP as its shared expert (same input, output added to the residual), the second one is dense."""
    hidden, blocks = r.integer("hidden_size"), r.integer("num_layers")
    heads = r.integer("num_attention_heads")
    mla = Mla(q_lora_rank=r.optional_integer("q_lora_rank"), kv_lora_rank=r.integer("kv_lora_rank"),
              qk_rope_head_dim=r.integer("qk_rope_head_dim"), qk_nope_head_dim=r.integer("qk_nope_head_dim"))
    bias = r.flag("attention_bias", False)
    attention = Attention(num_heads=heads, num_kv_heads=heads, head_dim=mla.qk_nope_head_dim + mla.qk_rope_head_dim,
                          v_head_dim=r.integer("v_head_dim"), qkv_bias=bias, out_bias=bias, mla=mla)
    dense = gated_mlp(r, "ffn_hidden_size")
    zero = r.config.get("zero_expert_num") or 0
    if not isinstance(zero, int) or zero < 0:
        raise ConfigError(f"{r.name}: 'zero_expert_num' must be a non-negative integer, got {zero!r}",
                          key="error.model.zero_expert_num", fields={"name": r.name, "value": zero})
    moe = Moe(num_experts=r.integer("n_routed_experts"), top_k=r.integer("moe_topk"),
              expert=gated_mlp(r, "expert_ffn_hidden_size"), shared=dense, zero_experts=zero,
              router_bias=r.flag("router_bias", False))
    norms = (rms_norm(hidden), rms_norm(hidden))
    first = Layer(attention=attention, ffn=moe, norms=norms)
    second = Layer(attention=attention, ffn=dense, norms=norms)
    return decoder_spec(r, [first, second] * blocks, final_norm=rms_norm(hidden), extras=_mtp_note(r))


RECENT_MOE_ADAPTERS: Mapping[str, Callable[[ConfigReader], ModelSpec]] = {
    "gpt_oss": _gpt_oss,
    "llama4_text": _llama4_text,
    "glm4_moe": _glm4_moe,
    "ernie4_5_moe": _ernie4_5_moe,
    "hunyuan_v1_moe": _hunyuan_v1_moe,
    "minimax_m2": _minimax_m2,
    "deepseek_v32": _deepseek_v32,
    "longcat_flash": _longcat_flash,
}
