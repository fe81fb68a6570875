"""Number formats: bits per parameter derived by hand from the published block layouts."""

from __future__ import annotations

import dataclasses

import pytest

from suanli.errors import SpecError
from suanli.spec.precision import (
    Family,
    NumberFormat,
    all_formats,
    bytes_for,
    parse_number_format,
    torch_dtype_format,
)


def bits(name: str) -> float:
    return parse_number_format(name).bits_per_param


# ---- layouts --------------------------------------------------------------------------------------------


def test_floats_are_their_storage_width() -> None:
    assert [bits(n) for n in ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8_e4m3", "fp8_e5m2")] == [
        64, 32, 32, 16, 16, 8, 8]
    assert parse_number_format("int8").bytes_per_param == parse_number_format("fp32").bytes_per_param / 4


def test_nf4_double_quant_matches_qlora() -> None:
    # Dettmers et al. 2023 (QLoRA, arXiv:2305.14314) §3: blocks of 64 with an fp32 absmax cost 32/64 = 0.5
    # bits; double quantization stores the absmax in 8 bits with one fp32 scale per 256 blocks:
    # 8/64 + 32/(64*256) = 0.125 + 0.001953125 = 0.126953125 ("0.127").
    assert bits("nf4") == 4 + 8 / 64 + 32 / (64 * 256) == 4.126953125
    assert round(bits("nf4") - 4, 3) == 0.127
    assert bits("nf4-nodq") == 4 + 32 / 64 == 4.5
    assert parse_number_format("nf4-dq") is parse_number_format("nf4")  # QLoRA's default is with DQ


@pytest.mark.parametrize(("name", "block_bytes", "block_weights"), [
    # ggml/src/ggml-common.h (llama.cpp):
    ("q4_0", 2 + 16, 32),  # block_q4_0 { ggml_half d; uint8_t qs[QK4_0/2]; }
    ("q4_1", 2 + 2 + 16, 32),  # block_q4_1 { d, m; qs[16] }
    ("q5_0", 2 + 4 + 16, 32),  # block_q5_0 { d; uint8_t qh[4]; qs[16] }
    ("q5_1", 2 + 2 + 4 + 16, 32),
    ("q8_0", 2 + 32, 32),  # block_q8_0 { d; int8_t qs[32] }
    ("q2_k", 16 + 64 + 2 + 2, 256),  # block_q2_K { scales[QK_K/16]; qs[QK_K/4]; d; dmin }
    ("q3_k", 32 + 64 + 12 + 2, 256),  # block_q3_K { hmask[QK_K/8]; qs[QK_K/4]; scales[12]; d }
    ("q4_k", 2 + 2 + 12 + 128, 256),  # block_q4_K { d; dmin; scales[K_SCALE_SIZE=12]; qs[QK_K/2] }
    ("q5_k", 2 + 2 + 12 + 32 + 128, 256),  # block_q5_K { d; dmin; scales[12]; qh[QK_K/8]; qs[QK_K/2] }
    ("q6_k", 128 + 64 + 16 + 2, 256),  # block_q6_K { ql[QK_K/2]; qh[QK_K/4]; scales[QK_K/16]; d }
    ("iq4_nl", 2 + 16, 32),
    ("iq4_xs", 2 + 2 + 4 + 128, 256),  # block_iq4_xs { d; scales_h; scales_l[QK_K/64]; qs[QK_K/2] }
    ("mxfp4", 1 + 16, 32),  # OCP MX v1.0: 32 x fp4 e2m1 + one e8m0 scale
    ("nvfp4", 1 + 8, 16),  # NVFP4: 16 x fp4 e2m1 + one fp8 e4m3 scale (per-tensor fp32 scale not counted)
])
def test_block_layouts(name: str, block_bytes: int, block_weights: int) -> None:
    assert bits(name) == block_bytes * 8 / block_weights


def test_headline_gguf_numbers() -> None:
    assert (bits("Q4_0"), bits("Q8_0"), bits("Q4_K"), bits("Q6_K")) == (4.5, 8.5, 4.5, 6.5625)


def test_ggml_layouts_agree_with_gguf_py() -> None:
    gguf = pytest.importorskip("gguf")
    for fmt in all_formats():
        if fmt.family not in (Family.GGUF, Family.MICROSCALING):
            continue
        weights, nbytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType[fmt.key.upper()]]
        assert fmt.layout_bits_per_param == nbytes * 8 / weights, fmt.key


