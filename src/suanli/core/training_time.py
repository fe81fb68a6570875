"""Training step time, throughput and MFU: roofline compute plus the communication that is not hidden.

One optimizer step, on the slowest pipeline stage, of ``m`` micro-batches per data-parallel rank (one block's
terms in ``core/training_block.py``):

    step = m · (forward + backward + recompute + TP comm + EP comm + exposed CP comm)    the stage's work
         + bubble + pipeline sends + exposed data-parallel comm + optimizer step        (core/training_sync.py)

- **compute**: every kernel of the stage's blocks (``core/roofline.py``: GEMMs on the saturating efficiency
  curve, attention at ``training_attention_peak_fraction``, norms/activations/residuals as memory streams) for
  one micro-batch of ``micro_batch · seq / cp`` tokens per GPU. Backward runs each GEMM twice (input and weight
  gradient; once for PEFT, whose frozen weights need no weight gradient), each stream twice, FlashAttention's
  backward 2.5× its forward (5 matmuls against 2, Dao 2023, arXiv:2307.08691 §3.1.2). The last stage adds the
  output head and its loss, the first the embedding. Frameworks that run elementwise ops as separate PyTorch
  kernels (all but Megatron-LM) move ``unfused_elementwise_traffic`` times the bytes of our minimal streams.
  FP8 GEMMs run at the fp8 peak times ``low_precision_gemm_ratio`` with Transformer Engine's cast-transposes
  around them (``fp8_cast_op``: input and output gradient per micro-batch, the weight once per step); eager
  attention is a batched GEMM over all S² scores plus their softmax.
- **recompute** (Korthikanti et al. 2022, arXiv:2205.05198 §5): FULL repeats each block's forward, its TP
  all-reduces included; SELECTIVE repeats the attention core.
- **tensor parallel**: per block 2 all-reduces of ``tokens·h`` in forward and 2 in backward (Shoeybi et al.
  2019 §3), on the critical path. Sequence parallelism swaps each for an all-gather + reduce-scatter pair (the
  same bytes), keeps the norms' work ``1/tp``, and gathers the sharded norm outputs again in backward for the
  weight gradients (2 more all-gathers per block: the memory Korthikanti et al.'s 34/t activations save). All
  on the critical path, as in 2022 Megatron-LM (Korthikanti et al.'s runs); ``TrainingJob.tp_comm_overlap``
  (Megatron-Core / Transformer Engine userbuffers, NeMo's recipes) pipelines them with the linears' GEMMs.
- **mixture of experts** (``core/moe_time.py``): expert GEMMs at the per-expert shape on the busiest rank
  (``moe_load_imbalance``), the router's softmax/top-k and the token permutations as memory streams, and the
  expert-parallel all-to-all dispatch and combine of ``tokens·top_k·h``, forward and backward, exposed (a group
  spanning nodes sends its remote share through each rank's own NIC).
- **context parallel**: ring attention passes each rank's K/V around the ring (cp − 1 hops; K/V and their
  gradients in backward), hidden behind that pass's attention compute when it is long enough.
- **pipeline bubble**: (pp − 1)/(m·vp) of the ideal time m·t_stage (1F1B and GPipe: vp = 1; interleaved 1F1B:
  Narayanan et al. 2021, arXiv:2104.04473 §2.2), t_stage the mean stage's per-micro-batch time.

Placement: TP innermost, then CP, EP, DP, PP outermost (Megatron's rank order); a group rides the scale-up
fabric when its ranks lie within one node (``gpus_per_node``, 8 by default), else the scale-out network
(``scale_out``, InfiniBand NDR by default) with one NIC per rank in each node (``core/comms.py``).

Compute format: bf16 (fp16 for fp16 modes) for GEMMs and attention; FP8 jobs run GEMMs in fp8 and attention in
bf16; fp32 jobs run GEMMs on TF32 tensor cores (Megatron-LM's default; ``torch.set_float32_matmul_precision
("high")`` in PyTorch), plain fp32 where the part has none. A part without the format (bf16 on a V100) runs the
next one it has (fp16); ``compute_format`` says which.

MFU = model FLOPs per step / (step · peak · GPUs), with model FLOPs ``core/flops.py``'s training FLOPs at full
attention span (Megatron's, torchtitan's and llm-foundry's convention, no recompute) and the peak of the GEMM
format (fp8 jobs against the fp8 peak, as llm-foundry reports); HFU adds the recomputed FLOPs. Accuracy against
published runs: ``benchmarks/calibrate_training.py``. Left out: the vocabulary-parallel embedding's and loss's
small all-reduces, dropout outside eager Megatron-LM (``core/training_block._eager_dropout``), power limits,
stragglers and data loading.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from suanli.core.comms import DEFAULT_SCALE_OUT
from suanli.core.flops import head_forward_flops, layer_forward_flops
from suanli.core.model_states import state_bytes
from suanli.core.placement import stage_layers
from suanli.core.training_block import embedding_cost, fp8_cast_op, head_cost, layer_cost
from suanli.core.training_sync import Stage, StepCost, StepSetup, pp_comm_s, tail_s
from suanli.quantity import plain
from suanli.spec.assumptions import AttentionSpan, PerformanceAssumptions
from suanli.spec.hardware import Accelerator
from suanli.spec.layout import AttentionImpl, Layout, Recompute
from suanli.spec.model import Layer, ModelSpec
from suanli.spec.training import Framework, PrecisionMode, TrainingJob

GPUS_PER_NODE = 8
_FALLBACK_FORMATS = {"fp8": ("fp8", "bf16", "fp16"), "bf16": ("bf16", "fp16", "fp32"),
                     "fp16": ("fp16", "bf16", "fp32"), "tf32": ("tf32", "fp32")}


@dataclass(frozen=True, slots=True, kw_only=True)
class StepBreakdown:
    """Seconds of one optimizer step by cause; they add up to the step."""

    compute_s: float
    recompute_s: float
    tp_comm_s: float
    cp_comm_exposed_s: float
    ep_comm_s: float
    pp_comm_s: float
    bubble_s: float
    dp_comm_exposed_s: float
    optimizer_s: float

    @property
    def total_s(self) -> float:
        return (self.compute_s + self.recompute_s + self.tp_comm_s + self.cp_comm_exposed_s + self.ep_comm_s
                + self.pp_comm_s + self.bubble_s + self.dp_comm_exposed_s + self.optimizer_s)


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingTime:
    """Time and throughput of one optimizer step of a training job."""

    step_s: float
    breakdown: StepBreakdown
    gpus: int
    samples_per_step: int  # the global batch
    tokens_per_step: int
    micro_batches: int  # per data-parallel rank per step
    stage: int  # the slowest pipeline stage
    stage_micro_batch_s: float  # its time per micro-batch (forward + backward + recompute + TP/EP/CP comm)
    mean_stage_micro_batch_s: float  # the mean over stages, which sets the bubble
    model_flops_per_step: float
    hardware_flops_per_step: float  # with recompute
    compute_format: str
    peak_flops_per_gpu: float

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_per_step / self.step_s

    @property
    def samples_per_s(self) -> float:
        return self.samples_per_step / self.step_s

    @property
    def tflops_per_gpu(self) -> float:
        """Model FLOP/s achieved per GPU, in TFLOP/s."""
        return self.model_flops_per_step / self.step_s / self.gpus / 1e12

    @property
    def mfu(self) -> float:
        return self.model_flops_per_step / (self.step_s * self.peak_flops_per_gpu * self.gpus)

    @property
    def hfu(self) -> float:
        return self.hardware_flops_per_step / (self.step_s * self.peak_flops_per_gpu * self.gpus)


def compute_format(precision: PrecisionMode, accelerator: Accelerator) -> str:
    """The number format GEMMs run in (see the module docstring), falling back to one the part has."""
    if precision is PrecisionMode.FP8:
        wanted = "fp8"
    elif precision in (PrecisionMode.AMP_FP16, PrecisionMode.MIXED_FP16):
        wanted = "fp16"
    elif precision is PrecisionMode.FP32:
        wanted = "tf32"
    else:
        wanted = "bf16"
    return next((f for f in _FALLBACK_FORMATS[wanted] if f in accelerator.peak_flops_per_s), "fp32")


def pipeline_bubble_s(pp: int, micro_batches: int, vp: int, ideal_s: float) -> float:
    """(pp − 1)/(m·vp) of the ideal, bubble-free time (Narayanan et al. 2021 §2.2)."""
    return (pp - 1) / (micro_batches * vp) * ideal_s


def _attention_ratio(job: TrainingJob, accelerator: Accelerator) -> float:
    """FlashAttention's share of peak on this part relative to Ampere: frameworks that call FlashAttention-2 or
    PyTorch SDPA (FSDP/torchtitan, llm-foundry, DeepSpeed, the HF Trainer) run Ampere-generation kernels, which
    reach ``ampere_attention_ratio`` of their A100 share on Hopper (catalog header: 0.48, FlashAttention-3's
    35% of H100 against FlashAttention-2's 73% of A100); Megatron-Core calls cuDNN's Hopper-native fused
    attention through Transformer Engine, and eager attention runs cuBLAS GEMMs: no penalty."""
    if job.framework is Framework.MEGATRON or job.attention is AttentionImpl.EAGER:
        return 1.0
    return accelerator.ampere_attention_ratio


def _setup(spec: ModelSpec, job: TrainingJob, layout: Layout, accelerator: Accelerator, a: PerformanceAssumptions,
           node: int, scale_out: str) -> StepSetup:
    """Everything the terms share: formats, bytes, tokens per micro-batch, the efficiencies training uses."""
    fmt = compute_format(job.precision, accelerator)
    per_param = state_bytes(job.precision, job.optimizer, spec)
    flash = job.attention is not AttentionImpl.EAGER and spec.causal
    fused = job.framework is Framework.MEGATRON
    a = replace(a, attention_peak_fraction=a.training_attention_peak_fraction * _attention_ratio(job, accelerator))
    gemm_a = replace(a, gemm_peak_fraction=a.gemm_peak_fraction * a.low_precision_gemm_ratio) if fmt == "fp8" else a
    return StepSetup(
        spec=spec, job=job, layout=layout, accelerator=accelerator, a=a, gemm_a=gemm_a, gemm_format=fmt,
        other_format=compute_format(PrecisionMode.MIXED_BF16, accelerator) if fmt == "fp8" else fmt,
        act_bytes=4.0 if fmt in ("tf32", "fp32") else 2.0, tokens=layout.micro_batch * job.seq / layout.cp,
        span=AttentionSpan.CAUSAL if flash else AttentionSpan.FULL, node=node, scale_out=scale_out,
        per_param=per_param, grad_bytes=4.0 if job.is_peft else per_param.gradients, fused=fused,
        stream_factor=1.0 if fused else a.unfused_elementwise_traffic)


def _distinct_layers(spec: ModelSpec) -> tuple[list[Layer], list[int]]:
    """The distinct blocks and, per layer, which one it is. Identical layers are one shared object
    (``spec/model.py``), so grouping by identity is exact and avoids hashing every block."""
    ids = [id(layer) for layer in spec.layers]
    index = {key: k for k, key in enumerate(dict.fromkeys(ids))}
    which = [index[key] for key in ids]
    distinct = list({index[key]: layer for key, layer in zip(ids, spec.layers, strict=True)}.values())
    return distinct, which


def _stages(spec: ModelSpec, layout: Layout, which: list[int]) -> list[Stage]:
    """Each rank's blocks, as ``core/placement.stage_layers`` places them (counted, not listed, when every
    block is alike)."""
    pp, chunks = layout.pp, layout.pp * layout.vp
    if max(which) == 0:
        base, extra = divmod(spec.num_layers, chunks)
        sizes = [sum(base + (c < extra) for c in range(rank, chunks, pp)) for rank in range(pp)]
        return [(((0, n),), rank == 0, rank == pp - 1) for rank, n in enumerate(sizes)]
    stages: list[Stage] = []
    for rank, layers in enumerate(stage_layers(spec.num_layers, pp, layout.vp)):
        tally: dict[int, int] = {}
        for i in layers:
            tally[which[i]] = tally.get(which[i], 0) + 1
        stages.append((tuple(sorted(tally.items())), rank == 0, rank == pp - 1))
    return stages


def _stage_costs(stages: list[Stage], by_layer: list[StepCost], s: StepSetup) -> list[StepCost]:
    """Per-micro-batch cost of each pipeline rank: its blocks, plus the embedding (first) and head (last)."""
    ends = (embedding_cost(s), head_cost(s))
    done: dict[Stage, StepCost] = {}
    for stage in stages:
        if stage not in done:
            counts, first, last = stage
            cost = sum((by_layer[k].scaled(n) for k, n in counts), StepCost())
            done[stage] = cost + (ends[0] if first else StepCost()) + (ends[1] if last else StepCost())
    return [done[stage] for stage in stages]


def _model_flops(s: StepSetup, distinct: list[Layer], which: list[int]) -> tuple[float, float]:
    """(model, hardware) FLOPs of one step: ``core/flops.py``'s training FLOPs at full attention span; with
    recompute for hardware FLOPs. PEFT's backward computes input gradients only."""
    h, seq = s.spec.hidden_size, s.job.seq
    forward = sum(head_forward_flops(s.spec, seq, plain).values())
    recomputed = 0.0
    for k, layer in enumerate(distinct):
        parts = layer_forward_flops(layer, h, seq, AttentionSpan.FULL, plain)
        n = which.count(k)
        forward += sum(parts.values()) * n
        if s.layout.recompute is Recompute.FULL:
            recomputed += sum(parts.values()) * n
        elif s.layout.recompute is Recompute.SELECTIVE:
            recomputed += parts.get("attention_scores", 0.0) * n  # a Mamba or short-conv mixer has none
    batch = s.layout.effective_global_batch
    model = (2 if s.job.is_peft else 3) * forward * batch
    return model, model + recomputed * batch


