"""One spelling for every config.json key, whichever transformers version wrote the file.

transformers 5 writes some fields under other names than transformers 4 did, and both kinds of file are in the
wild. ``canonical_config`` returns a copy of a config in which every field can be read under either name:

- **attribute maps** (data, ``hf_attribute_maps.py``): each config class's ``attribute_map`` makes two names one
  field, e.g. Qwen3-MoE's ``num_experts`` / ``num_local_experts`` (transformers 4 wrote the first, 5 the second);
- **renamed fields** (``RENAMED`` below): ``torch_dtype`` → ``dtype``; GPT-NeoX's ``rotary_pct`` /
  ``rotary_emb_base``; Gemma 3's ``sliding_window_pattern`` → ``_sliding_window_pattern``;
- **RoPE settings**: transformers 4 kept ``rope_theta``, ``rope_scaling`` and ``partial_rotary_factor`` at the
  top level; transformers 5 gathers them in ``rope_parameters`` (nested per layer type where layer types differ,
  as Gemma 3's local/global layers do, whose local base was ``rope_local_base_freq``).

Explicit nulls: a key written as ``null`` reads as missing, so a reader's default applies. Where transformers'
config class also defaults to None but the model needs a number, ``NULL_DEFAULTS`` names the value assumed and
its source, and the reader records it as a note.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from suanli.spec.hf_attribute_maps import ATTRIBUTE_MAPS

#: Synonyms that are not in an ``attribute_map`` (transformers renamed the field): (old name, new name), for every
#: model_type under ``"*"``. Sources: transformers 5 ``PreTrainedConfig`` (``torch_dtype`` renamed ``dtype``);
#: ``GPTNeoXConfig.__post_init__`` (``rotary_emb_base`` → rope_theta, ``rotary_pct`` → partial_rotary_factor);
#: ``Gemma3TextConfig.__post_init__`` (``sliding_window_pattern`` kept as ``_sliding_window_pattern``);
#: Gemma2Config and Gemma3TextConfig name the activation ``hidden_activation`` (published files carry both).
RENAMED: Mapping[str, tuple[tuple[str, str], ...]] = {
    "*": (("torch_dtype", "dtype"),),
    "gpt_neox": (("rotary_emb_base", "rope_theta"), ("rotary_pct", "partial_rotary_factor")),
    "gemma2": (("hidden_act", "hidden_activation"),),
    "gemma3_text": (("sliding_window_pattern", "_sliding_window_pattern"), ("hidden_act", "hidden_activation")),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class NullDefault:
    """A value assumed for a key that the file leaves null or out and transformers' class defaults to None."""

    value: Any
    source: str


#: Keys whose transformers default is None although a model needs a number, per model_type.
NULL_DEFAULTS: Mapping[str, Mapping[str, NullDefault]] = {
    "deepseek_v2": {
        # DeepseekV2Config(num_experts_per_tok=None) builds, but its router cannot run (top-k of None).
        "num_experts_per_tok": NullDefault(
            value=6, source="DeepSeek-V2 and DeepSeek-V2-Lite config.json (deepseek-ai on the Hugging Face Hub) "
            "route each token to 6 experts"),
    },
}

_ROPE_FLAT_KEYS = ("rope_theta", "partial_rotary_factor")


def synonyms(model_type: str) -> tuple[tuple[str, str], ...]:
    """Every (name, other name) pair that spells one field of ``model_type``'s config."""
    mapped = tuple(ATTRIBUTE_MAPS.get(model_type, {}).items())
    return mapped + RENAMED["*"] + RENAMED.get(model_type, ())


def canonical_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` in which each field is present under all its spellings (see the module docstring).
    Values the file gives are never overwritten; only missing or null spellings are filled. Nested configs
    with their own ``model_type`` (``text_config``, ``vision_config``) get their own family's spellings."""
    out = {key: canonical_config(value) if isinstance(value, Mapping) and "model_type" in value else value
           for key, value in config.items()}
    model_type = out.get("model_type")
    for name, other in synonyms(model_type if isinstance(model_type, str) else ""):
        _fill(out, name, other)
    _rope_both_ways(out)
    return out


def _fill(config: dict[str, Any], name: str, other: str) -> None:
    if config.get(name) is None and config.get(other) is not None:
        config[name] = config[other]
    elif config.get(other) is None and config.get(name) is not None:
        config[other] = config[name]


def _rope_both_ways(config: dict[str, Any]) -> None:
    """transformers 5's ``rope_parameters`` as transformers 4's flat keys, and the other way round."""
    rope = config.get("rope_parameters")
    if isinstance(rope, Mapping):
        _flatten_rope(config, rope)
    elif config.get("rope_theta") is not None or isinstance(config.get("rope_scaling"), Mapping):
        config["rope_parameters"] = _gathered_rope(config)


def _flatten_rope(config: dict[str, Any], rope: Mapping[str, Any]) -> None:
    nested = {key: value for key, value in rope.items() if isinstance(value, Mapping)}
    main: Mapping[str, Any] = nested.get("full_attention") or next(iter(nested.values()), None) or rope
    for key in _ROPE_FLAT_KEYS:
        if config.get(key) is None and main.get(key) is not None:
            config[key] = main[key]
    rope_type = main.get("rope_type") or main.get("type") or "default"
    if config.get("rope_scaling") is None and rope_type != "default":
        config["rope_scaling"] = {k: v for k, v in main.items() if k not in _ROPE_FLAT_KEYS}
    local = nested.get("sliding_attention")
    if local is not None and config.get("rope_local_base_freq") is None and local.get("rope_theta") is not None:
        config["rope_local_base_freq"] = local["rope_theta"]


def _gathered_rope(config: Mapping[str, Any]) -> dict[str, Any]:
    scaling = config.get("rope_scaling")
    rope: dict[str, Any] = dict(scaling) if isinstance(scaling, Mapping) else {}
    rope.setdefault("rope_type", rope.get("type", "default"))
    for key in _ROPE_FLAT_KEYS:
        if config.get(key) is not None:
            rope.setdefault(key, config[key])
    return rope
