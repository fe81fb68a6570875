"""Which tokens each engine computes in its next step: one small policy per engine, with its defaults sourced.

Every policy sees the replica's waiting queue (FCFS), its running sequences (in admission order) and the KV
block pool, and returns a ``StepPlan``: (sequence, tokens to compute) pairs. They differ in what they let share
a step, how they admit, and what they do when the KV cache runs out:

=============  ====================================================  =================================  ==========
engine         one step                                              admission                          KV full
=============  ====================================================  =================================  ==========
vLLM V1        running first (decode 1 token, prefill chunks), then  token budget ``max_num_batched_    preempt the
               waiting, within ``max_num_batched_tokens``; chunked   tokens``, ``max_num_seqs``, blocks  newest
               prefill on (vllm/v1/core/sched/scheduler.py           for this step only                 running
               ``Scheduler.schedule``)                                                                  (recompute)
SGLang         a prefill batch whenever one can be formed (up to     blocks for the prompt + a reserve  retract the
               ``chunked_prefill_size`` new tokens), else a decode   of ``new_token_ratio`` × remaining newest
               batch; no mixing (``enable_mixed_chunk`` off)         output (≤ 4096) of every running   running;
               (sglang/srt/managers/scheduler.py                     request (schedule_policy.py        ratio back
               ``get_next_batch_to_run``)                            ``PrefillAdder``)                  to initial
TensorRT-LLM   context and generation requests in one iteration,     ``GUARANTEED_NO_EVICT``: blocks    never
               up to ``max_num_tokens``; chunked context off         for prompt + max output reserved   happens
               (tensorrt_llm CapacityScheduler, MicroBatchScheduler) at admission
TGI v3         decode batch plus new prefill chunks within           total tokens (input + max new) of  never
               ``max_batch_prefill_tokens`` − the decode rows        the batch within the KV budget     happens
               (backends/v3/src/backend.rs ``batching_task``)        (``max_batch_total_tokens``)
static (HF     a batch of up to ``batch_size`` requests, prefilled   only when the previous batch is    —
generate)      padded to the longest prompt, decoded until the       entirely done
               longest output is done
=============  ====================================================  =================================  ==========
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from suanli.errors import require_positive
from suanli.simulate.kv_blocks import BlockPool
from suanli.simulate.sequence import Phase, Sequence
from suanli.spec.engines import NewTokenReserve


@dataclass(slots=True)
class ReplicaState:
    """What a scheduler works on: the block pool, the FCFS waiting queue and the running sequences."""

    pool: BlockPool
    waiting: deque[Sequence] = field(default_factory=deque)
    running: list[Sequence] = field(default_factory=list)
    preemptions: int = 0


@dataclass(slots=True)
class StepPlan:
    """The work of one engine step. ``items``: (sequence, tokens it computes). ``padding``: for static batching,
    (new tokens, context) rows the GPU computes for padding (shorter prompts, finished sequences)."""

    items: list[tuple[Sequence, int]]
    padding: list[tuple[int, int]] = field(default_factory=list)

    @property
    def decode_only(self) -> bool:
        return not self.padding and all(n == 1 and s.decoding for s, n in self.items)


class Scheduler(Protocol):
    """One engine's batching policy (see the module docstring)."""

    name: str
    holds_batch: bool  # static batching: sequences leave together when the whole batch is done

    def plan(self, state: ReplicaState) -> StepPlan: ...

    def after_step(self, state: ReplicaState, plan: StepPlan) -> None: ...


def _preempt(state: ReplicaState, victim: Sequence) -> None:
    state.running.remove(victim)
    victim.preempt(state.pool)
    state.waiting.appendleft(victim)
    state.preemptions += 1


