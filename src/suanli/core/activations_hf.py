"""What Hugging Face transformers saves for backward, family by family: the facts behind the HUGGINGFACE
flavour of ``core/activations.py``.

Each table names the ``model_type`` values whose transformers modelling code (5.x) takes one path, and says
which code causes it; each was found by reading that code and checked by counting what autograd keeps
(``tests/reference/test_activations_measured.py``). They are facts about code, not fitted numbers.

Kernel choice follows what a CUDA run does. PyTorch SDPA on a GPU takes the flash kernel when no mask is
passed, the memory-efficient one when a mask is (it keeps the mask as its bias), and the math fallback only
when neither applies (query and key/value head counts differ without ``enable_gqa``): that fallback upcasts
q, k, v to fp32 and keeps fp32 S×S probabilities, on every device. Two CPU-only fallbacks are not modelled:
the CPU flash kernel has no dropout and needs equal q/k/v head dims, so SDPA with attention dropout, or
with MLA's shorter value heads (DeepSeek), takes the fp32 math path on a CPU but not on a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from suanli.core.activation_setup import (
    FP32_BYTES,
    INDEX_BYTES,
    ActivationSetup,
    Lift,
    act_num,
    rank_tokens,
    region_tokens,
)
from suanli.quantity import Num
from suanli.spec.layout import AttentionImpl
from suanli.spec.model import Attention, Layer, ModelSpec, Moe, NormKind, PositionKind

# Eager softmax in the compute dtype; the other families pass dtype=torch.float32 and cast back, keeping both
# (modeling_gpt2.py, modeling_bert.py, modeling_falcon.py call softmax without an fp32 dtype).
SOFTMAX_IN_COMPUTE_DTYPE = frozenset({"gpt2", "bert", "falcon"})

# RMSNorm that multiplies by its weight in fp32 and casts afterwards, so the multiply keeps the fp32
# normalised tensor instead of a compute-dtype one: GemmaRMSNorm ``(x * (1 + w.float())).type_as(x)``
# (Gemma, Gemma 2, Gemma 3, their q/k norms too), Olmo2RMSNorm ``(w * x).to(input_dtype)`` (OLMo 3's too).
NORM_WEIGHT_IN_FP32 = frozenset({"gemma", "gemma2", "gemma3_text", "olmo2", "olmo3"})

# GemmaRMSNorm also makes ``1 + weight.float()`` afresh in every call, an fp32 copy of its weight that the
# multiply keeps (per norm and micro-batch, not per token).
NORM_WEIGHT_PLUS_ONE = frozenset({"gemma", "gemma2", "gemma3_text"})

# LayerNorm run on an fp32 copy of its input: OlmoLayerNorm ``F.layer_norm(x.to(torch.float32), …)``.
LAYER_NORM_ON_FP32_COPY = frozenset({"olmo"})

# LayerNorm written out op by op in fp32 (CohereLayerNorm): ``x - mean`` twice (one kept by ``pow``, one by the
# multiply with ``rsqrt``), the normalised tensor (kept by the weight multiply while the weight trains), each fp32
# per channel, and the fp32 1/std per row; plus, once per norm, the fp32 copy of a bf16/fp16 weight.
LAYER_NORM_DECOMPOSED_FP32 = frozenset({"cohere", "cohere2"})

# V stays a view of a projection output that also holds other channels, pinning all of it while V is saved:
# Phi3 ``qkv_proj`` and GPTNeoX ``query_key_value`` (Q and K are re-made by RoPE, V is a slice), DeepSeek's
# MLA ``kv_b_proj`` ([k_nope | v] per head; K is assembled anew). GPT-2's fused c_attn is not listed: its
# q, k and v all stay views, so the one storage is exactly Q + K + V.
V_VIEW_OF_FUSED_PROJECTION = frozenset({"phi3", "gpt_neox", "deepseek_v2", "deepseek_v3"})

# One linear computes Q, K and V (GPT-2 ``c_attn``, Phi-3 ``qkv_proj``, GPT-NeoX and Falcon ``query_key_value``);
# one computes the gate and up projections (Phi-3 ``gate_up_proj``). Under ``torch.autocast`` every linear casts
# its fp32 input to the compute dtype itself and keeps that copy, so separate q/k/v (gate/up) linears keep three
# (two) copies of the same normalised input; a fused one keeps one.
FUSED_QKV_PROJECTION = frozenset({"gpt2", "phi3", "gpt_neox", "falcon"})
FUSED_GATE_UP_PROJECTION = frozenset({"phi3", "glm4"})

# Q, K and V all stay views of one fused projection output: GPT-2's ``c_attn(x).split``. Its storage is exactly
# Q + K + V while all three are saved; once prefix tuning concatenates past keys and values onto K and V, Q alone
# still pins the whole output.
Q_VIEW_OF_FUSED_PROJECTION = frozenset({"gpt2"})

# Q made head-major ([b, heads, s, d] in memory) — by RoPE on a slice of a fused projection (Phi3), by
# ``torch.cat`` (GPTNeoX's and GLM-4's partial rotary, DeepSeek's [q_nope | q_rope]) — where Llama's stays
# token-major.
# Flash kernels (CUDA and CPU) allocate their output like q, so ``attn_output.transpose(1, 2).contiguous()``
# copies it for o_proj while the kernel keeps the original. CUDA's memory-efficient kernel (taken when a mask
# is passed, or value heads are shorter than q/k heads as in DeepSeek's MLA) allocates its output token-major:
# no copy there.
HEAD_MAJOR_QUERY = frozenset({"phi3", "gpt_neox", "deepseek_v2", "deepseek_v3", "glm4"})

# K and V reach every query head whatever the kernel: FalconAttention ``_split_heads`` broadcasts the KV
# groups of the new architecture (Falcon-40B) to all heads; the multi-query layout (Falcon-7B, one K/V head)
# is broadcast by eager's matmul, and SDPA cannot take unequal head counts without ``enable_gqa``, which
# Falcon does not pass, so it falls back to the fp32 math kernel (on GPUs too).
KV_AT_ALL_HEADS = frozenset({"falcon"})

# SDPA always gets an explicit b×1×S×S mask: FalconModel calls ``create_causal_mask(allow_is_causal_skip=
# False)`` so ALiBi can be added to it. (Sliding-window layers get one too once seq ≥ window, any family.)
SDPA_MASK_ALWAYS = frozenset({"falcon"})

# Gemma 2 soft-caps logits with tanh (``attn_logit_softcapping``, ``final_logit_softcapping`` in every
# release): tanh keeps its output, an S×S tensor per head in eager attention and a tokens×vocab one at the head.
LOGIT_SOFTCAPPING = frozenset({"gemma2"})

# Rotary cos/sin tables left in fp32: OlmoRotaryEmbedding / Olmo2RotaryEmbedding return them uncast, and so do
# Olmo3RotaryEmbedding and Ernie4_5RotaryEmbedding (which inherit that ``forward``).
ROPE_TABLES_FP32 = frozenset({"olmo", "olmo2", "olmo3", "ernie4_5"})

# One complex64 rotary table (``freqs_cis`` from torch.polar) instead of cos and sin: DeepseekV2RotaryEmbedding.
ROPE_COMPLEX = frozenset({"deepseek_v2"})

# Two sets of rotary tables, one for sliding-window layers and one for global layers: Gemma3TextModel builds
# ``rotary_emb_local`` (``rope_local_base_freq``) beside ``rotary_emb``; Olmo3RotaryEmbedding one per layer type.
ROPE_TABLE_SETS = MappingProxyType({"gemma3_text": 2, "olmo3": 2})

# Position ids per sequence (b×s int64), not one shared row: OPTDecoder derives them from
# ``cumsum(attention_mask)``.
POSITION_IDS_PER_SEQUENCE = frozenset({"opt"})

# Where hidden dropout sits: (dropouts per block, one on the embeddings). Llama-like families have none;
# Falcon's parallel block has one ``dropout_add`` on the summed branches (two in its sequential layout);
# Seed-OSS drops out the attention and MLP outputs (``residual_dropout``).
HIDDEN_DROPOUT_SITES = MappingProxyType({
    "gpt2": (2, True), "gpt_neox": (2, True), "starcoder2": (2, True), "bert": (2, True), "opt": (2, False),
    "phi3": (2, False), "falcon": (1, False), "seed_oss": (2, False)})

# Routers that run in fp32: DeepseekV2/V3TopkRouter ``F.linear(x.type(float32), weight.type(float32))``
# keeps an fp32 copy of its input and, in a bf16/fp16 model, of its weight (per layer, not per token).
ROUTER_IN_FP32 = frozenset({"deepseek_v2", "deepseek_v3"})

# Routers scoring with a sigmoid of their logits (DeepseekV3TopkRouter ``router_logits.sigmoid()``), not a softmax
# with ``dtype=torch.float32``: under ``torch.autocast`` the logits come out of ``F.linear`` in the compute dtype,
# and so do the scores, their renormalisation and the routing weights (DeepSeek-V2's softmax stays fp32).
SIGMOID_ROUTER = frozenset({"deepseek_v3"})

# Routers that renormalise the top-k weights (``/= sum``: keeps the numerator and the fp32 denominator):
# Mixtral always; Qwen3-MoE and DeepSeek-V3 as their configs ship (``norm_topk_prob`` true), Qwen1.5/2-MoE
# not (false); DeepSeek-V2 never does.
ROUTER_NORMALISES_TOP_K = frozenset({"mixtral", "qwen3_moe", "deepseek_v3"})

# Routing weights cast to the compute dtype (``router_top_value.to(router_logits.dtype)``); others keep fp32.
ROUTING_WEIGHTS_IN_COMPUTE_DTYPE = frozenset({"qwen2_moe", "qwen3_moe"})

# transformers' default experts implementation, ``grouped_mm``, sorts the token·top_k slots by expert and
# keeps three int64 index vectors per slot (gather of the inputs, of the weights, the inverse permutation)
# and the int32 group offsets, one per expert.
GROUPED_MM_INDICES_PER_SLOT = 3
GROUPED_MM_OFFSET_BYTES = 4.0
# ``grouped_mm`` is not an autocast op: transformers casts the dispatched input to the experts' weight dtype
# (``_grouped_mm``: ``input.to(weight.dtype)``), so under ``torch.autocast`` on fp32 weights the experts run and
# save in fp32 and make no compute-dtype weight copies (``ActivationSetup.autocast_full``).

# transformers activation functions: (saves its input, extra intermediates saved) — e.g. gelu_new is
# 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³))) in Python, keeping x, tanh(·), 0.5·x and 1 + tanh(·);
# ReLU keeps only its output (which the next matmul keeps anyway). Unknown names count as silu.
HF_ACTIVATION_TENSORS = MappingProxyType({
    "silu": (True, 0), "swish": (True, 0), "gelu": (True, 0), "gelu_pytorch_tanh": (True, 0), "gelu_new": (True, 3),
    "gelu_python_tanh": (True, 3), "gelu_fast": (True, 6), "quick_gelu": (True, 1), "relu": (False, 0),
    "xielu": (True, 3)})

# Boolean masks an activation keeps, in bytes per element: xIELU (Apertus, arXiv:2411.13010) in transformers'
# Python path, ``where(x > 0, alpha_p·x·x + beta·x, (expm1(min(x, eps)) − x)·alpha_n + beta·x)``, keeps the
# ``x > 0`` mask beside x, alpha_p·x, expm1(·) and expm1(·) − x (its three extras above).
HF_ACTIVATION_MASK_BYTES = MappingProxyType({"xielu": 1.0})


class Kernel(Enum):
    """How one layer's attention runs: materialised scores (eager), a fused kernel keeping per-row softmax
    statistics (flash / memory-efficient), or SDPA's math fallback (fp32 q, k, v and S×S probabilities)."""

    EAGER = "eager"
    FUSED = "fused"
    MATH = "math"


