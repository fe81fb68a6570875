"""What a training step spends keeping data-parallel replicas in sync, and what every step term shares.

Terms of ``core/training_time.py``'s step that depend on the parameters a GPU holds rather than on the kernels
it runs (see that module for the whole step):

- **data parallel** (gradients over the dp·cp ranks): ZeRO-0 all-reduces them once per step, overlapped with the
  last micro-batch's backward except the last bucket (one block's gradients); ZeRO-1/2 reduce-scatter instead
  and all-gather the updated weights after the step (the sharded optimizer updates only its shard); ZeRO-3/FSDP
  all-gather the weights in forward and again in backward and reduce-scatter the gradients, every micro-batch,
  each hidden behind that pass's compute but for the first gather and the last reduce. Routed experts'
  gradients go over the expert-data-parallel group (dp·cp/ep). A collective hidden behind compute still costs
  ``overlapped_comm_slowdown`` of its time: NCCL takes SMs and memory bandwidth from the compute it overlaps.
- **pipeline sends**: each micro-batch sends its activations forward and its gradients back across each of a
  rank's vp chunk boundaries, split ``tp`` ways (Megatron's scatter/gather, Narayanan et al. 2021 §4.1), exposed.
- **optimizer step**: a memory-bound stream over the GPU's shard: read the gradients twice (norm for clipping,
  then the update), read and write the master weights and optimizer states, write the weights. With optimizer
  offload the gradients go down and the weights come up the host link (the CPU's own time is not counted).

Placement: TP innermost, then CP, EP, DP, PP outermost (Megatron's rank order); a group rides the scale-up fabric
when its ranks lie within one node, else the scale-out network, with as many NICs as it has ranks per node
(``core/comms.py``).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from suanli.core.comms import Collective, Path, collective_time_s, path_for_group
from suanli.core.model_states import StateBytes
from suanli.core.params import mlp_params, outer_components
from suanli.core.placement import layer_params_per_gpu
from suanli.quantity import plain
from suanli.spec.assumptions import AttentionSpan, PerformanceAssumptions
from suanli.spec.hardware import Accelerator
from suanli.spec.layout import Layout, Offload
from suanli.spec.model import Layer, ModelSpec, Moe
from suanli.spec.training import TrainingJob

#: A pipeline rank: its blocks as (index into the distinct layers, how many) pairs, and whether it holds the
#: embedding (first) and the output head (last). A plain tuple: ranks alike are costed once.
Stage = tuple[tuple[tuple[int, int], ...], bool, bool]


@dataclass(frozen=True, slots=True)
class StepCost:
    """Per-micro-batch seconds of a block (or a stage): compute, and its exposed communication."""

    forward: float = 0.0
    backward: float = 0.0
    recompute: float = 0.0
    tp: float = 0.0
    ep: float = 0.0
    cp: float = 0.0

    def __add__(self, other: StepCost) -> StepCost:
        return StepCost(self.forward + other.forward, self.backward + other.backward,
                        self.recompute + other.recompute, self.tp + other.tp, self.ep + other.ep, self.cp + other.cp)

    def scaled(self, n: float) -> StepCost:
        return StepCost(self.forward * n, self.backward * n, self.recompute * n, self.tp * n, self.ep * n, self.cp * n)

    @property
    def total(self) -> float:
        return self.forward + self.backward + self.recompute + self.tp + self.ep + self.cp


@dataclass(frozen=True, slots=True, kw_only=True)
class StepSetup:
    """What every term needs, worked out once per evaluation."""

    spec: ModelSpec
    job: TrainingJob
    layout: Layout
    accelerator: Accelerator
    a: PerformanceAssumptions
    gemm_format: str
    other_format: str
    act_bytes: float
    tokens: float  # per GPU per micro-batch
    span: AttentionSpan
    node: int
    scale_out: str
    per_param: StateBytes
    grad_bytes: float  # gradient bytes per parameter on the wire (PEFT adapters: fp32)
    gemm_a: PerformanceAssumptions  # FP8 GEMMs reach a smaller share of their doubled peak
    fused: bool  # Megatron-LM's fused elementwise kernels
    stream_factor: float

    def path(self, group: int, stride: int = 1) -> Path:
        """The link of a group of ``group`` ranks ``stride`` GPUs apart: the fabric inside one node, else
        the scale-out network with as many NICs as the group has ranks in each node."""
        span = group * stride
        if span <= self.node:
            return path_for_group(self.accelerator, span, scale_out=self.scale_out)
        per_node = max(1, min(group, self.node // stride))
        return path_for_group(self.accelerator, sys.maxsize, scale_out=self.scale_out, ranks_per_node=per_node)


def pp_comm_s(s: StepSetup, micro_batches: int) -> float:
    """Activations forward and gradients back across each of a rank's vp chunk boundaries, per micro-batch."""
    lay = s.layout
    if lay.pp == 1:
        return 0.0
    message = s.tokens * s.spec.hidden_size * s.act_bytes / lay.tp
    hop = collective_time_s(Collective.SEND_RECV, message, 2, s.path(2, lay.tp * lay.cp * lay.dp), s.a)
    return 2 * lay.vp * micro_batches * hop


