"""Exact parameter counts, per component, per layer, and active per token for MoE.

Counts follow the transformers implementation of each family (checked exactly, model by model, in
``tests/reference/test_params_vs_transformers.py``): ``nn.Linear(i, o, bias)`` holds i·o (+o) parameters,
a LayerNorm 2·d (d without bias), an RMSNorm d, an embedding table rows·d; tied output heads are counted once.

Each formula takes a ``lift`` function: ``plain`` runs on numbers, ``traced`` records the expression so the
same code explains itself (see ``suanli.quantity``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from suanli.quantity import Num, plain
from suanli.spec.model import (
    Attention,
    GatedDeltaNet,
    KimiDeltaAttention,
    Layer,
    LightningAttention,
    Mamba2Mixer,
    MambaMixer,
    Mixer,
    Mla,
    Mlp,
    ModelSpec,
    Moe,
    Norm,
    NormKind,
    QkNormKind,
    ShortConv,
)

Lift = Callable[[float, str], Num]

COMPONENTS = ("embedding", "position_embedding", "attention", "ssm", "mlp", "experts", "shared_experts", "router",
              "norms", "lm_head", "pooler", "vision")


@dataclass(frozen=True, slots=True, kw_only=True)
class ParamCounts:
    """Parameter counts of one model. ``embedding`` is the input tables (tokens, positions, token types)."""

    total: int
    active: int
    embedding: int
    components: Mapping[str, int]
    per_layer: tuple[int, ...]

    @property
    def non_embedding(self) -> int:
        """Kaplan et al. (2020)'s N: everything but the input embedding tables."""
        return self.total - self.embedding


def linear_params(n_in: Num, n_out: Num, bias: bool) -> Num:
    """``nn.Linear(n_in, n_out)``: a weight of n_in·n_out, plus a bias of n_out."""
    return n_in * n_out + n_out if bias else n_in * n_out


def norm_params(norm: Norm, lift: Lift[Num]) -> Num:
    """LayerNorm: weight + bias (2·d) or weight only; RMSNorm: d; non-parametric LayerNorm: 0."""
    size = lift(norm.size, "norm_size")
    if norm.kind is NormKind.NON_PARAMETRIC:
        return 0 * size
    return 2 * size if norm.kind is NormKind.LAYER_NORM and norm.bias else size


def attention_params(a: Attention, hidden_size: int, lift: Lift[Num], *, matmul_only: bool = False) -> Num:
    """Q, K, V and output projections (with their biases), plus q/k norms and attention sinks where the model
    has them.
    ``matmul_only`` keeps just the projection weights: what a token's matmuls multiply by."""
    if a.mla is not None:
        latent = _mla_params(a, a.mla, hidden_size, lift, matmul_only=matmul_only)
        return latent + indexer_params(a, hidden_size, lift) if a.indexer and not matmul_only else latent
    h = lift(hidden_size, "hidden_size")
    q_width = lift(a.num_heads, "num_heads") * lift(a.head_dim, "head_dim")
    kv_width = lift(a.num_kv_heads, "num_kv_heads") * lift(a.head_dim, "head_dim")
    qkv_bias, out_bias = a.qkv_bias and not matmul_only, a.out_bias and not matmul_only
    q_out = 2 * q_width if a.output_gate else q_width  # Qwen3-Next: the gate comes out of q_proj
    projections = (linear_params(h, q_out, qkv_bias) + 2 * linear_params(h, kv_width, qkv_bias)
                   + linear_params(q_width, h, out_bias))
    if matmul_only:
        return projections
    if a.sinks:  # gpt-oss attention sinks: one logit per query head
        projections = projections + lift(a.num_heads, "num_heads")
    if a.qk_norm is QkNormKind.PER_HEAD:
        return projections + 2 * lift(a.head_dim, "head_dim")
    if a.qk_norm is QkNormKind.FULL:
        return projections + q_width + kv_width
    return projections


