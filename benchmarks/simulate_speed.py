"""How fast the serving simulator runs, and how its cost grows with requests and replicas.

Target (issue 8): 10,000 requests of a dense 70B model simulated in under 2 s of one core. Each row simulates a
workload on Llama-3.1-70B (tp 4 on H100, vLLM) and reports the CPU time (``time.process_time``), the engine
steps taken and the CPU time per request and per step, so the growth with requests, load and replicas shows.

    .venv/bin/python benchmarks/simulate_speed.py            # the table, and whether the target is met
    .venv/bin/python benchmarks/simulate_speed.py --quick    # fewer rows (seconds)

The loads: ``light`` keeps the replica below saturation (the queue stays short), ``saturated`` offers more than
it serves (a long queue, the running batch at its KV limit). Numbers and findings: docs/speed.md.
"""

from __future__ import annotations

import argparse
import time

from suanli.simulate.api import Deployment, simulate
from suanli.simulate.workload import LengthDist, Workload
from suanli.spec.engines import get_engine
from suanli.spec.hardware import get_accelerator
from suanli.spec.resolve import load_model

TARGET_S = 2.0
ROWS = [  # (requests, rate per replica, replicas)
    (1_000, 2.0, 1), (10_000, 2.0, 1), (10_000, 8.0, 1), (10_000, 2.0, 4), (10_000, 8.0, 4),
]


def measure(requests: int, rate: float, replicas: int) -> tuple[float, int, float]:
    spec = load_model("llama-3.1-70b")
    deployment = Deployment(accelerator=get_accelerator("h100"), engine=get_engine("vllm"), tp=4, replicas=replicas)
    workload = Workload(prompt=LengthDist(edges=(64, 512, 2048, 4096), weights=(5, 3, 1)),
                        output=LengthDist(edges=(16, 128, 512, 1024), weights=(4, 4, 1)), requests=requests,
                        rate_per_s=rate * replicas, seed=1)
    start = time.process_time()
    result = simulate(spec, deployment, workload, keep_timeline=False)
    return time.process_time() - start, result.metrics.steps, result.metrics.mean_running


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the first two rows")
    args = parser.parse_args()
    print(f"{'requests':>9} {'req/s/replica':>13} {'replicas':>8} {'cpu s':>7} {'steps':>8} {'running':>8} "
          f"{'µs/request':>10} {'µs/step':>8}")
    target_met = None
    for requests, rate, replicas in ROWS[:2] if args.quick else ROWS:
        cpu, steps, running = measure(requests, rate, replicas)
        print(f"{requests:>9,} {rate:>13.1f} {replicas:>8} {cpu:>7.2f} {steps:>8,} {running:>8.1f} "
              f"{cpu / requests * 1e6:>10,.0f} {cpu / steps * 1e6:>8,.0f}")
        if (requests, rate, replicas) == (10_000, 2.0, 1):
            target_met = cpu <= TARGET_S
    if target_met is not None:
        print(f"target: 10,000 requests of a 70B model in ≤ {TARGET_S} s: {'met' if target_met else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
