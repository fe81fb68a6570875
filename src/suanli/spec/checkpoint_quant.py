"""How a checkpoint stores its weights, read from config.json's ``quantization_config``.

A quantized checkpoint says so in its config (transformers' ``HfQuantizer`` reads the same block): the method
(``quant_method``), the layout of the quantized Linear weights, and the modules left out of quantization
(``modules_to_not_convert``, bitsandbytes' ``llm_int8_skip_modules``, compressed-tensors' ``ignore``). Those
modules stay in the checkpoint dtype, as do the embeddings, the output head, norms and routers, which no method
below quantizes. The layout is a ``NumberFormat`` of ``spec/precision.py``, so its bytes per parameter come from
the block layout, scales included:

=====================  ===========================================================  =========================
quant_method           keys read                                                    layout
=====================  ===========================================================  =========================
fp8                    ``weight_block_size`` [128, 128] (DeepSeek-V3/R1, MiniMax-M2)   fp8 + fp32 per block
                       none (per-tensor scale)                                      fp8_e4m3
fbgemm_fp8             (per output channel scale)                                   fp8 + per-row scale
mxfp4                  (gpt-oss: experts only, via ``modules_to_not_convert``)       mxfp4 (4.25 bits)
gptq                   ``bits``, ``group_size`` (-1: one group per row)              gptq-<bits>bit-g<group>
awq                    ``bits`` (4), ``group_size``                                  awq-4bit-g<group>
bitsandbytes           ``load_in_4bit`` (+ ``bnb_4bit_use_double_quant``) / 8bit     nf4 (fp4 has the same
                                                                                    layout) / int8
compressed-tensors     one config group on Linear: ``weights.num_bits``, ``type``,  fp8 / int4 / int8 with
                       ``strategy``, ``group_size``, ``symmetric``                   the stated scales
=====================  ===========================================================  =========================

Any other method is not read: the spec keeps a note and the weights count in ``torch_dtype``.

Module names are matched by their dotted parts, as transformers matches ``modules_to_not_convert``: a part
ending in attention (``self_attn``), routed experts (``experts``), shared experts, the MLP or a Mamba mixer leaves
that group of Linear weights unquantized; one ending in a projection name (``q_proj``, ``kv_a_proj_with_mqa``,
``down_proj``) only that projection (of its group); others (embeddings, ``lm_head``, routers, norms) are never
quantized anyway. Layer indices are not distinguished (a listed layer counts for all).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from suanli.errors import ConfigError
from suanli.spec.precision import (
    LAYOUTS,
    Family,
    NumberFormat,
    Overhead,
    awq_format,
    fp8_block_format,
    gptq_format,
    nf4_format,
)

# dotted module-name part -> group of Linear weights (the groups ``core.inference_memory`` assigns)
_GROUPS = {"self_attn": "attention", "attn": "attention", "attention": "attention", "self_attention": "attention",
           "experts": "experts", "shared_expert": "shared_experts", "shared_experts": "shared_experts",
           "shared_mlp": "shared_experts", "mixer": "mixer"}
_MLP = ("mlp", "feed_forward", "ffn", "block_sparse_moe")  # the whole feed-forward block
# HF projection names -> the roles of ``core.inference_memory.block_linears``
_ROLES = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
          "q_a_proj": "attn_q_a", "q_b_proj": "attn_q_b", "kv_a_proj_with_mqa": "attn_kv_a_mqa",
          "kv_b_proj": "attn_kv_b", "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down",
          "w1": "ffn_gate", "w3": "ffn_up", "w2": "ffn_down", "in_proj": "ssm_in", "out_proj": "ssm_out"}
_SKIP_KEYS = ("modules_to_not_convert", "llm_int8_skip_modules", "ignore")


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointQuant:
    """The checkpoint's quantized-weight layout and what it leaves unquantized.

    ``unquantized`` holds groups ("attention", "experts", "shared_experts", "mlp", "mixer"), roles
    ("attn_kv_a_mqa") or "group/role" pairs; a Linear weight matching any of them stays in 16 bits."""

    method: str
    weights: NumberFormat
    unquantized: frozenset[str] = frozenset()
    skipped_modules: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """``fp8-block128x128 (from quantization_config, quant_method fp8)``."""
        return f"{self.weights.key} (from quantization_config, quant_method {self.method})"


def read_checkpoint_quant(config: Mapping[str, Any], name: str) -> tuple[CheckpointQuant | None, str | None]:
    """(the checkpoint's quantization, or None; a note when a quantization_config could not be read)."""
    raw = config.get("quantization_config")
    if raw is None:
        return None, None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{name}: quantization_config must be a JSON object, got {type(raw).__name__}",
                          key="error.quant_config.not_object", fields={"name": name, "kind": type(raw).__name__})
    method = str(raw.get("quant_method", "bitsandbytes" if _bnb(raw) else "")).lower().replace("_", "-")
    reader = _READERS.get(method)
    weights = reader(raw, name) if reader is not None else None
    if weights is None:
        return None, (f"quantization_config (quant_method {method or 'missing'}) is not read: weights count in "
                      "the checkpoint dtype; pass --quant to name their format")
    skipped = _skipped(raw, name)
    return CheckpointQuant(method=method, weights=weights, unquantized=unquantized_parts(skipped),
                           skipped_modules=skipped), None


