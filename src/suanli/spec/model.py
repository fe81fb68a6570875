"""What a Transformer is, as far as memory, FLOPs and communication are concerned.

A ``ModelSpec`` is a stack of ``Layer``s between an input embedding and an output head. Layers may differ
(DeepSeek's dense first layers, Gemma's alternating local/global attention, Qwen-MoE's ``mlp_only_layers``),
so the spec keeps one ``Layer`` per layer; identical layers are the same frozen object, and
``ModelSpec.layer_groups()`` folds them back into (layer, count) runs for fast arithmetic.

The specs name architecture features, never numeric guesses: GQA is ``num_kv_heads < num_heads``, MLA is an
``Mla`` block, a gated MLP is ``Mlp.gated``. They are built from Hugging Face config.json by the adapters in
``spec/hf.py``; validation happens here, at construction, with errors that name the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from suanli.errors import SpecError, require_positive
from suanli.spec.mixers import (
    GatedDeltaNet,
    KimiDeltaAttention,
    LightningAttention,
    Mamba2Mixer,
    MambaMixer,
    Mixer,
    ShortConv,
)

if TYPE_CHECKING:  # annotations only: these modules build on this one
    from suanli.spec.checkpoint_quant import CheckpointQuant
    from suanli.spec.vision import VisionTower

__all__ = [  # the token mixers (state-space, linear attention) live in spec/mixers.py
    "Attention", "GatedDeltaNet", "Indexer", "KimiDeltaAttention", "Layer", "LightningAttention", "Mamba2Mixer",
    "MambaMixer", "Mixer", "Mla", "Mlp", "ModelSpec", "Moe", "Norm", "NormKind", "PositionKind", "QkNormKind",
    "ShortConv"]


class NormKind(Enum):
    """Normalisation layers, by their parameters: LayerNorm has a weight (and usually a bias) per channel,
    RMSNorm a weight only, and OLMo-1's non-parametric LayerNorm none."""

    LAYER_NORM = "layernorm"
    RMS_NORM = "rmsnorm"
    NON_PARAMETRIC = "layernorm-nonparametric"


class PositionKind(Enum):
    """How positions enter the model: rotary (RoPE, no parameters), a learned table, or ALiBi biases."""

    ROTARY = "rope"
    LEARNED = "learned"
    ALIBI = "alibi"
    NONE = "none"  # state-space models (Mamba) and Jamba: order comes from the recurrence


class QkNormKind(Enum):
    """Where q/k normalisation applies: per head over head_dim (Qwen3, Gemma3) or over the whole projection
    (OLMo-2)."""

    PER_HEAD = "per-head"
    FULL = "full"


@dataclass(frozen=True, slots=True, kw_only=True)
class Norm:
    """One normalisation layer over ``size`` channels."""

    kind: NormKind
    size: int
    bias: bool = False

    def __post_init__(self) -> None:
        require_positive("norm size", self.size)


@dataclass(frozen=True, slots=True, kw_only=True)
class Mla:
    """Multi-head latent attention (DeepSeek-V2, arXiv:2405.04434 §2.1): queries and keys/values pass through
    low-rank latents; the KV cache holds the ``kv_lora_rank`` latent plus one shared RoPE key per token."""

    q_lora_rank: int | None
    kv_lora_rank: int
    qk_rope_head_dim: int
    qk_nope_head_dim: int

    def __post_init__(self) -> None:
        if self.q_lora_rank is not None:
            require_positive("q_lora_rank", self.q_lora_rank)
        require_positive("kv_lora_rank", self.kv_lora_rank)
        require_positive("qk_rope_head_dim", self.qk_rope_head_dim)
        require_positive("qk_nope_head_dim", self.qk_nope_head_dim)


