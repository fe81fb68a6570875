"""KV-cache bytes: per token per layer, per token, and for a batch of sequences.

Standard attention (MHA, GQA, MQA) caches, for every token and layer, a key of ``head_dim`` and a value of
``v_head_dim`` for each KV head (Kwon et al. 2023, PagedAttention, arXiv:2309.06180 §3; Ainslie et al. 2023,
GQA, arXiv:2305.13245)::

    kv_bytes_per_token_per_layer = kv_heads_per_rank × (bits(head_dim) + bits(v_head_dim)) / 8

where ``bits(w)`` is one cached vector of ``w`` elements in the KV number format: ``w × bits_per_element`` plus
the format's scales, one set per ``block_size`` elements and one per vector (``kv_vector_bits``). bf16/fp16:
16 bits; fp8 e4m3 with a per-tensor scale: 8 (the two scales per layer are left out); int8 with one fp32 scale
per token and head: 8 + 32/w; int4-g128 with a 16-bit scale and zero per group: 4 + 32/128 for w = 128.

Multi-head latent attention (DeepSeek-V2, arXiv:2405.04434 §2.1.2) caches the ``kv_lora_rank`` latent and the
shared ``qk_rope_head_dim`` RoPE key, one vector per token per layer, on every TP rank (``MlaCache.LATENT``,
what vLLM/SGLang/TRT-LLM store); transformers caches the decompressed per-head keys and values instead
(``MlaCache.DECOMPRESSED``). Sliding-window layers (Mistral v0.1, Gemma 2/3 local layers) keep at most
``sliding_window`` tokens, so a sequence of L tokens costs min(L, window) tokens in those layers; Llama 4's
chunked-attention layers likewise keep at most one ``attention_chunk_size`` chunk. DeepSeek-V3.2's lightning
indexer adds one ``index_head_dim`` key per token and layer, on every TP rank (DeepSeek's kernels keep it in
fp8 with a scale; here it takes the KV format like the rest of the cache).

Tensor parallelism splits KV heads: each rank holds num_kv_heads / tp heads, or one head when tp exceeds the
head count (each head is then replicated tp / num_kv_heads times, vLLM's rule).

State-space layers (Mamba-1/2 in Mamba-2, Jamba, Bamba, Nemotron-H) cache no tokens: each sequence keeps a
fixed state per layer, whatever its length (Gu & Dao 2023, arXiv:2312.00752 §3.4; vLLM's ``MambaSpec``):
the last conv_kernel − 1 inputs of the causal conv plus the SSM state::

    Mamba-2: (K − 1) × (I + 2·G·N) + H × P × N elements      Mamba-1: (K − 1) × I + I × N elements
    Gated DeltaNet (Qwen3-Next): (K − 1) × (2·Hk·dk + Hv·dv) + Hv × dk × dv elements
    Short conv (LFM2): (K − 1) × h elements      Lightning attention (MiniMax): H × d × d elements

(I = H·P inner channels, G groups, N state size, P head dim). vLLM keeps both in the model dtype by
default (``mamba_cache_dtype`` / ``mamba_ssm_cache_dtype`` "auto"), splits heads and channels over TP
ranks and replicates B/C groups when n_groups is not a multiple of tp (``extra_groups_for_head_shards``).
Attention layers of hybrid models cache tokens as above; ``kv_cache_bytes`` counts those only and
``ssm_state_bytes`` the states.
"""

from __future__ import annotations

import math

from suanli.errors import LayoutError, SpecError, require_positive
from suanli.spec.engines import MlaCache
from suanli.spec.model import (
    Attention,
    GatedDeltaNet,
    KimiDeltaAttention,
    LightningAttention,
    Mamba2Mixer,
    Mixer,
    ModelSpec,
    ShortConv,
)
from suanli.spec.precision import Family, NumberFormat, parse_number_format, torch_dtype_format

_WEIGHT_ONLY = (Family.GPTQ, Family.AWQ, Family.GGUF_MIX, Family.NF4)


def default_kv_format(spec: ModelSpec) -> NumberFormat:
    """The checkpoint's dtype ("auto"); fp32/fp64 checkpoints are served in bf16 (vLLM's rule for "auto")."""
    fmt = torch_dtype_format(spec.torch_dtype)
    return parse_number_format("bf16") if fmt.bits_per_element > 16 else fmt


def parse_kv_format(name: str | None, spec: ModelSpec) -> NumberFormat:
    """Parse a KV-cache dtype: None or "auto" → the model's dtype; "fp8" → e4m3; "int8", "int4", "q8_0", ...

    Weight-only formats (GPTQ, AWQ, NF4, llama.cpp file mixes) are refused: no engine stores a KV cache in them.
    """
    if name is None or name.strip().lower() == "auto":
        return default_kv_format(spec)
    fmt = parse_number_format(name)
    check_kv_format(fmt)
    return fmt


