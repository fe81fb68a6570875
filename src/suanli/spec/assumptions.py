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