@dataclass(frozen=True, slots=True, kw_only=True)
class AttentionPath:
    """What one layer's attention keeps, beyond its kernel: K/V at every query head, an explicit mask kept by
    the kernel, and V as a view pinning a wider projection output."""

    kernel: Kernel
    kv_at_all_heads: bool
    explicit_mask: bool = False
    v_pins_projection: bool = False
    output_copy: bool = False


def hf_attention_path(a: Attention, model_type: str, attention: AttentionImpl, *, seq: int,
                      micro_batch: int, extra_keys: int = 0) -> AttentionPath:
    """How transformers runs this layer. Eager repeats GQA K/V (``repeat_kv``), except one K/V head at
    micro-batch 1, which matmul broadcasts without a copy; it keeps V as a view only at micro-batch 1 (batch
    and heads then fold without a copy) and only when ``repeat_kv`` did not copy it. SDPA passes an explicit
    mask once a sliding window bites (seq ≥ window), always (``SDPA_MASK_ALWAYS``), or when ``extra_keys``
    (prefix tuning's past keys) make the key length differ from the query length; with a mask, GQA K/V are
    repeated (``use_gqa_in_sdpa`` needs no mask; one K/V head repeats as a view)."""
    falcon = model_type in KV_AT_ALL_HEADS
    multi_query = a.num_kv_heads == 1 < a.num_heads
    broadcast = multi_query and micro_batch == 1  # matmul folds a stride-0 head dim into batch 1 as a view
    fused_view = model_type in V_VIEW_OF_FUSED_PROJECTION
    head_major = model_type in HEAD_MAJOR_QUERY
    if attention is AttentionImpl.EAGER:
        unrepeated = a.num_kv_heads == a.num_heads
        return AttentionPath(kernel=Kernel.EAGER, kv_at_all_heads=not broadcast,
                             v_pins_projection=fused_view and unrepeated and micro_batch == 1)
    if attention is AttentionImpl.FLASH:  # flash-attn: windows, GQA and MQA natively, no mask
        return AttentionPath(kernel=Kernel.FUSED, kv_at_all_heads=falcon and not multi_query,
                             v_pins_projection=fused_view, output_copy=head_major)
    if falcon and multi_query:
        return AttentionPath(kernel=Kernel.MATH, kv_at_all_heads=not broadcast)
    mask = ((a.sliding_window is not None and seq >= a.sliding_window) or model_type in SDPA_MASK_ALWAYS
            or extra_keys > 0)
    repeated = falcon or (mask and not multi_query and a.num_kv_heads < a.num_heads)
    flash = not mask and a.head_dim == a.v_head_dim  # else CUDA takes the memory-efficient kernel
    return AttentionPath(kernel=Kernel.FUSED, kv_at_all_heads=repeated, explicit_mask=mask,
                         v_pins_projection=fused_view and not repeated, output_copy=head_major and flash)


