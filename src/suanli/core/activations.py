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
The attention block's terms are in ``core/activations_attention.py``, the MLP's and MoE's in
``core/activations_ffn.py``; this module adds the blocks, embedding and head up per stage.

PEFT methods (``ActivationSetup.peft``) train a frozen model: frozen linears keep no input, frozen norms no
normalised output, nothing before the first adapter is saved, and each adapter keeps what PEFT's ops keep
(``core/activations_peft.py``).

Saved is not peak. Besides what is saved, the backward pass needs transient workspace: the loss's logits-sized
buffers, which depend on how the loss is computed (``LossImpl``, ``core/activations_head.py``), and with recompute
one block's re-materialised activations, plus one linear's weight-shaped temporaries (QLoRA, DoRA)
(``ActivationBreakdown.transient_bytes``). The caller (``core/memory.py``) multiplies stage bytes by the
micro-batches in flight.

Under ``torch.autocast`` (``ActivationSetup.autocast``: ``PrecisionMode.AMP_BF16`` / ``AMP_FP16``, the HF
Trainer's ``--bf16`` / ``--fp16``; HUGGINGFACE, full training) the weights and the residual stream stay fp32 and
only autocast's lower-precision ops (``linear``, ``matmul``, SDPA) run in ``act_bytes``. Measured with
``saved_tensors_hooks`` (``tests/reference/test_amp_activations_measured.py``), each op then keeps:

- ``autocast_weight_copies``: every linear's (``F.linear`` / ``addmm``) compute-dtype copy of its fp32 weight,
  saved for the input gradient: ``act_bytes`` × the layer's matmul weights / tp, per layer, and the LM head's
  (tied or not) on the last stage. Not parameters (new storages), but memory the graph holds until backward.
  torch's cast cache (``autocast_mode.cpp``, ``cached_cast``) shares one copy between calls of one weight
  within the region; each weight is called once per step. Under FULL recompute the blocks save none, but the
  cache holds them all until the forward pass ends (``transient_bytes``, ``autocast_cache``);
- ``autocast_input_copies``: the compute-dtype copy of its fp32 input each linear makes and keeps: separate
  q/k/v (gate/up) linears keep one each of the same normalised input, where the compute-dtype model shares one
  (``FUSED_QKV_PROJECTION``, ``FUSED_GATE_UP_PROJECTION``: one). Linears reading compute-dtype tensors (o_proj,
  down_proj, the MLA up-projections) make no copy;
- norms as in fp32 (``norms_bytes``); RoPE tables in fp32; eager attention's softmax in fp32 (autocast's fp32
  op list) plus its compute-dtype copy for the value matmul; FULL recompute's block input in fp32; K, fp32
  after RoPE, cast from a repeated view at every query head (``_autocast_expands_k``);
- MoE: ``grouped_mm`` is not autocast, so the routed experts run in fp32 on their fp32 weights (no copies);
  the router's linear is autocast, a sigmoid router's scores with it (``hf_moe_bytes``). The MLP
  intermediates, Q/K/V, the attention output and the loss are as in a compute-dtype run.

PEFT under autocast keeps the adapters' model (a compute-dtype frozen base, ``core/activations_peft.py``).

Assumed otherwise: weights and activations in one compute dtype (``act_bytes``); a causal LM trained with
next-token cross-entropy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from types import MappingProxyType