@dataclass(frozen=True, slots=True, kw_only=True)
class Indexer:
    """DeepSeek Sparse Attention's lightning indexer (DeepSeek-V3.2-Exp): ``num_heads`` small query heads of
    ``head_dim`` (from the ``q_rank``-wide query latent) score every earlier token against one cached
    ``head_dim`` index key per token; each query then attends only its ``topk`` best keys."""

    num_heads: int  # HF index_n_heads
    head_dim: int  # HF index_head_dim
    topk: int  # HF index_topk
    q_rank: int  # width of the query latent the index queries are projected from (q_lora_rank)

    def __post_init__(self) -> None:
        require_positive("index_n_heads", self.num_heads)
        require_positive("index_head_dim", self.head_dim)
        require_positive("index_topk", self.topk)
        require_positive("q_lora_rank", self.q_rank)


@dataclass(frozen=True, slots=True, kw_only=True)
class Attention:
    """Self-attention: ``num_heads`` query heads of ``head_dim``, ``num_kv_heads`` key/value heads (MHA when
    equal, GQA when fewer, MQA when one), values of ``v_head_dim`` (differs from head_dim only under MLA)."""

    num_heads: int
    num_kv_heads: int
    head_dim: int
    v_head_dim: int
    qkv_bias: bool = False
    out_bias: bool = False
    qk_norm: QkNormKind | None = None
    sliding_window: int | None = None
    mla: Mla | None = None
    sinks: bool = False  # gpt-oss: one learnable logit per head joins the softmax (num_heads parameters)
    chunk_size: int | None = None  # Llama 4 chunked local attention: queries see only their own chunk
    indexer: Indexer | None = None  # DeepSeek-V3.2 sparse attention: each query attends its top-k keys
    rope: bool = True  # False on NoPE layers (SmolLM3's no_rope_layers, Cohere2 / EXAONE-4 global layers)
    cross: bool = False  # mllama cross-attention: keys/values are projected from the image states, not the text
    output_gate: bool = False  # Qwen3-Next gated attention: q_proj also emits a sigmoid gate per head channel

    def __post_init__(self) -> None:
        require_positive("num_attention_heads", self.num_heads)
        require_positive("num_key_value_heads", self.num_kv_heads)
        require_positive("head_dim", self.head_dim)
        require_positive("v_head_dim", self.v_head_dim)
        if self.num_heads % self.num_kv_heads:
            raise SpecError(
                f"num_attention_heads ({self.num_heads}) is not a multiple of num_key_value_heads "
                f"({self.num_kv_heads}); grouped-query attention needs whole groups",
                key="error.model.gqa_groups", fields={"heads": self.num_heads, "kv_heads": self.num_kv_heads},
            )
        if self.sliding_window is not None:
            require_positive("sliding_window", self.sliding_window)
        if self.chunk_size is not None:
            require_positive("attention_chunk_size", self.chunk_size)
        if self.sliding_window is not None and self.chunk_size is not None:
            raise SpecError(f"a layer has both a sliding window ({self.sliding_window}) and an attention chunk "
                            f"({self.chunk_size}); a layer uses one kind of local attention",
                            key="error.model.window_and_chunk",
                            fields={"window": self.sliding_window, "chunk": self.chunk_size})
        if self.mla is not None and self.head_dim != self.mla.qk_nope_head_dim + self.mla.qk_rope_head_dim:
            raise SpecError(
                f"MLA head_dim ({self.head_dim}) must equal qk_nope_head_dim + qk_rope_head_dim "
                f"({self.mla.qk_nope_head_dim} + {self.mla.qk_rope_head_dim})",
                key="error.model.mla_head_dim", fields={"head_dim": self.head_dim, "nope": self.mla.qk_nope_head_dim,
                                                        "rope": self.mla.qk_rope_head_dim},
            )

    @property
    def local_span(self) -> int | None:
        """Most keys one query attends and most tokens the layer caches per sequence: the sliding window, or
        the chunk of chunked local attention (a query at position i sees the i mod C + 1 keys of its chunk;
        the cache holds at most C). None for global attention."""
        return self.sliding_window if self.sliding_window is not None else self.chunk_size

    @property
    def kind(self) -> str:
        """``"MLA"``, ``"MHA"``, ``"MQA"`` or ``"GQA"``."""
        if self.mla is not None:
            return "MLA"
        if self.num_kv_heads == self.num_heads:
            return "MHA"
        return "MQA" if self.num_kv_heads == 1 else "GQA"


