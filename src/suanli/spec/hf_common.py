"""Reading a Hugging Face ``config.json``: typed key access (``ConfigReader``) and the builders the
per-family adapters share (``spec/families/``). Each adapter names the keys it reads; nothing is inferred from
numeric ratios."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from suanli.errors import ConfigError
from suanli.spec.hf_keys import NULL_DEFAULTS, canonical_config
from suanli.spec.limits import check_model_value
from suanli.spec.model import Attention, Layer, Mlp, ModelSpec, Norm, NormKind, PositionKind, QkNormKind

_MISSING = object()


class ConfigReader:
    """Typed access to one config.json, with errors that name the file, the key and what was found.

    ``config`` holds every key under each of its spellings (transformers 4 and 5 name some fields differently,
    see ``hf_keys``). A key written as null reads as missing, so the reader's default applies; where a model
    needs a value that transformers also leaves None, ``hf_keys.NULL_DEFAULTS`` supplies it and ``assumed``
    records the note."""

    def __init__(self, config: Mapping[str, Any], *, name: str) -> None:
        self.config = canonical_config(config)
        self.name = name
        self.assumed: list[str] = []

    def integer(self, key: str, default: Any = _MISSING) -> int:
        value = self._get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.name}: '{key}' must be an integer, got {value!r}", key="error.config_key_integer",
                              fields={"name": self.name, "key": key, "value": value})
        if value <= 0:
            raise ConfigError(f"{self.name}: '{key}' must be positive, got {value}", key="error.config_key_positive",
                              fields={"name": self.name, "key": key, "value": value})
        check_model_value(self.name, key, value)
        return value

    def optional_integer(self, key: str) -> int | None:
        return None if self.config.get(key) is None else self.integer(key)

    def flag(self, key: str, default: Any = _MISSING) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self.name}: '{key}' must be true or false, got {value!r}", key="error.config_key_flag",
                              fields={"name": self.name, "key": key, "value": value})
        return value

    def text(self, key: str, default: Any = _MISSING) -> str:
        value = self._get(key, default)
        if not isinstance(value, str):
            raise ConfigError(f"{self.name}: '{key}' must be a string, got {value!r}", key="error.config_key_text",
                              fields={"name": self.name, "key": key, "value": value})
        return value

    def integer_list(self, key: str) -> list[int]:
        value = self.config.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
            raise ConfigError(f"{self.name}: '{key}' must be a list of integers, got {value!r}",
                              key="error.config_key_integers",
                              fields={"name": self.name, "key": key, "value": value})
        return value

    def layer_types(self, num_layers: int, default: Callable[[int], bool]) -> list[bool]:
        """Per layer: True where attention is sliding-window. Uses ``layer_types`` when the config has it."""
        types = self.config.get("layer_types")
        if types is None:
            return [default(i) for i in range(num_layers)]
        if not isinstance(types, list) or len(types) != num_layers:
            raise ConfigError(
                f"{self.name}: 'layer_types' must list {num_layers} entries (one per layer), got {types!r}",
                key="error.config_layer_types", fields={"name": self.name, "layers": num_layers, "value": types}
            )
        return [t == "sliding_attention" for t in types]

    def _get(self, key: str, default: Any) -> Any:
        value = self.config.get(key)
        if value is not None:
            return value
        if default is not _MISSING:
            return default
        model_type = self.config.get("model_type")
        assumed = NULL_DEFAULTS.get(model_type if isinstance(model_type, str) else "", {}).get(key)
        if assumed is not None:
            state = "null" if key in self.config else "missing"
            self.assumed.append(f"'{key}' is {state} in the config; assumed {assumed.value} ({assumed.source})")
            return assumed.value
        raise ConfigError(
            f"{self.name}: required key '{key}' is missing; "
            f"a {model_type} config.json always has it — is this the right file?",
            key="error.config_key_missing",
            fields={"name": self.name, "key": key, "model_type": model_type},
        )


# --- shared builders ----------------------------------------------------------------------------------------


def head_dim_of(r: ConfigReader, hidden: int, heads: int) -> int:
    explicit = r.config.get("head_dim")
    if explicit is not None:
        return r.integer("head_dim")
    if hidden % heads:
        raise ConfigError(
            f"{r.name}: hidden_size ({hidden}) is not divisible by num_attention_heads ({heads}) "
            "and the config gives no head_dim",
            key="error.config_head_dim",
            fields={"name": r.name, "hidden": hidden, "heads": heads},
        )
    return hidden // heads


def build_attention(r: ConfigReader, hidden: int, *, qkv_bias: bool, out_bias: bool,
               qk_norm: QkNormKind | None = None, window: int | None = None) -> Attention:
    heads = r.integer("num_attention_heads")
    kv_heads = r.integer("num_key_value_heads", heads) if r.config.get("num_key_value_heads") else heads
    head_dim = head_dim_of(r, hidden, heads)
    return Attention(num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim, v_head_dim=head_dim,
                     qkv_bias=qkv_bias, out_bias=out_bias, qk_norm=qk_norm, sliding_window=window)


def with_window(attention: Attention, window: int | None) -> Attention:
    """The same attention with ``sliding_window`` set (every other field kept)."""
    return replace(attention, sliding_window=window)


def gated_mlp(r: ConfigReader, size_key: str = "intermediate_size", *, bias: bool = False) -> Mlp:
    return Mlp(intermediate_size=r.integer(size_key), gated=True, bias=bias,
               activation=r.text("hidden_act", "silu") if "hidden_act" in r.config else "silu")


def shared_experts_mlp(r: ConfigReader, expert: Mlp, count_key: str) -> Mlp | None:
    """``count_key`` shared experts fused into one gated MLP of count × the expert's width, with the expert's
    bias and activation (DeepSeek's ``DeepseekV3MoE.shared_experts``); None when the config names none."""
    count = r.config.get(count_key) or 0
    if not count:
        return None
    return Mlp(intermediate_size=expert.intermediate_size * int(count), gated=True, bias=expert.bias,
               activation=expert.activation)


def rms_norm(size: int) -> Norm:
    return Norm(kind=NormKind.RMS_NORM, size=size)


def layer_norm(size: int, bias: bool = True) -> Norm:
    return Norm(kind=NormKind.LAYER_NORM, size=size, bias=bias)


def decoder_spec(r: ConfigReader, layers: list[Layer], *, final_norm: Norm | None,
             tie_default: bool = False, position: PositionKind = PositionKind.ROTARY,
             **extra: Any) -> ModelSpec:
    return ModelSpec(
        name=r.name,
        model_type=r.text("model_type"),
        vocab_size=r.integer("vocab_size"),
        hidden_size=r.integer("hidden_size"),
        layers=tuple(layers),
        position=position,
        max_position_embeddings=r.integer("max_position_embeddings", 2048),
        tie_word_embeddings=r.flag("tie_word_embeddings", tie_default),
        final_norm=final_norm,
        torch_dtype=torch_dtype_of(r),
        rope_scaled_positions=rope_scaled_positions(r),
        **extra,
    )


def rope_scaled_positions(r: ConfigReader) -> int | None:
    """Positions a RoPE scaling rule covers: factor × original_max_position_embeddings (YaRN as Qwen's model
    cards add it, DeepSeek-V3, Llama 3; transformers' ``rope_scaling``, ``rope_parameters`` from v5). None
    without both: a bare factor (Gemma 3's linear ×8) is already inside max_position_embeddings."""
    rope = r.config.get("rope_scaling") or r.config.get("rope_parameters")
    if not isinstance(rope, Mapping):
        return None
    factor, original = rope.get("factor"), rope.get("original_max_position_embeddings")
    if not isinstance(factor, int | float) or factor <= 1 or not isinstance(original, int) or original <= 0:
        return None
    return int(factor * original)


def torch_dtype_of(r: ConfigReader) -> str:
    value = r.config.get("torch_dtype") or r.config.get("dtype") or "float32"
    return str(value)


def uniform_layers(layer: Layer, count: int) -> list[Layer]:
    return [layer] * count


def windowed_layers(r: ConfigReader, base: Layer, sliding: list[bool], window: int | None) -> list[Layer]:
    """One layer per entry of ``sliding``, with the sliding window set where it is True."""
    if window is None or not any(sliding):
        return uniform_layers(base, len(sliding))
    if base.attention is None:
        return uniform_layers(base, len(sliding))
    local = Layer(attention=with_window(base.attention, window), ffn=base.ffn, norms=base.norms,
                  parallel=base.parallel)
    return [local if is_local else base for is_local in sliding]
