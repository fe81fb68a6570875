"""Our HUGGINGFACE-flavour activation bytes against what transformers actually saves for backward.

``suanli.measure.activations`` runs a real training forward pass (labels given, so ``ForCausalLMLoss`` runs)
of a tiny model on the CPU and counts, through ``torch.autograd.graph.saved_tensors_hooks``, every storage
autograd keeps, once, parameters left out. The estimate must be within 10% (observed: within 0.2% for the
Llama / Qwen2 / GPT-2 grid, where the residue is LayerNorm's per-row mean and 1/std, kept in bf16 on the CPU
and in fp32, as we count, on GPUs).

CPU-only conventions the estimate is told about (they differ on GPUs, and the estimate's defaults follow GPUs):

- PyTorch's CPU dropout keeps a compute-dtype mask (``input * bernoulli_noise``), not native_dropout's 1-byte
  bool mask: ``dropout_mask_bytes`` = the compute dtype's bytes here;
- SDPA with dropout has no CPU flash kernel, and the math fallback it takes materialises fp32 scores; so
  GPT-2's SDPA runs use ``attn_pdrop = 0`` (CUDA's flash / memory-efficient kernels apply dropout from an RNG
  state and save no S×S tensor).
"""

from __future__ import annotations

from typing import Any

import pytest
from tests.reference.hf_reference import load_catalog_config, tiny_config

from suanli.core.activations import ActivationBreakdown, Flavour, activation_bytes
from suanli.measure.activations import measure_causal_lm, measure_saved_activations
from suanli.spec.hf import spec_from_config
from suanli.spec.layout import AttentionImpl, Recompute

pytest.importorskip("torch")  # neither suanli nor hf_reference imports torch at import time
pytest.importorskip("transformers")

TOLERANCE = 0.10
DTYPE_BYTES = {"float32": 4.0, "bfloat16": 2.0}
# (seq, micro_batch, hidden, heads, kv_heads): MHA, GQA 2:1 and 4:1, MQA-like 1 KV head
SHAPES = [(32, 2, 64, 4, 2), (64, 1, 128, 8, 2), (128, 4, 64, 4, 1), (16, 8, 96, 6, 6)]


def decoder_config(family: str, seq: int, hidden: int, heads: int, kv_heads: int, *, eager: bool) -> dict[str, Any]:
    """A 2-layer model of ``family``; GPT-2 with its default 0.1 dropouts (attention dropout only in eager)."""
    if family == "gpt2":
        return {"model_type": "gpt2", "n_embd": hidden, "n_head": heads, "n_layer": 2, "vocab_size": 512,
                "n_positions": seq, "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1 if eager else 0.0}
    return {"model_type": family, "hidden_size": hidden, "num_attention_heads": heads,
            "num_key_value_heads": kv_heads, "intermediate_size": hidden * 11 // 4, "num_hidden_layers": 2,
            "vocab_size": 512, "max_position_embeddings": seq}


def estimate(config: dict[str, Any], *, seq: int, micro_batch: int, attention: str, dtype: str,
             recompute: Recompute = Recompute.NONE) -> ActivationBreakdown:
    act = DTYPE_BYTES[dtype]
    return activation_bytes(spec_from_config(config, name="tiny"), seq=seq, micro_batch=micro_batch,
                            flavour=Flavour.HUGGINGFACE, act_bytes=act, attention=AttentionImpl(attention),
                            recompute=recompute, hidden_dropout=_dropout(config, "resid_pdrop", "hidden_dropout"),
                            attention_dropout=_dropout(config, "attn_pdrop", "attention_dropout"),
                            dropout_mask_bytes=act)


def _dropout(config: dict[str, Any], *keys: str) -> float:
    return max(float(config.get(key) or 0.0) for key in keys)


GRID = [pytest.param(family, shape, attention, dtype, id=f"{family}-s{shape[0]}b{shape[1]}h{shape[2]}a{shape[3]}"
                     f"kv{shape[4]}-{attention}-{dtype}")
        for shape in SHAPES for family in ("llama", "qwen2", "gpt2") for attention in ("eager", "sdpa")
        for dtype in ("float32", "bfloat16")]


@pytest.mark.parametrize(("family", "shape", "attention", "dtype"), GRID)
def test_estimate_matches_saved_tensors(family: str, shape: tuple[int, ...], attention: str, dtype: str) -> None:
    seq, micro_batch, hidden, heads, kv_heads = shape
    config = decoder_config(family, seq, hidden, heads, kv_heads, eager=attention == "eager")
    measured = measure_causal_lm(config, seq=seq, micro_batch=micro_batch, attn_implementation=attention,
                                 dtype=dtype)
    ours = estimate(config, seq=seq, micro_batch=micro_batch, attention=attention, dtype=dtype)
    assert ours.total_bytes == pytest.approx(measured.total_bytes, rel=TOLERANCE)
    assert ours.per_layer_bytes[-1] == pytest.approx(measured.per_layer[-1], rel=TOLERANCE)


@pytest.mark.parametrize("key", ["mistral-7b-v0.1", "qwen3-0.6b", "mixtral-8x7b", "qwen1.5-moe-a2.7b"])
@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_other_families(key: str, attention: str) -> None:
    """Sliding windows (full S×S still materialised by eager), per-head q/k norms, routed and shared experts."""
    config = tiny_config(load_catalog_config(key))
    measured = measure_causal_lm(config, seq=32, micro_batch=2, attn_implementation=attention, dtype="bfloat16")
    ours = estimate(config, seq=32, micro_batch=2, attention=attention, dtype="bfloat16")
    assert ours.total_bytes == pytest.approx(measured.total_bytes, rel=TOLERANCE)


def test_gradient_checkpointing_is_full_recompute() -> None:
    import torch

    from suanli.measure.activations import build_causal_lm

    config = decoder_config("llama", 32, 64, 4, 2, eager=False)
    model = build_causal_lm(config, attn_implementation="sdpa", dtype="bfloat16")
    model.activation_checkpointing_enable({"use_reentrant": False})
    ids = torch.randint(0, 512, (2, 32))
    measured = measure_saved_activations(model, lambda m: m(input_ids=ids, labels=ids, use_cache=False).loss,
                                         backward=True)
    ours = estimate(config, seq=32, micro_batch=2, attention="sdpa", dtype="bfloat16", recompute=Recompute.FULL)
    assert ours.total_bytes == pytest.approx(measured.total_bytes, rel=TOLERANCE)
    assert measured.per_layer == (32 * 2 * 64 * 2,) * 2  # each block keeps only its bf16 input
    assert measured.unpacked_bytes == measured.total_bytes  # backward read back everything that was saved


def test_views_count_once_and_parameters_not_at_all() -> None:
    import torch

    linear = torch.nn.Linear(8, 8, bias=False)
    x = torch.randn(4, 8, requires_grad=True)

    def run(model: torch.nn.Module) -> torch.Tensor:
        y = model(x)  # saves x (and the weight, which is a parameter)
        z = y[:2] * y[2:]  # saves two views of y's storage
        return z.sum()

    measured = measure_saved_activations(linear, run)
    assert measured.total_bytes == 2 * 4 * 8 * 4  # x and y, fp32, once each
    assert measured.parameter_bytes_excluded == 8 * 8 * 4
