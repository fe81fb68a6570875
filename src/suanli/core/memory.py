"""Training memory per GPU, itemised, for the pipeline stage that needs the most.

    total = weights + gradients + master weights + optimizer states      (model states, core/model_states.py)
          + activations × micro-batches in flight + backward workspace   (core/activations.py)
          + communication buffers + CUDA context + allocator fragmentation   (named assumptions)
          + a tied embedding's two gradients summed at the end of backward − gradients not yet allocated
            at the activation peak (one process, one micro-batch per step: ``gradient_overlap``)

Model states follow the stage's parameters (core/placement.py) and the ZeRO stage; PEFT methods keep a
frozen base (in bf16, or NF4 for QLoRA) plus fp32 adapters (core/peft.py). Activations follow the
micro-batch, never the global batch: gradient accumulation costs time, not memory.

Micro-batches in flight on pipeline stage s (Narayanan et al. 2021 §2.2; Korthikanti et al. 2022 §4.2.3):
GPipe keeps all m; 1F1B keeps min(pp − s, m); the interleaved schedule keeps (1 + (pp − 1)/(pp · vp)) times
that. The first stage holds the most; the last (with the output head) one.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from suanli.core.activations import Flavour, stage_activation_bytes, stage_workspace_bytes
from suanli.core.frozen_base import frozen_base
from suanli.core.model_states import ShardedStates, adapter_state_bytes, add_states, shard_states, state_bytes
from suanli.core.peft import trainable_params
from suanli.core.placement import StageParams, expert_params_per_gpu, layer_params_per_gpu, stage_params
from suanli.spec.assumptions import MemoryAssumptions
from suanli.spec.hardware import Accelerator
from suanli.spec.layout import Layout, PipelineSchedule
from suanli.spec.model import ModelSpec
from suanli.spec.precision import parse_number_format
from suanli.spec.training import Framework, Method, PrecisionMode, TrainingJob


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingMemory:
    """Bytes on one GPU of the most loaded pipeline stage, and on its host."""

    stage: int
    weights_bytes: float
    gradients_bytes: float
    master_weights_bytes: float
    optimizer_bytes: float
    activations_bytes: float
    workspace_bytes: float  # transient in backward: logits buffers on the last stage, a recomputed block
    comm_buffers_bytes: float
    cuda_context_bytes: float
    fragmentation_bytes: float
    host_bytes: float  # offloaded states, per GPU
    nvme_bytes: float
    capacity_bytes: float
    trainable_params: float
    micro_batches_in_flight: float
    gradient_overlap_bytes: float = 0.0  # gradients and activations never all live at once (gradient_overlap)
    tied_grad_sum_bytes: float = 0.0  # a tied embedding's two gradient terms and their sum (gradient_overlap)

    @property
    def model_states_bytes(self) -> float:
        return self.weights_bytes + self.gradients_bytes + self.master_weights_bytes + self.optimizer_bytes

    @property
    def total_bytes(self) -> float:
        return (self.model_states_bytes + self.activations_bytes + self.workspace_bytes + self.comm_buffers_bytes
                + self.cuda_context_bytes + self.fragmentation_bytes + self.tied_grad_sum_bytes
                - self.gradient_overlap_bytes)

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.capacity_bytes

    @property
    def headroom_bytes(self) -> float:
        return self.capacity_bytes - self.total_bytes


def device_memory_assumptions(accelerator: Accelerator) -> MemoryAssumptions:
    """The default memory assumptions for a device: a CPU trains in its host memory, with no CUDA context (measured:
    ``suanli measure`` on the CPU accounts for every tensor without one)."""
    if accelerator.kind == "cpu":
        return MemoryAssumptions(cuda_context_bytes=0.0)
    return MemoryAssumptions()


def micro_batches_in_flight(layout: Layout, stage: int = 0) -> float:
    """Micro-batches whose activations pipeline stage ``stage`` holds at once: under 1F1B stage s has
    pp − s forward passes outstanding before its first backward; GPipe holds all m everywhere; the
    interleaved schedule adds (pp − 1)/(pp·vp) of a pipeline's worth (Korthikanti et al. 2022 §4.2.3)."""
    m = layout.grad_accumulation_steps
    if layout.pp == 1:
        return 1.0
    if layout.schedule is PipelineSchedule.GPIPE:
        return float(m)
    outstanding = float(min(layout.pp - stage, m))
    if layout.schedule is PipelineSchedule.INTERLEAVED:
        return outstanding * (1 + (layout.pp - 1) / (layout.pp * layout.vp))
    return outstanding


def training_memory(spec: ModelSpec, job: TrainingJob, layout: Layout, *, capacity_bytes: float,
                    assumptions: MemoryAssumptions | None = None) -> TrainingMemory:
    """Per-GPU training memory of the most loaded stage. ``capacity_bytes`` is what the GPU offers."""
    layout.check(spec)
    assumptions = assumptions or MemoryAssumptions()
    candidates = [_stage_memory(spec, job, layout, stage, capacity_bytes, assumptions)
                  for stage in _first_of_alike(spec, stage_params(spec, layout))]
    return max(candidates, key=lambda m: m.total_bytes)


