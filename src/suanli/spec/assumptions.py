"""Named assumptions and conventions, with their defaults, overridable by the user.

FLOP-counting conventions live here because they change what a number means, not what the hardware does.
"""

from __future__ import annotations

from enum import Enum


class AttentionSpan(Enum):
    """Which query-key pairs the attention score and value matmuls are counted over.

    FULL counts all S×S pairs: what eager attention computes (it masks after the matmul), and the convention
    of Megatron-LM and of ``torch.utils.flop_counter`` over eager code. CAUSAL counts only the pairs a causal
    (and, where the layer has one, sliding-window) kernel such as FlashAttention actually computes:
    S(S+1)/2 for causal attention, about S·W for a window W ≪ S.
    """

    FULL = "full"
    CAUSAL = "causal"
