"""Activation memory of training: the bytes each op saves for the backward pass, for one micro-batch.

Counted per op: every tensor a block keeps for its backward pass, with its dtype and what shards it. Two
flavours name how the framework implements the ops (``Flavour``):

- ``MEGATRON`` counts as Korthikanti et al. 2022 (arXiv:2205.05198 §4) do for a GPT layer in fp16: norm
  inputs, the QKV input, Q, K, the softmax output, the attention-dropout mask (1 byte) and output, V, the
  output-projection input, the MLP input, the GeLU input and output, two residual-dropout masks:
  ``sbh(34 + 5as/h)`` per layer (Table 2). Per-row norm statistics are left out, as in the paper (8 bytes
  per token per norm, < 0.1% for h ≥ 1024). Default dropout 0.1, Megatron-LM's.
- ``HUGGINGFACE`` counts what transformers 5 saves, checked against ``saved_tensors_hooks`` measurements
  (``tests/reference/test_activations_measured.py``): RMSNorm keeps an fp32 copy of its input, the fp32
  1/rms per row and the normalised tensor; eager attention repeats GQA K/V to all heads and (Llama family)
  keeps the fp32 softmax plus its compute-dtype copy; the loss keeps the fp32 log-softmax of the logits,
  not the logits. Default dropout 0. Family quirks left out: Gemma/OLMo-2 norms keep fp32 outputs, fused
  QKV projections (Phi-3) pin the whole fused output through V's view, DeepSeek's router runs in fp32.

Layouts (``ActivationSetup``): ``tp`` shards heads and MLP widths; the TP region's inputs (norms, the QKV
and MLP inputs, dropout masks) are replicated on every TP rank unless ``sp`` (sequence parallelism) shards
them along the sequence: ``sbh(10 + 24/t + 5as/(ht))`` with TP, ``sbh/t·(34 + 5as/h)`` with TP+SP. ``cp``
shards the sequence (each rank's queries still see all keys). SELECTIVE recompute drops the attention core
(the S² terms, or the softmax statistics of a fused kernel); FULL keeps only each block's input, ``2sbh``.
Expert parallelism does not change the average bytes per GPU: each rank computes ``tokens · top_k`` slots.

Saved is not peak. Besides what is saved, the backward pass needs transient workspace: the logits the
model returns plus an fp32 logits-sized buffer (upcast copy, then the logits gradient) at the head, and with
recompute one block's re-materialised activations (``ActivationBreakdown.transient_bytes``). The caller
(``core/memory.py``) multiplies stage bytes by the micro-batches in flight.

Assumed throughout: weights and activations in one compute dtype (``act_bytes``; autocast keeps fp32 norm
and softmax outputs, which this does not model); a causal LM trained with next-token cross-entropy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from types import MappingProxyType

from suanli.errors import SpecError, require_positive
from suanli.quantity import Num, plain
from suanli.spec.layout import AttentionImpl, Layout, Recompute
from suanli.spec.model import Attention, Layer, Mla, Mlp, ModelSpec, Moe, Norm, NormKind, PositionKind, QkNormKind
from suanli.spec.training import PrecisionMode, TrainingJob

Lift = Callable[[float, str], Num]

FP32_BYTES = 4.0
INDEX_BYTES = 8.0  # int64 token ids, labels, top-k indices


class Flavour(Enum):
    """Whose implementation of the ops is counted: Megatron-LM as Korthikanti et al. count it, or
    Hugging Face transformers as it runs."""

    MEGATRON = "megatron"
    HUGGINGFACE = "huggingface"


DEFAULT_DROPOUT = MappingProxyType({Flavour.MEGATRON: 0.1, Flavour.HUGGINGFACE: 0.0})  # Megatron-LM; Llama

# transformers families whose eager attention runs softmax in the compute dtype (the rest pass
# dtype=torch.float32 and cast back, keeping both): modeling_gpt2.py, modeling_bert.py, modeling_falcon.py
SOFTMAX_IN_COMPUTE_DTYPE = frozenset({"gpt2", "bert", "falcon"})

# transformers activation functions: (saves its input, extra intermediates saved) — e.g. gelu_new is
# 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))) in Python, keeping x, tanh(·), 0.5·x and 1 + tanh(·);
# ReLU keeps only its output (which the next matmul keeps anyway). Unknown names count as silu.
HF_ACTIVATION_TENSORS = MappingProxyType({
    "silu": (True, 0), "swish": (True, 0), "gelu": (True, 0), "gelu_pytorch_tanh": (True, 0), "gelu_new": (True, 3),
    "gelu_python_tanh": (True, 3), "gelu_fast": (True, 6), "quick_gelu": (True, 1), "relu": (False, 0)})


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivationSetup:
    """One micro-batch of ``micro_batch`` sequences of ``seq`` tokens, and how it is laid out and computed.

    ``act_bytes``: the compute dtype (2 for bf16/fp16, 4 for fp32). ``hidden_dropout`` / ``attention_dropout``
    default to the flavour's (``DEFAULT_DROPOUT``); only whether they are > 0 matters. ``dropout_mask_bytes``:
    1 on GPUs (``native_dropout`` keeps a bool mask); PyTorch's CPU dropout keeps a compute-dtype mask.
    """

    seq: int
    micro_batch: int
    flavour: Flavour
    act_bytes: float = 2.0
    tp: int = 1
    cp: int = 1
    sp: bool = False
    recompute: Recompute = Recompute.NONE
    attention: AttentionImpl = AttentionImpl.FLASH
    hidden_dropout: float | None = None
    attention_dropout: float | None = None
    dropout_mask_bytes: float = 1.0

    def __post_init__(self) -> None:
        require_positive("seq", self.seq, fix="give the sequence length in tokens, e.g. --seq 4096")
        require_positive("micro_batch", self.micro_batch, fix="give sequences per micro-batch, e.g. 1")
        require_positive("act_bytes", self.act_bytes, fix="use 2 for bf16/fp16 activations, 4 for fp32")
        require_positive("dropout_mask_bytes", self.dropout_mask_bytes, fix="use 1 (bool mask)")
        for name in ("tp", "cp"):
            if getattr(self, name) < 1:
                raise SpecError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("hidden_dropout", "attention_dropout"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                raise SpecError(f"{name} must be in [0, 1), got {value}; use 0 for no dropout")

    @property
    def has_hidden_dropout(self) -> bool:
        return (DEFAULT_DROPOUT[self.flavour] if self.hidden_dropout is None else self.hidden_dropout) > 0

    @property
    def has_attention_dropout(self) -> bool:
        return (DEFAULT_DROPOUT[self.flavour] if self.attention_dropout is None else self.attention_dropout) > 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivationBreakdown:
    """Bytes saved for backward on one GPU for one micro-batch.

    ``per_layer_bytes`` follows ``spec.layers`` (sum a slice for a pipeline stage); ``embedding_bytes`` sits
    on the first stage, ``head_bytes`` on the last. ``components`` sums every layer, embedding and head by
    component. ``transient_bytes`` is workspace beside the saved bytes during backward (not saved, not in
    ``total_bytes``): ``logits`` at the head, ``recompute`` for one re-materialised block.
    """

    per_layer_bytes: tuple[float, ...]
    embedding_bytes: float
    head_bytes: float
    components: Mapping[str, float]
    transient_bytes: Mapping[str, float]

    @property
    def layers_bytes(self) -> float:
        return sum(self.per_layer_bytes)

    @property
    def total_bytes(self) -> float:
        return self.layers_bytes + self.embedding_bytes + self.head_bytes

    @property
    def peak_extra_bytes(self) -> float:
        """The larger transient: the two do not coexist (the logits gradient is consumed before any block's
        backward pass starts)."""
        return max(self.transient_bytes.values(), default=0.0)


# --- shapes --------------------------------------------------------------------------------------------------


def _tokens(s: ActivationSetup, lift: Lift[Num]) -> Num:
    """Token positions on this GPU: b·s/cp."""
    return lift(s.micro_batch, "micro_batch") * lift(s.seq, "seq") / lift(s.cp, "cp")


def _region_tokens(s: ActivationSetup, lift: Lift[Num]) -> Num:
    """Tokens of a tensor outside the TP-split matmuls: replicated on every TP rank, or 1/tp of them with
    sequence parallelism (Korthikanti et al. 2022 §4.2.2)."""
    tokens = _tokens(s, lift)
    return tokens / lift(s.tp, "tp") if s.sp else tokens


def _act(s: ActivationSetup, lift: Lift[Num]) -> Num:
    return lift(s.act_bytes, "act_bytes")


def norm_bytes_per_token(kind: NormKind, size: Num, s: ActivationSetup, lift: Lift[Num], rows: float = 1.0) -> Num:
    """What a norm over ``size`` channels per token, in ``rows`` rows (heads, for per-head q/k norms), saves.
    MEGATRON: its input. HUGGINGFACE RMSNorm: the fp32 copy of the input, the fp32 1/rms per row, the
    normalised tensor (kept by the weight multiply); LayerNorm: the input, fp32 mean and 1/std per row."""
    act = _act(s, lift)
    if s.flavour is Flavour.MEGATRON:
        return act * size
    if kind is NormKind.RMS_NORM:
        return FP32_BYTES * size + act * size + FP32_BYTES * rows
    return act * size + 2 * FP32_BYTES * rows


def _norm(norm: Norm, s: ActivationSetup, lift: Lift[Num]) -> Num:
    return norm_bytes_per_token(norm.kind, lift(norm.size, "norm_size"), s, lift)


# --- attention -----------------------------------------------------------------------------------------------


def _kv_heads_per_rank(a: Attention, s: ActivationSetup, lift: Lift[Num]) -> Num:
    """K/V heads this rank keeps: all query heads when eager attention repeats them (transformers'
    ``repeat_kv``, Megatron's unfused path), else num_kv_heads/tp, at least one (replicated when tp exceeds
    them). transformers' SDPA reads GQA K/V directly when no padding mask is passed (assumed here)."""
    if s.attention is AttentionImpl.EAGER:
        return lift(a.num_heads, "num_heads") / lift(s.tp, "tp")
    return lift(max(a.num_kv_heads / s.tp, 1.0), "kv_heads_per_rank")