from suanli.core.activation_setup import (
    AUTOCAST_PRECISIONS,
    DEFAULT_DROPOUT,
    DEFAULT_LOSS,
    FP32_BYTES,
    ActivationBreakdown,
    ActivationSetup,
    Flavour,
    Lift,
    LossImpl,
    PeftSetup,
    act_num,
    activation_dtype_bytes,
    region_tokens,
)
from suanli.core.activations_attention import (
    ATTENTION_CORE,
    attention_bytes,
    attention_core_bytes,
    attention_path,
    score_bytes_per_element,
)
from suanli.core.activations_ffn import ffn_bytes, mlp_bytes, mlp_intermediate_tensors, moe_bytes
from suanli.core.activations_head import (
    FRAMEWORK_LOSS,
    embedding_activation_bytes,
    head_activation_bytes,
    loss_workspace_bytes,
)
from suanli.core.activations_hf import (
    FUSED_GATE_UP_PROJECTION,
    FUSED_QKV_PROJECTION,
    HF_ACTIVATION_TENSORS,
    SOFTMAX_IN_COMPUTE_DTYPE,
)
from suanli.core.activations_norms import dropout_sites, norm_bytes_per_token, norms_bytes
from suanli.core.activations_peft import (
    adapter_bytes,
    base_kept_inputs,
    block_grad,
    extra_sequence_tokens,
    frozen_start,
    peft_setup,
    peft_transient_bytes,
)
from suanli.core.activations_ssm import mixer_activation_bytes
from suanli.core.params import attention_params, mixer_params, mlp_params, router_params
from suanli.quantity import Num, plain
from suanli.spec.layout import AttentionImpl, Layout, Recompute
from suanli.spec.model import Layer, Mlp, ModelSpec, Moe
from suanli.spec.training import Framework, PrecisionMode, TrainingJob

__all__ = [  # the setup types live in core/activation_setup.py, the transformers facts in core/activations_hf.py,
    # the attention and feed-forward blocks in core/activations_attention.py and core/activations_ffn.py
    "DEFAULT_DROPOUT", "HF_ACTIVATION_TENSORS", "SOFTMAX_IN_COMPUTE_DTYPE", "ActivationBreakdown", "ActivationSetup",
    "Flavour", "LossImpl", "PeftSetup", "activation_bytes", "activation_dtype_bytes", "attention_bytes",
    "attention_core_bytes", "attention_path", "autocast_cached_weights", "autocast_layer_bytes",
    "embedding_activation_bytes", "ffn_bytes", "head_activation_bytes",
    "job_setup", "layer_activation_bytes", "mlp_bytes", "mlp_intermediate_tensors", "model_activations", "moe_bytes",
    "norm_bytes_per_token", "score_bytes_per_element", "stage_activation_bytes", "stage_workspace_bytes",
    "transient_bytes"]


# --- one block, embedding, head ------------------------------------------------------------------------------


def layer_activation_bytes(layer: Layer, hidden_size: int, model_type: str, s: ActivationSetup,
                           lift: Lift[Num], *, first: bool = False) -> dict[str, Num]:
    """Bytes one block saves for backward, by component, for one micro-batch on one GPU. ``first``: the
    model's first block, where a frozen model's gradients start at the first adapter (``block_grad``)."""
    h, act = lift(hidden_size, "hidden_size"), act_num(s, lift)
    if s.recompute is Recompute.FULL:  # under autocast the residual stream is fp32
        return {"layer_input": region_tokens(s, lift) * h * (FP32_BYTES if s.autocast_full else act)}
    region, grad = region_tokens(s, lift), block_grad(layer, hidden_size, model_type, s, first=first)
    parts: dict[str, Num] = {}
    norms = [n for i, n in enumerate(layer.norms) if (grad.input if i == 0 or layer.parallel else grad.post)]
    if norms:
        shared = layer.parallel and len(norms) == 2
        parts["norms"] = norms_bytes(norms, model_type, s, lift, shared_input=shared)
    if layer.attention is not None:
        parts.update(attention_bytes(layer.attention, hidden_size, model_type, s, lift, grad=grad))
    if layer.mixer is not None and grad.input:  # approximate (core/activations_ssm.py)
        parts.update(mixer_activation_bytes(layer.mixer, hidden_size, s, lift))
    if s.recompute is Recompute.SELECTIVE:
        parts = {k: v for k, v in parts.items() if k not in ATTENTION_CORE}
    parts.update(ffn_bytes(layer, hidden_size, model_type, s, lift, grad=grad))
    masks = dropout_sites(layer, model_type, s)[0]
    if s.has_hidden_dropout and masks and grad.post:  # MEGATRON: after the attention output and after the MLP
        parts["dropout_masks"] = masks * region * h * lift(s.dropout_mask_bytes, "mask_bytes")
    if s.peft is not None:
        kept = base_kept_inputs(layer, model_type, s)
        parts.update(adapter_bytes(layer, hidden_size, model_type, s, lift, kept=kept, grad=grad))
    if s.autocast_full:
        parts.update(autocast_layer_bytes(layer, hidden_size, model_type, s, lift, parts))
    return parts


