"""A whole deployment under traffic: replicas behind a router, or prefill/decode disaggregation, driven by a
workload; one discrete-event loop over every replica's clock.

The loop always advances the replica whose clock is earliest, after delivering every arrival due by then, so
no replica runs ahead of a request it should have seen. Requests go to a replica by the router's rule:

- round-robin; least-outstanding (fewest running + waiting, as vLLM's and SGLang's routers balance);
- prefix-aware: requests of one prefix group stick to one replica (so its prefix cache hits), others go to
  the least loaded (SGLang router's cache-aware policy, simplified to exact groups).

Prefill/decode disaggregation (``Disaggregation``: DistServe, Zhong et al. 2024; Splitwise, Patel et al. 2024):
a request is prefilled on a prefill replica, which samples its first token; its KV cache then crosses to a
decode replica (``transfer_s``, sized from the KV bytes of its prompt), which emits that first token to the
client and generates the rest. TTFT therefore includes the transfer and the decode-side admission.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum

from suanli.simulate.engine import Recorder, Replica
from suanli.simulate.metrics import ServingMetrics, Slo, summarize
from suanli.simulate.sequence import Sequence
from suanli.simulate.timeline import RawRow
from suanli.simulate.workload import Request, Workload


class Router(Enum):
    ROUND_ROBIN = "round-robin"
    LEAST_OUTSTANDING = "least-outstanding"
    PREFIX_AWARE = "prefix-aware"


@dataclass(frozen=True, slots=True, kw_only=True)
class Disaggregation:
    """``prefill`` prefill replicas and ``decode`` decode replicas (``--pd P:D``); ``transfer_s(tokens)``:
    seconds to move a prompt's KV cache from a prefill to a decode replica."""

    prefill: int
    decode: int
    transfer_s: Callable[[int], float]


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationResult:
    metrics: ServingMetrics
    sequences: tuple[Sequence, ...]
    timeline: tuple[RawRow, ...]  # rows of simulate.timeline.RAW_COLUMNS
    kv_blocks_total: int = 0  # KV blocks of every replica's pool together (the timeline's kv_blocks_used is of these)
    notes: tuple[str, ...] = ()  # what the user should know beside the numbers (an engine that would not start)


ReplicaFactory = Callable[[int, Recorder, str], Replica]  # (index, recorder, role: "mixed"|"prefill"|"decode")


class _Pool:
    """Replicas of one role and the rule that picks among them."""

    def __init__(self, replicas: list[Replica], router: Router) -> None:
        self.replicas = replicas
        self.router = router
        self._next = itertools.count()

    def pick(self, request: Request) -> Replica:
        if len(self.replicas) == 1:
            return self.replicas[0]
        if self.router is Router.ROUND_ROBIN:
            return self.replicas[next(self._next) % len(self.replicas)]
        if self.router is Router.PREFIX_AWARE and request.prefix_group is not None:
            return self.replicas[request.prefix_group % len(self.replicas)]
        return min(self.replicas, key=lambda r: (r.outstanding, r.index))


def simulate_deployment(workload: Workload, make_replica: ReplicaFactory, *, replicas: int = 1,
                        router: Router = Router.LEAST_OUTSTANDING, pd: Disaggregation | None = None,
                        slo: Slo | None = None, keep_timeline: bool = True) -> SimulationResult:
    """Run every request of ``workload`` through the deployment and summarise (module docstring)."""
    requests = workload.generate()
    if pd is None:
        recorders = [Recorder(keep_timeline=keep_timeline) for _ in range(replicas)]
        entry = _Pool([make_replica(i, recorders[i], "mixed") for i in range(replicas)], router)
        decode: _Pool | None = None
    else:
        recorders = [Recorder(keep_timeline=keep_timeline) for _ in range(pd.prefill + pd.decode)]
        entry = _Pool([make_replica(i, recorders[i], "prefill") for i in range(pd.prefill)], router)
        decode = _Pool([make_replica(pd.prefill + i, recorders[pd.prefill + i], "decode")
                        for i in range(pd.decode)], Router.LEAST_OUTSTANDING)
    every = entry.replicas + (decode.replicas if decode else [])
    finished = _event_loop(workload, requests, entry, decode, every, pd)
    peak = max(r.state.pool.peak_used / r.state.pool.num_blocks for r in every)
    metrics = summarize(finished, recorders, peak_utilization=peak,
                        preemptions=sum(r.state.preemptions for r in every), slo=slo)
    timeline = tuple(sorted(row for r in recorders for row in r.timeline))
    return SimulationResult(metrics=metrics, sequences=tuple(finished), timeline=timeline,
                            kv_blocks_total=sum(r.state.pool.num_blocks for r in every))


def _event_loop(workload: Workload, requests: list[Request], entry: _Pool, decode: _Pool | None,
                every: list[Replica], pd: Disaggregation | None) -> list[Sequence]:
    pending: list[tuple[float, int, Sequence, bool]] = []  # (time, order, sequence, to the decode pool)
    order = itertools.count()
    queue = iter(requests)
    for request in itertools.islice(queue, workload.concurrency) if workload.closed_loop else queue:
        heapq.heappush(pending, (request.arrival_s, next(order), Sequence(request, request.arrival_s), False))
    finished: list[Sequence] = []
    while True:
        replica = _earliest_busy(every)
        if replica is None and not pending:
            break
        due = pending[0][0] if pending else float("inf")
        if replica is None or due <= replica.clock:
            t, _, seq, to_decode = heapq.heappop(pending)
            if to_decode:  # the decode replica emits the first token as the KV cache lands
                seq.first_token_s = seq.last_token_s = t
            (decode if to_decode and decode else entry).pick(seq.request).submit(seq, t)
            continue
        for seq in replica.step(horizon=due):
            if pd is not None and replica.prefill_only:  # prefilled: the KV cache moves to a decode replica
                seq.hand_over()
                landed = replica.clock + pd.transfer_s(seq.request.prompt_tokens)
                if seq.done:  # a one-token request is complete once its KV and token land
                    finished.append(seq)
                    seq.finish_s = seq.first_token_s = landed
                    _next_client(workload, queue, seq, pending, order)
                    continue
                heapq.heappush(pending, (landed, next(order), seq, True))
                continue
            finished.append(seq)
            _next_client(workload, queue, seq, pending, order)
    if len(finished) != len(requests):
        raise RuntimeError(f"simulator bug: {len(requests)} requests in, {len(finished)} finished")
    return finished


def _earliest_busy(every: list[Replica]) -> Replica | None:
    """The busy replica with the earliest clock, the lowest index on a tie (``every`` is in index order)."""
    earliest = None
    for r in every:
        if (r.state.running or r.state.waiting) and (earliest is None or r.clock < earliest.clock):
            earliest = r
    return earliest


def _next_client(workload: Workload, queue: Iterator[Request], done: Sequence,
                 pending: list[tuple[float, int, Sequence, bool]], order: Iterator[int]) -> None:
    """Closed loop: the client whose request just finished sends its next one at once."""
    if not workload.closed_loop or done.finish_s is None:
        return
    nxt = next(queue, None)
    if nxt is not None:
        heapq.heappush(pending, (done.finish_s, next(order), Sequence(nxt, done.finish_s), False))
