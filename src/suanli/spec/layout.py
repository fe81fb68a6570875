"""How a job is laid out over GPUs: parallel degrees, sharding, offload, batching, recompute, schedule.

Vocabulary follows Megatron-LM and DeepSpeed: ``tp`` tensor, ``pp`` pipeline, ``dp`` data, ``cp`` context,
``ep`` expert parallel degree, ``vp`` interleaved (virtual) stages per pipeline rank, ``sp`` sequence
parallelism (shards the TP region's norms/dropout activations along the sequence), ``zero`` the ZeRO stage
(FSDP's full-shard is ZeRO-3, shard-grad-op ZeRO-2, hybrid-shard ZeRO-3 inside ``shard_group`` GPUs).
GPUs = tp · pp · dp · cp; experts are split ep ways inside the dp · cp group.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from suanli.errors import LayoutError
from suanli.i18n import Text
from suanli.spec.limits import check_gpu_count
from suanli.spec.model import Mamba2Mixer, ModelSpec, Moe


class Recompute(Enum):
    """Activation recomputation (Korthikanti et al. 2022, arXiv:2205.05198 §4–5).

    NONE keeps every activation; SELECTIVE recomputes only the attention core (scores, softmax, dropout,
    values) in the backward pass; FULL recomputes each whole block from its input.
    """

    NONE = "none"
    SELECTIVE = "selective"
    FULL = "full"


class AttentionImpl(Enum):
    """How attention is computed, which decides whether the S×S score matrices are kept for backward.

    EAGER materialises scores and probabilities (transformers' ``attn_implementation="eager"``); SDPA and
    FLASH (FlashAttention, PyTorch SDPA's flash / memory-efficient kernels) keep only the output and the
    per-row softmax statistics (Dao et al. 2022, arXiv:2205.14135).
    """

    EAGER = "eager"
    SDPA = "sdpa"
    FLASH = "flash"


class PipelineSchedule(Enum):
    """GPIPE holds all micro-batches' activations; 1F1B at most ``pp`` in flight on the first stage
    (Narayanan et al. 2021 §2.2); INTERLEAVED splits each rank into ``vp`` chunks (bubble / vp)."""

    GPIPE = "gpipe"
    ONE_F_ONE_B = "1f1b"
    INTERLEAVED = "interleaved"


class Offload(Enum):
    """Where ZeRO-Offload / ZeRO-Infinity put what they move off the GPU."""

    NONE = "none"
    CPU = "cpu"
    NVME = "nvme"


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """A parallel layout and batching for one job. Degrees default to 1 (a single GPU)."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    cp: int = 1
    ep: int = 1
    vp: int = 1
    sp: bool = False
    zero: int = 0
    shard_group: int | None = None  # hybrid sharding: ZeRO-3 inside groups of this many DP ranks
    offload_optimizer: Offload = Offload.NONE
    offload_params: Offload = Offload.NONE
    micro_batch: int = 1
    global_batch: int | None = None  # default: micro_batch × dp (no gradient accumulation)
    schedule: PipelineSchedule = PipelineSchedule.ONE_F_ONE_B
    recompute: Recompute = Recompute.NONE

    def __post_init__(self) -> None:
        for name in ("tp", "pp", "dp", "cp", "ep", "vp", "micro_batch"):
            value = getattr(self, name)
            if value < 1:
                raise LayoutError(f"{name} must be at least 1, got {value}", key="error.layout.at_least_1",
                                  fields={"name": name, "value": value})
        if self.zero not in (0, 1, 2, 3):
            raise LayoutError(f"zero stage must be 0, 1, 2 or 3, got {self.zero}", key="error.layout.zero_stage",
                              fields={"zero": self.zero})
        if self.offload_params is not Offload.NONE and self.zero != 3:
            raise LayoutError(f"parameter offload needs ZeRO-3 (got zero={self.zero}); use --zero 3",
                              key="error.layout.offload_params", fields={"zero": self.zero})
        if self.global_batch is not None and self.global_batch % (self.micro_batch * self.dp):
            raise LayoutError(
                f"global batch {self.global_batch} is not a multiple of micro-batch × dp = "
                f"{self.micro_batch} × {self.dp}; use a global batch in multiples of {self.micro_batch * self.dp}",
                key="error.layout.global_batch",
                fields={"global_batch": self.global_batch, "micro_batch": self.micro_batch, "dp": self.dp,
                        "multiple": self.micro_batch * self.dp},
            )
        if self.vp > 1 and self.schedule is not PipelineSchedule.INTERLEAVED:
            raise LayoutError(f"vp={self.vp} needs the interleaved pipeline schedule", key="error.layout.vp_schedule",
                              fields={"vp": self.vp})
        if self.shard_group is not None and (self.shard_group < 1 or self.dp % self.shard_group):
            raise LayoutError(f"shard group {self.shard_group} must divide dp ({self.dp})",
                              key="error.layout.shard_group",
                              fields={"group": self.shard_group, "dp": self.dp})
        check_gpu_count("tp × pp × dp × cp", self.gpus)

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp * self.cp

    @property
    def effective_global_batch(self) -> int:
        return self.global_batch if self.global_batch is not None else self.micro_batch * self.dp

    @property
    def grad_accumulation_steps(self) -> int:
        """Micro-batches each data-parallel rank runs per optimizer step."""
        return self.effective_global_batch // (self.micro_batch * self.dp)

    @property
    def zero_shards(self) -> int:
        """Ways the sharded model states are split: dp × cp, or the hybrid shard group. Context-parallel ranks
        hold the same weights and reduce their gradients together, so the sharded optimizer spans them too:
        Megatron-Core's distributed optimizer and DDP use the data-parallel group "with context parallel"
        (``parallel_state.get_data_parallel_group(with_context_parallel=True)``), torchtitan's FSDP shards over
        its ``dp_shard_cp`` mesh dimension."""
        return self.shard_group if self.shard_group is not None else self.dp * self.cp

    def check(self, model: ModelSpec) -> None:
        """Raise LayoutError when the layout cannot be built for ``model``, naming the numbers and a fix."""
        for layer, _ in model.layer_groups():
            if isinstance(layer.mixer, Mamba2Mixer):
                _require_divides("tp", self.tp, "mamba num_heads", layer.mixer.num_heads)
        attention = model.first_attention
        if attention is not None:
            _require_divides("tp", self.tp, "num_attention_heads", attention.num_heads)
            if attention.mla is None and attention.num_kv_heads % self.tp and self.tp % attention.num_kv_heads:
                raise LayoutError(
                    f"tp ({self.tp}) and num_key_value_heads ({attention.num_kv_heads}) must divide one another "
                    f"(KV heads are split or replicated); use tp in {_divisors(attention.num_heads)}",
                    key="error.layout.kv_heads",
                    fields={"tp": self.tp, "kv_heads": attention.num_kv_heads,
                            "choices": _divisors(attention.num_heads)},
                )
        self._check_stages(model)

    def _check_stages(self, model: ModelSpec) -> None:
        layers_per_stage = model.num_layers / (self.pp * self.vp)
        if layers_per_stage < 1:
            raise LayoutError(
                f"pp × vp = {self.pp} × {self.vp} exceeds the {model.num_layers} layers; "
                f"use pp × vp ≤ {model.num_layers}",
                key="error.layout.too_many_stages",
                fields={"pp": self.pp, "vp": self.vp, "layers": model.num_layers},
            )
        self._check_interleaving(model)
        experts = next((layer.ffn.num_experts for layer, _ in model.layer_groups() if isinstance(layer.ffn, Moe)), None)
        if self.ep > 1:
            if experts is None:
                raise LayoutError(f"ep={self.ep} needs a mixture-of-experts model; {model.name} is dense; use ep=1",
                                  key="error.layout.ep_dense", fields={"ep": self.ep, "model": model.name})
            _require_divides("ep", self.ep, "the number of routed experts", experts)
            _require_divides("ep", self.ep, "dp × cp", self.dp * self.cp)

    def _check_interleaving(self, model: ModelSpec) -> None:
        """The interleaved schedule gives every rank ``vp`` equal chunks: Megatron-Core's TransformerConfig
        requires num_layers divisible by pp and the layers per rank divisible by vp."""
        if self.vp == 1 or model.num_layers % (self.pp * self.vp) == 0:
            return
        layers = model.num_layers
        fix = (Text("error.layout.use_degree", name="vp", choices=_divisors(layers // self.pp)) if layers % self.pp == 0
               else Text("error.layout.use_degree", name="pp", choices=_divisors(layers)))
        raise LayoutError(f"the interleaved schedule needs num_layers ({layers}) divisible by pp × vp = "
                          f"{self.pp} × {self.vp} = {self.pp * self.vp}; {fix}",
                          key="error.layout.interleaved", fields={"layers": layers, "pp": self.pp, "vp": self.vp,
                                                                   "stages": self.pp * self.vp, "fix": fix})


def _require_divides(name: str, degree: int, what: str, total: int) -> None:
    if total % degree:
        raise LayoutError(f"{what} ({total}) is not divisible by {name} ({degree}); "
                          f"use {name} in {_divisors(total)}", key="error.not_divisible",
                          fields={"what": what, "total": total, "name": name, "degree": degree,
                                  "choices": _divisors(total)})


def _divisors(n: int) -> str:
    values = [d for d in range(1, n + 1) if n % d == 0]
    if len(values) > 12:
        values = [*values[:11], n]
    return "{" + ", ".join(map(str, values)) + "}"
