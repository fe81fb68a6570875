"""llama.cpp file mixes: the mixture rules reproduce llama-quantize's published file sizes."""

from __future__ import annotations

import pytest

from suanli.errors import SpecError
from suanli.spec.gguf_mix import TensorOverride, gguf_file_type, gguf_mix_bits_per_param
from suanli.spec.precision import Family, parse_number_format

# Llama-3-8B (hidden 4096, 32 layers, 32 heads, 8 KV heads of 128, SwiGLU 14336, vocab 128256, untied).
LLAMA3_8B = {
    "token_embd": 128256 * 4096, "output": 128256 * 4096,
    "attn_q": 4096 * 4096, "attn_k": 4096 * 1024, "attn_v": 4096 * 1024, "attn_output": 4096 * 4096,
    "ffn_gate": 4096 * 14336, "ffn_up": 4096 * 14336, "ffn_down": 14336 * 4096,
}


@pytest.mark.parametrize("name", ["q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m", "q5_k_s",
                                  "q5_k_m", "q6_k", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1"])
def test_mixture_rule_reproduces_published_sizes(name: str) -> None:
    # llama.cpp tools/quantize/quantize.cpp QUANT_OPTIONS gives each file type's size at Llama-3-8B
    # (e.g. "Q4_K_M 4.58G"); applying src/llama-quant.cpp's rule to its tensors must land within 0.5%.
    fmt = gguf_file_type(name)
    modelled = gguf_mix_bits_per_param(fmt, role_params=LLAMA3_8B, n_layers=32, n_gqa=4)
    assert modelled == pytest.approx(fmt.bits_per_param, rel=0.005)


def test_q4_k_m_by_hand() -> None:
    # use_more_bits picks 16 of 32 layers (0-3, 28-31 and 6, 9, ..., 27) for Q6_K attn_v and ffn_down;
    # output.weight is Q6_K; everything else Q4_K (4.5 bits).
    fmt = parse_number_format("Q4_K_M")
    assert fmt.family is Family.GGUF_MIX and fmt.layout_bits_per_param == 4.5
    q6 = 128256 * 4096 + 16 * (4096 * 1024 + 14336 * 4096)
    total = sum(v if k in ("token_embd", "output") else 32 * v for k, v in LLAMA3_8B.items())
    expected = (q6 * 6.5625 + (total - q6) * 4.5) / total
    assert gguf_mix_bits_per_param(fmt, role_params=LLAMA3_8B, n_layers=32) == pytest.approx(expected)
    assert fmt.bits_per_param == pytest.approx(4.58 * 2**30 * 8 / 8_030_261_248)
    assert any(r.layers == "more_bits" for r in fmt.mixture)


def test_mix_tied_embeddings_follow_output_rule() -> None:
    tied = {"token_embd": 1000 * 256, "attn_q": 256 * 256}
    fmt = gguf_file_type("q4_k_m")
    bits_tied = gguf_mix_bits_per_param(fmt, role_params=tied, n_layers=1)
    assert bits_tied == pytest.approx((1000 * 256 * 6.5625 + 256 * 256 * 4.5) / (1000 * 256 + 256 * 256))


def test_plain_names_are_tensor_layouts_file_types_are_mixes() -> None:
    assert parse_number_format("q4_0").family is Family.GGUF
    assert gguf_file_type("Q4_0").family is Family.GGUF_MIX  # output.weight kept in Q6_K
    assert gguf_file_type("Q4_0").bits_per_param > 4.6
    with pytest.raises(SpecError, match="file mix"):
        parse_number_format("q4_k_m").tensor_bits(out_features=1, in_features=256)
    with pytest.raises(SpecError, match="did you mean"):
        gguf_file_type("q4_k_x")


def test_override_validation() -> None:
    with pytest.raises(SpecError, match="more_bits"):
        TensorOverride(role="attn_v", format_key="q6_k", layers="most_bits")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="'q7_k' is not a registered layout; did you mean"):
        TensorOverride(role="attn_v", format_key="q7_k")


def test_parse_knows_the_mixes() -> None:
    assert parse_number_format("gguf:Q4_K_M") is gguf_file_type("q4-k-m")
    assert gguf_file_type("GGUF_Q8_0").mixture[0].format_key == "q8_0"
