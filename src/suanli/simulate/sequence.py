"""One request's life inside a replica: queued, computing its prompt (maybe in chunks), generating, finished —
and possibly preempted on the way (its KV freed and recomputed later, as vLLM does by default).

The state follows vLLM V1's single counter: a sequence knows ``tokens`` (prompt + generated so far) and
``computed`` (tokens whose KV is cached); each step computes some of the ``remaining`` ones, and when a step
reaches ``tokens`` the model samples the next token. A prefill chunk is a step that stops short; a decode step
computes the one token sampled last time. A recompute after preemption is a prefill over prompt + output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from suanli.simulate.kv_blocks import BlockPool
from suanli.simulate.workload import Request


class Phase(Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"


@dataclass(slots=True, eq=False)
class Sequence:
    """Mutable run state of one request (owned by the simulation run, never shared between runs)."""

    request: Request
    arrival_s: float
    computed: int = 0
    generated: int = 0
    own_blocks: int = 0
    prefix_blocks: int = 0
    in_prefix: bool = False  # holds a reference to its group's cached prefix
    phase: Phase = Phase.WAITING
    first_token_s: float | None = None
    last_token_s: float | None = None
    finish_s: float | None = None
    preemptions: int = 0
    cached_tokens: int = 0  # prompt tokens served from the prefix cache (the latest admission)
    prompt: int = field(init=False)  # the request's lengths, copied: the step loop reads them constantly
    output: int = field(init=False)

    def __post_init__(self) -> None:
        self.prompt, self.output = self.request.prompt_tokens, self.request.output_tokens

    @property
    def tokens(self) -> int:
        return self.prompt + self.generated

    @property
    def remaining(self) -> int:
        """Tokens to compute before the next token can be sampled (1 while decoding)."""
        return self.prompt + self.generated - self.computed

    @property
    def decoding(self) -> bool:
        return self.generated > 0 and self.prompt + self.generated - self.computed == 1

    @property
    def done(self) -> bool:
        return self.generated >= self.output

    @property
    def blocks(self) -> int:
        return self.own_blocks + self.prefix_blocks

    @property
    def final_tokens(self) -> int:
        """Tokens the cache holds when the request ends (the last sampled token is never cached)."""
        return self.request.prompt_tokens + self.request.output_tokens - 1

    def grow(self, pool: BlockPool, tokens: int) -> bool:
        """Hold enough blocks for ``tokens`` cached tokens; False (nothing taken) when the pool is short."""
        if tokens <= (self.own_blocks + self.prefix_blocks) * pool.block_size:
            return True
        need = pool.blocks_for(tokens) - self.own_blocks - self.prefix_blocks
        if not pool.take(need):
            return False
        self.own_blocks += need
        return True

    def admit(self, pool: BlockPool) -> None:
        """Start (or restart) computing: reuse the group's cached prefix blocks when there are any."""
        r = self.request
        hit = pool.cached_prefix_tokens(r.prefix_group, r.prefix_tokens) if self.computed == 0 else 0
        if hit and r.prefix_group is not None:
            self.prefix_blocks = pool.join_prefix(r.prefix_group)
            self.in_prefix = True
            self.computed = self.cached_tokens = self.prefix_blocks * pool.block_size
        self.phase = Phase.RUNNING

    def after_compute(self, pool: BlockPool) -> None:
        """Once its whole prefix is computed, the first sequence of a group hands the prefix's full blocks to
        the cache (prefix caching), keeping a reference to them."""
        r = self.request
        if self.in_prefix or r.prefix_group is None or self.computed < r.prefix_tokens or not pool.prefix_caching:
            return
        blocks = min(r.prefix_tokens // pool.block_size, self.own_blocks)
        if blocks and pool.cached_prefix_tokens(r.prefix_group, r.prefix_tokens) == 0:
            pool.publish_prefix(r.prefix_group, blocks)
            self.own_blocks -= blocks
            self.prefix_blocks = blocks
            self.in_prefix = True

    def unadmit(self, pool: BlockPool, computed: int) -> None:
        """Admission failed (no room this step): give back what ``admit``/``grow`` took and wait again."""
        self.release(pool)
        self.computed, self.cached_tokens, self.phase = computed, 0, Phase.WAITING

    def release(self, pool: BlockPool) -> None:
        """Return every block (finish or preemption)."""
        pool.give_back(self.own_blocks)
        self.own_blocks = 0
        if self.in_prefix and self.request.prefix_group is not None:
            pool.leave_prefix(self.request.prefix_group)
        self.prefix_blocks = 0
        self.in_prefix = False

    def hand_over(self) -> None:
        """Prefill/decode disaggregation: the prefill replica is done with it (its blocks already freed); the
        KV cache and first token travel to a decode replica, which queues it with its cache in place."""
        self.finish_s, self.first_token_s, self.last_token_s = None, None, None
        self.phase = Phase.WAITING

    def preempt(self, pool: BlockPool) -> None:
        """Recompute preemption (vLLM V1's only mode): drop the cache, keep the output, queue again."""
        self.release(pool)
        self.computed = 0
        self.cached_tokens = 0
        self.preemptions += 1
        self.phase = Phase.WAITING
