"""What a serving benchmark reports, computed from the simulated requests the way the benchmark clients compute
it (vLLM ``benchmarks/benchmark_serving.py``, SGLang ``bench_serving``):

- TTFT: first token time − arrival (queueing included);
- TPOT: (finish − first token) / (output tokens − 1), per request, for requests of more than one token;
- ITL: every gap between consecutive tokens of a request (pooled over requests);
- E2E: finish − arrival;
- throughput: output tokens (requests) over the makespan, first arrival to last finish;
- goodput: requests meeting every SLO given (TTFT and TPOT) over the makespan (DistServe, Zhong et al. 2024,
  arXiv:2401.09670 §2);
- KV utilisation: the peak share of the KV blocks in use; running batch: time-weighted mean over busy time.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence as Seq
from dataclasses import dataclass
from itertools import accumulate, starmap
from operator import itemgetter, mul

from suanli.simulate.engine import Recorder
from suanli.simulate.sequence import Sequence


@dataclass(frozen=True, slots=True, kw_only=True)
class Distribution:
    """Mean and percentiles of a latency, seconds."""

    mean: float
    p50: float
    p90: float
    p99: float

    def to_dict(self) -> dict[str, float]:
        return {"mean": self.mean, "p50": self.p50, "p90": self.p90, "p99": self.p99}


@dataclass(frozen=True, slots=True, kw_only=True)
class Slo:
    """Latency targets a request must meet to count towards goodput (None: no target)."""

    ttft_s: float | None = None
    tpot_s: float | None = None

    def met(self, seq: Sequence) -> bool:
        return ((self.ttft_s is None or ttft_s(seq) <= self.ttft_s)
                and (self.tpot_s is None or tpot_s(seq) <= self.tpot_s))


@dataclass(frozen=True, slots=True, kw_only=True)
class ServingMetrics:
    """The summary of one simulated run (keys of ``suanli simulate --json``)."""

    requests: int
    makespan_s: float
    ttft: Distribution
    tpot: Distribution
    itl: Distribution
    e2e: Distribution
    output_tokens_per_s: float
    requests_per_s: float
    goodput_requests_per_s: float | None
    kv_peak_utilization: float
    mean_running: float
    preemptions: int
    steps: int


def ttft_s(seq: Sequence) -> float:
    return _when(seq.first_token_s) - seq.arrival_s


def tpot_s(seq: Sequence) -> float:
    """Mean time per output token after the first; 0 for a one-token output (it has none)."""
    out = seq.request.output_tokens
    return (_when(seq.finish_s) - _when(seq.first_token_s)) / (out - 1) if out > 1 else 0.0


def _when(t: float | None) -> float:
    """A time every finished sequence has (the run sets it); a missing one is a simulator bug."""
    if t is None:
        raise RuntimeError("a finished sequence has no first-token or finish time")
    return t


def distribution(values: Seq[float]) -> Distribution:
    return weighted_distribution([(v, 1) for v in values])


def weighted_distribution(samples: Seq[tuple[float, int]]) -> Distribution:
    """Mean and percentiles of values with integer weights (a weight w stands for w equal samples); the
    percentile is the smallest value whose cumulative weight reaches q of the total (nearest rank)."""
    total = sum(map(itemgetter(1), samples))
    if not total:
        return Distribution(mean=math.nan, p50=math.nan, p90=math.nan, p99=math.nan)
    ordered = sorted(samples)
    mean = sum(starmap(mul, ordered)) / total  # Σ v·w in sorted order
    cumulative = list(accumulate(map(itemgetter(1), ordered)))

    def percentile(q: int) -> float:  # the first value whose cumulative weight reaches the mark
        return ordered[bisect_left(cumulative, math.ceil(q / 100 * total))][0]

    return Distribution(mean=mean, p50=percentile(50), p90=percentile(90), p99=percentile(99))


def summarize(finished: Seq[Sequence], recorders: Seq[Recorder], *, peak_utilization: float, preemptions: int,
              slo: Slo | None) -> ServingMetrics:
    start = min(s.arrival_s for s in finished)
    end = max(s.finish_s or 0.0 for s in finished)
    makespan = max(end - start, 1e-12)
    busy = sum(r.busy_s for r in recorders)
    good = sum(1 for s in finished if slo.met(s)) / makespan if slo is not None else None
    return ServingMetrics(
        requests=len(finished), makespan_s=makespan,
        ttft=distribution([ttft_s(s) for s in finished]),
        tpot=distribution([tpot_s(s) for s in finished if s.request.output_tokens > 1]),
        itl=weighted_distribution([x for r in recorders for x in r.itl]),
        e2e=distribution([(s.finish_s or 0.0) - s.arrival_s for s in finished]),
        output_tokens_per_s=sum(s.request.output_tokens for s in finished) / makespan,
        requests_per_s=len(finished) / makespan, goodput_requests_per_s=good,
        kv_peak_utilization=peak_utilization,
        mean_running=sum(r.running_time for r in recorders) / busy if busy else 0.0,
        preemptions=preemptions, steps=sum(r.steps for r in recorders))
