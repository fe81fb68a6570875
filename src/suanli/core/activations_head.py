"""Outside the blocks: what the first pipeline stage keeps at the embeddings, what the last keeps at the final
norm, the LM head and the loss, and the loss's logits-sized workspace per loss implementation (``LossImpl``).

Every loss implementation keeps fp32 probabilities, 4 bytes per token and vocabulary entry (Korthikanti et al.
2022's 4sbv/t for Megatron); they differ in the buffers around them, in bytes per token and vocabulary entry with
``a`` the compute dtype's bytes and ``[a≠4]`` the fp32 upcast a low-precision run makes:

==========================  ==============================  ========================================================
implementation              workspace beside the 4 saved    what it is
==========================  ==============================  ========================================================
TRANSFORMERS                max(a + 4·[a≠4], 8)             ``ForCausalLMLoss`` (``logits.float()``, then
                                                            ``F.cross_entropy``): forward the logits and their fp32
                                                            copy; backward ``nll_loss_backward``'s and
                                                            ``_log_softmax_backward_data``'s fp32 gradients. The HF
                                                            Trainer's ``compute_loss`` returns only the loss, so the
                                                            logits are gone by then: peak 12 in bf16.
TRANSFORMERS_KEEP_LOGITS    max(a + 4·[a≠4], 8 + a)         a loop that holds ``outputs.logits`` through backward
                                                            (``out = model(...); out.loss.backward()``): peak 14.
CHUNKED                     max(a + 4·[a≠4]/n, 8/n)         torchtune ``CEWithChunkedOutputLoss``: the output
                                                            projection and the upcast run per chunk of tokens,
                                                            ``num_output_chunks`` n = 8, all chunks' logits held
                                                            until the loss returns, then ``del logits`` before
                                                            backward: peak 6.5 in bf16.
VOCAB_PARALLEL              a·[a≠4] / tp                    Megatron-LM ``_VocabParallelCrossEntropy``: one fp32
                                                            copy of this rank's vocab slice, turned into the softmax
                                                            in place and saved; backward writes the gradient into
                                                            it in place, then casts it to the compute dtype: peak
                                                            6/tp in bf16.
==========================  ==============================  ========================================================

Checked by replaying allocations op by op (``suanli.measure.activations.measure_peak_bytes``,
``tests/reference/test_activations_measured.py``): transformers 5.23 / torch 2.13, Llama, V = 32,000, 1,024 tokens,
CPU: bf16 peaks 14.09 (logits kept) and 12.09 (dropped), fp32 16.16 and 12.16; torchtune's chunked loss replayed
on the same model 6.59 (bf16) and 8.16 (fp32). Sources: transformers ``loss/loss_utils.py`` (``ForCausalLMLoss``)
and ``Trainer.compute_loss``; torchtune ``torchtune/modules/loss/ce_chunked_output_loss.py``
(``num_output_chunks: int = 8``) and its recipes (``del logits``, "free logits otherwise it peaks backward
memory"); Megatron-LM ``megatron/core/tensor_parallel/cross_entropy.py``. Fused and cut cross-entropy kernels
(Liger, Unsloth, Apple's CCE) never materialise the logits and are not modelled.
"""

from __future__ import annotations

from types import MappingProxyType

from suanli.core.activation_setup import (
    FP32_BYTES,
    INDEX_BYTES,
    ActivationSetup,
    Flavour,
    Lift,
    LossImpl,
    act_num,
    rank_tokens,
    region_tokens,
)
from suanli.core.activations_hf import LOGIT_SOFTCAPPING, hf_embedding_bytes
from suanli.core.activations_norms import dropout_sites, norms_bytes
from suanli.core.activations_peft import frozen_start
from suanli.quantity import Num
from suanli.spec.model import ModelSpec
from suanli.spec.training import Framework

TORCHTUNE_OUTPUT_CHUNKS = 8  # CEWithChunkedOutputLoss(num_output_chunks=8), torchtune 0.3+

#: The loss each framework's training loop runs: DeepSpeed, FSDP and the HF Trainer run transformers' modelling
#: code and its ``ForCausalLMLoss`` (the Trainer drops the logits before backward); Megatron-LM its vocab-parallel
#: cross-entropy. torchtune (``LossImpl.CHUNKED``) has no ``Framework`` member yet.
FRAMEWORK_LOSS = MappingProxyType({Framework.HF: LossImpl.TRANSFORMERS, Framework.DEEPSPEED: LossImpl.TRANSFORMERS,
                                   Framework.FSDP: LossImpl.TRANSFORMERS, Framework.MEGATRON: LossImpl.VOCAB_PARALLEL,
                                   Framework.TORCHTUNE: LossImpl.CHUNKED})