@dataclass(frozen=True, slots=True, kw_only=True)
class Mlp:
    """A feed-forward block: gated (SwiGLU/GeGLU: gate, up and down matrices) or plain (up and down)."""

    intermediate_size: int
    gated: bool
    bias: bool = False
    activation: str = "silu"
    activation_params: int = 0  # learnable scalars of a parameterised activation (Apertus' xIELU: alpha_p, alpha_n)

    def __post_init__(self) -> None:
        require_positive("intermediate_size", self.intermediate_size)
        if self.activation_params < 0:
            raise SpecError(f"activation_params must be >= 0, got {self.activation_params}",
                            key="error.model.activation_params", fields={"value": self.activation_params})


@dataclass(frozen=True, slots=True, kw_only=True)
class Moe:
    """A mixture-of-experts block: a router picks ``top_k`` of ``num_experts`` routed experts per token;
    optional shared experts (one MLP of the combined width) see every token."""

    num_experts: int
    top_k: int
    expert: Mlp
    shared: Mlp | None = None
    shared_gate: bool = False  # Qwen2-MoE scales the shared expert by sigmoid(Linear(hidden, 1))
    router_bias: bool = False
    zero_experts: int = 0  # LongCat-Flash: identity experts the router may pick; no weights, no FLOPs

    def __post_init__(self) -> None:
        require_positive("num_experts", self.num_experts)
        require_positive("num_experts_per_tok", self.top_k)
        if self.top_k > self.num_experts + self.zero_experts:
            raise SpecError(
                f"num_experts_per_tok ({self.top_k}) exceeds the number of experts ({self.num_experts})",
                key="error.model.top_k", fields={"top_k": self.top_k, "experts": self.num_experts},
            )
        if self.zero_experts < 0:
            raise SpecError(f"zero_expert_num must be >= 0, got {self.zero_experts}",
                            key="error.model.zero_experts_negative", fields={"value": self.zero_experts})

    @property
    def experts_per_token(self) -> float:
        """Routed experts with weights that one token runs through, on average: top_k, or with zero-computation
        experts top_k · E / (E + Z), the share that balanced routing over all E + Z slots sends to real ones
        (LongCat-Flash: 12 picks among 512 + 256 → 8; its report, arXiv:2509.01322, gives 18.6B-31.3B
        activated parameters per token, about 27B on average)."""
        return self.top_k * self.num_experts / (self.num_experts + self.zero_experts)


@dataclass(frozen=True, slots=True, kw_only=True)
class Layer:
    """One Transformer block. ``parallel`` blocks feed attention and MLP from the same input (GPT-J,
    GPT-NeoX, Falcon); ``norms`` are the block's own normalisation layers, in order.

    Hybrid models mix token mixers: a block holds self-``attention``, a state-space ``mixer`` (Mamba), or both
    side by side on the same normalised input (Falcon-H1's parallel hybrid heads), and may hold no token
    mixer (Nemotron-H's MLP-only blocks) or no ``ffn`` (Mamba-2 and Nemotron-H's mixer-only blocks)."""

    attention: Attention | None = None
    ffn: Mlp | Moe | None = None
    norms: tuple[Norm, ...]
    parallel: bool = False
    mixer: Mixer | None = None
    gates: int = 0  # learnable tanh gate scalars (mllama: cross-attention layers, vision global layers)

    def __post_init__(self) -> None:
        if self.attention is None and self.mixer is None and self.ffn is None:
            raise SpecError("a layer needs attention, a state-space mixer or a feed-forward block",
                            key="error.model.empty_layer")

    @property
    def is_moe(self) -> bool:
        return isinstance(self.ffn, Moe)