def indexer_params(a: Attention, hidden_size: int, lift: Lift[Num]) -> Num:
    """DeepSeek-V3.2's lightning indexer (transformers' ``DeepseekV32Indexer``): index queries from the query
    latent (q_rank → heads·d), one index key per token (h → d) with its LayerNorm (weight and bias, 2·d),
    and per-head weights (h → heads); no biases. Zero without an indexer."""
    if a.indexer is None:
        return 0 * lift(hidden_size, "hidden_size")
    h = lift(hidden_size, "hidden_size")
    heads, d = lift(a.indexer.num_heads, "index_n_heads"), lift(a.indexer.head_dim, "index_head_dim")
    q_rank = lift(a.indexer.q_rank, "q_lora_rank")
    return linear_params(q_rank, heads * d, False) + linear_params(h, d, False) + 2 * d + linear_params(h, heads, False)


def _mla_params(a: Attention, mla: Mla, hidden_size: int, lift: Lift[Num], *, matmul_only: bool) -> Num:
    """DeepSeek MLA: q through an optional q_lora_rank latent (with its RMSNorm); one down-projection to the
    kv_lora_rank latent plus the shared RoPE key; its RMSNorm; one up-projection to per-head k_nope and v."""
    h = lift(hidden_size, "hidden_size")
    heads = lift(a.num_heads, "num_heads")
    qk_dim = lift(a.head_dim, "qk_head_dim")
    rope = lift(mla.qk_rope_head_dim, "qk_rope_head_dim")
    nope = lift(mla.qk_nope_head_dim, "qk_nope_head_dim")
    kv_rank = lift(mla.kv_lora_rank, "kv_lora_rank")
    v_dim = lift(a.v_head_dim, "v_head_dim")
    bias = a.qkv_bias and not matmul_only
    norm = 0 if matmul_only else 1  # the q_a and kv_a RMSNorms: one weight per latent channel
    if mla.q_lora_rank is None:
        q = linear_params(h, heads * qk_dim, False)
    else:
        q_rank = lift(mla.q_lora_rank, "q_lora_rank")
        q = linear_params(h, q_rank, bias) + norm * q_rank + linear_params(q_rank, heads * qk_dim, False)
    kv = (linear_params(h, kv_rank + rope, bias) + norm * kv_rank
          + linear_params(kv_rank, heads * (nope + v_dim), False))
    return q + kv + linear_params(heads * v_dim, h, a.out_bias and not matmul_only)


def mlp_params(m: Mlp, hidden_size: int, lift: Lift[Num], *, matmul_only: bool = False) -> Num:
    """Gated (SwiGLU/GeGLU): gate, up and down matrices, 3·h·i; plain: up and down, 2·h·i; plus biases and
    the activation's own learnable scalars (Apertus' xIELU holds alpha_p and alpha_n, arXiv:2411.13010)."""
    h = lift(hidden_size, "hidden_size")
    i = lift(m.intermediate_size, "intermediate_size")
    bias = m.bias and not matmul_only
    up = linear_params(h, i, bias)
    matrices = (2 * up if m.gated else up) + linear_params(i, h, bias)
    if m.activation_params and not matmul_only:
        return matrices + lift(m.activation_params, "activation_params")
    return matrices


def router_params(moe: Moe, hidden_size: int, lift: Lift[Num]) -> Num:
    """The router's h×(E + Z) logits matrix (+ bias; Z zero-computation experts), plus Qwen2-MoE's h×1
    shared-expert gate."""
    h = lift(hidden_size, "hidden_size")
    router = linear_params(h, lift(moe.num_experts + moe.zero_experts, "num_experts"), moe.router_bias)
    return router + h if moe.shared_gate else router


