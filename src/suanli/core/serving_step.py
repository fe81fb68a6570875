"""One engine step of a serving replica on the roofline: the setup every step shares, and the step's time by
what bounds it.

``deployment_setup`` resolves a ``Deployment``'s defaults (the checkpoint's weight format, the engine's KV
format) and plans each layer's per-GPU kernels once (``serving_ops.plan_layers``; llama.cpp's -ngl placement).
A step (``step_time``) runs ``rows`` groups of (sequences, new tokens each, cached context) through every layer,
the output head on the sampled rows, and pays the engine's per-step CPU work (``step_overhead_s``)::

    step = Σ_layers Σ_kernels time(kernel) + head(sampled rows) + step overhead

with each kernel's time the roofline of ``core/inference_time.py``'s module docstring (``serving_ops``), booked
by what bounds it into ``PhaseTime``'s parts. For a simulator the step splits exactly into a part that sees only
the token count (GEMMs, elementwise streams, TP all-reduces, embedding and head: ``step_token_cost``,
``step_head_cost``) and one that depends on each row's context (attention, state scans): ``step_time_split``.
Split out of ``core/inference_time.py``, which builds prefill, decode and serving figures on it and re-exports
these names.
"""

from __future__ import annotations

from dataclasses import dataclass

from suanli.core.inference_memory import checkpoint_weights_format, engine_kv_format, weight_bytes_per_gpu
from suanli.core.serving_ops import (
    Cost,
    LayerPlan,
    Placement,
    Rows,
    context_kernels_cost,
    device,
    embedding_cost,
    head_cost,
    place,
    plan_layers,
    step_forward_cost,
    token_kernels_cost,
)
from suanli.errors import SpecError
from suanli.spec.assumptions import PerformanceAssumptions
from suanli.spec.engines import EnginePreset, KvBudget, get_engine
from suanli.spec.hardware import Accelerator
from suanli.spec.model import ModelSpec
from suanli.spec.precision import NumberFormat
from suanli.spec.serving import Deployment


@dataclass(frozen=True, slots=True, kw_only=True)
class PhaseTime:
    """One forward pass (prefill of the batch, or one decode step) on one GPU, by what bounds it."""

    time_s: float
    compute_s: float  # kernels bound by compute
    weights_s: float  # memory-bound kernels: reading weights
    kv_s: float  # ...reading (and appending to) the KV cache
    activations_s: float  # ...reading and writing activations (norms, residuals, GEMM inputs/outputs)
    comm_s: float  # TP all-reduces / EP all-to-alls on the critical path
    overhead_s: float  # kernel launches, Python dispatch and the engine's per-step CPU work
    flops: float
    weight_bytes: float  # weight bytes the memory-bound kernels read
    kv_bytes: float
    activation_bytes: float

    @property
    def memory_s(self) -> float:
        return self.weights_s + self.kv_s + self.activations_s

    @property
    def bound(self) -> str:
        """``"compute"`` or ``"memory"``: which roof holds more of the kernels' time."""
        return "compute" if self.compute_s >= self.memory_s else "memory"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingSetup:
    """Everything a forward pass's time depends on besides the batch: model, accelerator, engine, number
    formats, layout and assumptions (build with ``serving_setup``)."""

    spec: ModelSpec
    accelerator: Accelerator
    engine: EnginePreset
    weights_format: NumberFormat
    kv_format: NumberFormat
    tp: int
    ep: int
    assumptions: PerformanceAssumptions
    cuda_graphs: bool  # decode replayed as CUDA graphs
    python_eager: bool  # transformers generate(): Python dispatch per layer
    layers: tuple[LayerPlan, ...]
    placement: Placement
    host: Accelerator | None = None


def deployment_setup(spec: ModelSpec, deployment: Deployment) -> ServingSetup:
    """Resolve a deployment's defaults as ``serving_memory`` does (HF loads the checkpoint's dtype, serving engines
    run fp32 checkpoints in bf16; the engine's KV dtype) and plan each layer's per-GPU kernels."""
    d, engine = deployment, deployment.served_engine
    weights_format = d.weights_format or checkpoint_weights_format(spec, engine)
    kv = d.kv_format or engine_kv_format(spec, engine)
    weights = weight_bytes_per_gpu(spec, weights_format, tp=d.tp, ep=d.ep)
    layers = plan_layers(spec, weights, weights_format, kv, tp=d.tp, ep=d.ep, mla=engine.mla_cache)
    gpu_layers = engine.n_gpu_layers if engine.kv_budget is KvBudget.CONTEXT else None
    return ServingSetup(spec=spec, accelerator=d.accelerator, engine=engine, weights_format=weights_format,
                        kv_format=kv, tp=d.tp, ep=d.ep, assumptions=d.assumptions or PerformanceAssumptions(),
                        cuda_graphs=engine.cuda_graphs if d.cuda_graphs is None else d.cuda_graphs,
                        python_eager=engine.kv_budget is KvBudget.FREE_MEMORY, layers=layers,
                        placement=place(spec, layers, weights, gpu_layers), host=d.host)


