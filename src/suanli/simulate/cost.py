"""The time of one simulated engine step, from the same per-op roofline as ``suanli infer``.

``RooflineStepCost`` turns a ``StepWork`` into row groups and calls ``core.inference_time.step_time`` — the
function whose one-group case *is* ``infer``'s prefill and decode step — so a single request simulated alone
gets exactly ``infer``'s batch-1 TTFT and TPOT (``tests/unit/test_simulate_cost.py`` checks it).

Decode rows of layers without a sliding window or chunk are priced as one group at their mean context: the
attention kernel's FLOPs and KV bytes are affine in each row's context, so the group is exact. With windowed or
chunked layers each decode row is its own group (min(context, window) is not affine).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from suanli.core.inference_time import ServingSetup, step_time, step_time_split
from suanli.core.serving_ops import Cost, Device, Rows, context_kernels_cost, device
from suanli.simulate.engine import StepWork

# Distinct (new tokens, sampled rows, CUDA graphs) steps whose context-free time is remembered; a bound on the
# cache's memory, not a tuning knob (results do not depend on it).
MAX_CACHED_STEP_SHAPES = 100_000


@dataclass(slots=True)
class RooflineStepCost:
    """Seconds per step for one replica (a TP/EP group) of ``setup``; results cached per distinct step."""

    setup: ServingSetup
    _token_s: dict[tuple[int, int, bool], float] = field(default_factory=dict)
    _windowed: bool = field(init=False)
    _offloaded: bool = field(init=False)
    _devices: dict[bool, Device] = field(init=False)

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

    def step_s(self, work: StepWork) -> float:
        rows: list[tuple[float, int, float]] = [(1, n, c) for n, c in work.chunks]
        decode, new = work.decode_contexts, work.decode_new_tokens
        if decode and self._windowed:
            rows.extend((1, new, c + work.context_offset) for c in decode)
        elif decode:
            rows.append((len(decode), new, sum(decode) / len(decode) + work.context_offset))
        graphs = self.setup.cuda_graphs and not work.chunks  # decode-only steps replay CUDA graphs
        sampled = len(work.chunks) + len(decode) * new  # the verification pass samples every drafted position
        if self._offloaded:
            return step_time(self.setup, rows=tuple(rows), sampled_rows=sampled, graphs=graphs).time_s
        token_key = (work.new_tokens, sampled, graphs)
        token_s = self._token_s.get(token_key)
        token_s, context_s = step_time_split(self.setup, rows=tuple(rows), sampled_rows=sampled, graphs=graphs) \
            if token_s is None else (token_s, self._context_s(tuple(rows), graphs))
        if len(self._token_s) < MAX_CACHED_STEP_SHAPES:
            self._token_s[token_key] = token_s
        return token_s + context_s

    def _context_s(self, rows: Rows, graphs: bool) -> float:
        """The context-dependent kernels only (attention, scans), as ``step_time_split`` prices them."""
        s, a = self.setup, self.setup.assumptions
        d = self._devices[graphs]
        cost = Cost()
        for plan, count in zip(s.layers, s.placement.gpu_counts, strict=True):
            if count:
                cost = cost + context_kernels_cost(plan, rows, d, a, s.tp).times(count)
        return cost.time_s

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