def score_bytes_per_element(model_type: str, s: ActivationSetup, lift: Lift[Num]) -> Num:
    """Bytes per query-key pair of eager attention: the softmax output (fp32 where transformers upcasts it);
    with attention dropout its mask and output, else transformers' compute-dtype copy of an fp32 softmax.
    MEGATRON with dropout: 2 + 1 + 2 = 5 bytes in fp16, the paper's 5as²b."""
    act = _act(s, lift)
    upcast = s.flavour is Flavour.HUGGINGFACE and model_type not in SOFTMAX_IN_COMPUTE_DTYPE
    softmax = lift(FP32_BYTES, "fp32_bytes") if upcast else act
    if s.has_attention_dropout:
        return softmax + lift(s.dropout_mask_bytes, "mask_bytes") + act
    if upcast and s.act_bytes != FP32_BYTES:
        return softmax + act
    return softmax


def attention_core_bytes(a: Attention, model_type: str, s: ActivationSetup, lift: Lift[Num]) -> dict[str, Num]:
    """What SELECTIVE recompute drops. EAGER: S² scores per head (every query against all S keys; masking
    does not shrink the matrix). SDPA/FLASH: only the fp32 log-sum-exp per query row and head (Dao et al.
    2022, arXiv:2205.14135); their output is the output projection's input, counted there."""
    heads = lift(a.num_heads, "num_heads") / lift(s.tp, "tp")
    tokens = _tokens(s, lift)
    if s.attention is AttentionImpl.EAGER:
        keys = lift(s.seq, "seq")
        return {"attention_scores": tokens * heads * keys * score_bytes_per_element(model_type, s, lift)}
    return {"softmax_stats": tokens * heads * FP32_BYTES}


