"""Collective communication time: an α–β model over the link hierarchy.

A collective over ``p`` ranks moving ``n`` bytes per rank (Thakur et al. 2005; Chan et al. 2007; the NCCL
tests' "bus bandwidth" convention):

==================  ==========================  =============================================
collective          bytes each rank sends       latency terms (ring)
==================  ==========================  =============================================
all-reduce          2·(p−1)/p · n               2·(p−1)·α   (tree: 2·log2(p)·α)
all-gather          (p−1)/p · n  (n = output)   (p−1)·α
reduce-scatter      (p−1)/p · n  (n = input)    (p−1)·α
all-to-all          (p−1)/p · n                 (p−1)·α
send/recv           n                           α
==================  ==========================  =============================================

time = latency terms + bytes sent / (link bandwidth · network_bandwidth_fraction). The link is the
accelerator's scale-up fabric (NVLink, xGMI, ICI) when the group fits in one scale-up domain, else the
scale-out network (InfiniBand / RoCE, one NIC per GPU by default): the slowest hop bounds a ring. Ring and
tree move the same bytes; tree has log-depth latency, which wins for small messages (NCCL picks per size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from suanli.spec.assumptions import PerformanceAssumptions
from suanli.spec.hardware import Accelerator, Interconnect, get_interconnect

DEFAULT_SCALE_OUT = "ib-ndr"  # 400 Gb/s NDR InfiniBand, one NIC per GPU: the common H100 cluster design


class Collective(Enum):
    ALL_REDUCE = "all-reduce"
    ALL_GATHER = "all-gather"
    REDUCE_SCATTER = "reduce-scatter"
    ALL_TO_ALL = "all-to-all"
    SEND_RECV = "send-recv"


@dataclass(frozen=True, slots=True, kw_only=True)
class Path:
    """The link a collective runs over: per-rank bandwidth one way, and one hop's latency."""

    name: str
    bandwidth_bytes_per_s: float
    latency_s: float


def path_for_group(accelerator: Accelerator, group: int, *, scale_out: str = DEFAULT_SCALE_OUT,
                   ranks_per_node: int = 1) -> Path:
    """The scale-up fabric when ``group`` ranks fit in one domain, else the scale-out network; the host
    link (PCIe) for accelerators without a fabric.

    A group spread over several nodes with ``ranks_per_node`` of its ranks in each node drives that many NICs
    at once (one NIC per GPU): NCCL opens a ring channel per NIC, each leaving the node through its own NIC,
    so the bus bandwidth is ``ranks_per_node`` NICs' worth, capped by the scale-up fabric that carries the
    hops inside the node. nccl-tests all-reduce on 8-GPU nodes reaches ~400-450 GB/s bus bandwidth with
    8x400G NDR on H100 and ~200-250 GB/s with 8x200G HDR on A100, against 50 and 25 GB/s for one NIC.
    """
    link = accelerator.scale_up
    if link is not None and group <= link.domain_size:
        return Path(name=link.interconnect.name, bandwidth_bytes_per_s=link.bandwidth_bytes_per_s,
                    latency_s=link.interconnect.latency_s)
    if link is None and group <= 8 and accelerator.host_link is not None:
        return _from_interconnect(accelerator.host_link)
    nic = get_interconnect(scale_out)
    if ranks_per_node <= 1:
        return _from_interconnect(nic)
    fabric = link.bandwidth_bytes_per_s if link is not None else float("inf")
    return Path(name=f"{ranks_per_node}x {nic.name}", latency_s=nic.latency_s,
                bandwidth_bytes_per_s=min(fabric, ranks_per_node * nic.bandwidth_bytes_per_s))


def _from_interconnect(interconnect: Interconnect) -> Path:
    return Path(name=interconnect.name, bandwidth_bytes_per_s=interconnect.bandwidth_bytes_per_s,
                latency_s=interconnect.latency_s)


def collective_time_s(kind: Collective, bytes_per_rank: float, group: int, path: Path,
                      a: PerformanceAssumptions, *, tree: bool = False) -> float:
    """Time of one collective over ``group`` ranks (see the table in the module docstring)."""
    if group <= 1 or bytes_per_rank <= 0:
        return 0.0
    p = group
    if kind is Collective.SEND_RECV:
        sent, hops = bytes_per_rank, 1.0
    elif kind is Collective.ALL_REDUCE:
        sent, hops = 2 * (p - 1) / p * bytes_per_rank, (2 * math.log2(p) if tree else 2 * (p - 1))
    else:
        sent, hops = (p - 1) / p * bytes_per_rank, float(p - 1)
    return hops * path.latency_s + sent / (path.bandwidth_bytes_per_s * a.network_bandwidth_fraction)
