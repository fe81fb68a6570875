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
Adafactor          a row and a column statistic per weight matrix     Shazeer & Stern 2018, arXiv:1804.04235
=================  =================================================  =========================================

State values are fp32 (4 bytes) except under PURE_BF16, where they are bf16. The ZeRO paper's K = 12 for
mixed-precision Adam is the 4-byte master copy plus 8 bytes of m and v (Rajbhandari et al. 2020 §3.1).

Sharding (ZeRO, Rajbhandari et al. 2020, arXiv:1910.02054 §5; FSDP is the same split): stage 1 shards the
optimizer states and master weights over the ``zero_shards`` data-parallel ranks, stage 2 also the
gradients, stage 3 also the weights (which are all-gathered one block at a time while computing).
"""

from __future__ import annotations

from dataclasses import dataclass

from suanli.spec.layout import Layout, Offload
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


def optimizer_state_values(optimizer: Optimizer) -> float:
    """Optimizer state values kept per trainable parameter (Adafactor's factored statistics: see
    ``adafactor_state_values``, which needs the matrix shapes)."""
    return {
        Optimizer.ADAMW: 2.0,
        Optimizer.ADAMW_8BIT: 2.0,
        Optimizer.PAGED_ADAMW_8BIT: 2.0,
        Optimizer.SGD: 0.0,
        Optimizer.SGD_MOMENTUM: 1.0,
        Optimizer.LION: 1.0,
        Optimizer.ADAFACTOR: 0.0,
    }[optimizer]


def optimizer_bytes_per_param(optimizer: Optimizer, precision: PrecisionMode) -> float:
    """Bytes of optimizer state per trainable parameter. 8-bit states: 1 byte per value plus one fp32
    absmax per 2048-value block per state."""
    values = optimizer_state_values(optimizer)
    if optimizer in (Optimizer.ADAMW_8BIT, Optimizer.PAGED_ADAMW_8BIT):
        return values * (1 + FP32_BYTES / EIGHT_BIT_BLOCK)
    state_bytes = BF16_BYTES if precision is PrecisionMode.PURE_BF16 else FP32_BYTES
    return values * state_bytes


def state_bytes(precision: PrecisionMode, optimizer: Optimizer) -> StateBytes:
    """Bytes per parameter of weights, gradients, master weights and optimizer states (full training)."""
    weights, gradients, master = _WEIGHT_GRAD_MASTER[precision]
    return StateBytes(weights=weights, gradients=gradients, master_weights=master,
                      optimizer=optimizer_bytes_per_param(optimizer, precision))


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
    """
    shards = shards or layout.zero_shards
    weights = trainable * per_param.weights + frozen_weight_bytes
    gradients = trainable * per_param.gradients
    master = trainable * per_param.master_weights
    optimizer = trainable * per_param.optimizer
    if layout.zero >= 1:
        master, optimizer = master / shards, optimizer / shards
    if layout.zero >= 2:
        gradients /= shards
    if layout.zero >= 3:
        weights /= shards
    host = nvme = 0.0
    if layout.offload_optimizer is not Offload.NONE:
        # ZeRO-Offload moves the optimizer step to the CPU: fp32 master, states and the gradients it reads
        moved = master + optimizer + gradients
        master = optimizer = gradients = 0.0
        host, nvme = (host + moved, nvme) if layout.offload_optimizer is Offload.CPU else (host, nvme + moved)
    if layout.offload_params is not Offload.NONE:
        host, nvme = (host + weights, nvme) if layout.offload_params is Offload.CPU else (host, nvme + weights)
        weights = 0.0
    return ShardedStates(weights=weights, gradients=gradients, master_weights=master, optimizer=optimizer,
                         offloaded_to_host=host, offloaded_to_nvme=nvme)


def add_states(a: ShardedStates, b: ShardedStates) -> ShardedStates:
    """Element-wise sum: states of parameters sharded over different groups, on one GPU."""
    return ShardedStates(weights=a.weights + b.weights, gradients=a.gradients + b.gradients,
                         master_weights=a.master_weights + b.master_weights, optimizer=a.optimizer + b.optimizer,
                         offloaded_to_host=a.offloaded_to_host + b.offloaded_to_host,
                         offloaded_to_nvme=a.offloaded_to_nvme + b.offloaded_to_nvme)
