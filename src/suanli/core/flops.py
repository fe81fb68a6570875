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
  gradient (Kaplan et al. 2020, §2.1; Narayanan et al. 2021, arXiv:2104.04473 App. A);
- recompute adds the forward of what is recomputed (a whole block for FULL, the attention core for
  SELECTIVE); ``training`` excludes it (model FLOPs), ``training_with_recompute`` includes it (hardware FLOPs).

A dense Transformer's training compute is close to 6·N·D (N parameters, D tokens); the exact count differs by
the attention matmuls (+12·L·h·S per token at full span) and by the embedding table, which is not a matmul.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from suanli.core.params import attention_params, mlp_params
from suanli.errors import require_positive
from suanli.quantity import Num, plain
from suanli.spec.assumptions import AttentionSpan
from suanli.spec.layout import Recompute
from suanli.spec.model import Attention, Layer, ModelSpec, Moe

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


def ffn_flops_per_token(layer: Layer, hidden_size: int, lift: Lift[Num]) -> dict[str, Num]:
    """Dense MLP, or MoE router + top_k routed experts + shared experts, per token."""
    ffn = layer.ffn
    if not isinstance(ffn, Moe):
        return {"mlp": 2 * mlp_params(ffn, hidden_size, lift, matmul_only=True)}
    h = lift(hidden_size, "hidden_size")
    router = lift(ffn.num_experts, "num_experts") + (1 if ffn.shared_gate else 0)
    parts: dict[str, Num] = {
        "router": 2 * h * router,
        "experts": 2 * lift(ffn.top_k, "top_k") * mlp_params(ffn.expert, hidden_size, lift, matmul_only=True),
    }
    if ffn.shared is not None:
        parts["shared_experts"] = 2 * mlp_params(ffn.shared, hidden_size, lift, matmul_only=True)
    return parts


def layer_forward_flops(layer: Layer, hidden_size: int, seq: int, span: AttentionSpan,
                        lift: Lift[Num]) -> dict[str, Num]:
    """Forward FLOPs of one block over one sequence of ``seq`` tokens, by component."""
    tokens = lift(seq, "seq")
    pairs = lift(layer_pairs(layer.attention, seq, span), "attended_pairs")
    parts: dict[str, Num] = {
        "attention_proj": 2 * tokens * attention_params(layer.attention, hidden_size, lift, matmul_only=True),
        "attention_scores": attention_core_flops(layer.attention, pairs, lift),
    }
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
                recompute: Recompute = Recompute.NONE) -> FlopCounts:
    """Forward, backward and recompute FLOPs of ``batch`` sequences of ``seq`` tokens."""
    require_positive("seq", seq, fix="give the sequence length in tokens, e.g. --seq 2048")
    require_positive("batch", batch, fix="give the number of sequences, e.g. --batch 1")
    components: dict[str, float] = {}
    recomputed = 0.0
    for layer, count in spec.layer_groups():
        parts = layer_forward_flops(layer, spec.hidden_size, seq, span, plain)
        for name, value in parts.items():
            components[name] = components.get(name, 0.0) + value * count * batch
        recomputed += _recomputed(parts, recompute) * count * batch
    for name, value in head_forward_flops(spec, seq, plain).items():
        components[name] = value * batch
    forward = sum(components.values())
    # DeepSeek-V3.2's indexer selects keys without passing gradients back (transformers runs it under
    # no_grad; DeepSeek trains it on a detached input with its own loss), so it adds no backward FLOPs here
    backward = 2 * (forward - components.get("indexer", 0.0))
    return FlopCounts(batch=batch, seq=seq, forward=forward, backward=backward, recompute=recomputed,
                      components=components)


def _recomputed(layer_parts: Mapping[str, float], recompute: Recompute) -> float:
    if recompute is Recompute.FULL:
        return sum(layer_parts.values())
    if recompute is Recompute.SELECTIVE:
        return layer_parts["attention_scores"]
    return 0.0


def six_n_d(params: float, tokens: float) -> float:
    """The 6·N·D rule of thumb for training compute (Kaplan et al. 2020, arXiv:2001.08361 §2.1)."""
    return 6 * params * tokens