def unquantized_parts(modules: tuple[str, ...]) -> frozenset[str]:
    """Module names (``model.layers.*.self_attn``, ``re:.*mlp.gate$``) -> the groups/roles they leave out."""
    parts: set[str] = set()
    for module in modules:
        words = [w for w in re.split(r"\W+", module.removeprefix("re:")) if re.fullmatch(r"[A-Za-z_]\w*", w)]
        last = words[-1] if words else ""
        if last in _ROLES:
            group = next((_group(w) for w in reversed(words[:-1]) if _group(w)), None)
            parts.add(f"{group}/{_ROLES[last]}" if group else _ROLES[last])
        elif last in _MLP:
            parts.update(("mlp", "experts", "shared_experts"))
        elif last in _GROUPS:
            parts.add(_GROUPS[last])
    return frozenset(parts)


def _group(word: str) -> str | None:
    return _GROUPS.get(word) or ("mlp" if word in _MLP else None)


def _skipped(raw: Mapping[str, Any], name: str) -> tuple[str, ...]:
    found: list[str] = []
    for key in _SKIP_KEYS:
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{name}: quantization_config.{key} must be a list of module names, got {value!r}",
                              key="error.quant_config.module_list", fields={"name": name, "key": key, "value": value})
        found.extend(value)
    return tuple(found)


def _bnb(raw: Mapping[str, Any]) -> bool:
    return bool(raw.get("load_in_4bit") or raw.get("load_in_8bit"))


def _int(raw: Mapping[str, Any], key: str, default: int, name: str) -> int:
    value = raw.get(key, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(f"{name}: quantization_config.{key} must be an integer, got {value!r}",
                          key="error.quant_config.integer", fields={"name": name, "key": key, "value": value})
    return value


def _fp8(raw: Mapping[str, Any], name: str) -> NumberFormat:
    block = raw.get("weight_block_size")
    if block is None:
        return LAYOUTS["fp8_e4m3"]
    if (not isinstance(block, list) or len(block) != 2
            or not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in block)):
        raise ConfigError(f"{name}: quantization_config.weight_block_size must be two positive integers such as "
                          f"[128, 128], got {block!r}", key="error.quant_config.block_size",
                          fields={"name": name, "block": block})
    return fp8_block_format(block[0], block[1])


def _per_row(fmt: NumberFormat, key: str) -> NumberFormat:
    """The same element layout with its scales (and zeros) stored once per output row instead of per group."""
    rows = tuple(Overhead(what=f"{o.what}, per output row", bits=o.bits, per="output_row")
                 for o in fmt.overheads if o.per == "block")
    return NumberFormat(key=key, family=fmt.family, bits_per_element=fmt.bits_per_element, overheads=rows,
                        compute_format=fmt.compute_format, source=fmt.source)