def training_time(spec: ModelSpec, job: TrainingJob, layout: Layout, accelerator: Accelerator, *,
                  assumptions: PerformanceAssumptions | None = None, gpus_per_node: int = GPUS_PER_NODE,
                  scale_out: str = DEFAULT_SCALE_OUT) -> TrainingTime:
    """Step time, its breakdown, throughput and MFU of ``job`` under ``layout`` on ``accelerator``."""
    layout.check(spec)
    s = _setup(spec, job, layout, accelerator, assumptions or PerformanceAssumptions(), gpus_per_node, scale_out)
    m = layout.grad_accumulation_steps
    distinct, which = _distinct_layers(spec)
    by_layer = [layer_cost(layer, s) for layer in distinct]
    stages = _stages(spec, layout, which)
    costs = _stage_costs(stages, by_layer, s)
    totals = [c.total for c in costs]
    slowest = totals.index(max(totals))
    mean = sum(totals) / len(totals)
    dp, opt = tail_s(s, stages, costs, distinct, m)
    work = costs[slowest].scaled(m)
    breakdown = StepBreakdown(
        compute_s=work.forward + work.backward, recompute_s=work.recompute, tp_comm_s=work.tp,
        cp_comm_exposed_s=work.cp, ep_comm_s=work.ep, pp_comm_s=pp_comm_s(s, m),
        bubble_s=pipeline_bubble_s(layout.pp, m, layout.vp, m * mean), dp_comm_exposed_s=dp, optimizer_s=opt)
    model, hardware = _model_flops(s, distinct, which)
    batch = layout.effective_global_batch
    return TrainingTime(
        step_s=breakdown.total_s, breakdown=breakdown, gpus=layout.gpus, samples_per_step=batch,
        tokens_per_step=batch * job.seq, micro_batches=m, stage=slowest, stage_micro_batch_s=costs[slowest].total,
        mean_stage_micro_batch_s=mean, model_flops_per_step=model, hardware_flops_per_step=hardware,
        compute_format=s.gemm_format, peak_flops_per_gpu=accelerator.peak_flops(s.gemm_format))


__all__ = ["GPUS_PER_NODE", "StepBreakdown", "TrainingTime", "compute_format", "fp8_cast_op", "pipeline_bubble_s",
           "training_time"]  # one block's kernels, backward and TP/EP/CP terms: core/training_block.py