def mamba2_params(m: Mamba2Mixer, hidden_size: int, lift: Lift[Num], *, matmul_only: bool = False) -> Num:
    """transformers' ``Mamba2Mixer``: in_proj h → 2·I + 2·G·N + H (z, x, B, C, dt), depthwise conv1d over
    conv_dim = I + 2·G·N channels (K taps + bias), ``dt_bias``, ``A_log`` and ``D`` (H each), out_proj I → h.
    The gated RMSNorm's I weights are in ``ssm_norm_params``. ``matmul_only``: the two projections."""
    h = lift(hidden_size, "hidden_size")
    inner = lift(m.num_heads, "ssm_heads") * lift(m.head_dim, "ssm_head_dim")
    heads = lift(m.num_heads, "ssm_heads")
    bc = 2 * lift(m.n_groups, "n_groups") * lift(m.d_state, "d_state")
    bias = m.proj_bias and not matmul_only
    out_bias = (m.proj_bias if m.out_bias is None else m.out_bias) and not matmul_only
    projections = linear_params(h, 2 * inner + bc + heads, bias) + linear_params(inner, h, out_bias)
    if matmul_only:
        return projections
    conv_dim = inner + bc
    conv = conv_dim * lift(m.conv_kernel, "conv_kernel") + (conv_dim if m.conv_bias else 0 * conv_dim)
    return projections + conv + 3 * heads


def mamba1_params(m: MambaMixer, hidden_size: int, lift: Lift[Num], *, matmul_only: bool = False) -> Num:
    """Mamba-1 (Jamba's ``JambaMambaMixer``): in_proj h → 2·I, depthwise conv1d over I (K taps + bias),
    x_proj I → R + 2·N, dt_proj R → I with bias, ``A_log`` I·N, ``D`` I, out_proj I → h. The dt/B/C
    RMSNorms are in ``ssm_norm_params``. ``matmul_only``: the four projections' weights."""
    h = lift(hidden_size, "hidden_size")
    inner = lift(m.intermediate_size, "ssm_intermediate")
    rank, state = lift(m.dt_rank, "dt_rank"), lift(m.d_state, "d_state")
    bias = m.proj_bias and not matmul_only
    projections = (linear_params(h, 2 * inner, bias) + linear_params(inner, rank + 2 * state, False)
                   + linear_params(rank, inner, not matmul_only) + linear_params(inner, h, bias))
    if matmul_only:
        return projections
    conv = inner * lift(m.conv_kernel, "conv_kernel") + (inner if m.conv_bias else 0 * inner)
    return projections + conv + inner * state + inner


def gated_deltanet_params(m: GatedDeltaNet, hidden_size: int, lift: Lift[Num], *,
                          matmul_only: bool = False) -> Num:
    """transformers' ``Qwen3NextGatedDeltaNet``: in_proj_qkvz h → 2·K + 2·V, in_proj_ba h → 2·Hv, depthwise
    conv1d over 2·K + V channels (K taps, no bias), ``dt_bias`` and ``A_log`` (Hv each), out_proj V → h. The
    gated norm's head_v_dim weights are in ``ssm_norm_params``."""
    h = lift(hidden_size, "hidden_size")
    k = lift(m.num_k_heads, "linear_k_heads") * lift(m.head_k_dim, "linear_k_head_dim")
    v = lift(m.num_v_heads, "linear_v_heads") * lift(m.head_v_dim, "linear_v_head_dim")
    heads = lift(m.num_v_heads, "linear_v_heads")
    projections = h * (2 * k + 2 * v) + h * 2 * heads + v * h
    if matmul_only:
        return projections
    return projections + (2 * k + v) * lift(m.conv_kernel, "conv_kernel") + 2 * heads


