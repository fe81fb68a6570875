"""The model adapters' errors (spec/families, spec/model.py, spec/mixers.py, spec/vision.py) are said in Chinese
under ``--lang zh``: each case is a config.json a user might hand suanli — a bundled one with the kind of slip
people make when they edit or hand-write it — or an image size the vision processor would not keep."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.surface.cli_helpers import KeyedError

CATALOG = Path(__file__).parents[2] / "src" / "suanli" / "catalog" / "models"


def _without(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda config: config.pop(key)


def _setting(**values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda config: config.update(values)


def _typo_in_pattern(config: dict[str, Any]) -> None:
    config["hybrid_override_pattern"] = config["hybrid_override_pattern"].replace("*", "+", 1)


CONFIGS = [  # (bundled config.json, the slip, the key its error names)
    ("nemotron-h-8b.json", _typo_in_pattern, "error.model.nemotron_pattern_symbols"),
    ("qwen2.5-vl-7b.json", _without("vision_config"), "error.model.vision_config_missing"),
    ("llama-3.2-1b.json", _setting(num_key_value_heads=5), "error.model.gqa_groups"),
    ("command-r7b.json", _setting(hidden_size=4100), "error.model.cohere2_head_dim"),
    ("qwen3-coder-next.json", _setting(layer_types=["linear_attention", "full_attention"]),
     "error.model.layer_types_attention"),
    ("qwen3-30b-a3b.json", _setting(num_experts_per_tok=200), "error.model.top_k"),
]


@pytest.mark.parametrize(("name", "slip", "key"), CONFIGS, ids=[key for _, _, key in CONFIGS])
def test_a_broken_config_is_named_in_chinese(name: str, slip: Callable[[dict[str, Any]], None], key: str,
                                             tmp_path: Path, keyed_error: KeyedError) -> None:
    config = json.loads((CATALOG / name).read_text(encoding="utf-8"))
    slip(config)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    keyed_error(["params", str(path)], key)


def test_an_image_size_off_the_patch_grid_is_named_in_chinese(keyed_error: KeyedError) -> None:
    keyed_error(["infer", "qwen2.5-vl-7b", "--gpu", "h100", "--images", "1", "--image-size", "500"],
                "error.model.image_grid")