def fused_projection_width(a: Attention) -> int:
    """Channels per token of the projection output V is a view of: MLA's kv_b_proj holds [k_nope | v] per
    head; a fused QKV projection holds q, k and v."""
    if a.mla is not None:
        return a.num_heads * (a.mla.qk_nope_head_dim + a.v_head_dim)
    return a.num_heads * a.head_dim + a.num_kv_heads * (a.head_dim + a.v_head_dim)


def hf_norm_bytes_per_token(kind: NormKind, size: Num, act: Num, rows: float, model_type: str, *,
                            weight_grad: bool = True) -> Num:
    """RMSNorm: the fp32 copy of the input, the fp32 1/rms per row, and, when its weight trains
    (``weight_grad``), the normalised tensor the weight multiply keeps for it (fp32 in ``NORM_WEIGHT_IN_FP32``
    families, else the compute dtype). LayerNorm: its input (an fp32 copy in ``LAYER_NORM_ON_FP32_COPY``) and the
    fp32 mean and 1/std per row, frozen or not (its backward reads them for the input gradient)."""
    if kind is NormKind.RMS_NORM:
        if not weight_grad:
            return FP32_BYTES * size + FP32_BYTES * rows
        normalised = FP32_BYTES if model_type in NORM_WEIGHT_IN_FP32 else act
        return FP32_BYTES * size + normalised * size + FP32_BYTES * rows
    if model_type in LAYER_NORM_DECOMPOSED_FP32:
        return (3 if weight_grad else 2) * FP32_BYTES * size + FP32_BYTES * rows
    saved_input = FP32_BYTES if model_type in LAYER_NORM_ON_FP32_COPY else act
    return saved_input * size + 2 * FP32_BYTES * rows


