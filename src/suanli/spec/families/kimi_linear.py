"""Adapter for Kimi Linear (Moonshot AI, arXiv:2510.26692): Kimi Delta Attention layers interleaved with
multi-head latent attention, and DeepSeek-V3-style MoE.

It reads the published config.json (Moonshot's remote-code format: ``linear_attn_config`` with 1-based
``kda_layers`` / ``full_attn_layers``, ``num_experts``, ``num_experts_per_token``, ``num_shared_experts``,
``first_k_dense_replace``) and what transformers 5 writes (``linear_num_heads``, ``linear_head_dim``,
``linear_conv_kernel_dim``, ``layer_types``, ``mlp_layer_types``), with ``KimiLinearConfig``'s precedence and
defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from suanli.errors import ConfigError
from suanli.spec.hf_common import ConfigReader, decoder_spec, gated_mlp, rms_norm, shared_experts_mlp
from suanli.spec.model import Attention, KimiDeltaAttention, Layer, Mla, Mlp, ModelSpec, Moe, PositionKind

_NOTE = ("state-space", "Kimi Delta Attention layers keep a fixed conv + H × d × d state per sequence instead of a "
                        "KV cache (memory.per_gpu.ssm_state_bytes); their training activations are approximate "
                        "(core/activations_ssm.py), their parameters and FLOPs exact")
_KINDS = ("linear_attention", "full_attention")


def _linear_config(r: ConfigReader) -> Mapping[str, Any]:
    nested = r.config.get("linear_attn_config") or {}
    if not isinstance(nested, Mapping):
        raise ConfigError(f"{r.name}: 'linear_attn_config' must be an object, got {nested!r}",
                          key="error.model.linear_attn_config", fields={"name": r.name, "value": nested})
    return nested


def _kda(r: ConfigReader) -> KimiDeltaAttention:
    """``linear_attn_config``'s head_dim / num_heads / short_conv_kernel_size win over transformers 5's
    linear_head_dim / linear_num_heads / linear_conv_kernel_dim; the defaults are KimiLinearConfig's (128, 32, 4)."""
    nested = ConfigReader(_linear_config(r), name=f"{r.name} linear_attn_config")
    return KimiDeltaAttention(
        num_heads=nested.integer("num_heads", r.integer("linear_num_heads", 32)),
        head_dim=nested.integer("head_dim", r.integer("linear_head_dim", 128)),
        conv_kernel=nested.integer("short_conv_kernel_size", r.integer("linear_conv_kernel_dim", 4)))


def _layer_kinds(r: ConfigReader, num_layers: int) -> list[str]:
    """``layer_types``; else the 1-based ``kda_layers`` and ``full_attn_layers`` of linear_attn_config; else
    KimiLinearConfig's default: full attention at layers 4, 8, 12, … (0-based i > 0 with i % 4 == 0)."""
    types = r.config.get("layer_types")
    if types is None:
        nested = _linear_config(r)
        if "kda_layers" in nested and "full_attn_layers" in nested:
            full = set(_one_based(r, nested, "full_attn_layers", num_layers))
            kda = set(_one_based(r, nested, "kda_layers", num_layers))
            if full & kda or len(full | kda) != num_layers:
                raise ConfigError(f"{r.name}: linear_attn_config's kda_layers and full_attn_layers must split layers "
                                  f"1..{num_layers} between them, each layer once", key="error.model.kda_split",
                                  fields={"name": r.name, "layers": num_layers})
            return ["full_attention" if i + 1 in full else "linear_attention" for i in range(num_layers)]
        return ["full_attention" if i and i % 4 == 0 else "linear_attention" for i in range(num_layers)]
    if not isinstance(types, list) or len(types) != num_layers or set(types) - set(_KINDS):
        raise ConfigError(f"{r.name}: 'layer_types' must list {num_layers} entries, each 'linear_attention' or "
                          f"'full_attention'; got {types!r}", key="error.model.layer_types_attention",
                          fields={"name": r.name, "layers": num_layers, "value": types})
    return list(types)


def _one_based(r: ConfigReader, nested: Mapping[str, Any], key: str, num_layers: int) -> list[int]:
    values = nested[key]
    if not isinstance(values, list) or not all(isinstance(v, int) and 1 <= v <= num_layers for v in values):
        raise ConfigError(f"{r.name}: linear_attn_config '{key}' must list layer numbers 1..{num_layers}, "
                          f"got {values!r}", key="error.model.kda_layer_numbers",
                          fields={"name": r.name, "key": key, "layers": num_layers, "value": values})
    return values


