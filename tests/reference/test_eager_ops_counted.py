"""The eager operator counts the CPU time model charges (``PerformanceAssumptions.eager_training_ops_*``) against
``torch.profiler`` on a real training step of transformers' Llama (``suanli.measure.eager_ops``): within 5%, the
drift one transformers or torch release may bring (a changed count past that is a reason to recount)."""

from __future__ import annotations

import pytest

from suanli.measure.eager_ops import count_eager_ops
from suanli.spec.assumptions import PerformanceAssumptions

TINY_LLAMA = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
              "num_key_value_heads": 4, "vocab_size": 512, "tie_word_embeddings": True}


def test_counts_match_the_profiler() -> None:
    n = count_eager_ops(TINY_LLAMA)
    a = PerformanceAssumptions()
    assert n.per_layer_check == n.per_layer  # linear in the number of layers
    assert n.per_layer == pytest.approx(a.eager_training_ops_per_layer, rel=0.05)
    assert n.fixed == pytest.approx(a.eager_training_ops_fixed, rel=0.05)
