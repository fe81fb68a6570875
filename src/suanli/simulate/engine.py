"""The engine step loop of one replica, and the cost of a step.

A replica repeats: ask its scheduler for a ``StepPlan``, price it (``StepCost``: the same per-op roofline as
``suanli infer``, see ``simulate/cost.py``), advance its clock by that time, and apply it — computed tokens,
sampled tokens (the first one sets TTFT), finished requests, freed blocks.

Decode-only stretches are fast-forwarded: when every running sequence decodes and nothing can change the
batch before some sequence finishes, a block runs out, or a request arrives, the k identical steps are applied
at once (each still priced at its own context), which keeps 10,000-request runs to about a second. The
result is the same as stepping one at a time (``tests/unit/test_simulate.py`` checks it).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain, pairwise
from typing import Protocol

from suanli.errors import SpecError, require_positive
from suanli.i18n import Text
from suanli.simulate.kv_blocks import BlockPool
from suanli.simulate.scheduler import ReplicaState, Scheduler, StepPlan
from suanli.simulate.sequence import Phase, Sequence
from suanli.simulate.timeline import RawRow

MAX_FAST_FORWARD_STEPS = 4096
AFFINE_MIN_STEPS = 8  # shorter runs are priced step by step
AFFINE_TOLERANCE = 1e-9  # relative: an affine run's quarter points agree to rounding


@dataclass(frozen=True, slots=True)
class StepWork:
    """What one step computes, as the cost model needs it: prefill/chunk rows as (new tokens, cached context);
    ``decode_contexts``: the cached context of each decoding row, each grown by ``context_offset``."""

    chunks: tuple[tuple[int, int], ...]
    decode_contexts: tuple[int, ...]
    context_offset: int = 0
    decode_new_tokens: int = 1  # k + 1 under speculative decoding (the target verifies the drafts)

    @property
    def decode_rows(self) -> int:
        return len(self.decode_contexts)

    @property
    def new_tokens(self) -> int:
        return sum(n for n, _ in self.chunks) + len(self.decode_contexts) * self.decode_new_tokens


@dataclass(frozen=True, slots=True, kw_only=True)
class Speculation:
    """Speculative decoding (Leviathan et al. 2023, arXiv:2211.17192 §3): each decoding sequence proposes ``k``
    draft tokens, which the target model verifies in one pass over k + 1 tokens; each draft is accepted with
    probability ``acceptance`` until the first rejection, so a step yields 1 + (accepted drafts) tokens,
    (1 − α^(k+1)) / (1 − α) on average. ``draft_s(rows, mean_context)``: seconds to propose the k drafts for
    ``rows`` sequences (a draft model's k decode steps, or MTP/EAGLE heads)."""

    k: int
    acceptance: float
    draft_s: Callable[[int, float], float]

    def __post_init__(self) -> None:
        require_positive("num_speculative_tokens", self.k, fix=Text("fix.simulate.speculative_tokens"))
        if not 0 <= self.acceptance <= 1:
            raise SpecError(f"acceptance rate must be in [0, 1], got {self.acceptance}",
                            key="error.simulate.acceptance", fields={"value": self.acceptance})

    @property
    def expected_tokens(self) -> float:
        a = self.acceptance
        return float(self.k + 1) if a == 1 else (1 - a ** (self.k + 1)) / (1 - a)

    def tokens(self, rng: random.Random) -> int:
        """Tokens one verification step yields for one sequence."""
        n = 1
        while n <= self.k and rng.random() < self.acceptance:
            n += 1
        return n


class StepCost(Protocol):
    """Seconds one engine step takes."""

    def step_s(self, work: StepWork) -> float: ...


@dataclass(slots=True)
class Recorder:
    """Everything the metrics need, gathered as the run goes: inter-token gaps (weighted, so a fast-forwarded
    stretch adds one value per step), busy time weighted by the running batch, and a per-step timeline."""

    itl: list[tuple[float, int]] = field(default_factory=list)
    running_time: float = 0.0  # Σ running sequences × step time
    busy_s: float = 0.0
    steps: int = 0
    timeline: list[RawRow] = field(default_factory=list)  # rows of simulate.timeline.RAW_COLUMNS
    keep_timeline: bool = True


class Replica:
    """One serving instance (a TP/EP group): its scheduler, block pool and clock."""

    def __init__(self, index: int, scheduler: Scheduler, pool: BlockPool, cost: StepCost, recorder: Recorder, *,
                 fast_forward: bool = True, prefill_only: bool = False, speculation: Speculation | None = None,
                 seed: int = 0) -> None:
        self.index = index
        self.scheduler = scheduler
        self.state = ReplicaState(pool=pool)
        self.cost = cost
        self.recorder = recorder
        self.clock = 0.0
        self.fast_forward = fast_forward
        self.prefill_only = prefill_only  # disaggregated prefill: a sequence leaves once its first token is out
        self.speculation = speculation
        self.rng = random.Random(seed * 1_000_003 + index)  # acceptance draws, owned by this replica

    @property
    def busy(self) -> bool:
        return bool(self.state.running or self.state.waiting)

    @property
    def outstanding(self) -> int:
        return len(self.state.running) + len(self.state.waiting)

    def submit(self, seq: Sequence, now: float) -> None:
        if not self.busy:
            self.clock = max(self.clock, now)
        self.state.waiting.append(seq)

    def step(self, horizon: float = math.inf) -> list[Sequence]:
        """Run one step (or a fast-forwarded stretch ending at the first step that crosses ``horizon``);
        return the sequences that finished."""
        plan = self.scheduler.plan(self.state)
        if not plan.items and not plan.padding:
            if self.state.waiting and not self.state.running:  # run() checks lengths first; never loop
                r = self.state.waiting[0].request
                raise SpecError(f"request {r.id} ({r.prompt_tokens} + {r.output_tokens} tokens) can never be "
                                f"scheduled on this replica (KV pool {self.state.pool.capacity_tokens} tokens)",
                                key="error.simulate.never_scheduled",
                                fields={"request": r.id, "prompt": r.prompt_tokens, "output": r.output_tokens,
                                        "capacity": self.state.pool.capacity_tokens})
            return []
        work = self._work(plan)
        fast = self.fast_forward and self.speculation is None and not work.chunks and not plan.padding
        steps = self._stretch(plan, horizon) if fast else 1
        start = self.clock
        times = self._advance(work, steps, horizon)
        finished = self._apply(plan, times, start)
        self.scheduler.after_step(self.state, plan)
        self._record(work, start, len(times), finished)
        return finished

    # --- pricing ------------------------------------------------------------------------------------------

    def _work(self, plan: StepPlan) -> StepWork:
        chunks, decodes = [], []
        for seq, n in plan.items:
            computed = seq.computed
            if n == 1 and seq.generated and seq.prompt + seq.generated - computed == 1:  # decoding
                decodes.append(computed)
            else:
                chunks.append((n, computed))
        for n, context in plan.padding:
            (decodes.append(context) if n == 1 else chunks.append((n, context)))
        spec = self.speculation
        return StepWork(chunks=tuple(chunks), decode_contexts=tuple(decodes),
                        decode_new_tokens=spec.k + 1 if spec is not None else 1)

    def _stretch(self, plan: StepPlan, horizon: float) -> int:
        """Identical decode steps that can run before anything changes the batch (module docstring): until
        the first sequence finishes, and while the blocks the sequences grow into fit in the free pool."""
        if self.state.waiting and not getattr(self.scheduler, "admission_blocked_until_finish", True):
            return 1
        until_finish = min([s.output - s.generated for s, _ in plan.items])
        limit = min(until_finish, MAX_FAST_FORWARD_STEPS)
        if limit <= 1:
            return 1
        pool = self.state.pool
        size, free = pool.block_size, pool.free
        held = [(s.own_blocks + s.prefix_blocks) * size - s.computed for s, _ in plan.items]  # room left now

        def blocks_needed(k: int) -> int:  # k steps write tokens computed+1 … computed+k
            return sum(-(-(k - room) // size) for room in held if k > room)

        if blocks_needed(limit) <= free:
            return limit
        low, high = 1, limit  # blocks_needed(low) <= free < blocks_needed(high)
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if blocks_needed(mid) <= free else (low, mid)
        return low

    def _advance(self, work: StepWork, steps: int, horizon: float) -> list[float]:
        """Step end times; a stretch stops after the first step that ends past ``horizon``."""
        draft = 0.0
        if self.speculation is not None and work.decode_rows:
            draft = self.speculation.draft_s(work.decode_rows, sum(work.decode_contexts) / work.decode_rows)
        ends, clock = [], self.clock
        for dt in self._stretch_times(work, steps):
            clock += dt + draft
            ends.append(clock)
            if clock >= horizon:
                break
        self.clock = clock
        return ends

    def _stretch_times(self, work: StepWork, steps: int) -> Iterator[float]:
        """Times of ``steps`` identical decode steps whose contexts grow by one each. Within one roofline regime
        a step's time is affine in the context, so a run is priced at its ends and checked inside (at its middle
        when the cost model says its step time is convex in the context — each kernel is the larger of two affine
        times — else at its quarter points); a run that bends (a kernel changing bound) is split in two until each
        part is affine or short. The interpolated times are yielded as consumed (a stretch cut short by an
        arrival uses only its first few)."""
        def step_at(j: int) -> float:
            w = work if j == 0 else StepWork(chunks=work.chunks, decode_contexts=work.decode_contexts,
                                             context_offset=j, decode_new_tokens=work.decode_new_tokens)
            return self.cost.step_s(w)

        pricer = getattr(self.cost, "offset_pricer", None)  # a cost model's faster step_at, same floats
        price: Callable[[int], float] = (pricer(work) if pricer is not None else None) or step_at

        convex = getattr(self.cost, "convex_in_context", False)

        def checks(span: int) -> tuple[int, ...]:
            # A convex function that meets its chord at one interior point is affine on the whole interval.
            return (span // 2,) if convex else (span // 4, span // 2, 3 * span // 4)

        def run(first: int, last: int) -> Iterator[float]:  # steps first..last inclusive
            if last - first < AFFINE_MIN_STEPS:
                return iter([price(j) for j in range(first, last + 1)])
            a, b = price(first), price(last)
            span, rise = last - first, b - a
            for q in checks(span):
                if abs(price(first + q) - (a + rise * q / span)) > AFFINE_TOLERANCE * max(a, b):
                    middle = first + span // 2
                    return chain(run(first, middle), run(middle + 1, last))
            return (a + rise * (j - first) / span for j in range(first, last + 1))

        return run(0, steps - 1)

    # --- applying -----------------------------------------------------------------------------------------

    def _apply(self, plan: StepPlan, ends: list[float], start: float) -> list[Sequence]:
        k, pool, finished, itl = len(ends), self.state.pool, [], self.recorder.itl
        first, last = ends[0], ends[-1]
        if k > 1:
            rows = len(plan.items)
            itl.extend([(end - before, rows) for before, end in pairwise(ends)])
        speculation, holds_batch = self.speculation, self.scheduler.holds_batch
        leaves = self.prefill_only  # disaggregated prefill: every sequence leaves after its first token
        regular = 0  # decodes whose previous token came out at the end of the previous step: one shared gap
        for seq, n in plan.items:
            generated = seq.generated
            if n == 1 and generated and seq.prompt + generated - seq.computed == 1:  # decoding
                gained = k if speculation is None else self._verified(seq)
                computed = seq.computed = seq.computed + gained
                if gained > 1:
                    seq.grow(pool, computed)
                previous = seq.last_token_s
                if previous == start:
                    regular += 1
                elif previous is not None:
                    itl.append((first - previous, 1))
                generated = seq.generated = generated + gained
                seq.last_token_s = last
            else:
                sampled = seq.computed + n == seq.prompt + generated
                seq.computed += n
                seq.after_compute(pool)
                if not sampled:
                    continue
                if generated == 0:
                    seq.first_token_s = first
                elif seq.last_token_s is not None:
                    itl.append((first - seq.last_token_s, 1))
                generated = seq.generated = generated + 1
                seq.last_token_s = first
            if (generated >= seq.output or leaves) and not holds_batch:
                finished.append(self._finish(seq, last))
        if regular:
            itl.append((first - start, regular))
        if holds_batch and self.state.running and all(s.done for s in self.state.running):
            finished = [self._finish(s, last) for s in self.state.running]
        if finished:
            self.state.running = [s for s in self.state.running if s.phase is not Phase.FINISHED]
        return finished

    def _verified(self, seq: Sequence) -> int:
        """Tokens a speculative step adds to ``seq``: the accepted drafts plus one, within its output and within
        the blocks it can hold (a sequence that cannot grow keeps just the verified token)."""
        if self.speculation is None:
            return 1
        tokens = min(self.speculation.tokens(self.rng), seq.output - seq.generated)
        return tokens if tokens == 1 or seq.grow(self.state.pool, seq.computed + tokens) else 1

    def _finish(self, seq: Sequence, now: float) -> Sequence:
        seq.finish_s, seq.phase = now, Phase.FINISHED
        seq.release(self.state.pool)
        on_finish = getattr(self.scheduler, "on_finish", None)
        if on_finish is not None:
            on_finish(self.state, seq)
        return seq

    def _record(self, work: StepWork, start: float, steps: int, finished: list[Sequence]) -> None:
        r, dt = self.recorder, self.clock - start
        running = len(self.state.running) + len(finished)
        r.running_time += running * dt
        r.busy_s += dt
        r.steps += steps
        if r.keep_timeline:
            r.timeline.append((start, self.clock, steps, self.index, running, len(self.state.waiting),
                               sum(n for n, _ in work.chunks), self.state.pool.used))
