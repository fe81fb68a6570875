"""Activation memory of one attention block for training: what its ops save for the backward pass.

Per token and per rank (``ActivationSetup``: heads split ``tp`` ways, the sequence ``cp`` ways, the TP
region's inputs replicated unless ``sp``):

- the QKV input, shared by the q/k/v projections (``attention_input``; 1 byte under Transformer Engine's FP8
  linears, ``linear_input_bytes``);
- Q and K after RoPE and V (``qkv``): K/V at ``num_kv_heads/tp`` heads, or at every query head where the
  kernel repeats them (eager attention; ``AttentionPath``), fp32 copies in SDPA's math fallback;
- q/k norms (Qwen3, Gemma 3, OLMo 2), DeepSeek MLA's latent norms and up-projection inputs;
- the attention core, which SELECTIVE recompute drops (``ATTENTION_CORE``): ``S²`` scores per head times
  ``score_bytes_per_element`` where scores are materialised (Korthikanti et al. 2022, arXiv:2205.05198: the
  ``5as²b`` of a GPT layer in fp16 with dropout), or only the fp32 log-sum-exp per query row and head of a
  fused kernel (Dao et al. 2022, arXiv:2205.14135), plus an explicit SDPA mask;
- the output projection's input (``attention_output``), twice where the kernel's head-major output and
  o_proj's token-major copy are both kept.

Prefix tuning's past keys and values join K and V (``prefix_kv``). Split out of ``core/activations.py``, which
adds the blocks up and re-exports these names.
"""

from __future__ import annotations

from suanli.core.activation_setup import (
    FP32_BYTES,
    ActivationSetup,
    Flavour,
    Lift,
    act_num,
    rank_tokens,
    region_tokens,
)
from suanli.core.activations_hf import (
    KV_AT_ALL_HEADS,
    LOGIT_SOFTCAPPING,
    NORM_WEIGHT_PLUS_ONE,
    Q_VIEW_OF_FUSED_PROJECTION,
    SOFTMAX_IN_COMPUTE_DTYPE,
    AttentionPath,
    Kernel,
    fused_projection_width,
    hf_attention_path,
)
from suanli.core.activations_norms import norm_bytes_per_token
from suanli.core.activations_peft import ALL_GRAD, BlockGrad
from suanli.quantity import Num
from suanli.spec.layout import AttentionImpl
from suanli.spec.model import Attention, Mla, NormKind, QkNormKind

ATTENTION_CORE = ("attention_scores", "softmax_stats", "attention_mask")  # what SELECTIVE recompute drops
FP8_BYTES = 1.0  # an e4m3 / e5m2 element


def attention_path(a: Attention, model_type: str, s: ActivationSetup) -> AttentionPath:
    """How the layer's attention runs (``core/activations_hf.py`` for transformers). MEGATRON: EAGER
    materialises scores and keeps K/V at every head (its unfused path), SDPA/FLASH run a fused kernel."""
    if s.flavour is Flavour.HUGGINGFACE:
        return hf_attention_path(a, model_type, s.attention, seq=s.seq, micro_batch=s.micro_batch,
                                 extra_keys=_prefix(s))
    eager = s.attention is AttentionImpl.EAGER
    return AttentionPath(kernel=Kernel.EAGER if eager else Kernel.FUSED, kv_at_all_heads=eager)


def score_bytes_per_element(model_type: str, s: ActivationSetup, lift: Lift[Num],
                            kernel: Kernel = Kernel.EAGER) -> Num:
    """Bytes per query-key pair of materialised attention: the softmax output (fp32 where transformers
    upcasts it, or in SDPA's math fallback); with attention dropout its mask and output, else transformers'
    compute-dtype copy of an fp32 softmax; Gemma 2's tanh soft-cap output (``LOGIT_SOFTCAPPING``).
    MEGATRON with dropout: 2 + 1 + 2 = 5 bytes in fp16, the paper's 5as²b."""
    act, hf = act_num(s, lift), s.flavour is Flavour.HUGGINGFACE
    upcast = kernel is Kernel.MATH or (hf and (model_type not in SOFTMAX_IN_COMPUTE_DTYPE or s.autocast_full))
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
    tokens, keys = rank_tokens(s, lift), lift(s.seq + _prefix(s), "keys")
    path = attention_path(a, model_type, s)
    if path.kernel is not Kernel.FUSED:
        return {"attention_scores": tokens * heads * keys * score_bytes_per_element(model_type, s, lift, path.kernel)}
    parts = {"softmax_stats": tokens * heads * FP32_BYTES}
    if path.explicit_mask:
        parts["attention_mask"] = tokens * keys * act_num(s, lift)
    return parts


