"""Adapters for vision-language models: Qwen2.5-VL, Qwen3-VL (dense and MoE), Llama 3.2 Vision (mllama) and
Gemma 3 (with its SigLIP tower).

Each builds the language model exactly as its text family does (the text keys sit in ``text_config``, or at the
top level in Qwen2.5-VL's published config.json) and adds the ``VisionTower`` the transformers implementation
builds (``…ForConditionalGeneration``): patch embedding, encoder blocks, norms and projector(s). Defaults for
keys a published config.json omits are those of the transformers config classes (5.x), named where used."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from suanli.errors import ConfigError
from suanli.i18n import Text
from suanli.spec.families.classic import _gemma3_text, _llama, _qwen2, _qwen3, _qwen3_moe
from suanli.spec.hf_common import ConfigReader, gated_mlp, layer_norm, rms_norm
from suanli.spec.model import Attention, Layer, Mlp, ModelSpec, QkNormKind
from suanli.spec.vision import PatchEmbed, Projector, Tiles, VisionTower

_NESTED = ("text_config", "vision_config")


def _text_reader(r: ConfigReader, defaults: Mapping[str, Any] | None = None) -> ConfigReader:
    """The language model's keys: ``text_config`` over the top level (Qwen2.5-VL publishes them at the top
    level), over the config class's ``defaults``; ``model_type`` stays the multimodal one."""
    top = {k: v for k, v in r.config.items() if k not in _NESTED}
    text = r.config.get("text_config") or {}
    if not isinstance(text, Mapping):
        raise ConfigError(f"{r.name}: 'text_config' must be a JSON object, got {text!r}",
                          key="error.model.text_config_object", fields={"name": r.name, "value": text})
    merged = {**(defaults or {}), **top, **text, "model_type": r.config["model_type"]}
    if "torch_dtype" in top or "dtype" in top:  # the checkpoint's dtype is the top-level one
        merged["torch_dtype"] = top.get("torch_dtype") or top.get("dtype")
    return ConfigReader(merged, name=r.name)


def _vision_reader(r: ConfigReader) -> ConfigReader:
    vision = r.config.get("vision_config")
    if not isinstance(vision, Mapping):
        raise ConfigError(f"{r.name}: a {r.config.get('model_type')} config.json needs a 'vision_config' object",
                          key="error.model.vision_config_missing",
                          fields={"name": r.name, "model_type": r.config.get("model_type")})
    return ConfigReader({"model_type": r.config["model_type"], **vision}, name=f"{r.name} vision_config")


def _encoder_attention(heads: int, hidden: int, *, bias: bool) -> Attention:
    if hidden % heads:
        raise ConfigError(f"vision hidden_size ({hidden}) is not divisible by its {heads} attention heads",
                          key="error.model.vision_heads", fields={"hidden": hidden, "heads": heads})
    return Attention(num_heads=heads, num_kv_heads=heads, head_dim=hidden // heads, v_head_dim=hidden // heads,
                     qkv_bias=bias, out_bias=bias)


def _plain_mlp(v: ConfigReader, default_act: str) -> Mlp:
    return Mlp(intermediate_size=v.integer("intermediate_size"), gated=False, bias=True,
               activation=v.text("hidden_act", default_act))


def _with_vision(spec: ModelSpec, tower: VisionTower, note: str) -> ModelSpec:
    extras = (*spec.extras, ("vision", note), ("vision_scope", Text("note.model.vision_scope")))
    return replace(spec, vision=tower, extras=extras)


# --- Qwen2.5-VL and Qwen3-VL ------------------------------------------------------------------------------------


