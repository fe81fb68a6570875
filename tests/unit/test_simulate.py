"""The serving simulator's mechanics on a cost model simple enough to do by hand: a step costs
``FIXED + PER_TOKEN × new tokens + PER_CONTEXT × Σ decode contexts``. Schedulers, chunked prefill, preemption,
prefix caching, static batching, disaggregation and the fast-forward are each checked against arithmetic."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from suanli.errors import SpecError
from suanli.simulate.engine import Recorder, Replica, StepWork
from suanli.simulate.kv_blocks import BlockPool
from suanli.simulate.metrics import Slo, weighted_distribution
from suanli.simulate.run import Disaggregation, Router, SimulationResult, simulate_deployment
from suanli.simulate.scheduler import ReservingScheduler, Scheduler, SglangScheduler, StaticScheduler, VllmScheduler
from suanli.simulate.workload import LengthDist, Workload, read_trace
from suanli.spec.engines import get_engine

FIXED, PER_TOKEN, PER_CONTEXT = 0.010, 0.001, 0.000_01


@dataclass(frozen=True)
class LinearCost:
    def step_s(self, work: StepWork) -> float:
        contexts = sum(work.decode_contexts) + work.context_offset * work.decode_rows
        return FIXED + PER_TOKEN * work.new_tokens + PER_CONTEXT * contexts


# SGLang's preset: its prefill cap and admission reserve (catalog/engines.toml)
SGLANG = {"max_prefill_tokens": get_engine("sglang").max_prefill_tokens,
          "reserve": get_engine("sglang").new_token_reserve}


def factory(make_scheduler: type[Scheduler] | object, *, blocks: int = 10_000, block_size: int = 16,
            prefix_caching: bool = False, fast_forward: bool = True, **kwargs: object):  # type: ignore[no-untyped-def]
    def make(index: int, recorder: Recorder, role: str) -> Replica:
        scheduler = make_scheduler(**kwargs)  # type: ignore[operator]
        pool = BlockPool(num_blocks=blocks, block_size=block_size, prefix_caching=prefix_caching)
        return Replica(index, scheduler, pool, LinearCost(), recorder, fast_forward=fast_forward,
                       prefill_only=role == "prefill")
    return make


def vllm(**kw: object):  # type: ignore[no-untyped-def]
    return factory(VllmScheduler, max_num_batched_tokens=kw.pop("budget", 8192), max_num_seqs=kw.pop("seqs", 256),
                   **kw)


def fixed(prompt: int, output: int, **kw: object) -> Workload:
    return Workload(prompt=LengthDist.constant(prompt), output=LengthDist.constant(output), **kw)  # type: ignore[arg-type]


def test_one_request_by_hand() -> None:
    result = simulate_deployment(fixed(1000, 5, requests=1, concurrency=1), vllm())
    (seq,) = result.sequences
    prefill = FIXED + PER_TOKEN * 1000
    assert seq.first_token_s == pytest.approx(prefill)
    # decode steps cache contexts 1000, 1001, 1002, 1003 (the token sampled last step is computed now)
    decode = [FIXED + PER_TOKEN + PER_CONTEXT * c for c in (1000, 1001, 1002, 1003)]
    assert seq.finish_s == pytest.approx(prefill + sum(decode))
    assert result.metrics.tpot.mean == pytest.approx(sum(decode) / 4)
    assert result.metrics.itl.p50 == pytest.approx(sorted(decode)[1])


def test_chunked_prefill_takes_several_steps() -> None:
    result = simulate_deployment(fixed(5000, 2, requests=1, concurrency=1), vllm(budget=2048))
    (seq,) = result.sequences
    chunks = [2048, 2048, 904]
    assert seq.first_token_s == pytest.approx(sum(FIXED + PER_TOKEN * n for n in chunks))


def test_decode_rides_along_with_a_prefill_chunk() -> None:
    # Two clients: the second request's prefill shares steps with the first's decode (one token budget).
    result = simulate_deployment(fixed(100, 50, requests=2, rate_per_s=1000.0), vllm(budget=64))
    first, second = sorted(result.sequences, key=lambda s: s.request.id)
    assert second.first_token_s is not None and first.finish_s is not None
    assert second.first_token_s < first.finish_s  # no waiting for the first request to end


def test_fast_forward_is_exact() -> None:
    workload = Workload(prompt=LengthDist(edges=(50, 400, 2000), weights=(3, 1)),
                        output=LengthDist(edges=(10, 200, 600), weights=(2, 1)), requests=60, rate_per_s=20.0, seed=3)
    fast = simulate_deployment(workload, vllm(blocks=400))
    slow = simulate_deployment(workload, vllm(blocks=400, fast_forward=False))
    for a, b in zip(fast.sequences, slow.sequences, strict=True):
        assert a.request.id == b.request.id
        assert a.finish_s == pytest.approx(b.finish_s, rel=1e-12)
        assert a.first_token_s == pytest.approx(b.first_token_s, rel=1e-12)
    for stat in ("mean", "p50", "p90", "p99"):  # the same gaps, whether stepped or fast-forwarded
        assert getattr(fast.metrics.itl, stat) == pytest.approx(getattr(slow.metrics.itl, stat), rel=1e-9)
    assert fast.metrics.steps == slow.metrics.steps


def test_preemption_when_blocks_run_out() -> None:
    # 20 blocks × 16 = 320 tokens; four requests of 64 + 100 each cannot all grow to completion.
    result = simulate_deployment(fixed(64, 100, requests=4, concurrency=4), vllm(blocks=20))
    assert result.metrics.preemptions > 0
    assert result.metrics.requests == 4
    assert result.metrics.kv_peak_utilization <= 1.0


def test_no_evict_schedulers_never_preempt() -> None:
    for make in (factory(ReservingScheduler, blocks=20, token_budget=8192, max_running=64, chunked_prefill=False,
                         decode_rows_count=False, name="trtllm"),
                 factory(ReservingScheduler, blocks=20, token_budget=4096, max_running=128, chunked_prefill=True,
                         decode_rows_count=True, name="tgi")):
        result = simulate_deployment(fixed(64, 100, requests=4, concurrency=4), make)
        assert result.metrics.preemptions == 0
        assert result.metrics.requests == 4


def test_request_larger_than_the_pool_is_refused() -> None:
    with pytest.raises(SpecError, match="never be scheduled"):
        simulate_deployment(fixed(64, 100, requests=1, concurrency=1), vllm(blocks=4))


def test_sglang_prefill_interrupts_decode() -> None:
    # Requests arrive while others decode: SGLang runs each new prompt as a prefill-only step, so running
    # decodes wait a whole 2 s prefill; vLLM's 512-token chunks let them advance every ~0.5 s.
    workload = fixed(2000, 30, requests=8, rate_per_s=1.0)
    make = factory(SglangScheduler, chunked_prefill_size=8192, max_running_requests=64, **SGLANG)
    result = simulate_deployment(workload, make)
    assert result.metrics.itl.p99 >= FIXED + PER_TOKEN * 2000
    mixed = simulate_deployment(workload, vllm(budget=512))
    longest_chunk_step = FIXED + PER_TOKEN * 512 + PER_CONTEXT * 8 * (2000 + 30)  # 512 tokens + 8 decode rows
    assert mixed.metrics.itl.p99 <= longest_chunk_step < result.metrics.itl.p99


def test_continuous_batching_beats_static() -> None:
    workload = Workload(prompt=LengthDist.constant(200), output=LengthDist(edges=(10, 50, 1000), weights=(4, 1)),
                        requests=64, concurrency=16, seed=1)
    continuous = simulate_deployment(workload, vllm()).metrics
    static = simulate_deployment(workload, factory(StaticScheduler, batch_size=16)).metrics
    assert continuous.output_tokens_per_s > 1.5 * static.output_tokens_per_s


def test_static_batch_waits_for_its_longest_member() -> None:
    workload = Workload(prompt=LengthDist.constant(10), output=LengthDist(edges=(2, 3, 50, 51), weights=(1, 0, 1)),
                        requests=2, concurrency=2, seed=0)
    result = simulate_deployment(workload, factory(StaticScheduler, batch_size=2))
    a, b = result.sequences
    assert a.finish_s == b.finish_s


def test_prefix_caching_reuses_the_shared_prefix() -> None:
    workload = Workload(prompt=LengthDist.constant(600), output=LengthDist.constant(4), requests=6, concurrency=1,
                        prefix_groups=1, prefix_tokens=512)
    cached = simulate_deployment(workload, vllm(prefix_caching=True))
    plain = simulate_deployment(workload, vllm())
    assert [s.cached_tokens for s in cached.sequences] == [0] + [512] * 5
    assert cached.metrics.ttft.mean < plain.metrics.ttft.mean


def test_replicas_share_the_load() -> None:
    workload = fixed(500, 100, requests=40, rate_per_s=50.0)
    one = simulate_deployment(workload, vllm(budget=512, seqs=4))
    four = simulate_deployment(workload, vllm(budget=512, seqs=4), replicas=4, router=Router.ROUND_ROBIN)
    assert four.metrics.e2e.mean < one.metrics.e2e.mean
    assert {row[3] for row in four.timeline} == {0, 1, 2, 3}


def test_disaggregation_adds_the_transfer_to_ttft() -> None:
    transfer = 0.050
    pd = Disaggregation(prefill=1, decode=1, transfer_s=lambda tokens: transfer)
    result = simulate_deployment(fixed(1000, 10, requests=1, concurrency=1), vllm(), pd=pd)
    (seq,) = result.sequences
    prefill = FIXED + PER_TOKEN * 1000
    assert seq.first_token_s == pytest.approx(prefill + transfer)
    decode = [FIXED + PER_TOKEN + PER_CONTEXT * c for c in range(1000, 1009)]
    assert seq.finish_s == pytest.approx(prefill + transfer + sum(decode))


def test_goodput_counts_requests_within_the_slo() -> None:
    workload = fixed(1000, 20, requests=50, rate_per_s=40.0)
    loose = simulate_deployment(workload, vllm(), slo=Slo(ttft_s=100.0, tpot_s=100.0)).metrics
    tight = simulate_deployment(workload, vllm(), slo=Slo(ttft_s=FIXED + PER_TOKEN * 1000 + 1e-9)).metrics
    assert loose.goodput_requests_per_s == pytest.approx(loose.requests_per_s)
    assert tight.goodput_requests_per_s is not None and tight.goodput_requests_per_s < loose.requests_per_s


def test_closed_loop_single_client_is_sequential() -> None:
    result = simulate_deployment(fixed(100, 10, requests=5, concurrency=1), vllm())
    spans = sorted((s.arrival_s, s.finish_s) for s in result.sequences)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start == end
    assert result.metrics.mean_running == pytest.approx(1.0)


def test_weighted_percentiles() -> None:
    d = weighted_distribution([(1.0, 98), (5.0, 1), (9.0, 1)])
    assert (d.p50, d.p90, d.p99) == (1.0, 1.0, 5.0)
    assert d.mean == pytest.approx((98 + 5 + 9) / 100)


def test_seeded_workloads_repeat() -> None:
    w = Workload(prompt=LengthDist(edges=(1, 100, 1000), weights=(1, 1)), output=LengthDist.constant(5),
                 requests=20, rate_per_s=3.0, burstiness_cv=2.0, seed=7)
    assert w.generate() == w.generate()
    assert w.generate() != Workload(prompt=w.prompt, output=w.output, requests=20, rate_per_s=3.0,
                                    burstiness_cv=2.0, seed=8).generate()


@pytest.mark.parametrize("kwargs, match", [
    ({"requests": 0, "concurrency": 1}, "requests must be positive"),
    ({"requests": 5}, "exactly one of concurrency"),
    ({"requests": 5, "concurrency": 2, "rate_per_s": 1.0}, "exactly one of concurrency"),
    ({"requests": 5, "rate_per_s": -1.0}, "rate must be positive"),
    ({"requests": 5, "concurrency": 0}, "concurrency must be positive"),
])
def test_bad_workloads(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        fixed(100, 10, **kwargs)


def test_trace_errors_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    path.write_text(json.dumps({"arrival_s": 0, "prompt_tokens": 10, "output_tokens": 5}) + "\n"
                    + json.dumps({"arrival_s": 1, "prompt_tokens": -3, "output_tokens": 5}) + "\n")
    with pytest.raises(SpecError, match="line 2"):
        read_trace(path)
    path.write_text('{"arrival_s": 0, "prompt_tokens": 10, "output_tokens": 5}\nnot json\n')
    with pytest.raises(SpecError, match="line 2: not JSON"):
        read_trace(path)


def test_trace_replays(tmp_path: Path) -> None:
    path = tmp_path / "trace.jsonl"
    rows = [{"arrival_s": i * 0.5, "prompt_tokens": 100 + i, "output_tokens": 3} for i in range(4)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    trace = read_trace(path)
    result = simulate_deployment(Workload(requests=len(trace), prompt=LengthDist.constant(1),
                                          output=LengthDist.constant(1), trace=trace), vllm())
    assert sorted(s.arrival_s for s in result.sequences) == [0.0, 0.5, 1.0, 1.5]


SCHEDULERS = {
    "vllm": lambda blocks: vllm(blocks=blocks, budget=256, seqs=8),
    "sglang": lambda blocks: factory(SglangScheduler, blocks=blocks, chunked_prefill_size=256, max_running_requests=8,
                                     **SGLANG),
    "trtllm": lambda blocks: factory(ReservingScheduler, blocks=blocks, token_budget=4096, max_running=8,
                                     chunked_prefill=False, decode_rows_count=False, name="trtllm"),
    "tgi": lambda blocks: factory(ReservingScheduler, blocks=blocks, token_budget=256, max_running=8,
                                  chunked_prefill=True, decode_rows_count=True, name="tgi"),
    "static": lambda blocks: factory(StaticScheduler, blocks=blocks, batch_size=4),
}


@settings(max_examples=40, deadline=None, derandomize=True)
@given(name=st.sampled_from(sorted(SCHEDULERS)), blocks=st.integers(40, 400), requests=st.integers(1, 30),
       clients=st.integers(1, 12), seed=st.integers(0, 1000), rate=st.none() | st.floats(0.5, 200.0),
       groups=st.integers(0, 3))
def test_invariants(name: str, blocks: int, requests: int, clients: int, seed: int, rate: float | None,
                    groups: int) -> None:
    """No request lost or finished twice; blocks in use never exceed the pool and all return at the end; every
    request's times are ordered."""
    workload = Workload(prompt=LengthDist(edges=(20, 200, 500), weights=(3, 1)),
                        output=LengthDist(edges=(1, 30, 120), weights=(3, 1)), requests=requests,
                        concurrency=None if rate else clients, rate_per_s=rate, seed=seed,
                        prefix_groups=groups, prefix_tokens=16 if groups else 0)
    make = SCHEDULERS[name](blocks)
    result: SimulationResult = simulate_deployment(workload, make)
    ids = [s.request.id for s in result.sequences]
    assert sorted(ids) == list(range(requests))
    for s in result.sequences:
        assert s.generated == s.request.output_tokens
        assert s.first_token_s is not None and s.finish_s is not None
        assert s.arrival_s <= s.first_token_s <= s.finish_s
    assert 0 < result.metrics.kv_peak_utilization <= 1.0