def kimi_delta_params(m: KimiDeltaAttention, hidden_size: int, lift: Lift[Num], *,
                      matmul_only: bool = False) -> Num:
    """transformers' ``KimiLinearDeltaAttention`` (W = H·d): q, k, v h → W each, the forget and output gates'
    bottlenecks h → d → W (f_a/f_b, g_a/g_b), b_proj h → H, o_proj W → h; then the conv1d over 3·W channels
    (K taps, no bias), ``dt_bias`` W and ``A_log`` H. The gated norm's d weights are in ``ssm_norm_params``::

        4·h·W + 2·(h·d + d·W) + h·H  (+ 3·W·K + W + H)"""
    h, heads = lift(hidden_size, "hidden_size"), lift(m.num_heads, "linear_heads")
    d = lift(m.head_dim, "linear_head_dim")
    width = heads * d
    projections = 4 * h * width + 2 * (h * d + d * width) + h * heads
    if matmul_only:
        return projections
    return projections + 3 * width * lift(m.conv_kernel, "conv_kernel") + width + heads


def mixer_params(m: Mixer, hidden_size: int, lift: Lift[Num], *, matmul_only: bool = False) -> Num:
    """A state-space or linear-attention mixer's parameters, its inner norms excepted."""
    if isinstance(m, Mamba2Mixer):
        return mamba2_params(m, hidden_size, lift, matmul_only=matmul_only)
    if isinstance(m, GatedDeltaNet):
        return gated_deltanet_params(m, hidden_size, lift, matmul_only=matmul_only)
    if isinstance(m, KimiDeltaAttention):
        return kimi_delta_params(m, hidden_size, lift, matmul_only=matmul_only)
    if isinstance(m, LightningAttention):  # MiniMax: qkv_proj h → 3·H·d, output_gate h → H·d, out_proj H·d → h
        return 5 * lift(hidden_size, "hidden_size") * lift(m.num_heads, "num_heads") * lift(m.head_dim, "head_dim")
    if isinstance(m, ShortConv):  # LFM2: in_proj h → 3h, out_proj h → h, depthwise conv of K taps
        c = lift(m.channels, "conv_channels")
        bias = m.bias and not matmul_only
        projections = linear_params(c, 3 * c, bias) + linear_params(c, c, bias)
        if matmul_only:
            return projections
        return projections + c * lift(m.conv_kernel, "conv_kernel") + (c if m.bias else 0 * c)
    return mamba1_params(m, hidden_size, lift, matmul_only=matmul_only)


def ssm_norm_params(m: Mixer, lift: Lift[Num]) -> Num:
    """Norms inside a mixer: Mamba-2's gated RMSNorm over I; Jamba's dt, B and C RMSNorms (R + 2·N);
    Gated DeltaNet's gated RMSNorm, one weight per value-head channel (shared by the heads)."""
    if isinstance(m, Mamba2Mixer):
        inner = lift(m.num_heads, "ssm_heads") * lift(m.head_dim, "ssm_head_dim")
        return inner if m.gated_norm else 0 * inner
    if isinstance(m, GatedDeltaNet):
        return lift(m.head_v_dim, "linear_v_head_dim")
    if isinstance(m, KimiDeltaAttention):  # KDA's gated RMSNorm: head_dim weights shared by the heads
        return lift(m.head_dim, "linear_head_dim")
    if isinstance(m, ShortConv):
        return 0 * lift(m.channels, "conv_channels")
    if isinstance(m, LightningAttention):  # the RMSNorm over H·d before the output gate
        return lift(m.num_heads, "num_heads") * lift(m.head_dim, "head_dim")
    rank, state = lift(m.dt_rank, "dt_rank"), lift(m.d_state, "d_state")
    return rank + 2 * state if m.inner_norms else 0 * rank


