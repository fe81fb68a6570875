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

from suanli.core.inference_time import ServingSetup, step_time
from suanli.simulate.engine import StepWork


@dataclass(slots=True)
class RooflineStepCost:
    """Seconds per step for one replica (a TP/EP group) of ``setup``; results cached per distinct step."""

    setup: ServingSetup
    _cache: dict[tuple[object, ...], float] = field(default_factory=dict)
    _windowed: bool = field(init=False)

    def __post_init__(self) -> None:
        self._windowed = any(layer.attention is not None and layer.attention.local_span is not None
                             for layer, _ in self.setup.spec.layer_groups())

    def step_s(self, work: StepWork) -> float:
        rows: list[tuple[float, int, float]] = [(1, n, c) for n, c in work.chunks]
        decode, new = work.decode_contexts, work.decode_new_tokens
        if decode and self._windowed:
            rows.extend((1, new, c + work.context_offset) for c in decode)
        elif decode:
            rows.append((len(decode), new, sum(decode) / len(decode) + work.context_offset))
        key = tuple(rows)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        graphs = self.setup.cuda_graphs and not work.chunks  # decode-only steps replay CUDA graphs
        sampled = len(work.chunks) + len(decode) * new  # the verification pass samples every drafted position
        seconds = step_time(self.setup, rows=key, sampled_rows=sampled, graphs=graphs).time_s
        if len(self._cache) < 100_000:
            self._cache[key] = seconds
        return seconds

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