def attention_bytes(a: Attention, hidden_size: int, model_type: str, s: ActivationSetup,
                    lift: Lift[Num]) -> dict[str, Num]:
    """The QKV input (shared by the q/k/v projections), Q and K after RoPE, V, q/k norms, MLA latents, the
    attention core, and the output projection's input."""
    tokens, act, tp = _tokens(s, lift), _act(s, lift), lift(s.tp, "tp")
    heads, kv_heads = lift(a.num_heads, "num_heads") / tp, _kv_heads_per_rank(a, s, lift)
    d, dv = lift(a.head_dim, "head_dim"), lift(a.v_head_dim, "v_head_dim")
    parts: dict[str, Num] = {
        "attention_input": _region_tokens(s, lift) * lift(hidden_size, "hidden_size") * act,
        "qkv": tokens * act * (heads * d + kv_heads * (d + dv)),
    }
    if a.qk_norm is not None:
        parts["qk_norm"] = tokens * _qk_norm_per_token(a, s, lift)
    if a.mla is not None:
        parts["mla_latents"] = _region_tokens(s, lift) * _mla_latents_per_token(a.mla, s, lift)
    parts.update(attention_core_bytes(a, model_type, s, lift))
    parts["attention_output"] = tokens * heads * dv * act
    return parts


