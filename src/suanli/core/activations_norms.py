"""Norms and hidden-dropout sites of the activation model (``core/activations.py``), shared by the blocks and by
the embedding and head (``core/activations_head.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from suanli.core.activation_setup import FP32_BYTES, ActivationSetup, Flavour, Lift, act_num, region_tokens
from suanli.core.activations_hf import (
    LAYER_NORM_DECOMPOSED_FP32,
    NORM_WEIGHT_PLUS_ONE,
    hf_norm_bytes_per_token,
    hidden_dropout_sites,
)
from suanli.quantity import Num
from suanli.spec.model import Layer, Norm, NormKind


def norm_bytes_per_token(kind: NormKind, size: Num, model_type: str, s: ActivationSetup, lift: Lift[Num],
                         rows: float = 1.0) -> Num:
    """What a norm over ``size`` channels per token, in ``rows`` rows (heads, for per-head q/k norms), saves.
    MEGATRON: its input. HUGGINGFACE: ``hf_norm_bytes_per_token`` (RMSNorm: the fp32 input copy, the fp32
    1/rms per row, the normalised tensor unless the norm weight is frozen; LayerNorm: the input, fp32 mean and
    1/std per row)."""
    if s.flavour is Flavour.MEGATRON:
        return act_num(s, lift) * size
    return hf_norm_bytes_per_token(kind, size, act_num(s, lift), rows, model_type, weight_grad=s.norm_weights_train)


def norms_bytes(norms: Sequence[Norm], model_type: str, s: ActivationSetup, lift: Lift[Num], *,
                shared_input: bool = False) -> Num:
    """Norms over the region's tokens. ``shared_input``: the norms read one tensor (HUGGINGFACE parallel blocks
    with two norms, GPT-NeoX and Falcon-40B), saved once. Gemma's per-call fp32 ``1 + weight`` copies are
    added once per norm (``NORM_WEIGHT_PLUS_ONE``). Under ``torch.autocast`` (``ActivationSetup.autocast_full``)
    the residual stream and the norm weights are fp32 and no norm op is autocast to the compute dtype: the norms
    save what they save in an fp32 run. Cohere's LayerNorm keeps an fp32 copy of a bf16/fp16 weight, once per norm
    (``LAYER_NORM_DECOMPOSED_FP32``)."""
    if s.autocast_full:
        s = replace(s, act_bytes=FP32_BYTES, autocast=False)
    region, hf = region_tokens(s, lift), s.flavour is Flavour.HUGGINGFACE
    parts = [region * norm_bytes_per_token(n.kind, lift(n.size, "norm_size"), model_type, s, lift) for n in norms]
    for i, norm in enumerate(norms[1:] if shared_input and hf else (), start=1):
        parts[i] = parts[i] - region * lift(norm.size, "norm_size") * act_num(s, lift)
    total = sum(parts[1:], parts[0])
    weight_copies = model_type in NORM_WEIGHT_PLUS_ONE or (  # Cohere: weight.to(float32) of a bf16/fp16 weight
        model_type in LAYER_NORM_DECOMPOSED_FP32 and s.act_bytes != FP32_BYTES)
    if hf and weight_copies:
        total = total + lift(sum(n.size for n in norms), "norm_weights") * FP32_BYTES
    return total


def dropout_sites(layer: Layer, model_type: str, s: ActivationSetup) -> tuple[int, bool]:
    """(Hidden-dropout masks per block, one at the embeddings): MEGATRON 2 and yes (Korthikanti §4);
    HUGGINGFACE where the family's code applies dropout (``hidden_dropout_sites``)."""
    return (2, True) if s.flavour is Flavour.MEGATRON else hidden_dropout_sites(layer, model_type)


__all__ = ["dropout_sites", "norm_bytes_per_token", "norms_bytes"]