def hidden_dropout_sites(layer: Layer, model_type: str) -> tuple[int, bool]:
    """(Dropout masks per block, whether the embeddings have one) in transformers' code for this family."""
    per_block, embedding = HIDDEN_DROPOUT_SITES.get(model_type, (0, False))
    if model_type == "falcon" and not layer.parallel:
        per_block = 2
    return per_block, embedding


def hf_moe_bytes(moe: Moe, hidden_size: int, model_type: str, s: ActivationSetup, lift: Lift[Num], *,
                 expert_mlp: Num) -> dict[str, Num]:
    """The router: fp32 probabilities and int64 top-k indices per token, an fp32 router's input copy (per
    token) and weight copy (per layer, ``ROUTER_IN_FP32``), a renormalisation's fp32 numerator and
    denominator (``ROUTER_NORMALISES_TOP_K``). ``grouped_mm`` experts keep per token·top_k slot the
    dispatched input, the expert's intermediates (``expert_mlp``, over all slots), the expert output, the
    routing weight (fp32, or the compute dtype in ``ROUTING_WEIGHTS_IN_COMPUTE_DTYPE``) and three int64
    permutation indices; plus int32 offsets, one per expert. Under ``torch.autocast`` (``s.autocast_full``) the
    dispatched input and expert output are fp32 (``expert_mlp`` too: the caller's), and an fp32 router's
    ``F.linear`` is autocast like any other (its input and weight copies are counted with the block's,
    ``autocast_layer_bytes``): a sigmoid router's scores, renormalisation and routing weights are then in the
    compute dtype (``SIGMOID_ROUTER``)."""
    region, act, h = region_tokens(s, lift), act_num(s, lift), lift(hidden_size, "hidden_size")
    top_k, experts = lift(moe.top_k, "top_k"), lift(moe.num_experts, "num_experts")
    fp32_router = model_type in ROUTER_IN_FP32 and s.act_bytes != FP32_BYTES and not s.autocast_full
    scores = act if s.autocast_full and model_type in SIGMOID_ROUTER else lift(FP32_BYTES, "fp32_bytes")
    router = experts * scores + top_k * INDEX_BYTES
    if fp32_router:
        router = router + h * FP32_BYTES
    if model_type in ROUTER_NORMALISES_TOP_K:
        router = router + (top_k + 1) * scores
    weight = act if model_type in ROUTING_WEIGHTS_IN_COMPUTE_DTYPE else scores
    slot = lift(FP32_BYTES, "fp32_bytes") if s.autocast_full else act
    per_slot = 2 * h * slot + weight + GROUPED_MM_INDICES_PER_SLOT * INDEX_BYTES
    return {"router": region * router + experts * h * FP32_BYTES if fp32_router else region * router,
            "experts": region * top_k * per_slot + expert_mlp + experts * GROUPED_MM_OFFSET_BYTES}