def autocast_layer_bytes(layer: Layer, hidden_size: int, model_type: str, s: ActivationSetup, lift: Lift[Num],
                         parts: Mapping[str, Num]) -> dict[str, Num]:
    """What ``torch.autocast`` adds to a block (see the module docstring): the compute-dtype copy of every
    linear's fp32 weight (matmul weights, tp-sharded; MoE: the router and the shared experts, with Qwen2-MoE's
    shared-expert gate, not the fp32 routed experts), and one compute-dtype copy of the fp32 block input per
    linear reading it, beyond the ones ``parts`` already counts (``attention_input``, ``mlp_input``)."""
    act, tp = act_num(s, lift), lift(s.tp, "tp")
    a = layer.attention
    if a is not None:
        weights = attention_params(a, hidden_size, lift, matmul_only=True)
    elif layer.mixer is not None:
        weights = mixer_params(layer.mixer, hidden_size, lift, matmul_only=True)
    else:
        weights = 0 * act
    ffn = layer.ffn
    if ffn is None:
        mlp_reads = 0
    elif isinstance(ffn, Moe):  # the routed experts run in fp32 (``grouped_mm`` is not autocast): no copies
        weights = weights + router_params(ffn, hidden_size, lift)
        if ffn.shared is not None:
            weights = weights + mlp_params(ffn.shared, hidden_size, lift, matmul_only=True)
        shared = _up_projections(ffn.shared, model_type) + int(ffn.shared_gate) if ffn.shared is not None else 0
        mlp_reads = 1 + shared
    else:
        weights = weights + mlp_params(ffn, hidden_size, lift, matmul_only=True)
        mlp_reads = _up_projections(ffn, model_type)
    if a is None:
        attention_reads = 1 if layer.mixer is not None else 0  # Mamba's one in_proj
    else:
        attention_reads = 2 if a.mla is not None else 1 if model_type in FUSED_QKV_PROJECTION else 3
    counted = int("attention_input" in parts) + int("mlp_input" in parts)
    extra = attention_reads + mlp_reads - counted
    out: dict[str, Num] = {"autocast_weight_copies": weights / tp * act}
    if extra > 0:
        out["autocast_input_copies"] = lift(extra, "autocast_input_copies") * region_tokens(s, lift) \
            * lift(hidden_size, "hidden_size") * act
    return out


def _up_projections(mlp: Mlp, model_type: str) -> int:
    """Linears reading an MLP's input: gate and up (one fused in ``FUSED_GATE_UP_PROJECTION``), or up."""
    return 2 if mlp.gated and model_type not in FUSED_GATE_UP_PROJECTION else 1


# --- transients and totals -----------------------------------------------------------------------------------