#: ``max_position_embeddings`` of a model whose config states no length (Mamba-2: a recurrence indexes no positions,
#: so no context limit applies); int32's largest value stands for "unbounded".
UNBOUNDED_CONTEXT = 2**31 - 1


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelSpec:
    """A whole model: embeddings, layers, final norm and output head, with where it came from."""

    name: str
    model_type: str
    vocab_size: int
    hidden_size: int
    layers: tuple[Layer, ...]
    position: PositionKind
    max_position_embeddings: int
    tie_word_embeddings: bool
    final_norm: Norm | None
    learned_position_rows: int = 0  # rows of a learned position table (OPT keeps 2 extra)
    token_type_vocab_size: int = 0  # BERT segment embeddings
    extra_token_rows: int = 0  # token-table rows beyond vocab_size (mllama: 8), not in the output head
    embedding_norm: Norm | None = None  # BERT normalises the summed embeddings
    lm_head: bool = True  # False for encoder-only models built without an LM head
    lm_head_bias: bool = False
    pooler: bool = False  # BERT's [CLS] dense + tanh
    causal: bool = True
    torch_dtype: str = "bfloat16"
    quantization: CheckpointQuant | None = None  # the checkpoint's quantization_config (spec/checkpoint_quant.py)
    rope_scaled_positions: int | None = None  # factor × original positions when rope_scaling extends the context
    source: str = ""
    extras: tuple[tuple[str, str], ...] = field(default=())  # notes shown in reports (e.g. what HF omits)
    vision: VisionTower | None = None  # the image encoder and projector of a vision-language model
    # derived once at construction (a model's layers never change): evaluation hot paths group and hash often
    _groups: tuple[tuple[Layer, int], ...] = field(init=False, repr=False, compare=False)
    _group_of: tuple[int, ...] = field(init=False, repr=False, compare=False)  # layer index → group index
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        require_positive("vocab_size", self.vocab_size)
        require_positive("hidden_size", self.hidden_size)
        require_positive("max_position_embeddings", self.max_position_embeddings)
        if not self.layers:
            raise SpecError(f"{self.name}: num_hidden_layers must be positive, got 0", key="error.model.no_layers",
                            fields={"name": self.name})
        groups = tuple(_count_runs(self.layers))
        object.__setattr__(self, "_groups", groups)
        object.__setattr__(self, "_group_of", _group_indices(self.layers, groups))
        object.__setattr__(self, "_hash", hash((self.name, self.model_type, self.vocab_size, self.hidden_size,
                                                self._groups, self.layers.__len__(), self.position,
                                                self.tie_word_embeddings, self.lm_head, self.pooler)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def is_moe(self) -> bool:
        return any(layer.is_moe for layer in self.layers)

    @property
    def first_attention(self) -> Attention | None:
        """The first attention block (hybrid models interleave attention with state-space mixers)."""
        return next((layer.attention for layer in self.layers if layer.attention is not None), None)

    @property
    def is_hybrid(self) -> bool:
        """True when some layer mixes tokens with a state-space mixer instead of attention."""
        return any(layer.mixer is not None for layer in self.layers)

    def layer_groups(self) -> list[tuple[Layer, int]]:
        """Distinct layers with how many times each occurs, in order of first occurrence."""
        return list(self._groups)

    def group_of_layers(self) -> tuple[int, ...]:
        """For each layer, the index of its group in ``layer_groups()``: per-layer sums without re-hashing."""
        return self._group_of


def _count_runs(layers: Sequence[Layer]) -> list[tuple[Layer, int]]:
    """Group by identity first (adapters reuse one object for identical layers), then by equality."""
    first: dict[int, Layer] = {}
    seen: dict[int, int] = {}
    for layer in layers:
        first.setdefault(id(layer), layer)
        seen[id(layer)] = seen.get(id(layer), 0) + 1
    counts: dict[Layer, int] = {}
    for key, layer in first.items():
        counts[layer] = counts.get(layer, 0) + seen[key]
    return list(counts.items())


def _group_indices(layers: Sequence[Layer], groups: Sequence[tuple[Layer, int]]) -> tuple[int, ...]:
    by_identity = {id(layer): index for index, (layer, _) in enumerate(groups)}
    by_value = {layer: index for index, (layer, _) in enumerate(groups)}
    return tuple(by_identity.get(id(layer), by_value.get(layer, 0)) for layer in layers)
