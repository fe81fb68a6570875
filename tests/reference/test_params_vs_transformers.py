"""Our parameter counts equal the transformers implementation's, parameter for parameter, for every
bundled model (built on the meta device: shapes only, no weights, no download)."""

from __future__ import annotations

from typing import Any

import pytest
from tests.reference.hf_reference import hf_param_breakdown

from suanli.core.params import count_params
from suanli.spec.resolve import catalog_config, model_catalog, spec_from_config

KEYS = [entry.key for entry in model_catalog()]
# Components whose boundaries are drawn the same way by us and by hf_reference's name patterns. q/k norms
# sit in our attention but in its norms, so those two are compared as a sum.
SAME_BOUNDARIES = ("embedding", "mlp", "experts", "shared_experts", "router", "lm_head", "vision")


def transformers_only(config: dict[str, Any]) -> dict[str, int]:
    """Parameters transformers builds that the published checkpoints do not hold, by component.

    LongCat-Flash: ``LongcatFlashExperts`` sizes ``gate_up_proj`` for the routed *and* the zero-computation
    experts (the identity experts never read it; the checkpoint has no such rows): zero_expert_num ·
    2 · expert_ffn_hidden_size · hidden_size extra per block."""
    if config["model_type"] == "longcat_flash":
        rows = config.get("zero_expert_num") or 0
        extra = config["num_layers"] * rows * 2 * config["expert_ffn_hidden_size"] * config["hidden_size"]
        return {"experts": extra}
    return {}


@pytest.mark.parametrize("key", KEYS)
def test_exact_total_and_components(key: str) -> None:
    entry = next(e for e in model_catalog() if e.key == key)
    config = catalog_config(entry)
    ours = count_params(spec_from_config(config, name=key))
    theirs = hf_param_breakdown(config)
    for component, extra in transformers_only(config).items():
        theirs[component] -= extra
    assert ours.total == sum(theirs.values())
    for component in SAME_BOUNDARIES:
        assert ours.components.get(component, 0) == theirs.get(component, 0), component
    assert (ours.components.get("attention", 0) + ours.components.get("norms", 0)
            == theirs.get("attention", 0) + theirs.get("norms", 0))


def test_catalog_is_broad() -> None:
    types = {catalog_config(entry)["model_type"] for entry in model_catalog()}
    assert len(model_catalog()) >= 40
    assert {"llama", "mixtral", "qwen3_moe", "deepseek_v3", "gemma3_text", "gpt2", "bert"} <= types
