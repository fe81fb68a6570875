"""Model states per GPU: weights, gradients, fp32 master weights and optimizer states.

Bytes per parameter follow the precision mode (``spec/training.py`` has the table) and the optimizer:

=================  =================================================  =========================================
optimizer          state per trainable parameter                      source
=================  =================================================  =========================================
AdamW              m and v (2 values)                                 Loshchilov & Hutter 2019
AdamW 8-bit        m and v in int8 + one fp32 absmax per 2048 values  Dettmers et al. 2022, arXiv:2110.02861
paged AdamW 8-bit  as 8-bit, in unified memory that pages to the CPU  Dettmers et al. 2023 (QLoRA) §3
SGD                none
SGD + momentum     one value                                          Sutskever et al. 2013
Lion               one value (the momentum)                           Chen et al. 2023, arXiv:2302.06675
Adafactor          a row and a column statistic per weight matrix,    Shazeer & Stern 2018, arXiv:1804.04235
                   one value per entry of a vector (β1 = None)        §3; HF ``transformers.Adafactor``
=================  =================================================  =========================================

State values are fp32 (4 bytes) except under PURE_BF16, where they are bf16 (torch optimizers create them
``zeros_like`` the bf16 parameter) — but Adafactor's are fp32 always: HF's Adafactor casts the gradient to
fp32 and creates its statistics in the gradient's dtype. The ZeRO paper's K = 12 for mixed-precision Adam is
the 4-byte master copy plus 8 bytes of m and v (Rajbhandari et al. 2020 §3.1).

Sharding (ZeRO, Rajbhandari et al. 2020, arXiv:1910.02054 §5; FSDP is the same split): stage 1 shards the
optimizer states and master weights over the ``zero_shards`` data-parallel ranks, stage 2 also the
gradients, stage 3 also the weights (which are all-gathered one block at a time while computing).
Offload follows DeepSpeed's ZeRO-Offload (see ``shard_states``); ``tests/golden/test_deepspeed_estimator.py``
pins our counts against DeepSpeed's own estimator, term by term.
"""

from __future__ import annotations

from dataclasses import dataclass

from suanli.core.params import count_params
from suanli.core.peft import model_linears
from suanli.errors import SpecError
from suanli.spec.layout import Layout, Offload
from suanli.spec.model import ModelSpec, Moe
from suanli.spec.training import Optimizer, PrecisionMode

FP32_BYTES = 4
BF16_BYTES = 2
EIGHT_BIT_BLOCK = 2048  # bitsandbytes blockwise quantisation block for optimizer states


@dataclass(frozen=True, slots=True, kw_only=True)
class StateBytes:
    """Bytes per trainable parameter of each model state (weights also count frozen parameters)."""

    weights: float
    gradients: float
    master_weights: float
    optimizer: float

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.master_weights + self.optimizer


_WEIGHT_GRAD_MASTER: dict[PrecisionMode, tuple[float, float, float]] = {
    PrecisionMode.FP32: (4, 4, 0),
    PrecisionMode.AMP_FP16: (4, 4, 0),
    PrecisionMode.AMP_BF16: (4, 4, 0),
    PrecisionMode.MIXED_FP16: (2, 2, 4),
    PrecisionMode.MIXED_BF16: (2, 2, 4),
    PrecisionMode.MIXED_FP32_GRADS: (2, 4, 4),
    PrecisionMode.PURE_BF16: (2, 2, 0),
    PrecisionMode.FP8: (2, 4, 4),  # + an fp8 weight copy of the linear layers, see fp8_weight_copy_bytes
}

_STATE_VALUES: dict[Optimizer, float] = {
    Optimizer.ADAMW: 2.0,
    Optimizer.ADAMW_8BIT: 2.0,
    Optimizer.PAGED_ADAMW_8BIT: 2.0,
    Optimizer.SGD: 0.0,
    Optimizer.SGD_MOMENTUM: 1.0,
    Optimizer.LION: 1.0,
}


