"""llama.cpp file types (Q4_K_M, Q4_0, ...): rules that pick a ggml tensor type per tensor.

A file type is not one layout. llama-quantize stores most tensors in a base type and some (output.weight,
attn_v and ffn_down in chosen layers) in wider ones, by ``llama_tensor_get_type_impl`` in
src/llama-quant.cpp. Each rule is kept here as data (``TensorOverride``) on a ``NumberFormat`` of family
``GGUF_MIX`` whose layout is the base type's; ``gguf_mix_bits_per_param`` applies it to one model's
tensor sizes, and the format's ``bits_per_param`` is the published whole-file figure of its reference::

    bits_per_param(model) = sum(params(tensor) × layout_bits(type chosen for tensor)) / sum(params)

The ggml tensor layouts themselves (q4_k, q6_k, ...) are in ``precision``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Literal, cast, get_args

from suanli.errors import SpecError, close_matches, suggest
from suanli.spec.precision import LAYOUTS, Family, NumberFormat
from suanli.units import GiB

# Which layers an override applies to (src/llama-quant.cpp): more_bits = use_more_bits(i, n):
# i < n/8 or i >= 7n/8 or (i - n/8) % 3 == 2; first_eighth: i < n/8; first_2: i < 2; ...
Layers = Literal["all", "more_bits", "first_eighth", "first_sixteenth", "first_2", "first_4"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TensorOverride:
    """llama.cpp stores tensors of ``role`` in ``format_key`` instead of the mix's base type."""

    role: str  # output, token_embd, attn_v, attn_qkv, attn_output, ffn_down
    format_key: str
    layers: Layers = "all"
    min_gqa: int = 1  # applies only when num_attention_heads / num_key_value_heads >= min_gqa

    def __post_init__(self) -> None:
        if self.layers not in get_args(Layers):
            choices = ", ".join(get_args(Layers))
            raise SpecError(f"layers {self.layers!r} is not one of {choices}", key="error.gguf.mix_layers",
                            fields={"layers": self.layers, "choices": choices})
        if self.format_key not in LAYOUTS:
            raise SpecError(f"{self.role}: tensor type {self.format_key!r} is not a registered layout"
                            f"{suggest(self.format_key, LAYOUTS)}", key="error.gguf.mix_layout",
                            fields={"role": self.role, "fmt": self.format_key,
                                    "suggestions": close_matches(self.format_key, LAYOUTS)})


@dataclass(frozen=True, slots=True, kw_only=True)
class MixReference:
    """A published file size for a mixture: llama-quantize's QUANT_OPTIONS table (sizes in GiB)."""

    model: str
    params: int
    file_gib: float

    @property
    def bits_per_param(self) -> float:
        return self.file_gib * GiB * 8 / self.params


# Sizes: QUANT_OPTIONS in tools/quantize/quantize.cpp, "x.xxG @ Llama-3-8B" in GiB, Llama-3-8B =
# 8,030,261,248 parameters. Not modelled: 1-D tensors kept in F32, shape fallbacks (row length not a
# multiple of 256), the 70B and 8-expert rules, imatrix-only rules.
_LLAMA3_8B = 8_030_261_248
# name: (base tensor type, file GiB @ Llama-3-8B, overrides "role[@layers|@gqa<N>]=type", first match wins)
_MIXES = {
    "q4_0": ("q4_0", 4.34, "output=q6_k"),
    "q4_1": ("q4_1", 4.78, "output=q6_k"),
    "q5_0": ("q5_0", 5.21, "output=q6_k"),
    "q5_1": ("q5_1", 5.65, "output=q6_k"),
    "q8_0": ("q8_0", 7.96, "output=q8_0"),
    "q6_k": ("q6_k", 6.14, "output=q6_k"),
    "q2_k": ("q2_k", 2.96, "output=q6_k attn_v@gqa4=q4_k attn_v=q3_k ffn_down=q3_k attn_output=q3_k"),
    "q3_k_s": ("q3_k", 3.41, "output=q6_k"),
    "q3_k_m": ("q3_k", 3.74, "output=q6_k attn_v@first_2=q5_k attn_v=q4_k attn_output=q4_k "
                             "ffn_down@first_sixteenth=q5_k ffn_down=q4_k"),
    "q3_k_l": ("q3_k", 4.03, "output=q6_k attn_v=q5_k ffn_down=q5_k attn_output=q5_k"),
    "q4_k_s": ("q4_k", 4.37, "output=q6_k attn_v@first_4=q5_k ffn_down@first_eighth=q5_k"),
    "q4_k_m": ("q4_k", 4.58, "output=q6_k attn_v@more_bits=q6_k ffn_down@more_bits=q6_k"),
    "q5_k_s": ("q5_k", 5.21, "output=q6_k"),
    "q5_k_m": ("q5_k", 5.33, "output=q6_k attn_v@more_bits=q6_k ffn_down@more_bits=q6_k"),
}