def _stage_params(stage: Stage, distinct: list[Layer], s: StepSetup) -> tuple[float, float]:
    """(dense, routed-expert) parameters one GPU of the stage holds: ``core/placement.stage_params``'s
    placement, summed over distinct blocks. PEFT: the stage's share of the adapters, and no experts."""
    spec, lay = s.spec, s.layout
    counts, first, last = stage
    blocks = sum(layer_params_per_gpu(distinct[k], spec.hidden_size, lay.tp, lay.ep) * n for k, n in counts)
    experts = sum(_routed_params(distinct[k], spec.hidden_size) * n for k, n in counts) / (lay.tp * lay.ep)
    if s.job.is_peft:
        from suanli.core.peft import trainable_params

        layers = sum(n for _, n in counts)
        return trainable_params(spec, s.job).trainable * layers / spec.num_layers / lay.tp, 0.0
    outer = outer_components(spec, plain)
    embedding = outer["embedding"] / lay.tp
    params = blocks
    if first:
        params += embedding + outer.get("position_embedding", 0.0) + outer.get("pooler", 0.0)
    if last:
        params += outer.get("lm_head", 0.0) / lay.tp + outer.get("norms", 0.0)
        if spec.tie_word_embeddings and spec.lm_head and lay.pp > 1:
            params += embedding
    return params - experts, experts


def _routed_params(layer: Layer, hidden_size: int) -> float:
    ffn = layer.ffn
    return ffn.num_experts * mlp_params(ffn.expert, hidden_size, plain) if isinstance(ffn, Moe) else 0.0


def overlapped_s(s: StepSetup, comm: float, window: float) -> float:
    """What a collective hidden behind ``window`` seconds of compute adds: the part that does not fit, plus
    ``overlapped_comm_slowdown`` of the part that does (NCCL takes SMs and bandwidth from that compute)."""
    return max(0.0, comm - window) + s.a.overlapped_comm_slowdown * min(comm, window)


def _dp_exposed_s(s: StepSetup, dense: float, experts: float, cost: StepCost, layers: int, micro_batches: int) -> float:
    """Exposed data-parallel communication of one stage's GPU over a step (see the module docstring)."""
    lay = s.layout
    total = 0.0
    for params, group, stride in ((dense, lay.dp * lay.cp, lay.tp),
                                  (experts, lay.dp * lay.cp // lay.ep, lay.tp * lay.cp * lay.ep)):
        if params <= 0 or group <= 1:
            continue
        if lay.zero == 3 and not s.job.is_peft:
            total += _zero3_exposed_s(s, params, group, stride, cost, layers, micro_batches)
            continue
        path = s.path(group, stride)
        kind = Collective.ALL_REDUCE if lay.zero == 0 else Collective.REDUCE_SCATTER
        grads = collective_time_s(kind, params * s.grad_bytes, group, path, s.a)
        total += overlapped_s(s, grads, cost.backward + cost.recompute) + grads / max(1, layers)
        if lay.zero in (1, 2):  # the updated shards, gathered after the step
            total += collective_time_s(Collective.ALL_GATHER, params * s.act_bytes, group, path, s.a)
    return total


def _zero3_exposed_s(s: StepSetup, params: float, group: int, stride: int, cost: StepCost, layers: int,
                     micro_batches: int) -> float:
    """ZeRO-3/FSDP, every micro-batch: gather the weights for forward and again for backward, reduce-scatter
    the gradients; hidden behind that pass's compute but for the first gather and the last reduce (one block
    each). Hybrid sharding then all-reduces the gradient shards across the replicas, once per step."""
    shards = min(group, s.layout.zero_shards)
    path = s.path(shards, stride)
    gather = collective_time_s(Collective.ALL_GATHER, params * s.act_bytes, shards, path, s.a)
    reduce = collective_time_s(Collective.REDUCE_SCATTER, params * s.grad_bytes, shards, path, s.a)
    backward = cost.backward + cost.recompute
    per_micro_batch = (overlapped_s(s, gather, cost.forward) + overlapped_s(s, gather + reduce, backward)
                       + (gather + reduce) / max(1, layers))
    replicas = collective_time_s(Collective.ALL_REDUCE, params * s.grad_bytes / shards, group // shards,
                                 s.path(group // shards, stride * shards), s.a)
    return micro_batches * per_micro_batch + overlapped_s(s, replicas, backward) + replicas / max(1, layers)


def _optimizer_s(s: StepSetup, trainable: float) -> float:
    """Stream over the shard's states (or, offloaded, the host-link transfer of gradients and weights)."""
    per = s.per_param
    shard = trainable / (s.layout.zero_shards if s.layout.zero >= 1 else 1)
    link = s.accelerator.host_link
    if s.layout.offload_optimizer is not Offload.NONE and link is not None:
        return shard * (per.gradients + per.weights) / (link.bandwidth_bytes_per_s * s.a.network_bandwidth_fraction)
    weights = per.weights if per.master_weights else 2 * per.weights
    stream_bytes = 2 * per.gradients + 2 * (per.master_weights + per.optimizer) + weights
    return shard * stream_bytes / (s.accelerator.memory_bandwidth_bytes_per_s * s.a.memory_bandwidth_fraction)


def tail_s(s: StepSetup, stages: list[Stage], costs: list[StepCost], distinct: list[Layer],
            micro_batches: int) -> tuple[float, float]:
    """(exposed DP comm, optimizer step) of the stage whose tail is longest; alike stages are done once."""
    best, seen = (0.0, 0.0), set()
    for stage, cost in zip(stages, costs, strict=True):
        if stage in seen:
            continue
        seen.add(stage)
        dense, experts = _stage_params(stage, distinct, s)
        layers = sum(n for _, n in stage[0])
        dp = _dp_exposed_s(s, dense, experts, cost, layers, micro_batches)
        opt = _optimizer_s(s, dense + experts)
        if dp + opt > sum(best):
            best = (dp, opt)
    return best