def weight_matrices(spec: ModelSpec) -> list[tuple[int, int, int]]:
    """(how many, rows, columns) of every parameter tensor of two or more dimensions, as transformers 5 stores
    them: each linear's weight, the embedding tables, an untied output head, and fused expert biases.

    A routed experts' tensor [E, out, in] counts as E matrices of out × in (``model_linears`` already counts each
    expert); transformers 5 keeps an expert bias as one [E, out] matrix per layer. Norm weights and linear biases
    are vectors and are not listed.
    """
    h = spec.hidden_size
    matrices = [(p.count, p.out_features, p.in_features) for p in model_linears(spec)]
    tables = (spec.vocab_size, spec.learned_position_rows, spec.token_type_vocab_size)
    matrices += [(1, rows, h) for rows in tables if rows]
    if spec.lm_head and not spec.tie_word_embeddings:
        matrices.append((1, spec.vocab_size, h))
    for layer, count in spec.layer_groups():
        ffn = layer.ffn
        if isinstance(ffn, Moe) and ffn.expert.bias:
            up = ffn.expert.intermediate_size * (2 if ffn.expert.gated else 1)
            matrices += [(count, ffn.num_experts, up), (count, ffn.num_experts, h)]
    return matrices


def adafactor_state_values(spec: ModelSpec) -> float:
    """Adafactor's second-moment statistics per parameter, averaged over the whole model (full training).

    Shazeer & Stern 2018 (arXiv:1804.04235) §3 factor the second moment of an n × m matrix into a row vector (n)
    and a column vector (m); vectors keep one value per entry. HF ``transformers.optimization.Adafactor`` factors
    every tensor of two or more dimensions over its last two (rows ``shape[:-1]``, columns
    ``shape[:-2] + shape[-1:]``, so a 3-D expert tensor [E, out, in] keeps E·(out + in)), and with its default
    ``beta1=None`` keeps no first moment. So the model holds

        Σ over matrices (rows + cols) + Σ over vectors (size)   = total − Σ rows·cols + Σ (rows + cols)

    values. Per-parameter scalars (step, RMS) are left out. The average is the model's: a pipeline stage that
    holds the embedding alone keeps fewer values per parameter, one of plain blocks slightly more.
    """
    total = count_params(spec).total
    matrices = weight_matrices(spec)
    dense = sum(n * rows * cols for n, rows, cols in matrices)
    factored = sum(n * (rows + cols) for n, rows, cols in matrices)
    return (total - dense + factored) / total


def optimizer_state_values(optimizer: Optimizer, spec: ModelSpec | None = None) -> float:
    """Optimizer state values kept per trainable parameter. Adafactor's factored statistics depend on the
    weight shapes, so it needs the model ``spec`` (full training; see ``adafactor_state_values``)."""
    if optimizer is not Optimizer.ADAFACTOR:
        return _STATE_VALUES[optimizer]
    if spec is None:
        raise SpecError("Adafactor's factored state depends on the weight shapes, which are only known for full "
                        "training of a whole model (PEFT adapters are not modelled); use --optimizer adamw, or "
                        "full fine-tuning", key="error.core.adafactor_peft")
    return adafactor_state_values(spec)


def optimizer_bytes_per_param(optimizer: Optimizer, precision: PrecisionMode, spec: ModelSpec | None = None) -> float:
    """Bytes of optimizer state per trainable parameter. 8-bit states: 1 byte per value plus one fp32
    absmax per 2048-value block per state. Adafactor needs ``spec`` and keeps fp32 statistics."""
    values = optimizer_state_values(optimizer, spec)
    if optimizer in (Optimizer.ADAMW_8BIT, Optimizer.PAGED_ADAMW_8BIT):
        return values * (1 + FP32_BYTES / EIGHT_BIT_BLOCK)
    if optimizer is Optimizer.ADAFACTOR:
        return values * FP32_BYTES
    state_bytes = BF16_BYTES if precision is PrecisionMode.PURE_BF16 else FP32_BYTES
    return values * state_bytes


def state_bytes(precision: PrecisionMode, optimizer: Optimizer, spec: ModelSpec | None = None) -> StateBytes:
    """Bytes per parameter of weights, gradients, master weights and optimizer states (full training).
    ``spec`` is needed for Adafactor only."""
    weights, gradients, master = _WEIGHT_GRAD_MASTER[precision]
    return StateBytes(weights=weights, gradients=gradients, master_weights=master,
                      optimizer=optimizer_bytes_per_param(optimizer, precision, spec))


