"""Activation memory of one feed-forward block for training: a dense MLP or a mixture of experts.

Per token and per rank, the intermediate width split ``tp`` ways:

- the MLP input (``mlp_input``), unless a parallel block feeds the MLP the attention's input;
- the intermediates (``mlp_intermediate_tensors``): MEGATRON counts the GeLU input and output of a plain MLP,
  ``8sbh + 8sbh`` at ``i = 4h`` in fp16 (Korthikanti et al. 2022, arXiv:2205.05198 Table 2), or the fused
  [gate | up] output and the SwiGLU output of a gated one; HUGGINGFACE counts what each activation function
  keeps (``HF_ACTIVATION_TENSORS`` and its boolean masks, ``core/activations_hf.py``);
- MoE (``moe_bytes``): the router's fp32 scores over the experts with the top-k int64 indices and fp32
  weights per token; each of the ``tokens · top_k`` slots keeps its dispatched input, the expert's
  intermediates, the expert output and its weight; shared experts count as a dense MLP over every token.
  Expert parallelism does not change the average per GPU.

Split out of ``core/activations.py``, which adds the blocks up and re-exports these names.
"""

from __future__ import annotations

from dataclasses import replace

from suanli.core.activation_setup import (
    FP32_BYTES,
    INDEX_BYTES,
    ActivationSetup,
    Flavour,
    Lift,
    act_num,
    rank_tokens,
    region_tokens,
)
from suanli.core.activations_attention import linear_input_bytes
from suanli.core.activations_hf import HF_ACTIVATION_MASK_BYTES, HF_ACTIVATION_TENSORS, hf_moe_bytes
from suanli.core.activations_peft import ALL_GRAD, BlockGrad
from suanli.quantity import Num
from suanli.spec.model import Layer, Mlp, Moe


def mlp_intermediate_tensors(mlp: Mlp, flavour: Flavour, *, down_saves_input: bool = True) -> int:
    """Intermediate-width tensors an MLP saves per token. MEGATRON: plain = GeLU input and output (the
    paper's 8sbh + 8sbh at i = 4h); gated = the fused [gate | up] output (2) and the SwiGLU output.
    HUGGINGFACE: the activation's input and extras (``HF_ACTIVATION_TENSORS``), its output, and for a gated
    MLP the up output and the product (SwiGLU: 4). A frozen down projection keeps no input: the product (gated)
    or the activation's output (plain, unless the activation keeps it itself, as ReLU does) is not saved."""
    if flavour is Flavour.MEGATRON:
        return 3 if mlp.gated else 2
    saves_input, extras = HF_ACTIVATION_TENSORS.get(mlp.activation, (True, 0))
    activation = int(saves_input) + extras
    if mlp.gated:  # the activation's output and the up output, kept by their product
        return activation + 2 + int(down_saves_input)
    return activation + int(down_saves_input or not saves_input)


def mlp_bytes(mlp: Mlp, s: ActivationSetup, lift: Lift[Num], *, tokens: Num) -> Num:
    """One MLP's intermediates over ``tokens`` rows, the width split tp ways, plus the boolean masks a
    HUGGINGFACE activation keeps (``HF_ACTIVATION_MASK_BYTES``)."""
    width = lift(mlp.intermediate_size, "intermediate_size") / lift(s.tp, "tp")
    tensors = mlp_intermediate_tensors(mlp, s.flavour, down_saves_input=s.linears_save_input)
    mask = HF_ACTIVATION_MASK_BYTES.get(mlp.activation, 0.0) if s.flavour is Flavour.HUGGINGFACE else 0.0
    if mask:
        return tokens * width * (act_num(s, lift) * tensors + mask)
    if s.fp8_linear_inputs and s.linears_save_input:  # the down projection's input, the activation's output
        return tokens * width * (act_num(s, lift) * (tensors - 1) + linear_input_bytes(s, lift))
    return tokens * width * act_num(s, lift) * tensors


def moe_bytes(moe: Moe, hidden_size: int, model_type: str, s: ActivationSetup, lift: Lift[Num]) -> dict[str, Num]:
    """Router: fp32 scores over the experts, top-k indices (int64) and weights (fp32) per token. Each of the
    tokens·top_k slots: the dispatched input copy, the expert's intermediates, the expert output kept for the
    routing-weight multiply, the weight. Shared experts: a dense MLP over every token (Qwen2-MoE's gate adds
    its sigmoid, fp32 in MEGATRON, and the shared output). HUGGINGFACE router and dispatch: ``hf_moe_bytes``."""
    region, act, h = region_tokens(s, lift), act_num(s, lift), lift(hidden_size, "hidden_size")
    top_k = lift(moe.top_k, "top_k")
    experts = replace(s, act_bytes=FP32_BYTES, autocast=False) if s.autocast_full else s  # grouped_mm: fp32
    expert_mlp = mlp_bytes(moe.expert, experts, lift, tokens=rank_tokens(s, lift) * top_k)
    if s.flavour is Flavour.HUGGINGFACE:
        parts = hf_moe_bytes(moe, hidden_size, model_type, s, lift, expert_mlp=expert_mlp)
    else:
        parts = {"router": region * (lift(moe.num_experts, "num_experts") * FP32_BYTES
                                     + top_k * (INDEX_BYTES + FP32_BYTES)),
                 "experts": region * top_k * (2 * h * act + FP32_BYTES) + expert_mlp}
    if moe.shared is not None:
        shared = mlp_bytes(moe.shared, s, lift, tokens=rank_tokens(s, lift))
        gate = act if s.flavour is Flavour.HUGGINGFACE else lift(FP32_BYTES, "fp32_bytes")
        parts["shared_experts"] = shared + region * (h * act + gate) if moe.shared_gate else shared
    return parts


def ffn_bytes(layer: Layer, hidden_size: int, model_type: str, s: ActivationSetup, lift: Lift[Num], *,
              grad: BlockGrad = ALL_GRAD) -> dict[str, Num]:
    """The MLP (or MoE) input, unless a parallel block feeds it the attention input or its projections are
    frozen, and its intermediates (none where no gradient reaches the MLP, ``grad``; MoE layers of a frozen
    model are counted as in full training)."""
    parts: dict[str, Num] = {}
    if not grad.mlp or layer.ffn is None:
        return parts
    if not (layer.parallel and len(layer.norms) < 2) and s.linears_save_input and grad.post:
        parts["mlp_input"] = region_tokens(s, lift) * lift(hidden_size, "hidden_size") * linear_input_bytes(s, lift)
    if isinstance(layer.ffn, Moe):
        parts.update(moe_bytes(layer.ffn, hidden_size, model_type, s, lift))
    else:
        parts["mlp"] = mlp_bytes(layer.ffn, s, lift, tokens=rank_tokens(s, lift))
    return parts