def check_kv_format(fmt: NumberFormat) -> None:
    if fmt.family in _WEIGHT_ONLY:
        raise SpecError(f"{fmt.key} is a weight-only format; KV caches are stored in bf16, fp16, fp8, int8 or "
                        "int4 (vLLM, SGLang, TRT-LLM) or in q8_0 / q4_0 (llama.cpp); use e.g. --kv-dtype fp8",
                        key="error.core.kv_weight_only_format", fields={"fmt": fmt.key})


def kv_vector_bits(fmt: NumberFormat, width: int) -> float:
    """Bits of one cached vector of ``width`` elements: payload, plus one set of block scales per
    ``block_size`` elements (a group never spans two heads) and any per-vector (per-row) scale."""
    require_positive("cached vector width", width)
    blocks = math.ceil(width / fmt.block_size)
    per_row = sum(o.bits / o.every for o in fmt.overheads if o.per == "output_row")
    return width * fmt.bits_per_element + blocks * fmt.block_overhead_bits + per_row


def kv_heads_per_rank(attention: Attention, tp: int) -> int:
    """KV heads one TP rank caches: num_kv_heads / tp, or 1 when tp is a multiple of num_kv_heads."""
    require_positive("tp", tp)
    heads = attention.num_kv_heads
    if heads % tp == 0:
        return heads // tp
    if tp % heads == 0:
        return 1
    options = sorted({d for d in range(1, heads + 1) if heads % d == 0} | {heads * k for k in (2, 4, 8)})
    choices = "{" + ", ".join(map(str, options)) + "}"
    raise LayoutError(f"num_key_value_heads ({heads}) and tp ({tp}) do not divide one another, so KV heads can "
                      f"be neither split nor replicated evenly; use tp in {choices}",
                      key="error.core.kv_heads_tp", fields={"heads": heads, "tp": tp, "choices": choices})


def kv_bytes_per_token_per_layer(attention: Attention, *, kv_format: NumberFormat, tp: int = 1,
                                 mla: MlaCache = MlaCache.LATENT) -> float:
    """Bytes one token adds to one layer's cache on one TP rank (formula in the module docstring)."""
    check_kv_format(kv_format)
    index = kv_vector_bits(kv_format, attention.indexer.head_dim) / 8 if attention.indexer else 0.0
    if attention.mla is not None and mla is MlaCache.LATENT:
        require_positive("tp", tp)
        return kv_vector_bits(kv_format, attention.mla.kv_lora_rank + attention.mla.qk_rope_head_dim) / 8 + index
    heads = kv_heads_per_rank(attention, tp)
    return heads * (kv_vector_bits(kv_format, attention.head_dim)
                    + kv_vector_bits(kv_format, attention.v_head_dim)) / 8 + index


def kv_bytes_per_token(spec: ModelSpec, *, kv_format: NumberFormat | None = None, tp: int = 1,
                       mla: MlaCache = MlaCache.LATENT) -> float:
    """Bytes one more token adds to the whole cache on one TP rank, while the sequence is shorter than every
    sliding window: the sum over layers. Llama-3.1-8B in bf16: 2 × 8 × 128 × 2 B × 32 layers = 131,072 B."""
    fmt = kv_format or default_kv_format(spec)
    return sum(count * kv_bytes_per_token_per_layer(layer.attention, kv_format=fmt, tp=tp, mla=mla)
               for layer, count in spec.layer_groups()
               if layer.attention is not None and not layer.attention.cross)


def cached_tokens(attention: Attention, tokens_per_seq: float) -> float:
    """Tokens a layer holds for a sequence of ``tokens_per_seq``: min(L, sliding_window) for windowed layers,
    min(L, attention_chunk_size) for Llama 4's chunked layers (the cache never needs more than one chunk; it
    holds the upper bound, as engines that allocate a chunk's pages at once do). mllama's cross-attention
    layers hold none: they cache the image states (tiles × 1601 per image, not modelled here), never text."""
    if attention.cross:
        return 0.0
    window = attention.local_span
    return tokens_per_seq if window is None else min(tokens_per_seq, window)


def kv_cache_bytes(spec: ModelSpec, *, tokens_per_seq: int, batch: int = 1, kv_format: NumberFormat | None = None,
                   tp: int = 1, mla: MlaCache = MlaCache.LATENT, block_size: int = 1) -> float:
    """KV-cache bytes on one TP rank for ``batch`` sequences of ``tokens_per_seq`` tokens::

        Σ_layers batch × ⌈cached_tokens(layer, L) / block_size⌉ × block_size × kv_bytes_per_token_per_layer

    ``block_size`` > 1 rounds each sequence up to whole pages, as paged engines allocate them (vLLM 16,
    TRT-LLM 32 tokens). For a batch of mixed lengths, call once per length and add.
    """
    require_positive("tokens per sequence", tokens_per_seq)
    require_positive("batch", batch)
    require_positive("block_size", block_size)
    fmt = kv_format or default_kv_format(spec)
    total = 0.0
    for layer, count in spec.layer_groups():
        if layer.attention is None:
            continue
        tokens = math.ceil(cached_tokens(layer.attention, tokens_per_seq) / block_size) * block_size
        total += count * tokens * kv_bytes_per_token_per_layer(layer.attention, kv_format=fmt, tp=tp, mla=mla)
    return batch * total