def _qwen2_5_vl_tower(v: ConfigReader, hidden_act_default: str = "silu") -> VisionTower:
    """Qwen2_5_VisionTransformerPretrainedModel: Conv3d patches (no bias); blocks of 2 RMSNorms, fused qkv and
    proj with biases, a gated MLP with biases; RMSNorm + 2-layer merger over 2×2 patches; window attention of
    ``window_size`` px except in ``fullatt_block_indexes``."""
    hidden, merge = v.integer("hidden_size"), v.integer("spatial_merge_size", 2)
    patch = v.integer("patch_size", 14)
    block = Layer(attention=_encoder_attention(v.integer("num_heads"), hidden, bias=True),
                  ffn=Mlp(intermediate_size=v.integer("intermediate_size"), gated=True, bias=True,
                          activation=v.text("hidden_act", hidden_act_default)),
                  norms=(rms_norm(hidden), rms_norm(hidden)))
    merged = hidden * merge * merge
    merger = Projector(in_size=merged, hidden_size=merged, out_size=v.integer("out_hidden_size"),
                       norm=rms_norm(hidden))
    channels = v.integer("in_channels", v.config.get("in_chans", 3))
    return VisionTower(hidden_size=hidden, layers=(block,) * v.integer("depth"),
                       patch=PatchEmbed(patch_size=patch, temporal_patch_size=v.integer("temporal_patch_size", 2),
                                        in_channels=channels),
                       projectors=(merger,), merge=merge, fused_qkv=True,
                       full_attention_layers=tuple(v.integer_list("fullatt_block_indexes")),
                       window_patches=v.integer("window_size", 112) // patch)


def _qwen2_5_vl(r: ConfigReader) -> ModelSpec:
    """Qwen2_5_VLForConditionalGeneration: a Qwen2 language model (q/k/v biases) plus the vision tower."""
    spec = _qwen2(_text_reader(r))
    tower = _qwen2_5_vl_tower(_vision_reader(r))
    return _with_vision(spec, tower, Text("note.model.qwen2_5_vl_image"))


def _qwen3_vl_tower(v: ConfigReader) -> VisionTower:
    """Qwen3VLVisionModel: Conv3d patches with bias, a learned position table (``num_position_embeddings``,
    bilinearly interpolated to the grid), blocks of 2 LayerNorms, fused qkv and proj with biases, a plain MLP
    with biases; a LayerNorm + 2-layer merger over 2×2 patches, and one more merger (LayerNorm over the merged
    width) per ``deepstack_visual_indexes`` entry."""
    hidden, merge = v.integer("hidden_size"), v.integer("spatial_merge_size", 2)
    block = Layer(attention=_encoder_attention(v.integer("num_heads"), hidden, bias=True),
                  ffn=_plain_mlp(v, "gelu_pytorch_tanh"), norms=(layer_norm(hidden), layer_norm(hidden)))
    merged, out = hidden * merge * merge, v.integer("out_hidden_size")
    deepstack = tuple(v.integer_list("deepstack_visual_indexes"))
    mergers = (Projector(in_size=merged, hidden_size=merged, out_size=out, norm=layer_norm(hidden)),
               *(Projector(in_size=merged, hidden_size=merged, out_size=out, norm=layer_norm(merged))
                 for _ in deepstack))
    return VisionTower(hidden_size=hidden, layers=(block,) * v.integer("depth"),
                       patch=PatchEmbed(patch_size=v.integer("patch_size", 16),
                                        temporal_patch_size=v.integer("temporal_patch_size", 2),
                                        in_channels=v.integer("in_channels", 3), bias=True),
                       projectors=mergers, merge=merge, position_rows=v.integer("num_position_embeddings"),
                       deepstack_layers=deepstack, fused_qkv=True)


def _qwen3_vl(r: ConfigReader) -> ModelSpec:
    """Qwen3VLForConditionalGeneration: a Qwen3 language model (q/k norms) plus the vision tower."""
    return _with_vision(_qwen3(_text_reader(r)), _qwen3_vl_tower(_vision_reader(r)), Text("note.model.qwen3_vl_image"))


def _qwen3_vl_moe(r: ConfigReader) -> ModelSpec:
    """Qwen3VLMoeForConditionalGeneration: a Qwen3-MoE language model plus the Qwen3-VL vision tower."""
    return _with_vision(_qwen3_moe(_text_reader(r)), _qwen3_vl_tower(_vision_reader(r)),
                        Text("note.model.qwen3_vl_image"))


# --- Gemma 3 ----------------------------------------------------------------------------------------------------

#: Gemma3TextConfig defaults (transformers 5.x) for keys google/gemma-3-*-it config.json leaves out.
_GEMMA3_TEXT_DEFAULTS: Mapping[str, Any] = {"vocab_size": 262_208, "max_position_embeddings": 131_072,
                                            "hidden_activation": "gelu_pytorch_tanh"}


def _siglip_tower(v: ConfigReader, *, text_hidden: int, tokens_per_image: int) -> VisionTower:
    """SiglipVisionModel without its head: Conv2d patches with bias, one learned position per patch, blocks of
    2 LayerNorms, q/k/v/out with biases and a plain MLP with biases, a final LayerNorm; then Gemma 3's
    projector: average pool to ``mm_tokens_per_image``, an RMSNorm and one matrix (no bias)."""
    if v.flag("vision_use_head", True):
        raise ConfigError(f"{v.name}: vision_use_head is true; Gemma 3 builds SigLIP without its pooling head "
                          "(set it to false, as google/gemma-3-*-it do)", key="error.model.siglip_head",
                          fields={"name": v.name})
    hidden, image, patch = v.integer("hidden_size"), v.integer("image_size"), v.integer("patch_size")
    side, tokens_side = image // patch, round(tokens_per_image ** 0.5)
    if tokens_side * tokens_side != tokens_per_image or side % tokens_side:
        raise ConfigError(f"{v.name}: mm_tokens_per_image ({tokens_per_image}) must be a square whose side divides "
                          f"the {side}×{side} patch grid", key="error.model.mm_tokens_square",
                          fields={"name": v.name, "tokens": tokens_per_image, "side": side})
    block = Layer(attention=_encoder_attention(v.integer("num_attention_heads"), hidden, bias=True),
                  ffn=_plain_mlp(v, "gelu_pytorch_tanh"), norms=(layer_norm(hidden), layer_norm(hidden)))
    return VisionTower(hidden_size=hidden, layers=(block,) * v.integer("num_hidden_layers"),
                       patch=PatchEmbed(patch_size=patch, in_channels=v.integer("num_channels", 3), bias=True),
                       projectors=(Projector(in_size=hidden, out_size=text_hidden, norm=rms_norm(hidden), bias=False,
                                              linear=False),),
                       image_size=image, position_rows=side * side, norms=(layer_norm(hidden),),
                       pool=side // tokens_side)


def _gemma3(r: ConfigReader) -> ModelSpec:
    """Gemma3ForConditionalGeneration: the Gemma 3 text model (tied head) plus SigLIP and the projector."""
    text = _text_reader(r, _GEMMA3_TEXT_DEFAULTS)
    spec = _gemma3_text(text)
    tokens = r.integer("mm_tokens_per_image", 256)
    tower = _siglip_tower(_vision_reader(r), text_hidden=spec.hidden_size, tokens_per_image=tokens)
    return _with_vision(spec, tower, Text("note.model.gemma3_image", tokens=tokens, size=tower.image_size))


# --- Llama 3.2 Vision (mllama) ----------------------------------------------------------------------------------


def _mllama_text(r: ConfigReader) -> ModelSpec:
    """MllamaTextModel: Llama self-attention layers, except those in ``cross_attention_layers``, which attend
    the projected image states instead: q/k/v/o (k and v over the image states), per-head q/k RMSNorms and two
    tanh gates; the token table holds ``vocab_size`` + 8 rows."""
    spec = _llama(r)
    hidden = spec.hidden_size
    cross_at = set(r.integer_list("cross_attention_layers"))
    bad = sorted(i for i in cross_at if i >= spec.num_layers)
    if bad:
        raise ConfigError(f"{r.name}: cross_attention_layers {bad} are beyond num_hidden_layers ({spec.num_layers})",
                          key="error.model.cross_attention_layers",
                          fields={"name": r.name, "bad": bad, "layers": spec.num_layers})
    attention = spec.layers[0].attention
    if attention is None:  # _llama always builds attention
        raise ConfigError(f"{r.name}: the mllama text model needs attention layers",
                          key="error.model.mllama_attention", fields={"name": r.name})
    cross = Layer(attention=replace(attention, cross=True, qk_norm=QkNormKind.PER_HEAD),
                  ffn=gated_mlp(r), norms=(rms_norm(hidden), rms_norm(hidden)), gates=2)
    layers = tuple(cross if i in cross_at else layer for i, layer in enumerate(spec.layers))
    return replace(spec, layers=layers, extra_token_rows=8)


def _mllama_tower(v: ConfigReader, *, text_hidden: int) -> VisionTower:
    """MllamaVisionModel: Conv2d patches (no bias), a class token, gated position and tile-position tables,
    LayerNorms before and after the local encoder; ``num_hidden_layers`` local blocks and ``num_global_layers``
    gated global blocks (2 LayerNorms, q/k/v/o without bias, a plain MLP with biases); the features of
    ``intermediate_layers_indices`` join the last hidden state (``vision_output_dim`` wide), projected to the
    language width by one matrix with bias."""
    hidden = v.integer("hidden_size")
    image, patch = v.integer("image_size"), v.integer("patch_size")
    local = Layer(attention=_encoder_attention(v.integer("attention_heads"), hidden, bias=False),
                  ffn=_plain_mlp(v, "gelu"), norms=(layer_norm(hidden), layer_norm(hidden)))
    gated = replace(local, gates=2)
    ratios = v.config.get("supported_aspect_ratios")
    if not isinstance(ratios, list) or not ratios:
        raise ConfigError(f"{v.name}: 'supported_aspect_ratios' must list the tile layouts, e.g. [[1, 1], [1, 2]]",
                          key="error.model.aspect_ratios", fields={"name": v.name})
    layers = (local,) * v.integer("num_hidden_layers") + (gated,) * v.integer("num_global_layers")
    features = tuple(v.integer_list("intermediate_layers_indices"))
    out_dim = v.integer("vision_output_dim")
    if out_dim != hidden * (1 + len(features)):
        raise ConfigError(f"{v.name}: vision_output_dim ({out_dim}) must be hidden_size × (1 + "
                          f"len(intermediate_layers_indices)) = {hidden * (1 + len(features))}",
                          key="error.model.vision_output_dim",
                          fields={"name": v.name, "out_dim": out_dim, "expected": hidden * (1 + len(features))})
    return VisionTower(hidden_size=hidden, layers=layers,
                       patch=PatchEmbed(patch_size=patch, in_channels=v.integer("num_channels", 3)),
                       projectors=(Projector(in_size=out_dim, out_size=text_hidden, bias=True),),
                       image_size=image, position_rows=(image // patch) ** 2 + 1, class_token=True,
                       norms=(layer_norm(hidden), layer_norm(hidden)), feature_layers=features,
                       tiles=Tiles(max_tiles=v.integer("max_num_tiles", 4), aspect_ratios=len(ratios)))


def _mllama(r: ConfigReader) -> ModelSpec:
    """MllamaForConditionalGeneration: the vision tower, its projector and the text model with cross-attention
    layers; the head is untied (``vocab_size`` rows)."""
    spec = _mllama_text(_text_reader(r))
    tower = _mllama_tower(_vision_reader(r), text_hidden=spec.hidden_size)
    tiles = tower.tiles.max_tiles if tower.tiles else 1
    per_tile = tower.position_rows
    return _with_vision(spec, tower, Text("note.model.mllama_image", tiles=tiles, size=tower.image_size,
                                          per_tile=per_tile))


VISION_ADAPTERS: Mapping[str, Callable[[ConfigReader], ModelSpec]] = {
    "qwen2_5_vl": _qwen2_5_vl,
    "qwen3_vl": _qwen3_vl,
    "qwen3_vl_moe": _qwen3_vl_moe,
    "mllama": _mllama,
    "gemma3": _gemma3,
}
