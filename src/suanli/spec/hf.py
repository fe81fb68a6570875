"""Hugging Face ``config.json`` → ``ModelSpec``, through one explicit adapter per ``model_type``.

The adapters live in ``spec/families/`` (one module per group of families) and share the typed reader and
builders of ``spec/hf_common.py``. A ``model_type`` without an adapter is an error that lists the supported
ones; a missing or ill-typed key is an error that names it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from suanli.errors import ConfigError, SuanliError
from suanli.i18n import ErrorMessage
from suanli.spec.checkpoint_quant import read_checkpoint_quant
from suanli.spec.families.classic import CLASSIC_ADAPTERS
from suanli.spec.families.dense_recent import RECENT_DENSE_ADAPTERS
from suanli.spec.families.hybrid import HYBRID_ADAPTERS
from suanli.spec.families.kimi_linear import KIMI_LINEAR_ADAPTERS
from suanli.spec.families.moe_recent import RECENT_MOE_ADAPTERS
from suanli.spec.families.vision import VISION_ADAPTERS
from suanli.spec.family_match import APPROXIMATE, approximate_note, config_as, unsupported_error
from suanli.spec.hf_common import ConfigReader
from suanli.spec.model import ModelSpec

ADAPTERS: Mapping[str, Callable[[ConfigReader], ModelSpec]] = {**CLASSIC_ADAPTERS, **RECENT_MOE_ADAPTERS,
                                                              **HYBRID_ADAPTERS, **RECENT_DENSE_ADAPTERS,
                                                              **VISION_ADAPTERS, **KIMI_LINEAR_ADAPTERS}


def spec_from_config(config: Mapping[str, Any], *, name: str, source: str = "",
                     as_family: str | None = None) -> ModelSpec:
    """Build a ModelSpec from a parsed config.json through the adapter for its ``model_type``; with
    ``as_family``, through that family's adapter instead, marked approximate (see ``spec/family_match.py``)."""
    if not isinstance(config, Mapping):
        raise ConfigError(f"{name}: config.json must hold a JSON object, got {type(config).__name__}",
                          key="error.config_json_not_object", fields={"name": name, "kind": type(config).__name__})
    model_type = config.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise ConfigError(f"{name}: 'model_type' must be a string such as \"llama\", got {model_type!r}",
                          key="error.config_model_type_not_text", fields={"name": name, "value": model_type})
    if "text_config" in config and model_type not in ADAPTERS:
        text = config["text_config"]
        if isinstance(text, Mapping) and "quantization_config" in config:  # quantization is stated at the top
            text = {**text, "quantization_config": config["quantization_config"]}
        return spec_from_config(text, name=name, source=source, as_family=as_family)
    if as_family is not None and as_family != model_type:
        return _read_as(config, as_family, name=name, source=source)
    if model_type is None:
        raise ConfigError(f"{name}: config.json has no 'model_type'; add it (e.g. \"llama\") or pass --as FAMILY",
                          key="error.config_no_model_type", fields={"name": name})
    adapter = ADAPTERS.get(model_type)
    if adapter is None:
        raise unsupported_error(config, name, ADAPTERS)
    return _build(adapter, ConfigReader(config, name=name), source)


def _build(adapter: Callable[[ConfigReader], ModelSpec], reader: ConfigReader, source: str,
           extras: tuple[tuple[str, str], ...] = ()) -> ModelSpec:
    """Run one adapter; the reader's assumed values and ``extras`` join the spec's notes."""
    try:
        spec = adapter(reader)
    except SuanliError:  # the reader's and the adapters' own errors already name the key and the fix
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        # An adapter only parses the file: a wrong-typed value that slipped past the reader is still bad input.
        raise ConfigError(f"{reader.name}: a value in this {reader.config.get('model_type')} config.json has the "
                          f"wrong type or shape ({type(exc).__name__}: {exc}); compare it with a config saved by "
                          "transformers", key="error.config_wrong_shape",
                          fields={"name": reader.name, "model_type": reader.config.get("model_type"),
                                  "kind": type(exc).__name__, "reason": exc}) from exc
    quantization, unread = read_checkpoint_quant(reader.config, reader.name)
    if quantization is not None:
        spec = replace(spec, quantization=quantization)
    notes = (*extras, *(("assumed", text) for text in reader.assumed), *((("quantization", unread),) if unread else ()))
    if notes:
        spec = replace(spec, extras=(*spec.extras, *notes))
    return replace(spec, source=source) if source else spec


def _read_as(config: Mapping[str, Any], family: str, *, name: str, source: str) -> ModelSpec:
    """``--as FAMILY``: the config read by that family's adapter, marked approximate."""
    relabelled = config_as(config, family, ADAPTERS, name=name)
    note = ((APPROXIMATE, approximate_note(config, family)),)
    try:
        return _build(ADAPTERS[family], ConfigReader(relabelled, name=name), source, extras=note)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (reading it as a {family} config, --as {family})", key="error.hf.read_as",
                          fields={"message": ErrorMessage(exc), "family": family}) from exc

