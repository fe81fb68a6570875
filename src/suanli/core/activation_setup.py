"""The inputs and the result of the activation-memory model (``core/activations.py``), shared with its
transformers family facts (``core/activations_hf.py``): the flavour, one micro-batch's setup, the breakdown,
and the token counts every formula starts from."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from suanli.errors import SpecError, require_positive
from suanli.quantity import Num
from suanli.spec.layout import AttentionImpl, Recompute

FP32_BYTES = 4.0
INDEX_BYTES = 8.0  # int64 token ids, labels, top-k and permutation indices

Lift = Callable[[float, str], Num]


class Flavour(Enum):
    """Whose implementation of the ops is counted: Megatron-LM as Korthikanti et al. count it, or
    Hugging Face transformers as it runs."""

    MEGATRON = "megatron"
    HUGGINGFACE = "huggingface"


DEFAULT_DROPOUT = MappingProxyType({Flavour.MEGATRON: 0.1, Flavour.HUGGINGFACE: 0.0})  # Megatron-LM; Llama


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


def rank_tokens(s: ActivationSetup, lift: Lift[Num]) -> Num:
    """Token positions on this GPU: b·s/cp."""
    return lift(s.micro_batch, "micro_batch") * lift(s.seq, "seq") / lift(s.cp, "cp")


def region_tokens(s: ActivationSetup, lift: Lift[Num]) -> Num:
    """Tokens of a tensor outside the TP-split matmuls: replicated on every TP rank, or 1/tp of them with
    sequence parallelism (Korthikanti et al. 2022 §4.2.2)."""
    tokens = rank_tokens(s, lift)
    return tokens / lift(s.tp, "tp") if s.sp else tokens


def act_num(s: ActivationSetup, lift: Lift[Num]) -> Num:
    """Bytes per element of the compute dtype."""
    return lift(s.act_bytes, "act_bytes")