def _gptq(raw: Mapping[str, Any], name: str) -> NumberFormat:
    bits, group = _int(raw, "bits", 4, name), _int(raw, "group_size", 128, name)
    if group > 0:
        return gptq_format(bits, group)
    return _per_row(gptq_format(bits, 128), f"gptq-{bits}bit-perchannel")


def _awq(raw: Mapping[str, Any], name: str) -> NumberFormat:
    bits, group = _int(raw, "bits", _int(raw, "w_bit", 4, name), name), _int(raw, "group_size", 128, name)
    if bits != 4:
        raise ConfigError(f"{name}: AWQ checkpoints store 4-bit weights, quantization_config says bits={bits}",
                          key="error.quant_config.awq_bits", fields={"name": name, "bits": bits})
    return awq_format(group) if group > 0 else _per_row(awq_format(128), "awq-4bit-perchannel")


def _bitsandbytes(raw: Mapping[str, Any], name: str) -> NumberFormat | None:
    if raw.get("load_in_4bit"):  # nf4 and fp4 share the layout: 4 bits, an absmax per 64
        return nf4_format(double_quant=bool(raw.get("bnb_4bit_use_double_quant", False)))
    return LAYOUTS["int8"] if raw.get("load_in_8bit") else None


def _fbgemm_fp8(raw: Mapping[str, Any], name: str) -> NumberFormat:
    return _per_row(NumberFormat(key="fp8", family=Family.FLOAT, bits_per_element=8, compute_format="fp8",
                                 overheads=(Overhead(what="fp32 scale", bits=32),), source=LAYOUTS["fp8_e4m3"].source),
                    "fp8-perchannel")


def _mxfp4(raw: Mapping[str, Any], name: str) -> NumberFormat:
    return LAYOUTS["mxfp4"]


def _compressed_tensors(raw: Mapping[str, Any], name: str) -> NumberFormat | None:
    """One config group whose targets are Linear layers; anything richer is left unread (None)."""
    groups = raw.get("config_groups")
    if not isinstance(groups, Mapping) or len(groups) != 1:
        return None
    (group,) = groups.values()
    weights = group.get("weights") if isinstance(group, Mapping) else None
    if not isinstance(weights, Mapping) or group.get("targets") != ["Linear"]:
        return None
    bits, kind = _int(weights, "num_bits", 8, name), weights.get("type", "int")
    strategy, size = weights.get("strategy", "tensor"), weights.get("group_size")
    if kind == "float" and bits == 8:
        base = LAYOUTS["fp8_e4m3"]
    elif kind == "int" and bits in (4, 8):
        zero = () if weights.get("symmetric", True) else (Overhead(what=f"{bits}-bit zero point", bits=bits),)
        base = NumberFormat(key=f"int{bits}{'' if zero else '-sym'}", family=Family.INTEGER, bits_per_element=bits,
                            compute_format="fp16",
                            overheads=(Overhead(what="16-bit scale", bits=16), *zero),
                            source="compressed-tensors pack-quantized (weight_packed, weight_scale, weight_zero_point)")
    else:
        return None
    scales = tuple(o for o in base.overheads if o.per != "tensor") or (Overhead(what="scale", bits=32),)
    if strategy == "group" and isinstance(size, int) and size > 0:
        return NumberFormat(key=f"{base.key}-g{size}", family=base.family, bits_per_element=bits, block_size=size,
                            overheads=scales, compute_format=base.compute_format, source=base.source)
    if strategy == "channel":
        return _per_row(NumberFormat(key=base.key, family=base.family, bits_per_element=bits, overheads=scales,
                                     compute_format=base.compute_format, source=base.source),
                        f"{base.key}-perchannel")
    return base if strategy == "tensor" and kind == "float" else None


_READERS = {"fp8": _fp8, "fbgemm-fp8": _fbgemm_fp8, "mxfp4": _mxfp4, "gptq": _gptq, "awq": _awq,
            "bitsandbytes": _bitsandbytes, "compressed-tensors": _compressed_tensors}
