"""Eager PyTorch operator calls in one training step of a transformers model, counted with ``torch.profiler``.

What ``PerformanceAssumptions.eager_training_ops_per_layer`` / ``eager_training_ops_fixed`` hold, measured: a
model is built from a config at 1, 2 and 3 decoder layers (random weights, tiny widths: the count of calls does
not depend on them), one step after two warm-up steps is profiled (forward with labels, backward, fused AdamW,
``zero_grad(set_to_none=True)``, as ``suanli.measure.run`` trains), and the top-level ``aten::`` calls are
counted: those with no ``aten::`` call above them in the profiler's tree (Python's calls and autograd's backward
calls; the calls they make inside run within their caller's dispatch). Per layer = count(2) − count(1), checked
against count(3) − count(2); fixed = count(1) − per layer.

torch and transformers are imported lazily: ``suanli.measure`` is optional and never imported by the core.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

TINY_LLAMA = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4,
              "num_key_value_heads": 4, "vocab_size": 512, "tie_word_embeddings": True, "num_hidden_layers": 2}


@dataclass(frozen=True, slots=True, kw_only=True)
class EagerOpCount:
    """Top-level aten calls of one training step: per decoder layer and once per step."""

    per_layer: int
    fixed: int
    per_layer_check: int  # count(3 layers) − count(2 layers); equals per_layer when the count is linear


def count_step_ops(config: Mapping[str, Any], *, seq: int = 32) -> int:
    """Top-level aten calls of one profiled training step of the model ``config`` describes."""
    return _count_calls(_training_step(config, seq))


def _count_calls(step: Callable[[], None]) -> int:
    """Top-level aten calls of one profiled call of ``step`` (module docstring)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    return sum(1 for e in prof.events() if e.name.startswith("aten::") and not _nested(e))


def eager_call_s(config: Mapping[str, Any] = TINY_LLAMA, *, seq: int = 8, steps: int = 15) -> float:
    """Wall time per top-level aten call of a training step whose tensors are tiny (default: a 2-layer Llama of
    width 64 over 8 tokens): the arithmetic is negligible, so the step's time over its counted calls is what one
    call costs in an eager transformers step: Python module code, the dispatcher, autograd's recording and its
    backward engine, the optimizer's Python. The fastest of ``steps`` timed steps (other processes only add
    time), divided by the profiled count."""
    import time

    step = _training_step(config, seq)
    calls = _count_calls(step)
    best = float("inf")
    for _ in range(steps):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best / calls


def _training_step(config: Mapping[str, Any], seq: int) -> Callable[[], None]:
    """One training step of a fresh model built from ``config`` (after two warm-up steps)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    cfg = AutoConfig.for_model(**{**config, "attn_implementation": "sdpa"})
    model = AutoModelForCausalLM.from_config(cfg)  # type: ignore[no-untyped-call]
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    ids = torch.randint(0, cfg.vocab_size, (1, seq))

    def step() -> None:
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(2):  # the first step creates AdamW's states
        step()
    return step


def _nested(event: Any) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("aten::"):
            return True
        parent = parent.cpu_parent
    return False


def count_eager_ops(config: Mapping[str, Any], *, seq: int = 32) -> EagerOpCount:
    """Per-layer and fixed top-level aten calls of a training step, from 1-, 2- and 3-layer copies of ``config``."""
    one, two, three = (count_step_ops({**config, "num_hidden_layers": n}, seq=seq) for n in (1, 2, 3))
    return EagerOpCount(per_layer=two - one, fixed=2 * one - two, per_layer_check=three - two)
