"""Matmul FLOPs of a forward and backward pass, by component.

Conventions (docs/conventions.md):

- a multiply-add is 2 FLOPs, so ``x @ W`` with W of shape (i, o) costs 2·i·o per token;
- only matrix multiplications are counted: projections, the attention score (Q·Kᵀ) and value (P·V) matmuls,
  the router, the output head. Norms, softmax, activations, biases and residual adds are left out: together
  they are O(S·h) per layer against O(S·h²) for the matmuls, well under 1% for models of hidden size ≥ 1024.
  This is what ``torch.utils.flop_counter.FlopCounterMode`` counts, so the two can be compared directly;
- attention is counted over all S×S pairs by default (``AttentionSpan.FULL``, Megatron's convention and what
  eager attention computes); ``AttentionSpan.CAUSAL`` counts only the pairs a causal / sliding-window kernel
  computes;
- the output head runs on every position (training, prefill of a full sequence);
- backward = 2 × forward: each matmul needs one matmul for the input gradient and one for the weight
  gradient (Kaplan et al. 2020, §2.1; Narayanan et al. 2021, arXiv:2104.04473 App. A); the chunked gated
  delta rule (Qwen3-Next) departs from it as its autograd does (``gated_deltanet_backward_extra``);
- state-space and linear-attention mixers (Mamba-1/2, Gated DeltaNet, LFM2's short conv) count their
  projections, their depthwise causal conv (as PyTorch pads it) and the matmuls of the scan the transformers
  torch path runs (chunked SSD, sequential Mamba-1 read-out, chunked delta rule): what ``FlopCounterMode``
  counts on that path, exactly; element-wise discretisation, decays and gates are left out, as it leaves them;
- recompute adds the forward of what is recomputed (a whole block for FULL, the attention core for
  SELECTIVE); ``training`` excludes it (model FLOPs), ``training_with_recompute`` includes it (hardware FLOPs).

A dense Transformer's training compute is close to 6·N·D (N parameters, D tokens); the exact count differs by
the attention matmuls (+12·L·h·S per token at full span) and by the embedding table, which is not a matmul.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from suanli.core.params import attention_params, mixer_params, mlp_params
from suanli.errors import require_positive
from suanli.i18n import Text
from suanli.quantity import Num, plain
from suanli.spec.assumptions import AttentionSpan
from suanli.spec.layout import Recompute
from suanli.spec.model import (
    Attention,
    GatedDeltaNet,
    KimiDeltaAttention,
    Layer,
    LightningAttention,
    Mamba2Mixer,
    MambaMixer,
    Mixer,
    ModelSpec,
    Moe,
    ShortConv,
)

Lift = Callable[[float, str], Num]


@dataclass(frozen=True, slots=True, kw_only=True)
class FlopCounts:
    """FLOPs of one batch of ``batch`` sequences of ``seq`` tokens."""

    batch: int
    seq: int
    forward: float
    backward: float
    recompute: float
    components: Mapping[str, float]  # forward FLOPs by component

    @property
    def tokens(self) -> int:
        return self.batch * self.seq

    @property
    def training(self) -> float:
        """Forward + backward, no recompute: the model FLOPs that MFU is measured against."""
        return self.forward + self.backward

    @property
    def training_with_recompute(self) -> float:
        """Forward + backward + recomputed forward: the hardware FLOPs (HFU)."""
        return self.forward + self.backward + self.recompute

    @property
    def forward_per_token(self) -> float:
        return self.forward / self.tokens


def attended_pairs(seq: int, window: int | None, span: AttentionSpan) -> int:
    """Query-key pairs per head in one sequence: S² at full span; Σᵢ min(i+1, W) when causal (W = S
    without a sliding window)."""
    if span is AttentionSpan.FULL:
        return seq * seq
    w = seq if window is None else min(window, seq)
    return w * (w + 1) // 2 + (seq - w) * w


def chunked_pairs(seq: int, chunk: int, span: AttentionSpan) -> int:
    """Query-key pairs per head under chunked local attention (Llama 4): S² at full span; causal, each
    whole chunk of C tokens costs C·(C+1)/2 and the last r = S mod C tokens r·(r+1)/2."""
    if span is AttentionSpan.FULL:
        return seq * seq
    whole, rest = divmod(seq, chunk)
    return whole * chunk * (chunk + 1) // 2 + rest * (rest + 1) // 2


def layer_pairs(a: Attention, seq: int, span: AttentionSpan) -> int:
    """Pairs one head of this layer scores: chunked, sliding-window or global attention; under DeepSeek
    sparse attention a query attends its ``index_topk`` selected keys, as many pairs as a window of topk."""
    if a.indexer is not None:
        return attended_pairs(seq, a.indexer.topk, span)
    if a.chunk_size is not None:
        return chunked_pairs(seq, a.chunk_size, span)
    return attended_pairs(seq, a.sliding_window, span)


def indexer_flops(a: Attention, hidden_size: int, seq: int, span: AttentionSpan, lift: Lift[Num]) -> Num:
    """DeepSeek-V3.2's lightning indexer over one sequence: its projections per token (2 × its weights) and,
    per scored query-key pair, heads·d multiply-adds for q·k plus heads for the weighted sum over heads::

        2·S·(q_rank·H·d + h·d + h·H) + 2·H·(d + 1)·pairs,   pairs = S² (full) or S(S+1)/2 (causal)

    The indexer scores every earlier token (that is what makes it cheap per pair, not per token)."""
    if a.indexer is None:
        return 0 * lift(seq, "seq")
    h = lift(hidden_size, "hidden_size")
    heads, d = lift(a.indexer.num_heads, "index_n_heads"), lift(a.indexer.head_dim, "index_head_dim")
    projections = lift(a.indexer.q_rank, "q_lora_rank") * heads * d + h * d + h * heads
    pairs = lift(attended_pairs(seq, None, span), "index_pairs")
    return 2 * lift(seq, "seq") * projections + 2 * heads * (d + 1) * pairs


def attention_core_flops(a: Attention, pairs: Num, lift: Lift[Num]) -> Num:
    """Q·Kᵀ over head_dim and P·V over v_head_dim, for every head: 2·heads·(d_qk + d_v)·pairs."""
    heads = lift(a.num_heads, "num_heads")
    return 2 * heads * (lift(a.head_dim, "head_dim") + lift(a.v_head_dim, "v_head_dim")) * pairs


def ssm_conv_flops(channels: Num, kernel: Num, seq: Num) -> Num:
    """The depthwise causal conv1d as PyTorch runs it: padded by K − 1 on both sides, so S + K − 1 outputs
    per channel of K multiply-adds each (the last K − 1 are cut off afterwards): 2·C·K·(S + K − 1)."""
    return 2 * channels * kernel * (seq + kernel - 1)


def mamba2_scan_flops(m: Mamba2Mixer, seq: int, lift: Lift[Num]) -> Num:
    """The chunked SSD scan of Mamba-2 (Dao & Gu 2024, arXiv:2405.21060 §6, "ssd_minimal"), as transformers'
    ``mamba2_chunk_scan`` computes it: the sequence is padded to c = ⌈S/Q⌉ chunks of Q tokens, then per
    head five batched matmuls: C·Bᵀ (c·Q²·N), its product with x (c·Q²·P), the chunk states Bᵀ·x (c·Q·N·P),
    the inter-chunk recurrence over c + 1 states ((c+1)²·P·N) and the state read-out C·state (c·Q·N·P)::

        2·H·(c·Q²·(N + P) + 2·c·Q·N·P + (c + 1)²·N·P)

    The decays (exp of segment sums), the D skip and the gated norm are element-wise and not counted."""
    chunks = lift(-(-seq // m.chunk_size), "ssd_chunks")
    q, n, p = lift(m.chunk_size, "chunk_size"), lift(m.d_state, "d_state"), lift(m.head_dim, "ssm_head_dim")
    per_head = chunks * q * q * (n + p) + 2 * chunks * q * n * p + (chunks + 1) * (chunks + 1) * n * p
    return 2 * lift(m.num_heads, "ssm_heads") * per_head


def gated_deltanet_scan_flops(m: GatedDeltaNet, seq: int, lift: Lift[Num]) -> Num:
    """The chunked gated delta rule as transformers' ``torch_chunk_gated_delta_rule`` runs it (Yang et al.
    2024, arXiv:2412.06464 §3; q and k repeated to the Hv value heads; c = ⌈S/C⌉ chunks of C = 64, the last
    padded): per head, the intra-chunk β·k·kᵀ and q·kᵀ (2·c·C²·dk), then per chunk the state reads
    k·S and q·S and the write kᵀ·v (3·c·C·dk·dv) and the intra-chunk product with the new values (c·C²·dv)::

        2·Hv·c·(2·C²·dk + C²·dv + 3·C·dk·dv)

    Left out, as ``FlopCounterMode`` leaves them out: the two triangular solves of the UT transform
    (``linalg.solve_triangular``, about C²·(dk + dv) multiply-adds per chunk and head), the l2 norms and the
    decays (element-wise)."""
    chunks = lift(-(-seq // m.chunk_size), "delta_chunks")
    c, dk, dv = lift(m.chunk_size, "chunk_size"), lift(m.head_k_dim, "head_k_dim"), lift(m.head_v_dim, "head_v_dim")
    per_head = chunks * (2 * c * c * dk + c * c * dv + 3 * c * dk * dv)
    return 2 * lift(m.num_v_heads, "linear_v_heads") * per_head


def gated_deltanet_backward_extra(m: GatedDeltaNet, seq: int, lift: Lift[Num]) -> Num:
    """What the chunked gated delta rule's backward adds to 2 × its forward matmuls, per sequence: the
    gradients of the UT system through the two triangular solves, one C × d by d × C product each per chunk
    and head (d = dv, then dk: 2·Hv·c·C²·(dk + dv)), less the products autograd skips: none flows into the
    all-zero initial state (k·S and q·S of the first chunk need one gradient, not two) nor out of the final
    state the forward discards (the last chunk's kᵀ·v write needs none): 2·Hv·4·C·dk·dv."""
    chunks = lift(-(-seq // m.chunk_size), "delta_chunks")
    c, dk, dv = lift(m.chunk_size, "chunk_size"), lift(m.head_k_dim, "head_k_dim"), lift(m.head_v_dim, "head_v_dim")
    return 2 * lift(m.num_v_heads, "linear_v_heads") * (chunks * c * c * (dk + dv) - 4 * c * dk * dv)


def kimi_delta_scan_flops(m: KimiDeltaAttention, seq: int, lift: Lift[Num]) -> Num:
    """The chunked Kimi Delta Attention as transformers' ``chunk_kimi_delta_attention`` runs it (Kimi Linear,
    arXiv:2510.26692 §3; c = ⌈S/C⌉ chunks of C = 64, the last padded; d = dk = dv): with a decay per key
    channel, the intra-chunk k·kᵀ and q·kᵀ scores are element-wise products summed over d, not matmuls; the
    matmuls are, per head, the UT transform's products with v and with the decayed k (2·c·C²·d), then per
    chunk the state reads q·S and k·S and the write kᵀ·v (3·c·C·d²) and the intra-chunk product with the new
    values (c·C²·d)::

        2·H·c·(3·C²·d + 3·C·d²)

    Left out, as ``FlopCounterMode`` leaves them out: the element-wise scores (about 2·C²·d multiply-adds per
    chunk and head), the forward substitution, the l2 norms and the decays."""
    chunks = lift(-(-seq // m.chunk_size), "delta_chunks")
    c, d = lift(m.chunk_size, "chunk_size"), lift(m.head_dim, "linear_head_dim")
    return 2 * lift(m.num_heads, "linear_heads") * chunks * (3 * c * c * d + 3 * c * d * d)


def kimi_delta_backward_extra(m: KimiDeltaAttention, lift: Lift[Num]) -> Num:
    """What the chunked KDA's backward saves against 2 × its forward matmuls, per sequence: no gradient flows
    into the all-zero initial state (q·S and k·S of the first chunk need one product, not two) nor out of the
    final state the forward discards (the last chunk's kᵀ·v write needs none): −2·H·4·C·d²."""
    c, d = lift(m.chunk_size, "chunk_size"), lift(m.head_dim, "linear_head_dim")
    return -2 * lift(m.num_heads, "linear_heads") * 4 * c * d * d


def _lightning_blocks(m: LightningAttention, seq: int) -> tuple[int, int, int]:
    """(whole blocks, the last block's length, the first block's length): blocks are not padded."""
    whole, rest = divmod(seq, m.block_size)
    return whole, rest, min(seq, m.block_size)


def lightning_scan_flops(m: LightningAttention, seq: int, lift: Lift[Num]) -> Num:
    """MiniMax's blocked lightning attention as transformers' ``MiniMaxLightningAttention`` runs it: per head
    and block of L tokens (the last one shorter, not padded), Q·Kᵀ and its product with V inside the block
    (2·L²·d) and the read Q·S and write Kᵀ·V of the d × d state (2·L·d²)::

        2·H·Σ_blocks (2·L²·d + 2·L·d²)

    The decays are element-wise and not counted."""
    whole, rest, _ = _lightning_blocks(m, seq)
    d, b = lift(m.head_dim, "head_dim"), lift(m.block_size, "block_size")
    per_head = whole * (2 * b * b * d + 2 * b * d * d)
    if rest:
        r = lift(rest, "last_block")
        per_head = per_head + 2 * r * r * d + 2 * r * d * d
    return 2 * lift(m.num_heads, "num_heads") * per_head


def lightning_backward_extra(m: LightningAttention, seq: int, lift: Lift[Num]) -> Num:
    """What the blocked lightning attention's backward saves against 2 × its forward matmuls: no gradient
    flows into the all-zero initial state (the first block's Q·S needs one product, not two) nor out of the
    state written after the last block (its Kᵀ·V needs none): −2·H·(L_first + 2·L_last)·d²."""
    _, rest, first = _lightning_blocks(m, seq)
    last = lift(rest or m.block_size, "last_block")
    d = lift(m.head_dim, "head_dim")
    return -2 * lift(m.num_heads, "num_heads") * (lift(first, "first_block") + 2 * last) * d * d


def mixer_forward_flops(m: Mixer, hidden_size: int, seq: int, lift: Lift[Num]) -> dict[str, Num]:
    """Forward FLOPs of a state-space mixer over one sequence: projections, depthwise conv, scan.

    Mamba-1 (Jamba) runs a sequential selective scan whose only matmul is the read-out state·C, 2·I·N per
    token; the discretisation and state update (about 9·I·N element-wise operations per token, Gu & Dao
    2023 §3.3) are element-wise and, like norms and activations, not counted (``FlopCounterMode`` does not
    count them either)."""
    tokens = lift(seq, "seq")
    if isinstance(m, LightningAttention):  # MiniMax: projections and the blocked linear attention, no conv
        return {"ssm_proj": 2 * tokens * mixer_params(m, hidden_size, lift, matmul_only=True),
                "ssm_scan": lightning_scan_flops(m, seq, lift)}
    if isinstance(m, ShortConv):  # LFM2: projections and the conv; the B·x and C·y gates are element-wise
        return {"ssm_proj": 2 * tokens * mixer_params(m, hidden_size, lift, matmul_only=True),
                "ssm_conv": ssm_conv_flops(lift(m.channels, "conv_dim"), lift(m.conv_kernel, "conv_kernel"), tokens)}
    conv_channels = lift(m.intermediate_size if isinstance(m, MambaMixer) else m.conv_dim, "conv_dim")
    parts: dict[str, Num] = {
        "ssm_proj": 2 * tokens * mixer_params(m, hidden_size, lift, matmul_only=True),
        "ssm_conv": ssm_conv_flops(conv_channels, lift(m.conv_kernel, "conv_kernel"), tokens),
    }
    if isinstance(m, Mamba2Mixer):
        parts["ssm_scan"] = mamba2_scan_flops(m, seq, lift)
    elif isinstance(m, GatedDeltaNet):
        parts["ssm_scan"] = gated_deltanet_scan_flops(m, seq, lift)
    elif isinstance(m, KimiDeltaAttention):
        parts["ssm_scan"] = kimi_delta_scan_flops(m, seq, lift)
    else:
        parts["ssm_scan"] = 2 * tokens * lift(m.intermediate_size, "ssm_intermediate") * lift(m.d_state, "d_state")
    return parts


def ffn_flops_per_token(layer: Layer, hidden_size: int, lift: Lift[Num]) -> dict[str, Num]:
    """Dense MLP, or MoE router + top_k routed experts + shared experts, per token."""
    ffn = layer.ffn
    if ffn is None:
        return {}
    if not isinstance(ffn, Moe):
        return {"mlp": 2 * mlp_params(ffn, hidden_size, lift, matmul_only=True)}
    h = lift(hidden_size, "hidden_size")
    router = lift(ffn.num_experts + ffn.zero_experts, "num_experts") + (1 if ffn.shared_gate else 0)
    per_token = lift(ffn.experts_per_token, "top_k")  # top_k; fewer when zero-computation experts are picked
    parts: dict[str, Num] = {
        "router": 2 * h * router,
        "experts": 2 * per_token * mlp_params(ffn.expert, hidden_size, lift, matmul_only=True),
    }
    if ffn.shared is not None:
        parts["shared_experts"] = 2 * mlp_params(ffn.shared, hidden_size, lift, matmul_only=True)
    return parts


def cross_attention_flops(a: Attention, hidden_size: int, seq: int, image_states: int,
                          lift: Lift[Num]) -> dict[str, Num]:
    """mllama cross-attention of ``seq`` text tokens over ``image_states`` projected image states: q and o
    projections per text token (2·S·2·h·heads·d), k and v per image state (2·I·2·h·kv_heads·d), scores and
    values over the S × I pairs."""
    h = lift(hidden_size, "hidden_size")
    q_width = lift(a.num_heads, "num_heads") * lift(a.head_dim, "head_dim")
    kv_width = lift(a.num_kv_heads, "num_kv_heads") * lift(a.head_dim, "head_dim")
    tokens, states = lift(seq, "seq"), lift(image_states, "image_states")
    return {"attention_proj": 2 * tokens * 2 * h * q_width + 2 * states * 2 * h * kv_width,
            "attention_scores": attention_core_flops(a, tokens * states, lift)}


def layer_forward_flops(layer: Layer, hidden_size: int, seq: int, span: AttentionSpan,
                        lift: Lift[Num], image_states: int = 0) -> dict[str, Num]:
    """Forward FLOPs of one block over one sequence of ``seq`` tokens, by component. A cross-attention layer
    (mllama) attends ``image_states`` image states; without any, transformers skips the whole layer."""
    tokens = lift(seq, "seq")
    parts: dict[str, Num] = {}
    if layer.attention is not None and layer.attention.cross:
        if not image_states:
            return parts
        parts.update(cross_attention_flops(layer.attention, hidden_size, seq, image_states, lift))
    elif layer.attention is not None:
        pairs = lift(layer_pairs(layer.attention, seq, span), "attended_pairs")
        parts["attention_proj"] = 2 * tokens * attention_params(layer.attention, hidden_size, lift,
                                                                matmul_only=True)
        parts["attention_scores"] = attention_core_flops(layer.attention, pairs, lift)
    if layer.mixer is not None:
        parts.update(mixer_forward_flops(layer.mixer, hidden_size, seq, lift))
    if layer.attention is not None and layer.attention.indexer is not None:
        parts["indexer"] = indexer_flops(layer.attention, hidden_size, seq, span, lift)
    for name, per_token in ffn_flops_per_token(layer, hidden_size, lift).items():
        parts[name] = tokens * per_token
    return parts


def head_forward_flops(spec: ModelSpec, seq: int, lift: Lift[Num]) -> dict[str, Num]:
    """Output head over every position (2·S·h·V) and BERT's pooler on the first token (2·h²)."""
    h = lift(spec.hidden_size, "hidden_size")
    parts: dict[str, Num] = {}
    if spec.lm_head:
        parts["lm_head"] = 2 * lift(seq, "seq") * h * lift(spec.vocab_size, "vocab_size")
    if spec.pooler:
        parts["pooler"] = 2 * h * h
    return parts


def count_flops(spec: ModelSpec, *, seq: int, batch: int = 1, span: AttentionSpan = AttentionSpan.FULL,
                recompute: Recompute = Recompute.NONE, image_states: int = 0) -> FlopCounts:
    """Forward, backward and recompute FLOPs of ``batch`` sequences of ``seq`` tokens. ``image_states``: the
    image states each sequence's cross-attention layers read (mllama; ``core/vision.py`` counts them); the
    vision tower itself is not included (``vision_flops``)."""
    require_positive("seq", seq, fix=Text("fix.core.seq_2048"))
    require_positive("batch", batch, fix=Text("fix.core.batch"))
    components: dict[str, float] = {}
    recomputed = delta_backward = 0.0
    for layer, count in spec.layer_groups():
        if isinstance(layer.mixer, GatedDeltaNet):
            delta_backward += gated_deltanet_backward_extra(layer.mixer, seq, plain) * count * batch
        if isinstance(layer.mixer, LightningAttention):
            delta_backward += lightning_backward_extra(layer.mixer, seq, plain) * count * batch
        if isinstance(layer.mixer, KimiDeltaAttention):
            delta_backward += kimi_delta_backward_extra(layer.mixer, plain) * count * batch
        parts = layer_forward_flops(layer, spec.hidden_size, seq, span, plain, image_states)
        for name, value in parts.items():
            components[name] = components.get(name, 0.0) + value * count * batch
        recomputed += _recomputed(parts, recompute) * count * batch
    for name, value in head_forward_flops(spec, seq, plain).items():
        components[name] = value * batch
    forward = sum(components.values())
    # DeepSeek-V3.2's indexer selects keys without passing gradients back (transformers runs it under
    # no_grad; DeepSeek trains it on a detached input with its own loss), so it adds no backward FLOPs here
    backward = 2 * (forward - components.get("indexer", 0.0)) + delta_backward
    return FlopCounts(batch=batch, seq=seq, forward=forward, backward=backward, recompute=recomputed,
                      components=components)


def _recomputed(layer_parts: Mapping[str, float], recompute: Recompute) -> float:
    if recompute is Recompute.FULL:
        return sum(layer_parts.values())
    if recompute is Recompute.SELECTIVE:
        return layer_parts.get("attention_scores", 0.0)
    return 0.0


def six_n_d(params: float, tokens: float) -> float:
    """The 6·N·D rule of thumb for training compute (Kaplan et al. 2020, arXiv:2001.08361 §2.1)."""
    return 6 * params * tokens