def embedding_activation_bytes(spec: ModelSpec, s: ActivationSetup, lift: Lift[Num]) -> dict[str, Num]:
    """First stage, outside the blocks: the embedding dropout mask (Korthikanti §4.3; HUGGINGFACE where the
    family has one), BERT's embedding norm; HUGGINGFACE also keeps the lookups' int64 ids and RoPE's tables
    (``hf_embedding_bytes``). Frozen embeddings keep no ids, and where no gradient reaches them (a frozen
    model) neither their dropout nor their norm saves anything."""
    parts: dict[str, Num] = {}
    region, h, model_type = region_tokens(s, lift), lift(spec.hidden_size, "hidden_size"), spec.model_type
    grad = not frozen_start(s)
    if s.has_hidden_dropout and dropout_sites(spec.layers[0], model_type, s)[1] and grad:
        parts["embedding_dropout_mask"] = region * h * lift(s.dropout_mask_bytes, "mask_bytes")
    if s.flavour is Flavour.HUGGINGFACE:
        ids = hf_embedding_bytes(spec, s, lift)
        parts.update(ids if s.peft is None else {k: v for k, v in ids.items() if k == "rope_tables"})
    if spec.embedding_norm is not None and grad:
        parts["norms"] = norms_bytes((spec.embedding_norm,), model_type, s, lift)
    return parts


def head_activation_bytes(spec: ModelSpec, s: ActivationSetup, lift: Lift[Num]) -> dict[str, Num]:
    """Last stage: the final norm, the LM head's input (not kept by a frozen head), and what the loss keeps
    (``loss_saved_bytes``: the fp32 probabilities, b·s·V·4, or Megatron's 1/tp slice, the paper's 4sbv/t).
    BERT's pooler keeps the whole last hidden state (its [CLS] slice is a view; not when frozen) and its tanh
    output."""
    parts: dict[str, Num] = {}
    region, act, h = region_tokens(s, lift), act_num(s, lift), lift(spec.hidden_size, "hidden_size")
    if spec.pooler and s.flavour is Flavour.HUGGINGFACE:
        rows = lift(s.micro_batch, "micro_batch")
        parts["pooler"] = (region + rows if s.linears_save_input else rows) * h * act
    if spec.final_norm is not None:
        parts["norms"] = norms_bytes((spec.final_norm,), spec.model_type, s, lift)
    if spec.lm_head:
        if s.linears_save_input:
            parts["lm_head_input"] = region * h * act
        if s.autocast_full:  # torch.autocast: F.linear keeps a compute-dtype copy of the (tied or not) fp32 weight
            parts["autocast_weight_copies"] = lift(spec.vocab_size, "vocab_size") / lift(s.tp, "tp") * h * act
        parts.update(loss_saved_bytes(spec, s, lift))
    return parts


def vocab_per_rank(spec: ModelSpec, s: ActivationSetup, lift: Lift[Num]) -> Num:
    """Megatron's vocab-parallel loss splits the vocabulary tp ways; transformers gathers the full logits on
    every rank."""
    vocab = lift(spec.vocab_size, "vocab_size")
    return vocab / lift(s.tp, "tp") if s.loss_impl is LossImpl.VOCAB_PARALLEL else vocab


def loss_saved_bytes(spec: ModelSpec, s: ActivationSetup, lift: Lift[Num]) -> dict[str, Num]:
    """What the loss keeps for backward: fp32 probabilities per token and vocabulary entry (log-softmax output,
    or Megatron's in-place softmax: the paper's 4sbv/t). HUGGINGFACE also keeps the int64 labels, and Gemma 2's
    tanh soft-cap of the logits. The compute-dtype logits are not saved."""
    tokens, vocab = rank_tokens(s, lift), vocab_per_rank(spec, s, lift)
    parts: dict[str, Num] = {"logits": tokens * vocab * FP32_BYTES}
    if s.flavour is Flavour.HUGGINGFACE:
        parts["labels"] = tokens * INDEX_BYTES
        if spec.model_type in LOGIT_SOFTCAPPING:
            parts["logit_softcap"] = tokens * vocab * act_num(s, lift)
    return parts


def loss_workspace_per_element(impl: LossImpl, act_bytes: float) -> float:
    """Bytes per token and vocabulary entry (of this rank's slice) beside the saved probabilities at the loss's
    peak (module table): the larger of the forward's and the backward's buffers."""
    upcast = FP32_BYTES if act_bytes != FP32_BYTES else 0.0
    if impl is LossImpl.VOCAB_PARALLEL:
        return act_bytes if upcast else 0.0
    if impl is LossImpl.CHUNKED:
        n = TORCHTUNE_OUTPUT_CHUNKS
        return max(act_bytes + upcast / n, 2 * FP32_BYTES / n)
    kept = act_bytes if impl is LossImpl.TRANSFORMERS_KEEP_LOGITS else 0.0
    return max(act_bytes + upcast, 2 * FP32_BYTES + kept)


def loss_workspace_bytes(spec: ModelSpec, s: ActivationSetup) -> float:
    """The loss's transient logits-sized buffers for one micro-batch on one GPU (``loss_workspace_per_element``
    per token and vocabulary entry of this rank)."""
    tokens = s.micro_batch * s.seq / s.cp
    vocab = spec.vocab_size / s.tp if s.loss_impl is LossImpl.VOCAB_PARALLEL else spec.vocab_size
    return tokens * vocab * loss_workspace_per_element(s.loss_impl, s.act_bytes)


__all__ = ["FRAMEWORK_LOSS", "TORCHTUNE_OUTPUT_CHUNKS", "embedding_activation_bytes", "head_activation_bytes",
           "loss_saved_bytes", "loss_workspace_bytes", "loss_workspace_per_element", "vocab_per_rank"]
