"""Token mixers that replace attention in hybrid and linear-attention models: state-space and linear-attention
blocks, as transformers builds them.

Each names its projections, its depthwise causal convolution and its recurrent state by the source paper and
transformers' module, and validates its sizes at construction. What they share: a constant per-sequence state,
whatever the context length (the last ``conv_kernel − 1`` conv inputs plus a fixed-size recurrent state: Mamba's
``H × P × N`` or ``I × N`` SSM state, the delta-rule mixers' ``H × d_k × d_v`` matrices, lightning attention's
``H × d × d`` decayed K·V), which is why ``core/kv_cache.py`` counts them apart from attention's KV cache.
``Mixer`` is their union, held by ``spec.model.Layer.mixer``; split out of ``spec/model.py``, which re-exports
these names.
"""

from __future__ import annotations

from dataclasses import dataclass

from suanli.errors import SpecError, require_positive


@dataclass(frozen=True, slots=True, kw_only=True)
class Mamba2Mixer:
    """A Mamba-2 (SSD) token mixer (Dao & Gu 2024, arXiv:2405.21060 §7), as transformers' ``Mamba2Mixer``
    builds it (also Bamba, Nemotron-H, Falcon-H1, Granite-4.0-H): ``in_proj`` to z, x, B, C and dt
    (2·I + 2·G·N + H outputs), a depthwise causal conv1d of ``conv_kernel`` over x, B and C, per-head
    ``A_log``, ``D`` and ``dt_bias``, a gated RMSNorm over I (when ``gated_norm``) and ``out_proj`` I → h.
    I = num_heads · head_dim; the per-sequence state is the last conv_kernel − 1 conv inputs plus an
    H × P × N SSM state, whatever the context length."""

    num_heads: int  # HF mamba_n_heads / num_heads
    head_dim: int  # HF mamba_d_head / head_dim (P)
    d_state: int  # HF state_size / ssm_state_size / mamba_d_state (N)
    n_groups: int  # HF n_groups / mamba_n_groups (G)
    conv_kernel: int  # HF conv_kernel / mamba_d_conv
    chunk_size: int  # SSD chunk length Q of the chunked scan
    proj_bias: bool = False
    conv_bias: bool = True
    gated_norm: bool = True
    out_bias: bool | None = None  # out_proj's bias when it differs from in_proj's (Falcon-H1 projectors_bias)

    def __post_init__(self) -> None:
        for name in ("num_heads", "head_dim", "d_state", "n_groups", "conv_kernel", "chunk_size"):
            require_positive(f"mamba {name}", getattr(self, name))
        if self.num_heads % self.n_groups:
            raise SpecError(f"mamba num_heads ({self.num_heads}) is not a multiple of n_groups "
                            f"({self.n_groups}); every group must hold whole heads", key="error.model.mamba_groups",
                            fields={"heads": self.num_heads, "groups": self.n_groups})

    @property
    def intermediate_size(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def conv_dim(self) -> int:
        """Channels of the causal conv: x (I) plus B and C (G·N each)."""
        return self.intermediate_size + 2 * self.n_groups * self.d_state


@dataclass(frozen=True, slots=True, kw_only=True)
class MambaMixer:
    """A Mamba-1 selective-scan mixer (Gu & Dao 2023, arXiv:2312.00752 §3), as in Jamba: ``in_proj`` h → 2·I
    (x and gate z), a depthwise causal conv1d over I, ``x_proj`` I → dt_rank + 2·N, ``dt_proj``
    dt_rank → I (with bias), ``A_log`` I × N, ``D`` I, ``out_proj`` I → h; Jamba adds RMSNorms over dt
    (dt_rank), B and C (N each) when ``inner_norms``. State per sequence: conv_kernel − 1 conv inputs of I
    channels plus an I × N SSM state."""

    intermediate_size: int  # I = mamba_expand · hidden_size
    d_state: int  # N
    conv_kernel: int
    dt_rank: int
    proj_bias: bool = False
    conv_bias: bool = True
    inner_norms: bool = False

    def __post_init__(self) -> None:
        for name in ("intermediate_size", "d_state", "conv_kernel", "dt_rank"):
            require_positive(f"mamba {name}", getattr(self, name))


@dataclass(frozen=True, slots=True, kw_only=True)
class GatedDeltaNet:
    """A Gated DeltaNet linear-attention mixer (Yang et al. 2024, arXiv:2412.06464), as transformers'
    ``Qwen3NextGatedDeltaNet`` builds it: ``in_proj_qkvz`` h → 2·K + 2·V (q, k, v, output gate z) and
    ``in_proj_ba`` h → 2·Hv (β and the decay), a depthwise causal conv1d (no bias) over q, k, v, per-head
    ``A_log`` and ``dt_bias``, a gated RMSNorm of ``head_v_dim`` weights and ``out_proj`` V → h, with
    K = num_k_heads·head_k_dim and V = num_v_heads·head_v_dim. Per sequence it keeps conv_kernel − 1 conv
    inputs and an Hv × head_k_dim × head_v_dim state."""

    num_k_heads: int  # HF linear_num_key_heads
    num_v_heads: int  # HF linear_num_value_heads
    head_k_dim: int  # HF linear_key_head_dim
    head_v_dim: int  # HF linear_value_head_dim
    conv_kernel: int  # HF linear_conv_kernel_dim
    chunk_size: int = 64  # transformers' torch_chunk_gated_delta_rule default

    def __post_init__(self) -> None:
        for name in ("num_k_heads", "num_v_heads", "head_k_dim", "head_v_dim", "conv_kernel", "chunk_size"):
            require_positive(f"linear attention {name}", getattr(self, name))
        if self.num_v_heads % self.num_k_heads:
            raise SpecError(f"linear_num_value_heads ({self.num_v_heads}) is not a multiple of "
                            f"linear_num_key_heads ({self.num_k_heads})", key="error.model.delta_heads",
                            fields={"v_heads": self.num_v_heads, "k_heads": self.num_k_heads})

    @property
    def key_dim(self) -> int:
        return self.num_k_heads * self.head_k_dim

    @property
    def value_dim(self) -> int:
        return self.num_v_heads * self.head_v_dim

    @property
    def conv_dim(self) -> int:
        """Channels of the causal conv: q and k (K each) and v (V)."""
        return 2 * self.key_dim + self.value_dim


@dataclass(frozen=True, slots=True, kw_only=True)
class KimiDeltaAttention:
    """Kimi Delta Attention (KDA; Kimi Linear, arXiv:2510.26692 §3), as transformers'
    ``KimiLinearDeltaAttention`` builds it: the gated delta rule with a forget gate per key channel (Gated
    DeltaNet decays a whole head at once). ``q_proj``, ``k_proj``, ``v_proj`` h → H·d each, a depthwise causal
    conv1d (no bias) over those 3·H·d channels, the forget gate through a rank-d bottleneck (``f_a_proj``
    h → d, ``f_b_proj`` d → H·d) plus ``dt_bias`` (H·d) and ``A_log`` (H), ``b_proj`` h → H (β), the output
    gate through another rank-d bottleneck (``g_a_proj``, ``g_b_proj``), a gated RMSNorm of d weights and
    ``o_proj`` H·d → h; no biases. Keys and values share H and d. Per sequence it keeps conv_kernel − 1 conv
    inputs and an H × d × d state."""

    num_heads: int  # HF linear_attn_config.num_heads (transformers 5: linear_num_heads)
    head_dim: int  # HF linear_attn_config.head_dim (linear_head_dim)
    conv_kernel: int  # HF linear_attn_config.short_conv_kernel_size (linear_conv_kernel_dim)
    chunk_size: int = 64  # transformers' chunk_kimi_delta_attention default

    def __post_init__(self) -> None:
        for name in ("num_heads", "head_dim", "conv_kernel", "chunk_size"):
            require_positive(f"linear attention {name}", getattr(self, name))

    # the Gated DeltaNet names, so state and decode formulas written for it read a KDA layer too
    @property
    def num_k_heads(self) -> int:
        return self.num_heads

    @property
    def num_v_heads(self) -> int:
        return self.num_heads

    @property
    def head_k_dim(self) -> int:
        return self.head_dim

    @property
    def head_v_dim(self) -> int:
        return self.head_dim

    @property
    def key_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def value_dim(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def conv_dim(self) -> int:
        """Channels of the causal conv: q, k and v (H·d each)."""
        return 3 * self.num_heads * self.head_dim


@dataclass(frozen=True, slots=True, kw_only=True)
class ShortConv:
    """LFM2's gated short-convolution mixer (transformers' ``Lfm2ShortConv``): ``in_proj`` h → 3·h (B, C, x),
    B·x through a depthwise causal conv1d of ``conv_kernel`` taps (HF ``conv_L_cache``), times C, then
    ``out_proj`` h → h; ``bias`` on all three (HF ``conv_bias``). Per sequence it keeps conv_kernel − 1 inputs
    of ``channels`` (= hidden size)."""

    channels: int
    conv_kernel: int
    bias: bool = False

    def __post_init__(self) -> None:
        require_positive("short conv channels", self.channels)
        require_positive("conv_L_cache", self.conv_kernel)


@dataclass(frozen=True, slots=True, kw_only=True)
class LightningAttention:
    """MiniMax's lightning attention (Qin et al. 2024, arXiv:2401.04658; MiniMax-01, arXiv:2501.08313 §2.2), as
    transformers' ``MiniMaxLightningAttention`` builds it: ``qkv_proj`` h → 3·H·d, ``output_gate`` h → H·d,
    an RMSNorm over H·d and ``out_proj`` H·d → h, no biases; blocks of ``block_size`` tokens attend within
    the block and read an H × d × d decayed K·V state, the only thing a sequence keeps."""

    num_heads: int
    head_dim: int
    block_size: int = 256

    def __post_init__(self) -> None:
        require_positive("lightning attention heads", self.num_heads)
        require_positive("lightning attention head_dim", self.head_dim)
        require_positive("block_size", self.block_size)


Mixer = Mamba2Mixer | MambaMixer | GatedDeltaNet | KimiDeltaAttention | ShortConv | LightningAttention
