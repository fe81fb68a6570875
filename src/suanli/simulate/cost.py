"""The time of one simulated engine step, from the same per-op roofline as ``suanli infer``.

``RooflineStepCost`` turns a ``StepWork`` into row groups and calls ``core.inference_time.step_time`` — the
function whose one-group case *is* ``infer``'s prefill and decode step — so a single request simulated alone
gets exactly ``infer``'s batch-1 TTFT and TPOT (``tests/unit/test_simulate_cost.py`` checks it).

Decode rows of layers without a sliding window or chunk are priced as one group at their mean context: the
attention kernel's FLOPs and KV bytes are affine in each row's context, so the group is exact. With windowed or
chunked layers each decode row is its own group (min(context, window) is not affine).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from suanli.core.inference_time import ServingSetup, step_head_cost, step_overhead_s, step_time, step_token_cost
from suanli.core.serving_ops import Cost, Device, LayerPlan, Rows, context_kernels_cost, device
from suanli.simulate.engine import StepWork

# Distinct (new tokens, sampled rows, CUDA graphs) steps whose context-free time is remembered; a bound on the
# cache's memory, not a tuning knob (results do not depend on it).
MAX_CACHED_STEP_SHAPES = 100_000


@dataclass(slots=True)
class RooflineStepCost:
    """Seconds per step for one replica (a TP/EP group) of ``setup``; results cached per distinct step."""

    setup: ServingSetup
    _token_s: dict[tuple[int, int, bool], float] = field(default_factory=dict)
    _token_cost: dict[tuple[int, bool], Cost] = field(default_factory=dict)  # layers + embedding, by token count
    _head_cost: dict[tuple[int, bool], Cost] = field(default_factory=dict)  # the head, by sampled rows
    _windowed: bool = field(init=False)
    _offloaded: bool = field(init=False)
    _devices: dict[bool, Device] = field(init=False)
    _gpu_layers: tuple[tuple[LayerPlan, int], ...] = field(init=False)  # (plan, layers of it on the GPU), count > 0
    _overhead_s: float = field(init=False)

    @property
    def convex_in_context(self) -> bool:
        """A decode step's time is convex in the context: every kernel is the larger of a compute and a memory
        time, each affine in the context, and the rest does not depend on it. Sliding windows (min(context, W))
        break this, so windowed models say no."""
        return not self._windowed

    def __post_init__(self) -> None:
        s, a = self.setup, self.setup.assumptions
        self._windowed = any(layer.attention is not None and layer.attention.local_span is not None
                             for layer, _ in s.spec.layer_groups())
        self._offloaded = any(s.placement.host_counts)
        self._devices = {graphs: device(s.accelerator, s.weights_format, a,
                                        a.graph_kernel_overhead_s if graphs else a.kernel_overhead_s)
                         for graphs in (False, True)}
        self._gpu_layers = tuple((plan, count) for plan, count in zip(s.layers, s.placement.gpu_counts, strict=True)
                                 if count)
        self._overhead_s = step_overhead_s(s)

    def step_s(self, work: StepWork) -> float:
        chunks, decode, new, offset = work.chunks, work.decode_contexts, work.decode_new_tokens, work.context_offset
        rows: list[tuple[float, int, float]] = [(1, n, c) for n, c in chunks]
        if decode and self._windowed:
            rows.extend((1, new, c + offset) for c in decode)
        elif decode:
            rows.append((len(decode), new, sum(decode) / len(decode) + offset))
        graphs = self.setup.cuda_graphs and not chunks  # decode-only steps replay CUDA graphs
        sampled = len(chunks) + len(decode) * new  # the verification pass samples every drafted position
        if self._offloaded:
            return step_time(self.setup, rows=tuple(rows), sampled_rows=sampled, graphs=graphs).time_s
        return self._token_part_s(work.new_tokens, sampled, graphs) + self._context_s(tuple(rows), graphs)

    def offset_pricer(self, work: StepWork) -> Callable[[int], float] | None:
        """``j ↦ step_s(work with context_offset j)``, for pricing the steps of a fast-forwarded decode stretch:
        a decode-only step's token part and mean context are worked out once, not at every j (same floats).
        None where that does not apply (prefill chunks, windowed or offloaded layers): price step by step."""
        decode, new = work.decode_contexts, work.decode_new_tokens
        if work.chunks or not decode or self._windowed or self._offloaded:
            return None
        rows, mean, graphs = len(decode), sum(decode) / len(decode), self.setup.cuda_graphs
        token_s = self._token_part_s(work.new_tokens, rows * new, graphs)
        return lambda j: token_s + self._context_s(((rows, new, mean + j),), graphs)

    def _token_part_s(self, tokens: int, sampled: int, graphs: bool) -> float:
        """``step_time_split``'s token part, cached by (tokens, sampled rows, graphs); on a miss built from its two
        pieces, each cached apart (by token count, by sampled rows): the same Costs added in the same order, so
        the same float."""
        key = (tokens, sampled, graphs)
        token_s = self._token_s.get(key)
        if token_s is not None:
            return token_s
        layers = self._token_cost.get((tokens, graphs))
        if layers is None:
            layers = step_token_cost(self.setup, tokens=tokens, graphs=graphs)
            if len(self._token_cost) < MAX_CACHED_STEP_SHAPES:
                self._token_cost[(tokens, graphs)] = layers
        head = self._head_cost.get((sampled, graphs))
        if head is None:
            head = step_head_cost(self.setup, sampled_rows=sampled, graphs=graphs)
            if len(self._head_cost) < MAX_CACHED_STEP_SHAPES:
                self._head_cost[(sampled, graphs)] = head
        token_s = (layers + head).time_s + self._overhead_s
        if len(self._token_s) < MAX_CACHED_STEP_SHAPES:
            self._token_s[key] = token_s
        return token_s

    def _context_s(self, rows: Rows, graphs: bool) -> float:
        """The context-dependent kernels only (attention, scans), as ``step_time_split`` prices them: its
        ``Σ cost.times(count)`` then ``time_s``, with each time field summed over the layers in the same order
        (so the same float; ``tests/unit/test_simulate_cost.py`` checks equality) without building the Costs."""
        a, tp, d = self.setup.assumptions, self.setup.tp, self._devices[graphs]
        compute = weights = kv = activations = comm = overhead = 0.0
        for plan, count in self._gpu_layers:
            k = context_kernels_cost(plan, rows, d, a, tp)
            compute += k.compute_s * count
            weights += k.weights_s * count
            kv += k.kv_s * count
            activations += k.activations_s * count
            comm += k.comm_s * count
            overhead += k.overhead_s * count
        return compute + weights + kv + activations + comm + overhead

    def kv_transfer_s(self, tokens: int, bandwidth_bytes_per_s: float, latency_s: float) -> float:
        """Moving ``tokens`` tokens' KV cache (every layer, this replica's shard) over a link."""
        from suanli.core.kv_cache import kv_bytes_per_token

        s = self.setup
        per_token = kv_bytes_per_token(s.spec, kv_format=s.kv_format, tp=s.tp, mla=s.engine.mla_cache)
        return latency_s + tokens * per_token / bandwidth_bytes_per_s

    def decode_steps_s(self, steps: int, rows: int, context: float) -> float:
        """``steps`` forward passes of ``rows`` sequences at ``context``: a draft proposing tokens inside the
        target's engine step (so without the engine's per-step scheduling overhead, which the step already has)."""
        step = self.step_s(StepWork(chunks=(), decode_contexts=(round(context),) * rows))
        return steps * max(step - self.setup.assumptions.engine_step_overhead_s, 0.0)