def _first_of_alike(spec: ModelSpec, stages: list[StageParams]) -> list[StageParams]:
    """The stages worth evaluating: of those holding the same blocks (by kind and count) and the same ends (first,
    last), only the first. Everything but the micro-batches in flight is equal across such a set, and those never
    grow with the stage index (``micro_batches_in_flight``), so the first holds the most: the same maximum as
    evaluating all of them, at a fraction of the cost under deep pipelines."""
    group_of, last = spec.group_of_layers(), len(stages) - 1
    uniform = len(spec.layer_groups()) == 1
    seen: set[tuple[object, ...]] = set()
    kept = []
    for stage in stages:
        blocks: object = len(stage.layers) if uniform else tuple(sorted(Counter(group_of[i] for i in stage.layers)
                                                                        .items()))
        key = (blocks, stage.stage == 0, stage.stage == last)
        if key not in seen:
            seen.add(key)
            kept.append(stage)
    return kept


def _stage_memory(spec: ModelSpec, job: TrainingJob, layout: Layout, stage: StageParams,
                  capacity_bytes: float, assumptions: MemoryAssumptions) -> TrainingMemory:
    states, trainable = _stage_states(spec, job, layout, stage)
    in_flight = micro_batches_in_flight(layout, stage.stage)
    activations = in_flight * _stage_activations(spec, job, layout, stage)
    comm = _comm_buffer_bytes(spec, layout, states, assumptions) + _gathered_layers_bytes(spec, job, layout, stage)
    flavour = Flavour.MEGATRON if job.framework is Framework.MEGATRON else Flavour.HUGGINGFACE
    workspace = stage_workspace_bytes(spec, job, layout, last=stage.stage == layout.pp - 1, flavour=flavour)
    tied, overlap = gradient_overlap(spec, layout, job, gradients=states.gradients,
                                     activations=activations + workspace)
    peak = (states.weights + states.gradients + states.master_weights + states.optimizer + activations + workspace
            + comm + tied - overlap)
    return TrainingMemory(
        stage=stage.stage, weights_bytes=states.weights, gradients_bytes=states.gradients,
        master_weights_bytes=states.master_weights, optimizer_bytes=states.optimizer,
        activations_bytes=activations, workspace_bytes=workspace, comm_buffers_bytes=comm,
        cuda_context_bytes=assumptions.cuda_context_bytes,
        fragmentation_bytes=assumptions.allocator_fragmentation * peak,
        host_bytes=states.offloaded_to_host, nvme_bytes=states.offloaded_to_nvme, capacity_bytes=capacity_bytes,
        trainable_params=trainable, micro_batches_in_flight=in_flight, gradient_overlap_bytes=overlap,
        tied_grad_sum_bytes=tied,
    )


def gradient_overlap(spec: ModelSpec, layout: Layout, job: TrainingJob, *, gradients: float,
                     activations: float) -> tuple[float, float]:
    """(tied-embedding gradient sum, overlap): bytes live only at the end of backward, and bytes of gradients and
    activations that are never live together, so that the peak is not the sum of every term.

    Plain PyTorch (the transformers Trainer, a hand-written loop) frees the gradients after each optimizer step
    (``zero_grad(set_to_none=True)``, the default since PyTorch 2.0) and allocates each one in the backward pass,
    as the activations it was computed from are released. With one process and one micro-batch per step no
    gradient is alive when the forward pass ends, where the activations and the loss's buffers peak; the
    gradients then grow as the activations shrink. The backward pass ends at its own peak when the input
    embedding is tied to the output head and trained: the head's gradient (computed first) and the embedding
    lookup's (computed last) are two full vocab × hidden tensors that autograd's input buffer sums out of place
    (``InputBuffer::accumulate`` adds in place only a tensor it holds the last reference to), so beside all other
    gradients three such tensors are live: tied = 2 · vocab · hidden · gradient bytes. The peak is
    max(activations + workspace, gradients + tied), and overlap = gradients + tied + activations + workspace − peak.
    Measured with ``suanli measure`` (tracked allocation replay of tinyllama-stories15m training steps on the CPU,
    fused AdamW: at seq 256 the peak is the loss's log-softmax backward, no gradient allocated yet, within 0.001%
    of activations + workspace; at seq 32 it is that out-of-place sum, equal to gradients + tied to the byte). Not
    under gradient accumulation or pipelining (gradients of earlier micro-batches are live during the next
    forward), DDP (its buckets are allocated up front) or ZeRO/FSDP and Megatron/DeepSpeed (flat, preallocated
    gradient buffers): there (0, 0)."""
    if job.framework is not Framework.HF or layout.gpus != 1 or layout.grad_accumulation_steps != 1:
        return 0.0, 0.0
    tied = 0.0
    if spec.tie_word_embeddings and spec.lm_head and job.method is Method.FULL:
        per_param = state_bytes(job.precision, job.optimizer, spec).gradients
        tied = 2.0 * (spec.vocab_size + spec.extra_token_rows) * spec.hidden_size * per_param
    peak = max(activations, gradients + tied)
    return tied, gradients + tied + activations - peak