def _qk_norm_per_token(a: Attention, s: ActivationSetup, lift: Lift[Num]) -> Num:
    """RMSNorms on q and on k (before any GQA repeat): per head over head_dim (Qwen3, Gemma 3), or one over
    each whole projection (OLMo 2)."""
    q_heads, k_heads = a.num_heads / s.tp, max(a.num_kv_heads / s.tp, 1.0)
    d = lift(a.head_dim, "head_dim")
    rms = NormKind.RMS_NORM
    if a.qk_norm is QkNormKind.PER_HEAD:
        return norm_bytes_per_token(rms, d * (q_heads + k_heads), s, lift, rows=q_heads + k_heads)
    return norm_bytes_per_token(rms, d * q_heads, s, lift) + norm_bytes_per_token(rms, d * k_heads, s, lift)


def _mla_latents_per_token(mla: Mla, s: ActivationSetup, lift: Lift[Num]) -> Num:
    """DeepSeek MLA (arXiv:2405.04434 §2.1): each latent's RMSNorm and the up-projection's input."""
    ranks = [lift(mla.kv_lora_rank, "kv_lora_rank")]
    if mla.q_lora_rank is not None:
        ranks.append(lift(mla.q_lora_rank, "q_lora_rank"))
    parts = [norm_bytes_per_token(NormKind.RMS_NORM, r, s, lift) + r * _act(s, lift) for r in ranks]
    return sum(parts[1:], parts[0])


# --- feed-forward --------------------------------------------------------------------------------------------


def mlp_intermediate_tensors(mlp: Mlp, flavour: Flavour) -> int:
    """Intermediate-width tensors an MLP saves per token. MEGATRON: plain = GeLU input and output (the
    paper's 8sbh + 8sbh at i = 4h); gated = the fused [gate | up] output (2) and the SwiGLU output.
    HUGGINGFACE: the activation's input and extras (``HF_ACTIVATION_TENSORS``), its output, and for a gated
    MLP the up output and the product (SwiGLU: 4)."""
    if flavour is Flavour.MEGATRON:
        return 3 if mlp.gated else 2
    saves_input, extras = HF_ACTIVATION_TENSORS.get(mlp.activation, (True, 0))
    activation = int(saves_input) + extras + 1
    return activation + 2 if mlp.gated else activation


def mlp_bytes(mlp: Mlp, s: ActivationSetup, lift: Lift[Num], *, tokens: Num) -> Num:
    """One MLP's intermediates over ``tokens`` rows, the width split tp ways."""
    width = lift(mlp.intermediate_size, "intermediate_size") / lift(s.tp, "tp")
    return tokens * width * _act(s, lift) * mlp_intermediate_tensors(mlp, s.flavour)