def transient_bytes(spec: ModelSpec, s: ActivationSetup) -> dict[str, float]:
    """Workspace beside the saved bytes. ``logits``: the loss's logits-sized buffers (``loss_workspace_bytes``,
    per ``LossImpl``). ``recompute``: one block re-materialised during its backward pass (FULL: all of it,
    adapters included; SELECTIVE: its attention core). ``weights``: one linear's weight-shaped temporaries
    (``peft_transient_bytes``: QLoRA's dequantized weight, DoRA's column norm). ``autocast_cache``: under
    ``torch.autocast`` with FULL recompute, the blocks' weight copies (``autocast_cached_weights``)."""
    parts: dict[str, float] = {}
    if spec.lm_head:
        parts["logits"] = loss_workspace_bytes(spec, s)
    if s.recompute is not Recompute.NONE:
        parts["recompute"] = max(_recomputed(layer, spec, s) for layer, _ in spec.layer_groups())
    weights = peft_transient_bytes(spec, s)
    if weights:
        parts["weights"] = weights
    if s.autocast_full and s.recompute is Recompute.FULL:
        parts["autocast_cache"] = autocast_cached_weights(spec, s)
    return parts


def autocast_cached_weights(spec: ModelSpec, s: ActivationSetup) -> float:
    """torch.autocast's cast cache (``autocast_mode.cpp``, ``cached_cast``: fp32 leaf tensors that require grad)
    keeps the compute-dtype copy of every weight it cast until the autocast region, the whole forward pass with
    its loss, ends. Under FULL recompute the checkpointed blocks save none of them, yet at the forward's end all
    are alive beside the loss's buffers: every block's ``autocast_weight_copies`` (the whole model's: a
    HUGGINGFACE run has one stage). Measured as the forward peak (``test_amp_activations_measured.py``)."""
    whole = replace(s, recompute=Recompute.NONE)
    return sum(count * float(autocast_layer_bytes(layer, spec.hidden_size, spec.model_type, whole, plain, {})
                             ["autocast_weight_copies"]) for layer, count in spec.layer_groups())


def _recomputed(layer: Layer, spec: ModelSpec, s: ActivationSetup) -> float:
    if s.recompute is Recompute.FULL:
        return sum(layer_activation_bytes(layer, spec.hidden_size, spec.model_type,
                                          replace(s, recompute=Recompute.NONE), plain).values())
    if layer.attention is None:
        return 0.0
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
    per_layer = [per_group[g] for g in spec.group_of_layers()]
    if frozen_start(s) and s.recompute is not Recompute.FULL:  # a frozen model's first block: no gradient yet
        layer = spec.layers[0]
        _accumulate(components, layer_activation_bytes(layer, spec.hidden_size, spec.model_type, s, plain), -1)
        first = layer_activation_bytes(layer, spec.hidden_size, spec.model_type, s, plain, first=True)
        _accumulate(components, first, 1)
        per_layer[0] = sum(first.values())
    embedding = embedding_activation_bytes(spec, s, plain)
    head = head_activation_bytes(spec, s, plain)
    _accumulate(components, embedding, 1)
    _accumulate(components, head, 1)
    return ActivationBreakdown(per_layer_bytes=tuple(per_layer),
                               embedding_bytes=sum(embedding.values()), head_bytes=sum(head.values()),
                               components=MappingProxyType(components),
                               transient_bytes=MappingProxyType(transient_bytes(spec, s)))


def _accumulate(into: dict[str, float], parts: Mapping[str, float], count: int) -> None:
    for name, value in parts.items():
        into[name] = into.get(name, 0.0) + value * count


def activation_bytes(spec: ModelSpec, *, seq: int, micro_batch: int, flavour: Flavour, act_bytes: float = 2.0,
                     tp: int = 1, cp: int = 1, sp: bool = False, recompute: Recompute = Recompute.NONE,
                     attention: AttentionImpl = AttentionImpl.FLASH, hidden_dropout: float | None = None,
                     attention_dropout: float | None = None, dropout_mask_bytes: float = 1.0,
                     loss: LossImpl | None = None, peft: PeftSetup | None = None,
                     autocast: bool = False) -> ActivationBreakdown:
    """Activation bytes saved for backward on one GPU for one micro-batch (see ``ActivationSetup``)."""
    setup = ActivationSetup(seq=seq, micro_batch=micro_batch, flavour=flavour, act_bytes=act_bytes, tp=tp, cp=cp,
                            sp=sp, recompute=recompute, attention=attention, hidden_dropout=hidden_dropout,
                            attention_dropout=attention_dropout, dropout_mask_bytes=dropout_mask_bytes, loss=loss,
                            peft=peft, autocast=autocast)
    return model_activations(spec, setup)


