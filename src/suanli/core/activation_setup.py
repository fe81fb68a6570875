"""The inputs and the result of the activation-memory model (``core/activations.py``), shared with its
transformers family facts (``core/activations_hf.py``), its head and loss (``core/activations_head.py``) and its
PEFT ops (``core/activations_peft.py``): the flavour, the loss, a frozen base with adapters, one micro-batch's
setup, the breakdown, and the token counts every formula starts from."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from suanli.errors import SpecError, require_positive
from suanli.i18n import Text
from suanli.quantity import Num
from suanli.spec.layout import AttentionImpl, Recompute
from suanli.spec.training import PrecisionMode

FP32_BYTES = 4.0
INDEX_BYTES = 8.0  # int64 token ids, labels, top-k and permutation indices

Lift = Callable[[float, str], Num]


class Flavour(Enum):
    """Whose implementation of the ops is counted: Megatron-LM as Korthikanti et al. count it, or
    Hugging Face transformers as it runs."""

    MEGATRON = "megatron"
    HUGGINGFACE = "huggingface"


DEFAULT_DROPOUT = MappingProxyType({Flavour.MEGATRON: 0.1, Flavour.HUGGINGFACE: 0.0})  # Megatron-LM; Llama


class LossImpl(Enum):
    """How the training loop computes next-token cross-entropy, which decides the fp32 logits-sized buffers
    beside the saved fp32 probabilities (``core/activations_head.py::loss_workspace_bytes``)."""

    TRANSFORMERS = "transformers"  # ForCausalLMLoss; the caller drops the logits before backward (HF Trainer)
    TRANSFORMERS_KEEP_LOGITS = "transformers-keep-logits"  # the same, the caller holds outputs.logits
    CHUNKED = "chunked"  # torchtune's CEWithChunkedOutputLoss: upcast and log-softmax per chunk of tokens
    VOCAB_PARALLEL = "vocab-parallel"  # Megatron-LM's vocab-parallel cross-entropy, fp32 softmax in place


DEFAULT_LOSS = MappingProxyType({Flavour.MEGATRON: LossImpl.VOCAB_PARALLEL, Flavour.HUGGINGFACE: LossImpl.TRANSFORMERS})


class AdapterKind(Enum):
    """What a PEFT method inserts beside the frozen linears, as far as saved tensors go."""

    NONE = "none"  # prompt / prefix tuning, BitFit: the frozen model alone
    LORA = "lora"  # LoRA, QLoRA, DyLoRA, AdaLoRA: x → A → B beside the frozen linear
    DORA = "dora"  # LoRA plus the magnitude rescaling of the base and LoRA outputs
    IA3 = "ia3"  # a learned vector scaling a linear's output (its input for feed-forward targets)
    BOTTLENECK = "bottleneck"  # Houlsby adapters: down, nonlinearity, up after attention and after the MLP


@dataclass(frozen=True, slots=True, kw_only=True)
class PeftSetup:
    """A frozen base and what a PEFT method adds to it (built from a job by ``core/activations_peft.py``).

    ``targets``: PEFT ``target_modules`` in suanli's role names (q k v o gate up down, "all-linear", "experts");
    ``feedforward``: IA3 targets scaled on their input. ``adapter_bytes``: bytes per element of the adapters'
    weights (4: PEFT's fp32 adapters, ``autocast_adapter_dtype``; the compute dtype where DeepSpeed or FSDP cast
    the whole module). ``autocast``: under ``torch.autocast`` each adapter's matmul runs on a compute-dtype copy of
    its input. ``base_saves_input``: frozen linears keep their input anyway (Megatron's linear layers).
    ``quantized_base``: the frozen linears are stored quantized and dequantized around each matmul (QLoRA).
    ``grad_from_input``: the first block's input carries a gradient (prompt tuning's trainable embeddings, BitFit's
    biases); otherwise nothing before the first adapter is saved. ``prefix_tokens``: trainable past keys and values
    per layer (prefix tuning, P-tuning v2). ``bottleneck``: the Houlsby adapter width.
    """

    kind: AdapterKind = AdapterKind.NONE
    targets: frozenset[str] = frozenset()
    feedforward: frozenset[str] = frozenset()
    rank: int = 0
    adapter_bytes: float = FP32_BYTES
    autocast: bool = False
    dropout: float = 0.0
    base_saves_input: bool = False
    quantized_base: bool = False
    grad_from_input: bool = False
    prefix_tokens: int = 0
    bottleneck: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.dropout < 1:
            raise SpecError(f"lora_dropout must be in [0, 1), got {self.dropout}; PEFT's default is 0",
                            key="error.core.lora_dropout_range", fields={"value": self.dropout})
        for name in ("rank", "prefix_tokens", "bottleneck"):
            if getattr(self, name) < 0:
                raise SpecError(f"{name} must be at least 0, got {getattr(self, name)}", key="error.core.at_least_0",
                                fields={"name": name, "value": getattr(self, name)})


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivationSetup:
    """One micro-batch of ``micro_batch`` sequences of ``seq`` tokens, and how it is laid out and computed.

    ``act_bytes``: the compute dtype (2 for bf16/fp16, 4 for fp32). ``hidden_dropout`` / ``attention_dropout``
    default to the flavour's (``DEFAULT_DROPOUT``); only whether they are > 0 matters. ``dropout_mask_bytes``:
    1 on GPUs (``native_dropout`` keeps a bool mask); PyTorch's CPU dropout keeps a compute-dtype mask.
    ``loss`` defaults to the flavour's (``DEFAULT_LOSS``). ``peft``: a frozen base with adapters (None: every
    parameter trains). ``autocast``: fp32 weights and residual stream under ``torch.autocast`` with ``act_bytes``
    the autocast dtype (``PrecisionMode.AMP_BF16`` / ``AMP_FP16``, HUGGINGFACE only; ``core/activations.py``).
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
    loss: LossImpl | None = None
    peft: PeftSetup | None = None
    autocast: bool = False
    # Transformer Engine FP8 (``PrecisionMode.FP8``, MEGATRON): each linear saves its input as the fp8 cast it
    # fed the GEMM, not the bf16 tensor (``core/activations.py``, ``linear_input_bytes``)
    fp8_linear_inputs: bool = False

    def __post_init__(self) -> None:
        require_positive("seq", self.seq, fix=Text("fix.core.seq_4096"))
        require_positive("micro_batch", self.micro_batch, fix=Text("fix.core.micro_batch"))
        require_positive("act_bytes", self.act_bytes, fix=Text("fix.core.act_bytes"))
        require_positive("dropout_mask_bytes", self.dropout_mask_bytes, fix=Text("fix.core.dropout_mask_bytes"))
        for name in ("tp", "cp"):
            if getattr(self, name) < 1:
                raise SpecError(f"{name} must be at least 1, got {getattr(self, name)}", key="error.layout.at_least_1",
                                fields={"name": name, "value": getattr(self, name)})
        for name in ("hidden_dropout", "attention_dropout"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 1:
                raise SpecError(f"{name} must be in [0, 1), got {value}; use 0 for no dropout",
                                key="error.core.dropout_range", fields={"name": name, "value": value})
        if self.autocast and self.flavour is not Flavour.HUGGINGFACE:
            raise SpecError("autocast is modelled for the huggingface flavour only (Megatron-LM casts the model "
                            "itself); use autocast=False with the megatron flavour", key="error.core.autocast_flavour")
        if self.autocast and self.act_bytes == FP32_BYTES:
            raise SpecError("autocast needs a 2-byte compute dtype (bf16/fp16), got act_bytes=4; use act_bytes=2",
                            key="error.core.autocast_fp32")

    @property
    def has_hidden_dropout(self) -> bool:
        return (DEFAULT_DROPOUT[self.flavour] if self.hidden_dropout is None else self.hidden_dropout) > 0

    @property
    def has_attention_dropout(self) -> bool:
        return (DEFAULT_DROPOUT[self.flavour] if self.attention_dropout is None else self.attention_dropout) > 0

    @property
    def loss_impl(self) -> LossImpl:
        return DEFAULT_LOSS[self.flavour] if self.loss is None else self.loss

    @property
    def linears_save_input(self) -> bool:
        """A linear keeps its input for its weight's gradient: every linear in full training; a frozen one only
        where the framework's linear saves it regardless (``PeftSetup.base_saves_input``)."""
        return self.peft is None or self.peft.base_saves_input

    @property
    def autocast_full(self) -> bool:
        """torch.autocast over a fully trained model: fp32 weights cast per linear call (``core/activations.py``).
        A PEFT run under autocast keeps the adapters' model (``core/activations_peft.py``, a compute-dtype base)."""
        return self.autocast and self.peft is None

    @property
    def norm_weights_train(self) -> bool:
        """Whether norm weights train (full training), so that a norm keeps its normalised output for them."""
        return self.peft is None


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivationBreakdown:
    """Bytes saved for backward on one GPU for one micro-batch.

    ``per_layer_bytes`` follows ``spec.layers`` (sum a slice for a pipeline stage); ``embedding_bytes`` sits
    on the first stage, ``head_bytes`` on the last. ``components`` sums every layer, embedding and head by
    component. ``transient_bytes`` is workspace beside the saved bytes (not saved, not in ``total_bytes``):
    ``logits`` at the loss, ``recompute`` for one re-materialised block, ``weights`` for the weight-shaped
    temporaries one linear makes (QLoRA's dequantized weight, DoRA's column norm), ``autocast_cache`` for the
    weight copies torch.autocast's cast cache holds until the forward pass ends (FULL recompute).
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
        """The loss workspace, or a block's (its re-materialised activations plus one linear's weight-shaped
        temporaries), whichever is larger: the logits gradient is consumed before any block's backward starts.
        The loss runs inside the forward pass, beside autocast's cached weight copies (``autocast_cache``; the
        loss's backward buffers stand in for its forward ones, 2 bytes per logit more in transformers')."""
        t = self.transient_bytes
        forward_end = t.get("logits", 0.0) + t.get("autocast_cache", 0.0)
        return max(forward_end, t.get("recompute", 0.0) + t.get("weights", 0.0))


AUTOCAST_PRECISIONS = frozenset({PrecisionMode.AMP_BF16, PrecisionMode.AMP_FP16})


def activation_dtype_bytes(precision: PrecisionMode) -> float:
    """Bytes per saved activation element: 4 in fp32 training, else 2 (bf16/fp16; FP8 recipes keep
    bf16 activations between their fp8 matmuls)."""
    return FP32_BYTES if precision is PrecisionMode.FP32 else 2.0


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