def moe_bytes(moe: Moe, hidden_size: int, s: ActivationSetup, lift: Lift[Num]) -> dict[str, Num]:
    """Router: fp32 scores over the experts, top-k indices (int64) and weights (fp32) per token. Each of the
    tokens·top_k slots: the dispatched input copy, the expert's intermediates, the expert output kept for the
    routing-weight multiply, the weight. Shared experts: a dense MLP over every token (Qwen2-MoE's gate adds
    its sigmoid and the shared output)."""
    region, act, h = _region_tokens(s, lift), _act(s, lift), lift(hidden_size, "hidden_size")
    top_k = lift(moe.top_k, "top_k")
    slots = _tokens(s, lift) * top_k
    parts: dict[str, Num] = {
        "router": region * (lift(moe.num_experts, "num_experts") * FP32_BYTES + top_k * (INDEX_BYTES + FP32_BYTES)),
        "experts": region * top_k * (2 * h * act + FP32_BYTES) + mlp_bytes(moe.expert, s, lift, tokens=slots),
    }
    if moe.shared is not None:
        shared = mlp_bytes(moe.shared, s, lift, tokens=_tokens(s, lift))
        parts["shared_experts"] = shared + region * (h * act + FP32_BYTES) if moe.shared_gate else shared
    return parts


def ffn_bytes(layer: Layer, hidden_size: int, s: ActivationSetup, lift: Lift[Num]) -> dict[str, Num]:
    """The MLP (or MoE) input, unless a parallel block feeds it the attention input, and its intermediates."""
    parts: dict[str, Num] = {}
    if not (layer.parallel and len(layer.norms) < 2):
        parts["mlp_input"] = _region_tokens(s, lift) * lift(hidden_size, "hidden_size") * _act(s, lift)
    if isinstance(layer.ffn, Moe):
        parts.update(moe_bytes(layer.ffn, hidden_size, s, lift))
    else:
        parts["mlp"] = mlp_bytes(layer.ffn, s, lift, tokens=_tokens(s, lift))
    return parts


# --- one block, embedding, head ------------------------------------------------------------------------------


def layer_activation_bytes(layer: Layer, hidden_size: int, model_type: str, s: ActivationSetup,
                           lift: Lift[Num]) -> dict[str, Num]:
    """Bytes one block saves for backward, by component, for one micro-batch on one GPU."""
    h, act = lift(hidden_size, "hidden_size"), _act(s, lift)
    if s.recompute is Recompute.FULL:
        return {"layer_input": _region_tokens(s, lift) * h * act}
    region = _region_tokens(s, lift)
    norms = [region * _norm(norm, s, lift) for norm in layer.norms]
    parts: dict[str, Num] = {"norms": sum(norms[1:], norms[0])} if norms else {}
    parts.update(attention_bytes(layer.attention, hidden_size, model_type, s, lift))
    if s.recompute is Recompute.SELECTIVE:
        parts = {k: v for k, v in parts.items() if k not in ("attention_scores", "softmax_stats")}
    parts.update(ffn_bytes(layer, hidden_size, s, lift))
    if s.has_hidden_dropout:  # after the attention output projection and after the MLP
        parts["dropout_masks"] = 2 * region * h * lift(s.dropout_mask_bytes, "mask_bytes")
    return parts


def embedding_activation_bytes(spec: ModelSpec, s: ActivationSetup, lift: Lift[Num]) -> dict[str, Num]:
    """First stage, outside the blocks: the embedding dropout mask (Korthikanti §4.3); HUGGINGFACE also keeps
    the int64 token (and position) ids of the lookups, RoPE's cos/sin tables (once, shared by all blocks),
    and BERT's embedding norm."""
    parts: dict[str, Num] = {}
    region, h = _region_tokens(s, lift), lift(spec.hidden_size, "hidden_size")
    if s.has_hidden_dropout:
        parts["embedding_dropout_mask"] = region * h * lift(s.dropout_mask_bytes, "mask_bytes")
    if s.flavour is Flavour.HUGGINGFACE:
        positions = lift(s.seq, "seq") / lift(s.cp, "cp")
        parts["token_ids"] = _tokens(s, lift) * INDEX_BYTES
        if spec.position is PositionKind.LEARNED:
            parts["position_ids"] = positions * INDEX_BYTES
        if spec.position is PositionKind.ROTARY:
            parts["rope_tables"] = 2 * positions * _rope_dim(spec, lift) * _act(s, lift)
    if spec.embedding_norm is not None:
        parts["norms"] = region * _norm(spec.embedding_norm, s, lift)
    return parts