def test_speculation_by_hand() -> None:
    """Every draft accepted (α = 1): each verification step yields k + 1 tokens, priced as k + 1 new tokens
    per row plus the draft's time."""
    from suanli.simulate.engine import Speculation

    k, draft = 3, 0.002
    spec = Speculation(k=k, acceptance=1.0, draft_s=lambda rows, context: draft)
    assert spec.expected_tokens == k + 1

    def make(index: int, recorder: Recorder, role: str) -> Replica:
        return Replica(index, VllmScheduler(max_num_batched_tokens=8192, max_num_seqs=8),
                       BlockPool(num_blocks=1000, block_size=16), LinearCost(), recorder, speculation=spec)

    result = simulate_deployment(fixed(100, 9, requests=1, concurrency=1), make)
    (seq,) = result.sequences
    prefill = FIXED + PER_TOKEN * 100
    # 8 tokens after the first: two steps of 4 at contexts 100 and 104
    steps = [FIXED + PER_TOKEN * (k + 1) + PER_CONTEXT * c + draft for c in (100, 104)]
    assert seq.finish_s == pytest.approx(prefill + sum(steps))


def test_speculation_mean_tokens() -> None:
    import random

    from suanli.simulate.engine import Speculation

    spec = Speculation(k=4, acceptance=0.6, draft_s=lambda rows, context: 0.0)
    rng = random.Random(0)
    mean = sum(spec.tokens(rng) for _ in range(20_000)) / 20_000
    assert mean == pytest.approx(spec.expected_tokens, rel=0.02)  # (1 − 0.6^5) / 0.4 = 2.306
