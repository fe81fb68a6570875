"""How a job is laid out: recomputation now; parallel degrees and sharding follow (memory and time issues)."""

from __future__ import annotations

from enum import Enum


class Recompute(Enum):
    """Activation recomputation (Korthikanti et al. 2022, arXiv:2205.05198 §4–5).

    NONE keeps every activation; SELECTIVE recomputes only the attention core (scores, softmax, dropout,
    values) in the backward pass; FULL recomputes each whole block from its input.
    """

    NONE = "none"
    SELECTIVE = "selective"
    FULL = "full"