def _rope_dim(spec: ModelSpec, lift: Lift[Num]) -> Num:
    a = spec.layers[0].attention
    return lift(a.mla.qk_rope_head_dim if a.mla is not None else a.head_dim, "rope_dim")


def head_activation_bytes(spec: ModelSpec, s: ActivationSetup, lift: Lift[Num]) -> dict[str, Num]:
    """Last stage: the final norm, the LM head's input, and the fp32 probabilities cross-entropy keeps:
    b·s·V·4 (``ForCausalLMLoss`` upcasts the logits and log_softmax keeps its fp32 output; Megatron's
    vocab-parallel cross-entropy keeps its 1/tp slice: the paper's 4sbv/t). The compute-dtype logits are
    not saved. HUGGINGFACE also keeps the int64 labels."""
    parts: dict[str, Num] = {}
    region, act = _region_tokens(s, lift), _act(s, lift)
    if spec.final_norm is not None:
        parts["norms"] = region * _norm(spec.final_norm, s, lift)
    if spec.lm_head:
        parts["lm_head_input"] = region * lift(spec.hidden_size, "hidden_size") * act
        parts["logits"] = _tokens(s, lift) * _vocab_per_rank(spec, s, lift) * FP32_BYTES
        if s.flavour is Flavour.HUGGINGFACE:
            parts["labels"] = _tokens(s, lift) * INDEX_BYTES
    return parts


def _vocab_per_rank(spec: ModelSpec, s: ActivationSetup, lift: Lift[Num]) -> Num:
    """Megatron splits the vocabulary tp ways; transformers gathers the full logits on every rank."""
    vocab = lift(spec.vocab_size, "vocab_size")
    return vocab / lift(s.tp, "tp") if s.flavour is Flavour.MEGATRON else vocab


# --- transients and totals -----------------------------------------------------------------------------------


def transient_bytes(spec: ModelSpec, s: ActivationSetup) -> dict[str, float]:
    """Workspace beside the saved bytes. ``logits``: the compute-dtype logits returned to the caller plus
    one fp32 logits-sized buffer (the upcast copy, then the logits gradient). ``recompute``: one block
    re-materialised during its backward pass (FULL: all of it; SELECTIVE: its attention core)."""
    parts: dict[str, float] = {}
    if spec.lm_head:
        parts["logits"] = _tokens(s, plain) * _vocab_per_rank(spec, s, plain) * (s.act_bytes + FP32_BYTES)
    if s.recompute is not Recompute.NONE:
        parts["recompute"] = max(_recomputed(layer, spec, s) for layer, _ in spec.layer_groups())
    return parts


def _recomputed(layer: Layer, spec: ModelSpec, s: ActivationSetup) -> float:
    if s.recompute is Recompute.FULL:
        return sum(layer_activation_bytes(layer, spec.hidden_size, spec.model_type,
                                          replace(s, recompute=Recompute.NONE), plain).values())
    return sum(attention_core_bytes(layer.attention, spec.model_type, s, plain).values())