def serving_setup(spec: ModelSpec, accelerator: Accelerator, *, engine: EnginePreset | None = None,
                  weights_format: NumberFormat | None = None, kv_format: NumberFormat | None = None, tp: int = 1,
                  ep: int = 1, assumptions: PerformanceAssumptions | None = None, cuda_graphs: bool | None = None,
                  host: Accelerator | None = None) -> ServingSetup:
    """``deployment_setup`` with the Deployment given as keywords (vLLM by default)."""
    return deployment_setup(spec, Deployment(accelerator=accelerator, engine=engine or get_engine("vllm"), tp=tp,
                                             ep=ep, weights_format=weights_format, kv_format=kv_format,
                                             cuda_graphs=cuda_graphs, host=host, assumptions=assumptions))


def _phase(cost: Cost, overhead_s: float) -> PhaseTime:
    return PhaseTime(time_s=cost.time_s + overhead_s, compute_s=cost.compute_s, weights_s=cost.weights_s,
                     kv_s=cost.kv_s, activations_s=cost.activations_s, comm_s=cost.comm_s,
                     overhead_s=cost.overhead_s + overhead_s, flops=cost.flops, weight_bytes=cost.weight_bytes,
                     kv_bytes=cost.kv_bytes, activation_bytes=cost.activation_bytes)


def step_time(setup: ServingSetup, *, rows: Rows, sampled_rows: int, graphs: bool) -> PhaseTime:
    """One engine step over ``rows`` (sequences, new tokens each, cached context) groups — a static batch's
    prefill or decode step is one group; a continuous-batching step mixes prefill chunks and decodes — with
    the output head on ``sampled_rows`` rows and the engine's per-step overhead."""
    a = setup.assumptions
    launch = a.graph_kernel_overhead_s if graphs else a.kernel_overhead_s
    cost = step_forward_cost(setup.layers, setup.spec, setup.accelerator, a, rows=rows, tp=setup.tp, ep=setup.ep,
                             launch_s=launch, placement=setup.placement, weights_format=setup.weights_format,
                             host=setup.host)
    cost = cost + head_cost(setup.spec, setup.accelerator, a, rows=sampled_rows, tp=setup.tp, launch_s=launch,
                            placement=setup.placement, host=setup.host)
    return _phase(cost, step_overhead_s(setup))


def step_overhead_s(setup: ServingSetup) -> float:
    """The engine's per-step overhead beyond its kernels: the scheduler's step (native engines' own figure) plus,
    for an eager Python forward, a per-layer dispatch cost."""
    a = setup.assumptions
    python = a.eager_python_overhead_s_per_layer * setup.spec.num_layers if setup.python_eager else 0.0
    step = a.native_step_overhead_s if setup.engine.kv_budget is KvBudget.CONTEXT else a.engine_step_overhead_s
    return step + python


def step_time_split(setup: ServingSetup, *, rows: Rows, sampled_rows: int, graphs: bool) -> tuple[float, float]:
    """``step_time(...).time_s`` in two parts, for a model whose layers all sit on the GPU: the seconds that
    depend only on the step's token count and sampled rows (GEMMs, elementwise streams, TP all-reduces, the
    embedding and head, the engine's overheads) and those that depend on each row's context (attention, state
    scans). A simulator caches the first by token count. The kernels are ``step_time``'s, so the sum is exact."""
    s, a = setup, setup.assumptions
    if any(setup.placement.host_counts):
        raise SpecError("layers offloaded to host memory (llama.cpp -ngl) are not split by token and context; "
                        "use step_time", key="error.core.host_layers_split")
    d = device(s.accelerator, s.weights_format, a, a.graph_kernel_overhead_s if graphs else a.kernel_overhead_s)
    tokens = sum(batch * new_tokens for batch, new_tokens, _ in rows)
    context_part = Cost()
    for plan, count in zip(s.layers, s.placement.gpu_counts, strict=True):
        if count:
            context_part = context_part + context_kernels_cost(plan, rows, d, a, s.tp).times(count)
    token_part = step_token_cost(s, tokens=tokens, graphs=graphs) + step_head_cost(s, sampled_rows=sampled_rows,
                                                                                     graphs=graphs)
    return token_part.time_s + step_overhead_s(s), context_part.time_s


def step_token_cost(setup: ServingSetup, *, tokens: float, graphs: bool) -> Cost:
    """The kernels of a step (layers on the GPU) that see only its token count — GEMMs, elementwise streams, TP
    all-reduces — plus the embedding lookup: ``step_time_split``'s token part before the head."""
    s, a = setup, setup.assumptions
    d = device(s.accelerator, s.weights_format, a, a.graph_kernel_overhead_s if graphs else a.kernel_overhead_s)
    cost = Cost()
    for plan, count in zip(s.layers, s.placement.gpu_counts, strict=True):
        if count:
            cost = cost + token_kernels_cost(plan, s.spec, s.accelerator, a, tokens=tokens, tp=s.tp, d=d).times(count)
    return cost + embedding_cost(s.spec, tokens, d)


def step_head_cost(setup: ServingSetup, *, sampled_rows: int, graphs: bool) -> Cost:
    """The output head of a step on its ``sampled_rows`` rows (``head_cost`` with the step's launch overhead)."""
    s, a = setup, setup.assumptions
    return head_cost(s.spec, s.accelerator, a, rows=sampled_rows, tp=s.tp,
                     launch_s=a.graph_kernel_overhead_s if graphs else a.kernel_overhead_s, placement=s.placement,
                     host=s.host)