def mean_kv_bytes_per_token(spec: ModelSpec, *, tokens_per_seq: int, kv_format: NumberFormat | None = None,
                            tp: int = 1, mla: MlaCache = MlaCache.LATENT, block_size: int = 1) -> float:
    """KV bytes per token of a sequence of ``tokens_per_seq`` tokens, window caps and page rounding included:
    kv_cache_bytes(L) / L. Equal to ``kv_bytes_per_token`` for models without sliding windows and L a
    multiple of the block size; smaller for Gemma-2/3 and Mistral v0.1 once L exceeds the window."""
    return kv_cache_bytes(spec, tokens_per_seq=tokens_per_seq, kv_format=kv_format, tp=tp, mla=mla,
                          block_size=block_size) / tokens_per_seq


def ssm_state_elements(mixer: Mixer, *, tp: int = 1) -> tuple[float, float]:
    """(conv, ssm) state elements of one sequence in one state-space layer on one TP rank (module
    docstring). Mamba-2 heads and x channels split over tp; the B/C groups split when tp divides n_groups and
    are otherwise replicated, one group per rank at least (vLLM's rule)."""
    require_positive("tp", tp)
    if isinstance(mixer, LightningAttention):  # MiniMax: an H × d × d K·V state per sequence, no conv
        if mixer.num_heads % tp:
            raise LayoutError(f"num_attention_heads ({mixer.num_heads}) is not divisible by tp ({tp}); use a tp "
                              f"that divides {mixer.num_heads}", key="error.core.lightning_heads_tp",
                              fields={"heads": mixer.num_heads, "tp": tp})
        return 0.0, float(mixer.num_heads // tp * mixer.head_dim * mixer.head_dim)
    kernel_tail = mixer.conv_kernel - 1
    if isinstance(mixer, Mamba2Mixer):
        if mixer.num_heads % tp:
            raise LayoutError(f"mamba num_heads ({mixer.num_heads}) is not divisible by tp ({tp}); use a tp that "
                              f"divides {mixer.num_heads}", key="error.core.mamba_state_heads_tp",
                              fields={"heads": mixer.num_heads, "tp": tp})
        heads = mixer.num_heads // tp
        groups = mixer.n_groups // tp if mixer.n_groups % tp == 0 else max(1, mixer.n_groups // tp)
        conv = kernel_tail * (heads * mixer.head_dim + 2 * groups * mixer.d_state)
        return float(conv), float(heads * mixer.head_dim * mixer.d_state)
    if isinstance(mixer, GatedDeltaNet):  # Gated DeltaNet: q, k, v conv tail and an Hv × dk × dv state
        if mixer.num_k_heads % tp:
            raise LayoutError(f"linear_num_key_heads ({mixer.num_k_heads}) is not divisible by tp ({tp}); use a tp "
                              f"that divides {mixer.num_k_heads}", key="error.core.delta_key_heads_tp",
                              fields={"heads": mixer.num_k_heads, "tp": tp})
        return (kernel_tail * mixer.conv_dim / tp,
                mixer.num_v_heads / tp * mixer.head_k_dim * mixer.head_v_dim)
    if isinstance(mixer, KimiDeltaAttention):  # KDA: q, k, v conv tail (3·H·d) and an H × d × d state
        if mixer.num_heads % tp:
            raise LayoutError(f"linear_attn_config num_heads ({mixer.num_heads}) is not divisible by tp ({tp}); "
                              f"use a tp that divides {mixer.num_heads}", key="error.core.kda_heads_tp",
                              fields={"heads": mixer.num_heads, "tp": tp})
        return kernel_tail * mixer.conv_dim / tp, mixer.num_heads / tp * mixer.head_dim * mixer.head_dim
    if isinstance(mixer, ShortConv):  # LFM2: the conv tail only, channels split over tp
        return kernel_tail * mixer.channels / tp, 0.0
    inner = mixer.intermediate_size / tp
    return kernel_tail * inner, inner * mixer.d_state


def ssm_state_bytes_per_layer(mixer: Mixer, *, state_format: NumberFormat, tp: int = 1) -> float:
    """Bytes of one sequence's conv + SSM state in one layer on one TP rank."""
    conv, ssm = ssm_state_elements(mixer, tp=tp)
    return (conv + ssm) * state_format.bits_per_element / 8


def ssm_state_bytes(spec: ModelSpec, *, batch: int = 1, state_format: NumberFormat | None = None,
                    tp: int = 1) -> float:
    """State bytes of ``batch`` sequences over every state-space layer on one TP rank: fixed, independent of
    the sequence length. Codestral-Mamba-7B in bf16 (64 layers, H 128, P 64, N 128, G 8, K 4):
    (3 × (8192 + 2 × 8 × 128) + 128 × 64 × 128) × 2 B × 64 layers = 138,149,888 B per sequence."""
    require_positive("batch", batch)
    fmt = state_format or default_kv_format(spec)
    return batch * sum(count * ssm_state_bytes_per_layer(layer.mixer, state_format=fmt, tp=tp)
                       for layer, count in spec.layer_groups() if layer.mixer is not None)
