"""What a training job does: method (full or a PEFT method), optimizer, precision, sequence length.

Precision modes name where each model state lives, because frameworks differ (bytes per parameter):

====================  =======  =====  ======  ========================================================
mode                  weights  grads  master  used by
====================  =======  =====  ======  ========================================================
FP32                  4        4      —       plain fp32 training
AMP (fp16/bf16)       4        4      —       torch.autocast (HF Trainer --bf16/--fp16): fp32 weights,
                                              low-precision copies made per op and freed
MIXED (fp16/bf16)     2        2      4       DeepSpeed, FSDP MixedPrecision: low-precision weights and
                                              grads, fp32 master copy (Rajbhandari et al. 2020 §3.1)
MIXED_FP32_GRADS      2        4      4       Megatron-LM (fp32 ``main_grad`` accumulation)
PURE_BF16             2        2      —       bf16 weights, grads and optimizer states, no master
FP8                   2 (+1)   4      4       Transformer Engine: Megatron's states plus an fp8 copy of
                                              each linear weight
====================  =======  =====  ======  ========================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from suanli.errors import SpecError, require_positive
from suanli.i18n import Text
from suanli.spec.layout import AttentionImpl


class PrecisionMode(Enum):
    FP32 = "fp32"
    AMP_FP16 = "amp-fp16"
    AMP_BF16 = "amp-bf16"
    MIXED_FP16 = "mixed-fp16"
    MIXED_BF16 = "mixed-bf16"
    MIXED_FP32_GRADS = "mixed-bf16-fp32-grads"
    PURE_BF16 = "pure-bf16"
    FP8 = "fp8"


class Framework(Enum):
    """The training framework, which decides where model states live (precision mode defaults) and how
    activations are counted: Megatron-LM's kernels as Korthikanti et al. count them, or transformers' ops
    (DeepSpeed, FSDP and the HF Trainer all run transformers' modelling code)."""

    DEEPSPEED = "deepspeed"
    MEGATRON = "megatron"
    FSDP = "fsdp"
    HF = "hf"
    TORCHTUNE = "torchtune"  # its own Llama modules, FSDP2, chunked cross-entropy


class Optimizer(Enum):
    """Optimizers by the state they keep per trainable parameter (see core/memory.py for bytes)."""

    ADAMW = "adamw"
    ADAMW_8BIT = "adamw-8bit"
    PAGED_ADAMW_8BIT = "paged-adamw-8bit"
    SGD = "sgd"
    SGD_MOMENTUM = "sgd-momentum"
    ADAFACTOR = "adafactor"
    LION = "lion"


class Method(Enum):
    """Full training or a parameter-efficient fine-tuning method (names as in Hugging Face PEFT)."""

    FULL = "full"
    LORA = "lora"
    QLORA = "qlora"
    DORA = "dora"
    DYLORA = "dylora"
    ADALORA = "adalora"
    PREFIX_TUNING = "prefix-tuning"
    PROMPT_TUNING = "prompt-tuning"
    P_TUNING_V2 = "p-tuning-v2"
    ADAPTER = "adapter"
    BITFIT = "bitfit"
    IA3 = "ia3"


@dataclass(frozen=True, slots=True, kw_only=True)
class PeftConfig:
    """Knobs of the PEFT methods, with Hugging Face PEFT's names and typical defaults.

    ``target_modules`` are projection names: q, k, v, o (attention), gate, up, down (MLP), and "experts"
    to include routed experts' projections. "all-linear" targets every projection in the blocks.
    """

    rank: int = 16  # LoRA r; DyLoRA/AdaLoRA: the maximum rank
    target_modules: tuple[str, ...] = ("q", "k", "v", "o", "gate", "up", "down")
    num_virtual_tokens: int = 20  # prompt / prefix tuning
    adapter_size: int = 64  # bottleneck adapters (Houlsby et al. 2019)
    lora_dropout: float = 0.0  # PEFT's LoraConfig.lora_dropout: adds a mask and a dropped copy per adapter
    # QLoRA on bitsandbytes < 0.43.2 (before PR #1270), whose 4-bit matmul kept its input for backward
    bnb_saves_input: bool = False

    def __post_init__(self) -> None:
        require_positive("LoRA rank", self.rank, fix=Text("fix.training.lora_rank"))
        require_positive("num_virtual_tokens", self.num_virtual_tokens)
        require_positive("adapter_size", self.adapter_size)
        if not 0 <= self.lora_dropout < 1:
            raise SpecError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}",
                            key="error.training.lora_dropout", fields={"value": self.lora_dropout})
        known = {"q", "k", "v", "o", "gate", "up", "down", "experts", "all-linear",
                 "in_proj", "out_proj", "x_proj", "dt_proj"}  # the last four: Mamba mixers
        unknown = sorted(set(self.target_modules) - known)
        if unknown:
            raise SpecError(f"unknown LoRA target modules {unknown}; use some of {sorted(known)}",
                            key="error.training.lora_targets", fields={"modules": unknown, "known": sorted(known)})


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingJob:
    """One training or fine-tuning job, independent of the hardware and layout."""

    seq: int
    method: Method = Method.FULL
    peft: PeftConfig = field(default_factory=PeftConfig)
    optimizer: Optimizer = Optimizer.ADAMW
    precision: PrecisionMode = PrecisionMode.MIXED_BF16
    attention: AttentionImpl = AttentionImpl.FLASH
    framework: Framework = Framework.DEEPSPEED
    tp_comm_overlap: bool = False  # Megatron-Core's tp_comm_overlap (TE userbuffers; needs sp): core/training_time.py

    def __post_init__(self) -> None:
        require_positive("seq", self.seq, fix=Text("fix.training.seq"))

    @property
    def is_peft(self) -> bool:
        return self.method is not Method.FULL
