"""Named assumptions and conventions, with their defaults, overridable by the user.

FLOP-counting conventions live here because they change what a number means, not what the hardware does.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from suanli.errors import SpecError


class AttentionSpan(Enum):
    """Which query-key pairs the attention score and value matmuls are counted over.

    FULL counts all S×S pairs: what eager attention computes (it masks after the matmul), and the convention
    of Megatron-LM and of ``torch.utils.flop_counter`` over eager code. CAUSAL counts only the pairs a causal
    (and, where the layer has one, sliding-window) kernel such as FlashAttention actually computes:
    S(S+1)/2 for causal attention, about S·W for a window W ≪ S.
    """

    FULL = "full"
    CAUSAL = "causal"


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryAssumptions:
    """Memory that no formula over the model gives, as named, overridable inputs with their sources.

    - ``cuda_context_bytes``: the CUDA context, kernels and library handles each process holds before any
      tensor. 723 MiB was measured for a 1-element tensor (discuss.pytorch.org/t/73021); it ranges roughly
      300–800 MiB with the GPU, driver and CUDA lazy loading. Not yet calibrated on our own GPUs.
    - ``allocator_fragmentation``: memory the PyTorch caching allocator reserves beyond what tensors use at
      the peak, as a fraction of that peak. 5% is a working assumption (uncalibrated).
    - ``ddp_bucket_as_grad_copy``: PyTorch DDP copies gradients into flat communication buckets unless
      ``gradient_as_bucket_view=True``; the PyTorch docs state the saving equals the total gradient size.
    - ``zero_bucket_elements_per_hidden_sq``: DeepSpeed reduce/all-gather bucket in elements, as a multiple
      of hidden², the Hugging Face integration's ``"auto"`` value (reduce_bucket_size = hidden²).
    """

    cuda_context_bytes: float = 723 * 2**20
    allocator_fragmentation: float = 0.05
    ddp_bucket_as_grad_copy: bool = True
    zero_bucket_elements_per_hidden_sq: float = 1.0

    def __post_init__(self) -> None:
        for name in ("cuda_context_bytes", "allocator_fragmentation", "zero_bucket_elements_per_hidden_sq"):
            if getattr(self, name) < 0:
                raise SpecError(f"memory assumption {name} must be zero or positive, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class PerformanceAssumptions:
    """Achieved-vs-peak efficiencies of the time model, as named, overridable inputs.

    Defaults are starting points with their evidence; ``benchmarks/calibrate.py`` fits them to the
    calibration half of the published references and ``docs/accuracy.md`` reports both halves.

    - ``gemm_peak_fraction``: the best fraction of the dense peak a large GEMM reaches. H100 SXM bf16: an
      8192³ matmul ran at 798 of 989 TFLOP/s (0.81) on our device machines (.library/device/KINDS.md);
      stas00/ml-engineering's MAMF tables give 0.7–0.8 across A100/H100/MI300X.
    - ``gemm_half_work_flops``: the GEMM size (FLOPs) at which efficiency is half of that best: small GEMMs
      cannot fill the GPU (waves, tile quantisation). eff(F) = peak_fraction · F / (F + half_work).
    - ``attention_peak_fraction``: FlashAttention-2/3 forward reaches 50–75% of peak on A100/H100 (Dao 2023,
      arXiv:2307.08691 §4; Shah et al. 2024, arXiv:2407.08608).
    - ``memory_bandwidth_fraction``: achieved share of peak HBM bandwidth for streaming kernels (a
      device-to-device copy moved 3.0 of 3.35 TB/s on H100: 0.9).
    - ``kernel_overhead_s``: fixed launch/synchronisation cost per kernel.
    - ``network_bandwidth_fraction``: achieved share of a link's peak for large collectives (NCCL bus
      bandwidth on NVLink and InfiniBand is typically 75–90% of the line rate).
    """

    gemm_peak_fraction: float = 0.80
    gemm_half_work_flops: float = 2e9
    attention_peak_fraction: float = 0.60
    memory_bandwidth_fraction: float = 0.85
    kernel_overhead_s: float = 5e-6
    network_bandwidth_fraction: float = 0.80

    def __post_init__(self) -> None:
        for name in ("gemm_peak_fraction", "attention_peak_fraction", "memory_bandwidth_fraction",
                     "network_bandwidth_fraction"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise SpecError(f"performance assumption {name} must be in (0, 1], got {value}")
        for name in ("gemm_half_work_flops", "kernel_overhead_s"):
            if getattr(self, name) < 0:
                raise SpecError(f"performance assumption {name} must be zero or positive, got {getattr(self, name)}")