def attention_bytes(a: Attention, hidden_size: int, model_type: str, s: ActivationSetup, lift: Lift[Num], *,
                    grad: BlockGrad = ALL_GRAD) -> dict[str, Num]:
    """The QKV input (shared by the q/k/v projections), Q and K after RoPE, V, q/k norms, MLA latents, the
    attention core, and the output projection's input (frozen projections: only what the kernel keeps; none
    of it where no gradient reaches the attention, ``grad``). Prefix tuning's past keys and values join K, V."""
    tokens, act, path = rank_tokens(s, lift), act_num(s, lift), attention_path(a, model_type, s)
    parts: dict[str, Num] = {}
    if s.linears_save_input and grad.input:
        parts["attention_input"] = (region_tokens(s, lift) * lift(hidden_size, "hidden_size")
                                    * linear_input_bytes(s, lift))
    if not grad.attention:
        return parts
    k_at_all_heads = _autocast_expands_k(a, model_type, path, s)
    parts["qkv"] = tokens * _qkv_per_token(a, path, s, lift, k_at_all_heads=k_at_all_heads)
    if _prefix(s):  # K, V are new tensors of seq + n rows; a Q view then pins the whole fused output alone
        kv_heads = a.num_heads if path.kv_at_all_heads else max(a.num_kv_heads, s.tp)
        rows = s.micro_batch * _prefix(s) + (s.micro_batch * s.seq if model_type in Q_VIEW_OF_FUSED_PROJECTION else 0)
        parts["prefix_kv"] = (lift(rows, "prefix_rows") * act
                              * lift(kv_heads / s.tp * (a.head_dim + a.v_head_dim), "kv_width"))
    if a.qk_norm is not None:
        parts["qk_norm"] = tokens * _qk_norm_per_token(a, model_type, s, lift)
        if s.flavour is Flavour.HUGGINGFACE and model_type in NORM_WEIGHT_PLUS_ONE:  # q_norm, k_norm weights
            parts["qk_norm"] = parts["qk_norm"] + 2 * lift(a.head_dim, "head_dim") * FP32_BYTES
    if a.mla is not None:
        parts["mla_latents"] = region_tokens(s, lift) * _mla_latents_per_token(a.mla, model_type, s, lift)
    parts.update(attention_core_bytes(a, model_type, s, lift))
    heads = lift(a.num_heads, "num_heads") / lift(s.tp, "tp")
    output = tokens * heads * lift(a.v_head_dim, "v_head_dim") * act
    if not s.linears_save_input:  # a frozen o_proj keeps nothing: only a fused kernel keeps its output
        return {**parts, "attention_output": output} if path.kernel is Kernel.FUSED else parts
    # the kernel keeps its head-major output, o_proj gets a token-major copy
    parts["attention_output"] = 2 * output if path.output_copy else output
    if s.fp8_linear_inputs:  # the fused kernel keeps its bf16 output; the fp8 o_proj saves its own fp8 cast
        parts["attention_output"] = parts["attention_output"] + output / act * lift(FP8_BYTES, "fp8_bytes")
    return parts


def linear_input_bytes(s: ActivationSetup, lift: Lift[Num]) -> Num:
    """Bytes per element of a tensor that only linears keep. Transformer Engine's FP8 linears (``Linear``,
    ``LayerNormLinear``; Megatron-Core's TE layer spec) cast their input to fp8 for the GEMM and save that cast
    for the weight gradient (TE ``module/linear.py``, ``layernorm_linear.py``: ``save_for_backward`` of the
    quantized input; the LayerNorm kernel writes its output in fp8 directly), so the bf16 tensor is freed:
    1 byte. What other ops keep (norm inputs, Q/K/V, the attention output, the activation's input) stays bf16:
    TE runs attention, norms and activations in bf16 (TE docs, "Using FP8 with Transformer Engine")."""
    return lift(FP8_BYTES, "fp8_bytes") if s.fp8_linear_inputs else act_num(s, lift)


def _prefix(s: ActivationSetup) -> int:
    """Past keys and values prefix tuning adds to every layer."""
    return s.peft.prefix_tokens if s.peft is not None else 0


def _qkv_per_token(a: Attention, path: AttentionPath, s: ActivationSetup, lift: Lift[Num], *,
                   k_at_all_heads: bool = False) -> Num:
    """Q, K and V as the kernel keeps them: K/V at num_kv_heads/tp (at least one, replicated when tp exceeds
    them) or repeated to every query head (K alone with ``k_at_all_heads``); V as a view pinning its whole
    projection output; or, in SDPA's math fallback, fp32 copies of all three at every head (the compute-dtype
    ones are then not kept)."""
    tp = lift(s.tp, "tp")
    heads, d, dv = lift(a.num_heads, "num_heads") / tp, lift(a.head_dim, "head_dim"), lift(a.v_head_dim, "v_head_dim")
    kv_heads = heads if path.kv_at_all_heads else lift(max(a.num_kv_heads / s.tp, 1.0), "kv_heads_per_rank")
    if path.kernel is Kernel.MATH:
        return (heads * d + kv_heads * (d + dv)) * FP32_BYTES
    v = lift(fused_projection_width(a), "fused_width") / tp if path.v_pins_projection else kv_heads * dv
    return act_num(s, lift) * (heads * d + (heads if k_at_all_heads else kv_heads) * d + v)


def _autocast_expands_k(a: Attention, model_type: str, path: AttentionPath, s: ActivationSetup) -> bool:
    """Under ``torch.autocast`` RoPE leaves K in fp32 (fp32 cos/sin), so the kernel's autocast casts the
    ``repeat_kv`` output itself; a cast of a broadcast (stride-0) view allocates every head, so the one K/V
    head that eager's matmul (micro-batch 1) or masked SDPA would keep as a view is saved at every query head
    (V, still in the compute dtype, stays a view). Falcon broadcasts an unrepeated K (``KV_AT_ALL_HEADS``)."""
    masked_mqa = path.explicit_mask and a.num_kv_heads == 1 < a.num_heads
    repeated_view = path.kernel is Kernel.EAGER or (path.kernel is Kernel.FUSED and masked_mqa)
    return (s.autocast_full and repeated_view and not path.kv_at_all_heads and a.rope
            and model_type not in KV_AT_ALL_HEADS)


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
    up_input = act_num(s, lift) if s.linears_save_input else 0.0
    parts = [norm_bytes_per_token(NormKind.RMS_NORM, r, model_type, s, lift) + r * up_input for r in ranks]
    if s.flavour is Flavour.HUGGINGFACE and s.act_bytes == FP32_BYTES:
        parts.append(lift(mla.qk_rope_head_dim, "qk_rope_head_dim") * FP32_BYTES)
    return sum(parts[1:], parts[0])
