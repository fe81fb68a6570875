"""``suanli infer`` on state-space and hybrid models reports the per-request cache split by form, and far less
of it than an all-attention model of the same size at a long context."""

from __future__ import annotations

import pytest
from tests.surface.cli_helpers import run_json

ARGS = ("--gpu", "h100", "--batch", "8", "--prompt", "100000", "--output", "100")


def test_pure_state_space_model_keeps_only_its_state(capsys: pytest.CaptureFixture[str]) -> None:
    per_gpu = run_json(capsys, "infer", "mamba-codestral-7b", *ARGS)["memory"]["per_gpu"]
    # 8 sequences × 64 layers × (3 × (8192 + 2 × 8 × 128) + 128 × 64 × 128) bf16 elements, whatever the context
    assert per_gpu["ssm_state_bytes"] == per_gpu["kv_cache_bytes"] == 8 * 138_149_888
    assert per_gpu["kv_cache_attention_bytes"] == 0


def test_hybrid_splits_attention_kv_and_state(capsys: pytest.CaptureFixture[str]) -> None:
    hybrid = run_json(capsys, "infer", "qwen3-coder-next", "--tp", "4", *ARGS)["memory"]["per_gpu"]
    dense = run_json(capsys, "infer", "llama-3.1-8b", *ARGS)["memory"]["per_gpu"]
    assert hybrid["kv_cache_bytes"] == pytest.approx(hybrid["kv_cache_attention_bytes"] + hybrid["ssm_state_bytes"])
    assert hybrid["ssm_state_bytes"] > 0
    assert hybrid["kv_cache_bytes"] < dense["kv_cache_bytes"] / 8
    assert "ssm_state_bytes" not in dense
