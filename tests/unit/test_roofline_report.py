"""``suanli roofline``: the forward pass's kernels, hand-checked on Llama-3-8B, and every point under its roofs."""

from __future__ import annotations

import json

import pytest

from suanli.cli.main import main
from suanli.roofline_report import roofline_report
from suanli.spec.hardware import get_accelerator
from suanli.spec.resolve import load_model


def test_llama_3_8b_kernels_by_hand() -> None:
    report = roofline_report(load_model("llama-3-8b"), get_accelerator("h100"), seq=2048, batch=2)
    ops = {op["name"]: op for op in report.values["ops"]}
    tokens, h, kv, vocab = 2 * 2048, 4096, 8 * 128, 128256  # Llama-3-8B config.json: 8 KV heads of 128
    assert ops["qkv"]["flops"] == 2 * tokens * (h + 2 * kv) * h
    assert ops["qkv"]["bytes"] == 2 * (tokens * h + h * (h + 2 * kv) + tokens * (h + 2 * kv))  # bf16: 2 bytes
    assert ops["mlp_down"]["flops"] == 2 * tokens * h * 14336
    assert ops["lm_head"]["flops"] == 2 * tokens * vocab * h
    assert ops["qkv"]["layers"] == 32 and ops["lm_head"]["layers"] == 1
    assert ops["norm_attn"]["bound"] == "memory" and ops["mlp_up_gate"]["bound"] == "compute"
    roofs = report.values["roofs"]
    assert roofs["ridge_flops_per_byte"] == pytest.approx(989.4e12 / 3.35e12)  # H100 SXM bf16 dense, HBM3


@pytest.mark.parametrize("model", ["llama-3-8b", "mixtral-8x7b", "gemma-2-2b", "jamba-1.5-mini"])
def test_every_point_is_under_both_roofs(model: str) -> None:
    report = roofline_report(load_model(model), get_accelerator("a100-80gb"), seq=1024)
    roofs = report.values["roofs"]
    for op in report.values["ops"]:
        attainable = min(roofs["peak_flops_per_s"],
                         op["intensity_flops_per_byte"] * roofs["memory_bandwidth_bytes_per_s"])
        assert 0 < op["achieved_flops_per_s"] <= attainable, op["name"]
    assert report.values["forward_s"] == pytest.approx(sum(o["time_s"] * o["layers"] for o in report.values["ops"]))


def test_cli_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["roofline", "gpt2", "--gpu", "h100", "--seq", "128", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["command"] == "roofline" and payload["tokens"] == 128 and payload["ops"]


def test_bad_gpu_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["roofline", "gpt2", "--gpu", "h1000"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
