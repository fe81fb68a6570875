"""Vision-language models: the vision tower's parameters, tokens and FLOPs per image, derived by hand from the
module shapes of the bundled configs, and mllama's cross-attention layers."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from suanli.core.flops import count_flops, cross_attention_flops
from suanli.core.inference_memory import weight_bytes_per_gpu
from suanli.core.params import count_params
from suanli.core.vision import (
    image_tokens,
    vision_flops,
    vision_ops,
    vision_param_parts,
    vision_params,
    window_pairs,
)
from suanli.errors import ConfigError, SpecError
from suanli.quantity import plain
from suanli.spec.hf import spec_from_config
from suanli.spec.model import ModelSpec
from suanli.spec.resolve import catalog_config, find_catalog_model, load_model
from suanli.spec.vision import VisionTower


def _config(key: str) -> dict[str, Any]:
    entry = find_catalog_model(key)
    assert entry is not None
    return copy.deepcopy(catalog_config(entry))


def _tower(spec: ModelSpec) -> VisionTower:
    assert spec.vision is not None
    return spec.vision


def test_qwen2_5_vl_tower_by_hand() -> None:
    """Qwen2.5-VL-7B: 1280 wide, 32 blocks, 16 heads, gated MLP of 3420, 14-px patches over 2 frames."""
    d, i = 1280, 3420
    patch = 3 * 2 * 14 * 14 * d  # Conv3d, no bias
    block = (2 * d  # two RMSNorms
             + d * 3 * d + 3 * d + d * d + d  # fused qkv and proj, with biases
             + 2 * (d * i + i) + i * d + d)  # gate, up, down with biases
    merger = d + (4 * d) * (4 * d) + 4 * d + 4 * d * 3584 + 3584  # RMSNorm, 5120→5120→3584
    tower = _tower(load_model("qwen2.5-vl-7b"))
    assert vision_param_parts(tower) == {"patch_embedding": patch, "positions": 0, "blocks": 32 * block,
                                         "norms": 0, "projectors": merger}
    assert vision_params(tower) == patch + 32 * block + merger == 676_550_144


def test_gemma3_siglip_is_the_published_417m() -> None:
    """Gemma 3 report (arXiv:2503.19786) Table 1: the vision encoder holds 417M parameters (projector apart)."""
    tower = _tower(load_model("gemma-3-27b-vision"))
    parts = vision_param_parts(tower)
    encoder = vision_params(tower) - parts["projectors"]
    assert round(encoder / 1e6) == 417
    assert parts["projectors"] == 1152 + 1152 * 5376  # soft-embedding RMSNorm + projection (no bias)
    assert parts["positions"] == (896 // 14) ** 2 * 1152


def test_mllama_tiles_and_gates_by_hand() -> None:
    """Llama 3.2 Vision: class token, a gated 1601-row position table, tile tables over 9 aspect-ratio ids
    (8 layouts + padding) and 4 tiles, and two tanh gates per global layer and per cross-attention layer."""
    spec = load_model("llama-3.2-11b-vision")
    tower = _tower(spec)
    d, rows, ids, tiles = 1280, 1601, 9, 4
    positions = d + rows * d + 1 + ids * tiles * rows * d + 2 * (ids * tiles * d + 1)
    assert vision_param_parts(tower)["positions"] == positions == 75_916_803
    counts = count_params(spec)
    cross = [p for p, layer in zip(counts.per_layer, spec.layers, strict=True)
             if layer.attention is not None and layer.attention.cross]
    self_attn = [p for p, layer in zip(counts.per_layer, spec.layers, strict=True)
                 if layer.attention is not None and not layer.attention.cross]
    assert len(cross) == 8
    assert cross[0] - self_attn[0] == 2 * 128 + 2  # q/k RMSNorms over head_dim, two gates
    assert counts.components["embedding"] == (128_256 + 8) * 4096  # the table holds 8 more rows than the head
    assert counts.components["lm_head"] == 128_256 * 4096


@pytest.mark.parametrize(("key", "height", "width", "tokens"), [
    ("qwen2.5-vl-7b", 448, 448, 256),  # (448 / 14)² patches merged 2×2
    ("qwen2.5-vl-7b", 252, 336, 108),  # 18 × 24 patches → 9 × 12 tokens
    ("qwen3-vl-8b", 512, 512, 256),  # (512 / 16)² patches merged 2×2
    ("gemma-3-27b-vision", None, None, 256),  # mm_tokens_per_image at 896 px
    ("llama-3.2-11b-vision", None, None, 4 * 1601),  # 4 tiles of (560 / 14)² patches + a class token
])
def test_image_tokens(key: str, height: int | None, width: int | None, tokens: int) -> None:
    assert image_tokens(_tower(load_model(key)), height=height, width=width) == tokens


def test_qwen2_5_vl_window_pairs() -> None:
    """Windows of 112 px = 8 patches = 4 merged tokens a side; partial windows at the bottom edge."""
    tower = _tower(load_model("qwen2.5-vl-7b"))
    assert window_pairs(tower, 32, 32) == 16 * 64 ** 2  # 4 × 4 full windows of 64 patches
    assert window_pairs(tower, 18, 24) == 6 * 64 ** 2 + 3 * 16 ** 2  # merged 9 × 12: rows 4, 4, 1


def test_siglip_flops_by_hand() -> None:
    """Gemma 3's tower at 896 px: N = 4096 patches, every block full attention over N², the projector on the
    256 pooled tokens."""
    tower = _tower(load_model("gemma-3-27b-vision"))
    n, d, i, heads, head_dim = 4096, 1152, 4304, 16, 72
    per_block = 2 * n * 4 * d * d + 2 * heads * 2 * head_dim * n * n + 2 * n * 2 * d * i
    expected = 2 * n * 3 * 14 * 14 * d + 27 * per_block + 2 * 256 * d * 5376
    assert vision_flops(tower).forward == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("key", "size"), [("qwen2.5-vl-7b", 448), ("llama-3.2-11b-vision", None),
                                         ("gemma-3-27b-vision", None)])
@pytest.mark.parametrize("tp", [1, 2])
def test_vision_kernels_carry_the_counted_flops(key: str, size: int | None, tp: int) -> None:
    """The kernels timed for the encoder (``vision_ops``) hold exactly the FLOPs ``vision_flops`` counts, split over
    tp: Qwen2.5-VL's windowed blocks, mllama's padded tiles, SigLIP's full attention."""
    tower = _tower(load_model(key))
    ops = vision_ops(tower, images=3, height=size, width=size, tp=tp)
    counted = vision_flops(tower, height=size, width=size).forward
    assert sum(op.flops for op in ops) == pytest.approx(3 * counted / tp, rel=1e-12)