def adapter_state_bytes(optimizer: Optimizer) -> StateBytes:
    """PEFT adapters: Hugging Face PEFT keeps trainable adapter weights in fp32 (``autocast_adapter_dtype``),
    so gradients are fp32 and no separate master copy exists."""
    return StateBytes(weights=FP32_BYTES, gradients=FP32_BYTES, master_weights=0,
                      optimizer=optimizer_bytes_per_param(optimizer, PrecisionMode.FP32))


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardedStates:
    """Model-state bytes on one GPU after ZeRO/FSDP sharding, and what offload moved to host or NVMe."""

    weights: float
    gradients: float
    master_weights: float
    optimizer: float
    offloaded_to_host: float
    offloaded_to_nvme: float


def shard_states(*, trainable: float, frozen_weight_bytes: float, per_param: StateBytes,
                 layout: Layout, shards: int | None = None) -> ShardedStates:
    """Apply the ZeRO stage and offload to one GPU's unsharded states.

    ``trainable`` is the trainable parameters this GPU holds before sharding; ``frozen_weight_bytes`` the
    bytes of frozen weights (PEFT bases), which ZeRO-3 shards like any weight. ``shards`` overrides the
    data-parallel group (routed experts are sharded over the expert-data-parallel group, dp / ep).

    Optimizer offload is ZeRO-Offload (Ren et al. 2021, arXiv:2101.06840 §4: 16-bit weights, forward and
    backward stay on the GPU; gradients, fp32 master weights, optimizer states and the update go to the CPU) as
    DeepSpeed builds it (``deepspeed/runtime/zero/stage_1_and_2.py``, ``stage3.py``):

    - the host keeps this rank's gradient partition in the master weights' dtype (fp32), which the CPU optimizer
      reads (``initialize_optimizer_states``; DeepSpeed's memory docs count these 4 bytes in their 16 and 18);
    - ZeRO-1/2 also keep a 16-bit copy of the partition on the host, into which the CPU step writes the updated
      weights before they are copied to the GPU (``param_buffer_of_bit16_for_cpu_offload_groups``);
    - ZeRO-2/3 reduce gradients from the buckets straight into the host partition, so the GPU keeps none;
      ZeRO-1 does not partition gradients and keeps the full 16-bit gradients on the GPU until the step.

    Parameter offload (ZeRO-3 only) moves the 16-bit weight shard too. NVMe offload (ZeRO-Infinity) swaps the
    same tensors to NVMe instead of host memory.
    """
    shards = shards or layout.zero_shards
    optimizer_shards = shards if layout.zero >= 1 else 1
    weights = trainable * per_param.weights + frozen_weight_bytes
    gradients = trainable * per_param.gradients / (shards if layout.zero >= 2 else 1)
    master = trainable * per_param.master_weights / optimizer_shards
    optimizer = trainable * per_param.optimizer / optimizer_shards
    if layout.zero >= 3:
        weights /= shards
    host = nvme = 0.0
    if layout.offload_optimizer is not Offload.NONE:
        moved = master + optimizer + _offload_step_buffers(trainable / optimizer_shards, per_param, layout.zero)
        master = optimizer = 0.0
        if layout.zero >= 2:
            gradients = 0.0
        host, nvme = (host + moved, nvme) if layout.offload_optimizer is Offload.CPU else (host, nvme + moved)
    if layout.offload_params is not Offload.NONE:
        host, nvme = (host + weights, nvme) if layout.offload_params is Offload.CPU else (host, nvme + weights)
        weights = 0.0
    return ShardedStates(weights=weights, gradients=gradients, master_weights=master, optimizer=optimizer,
                         offloaded_to_host=host, offloaded_to_nvme=nvme)


def _offload_step_buffers(partition: float, per_param: StateBytes, zero: int) -> float:
    """Host bytes the CPU optimizer step needs beside master weights and states, for a ``partition`` of
    parameters: the gradients in the master weights' dtype (the gradient dtype when there is no master copy),
    and under ZeRO-1/2 a 16-bit copy of the partition's weights."""
    gradients = partition * (per_param.master_weights or per_param.gradients)
    staging = partition * per_param.weights if zero < 3 else 0.0
    return gradients + staging


def add_states(a: ShardedStates, b: ShardedStates) -> ShardedStates:
    """Element-wise sum: states of parameters sharded over different groups, on one GPU."""
    return ShardedStates(weights=a.weights + b.weights, gradients=a.gradients + b.gradients,
                         master_weights=a.master_weights + b.master_weights, optimizer=a.optimizer + b.optimizer,
                         offloaded_to_host=a.offloaded_to_host + b.offloaded_to_host,
                         offloaded_to_nvme=a.offloaded_to_nvme + b.offloaded_to_nvme)