def _stage_activations(spec: ModelSpec, job: TrainingJob, layout: Layout, stage: StageParams) -> float:
    """One micro-batch's saved activations on the stage. A PEFT method's are counted op by op inside the
    activation model (its frozen base saves less than full training; its adapters, virtual tokens and prefix
    keys add their own: ``core/activations_peft.py``); its weight-shaped temporaries are workspace."""
    flavour = Flavour.MEGATRON if job.framework is Framework.MEGATRON else Flavour.HUGGINGFACE
    return stage_activation_bytes(spec, job, layout, stage.layers, flavour=flavour,
                                  first=stage.stage == 0, last=stage.stage == layout.pp - 1)


def _stage_states(spec: ModelSpec, job: TrainingJob, layout: Layout,
                  stage: StageParams) -> tuple[ShardedStates, float]:
    """Sharded model states of one stage's GPU, and its trainable parameter count."""
    if job.method is Method.FULL:
        per_param = state_bytes(job.precision, job.optimizer, spec)
        experts = expert_params_per_gpu(spec, stage.layers, layout)
        dense = shard_states(trainable=stage.params - experts, frozen_weight_bytes=0.0, per_param=per_param,
                             layout=layout)
        expert_shards = max(1, layout.zero_shards // layout.ep)  # the expert-data-parallel group
        routed = shard_states(trainable=experts, frozen_weight_bytes=0.0, per_param=per_param, layout=layout,
                              shards=expert_shards)
        return add_states(dense, routed), stage.params
    peft = trainable_params(spec, job)
    share = stage.block_params / max(_all_block_params(spec, layout), 1.0)
    trainable = peft.trainable * share if stage.block_params else 0.0
    # adapters are new parameters beside a frozen base; BitFit instead trains a subset (the biases) of it
    frozen = stage.params - trainable if job.method is Method.BITFIT else stage.params
    base = frozen_base(spec, job)  # a quantized checkpoint's base stays quantized under GPTQ/AWQ/bnb adapters
    stored = (peft.frozen_bytes if peft.frozen_bytes is not None else base.frozen_bytes if base
              else _frozen_bytes_per_param(job) * peft.frozen)
    frozen_bytes = stored * frozen / peft.frozen
    return shard_states(trainable=trainable, frozen_weight_bytes=frozen_bytes,
                        per_param=adapter_state_bytes(job.optimizer), layout=layout), trainable


def _frozen_bytes_per_param(job: TrainingJob) -> float:
    """A PEFT method's frozen base in the model's dtype: fp32 for an all-fp32 job (a model loaded in float32, as
    ``suanli measure`` runs it on the CPU), else bf16 (a base loaded in bf16 or fp16 for adapter training)."""
    return 4.0 if job.precision is PrecisionMode.FP32 else 2.0


def _all_block_params(spec: ModelSpec, layout: Layout) -> float:
    return sum(stage.block_params for stage in stage_params(spec, layout)) / layout.pp


def _gathered_layers_bytes(spec: ModelSpec, job: TrainingJob, layout: Layout, stage: StageParams) -> float:
    """ZeRO-3 / FSDP full-shard all-gather the current block's parameters before computing it and prefetch
    the next (FSDP ``forward_prefetch``/``backward_prefetch``, DeepSpeed ``stage3_prefetch_bucket_size``):
    two unsharded blocks in their stored format (2 bytes; QLoRA's frozen base is gathered packed in NF4),
    beyond the shard each GPU keeps."""
    if layout.zero < 3 or layout.zero_shards == 1 or not stage.layers:
        return 0.0
    distinct = {id(spec.layers[i]): spec.layers[i] for i in stage.layers}.values()  # identical layers share one object
    largest = max(layer_params_per_gpu(layer, spec.hidden_size, layout.tp, layout.ep) for layer in distinct)
    stored = parse_number_format("nf4").bytes_per_param if job.method is Method.QLORA else 2.0
    return 2 * largest * stored * (1 - 1 / layout.zero_shards)


def _comm_buffer_bytes(spec: ModelSpec, layout: Layout, states: ShardedStates,
                       assumptions: MemoryAssumptions) -> float:
    """DDP's flat gradient buckets (a full gradient copy unless gradient_as_bucket_view), or DeepSpeed's
    reduce and all-gather buckets (hidden² elements each, in 2-byte precision) under ZeRO."""
    if layout.zero == 0:  # DDP wraps the model only when there is more than one replica
        return states.gradients if assumptions.ddp_bucket_as_grad_copy and layout.dp > 1 else 0.0
    # DeepSpeed's ZeRO optimizer allocates its buckets whatever the data-parallel size
    bucket_elements = assumptions.zero_bucket_elements_per_hidden_sq * spec.hidden_size**2
    return 2 * bucket_elements * 2.0