def test_gptq_and_awq() -> None:
    # 4-bit, group 128: per group and output column an fp16 scale and a 4-bit zero packed in qzeros:
    # 4 + 16/128 + 4/128 = 4.15625 bits (g_idx, one int32 per input feature, depends on the shape).
    assert bits("gptq") == bits("gptq-4bit-128g") == bits("awq-4bit-g128") == 4 + 16 / 128 + 4 / 128
    assert bits("gptq-4bit-32g") == 4 + 20 / 32
    assert bits("gptq-int8") == 8 + (16 + 8) / 128
    gptq = parse_number_format("gptq-4bit-g128-act-order")
    assert gptq.key == "gptq-4bit-g128"  # act-order reorders g_idx, sizes are unchanged
    exact = 4096 * 4096 * 4 + 4096 * (4096 // 128) * 20 + 4096 * 32  # weights + groups + g_idx
    assert gptq.tensor_bits(out_features=4096, in_features=4096) == exact


def test_int_formats() -> None:
    assert bits("int4") == 4 + 32 / 128  # 16-bit scale + 16-bit zero per group of 128
    assert bits("int4-g64") == 4 + 32 / 64
    int8 = parse_number_format("int8")
    assert int8.tensor_bits(out_features=4096, in_features=1024) == 4096 * 1024 * 8 + 4096 * 32
    # 70B weights in int4: 35 GB of 4-bit payload plus 70e9/128 groups of 4 bytes = 2.1875 GB
    assert bytes_for(70_000_000_000, parse_number_format("int4")) == 35e9 + 70e9 / 128 * 4


def test_compute_formats() -> None:
    expected = {"fp32": "fp32", "tf32": "tf32", "bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "int8": "int8",
                "nf4": "bf16", "gptq": "fp16", "awq": "fp16", "int4": "fp16", "mxfp4": "fp4", "nvfp4": "fp4"}
    assert {n: parse_number_format(n).compute_format for n in expected} == expected


def test_is_quantized() -> None:
    assert not parse_number_format("bf16").is_quantized
    assert all(parse_number_format(n).is_quantized for n in ("fp8", "int8", "nf4", "q4_k_m", "mxfp4"))


# ---- parsing --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "key"), [
    ("bfloat16", "bf16"), ("BF16", "bf16"), ("half", "fp16"), ("float16", "fp16"), ("torch.float32", "fp32"),
    ("fp8", "fp8_e4m3"), ("fp8_e4m3", "fp8_e4m3"), ("FP8-E5M2", "fp8_e5m2"), ("q4_k_m", "q4_k_m"),
    ("Q5_K_S", "q5_k_s"), ("gguf:q4_k_m", "q4_k_m"), ("int4-g64", "int4-g64"), ("int4", "int4-g128"),
    ("gptq-4bit-32g", "gptq-4bit-g32"), ("GPTQ-Int4", "gptq-4bit-g128"), ("awq", "awq-4bit-g128"),
    ("nf4-dq", "nf4"), ("NF4", "nf4"), ("nf4-nodq", "nf4-nodq"), ("MXFP4", "mxfp4"), ("iq4_xs", "iq4_xs"),
])
def test_parse_aliases(text: str, key: str) -> None:
    assert parse_number_format(text).key == key


def test_parse_errors_suggest_and_list_families() -> None:
    with pytest.raises(SpecError, match=r"did you mean q4_k_m.*known families: float"):
        parse_number_format("q4km")
    with pytest.raises(SpecError, match="awq stores 4-bit"):
        parse_number_format("awq-8bit")
    with pytest.raises(SpecError, match="2, 3, 4 or 8"):
        parse_number_format("gptq-5bit")


@pytest.mark.parametrize(("text", "key"), [
    ("bfloat16", "bf16"), ("torch.bfloat16", "bf16"), ("float16", "fp16"), ("float32", "fp32"),
    ("BF16", "bf16"), ("F16", "fp16"), ("F32", "fp32"), ("F8_E4M3", "fp8_e4m3"), ("F8_E5M2", "fp8_e5m2"),
    ("I8", "int8"), ("U8", "int8"), ("F64", "fp64"),
])
def test_torch_dtype_format(text: str, key: str) -> None:
    assert torch_dtype_format(text).key == key


def test_torch_dtype_errors() -> None:
    with pytest.raises(SpecError, match="packed"):
        torch_dtype_format("I32")
    with pytest.raises(SpecError, match="'auto'"):
        torch_dtype_format("auto")
    with pytest.raises(SpecError, match="did you mean"):
        torch_dtype_format("bfloat61")


def test_validation() -> None:
    with pytest.raises(SpecError, match="params"):
        bytes_for(-1, parse_number_format("bf16"))
    with pytest.raises(SpecError, match="must be positive"):
        dataclasses.replace(parse_number_format("bf16"), block_size=0)
    with pytest.raises(SpecError, match="reference"):
        dataclasses.replace(parse_number_format("q4_k_m"), reference=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        parse_number_format("bf16").key = "x"  # type: ignore[misc]


def test_registry_keys_are_unique_and_sourced() -> None:
    layouts = [f for f in all_formats() if f.family is not Family.GGUF_MIX]
    assert len({f.key for f in layouts}) == len(layouts)
    assert all(isinstance(f, NumberFormat) and f.source for f in all_formats())
