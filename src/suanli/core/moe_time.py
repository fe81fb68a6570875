"""What a mixture-of-experts block adds to a training step beyond its router and expert GEMMs.

``core/roofline.py`` lists the router GEMM and each local expert's GEMMs at the per-expert shape (tokens per
expert = tokens · top_k / experts, times the ep ranks that send to it), so the GEMM efficiency curve sees the
small per-expert problems a grouped GEMM runs, not one aggregated GEMM. This module adds, per micro-batch, what
Megatron-Core's token dispatcher does around them (megatron/core/transformer/moe: router.py, moe_utils.py,
token_dispatcher.py, MoEAlltoAllTokenDispatcher):

- **router**: softmax (or sigmoid) over the ``tokens × experts`` logits in fp32, top-k, and the auxiliary
  load-balancing loss's reductions: a stream reading the fp32 logits and writing the probabilities, then
  reading them for top-k (3 passes of 4 bytes per element).
- **permutation**: ``permute`` gathers each token's hidden state once per chosen expert (read ``tokens·h``,
  write ``tokens·top_k·h``); with ep > 1 and several local experts, ``sort_chunks_by_idxs`` regroups the
  received rows by local expert (read and write ``tokens·top_k·h``), and undoes it before the combine;
  ``unpermute`` reads the expert outputs, weights them by the router probabilities and scatter-adds them into
  ``tokens·h``. Backward runs the inverse permutations over the same bytes. Memory-bound: bytes counted.
- **expert-parallel all-to-all**: a dispatch and a combine of ``tokens·top_k·h`` per rank, in forward and in
  backward (and again in a full recompute). Each (token, expert) copy travels separately (the default
  ``alltoall`` dispatcher). A group inside one node rides the scale-up fabric; one that spans nodes sends
  the share bound for other nodes, ``(ep − r)/ep`` with ``r`` of its ranks per node, through the rank's own NIC,
  and the rest over the fabric, both at once (``all_to_all_s``). DeepEP / HybridEP dispatchers send a
  token once per destination node and forward it inside the node: fewer inter-node bytes, not modelled.
- **load imbalance**: the busiest expert-parallel rank sets the time of the grouped GEMMs and of the
  all-to-all: ``PerformanceAssumptions.moe_load_imbalance`` (its routed tokens over the mean) scales both.

Routed experts' gradients are reduced over the expert-data-parallel group (dp·cp/ep), in
``core/training_sync.py``.
"""

from __future__ import annotations

import sys

from suanli.core.comms import Collective, collective_time_s, path_for_group
from suanli.core.roofline import Op, OpKind
from suanli.core.training_sync import StepSetup
from suanli.spec.model import Moe

ROUTER_FP32_PASSES = 3.0  # fp32 logits read, probabilities written, read again by top-k (router.py)
PERMUTATION_OPS = frozenset({"moe_permute", "moe_sort_chunks", "moe_unpermute"})


def _stream(name: str, elements: float, bytes_: float) -> Op:
    return Op(name=name, kind=OpKind.STREAM, flops=elements, bytes=bytes_)


def _routed_elements(moe: Moe, s: StepSetup) -> float:
    """Hidden-state elements the busiest rank routes per micro-batch: tokens · top_k · h / tp · imbalance."""
    return s.tokens * moe.experts_per_token * s.spec.hidden_size / s.layout.tp * s.a.moe_load_imbalance


def moe_dispatch_ops(moe: Moe, s: StepSetup) -> list[Op]:
    """Router softmax/top-k and the token permutations of one MoE block, one micro-batch, one GPU (forward)."""
    tokens, h, b = s.tokens, s.spec.hidden_size, s.act_bytes
    routed = _routed_elements(moe, s)
    slots = moe.num_experts + moe.zero_experts
    ops = [_stream("moe_router_softmax_topk", tokens * slots, tokens * slots * 4.0 * ROUTER_FP32_PASSES),
           _stream("moe_permute", routed, tokens * h / s.layout.tp * b + routed * b)]
    if s.layout.ep > 1 and moe.num_experts // s.layout.ep > 1:
        ops.append(_stream("moe_sort_chunks", routed, 4 * routed * b))  # regroup, and undo before the combine
    ops.append(_stream("moe_unpermute", routed, routed * b + tokens * h / s.layout.tp * b))
    return ops


def imbalanced(op: Op, s: StepSetup) -> Op:
    """An expert GEMM on the busiest rank: ``moe_load_imbalance`` times the mean rank's tokens."""
    factor = s.a.moe_load_imbalance
    if factor == 1.0 or not op.name.startswith("expert_"):
        return op
    return Op(name=op.name, kind=op.kind, flops=op.flops * factor, bytes=op.bytes * factor, count=op.count)


def all_to_all_s(s: StepSetup, bytes_per_rank: float, group: int, stride: int) -> float:
    """One all-to-all of ``bytes_per_rank`` over ``group`` ranks ``stride`` GPUs apart (see the module docstring):
    inside a node on the fabric; across nodes, each rank's remote share through its own NIC while its local
    share crosses the fabric."""
    if group * stride <= s.node:
        return collective_time_s(Collective.ALL_TO_ALL, bytes_per_rank, group, s.path(group, stride), s.a)
    local = max(1, min(group, s.node // stride))
    fabric = path_for_group(s.accelerator, local, scale_out=s.scale_out)
    nic = path_for_group(s.accelerator, sys.maxsize, scale_out=s.scale_out)
    rate = s.a.network_bandwidth_fraction
    inside = bytes_per_rank * (local - 1) / group / (fabric.bandwidth_bytes_per_s * rate)
    outside = bytes_per_rank * (group - local) / group / (nic.bandwidth_bytes_per_s * rate)
    return (group - 1) * nic.latency_s + max(inside, outside)


def ep_comm_s(moe: Moe, s: StepSetup, passes: int) -> float:
    """Dispatch and combine in each of ``passes`` passes (forward, backward, a recomputed forward)."""
    lay = s.layout
    if lay.ep <= 1:
        return 0.0
    return 2 * passes * all_to_all_s(s, _routed_elements(moe, s) * s.act_bytes, lay.ep, lay.tp * lay.cp)