def job_setup(spec: ModelSpec, job: TrainingJob, layout: Layout, *, flavour: Flavour = Flavour.MEGATRON,
              hidden_dropout: float | None = None, attention_dropout: float | None = None) -> ActivationSetup:
    """The activation setup of a training job under a layout: the framework's loss (``FRAMEWORK_LOSS``, unless
    it does not run on this flavour's ops), and for a PEFT method its frozen base and adapters (``peft_setup``;
    prompt tuning lengthens every sequence); ``torch.autocast`` for an AMP precision on the HUGGINGFACE flavour
    (``AUTOCAST_PRECISIONS``; Megatron-LM casts the model itself)."""
    loss = FRAMEWORK_LOSS[job.framework]
    if (loss is LossImpl.VOCAB_PARALLEL) != (flavour is Flavour.MEGATRON):
        loss = DEFAULT_LOSS[flavour]
    return ActivationSetup(seq=job.seq + extra_sequence_tokens(job), micro_batch=layout.micro_batch, flavour=flavour,
                           act_bytes=activation_dtype_bytes(job.precision), tp=layout.tp, cp=layout.cp,
                           sp=layout.sp, recompute=layout.recompute, attention=job.attention,
                           hidden_dropout=hidden_dropout, attention_dropout=attention_dropout, loss=loss,
                           peft=peft_setup(spec, job, flavour=flavour, lora_dropout=job.peft.lora_dropout,
                                           bnb_saves_input=job.peft.bnb_saves_input),
                           autocast=_runs_autocast(job, flavour),
                           fp8_linear_inputs=job.precision is PrecisionMode.FP8 and flavour is Flavour.MEGATRON)


def _runs_autocast(job: TrainingJob, flavour: Flavour) -> bool:
    """Whether the blocks run under ``torch.autocast`` over fp32 weights. Not under FSDP: its mixed precision
    casts the parameters themselves when it gathers them (torch ``MixedPrecision`` / FSDP2
    ``MixedPrecisionPolicy(param_dtype=bfloat16)``, torchtitan's and llm-foundry's FSDP setting), so the
    blocks see compute-dtype weights and inputs and autocast makes and caches no copies; the gathered blocks
    are counted as communication buffers (``core/memory.py``)."""
    return (job.precision in AUTOCAST_PRECISIONS and flavour is Flavour.HUGGINGFACE
            and job.framework is not Framework.FSDP)


def stage_activation_bytes(spec: ModelSpec, job: TrainingJob, layout: Layout, layers: Sequence[int], *,
                           first: bool, last: bool, flavour: Flavour = Flavour.MEGATRON,
                           hidden_dropout: float | None = None, attention_dropout: float | None = None) -> float:
    """Bytes one micro-batch leaves saved on a GPU of the pipeline stage holding ``layers`` (plus the
    embedding on the first stage, the head on the last). The caller multiplies by micro-batches in flight."""
    setup = job_setup(spec, job, layout, flavour=flavour, hidden_dropout=hidden_dropout,
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
    """Transient workspace on a stage, beyond what is saved: the loss's logits-sized buffers on the last stage,
    or one block's (a re-materialised block under recompute plus one linear's weight-shaped temporaries),
    whichever is larger, with autocast's cached weight copies beside the loss's buffers at the forward's end
    (``ActivationBreakdown.peak_extra_bytes``)."""
    parts = dict(model_activations(spec, job_setup(spec, job, layout, flavour=flavour)).transient_bytes)
    if not last:
        parts.pop("logits", None)
    forward_end = parts.get("logits", 0.0) + parts.get("autocast_cache", 0.0)
    return max(forward_end, parts.get("recompute", 0.0) + parts.get("weights", 0.0))