@dataclass(slots=True)
class VllmScheduler:
    """vLLM V1 (``Scheduler.schedule``): one token budget shared by running and waiting requests."""

    max_num_batched_tokens: int
    max_num_seqs: int
    chunked_prefill: bool = True
    name: str = "vllm"
    holds_batch: bool = False

    def __post_init__(self) -> None:
        require_positive("max_num_batched_tokens", self.max_num_batched_tokens)
        require_positive("max_num_seqs", self.max_num_seqs)

    def plan(self, state: ReplicaState) -> StepPlan:
        budget, items, preempted = self.max_num_batched_tokens, [], False
        size = state.pool.block_size
        for seq in list(state.running):
            if budget <= 0:
                break
            if seq.phase is not Phase.RUNNING:  # preempted earlier in this loop
                continue
            n = seq.prompt + seq.generated - seq.computed  # seq.remaining, inlined: the hottest loop of a run
            n = n if n < budget else budget
            if seq.computed + n <= (seq.own_blocks + seq.prefix_blocks) * size:  # room in its blocks already
                items.append((seq, n))
                budget -= n
                continue
            while not seq.grow(state.pool, seq.computed + n):
                victim = state.running[-1]  # FCFS: the latest admitted goes first
                _preempt(state, victim)
                preempted = True
                if victim is seq:
                    break
            if seq.phase is Phase.RUNNING:
                items.append((seq, n))
                budget -= n
        if not preempted:
            budget = self._admit(state, items, budget)
        return StepPlan(items)

    def _admit(self, state: ReplicaState, items: list[tuple[Sequence, int]], budget: int) -> int:
        while state.waiting and budget > 0 and len(state.running) < self.max_num_seqs:
            seq = state.waiting[0]
            before = seq.computed
            seq.admit(state.pool)
            n = min(seq.remaining, budget)
            if (n < seq.remaining and not self.chunked_prefill) or not seq.grow(state.pool, seq.computed + n):
                seq.unadmit(state.pool, before)
                break
            state.waiting.popleft()
            state.running.append(seq)
            items.append((seq, n))
            budget -= n
        return budget

    def after_step(self, state: ReplicaState, plan: StepPlan) -> None:
        return None


@dataclass(slots=True)
class SglangScheduler:
    """SGLang: prefill batches take priority over decode (no mixing by default); admission keeps a reserve
    for the running requests' future tokens (``reserve``: SGLang's defaults decay from 0.7 toward 0.098 of
    their remaining output over 600 steps, and jump back after a retraction; sources in engines.toml)."""

    chunked_prefill_size: int
    max_running_requests: int
    max_prefill_tokens: int
    reserve: NewTokenReserve
    new_token_ratio: float = 0.0  # set to reserve.init_ratio
    name: str = "sglang"
    holds_batch: bool = False
    admission_blocked_until_finish: bool = False  # the decaying reserve can admit a waiting request any step

    def __post_init__(self) -> None:
        self.new_token_ratio = self.new_token_ratio or self.reserve.init_ratio

    def plan(self, state: ReplicaState) -> StepPlan:
        prefill = self._prefill_batch(state)
        return prefill if prefill.items else self._decode_batch(state)

    def _reserve_tokens(self, state: ReplicaState) -> float:
        return sum(min(s.request.output_tokens - s.generated, self.reserve.clip_max_new_tokens) * self.new_token_ratio
                   for s in state.running)

    def _prefill_batch(self, state: ReplicaState) -> StepPlan:
        budget = min(self.chunked_prefill_size, self.max_prefill_tokens)
        items: list[tuple[Sequence, int]] = []
        for seq in state.running:  # a chunked prefill in progress continues first
            mid_prefill = seq.remaining > 1 or (seq.generated == 0 and seq.remaining > 0)
            if budget > 0 and mid_prefill:
                n = min(seq.remaining, budget)
                if seq.grow(state.pool, seq.computed + n):
                    items.append((seq, n))
                    budget -= n
        free_tokens = state.pool.free * state.pool.block_size - self._reserve_tokens(state)
        while state.waiting and budget > 0 and len(state.running) < self.max_running_requests:
            seq = state.waiting[0]
            before = seq.computed
            seq.admit(state.pool)
            own = min(seq.request.output_tokens - seq.generated, self.reserve.clip_max_new_tokens) \
                * self.new_token_ratio
            n = min(seq.remaining, budget)
            if seq.remaining + own > free_tokens or not seq.grow(state.pool, seq.computed + n):
                seq.unadmit(state.pool, before)
                break
            free_tokens -= seq.remaining + own
            state.waiting.popleft()
            state.running.append(seq)
            items.append((seq, n))
            budget -= n
        return StepPlan(items)

    def _decode_batch(self, state: ReplicaState) -> StepPlan:
        items: list[tuple[Sequence, int]] = []
        for seq in list(state.running):
            if seq.phase is not Phase.RUNNING:
                continue
            while not seq.grow(state.pool, seq.computed + 1):
                victim = state.running[-1]
                _preempt(state, victim)
                self.new_token_ratio = self.reserve.init_ratio
                if victim is seq:
                    break
            if seq.phase is Phase.RUNNING:
                items.append((seq, 1))
        return StepPlan(items)

    def after_step(self, state: ReplicaState, plan: StepPlan) -> None:
        if plan.decode_only:
            r = self.reserve
            floor = r.init_ratio * r.min_ratio_factor
            decay = (r.init_ratio - floor) / r.decay_steps
            self.new_token_ratio = max(floor, self.new_token_ratio - decay)


