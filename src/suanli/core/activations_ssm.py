"""Activations a state-space (Mamba) mixer saves for backward: an approximation, not a per-op count.

transformers' torch path (``Mamba2Mixer.torch_forward``, ``JambaMambaMixer.slow_forward``) saves the input of
every matmul and element-wise op it runs; we count the tensors that dominate, per token on one GPU (mixer
widths split over tp; the in_proj input replicated unless sequence parallel)::

    Mamba-2   h (in_proj input) + W_in (its output: z, x, B, C, dt) + conv_dim (conv output, kept for SiLU)
              + 2·I (scan output, gated norm output) elements in the compute dtype
              + 2·H·Q (the intra-chunk C·Bᵀ scores and their decayed copy, per token, fp32)
    Mamba-1   h + 2·I (in_proj output) + 2·I (conv output, SiLU output) + (R + 2·N) (x_proj output)
              + I (dt) + 2·I·N (discretised A and B·x, fp32, per token) + I (scan output)
    GDN       h + (2·K + 2·V + 2·Hv) (in_proj outputs) + (2·K + V) (conv output) + 2·V (core and gated-norm
              outputs) + 3·Hv·C (the UT system, intra-chunk scores and decays per token, fp32)
    KDA       h + 3·W (q, k, v) + 3·W (conv output) + 2·W + H (forget and output gates, β) + 2·W (core and
              gated-norm outputs) + 3·H·C (as GDN), W = H·d

What is left out (small beside these): the dt softplus, the segment-sum decays (H·Q per token), norms'
statistics and the chunk states (H·P·N per chunk). The numbers are approximate and reports say so.
"""

from __future__ import annotations

from collections.abc import Callable

from suanli.core.activation_setup import ActivationSetup, act_num, rank_tokens, region_tokens
from suanli.quantity import Num
from suanli.spec.model import GatedDeltaNet, KimiDeltaAttention, LightningAttention, Mamba2Mixer, Mixer, ShortConv

Lift = Callable[[float, str], Num]
_FP32 = 4.0

APPROXIMATION_NOTE = ("activations of Mamba layers are approximate (the dominant saved tensors of the "
                      "transformers torch path, core/activations_ssm.py), not counted op by op")


def mixer_activation_bytes(m: Mixer, hidden_size: int, s: ActivationSetup, lift: Lift[Num]) -> dict[str, Num]:
    """Bytes one Mamba mixer saves for one micro-batch on one GPU (formulas in the module docstring)."""
    act, tp = act_num(s, lift), lift(s.tp, "tp")
    tokens = rank_tokens(s, lift)
    h = lift(hidden_size, "hidden_size")
    parts: dict[str, Num] = {"ssm_input": region_tokens(s, lift) * h * act}
    if isinstance(m, Mamba2Mixer):
        inner = lift(m.intermediate_size, "ssm_intermediate")
        bc = 2 * lift(m.n_groups, "n_groups") * lift(m.d_state, "d_state")
        width = 2 * inner + bc + lift(m.num_heads, "ssm_heads") + (inner + bc) + 2 * inner
        scores = 2 * lift(m.num_heads, "ssm_heads") * lift(m.chunk_size, "chunk_size") * _FP32
        parts["ssm"] = tokens * (width * act + scores) / tp
        return parts
    if isinstance(m, LightningAttention):  # qkv, gate, core output, norm output; block scores (fp32) per token
        width = lift(m.num_heads, "num_heads") * lift(m.head_dim, "head_dim")
        scores = 2 * lift(m.num_heads, "num_heads") * lift(m.block_size, "block_size") * _FP32
        parts["ssm"] = tokens * (6 * width * act + scores) / tp
        return parts
    if isinstance(m, ShortConv):  # in_proj output (B, C, x), B·x, conv output, C·y
        c = lift(m.channels, "conv_channels")
        parts["ssm"] = tokens * 6 * c * act / tp
        return parts
    if isinstance(m, KimiDeltaAttention):  # q/k/v, conv output, gates (f, g: W each; β), core and norm outputs
        heads = lift(m.num_heads, "linear_heads")
        width = heads * lift(m.head_dim, "linear_head_dim")
        scores = 3 * heads * lift(m.chunk_size, "chunk_size") * _FP32
        parts["ssm"] = tokens * ((3 * width + 3 * width + 2 * width + heads + 2 * width) * act + scores) / tp
        return parts
    if isinstance(m, GatedDeltaNet):  # in_proj outputs, conv output, core output, gated-norm output
        conv = lift(m.conv_dim, "conv_dim")
        v = lift(m.value_dim, "value_dim")
        width = conv + v + 2 * lift(m.num_v_heads, "linear_v_heads") + conv + 2 * v
        scores = 3 * lift(m.num_v_heads, "linear_v_heads") * lift(m.chunk_size, "chunk_size") * _FP32
        parts["ssm"] = tokens * (width * act + scores) / tp
        return parts
    inner, state = lift(m.intermediate_size, "ssm_intermediate"), lift(m.d_state, "d_state")
    width = 2 * inner + 2 * inner + lift(m.dt_rank, "dt_rank") + 2 * state + 2 * inner
    parts["ssm"] = tokens * (width * act + 2 * inner * state * _FP32) / tp
    return parts
