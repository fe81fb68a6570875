"""Hugging Face ``config.json`` → ``ModelSpec``, through one explicit adapter per ``model_type``.

The adapters live in ``spec/families/`` (one module per group of families) and share the typed reader and
builders of ``spec/hf_common.py``. A ``model_type`` without an adapter is an error that lists the supported
ones; a missing or ill-typed key is an error that names it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from suanli.errors import ConfigError, UnsupportedArchitecture
from suanli.spec.families.classic import CLASSIC_ADAPTERS
from suanli.spec.families.dense_recent import RECENT_DENSE_ADAPTERS
from suanli.spec.families.hybrid import HYBRID_ADAPTERS
from suanli.spec.families.moe_recent import RECENT_MOE_ADAPTERS
from suanli.spec.families.vision import VISION_ADAPTERS
from suanli.spec.hf_common import ConfigReader
from suanli.spec.model import ModelSpec

ADAPTERS: Mapping[str, Callable[[ConfigReader], ModelSpec]] = {**CLASSIC_ADAPTERS, **RECENT_MOE_ADAPTERS,
                                                              **HYBRID_ADAPTERS, **RECENT_DENSE_ADAPTERS,
                                                              **VISION_ADAPTERS}


def spec_from_config(config: Mapping[str, Any], *, name: str, source: str = "") -> ModelSpec:
    """Build a ModelSpec from a parsed config.json through the adapter for its ``model_type``."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"{name}: config.json must hold a JSON object, got {type(config).__name__}")
    model_type = config.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise ConfigError(f"{name}: 'model_type' must be a string such as \"llama\", got {model_type!r}")
    if "text_config" in config and model_type not in ADAPTERS:
        return spec_from_config(config["text_config"], name=name, source=source)
    if model_type is None:
        raise ConfigError(f"{name}: config.json has no 'model_type'; add it (e.g. \"llama\")")
    adapter = ADAPTERS.get(model_type)
    if adapter is None:
        raise UnsupportedArchitecture(
            f"{name}: model_type '{model_type}' is not supported; supported: {', '.join(sorted(ADAPTERS))}"
        )
    spec = adapter(ConfigReader(config, name=name))
    return replace(spec, source=source) if source else spec