def layer_components(layer: Layer, hidden_size: int, lift: Lift[Num]) -> dict[str, Num]:
    """One block's parameters by component."""
    parts: dict[str, Num] = {}
    if layer.attention is not None:
        parts["attention"] = attention_params(layer.attention, hidden_size, lift)
        if layer.gates:  # mllama's tanh gates on the attention and MLP outputs: one scalar each
            parts["attention"] = parts["attention"] + lift(layer.gates, "gates")
    norms = [norm_params(n, lift) for n in layer.norms]
    if layer.mixer is not None:
        # MiniMax and Kimi Linear name their linear attention self_attn: counted with attention, as transformers
        name = "attention" if isinstance(layer.mixer, (LightningAttention, KimiDeltaAttention)) else "ssm"
        parts[name] = mixer_params(layer.mixer, hidden_size, lift)
        norms.append(ssm_norm_params(layer.mixer, lift))
    parts["norms"] = sum(norms[1:], norms[0]) if norms else 0 * lift(hidden_size, "hidden_size")
    ffn = layer.ffn
    if ffn is None:
        return parts
    if isinstance(ffn, Moe):
        parts["experts"] = lift(ffn.num_experts, "num_experts") * mlp_params(ffn.expert, hidden_size, lift)
        parts["router"] = router_params(ffn, hidden_size, lift)
        if ffn.shared is not None:
            parts["shared_experts"] = mlp_params(ffn.shared, hidden_size, lift)
    else:
        parts["mlp"] = mlp_params(ffn, hidden_size, lift)
    return parts


def layer_params(layer: Layer, hidden_size: int) -> int:
    """All parameters of one block."""
    return int(sum(layer_components(layer, hidden_size, plain).values()))


def inactive_params_per_token(layer: Layer, hidden_size: int) -> int:
    """Routed-expert parameters a token does not use in this block: (E − top_k) experts, or E minus the
    average number of real experts it runs when the router can pick zero-computation ones."""
    if not isinstance(layer.ffn, Moe):
        return 0
    moe = layer.ffn
    return round((moe.num_experts - moe.experts_per_token) * int(mlp_params(moe.expert, hidden_size, plain)))


def outer_components(spec: ModelSpec, lift: Lift[Num]) -> dict[str, Num]:
    """Parameters outside the blocks: embeddings, final norm, output head, pooler."""
    h = lift(spec.hidden_size, "hidden_size")
    vocab = lift(spec.vocab_size, "vocab_size")
    parts: dict[str, Num] = {"embedding": vocab * h}
    if spec.extra_token_rows:  # mllama's token table: vocab_size + 8 rows
        parts["embedding"] = (vocab + lift(spec.extra_token_rows, "extra_token_rows")) * h
    if spec.learned_position_rows or spec.token_type_vocab_size:
        rows = lift(spec.learned_position_rows, "position_rows") + lift(spec.token_type_vocab_size, "token_types")
        parts["position_embedding"] = rows * h
    norms = [norm_params(n, lift) for n in (spec.embedding_norm, spec.final_norm) if n is not None]
    if norms:
        parts["norms"] = sum(norms[1:], norms[0])
    if spec.lm_head and not spec.tie_word_embeddings:
        parts["lm_head"] = linear_params(h, vocab, spec.lm_head_bias)
    if spec.pooler:
        parts["pooler"] = linear_params(h, h, True)
    return parts


def count_params(spec: ModelSpec) -> ParamCounts:
    """Total, embedding, per-component, per-layer and active-per-token parameter counts."""
    components = {name: 0 for name in COMPONENTS}
    for name, value in outer_components(spec, plain).items():
        components[name] += int(value)
    if spec.vision is not None:
        from suanli.core.vision import vision_params  # core/vision builds on this module's formulas

        components["vision"] = vision_params(spec.vision)
    per_group: dict[Layer, int] = {}
    inactive = 0
    for layer, count in spec.layer_groups():
        parts = layer_components(layer, spec.hidden_size, plain)
        for name, value in parts.items():
            components[name] += int(value) * count
        per_group[layer] = int(sum(parts.values()))
        inactive += inactive_params_per_token(layer, spec.hidden_size) * count
    total = sum(components.values())
    embedding = components["embedding"] + components["position_embedding"]
    return ParamCounts(total=total, active=total - inactive, embedding=embedding,
                       components={k: v for k, v in components.items() if v},
                       per_layer=tuple(per_group[layer] for layer in spec.layers))