def _rule(text: str) -> TensorOverride:
    target, format_key = text.split("=")
    role, _, when = target.partition("@")
    if when.startswith("gqa"):
        return TensorOverride(role=role, format_key=format_key, min_gqa=int(when[3:]))
    return TensorOverride(role=role, format_key=format_key, layers=cast(Layers, when or "all"))


def _file_type(name: str, base: str, gib: float, rules: str) -> NumberFormat:
    return replace(LAYOUTS[base], key=name, family=Family.GGUF_MIX,
                   mixture=tuple(_rule(r) for r in rules.split()),
                   reference=MixReference(model="Llama-3-8B", params=_LLAMA3_8B, file_gib=gib),
                   source="llama.cpp src/llama-quant.cpp (mixture rule); tools/quantize/quantize.cpp "
                   f"QUANT_OPTIONS ({gib}G @ Llama-3-8B); base layout: {LAYOUTS[base].source}")


FILE_TYPES: Mapping[str, NumberFormat] = MappingProxyType(
    {name: _file_type(name, *spec) for name, spec in _MIXES.items()})
# Current llama.cpp quantizes fused attn_qkv and MLA attn_kv_b with the attn_v rules.
_ROLE_AS = {"attn_qkv": "attn_v", "attn_kv_b": "attn_v"}


def _selected(layers: Layers, i: int, n: int) -> bool:
    if layers == "more_bits":
        return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2
    limits = {"first_eighth": n // 8, "first_sixteenth": n // 16, "first_2": 2, "first_4": 4}
    return i < limits.get(layers, n)


def _role_bits(fmt: NumberFormat, role: str, i: int, n: int, n_gqa: int) -> float:
    role = _ROLE_AS.get(role, role)
    for rule in fmt.mixture:
        if rule.role == role and n_gqa >= rule.min_gqa and _selected(rule.layers, i, n):
            return LAYOUTS[rule.format_key].layout_bits_per_param
    return fmt.layout_bits_per_param


def gguf_mix_bits_per_param(fmt: NumberFormat, *, role_params: Mapping[str, int], n_layers: int,
                            n_gqa: int = 1) -> float:
    """Average bits per parameter of a llama.cpp file type over one model's tensors.

    ``role_params`` maps llama.cpp tensor roles to parameters: ``token_embd`` and ``output`` are whole
    tensors; the others (attn_q, attn_k, attn_v, attn_qkv, attn_output, ffn_gate, ffn_up, ffn_down, ...)
    are per layer. With no ``output`` (tied embeddings) token_embd follows the output rule, as in llama.cpp.
    ``n_gqa`` = num_attention_heads / num_key_value_heads. A uniform format returns its layout bits.
    """
    if n_layers < 1:
        raise SpecError(f"n_layers must be at least 1, got {n_layers}", key="error.gguf.mix_layers_count",
                        fields={"n_layers": n_layers})
    tied = not role_params.get("output")
    bits = total = 0.0
    for role, params in role_params.items():
        if role in ("token_embd", "output"):
            rule_role = "output" if tied or role == "output" else role
            bits, total = bits + params * _role_bits(fmt, rule_role, 0, 1, n_gqa), total + params
        else:
            per_layer = (_role_bits(fmt, role, i, n_layers, n_gqa) for i in range(n_layers))
            bits, total = bits + params * sum(per_layer), total + params * n_layers
    return bits / total if total else fmt.layout_bits_per_param


def gguf_file_type(name: str) -> NumberFormat:
    """A llama.cpp file type (Q4_K_M, Q4_0, Q8_0, ...) as a mixture, output.weight included."""
    key = re.sub(r"[\s_\-:]+", "_", name.strip().lower()).removeprefix("gguf_")
    if key not in FILE_TYPES:
        known = ", ".join(FILE_TYPES)
        raise SpecError(f"unknown llama.cpp file type {name!r}{suggest(key, FILE_TYPES)}; known: {known}",
                        key="error.gguf.unknown_file_type",
                        fields={"name": name, "suggestions": close_matches(key, FILE_TYPES), "known": known})
    return FILE_TYPES[key]
