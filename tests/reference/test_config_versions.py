"""Every adapter reads what transformers 4 and 5 write.

For each ``model_type`` in ``ADAPTERS`` (families added later are enrolled automatically), the installed
transformers 5 builds its config class, with the class defaults and with a bundled catalog config's values,
and ``save_pretrained`` writes a transformers-5 config.json (``num_local_experts``, ``dtype``,
``rope_parameters``, ...). Our adapter must read that file, and our parameter count must equal the
transformers model's (built on the meta device). The bundled catalog configs are transformers-4 files: they
must load to the same spec as their transformers-5 rewrite.
"""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from tests.reference.hf_reference import hf_param_count
from tests.reference.test_params_vs_transformers import transformers_only

from suanli.core.params import count_params
from suanli.errors import UnsupportedArchitecture
from suanli.spec.hf import ADAPTERS, spec_from_config
from suanli.spec.hf_attribute_maps import ATTRIBUTE_MAPS
from suanli.spec.model import ModelSpec
from suanli.spec.resolve import catalog_config, model_catalog

FAMILIES = sorted(ADAPTERS)

#: Families whose transformers *default* config we do not read to transformers' count, with the reason.
DEFAULT_GAPS: dict[str, str] = {
    "glm4_moe": "Glm4MoeConfig's defaults give 96 heads over hidden_size 4096 and no head_dim; transformers "
                "floors the head size to 42, our adapter refuses a hidden size that heads do not divide",
    "gemma3": "SiglipVisionConfig defaults to vision_use_head true, which the gemma3 adapter refuses",
    "qwen3_vl_moe": "the default's text_config ties the embeddings and its top level does not; transformers 5 "
                    "follows the top level (untied lm_head, +vocab x hidden), the vision adapter text_config's",
}
#: Families whose transformers-5 rewrite of the bundled config we do not read to the same count, with the reason.
CATALOG_GAPS: dict[str, str] = {
    "qwen3_vl_moe": "re-saved, text_config gains the class default tie_word_embeddings true while the top level "
                    "says false; transformers 5 follows the top level, the vision adapter text_config's",
}


def _with_gaps(gaps: dict[str, str]) -> list[Any]:
    return [pytest.param(f, marks=pytest.mark.xfail(strict=True, reason=gaps[f])) if f in gaps else f
            for f in FAMILIES]


@cache
def _catalog_by_type() -> dict[str, dict[str, Any]]:
    """The first bundled (transformers 4) config of each model_type."""
    found: dict[str, dict[str, Any]] = {}
    for entry in model_catalog():
        config = catalog_config(entry)
        found.setdefault(str(config.get("model_type")), config)
    return found


def _config_class(model_type: str) -> Any:
    import transformers

    transformers.logging.set_verbosity_error()
    if model_type not in transformers.CONFIG_MAPPING:
        pytest.skip(f"transformers {transformers.__version__} has no config class for {model_type!r}")
    return transformers.CONFIG_MAPPING[model_type]


def _saved(config_object: Any, tmp_path: Path) -> dict[str, Any]:
    """What transformers' ``save_pretrained`` writes for a config object."""
    config_object.save_pretrained(tmp_path)
    saved: dict[str, Any] = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    return saved


def _transformers_count(config_object: Any) -> int:
    """Parameters of the transformers model built from the config object (not from its JSON, which some
    classes cannot read back: tuples come back as lists), less what transformers builds that checkpoints do
    not hold (``transformers_only``, e.g. LongCat-Flash's rows for zero-computation experts)."""
    values = config_object.to_dict()
    try:
        count = hf_param_count(values)
    except Exception as exc:  # transformers' own defaults that are not a buildable model
        pytest.skip(f"transformers cannot build {values['model_type']} from this config: {type(exc).__name__}: {exc}")
    return count - sum(transformers_only(values).values())


def _ours(saved: dict[str, Any]) -> ModelSpec:
    try:
        return spec_from_config(saved, name=str(saved["model_type"]))
    except UnsupportedArchitecture as exc:  # a variant the adapter refuses on purpose, with its reason
        pytest.skip(str(exc))


@pytest.mark.parametrize("model_type", _with_gaps(DEFAULT_GAPS))
def test_transformers5_default_config(model_type: str, tmp_path: Path) -> None:
    config_object = _config_class(model_type)()
    saved = _saved(config_object, tmp_path)
    expected = _transformers_count(config_object)
    assert count_params(_ours(saved)).total == expected


@pytest.mark.parametrize("model_type", _with_gaps(CATALOG_GAPS))
def test_transformers5_rewrite_of_catalog_config(model_type: str, tmp_path: Path) -> None:
    """A bundled (transformers 4) config, re-saved by transformers 5: same spec, and transformers' count."""
    old = _catalog_by_type().get(model_type)
    if old is None:
        pytest.skip(f"no bundled {model_type} config")
    values = {k: v for k, v in old.items() if k != "model_type"}
    config_object = _config_class(model_type)(**values)
    saved = _saved(config_object, tmp_path)
    new_spec = _ours(saved)
    assert count_params(new_spec).total == _transformers_count(config_object)
    old_spec = spec_from_config(old, name=model_type)
    assert replace(new_spec, extras=()) == replace(old_spec, extras=())


def test_qwen3_moe_saved_by_transformers5_reads_num_local_experts(tmp_path: Path) -> None:
    """Qwen3MoeConfig.attribute_map maps num_experts to num_local_experts, the name transformers 5 writes."""
    config_object = _config_class("qwen3_moe")(num_experts=8, num_hidden_layers=2, hidden_size=64,
                                               intermediate_size=96, moe_intermediate_size=32, num_attention_heads=4,
                                               num_key_value_heads=2, head_dim=16, vocab_size=100,
                                               num_experts_per_tok=2)
    saved = _saved(config_object, tmp_path)
    assert "num_experts" not in saved and saved["num_local_experts"] == 8
    spec = spec_from_config(saved, name="tiny-qwen3-moe")
    assert spec.layers[0].ffn.num_experts == 8  # type: ignore[union-attr]
    assert count_params(spec).total == _transformers_count(config_object)


def test_deepseek_v2_default_config_loads(tmp_path: Path) -> None:
    """DeepseekV2Config leaves num_experts_per_tok None: the total is still exact, top-k is assumed (noted)."""
    config_object = _config_class("deepseek_v2")()
    saved = _saved(config_object, tmp_path)
    assert saved["num_experts_per_tok"] is None
    spec = spec_from_config(saved, name="deepseek_v2")
    assert count_params(spec).total == _transformers_count(config_object)
    assert any(key == "assumed" and "num_experts_per_tok" in text for key, text in spec.extras)


def test_attribute_maps_match_installed_transformers() -> None:
    """The alias data (src/suanli/spec/hf_attribute_maps.py) is the installed transformers' attribute_map of
    every family we read; regenerate it with scripts/gen_hf_attribute_maps.py when transformers changes."""
    for model_type in FAMILIES:
        try:
            installed = dict(_config_class(model_type).attribute_map)
        except pytest.skip.Exception:
            continue
        expected = {alias: name for alias, name in installed.items() if alias != name}
        assert dict(ATTRIBUTE_MAPS.get(model_type, {})) == expected, model_type
