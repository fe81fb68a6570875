"""Number formats: what one stored parameter costs, derived from each format's block layout.

A format stores ``block_size`` elements of ``bits_per_element`` each plus per-block overheads (scales, zero
points, minimums)::

    bits_per_param = bits_per_element + sum(overhead.bits / overhead.every) / block_size

Overheads stored once per output row, per input column or per tensor depend on the tensor's shape; they
are listed on the format, counted exactly by ``NumberFormat.tensor_bits`` and left out of
``bits_per_param`` (one fp32 scale per 4096-wide row is 32/4096 = 0.008 bits per parameter).

A llama.cpp file type such as Q4_K_M is not one layout but a rule that picks a tensor type per tensor
(``family is Family.GGUF_MIX``): see ``gguf_mix``, which builds those on the layouts registered here.
``parse_number_format`` knows both; a mix's ``bits_per_param`` is the published whole-file figure of its
``reference`` model.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from suanli.errors import SpecError, close_matches, require_non_negative, suggest

if TYPE_CHECKING:
    from suanli.spec.gguf_mix import MixReference, TensorOverride

ComputeFormat = Literal["fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "fp4"]


class Family(StrEnum):
    FLOAT = "float"
    INTEGER = "integer"
    NF4 = "nf4"
    GPTQ = "gptq"
    AWQ = "awq"
    GGUF = "gguf"  # one ggml tensor type
    GGUF_MIX = "gguf-mix"  # a llama.cpp file type: a rule choosing a tensor type per tensor
    MICROSCALING = "microscaling"


Per = Literal["block", "output_row", "input_column", "tensor"]  # what an overhead is stored once for


@dataclass(frozen=True, slots=True, kw_only=True)
class Overhead:
    what: str
    bits: int
    per: Per = "block"
    every: int = 1  # stored once per `every` units of `per` (nf4 double quant: one fp32 per 256 blocks)


@dataclass(frozen=True, slots=True, kw_only=True)
class NumberFormat:
    key: str
    family: Family
    bits_per_element: float
    block_size: int = 1
    overheads: tuple[Overhead, ...] = ()
    compute_format: ComputeFormat
    source: str
    mixture: tuple[TensorOverride, ...] = ()
    reference: MixReference | None = None

    def __post_init__(self) -> None:
        if not self.bits_per_element > 0 or self.block_size < 1:
            raise SpecError(f"{self.key}: bits_per_element ({self.bits_per_element}) and block_size "
                            f"({self.block_size}) must be positive", key="error.precision.format_sizes",
                            fields={"format": self.key, "bits": self.bits_per_element, "block": self.block_size})
        if bool(self.mixture) != (self.reference is not None):
            raise SpecError(f"{self.key}: a mixture needs a published reference size and vice versa",
                            key="error.precision.mixture_reference", fields={"format": self.key})

    def _overhead_bits(self, per: Per) -> float:
        return sum(o.bits / o.every for o in self.overheads if o.per == per)

    @property
    def block_overhead_bits(self) -> float:
        """Scale/zero/min bits stored per block of ``block_size`` elements."""
        return self._overhead_bits("block")

    @property
    def layout_bits_per_param(self) -> float:
        """bits_per_element + block_overhead_bits / block_size (for a mixture: its base tensor type)."""
        return self.bits_per_element + self.block_overhead_bits / self.block_size

    @property
    def bits_per_param(self) -> float:
        """Layout bits per parameter; for a llama.cpp mixture the published whole-file average."""
        return self.reference.bits_per_param if self.reference else self.layout_bits_per_param

    @property
    def bytes_per_param(self) -> float:
        return self.bits_per_param / 8

    @property
    def is_quantized(self) -> bool:
        """Stored in fewer than 16 bits per element, so weights need a scale to be represented."""
        return self.bits_per_element < 16

    def tensor_bits(self, *, out_features: int, in_features: int) -> float:
        """Exact bits of one [out_features, in_features] weight, blocks running along in_features."""
        if self.mixture:
            raise SpecError(f"{self.key} is a file mix, not one tensor layout; use gguf_mix_bits_per_param",
                            key="error.precision.file_mix", fields={"format": self.key})
        blocks = out_features * math.ceil(in_features / self.block_size)
        return (out_features * in_features * self.bits_per_element + blocks * self.block_overhead_bits
                + out_features * self._overhead_bits("output_row")
                + in_features * self._overhead_bits("input_column") + self._overhead_bits("tensor"))


def bytes_for(params: int, fmt: NumberFormat) -> float:
    """Bytes to store ``params`` parameters in ``fmt``: params × bits_per_param / 8."""
    require_non_negative("params", params)
    return params * fmt.bits_per_param / 8


# ---- the registry, built from layouts ----------------------------------------------------------------

_IEEE = "IEEE 754-2008 binary formats"
_BF16 = "bfloat16: 1 sign, 8 exponent, 7 mantissa bits (Kalamkar et al. 2019, arXiv:1905.12322)"
_TF32 = "NVIDIA A100 whitepaper (2020): TF32 is a tensor-core math mode; operands are stored as fp32"
_FP8 = "Micikevicius et al. 2022, FP8 Formats for Deep Learning, arXiv:2209.05433; per-tensor fp32 scale"
_GGML = "ggml/src/ggml-common.h block_{} (llama.cpp); gguf-py GGML_QUANT_SIZES"
_GGML_COMPUTE: ComputeFormat = "int8"  # llama.cpp CUDA MMQ: activations to q8_1, integer dot products
_D16 = Overhead(what="d: fp16 block scale", bits=16)
_M16 = Overhead(what="m/dmin: fp16 block minimum", bits=16)
_TENSOR_SCALE = Overhead(what="fp32 per-tensor scale", bits=32, per="tensor")


def _float(key: str, bits: int, compute: ComputeFormat, source: str, *extra: Overhead) -> NumberFormat:
    return NumberFormat(key=key, family=Family.FLOAT, bits_per_element=bits, overheads=extra,
                        compute_format=compute, source=source)


def _ggml(key: str, block: int, bits_per_element: float, *overheads: Overhead) -> NumberFormat:
    return NumberFormat(key=key, family=Family.GGUF, bits_per_element=bits_per_element, block_size=block,
                        overheads=overheads, compute_format=_GGML_COMPUTE, source=_GGML.format(key))


def _scales(what: str, bits: int) -> Overhead:
    return Overhead(what=what, bits=bits)


def int4_format(group: int = 128) -> NumberFormat:
    """Group-wise int4 weights, one 16-bit scale and one 16-bit zero per group (torchao int4 weight-only)."""
    return NumberFormat(
        key=f"int4-g{group}", family=Family.INTEGER, bits_per_element=4, block_size=group,
        overheads=(Overhead(what="16-bit scale", bits=16), Overhead(what="16-bit zero point", bits=16)),
        compute_format="fp16", source="torchao int4_weight_only (scales_and_zeros, 16-bit each); "
        "W4A16: dequantized in the GEMM kernel, computed in fp16/bf16")


def gptq_format(bits: int = 4, group: int = 128) -> NumberFormat:
    """GPTQ: per group of ``group`` input features and per output, an fp16 scale and a packed zero point."""
    if bits not in (2, 3, 4, 8):
        raise SpecError(f"GPTQ stores 2, 3, 4 or 8 bits per weight, got {bits}; try gptq-4bit-g128",
                        key="error.precision.gptq_bits", fields={"bits": bits})
    return NumberFormat(
        key=f"gptq-{bits}bit-g{group}", family=Family.GPTQ, bits_per_element=bits, block_size=group,
        overheads=(Overhead(what="fp16 scale (scales)", bits=16),
                   Overhead(what=f"{bits}-bit zero point packed in int32 (qzeros)", bits=bits),
                   Overhead(what="int32 group index (g_idx)", bits=32, per="input_column")),
        compute_format="fp16", source="Frantar et al. 2023, arXiv:2210.17323; AutoGPTQ/GPTQModel "
        "packing (qweight, qzeros, scales, g_idx); act-order changes g_idx values, not sizes. W*A16 kernels "
        "(exllama, Marlin) compute in fp16")


def awq_format(group: int = 128) -> NumberFormat:
    """AWQ: 4-bit weights, per group and output an fp16 scale and a packed 4-bit zero point."""
    return NumberFormat(
        key=f"awq-4bit-g{group}", family=Family.AWQ, bits_per_element=4, block_size=group,
        overheads=(Overhead(what="fp16 scale (scales)", bits=16),
                   Overhead(what="4-bit zero point packed in int32 (qzeros)", bits=4)),
        compute_format="fp16", source="Lin et al. 2024, arXiv:2306.00978; AutoAWQ GEMM packing; W4A16")


def nf4_format(*, double_quant: bool = True) -> NumberFormat:
    """QLoRA NF4: blocks of 64 with an absmax scale; double quantization stores that absmax in 8 bits.

    Dettmers et al. 2023 (arXiv:2305.14314, §3 Double Quantization): 32/64 = 0.5 bits per parameter of
    scales become 8/64 + 32/(64·256) = 0.127 bits.
    """
    src = "Dettmers et al. 2023, QLoRA, arXiv:2305.14314; bitsandbytes blocksize 64, nested blocksize 256"
    if not double_quant:
        absmax = (Overhead(what="fp32 absmax", bits=32),)
        return NumberFormat(key="nf4-nodq", family=Family.NF4, bits_per_element=4, block_size=64,
                            overheads=absmax, compute_format="bf16", source=src)
    nested = (Overhead(what="8-bit quantized absmax", bits=8),
              Overhead(what="fp32 second-level absmax scale", bits=32, every=256),
              Overhead(what="fp32 offset (mean of the absmax values)", bits=32, per="tensor"))
    return NumberFormat(key="nf4", family=Family.NF4, bits_per_element=4, block_size=64, overheads=nested,
                        compute_format="bf16", source=src)


def fp8_block_format(rows: int = 128, columns: int = 128) -> NumberFormat:
    """FP8 (e4m3) weights with one fp32 scale per ``rows`` × ``columns`` block (``weight_scale_inv``).

    bits_per_param = 8 + 32 / (rows · columns): 8.002 for DeepSeek-V3's 128 × 128 blocks. Blocks run
    ``columns`` along in_features; one scale serves ``rows`` such row-segments (exact when out_features is a
    multiple of ``rows``, else short by the last partial block row: kv_a_proj_with_mqa's 576 rows hold 5 block
    rows, counted as 4.5).
    """
    if rows < 1 or columns < 1:
        raise SpecError(f"fp8 weight_block_size must be positive, got [{rows}, {columns}]; DeepSeek-V3 uses [128, 128]",
                        key="error.precision.fp8_block", fields={"rows": rows, "columns": columns})
    return NumberFormat(
        key=f"fp8-block{rows}x{columns}", family=Family.FLOAT, bits_per_element=8, block_size=columns,
        overheads=(Overhead(what=f"fp32 scale per {rows}×{columns} block (weight_scale_inv)", bits=32, every=rows),),
        compute_format="fp8", source="DeepSeek-AI 2024, DeepSeek-V3 Technical Report, arXiv:2412.19437 §3.3.2 "
        "(128×128 weight blocks); transformers FineGrainedFP8 (quant_method fp8, weight_block_size)")


def _micro(key: str, block: int, scale: str, source: str, *extra: Overhead) -> NumberFormat:
    return NumberFormat(key=key, family=Family.MICROSCALING, bits_per_element=4, block_size=block,
                        overheads=(Overhead(what=scale, bits=8), *extra), compute_format="fp4", source=source)


_FORMATS: tuple[NumberFormat, ...] = (
    _float("fp64", 64, "fp64", _IEEE),
    _float("fp32", 32, "fp32", _IEEE),
    _float("tf32", 32, "tf32", _TF32),
    _float("bf16", 16, "bf16", _BF16),
    _float("fp16", 16, "fp16", _IEEE),
    _float("fp8_e4m3", 8, "fp8", _FP8, _TENSOR_SCALE),
    _float("fp8_e5m2", 8, "fp8", _FP8, _TENSOR_SCALE),
    NumberFormat(key="int8", family=Family.INTEGER, bits_per_element=8, compute_format="int8",
                 overheads=(Overhead(what="fp32 per-channel scale", bits=32, per="output_row"),),
                 source="W8A8 per-channel (SmoothQuant, Xiao et al. 2023, arXiv:2211.10438; LLM.int8)"),
    fp8_block_format(),
    int4_format(), nf4_format(), nf4_format(double_quant=False),
    gptq_format(4), gptq_format(8), awq_format(),
    _micro("mxfp4", 32, "e8m0 shared scale", "OCP Microscaling Formats (MX) v1.0, 2023: 32 fp4 e2m1 + e8m0"),
    _micro("nvfp4", 16, "fp8 e4m3 block scale", "NVIDIA NVFP4 (Blackwell, 2025): 16 fp4 e2m1 + e4m3 scale",
           _TENSOR_SCALE),
    _ggml("q4_0", 32, 4, _D16),
    _ggml("q4_1", 32, 4, _D16, _M16),
    _ggml("q5_0", 32, 5, _D16),  # qh: 1 high bit per weight, counted in bits_per_element
    _ggml("q5_1", 32, 5, _D16, _M16),
    _ggml("q8_0", 32, 8, _D16),
    _ggml("q2_k", 256, 2, _D16, _M16, _scales("4-bit scale + 4-bit min per 16 weights", 16 * 8)),
    _ggml("q3_k", 256, 3, _D16, _scales("6-bit scale per 16 weights", 16 * 6)),
    _ggml("q4_k", 256, 4, _D16, _M16, _scales("6-bit scale + 6-bit min per 32 weights", 8 * 12)),
    _ggml("q5_k", 256, 5, _D16, _M16, _scales("6-bit scale + 6-bit min per 32 weights", 8 * 12)),
    _ggml("q6_k", 256, 6, _D16, _scales("int8 scale per 16 weights", 16 * 8)),
    _ggml("iq4_nl", 32, 4, _D16),
    _ggml("iq4_xs", 256, 4, _D16, _scales("6-bit scale per 32 weights (scales_h + scales_l)", 8 * 6)),
    _ggml("iq3_s", 256, 3.25, _D16, _scales("4-bit scale per 32 weights", 8 * 4)),  # grid idx+qh+signs
    _ggml("iq3_xxs", 256, 3, _D16),  # grid indices + packed signs and 4-bit scales: 96 bytes
    _ggml("iq2_s", 256, 2.25, _D16, _scales("4-bit scale per 16 weights", 16 * 4)),
    _ggml("iq2_xs", 256, 2, _D16, _scales("4-bit scale per 16 weights", 16 * 4)),
    _ggml("iq2_xxs", 256, 2, _D16),  # 9-bit grid index + 7 sign bits + 4-bit scale, packed
    _ggml("iq1_m", 256, 1.5, _scales("3-bit scales and packed fp16 super-block scale", 64)),
    _ggml("iq1_s", 256, 1.5, _D16),
    _ggml("tq2_0", 256, 2, _D16),
    _ggml("tq1_0", 256, 1.625, _D16),  # base-3 packing: 5 trits per byte
)
_BY_KEY = {f.key: f for f in _FORMATS}
LAYOUTS: Mapping[str, NumberFormat] = MappingProxyType(_BY_KEY)  # one layout per key, no mixes

# ---- parsing -----------------------------------------------------------------------------------------

_DTYPE_CODES = {  # HF torch_dtype names and safetensors dtype codes
    "float64": "fp64", "f64": "fp64", "float32": "fp32", "float": "fp32", "f32": "fp32", "bf16": "bf16",
    "bfloat16": "bf16", "float16": "fp16", "half": "fp16", "f16": "fp16", "f8_e4m3": "fp8_e4m3",
    "float8_e4m3fn": "fp8_e4m3", "f8_e5m2": "fp8_e5m2", "float8_e5m2": "fp8_e5m2", "i8": "int8",
    "int8": "int8", "u8": "int8", "uint8": "int8", "f8_e4m3fnuz": "fp8_e4m3", "float8_e4m3fnuz": "fp8_e4m3",
    "f8_e5m2fnuz": "fp8_e5m2", "float8_e5m2fnuz": "fp8_e5m2",
}
_ALIASES = {
    "double": "fp64", "fp8": "fp8_e4m3", "e4m3": "fp8_e4m3", "e5m2": "fp8_e5m2", "w8a8": "int8",
    "nf4_dq": "nf4", "nf4_double_quant": "nf4", "bnb_nf4": "nf4", "qlora": "nf4", "nf4_no_dq": "nf4-nodq",
    **_DTYPE_CODES,
}
_PARAMETRIC = re.compile(r"^(gptq|awq|int4)(?:-(?:int|w)?(\d+)(?:bit|b)?)?(?:-g?(\d+)g?)?$")
_FAMILIES = ("float: fp32, tf32, bf16, fp16, fp8_e4m3, fp8_e5m2, fp64", "integer: int8, int4-g<N>",
             "nf4, nf4-nodq", "gptq-<bits>bit-g<N>", "awq-4bit-g<N>", "microscaling: mxfp4, nvfp4",
             "gguf tensor types: q4_0 ... q8_0, q2_k ... q6_k, iq*", "gguf file mixes: q4_k_m, q5_k_s, ...")


def _normal(text: str) -> str:
    return re.sub(r"[\s_\-:]+", "-", text.strip().lower().removeprefix("torch."))


def _file_types() -> Mapping[str, NumberFormat]:
    from suanli.spec.gguf_mix import FILE_TYPES  # built on LAYOUTS, so imported on first use, not at import

    return FILE_TYPES


@cache
def _lookup() -> Mapping[str, NumberFormat]:
    table = {_normal(k): f for k, f in _BY_KEY.items()}
    table.update({_normal(k): f for k, f in _file_types().items() if _normal(k) not in table})
    table.update({_normal(alias): _BY_KEY[key] for alias, key in _ALIASES.items()})
    return MappingProxyType(table)


def _parametric(text: str) -> NumberFormat | None:
    text = re.sub(r"-(act-?order|desc-?act)$", "", text)
    match = _PARAMETRIC.match(text)
    if match is None:
        return None
    kind, bits_text, group_text = match.groups()
    bits, group = int(bits_text or 4), int(group_text or 128)
    if group < 1:
        raise SpecError(f"group size must be positive, got {group}; the usual choice is 128",
                        key="error.precision.group_size", fields={"group": group})
    if kind != "gptq" and bits != 4:
        raise SpecError(f"{kind} stores 4-bit weights, got {bits}; for 8-bit use int8 or gptq-8bit-g128",
                        key="error.precision.four_bit_only", fields={"kind": kind, "bits": bits})
    return gptq_format(bits, group) if kind == "gptq" else awq_format(group) if kind == "awq" \
        else int4_format(group)


def parse_number_format(text: str) -> NumberFormat:
    """Case-insensitive name or alias -> NumberFormat. "nf4" means QLoRA's default, with double quant.

    GGUF names without a size suffix (q4_0, q6_k, q8_0, q2_k) are ggml tensor layouts; names with one
    (q4_k_m, q3_k_s, q5_k_m) are llama.cpp file mixes; ``gguf_mix.gguf_file_type`` gives the mix for any name.
    """
    key = _normal(text).removeprefix("gguf-")
    found = _lookup().get(key) or _parametric(key)
    if found is None:
        names = [*_BY_KEY, *_file_types(), *_ALIASES]
        raise SpecError(f"unknown number format {text!r}{suggest(key.replace('-', '_'), names)}; "
                        f"known families: {'; '.join(_FAMILIES)}",
                        key="error.unknown_number_format",
                        fields={"text": text, "suggestions": close_matches(key.replace("-", "_"), names),
                                "families": "; ".join(_FAMILIES)})
    return found


@cache
def _dtype_codes() -> Mapping[str, str]:
    return MappingProxyType({_normal(code): key for code, key in _DTYPE_CODES.items()})


@cache
def torch_dtype_format(name: str) -> NumberFormat:
    """HF config ``torch_dtype``/``dtype`` ("bfloat16", "torch.float16") or safetensors code ("BF16").

    U8/I8 map to 8-bit storage (int8); packed 4-bit payloads in U8 (bitsandbytes) are the caller's call.
    """
    codes = _dtype_codes()
    key = _normal(name)
    if key not in codes:
        raise _not_a_weight_dtype(name, key)
    return _BY_KEY[codes[key]]


def _not_a_weight_dtype(name: str, key: str) -> SpecError:
    """The error for a dtype that stores no weights: packed integers, 'auto', or a misspelling."""
    known = ", ".join(sorted(_DTYPE_CODES))
    if re.fullmatch(r"[iu](nt)?(16|32|64)|bool", key):
        return SpecError(f"dtype {name!r} is not a weight number format; such tensors hold packed quantized weights "
                         f"or indices (GPTQ qweight, g_idx); known: {known}", key="error.precision.dtype_packed",
                         fields={"name": name, "known": known})
    if key == "auto":
        return SpecError(f"dtype {name!r} is not a weight number format; 'auto' means the checkpoint's dtype: read "
                         f"it from the safetensors headers; known: {known}", key="error.precision.dtype_auto",
                         fields={"name": name, "known": known})
    wanted = key.replace("-", "_")
    return SpecError(f"dtype {name!r} is not a weight number format{suggest(wanted, _DTYPE_CODES)}; known: {known}",
                     key="error.precision.dtype_unknown",
                     fields={"name": name, "suggestions": close_matches(wanted, _DTYPE_CODES), "known": known})


def all_formats() -> tuple[NumberFormat, ...]:
    """Every registered layout and llama.cpp file mix (parametric GPTQ/AWQ/int4 at their defaults)."""
    return _FORMATS + tuple(_file_types().values())