def _sparse_layers(r: ConfigReader, num_layers: int) -> list[bool]:
    """Per layer, True for MoE: ``mlp_layer_types`` ("dense" / "sparse"), else the first
    ``first_k_dense_replace`` layers dense (transformers' default 1) and the rest sparse."""
    types = r.config.get("mlp_layer_types")
    if types is None:
        first_dense = r.config.get("first_k_dense_replace", 1)
        if isinstance(first_dense, bool) or not isinstance(first_dense, int) or first_dense < 0:
            raise ConfigError(f"{r.name}: 'first_k_dense_replace' must be a non-negative integer, got {first_dense!r}",
                              key="error.model.first_k_dense", fields={"name": r.name, "value": first_dense})
        return [i >= first_dense for i in range(num_layers)]
    if not isinstance(types, list) or len(types) != num_layers or set(types) - {"dense", "sparse"}:
        raise ConfigError(f"{r.name}: 'mlp_layer_types' must list {num_layers} entries, each 'dense' or 'sparse'; "
                          f"got {types!r}", key="error.model.mlp_layer_types",
                          fields={"name": r.name, "layers": num_layers, "value": types})
    return [t == "sparse" for t in types]


def _mla(r: ConfigReader) -> Attention:
    """KimiLinearAttention: DeepSeek's MLA without rotary embeddings (the shared qk_rope_head_dim key part stays,
    unrotated); q_a_proj, kv_a_proj_with_mqa and o_proj carry ``attention_bias``."""
    mla = Mla(q_lora_rank=r.optional_integer("q_lora_rank"), kv_lora_rank=r.integer("kv_lora_rank"),
              qk_rope_head_dim=r.integer("qk_rope_head_dim"), qk_nope_head_dim=r.integer("qk_nope_head_dim"))
    heads, bias = r.integer("num_attention_heads"), r.flag("attention_bias", False)
    return Attention(num_heads=heads, num_kv_heads=heads, head_dim=mla.qk_nope_head_dim + mla.qk_rope_head_dim,
                     v_head_dim=r.integer("v_head_dim"), qkv_bias=bias, out_bias=bias, mla=mla, rope=False)


def _kimi_linear(r: ConfigReader) -> ModelSpec:
    """KimiLinearForCausalLM: each block is Kimi Delta Attention or NoPE MLA (``_layer_kinds``), then a dense
    SwiGLU MLP or a MoE (``_sparse_layers``): ``num_experts_per_token`` of ``num_experts`` SwiGLU experts of
    ``moe_intermediate_size`` plus ``num_shared_experts`` shared ones fused into one MLP, a sigmoid router whose
    score-correction bias is a buffer; two RMSNorms per block."""
    hidden, num_layers = r.integer("hidden_size"), r.integer("num_hidden_layers")
    kda, attention = _kda(r), _mla(r)
    expert = gated_mlp(r, "moe_intermediate_size")
    shared = shared_experts_mlp(r, expert, "num_shared_experts") if "num_shared_experts" in r.config else expert
    moe = Moe(num_experts=r.integer("num_experts"), top_k=r.integer("num_experts_per_token"), expert=expert,
              shared=shared)
    dense = gated_mlp(r)
    norms = (rms_norm(hidden), rms_norm(hidden))
    blocks: dict[tuple[str, bool], Layer] = {}
    layers = []
    for kind, sparse in zip(_layer_kinds(r, num_layers), _sparse_layers(r, num_layers), strict=True):
        if (kind, sparse) not in blocks:
            ffn: Mlp | Moe = moe if sparse else dense
            blocks[(kind, sparse)] = (Layer(attention=attention, ffn=ffn, norms=norms) if kind == "full_attention"
                                      else Layer(mixer=kda, ffn=ffn, norms=norms))
        layers.append(blocks[(kind, sparse)])
    return decoder_spec(r, layers, final_norm=rms_norm(hidden), extras=(_NOTE,), position=PositionKind.NONE)


KIMI_LINEAR_ADAPTERS: Mapping[str, Callable[[ConfigReader], ModelSpec]] = {"kimi_linear": _kimi_linear}
