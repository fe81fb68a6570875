"""Load benchmark of ``suanli web``: a few thousand API requests from 50 concurrent clients on loopback.

    python benchmarks/web_load.py                       # 3000 requests, 50 clients
    python benchmarks/web_load.py --requests 10000 --clients 100

Starts ``suanli web`` (uvicorn) in a subprocess on a free loopback port, then 50 httpx async clients each send
their share of a fixed mix (params, flops, train, infer, fit, roofline, messages, and one bad request that must be
answered 400) and check every answer: the expected status and a JSON object with the expected key. Prints the
p50/p99 latency overall and per endpoint and the request rate; exits 1 on any error. Bounded: clients stop
taking new requests after --budget-s (default 50 s) and the report says how many were sent (a benchmark, not a
timed test; on a loaded 2-core machine 3000 requests took 44 s).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass

import httpx

# (name, path and query, expected status, a key the JSON answer must hold)
MIX: tuple[tuple[str, str, int, str], ...] = (
    ("params", "/api/params?model=llama-3-8b", 200, "total_params"),
    ("flops", "/api/flops?model=qwen2.5-7b&seq=4096&batch=2", 200, "forward_flops"),
    ("train", "/api/train?model=llama-3-8b&gpu=h100&gpus=8&zero=3&tokens=1e10", 200, "memory"),
    ("infer", "/api/infer?model=llama-3.1-70b&gpu=h100&gpus=4&batch=16&prompt=2000&output=300", 200, "latency"),
    ("fit", "/api/fit?model=mixtral-8x7b", 200, "rows"),
    ("roofline", "/api/roofline?model=llama-3-8b&gpu=a100-80gb&seq=1024", 200, "ops"),
    ("messages", "/api/messages?lang=zh", 200, "messages"),
    ("bad input", "/api/train?model=llama-3-8b&gpu=h1000", 400, "error"),
)


@dataclass
class Outcome:
    name: str
    latency_s: float
    error: str = ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen([sys.executable, "-m", "suanli", "web", "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"suanli web exited: {server.stderr.read().decode() if server.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError("suanli web did not answer /api/health within 30 s")


async def client(http: httpx.AsyncClient, jobs: list[tuple[str, str, int, str]], out: list[Outcome],
                 stop_at: float) -> None:
    for name, path, status, key in jobs:
        if time.perf_counter() > stop_at:
            return
        start = time.perf_counter()
        error = ""
        try:
            response = await http.get(path)
            body = response.json()
            if response.status_code != status:
                error = f"HTTP {response.status_code}, expected {status}: {str(body)[:200]}"
            elif not isinstance(body, dict) or key not in body:
                error = f"answer without '{key}'"
        except (httpx.HTTPError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        out.append(Outcome(name, time.perf_counter() - start, error))


async def run_load(base_url: str, requests: int, clients: int, budget_s: float) -> tuple[list[Outcome], float]:
    jobs = [MIX[i % len(MIX)] for i in range(requests)]
    shares = [jobs[i::clients] for i in range(clients)]
    outcomes: list[Outcome] = []
    # Idle connections expire on the client after 5 s, well before the server's KEEP_ALIVE_S, so the client is
    # always the side that closes an idle connection (no request is sent on one the server is closing).
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients, keepalive_expiry=5.0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:
        start = time.perf_counter()
        await asyncio.gather(*(client(http, share, outcomes, start + budget_s) for share in shares))
        return outcomes, time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def report(outcomes: list[Outcome], elapsed_s: float, clients: int) -> None:
    latencies = [o.latency_s for o in outcomes]
    rate = len(outcomes) / elapsed_s
    print(f"{len(outcomes)} requests from {clients} clients in {elapsed_s:.1f} s: {rate:.0f} req/s")
    print(f"latency p50 {percentile(latencies, 50) * 1e3:.1f} ms, p99 {percentile(latencies, 99) * 1e3:.1f} ms")
    by_name: dict[str, list[float]] = defaultdict(list)
    for o in outcomes:
        by_name[o.name].append(o.latency_s)
    for name, values in by_name.items():
        print(f"  {name:<10} n={len(values):<5} p50 {percentile(values, 50) * 1e3:7.1f} ms  "
              f"p99 {percentile(values, 99) * 1e3:7.1f} ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--budget-s", type=float, default=50.0,
                        help="stop sending new requests after this long (default 50)")
    args = parser.parse_args(argv)
    port = free_port()
    server = start_server(port)
    try:
        outcomes, elapsed = asyncio.run(run_load(f"http://127.0.0.1:{port}", args.requests, args.clients,
                                                 args.budget_s))
    finally:
        server.terminate()
        server.wait(timeout=10)
    report(outcomes, elapsed, args.clients)
    errors = [o for o in outcomes if o.error]
    for o in errors[:5]:
        print(f"error: {o.name}: {o.error}")
    if errors:
        print(f"FAIL: {len(errors)} of {len(outcomes)} requests failed")
        return 1
    if len(outcomes) < args.requests:
        print(f"note: {len(outcomes)} of {args.requests} requests sent within --budget-s {args.budget_s:g}")
    print("zero errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