def hf_embedding_bytes(spec: ModelSpec, s: ActivationSetup, lift: Lift[Num]) -> dict[str, Num]:
    """The int64 token ids of the lookup, and position ids (one row, or one per sequence in
    ``POSITION_IDS_PER_SEQUENCE``) or RoPE's cos/sin tables (computed once, shared by every block; fp32 in
    ``ROPE_TABLES_FP32``, two sets in ``ROPE_TABLE_SETS``, one complex table in ``ROPE_COMPLEX``)."""
    positions = lift(s.seq, "seq") / lift(s.cp, "cp")
    parts: dict[str, Num] = {"token_ids": rank_tokens(s, lift) * INDEX_BYTES}
    if spec.position is PositionKind.LEARNED:
        rows = rank_tokens(s, lift) if spec.model_type in POSITION_IDS_PER_SEQUENCE else positions
        parts["position_ids"] = rows * INDEX_BYTES
    a = spec.first_attention
    if spec.position is PositionKind.ROTARY and a is not None:
        dim = lift(a.mla.qk_rope_head_dim if a.mla is not None else a.head_dim, "rope_dim")
        fp32 = spec.model_type in ROPE_TABLES_FP32 or s.autocast_full  # autocast: cos/sin follow the fp32 weights
        table = lift(FP32_BYTES, "fp32_bytes") if fp32 else act_num(s, lift)
        if spec.model_type in ROPE_COMPLEX:  # dim/2 complex64 values: dim × 4 bytes per position
            parts["rope_tables"] = positions * dim * FP32_BYTES
        else:
            parts["rope_tables"] = 2 * ROPE_TABLE_SETS.get(spec.model_type, 1) * positions * dim * table
    return parts
