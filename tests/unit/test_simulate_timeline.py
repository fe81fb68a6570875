"""The bucketed timeline (simulate/timeline.py): hand-derived buckets, sums kept, bounded, and the CLI's
``--timeline-points`` object is the function's on the simulator's own timeline."""

from __future__ import annotations

import json

import pytest

from suanli.cli.main import main
from suanli.errors import SpecError
from suanli.simulate.timeline import BUCKET_COLUMNS, bucket_timeline


def test_two_rows_into_two_buckets_by_hand() -> None:
    # A: 0–1 s, 10 steps, running 4, waiting 2, 100 prefill tokens, 50 blocks; B: 1–3 s, 20 steps, running 2, 30 blocks.
    raw = [(0.0, 1.0, 10, 0, 4, 2, 100, 50), (1.0, 3.0, 20, 0, 2, 0, 0, 30)]
    out = bucket_timeline(raw, points=2, kv_blocks_total=100)
    assert out.bucket_s == 1.5 and out.raw_rows == 2
    first, second = (dict(zip(BUCKET_COLUMNS, row, strict=True)) for row in out.rows)
    # bucket 0 = [0, 1.5): all of A, a quarter of B (0.5 s of its 2 s)
    assert first["start_s"] == 0.0 and first["end_s"] == 1.5
    assert first["steps"] == pytest.approx(10 + 20 / 4)
    assert first["running"] == pytest.approx((4 * 1.0 + 2 * 0.5) / 1.5)
    assert first["waiting"] == pytest.approx(2 * 1.0 / 1.5)
    assert first["prefill_tokens"] == pytest.approx(100)
    assert first["kv_blocks_used"] == pytest.approx((50 * 1.0 + 30 * 0.5) / 1.5)
    assert first["kv_utilization"] == pytest.approx(first["kv_blocks_used"] / 100)
    assert first["prefill_tokens_per_step"] == pytest.approx(100 / 15)
    # bucket 1 = [1.5, 3): the rest of B
    assert second["steps"] == pytest.approx(15) and second["running"] == pytest.approx(2)
    assert second["kv_blocks_used"] == pytest.approx(30) and second["prefill_tokens_per_step"] == 0


def test_two_replicas_add_up() -> None:
    raw = [(0.0, 2.0, 5, 0, 3, 0, 0, 10), (0.0, 2.0, 5, 1, 1, 0, 0, 6)]
    (row,) = bucket_timeline(raw, points=1, kv_blocks_total=64).rows
    assert row[BUCKET_COLUMNS.index("running")] == pytest.approx(4)
    assert row[BUCKET_COLUMNS.index("kv_utilization")] == pytest.approx(16 / 64)


def test_bounded_and_nothing_lost_on_a_real_run(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "llama-3-8b", "--gpu", "h100", "--concurrency", "32", "--requests", "80", "--prompt", "600",
            "--output", "80", "--timeline-points", "25", "--json"]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    timeline = payload["timeline"]
    assert timeline["columns"] == list(BUCKET_COLUMNS)
    assert len(timeline["rows"]) == 25 < payload["steps"]
    steps = sum(r[BUCKET_COLUMNS.index("steps")] for r in timeline["rows"])
    assert steps == pytest.approx(payload["steps"])  # the recorder's step count, spread over buckets
    prefill = sum(r[BUCKET_COLUMNS.index("prefill_tokens")] for r in timeline["rows"])
    assert prefill == pytest.approx(80 * 600)  # every prompt token is prefilled once (no preemption here)
    assert payload["preemptions"] == 0
    running = [r[BUCKET_COLUMNS.index("running")] + r[BUCKET_COLUMNS.index("waiting")] for r in timeline["rows"]]
    assert max(running) <= 32 + 1e-9  # a closed loop of 32 clients never has more requests in the server
    peak = max(r[BUCKET_COLUMNS.index("kv_utilization")] for r in timeline["rows"])
    assert 0 < peak <= payload["kv"]["peak_utilization"] + 1e-12  # a mean never exceeds the peak
    assert timeline["rows"][-1][1] == pytest.approx(payload["makespan_s"], rel=1e-6)


def test_without_the_option_there_is_no_timeline_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "gpt2", "--gpu", "h100", "--concurrency", "2", "--requests", "4", "--prompt", "100",
                 "--output", "10", "--json"]) == 0
    assert "timeline" not in json.loads(capsys.readouterr().out)


def test_zero_points_is_refused() -> None:
    with pytest.raises(SpecError, match="at least 1"):
        bucket_timeline([(0.0, 1.0, 1, 0, 1, 0, 0, 1)], points=0, kv_blocks_total=1)
