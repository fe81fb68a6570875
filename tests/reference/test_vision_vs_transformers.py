"""Vision towers against transformers: FLOPs of one image through a shrunk copy of every bundled
vision-language model, counted by ``FlopCounterMode`` on the CPU, and mllama's cross-attention FLOPs in a full
forward with an image. (Parameters, vision component included, are compared exactly, full size, in
test_params_vs_transformers.py.)"""

from __future__ import annotations

import pytest
from tests.reference.hf_reference import MULTIMODAL_TYPES, hf_vision_flops, tiny_config

from suanli.core.flops import count_flops
from suanli.core.vision import vision_flops
from suanli.spec.resolve import catalog_config, model_catalog, spec_from_config

EXACT = 1e-9
CONFIGS = {entry.key: catalog_config(entry) for entry in model_catalog()}
VLMS = [key for key, config in CONFIGS.items() if config["model_type"] in MULTIMODAL_TYPES]
# image sizes the processors produce for the tiny towers: Qwen2.5-VL multiples of 28 with a partial window row
# (252 px = 18 patches = 9 merged, windows of 4), Qwen3-VL multiples of 32, fixed-size towers their image_size
SIZES = {"qwen2_5_vl": (252, 336), "qwen3_vl": (256, 320), "qwen3_vl_moe": (256, 320)}


def _mask_product(tokens: int) -> int:
    """mllama builds its tile attention mask as mask @ maskᵀ over the padded tokens: a (n × 1) @ (1 × n)
    product FlopCounterMode counts (2·n²), not part of the model's work."""
    return 2 * tokens * tokens


def test_every_family_is_bundled() -> None:
    assert {CONFIGS[key]["model_type"] for key in VLMS} >= {"qwen2_5_vl", "qwen3_vl", "mllama", "gemma3"}


@pytest.mark.parametrize("key", VLMS)
def test_tiny_tower_flops_per_image(key: str) -> None:
    config = tiny_config(CONFIGS[key])
    tower = spec_from_config(config, name=key).vision
    assert tower is not None
    height, width = SIZES.get(config["model_type"], (tower.image_size, tower.image_size))
    assert height is not None and width is not None
    tiles = tower.tiles.max_tiles if tower.tiles else 1
    ours = vision_flops(tower, height=height, width=width, tiles=tiles if tower.tiles else None)
    theirs = hf_vision_flops(config, height=height, width=width, tiles=tiles)
    if tower.tiles is not None:  # 17 positions per tile padded to 24, over all tiles
        theirs -= _mask_product(tiles * 24)
    assert ours.forward == pytest.approx(theirs, rel=EXACT)


def test_mllama_cross_attention_in_a_full_forward() -> None:
    """Text forward with one image of 4 tiles: FlopCounterMode's total = the tower (vision_flops) + the text
    model whose 1 cross-attention layer reads the 4 × 17 image states (count_flops with image_states)."""
    import torch
    from tests.reference.hf_reference import _build
    from torch.utils.flop_counter import FlopCounterMode

    key = next(k for k in VLMS if CONFIGS[k]["model_type"] == "mllama")
    config = tiny_config(CONFIGS[key])
    spec = spec_from_config(config, name=key)
    assert spec.vision is not None and spec.vision.tiles is not None
    tiles, seq, size = spec.vision.tiles.max_tiles, 24, spec.vision.image_size
    torch.manual_seed(0)
    model = _build(config, "cpu")
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(input_ids=torch.randint(0, 500, (1, seq)), pixel_values=torch.randn(1, 1, tiles, 3, size, size),
              aspect_ratio_ids=torch.ones(1, 1, dtype=torch.long),
              aspect_ratio_mask=torch.ones(1, 1, tiles, dtype=torch.long),
              cross_attention_mask=torch.ones(1, seq, 1, tiles, dtype=torch.long), use_cache=False)
    vision = vision_flops(spec.vision, tiles=tiles)
    text = count_flops(spec, seq=seq, image_states=vision.tokens)
    assert vision.tokens == tiles * 17
    assert vision.forward + text.forward == pytest.approx(
        counter.get_total_flops() - _mask_product(tiles * 24), rel=EXACT)
