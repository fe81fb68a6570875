"""Activation memory of training: the bytes each op saves for the backward pass, for one micro-batch.

Counted per op: every tensor a block keeps for its backward pass, with its dtype and what shards it. Two
flavours name how the framework implements the ops (``Flavour``):

- ``MEGATRON`` counts as Korthikanti et al. 2022 (arXiv:2205.05198 §4) do for a GPT layer in fp16: norm
  inputs, the QKV input, Q, K, the softmax output, the attention-dropout mask (1 byte) and output, V, the
  output-projection input, the MLP input, the GeLU input and output, two residual-dropout masks:
  ``sbh(34 + 5as/h)`` per layer (Table 2). Per-row norm statistics are left out, as in the paper (8 bytes
  per token per norm, < 0.1% for h ≥ 1024). Default dropout 0.1, Megatron-LM's.
- ``HUGGINGFACE`` counts what transformers 5 saves, checked against ``saved_tensors_hooks`` measurements
  of every supported family (``tests/reference/test_activations_measured.py``): RMSNorm keeps an fp32 copy
  of its input, the fp32 1/rms per row and the normalised tensor; eager attention repeats GQA K/V to all
  heads and (Llama family) keeps the fp32 softmax plus its compute-dtype copy; the loss keeps the fp32
  log-softmax of the logits, not the logits. Default dropout 0. Per-family paths (fp32 norm outputs,
  fused projections pinned by V, SDPA masks and math fallbacks, fp32 routers, ``grouped_mm`` expert
  dispatch, soft-capping, where dropout sits) are named tables in ``core/activations_hf.py``.

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

from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from types import MappingProxyType

from suanli.core.activation_setup import (
    DEFAULT_DROPOUT,
    FP32_BYTES,
    INDEX_BYTES,
    ActivationBreakdown,
    ActivationSetup,
    Flavour,
    Lift,
    act_num,
    rank_tokens,
    region_tokens,
)
from suanli.core.activations_hf import (
    HF_ACTIVATION_TENSORS,
    LOGIT_SOFTCAPPING,
    NORM_WEIGHT_PLUS_ONE,
    SOFTMAX_IN_COMPUTE_DTYPE,
    AttentionPath,
    Kernel,
    fused_projection_width,
    hf_attention_path,
    hf_embedding_bytes,
    hf_moe_bytes,
    hf_norm_bytes_per_token,
    hidden_dropout_sites,
)
from suanli.quantity import Num, plain
from suanli.spec.layout import AttentionImpl, Layout, Recompute
from suanli.spec.model import Attention, Layer, Mla, Mlp, ModelSpec, Moe, Norm, NormKind, QkNormKind
from suanli.spec.training import PrecisionMode, TrainingJob

__all__ = [  # the setup types live in core/activation_setup.py, the transformers facts in core/activations_hf.py
    "DEFAULT_DROPOUT", "HF_ACTIVATION_TENSORS", "SOFTMAX_IN_COMPUTE_DTYPE", "ActivationBreakdown", "ActivationSetup",
    "Flavour", "activation_bytes", "activation_dtype_bytes", "attention_bytes", "attention_core_bytes",
    "attention_path", "embedding_activation_bytes", "ffn_bytes", "head_activation_bytes", "job_setup",
    "layer_activation_bytes", "mlp_bytes", "mlp_intermediate_tensors", "model_activations", "moe_bytes",
    "norm_bytes_per_token", "score_bytes_per_element", "stage_activation_bytes", "stage_workspace_bytes",
    "transient_bytes"]

ATTENTION_CORE = ("attention_scores", "softmax_stats", "attention_mask")  # what SELECTIVE recompute drops


def norm_bytes_per_token(kind: NormKind, size: Num, model_type: str, s: ActivationSetup, lift: Lift[Num],
                         rows: float = 1.0) -> Num:
    """What a norm over ``size`` channels per token, in ``rows`` rows (heads, for per-head q/k norms), saves.
    MEGATRON: its input. HUGGINGFACE: ``hf_norm_bytes_per_token`` (RMSNorm: the fp32 input copy, the fp32
    1/rms per row, the normalised tensor; LayerNorm: the input, fp32 mean and 1/std per row)."""
    if s.flavour is Flavour.MEGATRON:
        return act_num(s, lift) * size
    return hf_norm_bytes_per_token(kind, size, act_num(s, lift), rows, model_type)


def _norms(norms: Sequence[Norm], model_type: str, s: ActivationSetup, lift: Lift[Num], *,
           shared_input: bool = False) -> Num:
    """Norms over the region's tokens. ``shared_input``: the norms read one tensor (HUGGINGFACE parallel blocks
    with two norms, GPT-NeoX and Falcon-40B), saved once. Gemma's per-call fp32 ``1 + weight`` copies are
    added once per norm (``NORM_WEIGHT_PLUS_ONE``)."""
    region, hf = region_tokens(s, lift), s.flavour is Flavour.HUGGINGFACE
    parts = [region * norm_bytes_per_token(n.kind, lift(n.size, "norm_size"), model_type, s, lift) for n in norms]
    for i, norm in enumerate(norms[1:] if shared_input and hf else (), start=1):
        parts[i] = parts[i] - region * lift(norm.size, "norm_size") * act_num(s, lift)
    total = sum(parts[1:], parts[0])
    if hf and model_type in NORM_WEIGHT_PLUS_ONE:
        total = total + lift(sum(n.size for n in norms), "norm_weights") * FP32_BYTES
    return total


# --- attention -----------------------------------------------------------------------------------------------


def attention_path(a: Attention, model_type: str, s: ActivationSetup) -> AttentionPath:
    """How the layer's attention runs (``core/activations_hf.py`` for transformers). MEGATRON: EAGER
    materialises scores and keeps K/V at every head (its unfused path), SDPA/FLASH run a fused kernel."""
    if s.flavour is Flavour.HUGGINGFACE:
        return hf_attention_path(a, model_type, s.attention, seq=s.seq, micro_batch=s.micro_batch)
    eager = s.attention is AttentionImpl.EAGER
    return AttentionPath(kernel=Kernel.EAGER if eager else Kernel.FUSED, kv_at_all_heads=eager)


def score_bytes_per_element(model_type: str, s: ActivationSetup, lift: Lift[Num],
                            kernel: Kernel = Kernel.EAGER) -> Num:
    """Bytes per query-key pair of materialised attention: the softmax output (fp32 where transformers
    upcasts it, or in SDPA's math fallback); with attention dropout its mask and output, else transformers'
    compute-dtype copy of an fp32 softmax; Gemma 2's tanh soft-cap output (``LOGIT_SOFTCAPPING``).
    MEGATRON with dropout: 2 + 1 + 2 = 5 bytes in fp16, the paper's 5as²b."""
    act, hf = act_num(s, lift), s.flavour is Flavour.HUGGINGFACE
    upcast = kernel is Kernel.MATH or (hf and model_type not in SOFTMAX_IN_COMPUTE_DTYPE)
    softmax = lift(FP32_BYTES, "fp32_bytes") if upcast else act
    total = softmax + act if hf and model_type in LOGIT_SOFTCAPPING else softmax
    if s.has_attention_dropout:
        return total + lift(s.dropout_mask_bytes, "mask_bytes") + (softmax if kernel is Kernel.MATH else act)
    if upcast and kernel is Kernel.EAGER and s.act_bytes != FP32_BYTES:
        return total + act
    return total


def attention_core_bytes(a: Attention, model_type: str, s: ActivationSetup, lift: Lift[Num]) -> dict[str, Num]:
    """What SELECTIVE recompute drops. Materialised (EAGER, math fallback): S² scores per head (every query
    against all S keys; masking does not shrink the matrix). Fused kernels: only the fp32 log-sum-exp per
    query row and head (Dao et al. 2022, arXiv:2205.14135), and an explicit SDPA mask (b×1×S×S, compute
    dtype: the memory-efficient kernel keeps it as its bias); their output is counted at the projection."""
    heads = lift(a.num_heads, "num_heads") / lift(s.tp, "tp")
    tokens, keys = rank_tokens(s, lift), lift(s.seq, "seq")
    path = attention_path(a, model_type, s)
    if path.kernel is not Kernel.FUSED:
        return {"attention_scores": tokens * heads * keys * score_bytes_per_element(model_type, s, lift, path.kernel)}
    parts = {"softmax_stats": tokens * heads * FP32_BYTES}
    if path.explicit_mask:
        parts["attention_mask"] = tokens * keys * act_num(s, lift)
    return parts


def attention_bytes(a: Attention, hidden_size: int, model_type: str, s: ActivationSetup,
                    lift: Lift[Num]) -> dict[str, Num]:
    """The QKV input (shared by the q/k/v projections), Q and K after RoPE, V, q/k norms, MLA latents, the
    attention core, and the output projection's input."""
    tokens, act, path = rank_tokens(s, lift), act_num(s, lift), attention_path(a, model_type, s)
    parts: dict[str, Num] = {
        "attention_input": region_tokens(s, lift) * lift(hidden_size, "hidden_size") * act,
        "qkv": tokens * _qkv_per_token(a, path, s, lift),
    }
    if a.qk_norm is not None:
        parts["qk_norm"] = tokens * _qk_norm_per_token(a, model_type, s, lift)
        if s.flavour is Flavour.HUGGINGFACE and model_type in NORM_WEIGHT_PLUS_ONE:  # q_norm, k_norm weights
            parts["qk_norm"] = parts["qk_norm"] + 2 * lift(a.head_dim, "head_dim") * FP32_BYTES
    if a.mla is not None:
        parts["mla_latents"] = region_tokens(s, lift) * _mla_latents_per_token(a.mla, model_type, s, lift)
    parts.update(attention_core_bytes(a, model_type, s, lift))
    heads = lift(a.num_heads, "num_heads") / lift(s.tp, "tp")
    parts["attention_output"] = tokens * heads * lift(a.v_head_dim, "v_head_dim") * act
    if path.output_copy:  # the kernel keeps its head-major output, o_proj gets a token-major copy
        parts["attention_output"] = 2 * parts["attention_output"]
    return parts


def _qkv_per_token(a: Attention, path: AttentionPath, s: ActivationSetup, lift: Lift[Num]) -> Num:
    """Q, K and V as the kernel keeps them: K/V at num_kv_heads/tp (at least one, replicated when tp exceeds
    them) or repeated to every query head; V as a view pinning its whole projection output; or, in SDPA's math
    fallback, fp32 copies of all three at every head (the compute-dtype ones are then not kept)."""
    tp = lift(s.tp, "tp")
    heads, d, dv = lift(a.num_heads, "num_heads") / tp, lift(a.head_dim, "head_dim"), lift(a.v_head_dim, "v_head_dim")
    kv_heads = heads if path.kv_at_all_heads else lift(max(a.num_kv_heads / s.tp, 1.0), "kv_heads_per_rank")
    if path.kernel is Kernel.MATH:
        return (heads * d + kv_heads * (d + dv)) * FP32_BYTES
    v = lift(fused_projection_width(a), "fused_width") / tp if path.v_pins_projection else kv_heads * dv
    return act_num(s, lift) * (heads * d + kv_heads * d + v)


def _qk_norm_per_token(a: Attention, model_type: str, s: ActivationSetup, lift: Lift[Num]) -> Num:
    """RMSNorms on q and on k (before any GQA repeat): per head over head_dim (Qwen3, Gemma 3), or one over
    each whole projection (OLMo 2)."""
    q_heads, k_heads = a.num_heads / s.tp, max(a.num_kv_heads / s.tp, 1.0)
    d = lift(a.head_dim, "head_dim")
    rms = NormKind.RMS_NORM
    if a.qk_norm is QkNormKind.PER_HEAD:
        return norm_bytes_per_token(rms, d * (q_heads + k_heads), model_type, s, lift, rows=q_heads + k_heads)
    return (norm_bytes_per_token(rms, d * q_heads, model_type, s, lift)
            + norm_bytes_per_token(rms, d * k_heads, model_type, s, lift))


def _mla_latents_per_token(mla: Mla, model_type: str, s: ActivationSetup, lift: Lift[Num]) -> Num:
    """DeepSeek MLA (arXiv:2405.04434 §2.1): each latent's RMSNorm and the up-projection's input. HUGGINGFACE
    in fp32: the KV norm's input is a slice of kv_a_proj's output (no fp32 copy is made), pinning its RoPE key
    channels too."""
    ranks = [lift(mla.kv_lora_rank, "kv_lora_rank")]
    if mla.q_lora_rank is not None:
        ranks.append(lift(mla.q_lora_rank, "q_lora_rank"))
    parts = [norm_bytes_per_token(NormKind.RMS_NORM, r, model_type, s, lift) + r * act_num(s, lift) for r in ranks]
    if s.flavour is Flavour.HUGGINGFACE and s.act_bytes == FP32_BYTES:
        parts.append(lift(mla.qk_rope_head_dim, "qk_rope_head_dim") * FP32_BYTES)
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
    return tokens * width * act_num(s, lift) * mlp_intermediate_tensors(mlp, s.flavour)


def moe_bytes(moe: Moe, hidden_size: int, model_type: str, s: ActivationSetup, lift: Lift[Num]) -> dict[str, Num]:
    """Router: fp32 scores over the experts, top-k indices (int64) and weights (fp32) per token. Each of the
    tokens·top_k slots: the dispatched input copy, the expert's intermediates, the expert output kept for the
    routing-weight multiply, the weight. Shared experts: a dense MLP over every token (Qwen2-MoE's gate adds
    its sigmoid, fp32 in MEGATRON, and the shared output). HUGGINGFACE router and dispatch: ``hf_moe_bytes``."""
    region, act, h = region_tokens(s, lift), act_num(s, lift), lift(hidden_size, "hidden_size")
    top_k = lift(moe.top_k, "top_k")
    expert_mlp = mlp_bytes(moe.expert, s, lift, tokens=rank_tokens(s, lift) * top_k)
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


def ffn_bytes(layer: Layer, hidden_size: int, model_type: str, s: ActivationSetup,
              lift: Lift[Num]) -> dict[str, Num]:
    """The MLP (or MoE) input, unless a parallel block feeds it the attention input, and its intermediates."""
    parts: dict[str, Num] = {}
    if not (layer.parallel and len(layer.norms) < 2):
        parts["mlp_input"] = region_tokens(s, lift) * lift(hidden_size, "hidden_size") * act_num(s, lift)
    if isinstance(layer.ffn, Moe):
        parts.update(moe_bytes(layer.ffn, hidden_size, model_type, s, lift))
    else:
        parts["mlp"] = mlp_bytes(layer.ffn, s, lift, tokens=rank_tokens(s, lift))
    return parts


# --- one block, embedding, head ------------------------------------------------------------------------------


def layer_activation_bytes(layer: Layer, hidden_size: int, model_type: str, s: ActivationSetup,
                           lift: Lift[Num]) -> dict[str, Num]:
    """Bytes one block saves for backward, by component, for one micro-batch on one GPU."""
    h, act = lift(hidden_size, "hidden_size"), act_num(s, lift)
    if s.recompute is Recompute.FULL:
        return {"layer_input": region_tokens(s, lift) * h * act}
    region = region_tokens(s, lift)
    parts: dict[str, Num] = {}
    if layer.norms:
        shared = layer.parallel and len(layer.norms) == 2
        parts["norms"] = _norms(layer.norms, model_type, s, lift, shared_input=shared)
    parts.update(attention_bytes(layer.attention, hidden_size, model_type, s, lift))
    if s.recompute is Recompute.SELECTIVE:
        parts = {k: v for k, v in parts.items() if k not in ATTENTION_CORE}
    parts.update(ffn_bytes(layer, hidden_size, model_type, s, lift))
    masks = _dropout_sites(layer, model_type, s)[0]
    if s.has_hidden_dropout and masks:  # MEGATRON: after the attention output projection and after the MLP
        parts["dropout_masks"] = masks * region * h * lift(s.dropout_mask_bytes, "mask_bytes")
    return parts


def _dropout_sites(layer: Layer, model_type: str, s: ActivationSetup) -> tuple[int, bool]:
    """(Hidden-dropout masks per block, one at the embeddings): MEGATRON 2 and yes (Korthikanti §4);
    HUGGINGFACE where the family's code applies dropout (``hidden_dropout_sites``)."""
    return (2, True) if s.flavour is Flavour.MEGATRON else hidden_dropout_sites(layer, model_type)


def embedding_activation_bytes(spec: ModelSpec, s: ActivationSetup, lift: Lift[Num]) -> dict[str, Num]:
    """First stage, outside the blocks: the embedding dropout mask (Korthikanti §4.3; HUGGINGFACE where the
    family has one), BERT's embedding norm; HUGGINGFACE also keeps the lookups' int64 ids and RoPE's tables
    (``hf_embedding_bytes``)."""
    parts: dict[str, Num] = {}
    region, h, model_type = region_tokens(s, lift), lift(spec.hidden_size, "hidden_size"), spec.model_type
    if s.has_hidden_dropout and _dropout_sites(spec.layers[0], model_type, s)[1]:
        parts["embedding_dropout_mask"] = region * h * lift(s.dropout_mask_bytes, "mask_bytes")
    if s.flavour is Flavour.HUGGINGFACE:
        parts.update(hf_embedding_bytes(spec, s, lift))
    if spec.embedding_norm is not None:
        parts["norms"] = _norms((spec.embedding_norm,), model_type, s, lift)
    return parts


def head_activation_bytes(spec: ModelSpec, s: ActivationSetup, lift: Lift[Num]) -> dict[str, Num]:
    """Last stage: the final norm, the LM head's input, and the fp32 probabilities cross-entropy keeps:
    b·s·V·4 (``ForCausalLMLoss`` upcasts the logits and log_softmax keeps its fp32 output; Megatron's
    vocab-parallel cross-entropy keeps its 1/tp slice: the paper's 4sbv/t). The compute-dtype logits are
    not saved. HUGGINGFACE also keeps the int64 labels, and Gemma 2's tanh soft-cap of the logits; BERT's
    pooler keeps the whole last hidden state (its [CLS] slice is a view) and its tanh output."""
    parts: dict[str, Num] = {}
    region, act, h = region_tokens(s, lift), act_num(s, lift), lift(spec.hidden_size, "hidden_size")
    if spec.pooler and s.flavour is Flavour.HUGGINGFACE:
        parts["pooler"] = (region + lift(s.micro_batch, "micro_batch")) * h * act
    if spec.final_norm is not None:
        parts["norms"] = _norms((spec.final_norm,), spec.model_type, s, lift)
    if spec.lm_head:
        parts["lm_head_input"] = region * h * act
        parts["logits"] = rank_tokens(s, lift) * _vocab_per_rank(spec, s, lift) * FP32_BYTES
        if s.flavour is Flavour.HUGGINGFACE:
            parts["labels"] = rank_tokens(s, lift) * INDEX_BYTES
            if spec.model_type in LOGIT_SOFTCAPPING:
                parts["logit_softcap"] = rank_tokens(s, lift) * _vocab_per_rank(spec, s, lift) * act
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
        parts["logits"] = rank_tokens(s, plain) * _vocab_per_rank(spec, s, plain) * (s.act_bytes + FP32_BYTES)
    if s.recompute is not Recompute.NONE:
        parts["recompute"] = max(_recomputed(layer, spec, s) for layer, _ in spec.layer_groups())
    return parts


def _recomputed(layer: Layer, spec: ModelSpec, s: ActivationSetup) -> float:
    if s.recompute is Recompute.FULL:
        return sum(layer_activation_bytes(layer, spec.hidden_size, spec.model_type,
                                          replace(s, recompute=Recompute.NONE), plain).values())
    return sum(attention_core_bytes(layer.attention, spec.model_type, s, plain).values())


@lru_cache(maxsize=256)
def model_activations(spec: ModelSpec, s: ActivationSetup) -> ActivationBreakdown:
    """Per-layer, embedding and head bytes of the whole model for one micro-batch on one GPU. Pure over frozen
    inputs, so cached: every pipeline stage of one evaluation asks for the same breakdown."""
    components: dict[str, float] = {}
    per_group: list[float] = []
    for layer, count in spec.layer_groups():
        parts = layer_activation_bytes(layer, spec.hidden_size, spec.model_type, s, plain)
        per_group.append(sum(parts.values()))
        _accumulate(components, parts, count)
    embedding = embedding_activation_bytes(spec, s, plain)
    head = head_activation_bytes(spec, s, plain)
    _accumulate(components, embedding, 1)
    _accumulate(components, head, 1)
    return ActivationBreakdown(per_layer_bytes=tuple(per_group[g] for g in spec.group_of_layers()),
                               embedding_bytes=sum(embedding.values()), head_bytes=sum(head.values()),
                               components=MappingProxyType(components),
                               transient_bytes=MappingProxyType(transient_bytes(spec, s)))


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
    parts = dict(model_activations(spec, job_setup(job, layout, flavour=flavour)).transient_bytes)
    if not last:
        parts.pop("logits", None)
    return max(parts.values(), default=0.0)
