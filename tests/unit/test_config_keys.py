"""config.json spellings of transformers 4 and 5, explicit nulls, and unknown model types (spec/hf_keys.py,
spec/family_match.py). Expected values are the transformers-4 catalog files' own readings, or written by hand."""

from __future__ import annotations

from typing import Any

import pytest

from suanli.core.params import count_params
from suanli.errors import ConfigError, UnsupportedArchitecture
from suanli.spec.family_match import approximation, closest_families
from suanli.spec.hf import ADAPTERS, spec_from_config
from suanli.spec.hf_common import ConfigReader
from suanli.spec.hf_keys import canonical_config
from suanli.spec.resolve import catalog_config, find_catalog_model


def _catalog(name: str) -> dict[str, Any]:
    entry = find_catalog_model(name)
    assert entry is not None
    return catalog_config(entry)


def as_transformers5(config: dict[str, Any]) -> dict[str, Any]:
    """What transformers 5's save_pretrained changes in a Qwen3-MoE config (seen in its output): num_experts is
    written as num_local_experts, torch_dtype as dtype, rope_theta/rope_scaling inside rope_parameters."""
    new = {k: v for k, v in config.items() if k not in ("num_experts", "torch_dtype", "rope_theta", "rope_scaling")}
    new.update(num_local_experts=config["num_experts"], dtype=config["torch_dtype"],
               rope_parameters={"rope_theta": config["rope_theta"], "rope_type": "default"})
    return new


def test_qwen3_moe_written_by_transformers5_loads_to_the_same_spec() -> None:
    old = _catalog("qwen3-30b-a3b")
    new = as_transformers5(old)
    assert "num_experts" not in new
    assert spec_from_config(new, name="q") == spec_from_config(old, name="q")


def test_transformers5_rope_parameters_read_as_flat_keys() -> None:
    config = canonical_config({"model_type": "llama", "rope_parameters": {
        "rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "original_max_position_embeddings": 8192}})
    assert config["rope_theta"] == 500000.0
    assert config["rope_scaling"] == {"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 8192}


def test_gemma3_rope_per_layer_type() -> None:
    """transformers 5 nests Gemma 3's RoPE by layer type; the local base was rope_local_base_freq."""
    config = canonical_config({"model_type": "gemma3_text", "rope_parameters": {
        "full_attention": {"rope_type": "linear", "rope_theta": 1e6, "factor": 8.0},
        "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}})
    assert (config["rope_theta"], config["rope_local_base_freq"]) == (1e6, 1e4)
    assert config["rope_scaling"] == {"rope_type": "linear", "factor": 8.0}


def test_transformers4_rope_keys_gathered_for_transformers5_readers() -> None:
    config = canonical_config({"model_type": "gpt_neox", "rotary_emb_base": 10000, "rotary_pct": 0.25})
    assert config["rope_parameters"] == {"rope_type": "default", "rope_theta": 10000, "partial_rotary_factor": 0.25}


def test_spellings_fill_only_what_is_missing() -> None:
    config = canonical_config({"model_type": "gpt2", "n_embd": 768, "hidden_size": None, "dtype": "float16"})
    assert (config["hidden_size"], config["torch_dtype"]) == (768, "float16")
    both = canonical_config({"model_type": "mixtral", "num_experts": 4, "num_local_experts": 8})
    assert (both["num_experts"], both["num_local_experts"]) == (4, 8)  # never overwritten


def test_explicit_null_takes_the_readers_default() -> None:
    reader = ConfigReader({"model_type": "llama", "max_position_embeddings": None, "tie_word_embeddings": None},
                          name="x")
    assert reader.integer("max_position_embeddings", 2048) == 2048
    assert reader.flag("tie_word_embeddings", False) is False
    with pytest.raises(ConfigError, match="'hidden_size' is missing"):
        reader.integer("hidden_size")


def test_deepseek_v2_null_top_k_is_assumed_and_noted() -> None:
    """DeepseekV2Config's default num_experts_per_tok is None; the total does not depend on it."""
    old = _catalog("deepseek-v2-lite")
    spec = spec_from_config({**old, "num_experts_per_tok": None}, name="d")
    reference = spec_from_config(old, name="d")
    assert count_params(spec).total == count_params(reference).total
    assert count_params(spec).active == count_params(reference).active  # V2-Lite routes 6 of 64, as assumed
    assert [key for key, text in spec.extras if "num_experts_per_tok" in text] == ["assumed"]


def test_unknown_type_names_closest_families_and_as() -> None:
    config = {"model_type": "qwen3_hyper", "architectures": ["Qwen3HyperForCausalLM"]}  # no such family
    assert closest_families(config, ADAPTERS)[0] == "qwen3"
    with pytest.raises(UnsupportedArchitecture, match=r"closest supported families: qwen3.*--as qwen3"):
        spec_from_config(config, name="x")


def test_architecture_name_is_matched_too() -> None:
    assert closest_families({"model_type": "custom", "architectures": ["MixtralForCausalLM"]}, ADAPTERS)[0] == \
        "mixtral"


def test_read_as_family_is_marked_approximate() -> None:
    config = {**_catalog("llama-3.2-1b"), "model_type": "my_llama"}
    spec = spec_from_config(config, name="m", as_family="llama")
    assert count_params(spec).total == count_params(spec_from_config(_catalog("llama-3.2-1b"), name="m")).total
    assert "my_llama" in approximation(spec) and "--as llama" in approximation(spec)
    assert approximation(spec_from_config(_catalog("llama-3.2-1b"), name="m", as_family="llama")) == ""


def test_read_as_unknown_family_suggests() -> None:
    with pytest.raises(UnsupportedArchitecture, match="did you mean llama"):
        spec_from_config({"model_type": "my_llama"}, name="m", as_family="lama")


def test_read_as_names_the_missing_key_and_the_family() -> None:
    with pytest.raises(ConfigError, match=r"'hidden_size' is missing.*--as llama"):
        spec_from_config({"model_type": "rwkv", "num_hidden_layers": 2}, name="m", as_family="llama")