def test_cross_attention_layers_by_hand() -> None:
    """mllama: without image states the cross-attention layers are skipped (as transformers does); with I
    states, q/o run over the S text tokens, k/v over the I states, scores over S × I."""
    spec = load_model("llama-3.2-11b-vision")
    text_only = count_flops(spec, seq=128)
    cross = next(layer for layer in spec.layers if layer.attention is not None and layer.attention.cross)
    assert cross.attention is not None
    s, states, h, q, kv = 128, 6404, 4096, 32 * 128, 8 * 128
    parts = cross_attention_flops(cross.attention, h, s, states, plain)
    assert parts["attention_proj"] == 2 * s * 2 * h * q + 2 * states * 2 * h * kv
    assert parts["attention_scores"] == 2 * 32 * (128 + 128) * s * states
    with_image = count_flops(spec, seq=s, image_states=states)
    mlp = 2 * 3 * h * 14_336 * s
    assert with_image.forward - text_only.forward == pytest.approx(8 * (sum(parts.values()) + mlp), rel=1e-12)


def test_weights_in_memory_include_the_tower() -> None:
    spec = load_model("qwen3-vl-8b")
    weights = weight_bytes_per_gpu(spec)
    assert weights.vision_bytes == vision_params(_tower(spec)) * 2  # bf16
    assert weight_bytes_per_gpu(spec, tp=2).vision_bytes == weights.vision_bytes / 2


def test_vision_errors_name_the_fix() -> None:
    qwen = _tower(load_model("qwen2.5-vl-7b"))
    with pytest.raises(SpecError, match="give the image height and width"):
        vision_flops(qwen)
    with pytest.raises(SpecError, match="resizes it to 448x448"):
        vision_flops(qwen, height=448, width=434)  # 31 patches do not merge 2×2
    with pytest.raises(SpecError, match="max_num_tiles"):
        vision_flops(_tower(load_model("llama-3.2-11b-vision")), tiles=5)
    with pytest.raises(SpecError, match="only mllama"):
        vision_flops(qwen, height=448, width=448, tiles=2)


def test_config_errors() -> None:
    config = _config("gemma-3-27b-vision")
    config["vision_config"]["vision_use_head"] = True
    with pytest.raises(ConfigError, match="vision_use_head"):
        spec_from_config(config, name="g")
    config = _config("qwen3-vl-8b")
    del config["vision_config"]
    with pytest.raises(ConfigError, match="vision_config"):
        spec_from_config(config, name="q")
    config = _config("llama-3.2-11b-vision")
    config["text_config"]["cross_attention_layers"] = [3, 40]
    with pytest.raises(ConfigError, match=r"cross_attention_layers \[40\]"):
        spec_from_config(config, name="m")
    config = _config("qwen2.5-vl-7b")
    config["vision_config"]["fullatt_block_indexes"] = [7, 32]
    with pytest.raises(SpecError, match=r"fullatt_block_indexes \[32\]"):
        spec_from_config(config, name="q")


def test_text_keys_may_sit_at_the_top_level_or_in_text_config() -> None:
    """Qwen2.5-VL's published config.json keeps the text keys at the top level; transformers 5 writes them
    into text_config. Both read the same."""
    flat = _config("qwen2.5-vl-7b")
    text_keys = ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
                 "num_key_value_heads", "vocab_size", "max_position_embeddings")
    nested = {k: v for k, v in flat.items() if k not in text_keys}
    nested["text_config"] = {k: flat[k] for k in text_keys}
    assert count_params(spec_from_config(nested, name="n")) == count_params(spec_from_config(flat, name="f"))


def test_cross_attention_layers_cache_no_text_tokens() -> None:
    """mllama's 8 cross-attention layers cache the image states, not the text: a text token adds K and V to the
    32 self-attention layers only (2 × 8 KV heads × 128 × 2 bytes each)."""
    from suanli.core.kv_cache import kv_bytes_per_token, kv_cache_bytes

    spec = load_model("llama-3.2-11b-vision")
    assert kv_bytes_per_token(spec) == 32 * 2 * 8 * 128 * 2
    assert kv_cache_bytes(spec, tokens_per_seq=1000) == 1000 * 32 * 2 * 8 * 128 * 2


def test_absurd_tower_depth_is_refused_before_building() -> None:
    """A typo'd vision depth must end in a one-line error, not an attempt to build 10^12 blocks."""
    config = _config("qwen2.5-vl-7b")
    config["vision_config"]["depth"] = 10**12
    with pytest.raises(ConfigError, match="'depth' is 1,000,000,000,000, beyond the sanity limit"):
        spec_from_config(config, name="q")
