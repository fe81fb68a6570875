"""Shared fixtures: tiny configs whose counts are derived by hand in the tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def tiny_llama() -> dict[str, Any]:
    """2 layers, hidden 64, 4 heads of 16, 2 KV heads, SwiGLU 128, vocab 100, untied."""
    return {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
            "max_position_embeddings": 256, "tie_word_embeddings": False}