def model_activations(spec: ModelSpec, s: ActivationSetup) -> ActivationBreakdown:
    """Per-layer, embedding and head bytes of the whole model for one micro-batch on one GPU."""
    components: dict[str, float] = {}
    per_group: dict[Layer, float] = {}
    for layer, count in spec.layer_groups():
        parts = layer_activation_bytes(layer, spec.hidden_size, spec.model_type, s, plain)
        per_group[layer] = sum(parts.values())
        _accumulate(components, parts, count)
    embedding = embedding_activation_bytes(spec, s, plain)
    head = head_activation_bytes(spec, s, plain)
    _accumulate(components, embedding, 1)
    _accumulate(components, head, 1)
    return ActivationBreakdown(per_layer_bytes=tuple(per_group[layer] for layer in spec.layers),
                               embedding_bytes=sum(embedding.values()), head_bytes=sum(head.values()),
                               components=components, transient_bytes=transient_bytes(spec, s))


def _accumulate(into: dict[str, float], parts: Mapping[str, float], count: int) -> None:
    for name, value in parts.items():
        into[name] = into.get(name, 0.0) + value * count


def activation_bytes(spec: ModelSpec, *, seq: int, micro_batch: int, flavour: Flavour, act_bytes: float = 2.0,
                     tp: int = 1, cp: int = 1, sp: bool = False, recompute: Recompute = Recompute.NONE,
                     attention: AttentionImpl = AttentionImpl.FLASH, hidden_dropout: float | None = None,
                     attention_dropout: float | None = None,
                     dropout_mask_bytes: float = 1.0) -> ActivationBreakdown:
    """Activation bytes saved for backward on one GPU for one micro-batch (see ``ActivationSetup``)."""
    setup = ActivationSetup(seq=seq, micro_batch=micro_batch, flavour=flavour, act_bytes=act_bytes, tp=tp, cp=cp,
                            sp=sp, recompute=recompute, attention=attention, hidden_dropout=hidden_dropout,
                            attention_dropout=attention_dropout, dropout_mask_bytes=dropout_mask_bytes)
    return model_activations(spec, setup)


def activation_dtype_bytes(precision: PrecisionMode) -> float:
    """Bytes per saved activation element: 4 in fp32 training, else 2 (bf16/fp16; FP8 recipes keep
    bf16 activations between their fp8 matmuls)."""
    return FP32_BYTES if precision is PrecisionMode.FP32 else 2.0


def job_setup(job: TrainingJob, layout: Layout, *, flavour: Flavour = Flavour.MEGATRON,
              hidden_dropout: float | None = None, attention_dropout: float | None = None) -> ActivationSetup:
    """The activation setup of a training job under a layout."""
    return ActivationSetup(seq=job.seq, micro_batch=layout.micro_batch, flavour=flavour,
                           act_bytes=activation_dtype_bytes(job.precision), tp=layout.tp, cp=layout.cp,
                           sp=layout.sp, recompute=layout.recompute, attention=job.attention,
                           hidden_dropout=hidden_dropout, attention_dropout=attention_dropout)


def stage_activation_bytes(spec: ModelSpec, job: TrainingJob, layout: Layout, layers: Sequence[int], *,
                           first: bool, last: bool, flavour: Flavour = Flavour.MEGATRON,
                           hidden_dropout: float | None = None, attention_dropout: float | None = None) -> float:
    """Bytes one micro-batch leaves saved on a GPU of the pipeline stage holding ``layers`` (plus the
    embedding on the first stage, the head on the last). The caller multiplies by micro-batches in flight."""
    setup = job_setup(job, layout, flavour=flavour, hidden_dropout=hidden_dropout,
                      attention_dropout=attention_dropout)
    breakdown = model_activations(spec, setup)
    total = sum(breakdown.per_layer_bytes[i] for i in layers)
    if first:
        total += breakdown.embedding_bytes
    if last:
        total += breakdown.head_bytes
    return total


def stage_workspace_bytes(spec: ModelSpec, job: TrainingJob, layout: Layout, *, last: bool,
                          flavour: Flavour = Flavour.MEGATRON) -> float:
    """Transient backward-pass workspace on a stage, beyond what is saved: the logits buffers on the last
    stage, one re-materialised block under recompute; the larger of the two (they do not coexist)."""
    parts = transient_bytes(spec, job_setup(job, layout, flavour=flavour))
    if not last:
        parts.pop("logits", None)
    return max(parts.values(), default=0.0)