@dataclass(slots=True)
class ReservingScheduler:
    """In-flight batching that reserves each request's whole KV at admission and so never preempts:
    TensorRT-LLM (``GUARANTEED_NO_EVICT``, budget ``max_num_tokens``) and TGI v3 (budget
    ``max_batch_prefill_tokens`` minus the decode rows). Prefill and decode share the step."""

    token_budget: int
    max_running: int
    chunked_prefill: bool
    decode_rows_count: bool  # TGI: the decoding rows use up the prefill budget
    name: str
    holds_batch: bool = False
    reserved: dict[int, int] = field(default_factory=dict)  # sequence id → blocks reserved beyond those held

    def plan(self, state: ReplicaState) -> StepPlan:
        budget, items = self.token_budget, []
        for seq in state.running:
            if budget <= 0:
                break
            n = min(seq.remaining, budget)
            self._grow_reserved(state.pool, seq, n)
            items.append((seq, n))
            budget -= n
        if self.decode_rows_count:
            budget = self.token_budget - len(items)
        while state.waiting and budget > 0 and len(state.running) < self.max_running:
            seq = state.waiting[0]
            before = seq.computed
            seq.admit(state.pool)
            n = min(seq.remaining, budget)
            total = state.pool.blocks_for(seq.final_tokens)
            if (n < seq.remaining and not self.chunked_prefill) or not state.pool.take(total - seq.blocks):
                seq.unadmit(state.pool, before)
                break
            self.reserved[seq.request.id] = total - seq.blocks
            state.waiting.popleft()
            state.running.append(seq)
            items.append((seq, n))
            budget -= n
            self._grow_reserved(state.pool, seq, 0)
        return StepPlan(items)

    def _grow_reserved(self, pool: BlockPool, seq: Sequence, n: int) -> None:
        """Move blocks from the request's reservation to the sequence as it grows (never fails)."""
        need = pool.blocks_for(seq.computed + n) - seq.blocks
        if need > 0:
            moved = min(need, self.reserved.get(seq.request.id, 0))
            self.reserved[seq.request.id] = self.reserved.get(seq.request.id, 0) - moved
            seq.own_blocks += moved

    def on_finish(self, state: ReplicaState, seq: Sequence) -> None:
        state.pool.give_back(self.reserved.pop(seq.request.id, 0))

    def after_step(self, state: ReplicaState, plan: StepPlan) -> None:
        return None


@dataclass(slots=True)
class StaticScheduler:
    """Hugging Face ``generate`` on a padded batch: up to ``batch_size`` requests start together, the prompts
    are left-padded to the longest, every row decodes until the longest output is done, and the next batch
    starts only then."""

    batch_size: int
    name: str = "hf"
    holds_batch: bool = True
    _batch: list[Sequence] = field(default_factory=list)
    _steps: int = 0

    def plan(self, state: ReplicaState) -> StepPlan:
        if not state.running:
            self._start(state)
            if not state.running:
                return StepPlan([])
            width = max(s.request.prompt_tokens for s in self._batch)
            return StepPlan([(s, s.remaining) for s in self._batch],
                            padding=[(width - s.request.prompt_tokens, 0) for s in self._batch
                                     if s.request.prompt_tokens < width])
        self._steps += 1
        context = max(s.request.prompt_tokens for s in self._batch) + self._steps - 1
        live = [(s, 1) for s in self._batch if not s.done]
        return StepPlan(live, padding=[(1, context)] * (len(self._batch) - len(live)))

    def _start(self, state: ReplicaState) -> None:
        self._batch, self._steps = [], 0
        longest = 0
        while state.waiting and len(self._batch) < self.batch_size:
            seq = state.waiting[0]
            longest = max(longest, seq.request.prompt_tokens + seq.request.output_tokens)
            blocks = state.pool.blocks_for(longest) * (len(self._batch) + 1) - sum(s.blocks for s in self._batch)
            if not state.pool.take(blocks):
                break
            seq.own_blocks += blocks
            seq.phase = Phase.RUNNING
            state.waiting.popleft()
            state.running.append(seq)
            self._batch.append(seq)

    def after_step(self, state: ReplicaState, plan: StepPlan) -> None:
        return None
