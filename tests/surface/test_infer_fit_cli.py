"""`suanli infer` and `suanli fit`: DESIGN.md §5 keys, the seed rules of thumb, bad input exits 2."""

from __future__ import annotations

import pytest
from tests.surface.cli_helpers import run, run_json

GB = 1e9






def test_infer_design_keys(capsys: pytest.CaptureFixture[str]) -> None:
    payload = run_json(capsys, "infer", "llama-3.1-8b", "--gpu", "h100", "--batch", "8", "--prompt", "1000",
                      "--output", "24")
    memory = payload["memory"]
    for key in ("total_bytes", "weights_bytes", "kv_cache_bytes"):
        assert memory["per_gpu"][key] > 0
    # Llama-3.1-8B: 2 (K,V) × 8 KV heads × 128 × 2 bytes × 32 layers = 131,072 B per token, before paging
    assert memory["kv_bytes_per_token"] == 131_072
    assert memory["per_gpu"]["kv_cache_bytes"] >= 8 * 1024 * 131_072
    assert memory["kv_capacity_tokens"] > 0 and memory["fits"] is True


def test_seven_b_fp16_is_about_14_gb_of_weights(capsys: pytest.CaptureFixture[str]) -> None:
    payload = run_json(capsys, "infer", "llama-2-7b", "--gpu", "a100-80gb", "--quant", "fp16")
    assert payload["memory"]["per_gpu"]["weights_bytes"] / GB == pytest.approx(13.5, rel=0.02)  # 6.74B × 2 B


def test_seventy_b_int4_is_about_35_gb_of_weights(capsys: pytest.CaptureFixture[str]) -> None:
    payload = run_json(capsys, "infer", "llama-2-70b", "--gpu", "a100-80gb", "--quant", "int4")
    # 69B × 4.25 bits for the block weights (g128 scales and zeros), embeddings and head in fp16
    assert 34 * GB < payload["memory"]["per_gpu"]["weights_bytes"] < 40 * GB


def test_int8_weights_are_a_quarter_of_fp32(capsys: pytest.CaptureFixture[str]) -> None:
    fp32 = run_json(capsys, "infer", "gpt2-xl", "--gpu", "a100-80gb", "--quant", "fp32")
    int8 = run_json(capsys, "infer", "gpt2-xl", "--gpu", "a100-80gb", "--quant", "int8")
    ratio = int8["memory"]["per_gpu"]["weights_bytes"] / fp32["memory"]["per_gpu"]["weights_bytes"]
    assert 0.25 <= ratio < 0.4  # exactly ¼ for the quantised block weights; embeddings stay 16-bit


def test_fit_70b_fp16_needs_two_80gb_gpus(capsys: pytest.CaptureFixture[str]) -> None:
    payload = run_json(capsys, "fit", "llama-2-70b", "--context", "4096")
    rows = {row["gpu"]: row for row in payload["rows"]}
    assert rows["a100-sxm-80gb"]["min_gpus"] == 2
    assert rows["h100-sxm-80gb"]["min_gpus"] == 2
    for row in payload["rows"]:
        assert set(row) >= {"gpu", "min_gpus", "per_gpu_total_bytes", "headroom_bytes"}
        if row["min_gpus"] is not None:
            assert row["headroom_bytes"] >= 0


def test_fit_qlora_70b_on_one_80gb_gpu(capsys: pytest.CaptureFixture[str]) -> None:
    payload = run_json(capsys, "fit", "llama-3.1-70b", "--mode", "qlora")
    rows = {row["gpu"]: row for row in payload["rows"]}
    assert rows["a100-sxm-80gb"]["min_gpus"] == 1
    assert rows["rtx-4090-24gb"]["min_gpus"] > 1
    for no_bitsandbytes in ("tpu-v5p", "m2-ultra-192gb", "xeon-platinum-8480+", "gaudi3-128gb"):
        assert rows[no_bitsandbytes]["min_gpus"] is None


@pytest.mark.parametrize(("argv", "fragment"), [
    (["infer", "llama-3.1-8b", "--gpu", "h100", "--tp", "3"], "tp"),
    (["infer", "llama-3.1-8b", "--gpu", "h100", "--quant", "int3.5"], "int3.5"),
    (["infer", "llama-3.1-8b", "--gpu", "h100", "--output", "-4"], "--output"),
    (["infer", "llama-3.1-8b", "--gpu", "h100", "--batch", "0"], "--batch"),
    (["infer", "nope-model", "--gpu", "h100"], "unknown model"),
    (["fit", "llama-3.1-8b", "--mode", "qlora", "--quant", "int4"], "--mode infer"),
    (["fit", "llama-3.1-8b", "--context", "-1"], "--context"),
])
def test_bad_input_exits_2(capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert fragment in err, err
