"""What arrives at a serving deployment: requests with arrival times and lengths, seeded and deterministic.

Two ways clients load a server, as benchmark tools run them (vLLM ``benchmarks/benchmark_serving.py``,
SGLang ``bench_serving``, NVIDIA GenAI-Perf):

- **closed loop** (``Workload.concurrency``): C clients, each sending its next request the moment its last
  one finishes; the offered load adapts to the server.
- **open loop** (``Workload.rate_per_s``): arrivals at a fixed mean rate regardless of the server, with
  exponential gaps (Poisson) or gamma gaps of shape 1/cv² for burstier traffic (cv > 1; vLLM's
  ``--burstiness`` is that shape).

Lengths are fixed, drawn from a histogram (``LengthDist``), or read from a JSONL trace of
``{"arrival_s", "prompt_tokens", "output_tokens"}`` objects. Every random draw comes from one
``random.Random(seed)`` owned by the run, so the same inputs give the same requests.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeGuard

from suanli.errors import SpecError, require_positive
from suanli.i18n import Text

# A run simulates at most this many requests (~0.4 ms of CPU each, benchmarks/simulate_speed.py: minutes).
MAX_REQUESTS = 1_000_000
# A trace larger than this is refused rather than read into memory (a JSONL line is ~60 bytes: ~1.7M requests).
MAX_TRACE_BYTES = 100 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """One request: when it arrives, how many prompt tokens it brings and how many it generates.
    ``prefix_group``/``prefix_tokens``: requests of one group share their first ``prefix_tokens`` tokens (a
    system prompt, a few-shot preamble), which prefix caching can reuse."""

    id: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    prefix_group: int | None = None
    prefix_tokens: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class LengthDist:
    """Token lengths: a fixed value, or a histogram of ``edges`` (n+1 bin edges, tokens) with ``weights``
    (n relative frequencies); a draw picks a bin by weight, then a length uniformly inside it."""

    fixed: int | None = None
    edges: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()
    name: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        if self.fixed is not None:
            require_positive("length", self.fixed, fix=Text("fix.simulate.length"))
            return
        if len(self.edges) != len(self.weights) + 1 or not self.weights:
            raise SpecError(f"length histogram {self.name!r}: {len(self.edges)} edges need {len(self.edges) - 1} "
                            f"weights, got {len(self.weights)}",
                            key="error.simulate.histogram_weights",
                            fields={"name": self.name, "edges": len(self.edges), "needed": len(self.edges) - 1,
                                    "weights": len(self.weights)})
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)) or self.edges[0] < 1:
            raise SpecError(f"length histogram {self.name!r}: edges must rise from at least 1, got {self.edges}",
                            key="error.simulate.histogram_edges", fields={"name": self.name, "edges": self.edges})
        if any(w < 0 for w in self.weights) or not sum(self.weights) > 0:
            raise SpecError(f"length histogram {self.name!r}: weights must be non-negative and not all zero",
                            key="error.simulate.histogram_zero", fields={"name": self.name})

    @classmethod
    def constant(cls, tokens: int) -> LengthDist:
        return cls(fixed=tokens, name=str(tokens))

    @property
    def mean(self) -> float:
        if self.fixed is not None:
            return float(self.fixed)
        total = sum(self.weights)
        return sum(w * (a + b - 1) / 2 for w, a, b in zip(self.weights, self.edges, self.edges[1:], strict=False)) \
            / total

    @property
    def max(self) -> int:
        return self.fixed if self.fixed is not None else self.edges[-1] - 1

    def draw(self, rng: random.Random) -> int:
        if self.fixed is not None:
            return self.fixed
        (low,) = rng.choices(range(len(self.weights)), weights=self.weights)
        return rng.randrange(self.edges[low], self.edges[low + 1])


@dataclass(frozen=True, slots=True, kw_only=True)
class Workload:
    """The traffic of one run: ``requests`` requests, closed loop (``concurrency``) or open loop
    (``rate_per_s``, Poisson, or gamma with coefficient of variation ``burstiness_cv``), or a ``trace``.
    ``prefix_groups``/``prefix_tokens``: requests are spread over that many groups sharing a prefix."""

    requests: int
    prompt: LengthDist
    output: LengthDist
    concurrency: int | None = None
    rate_per_s: float | None = None
    burstiness_cv: float = 1.0
    seed: int = 0
    prefix_groups: int = 0
    prefix_tokens: int = 0
    trace: tuple[Request, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if self.trace:
            return
        require_positive("requests", self.requests, fix=Text("fix.simulate.requests"))
        if self.requests > MAX_REQUESTS:
            raise SpecError(f"--requests {self.requests:,} is above the {MAX_REQUESTS:,} a run simulates (about "
                            "0.4 ms of CPU each); a few thousand requests reach a steady state",
                            key="error.simulate.max_requests",
                            fields={"requests": self.requests, "limit": MAX_REQUESTS})
        if (self.concurrency is None) == (self.rate_per_s is None):
            raise SpecError("give exactly one of concurrency (closed loop: --concurrency C) and rate "
                            "(open loop: --rate QPS)", key="error.simulate.loop_choice")
        if self.concurrency is not None:
            require_positive("concurrency", self.concurrency, fix=Text("fix.simulate.concurrency"))
        if self.rate_per_s is not None:
            require_positive("rate", self.rate_per_s, fix=Text("fix.simulate.rate"))
            if not math.isfinite(self.rate_per_s):
                raise SpecError(f"rate must be finite, got {self.rate_per_s}; for all requests at once use "
                                "--concurrency equal to --requests",
                                key="error.simulate.rate_finite", fields={"rate": self.rate_per_s})
        require_positive("burstiness_cv", self.burstiness_cv, fix=Text("fix.simulate.burstiness"))
        if self.prefix_tokens and not self.prefix_groups:
            raise SpecError("prefix_tokens needs prefix_groups (how many distinct shared prefixes)",
                            key="error.simulate.prefix_groups")
        if self.prefix_tokens >= self.prompt.max and self.prefix_tokens:
            raise SpecError(f"the shared prefix ({self.prefix_tokens} tokens) must be shorter than the prompts "
                            f"(up to {self.prompt.max})",
                            key="error.simulate.prefix_length",
                            fields={"prefix": self.prefix_tokens, "longest": self.prompt.max})

    @property
    def closed_loop(self) -> bool:
        return self.concurrency is not None and not self.trace

    def generate(self) -> list[Request]:
        """The requests, in arrival order. A closed loop's arrival times are placeholders (0): the simulator
        sets each one when a client becomes free."""
        if self.trace:
            return list(self.trace)
        rng = random.Random(self.seed)
        arrivals = self._arrivals(rng)
        out = []
        for i in range(self.requests):
            prompt, output = self.prompt.draw(rng), self.output.draw(rng)
            group = rng.randrange(self.prefix_groups) if self.prefix_groups else None
            prefix = min(self.prefix_tokens, prompt - 1) if group is not None else 0
            out.append(Request(id=i, arrival_s=next(arrivals), prompt_tokens=prompt, output_tokens=output,
                               prefix_group=group, prefix_tokens=prefix))
        return out

    def _arrivals(self, rng: random.Random) -> Iterator[float]:
        t = 0.0
        while True:
            yield t if self.rate_per_s is not None else 0.0
            if self.rate_per_s is not None:
                t += _gap(rng, self.rate_per_s, self.burstiness_cv)


def _gap(rng: random.Random, rate: float, cv: float) -> float:
    """An inter-arrival gap of mean 1/rate: exponential (cv = 1) or gamma of shape 1/cv² (vLLM's burstiness)."""
    if cv == 1.0:
        return rng.expovariate(rate)
    shape = 1 / cv**2
    return rng.gammavariate(shape, 1 / (rate * shape))


def read_trace(path: str | Path) -> tuple[Request, ...]:
    """Requests from a JSONL trace: one object per line with ``arrival_s`` (seconds from the start, not
    decreasing), ``prompt_tokens`` and ``output_tokens``; optional ``prefix_group`` and ``prefix_tokens``.
    Errors name the line."""
    file = Path(path)
    if not file.is_file():
        raise SpecError(f"trace {file} does not exist; give a JSONL file of arrival_s/prompt_tokens/output_tokens",
                        key="error.simulate.trace_missing", fields={"file": file})
    if file.stat().st_size > MAX_TRACE_BYTES:
        size_mib, limit_mib = file.stat().st_size / 2**20, MAX_TRACE_BYTES // 2**20
        raise SpecError(f"trace {file} is {size_mib:.0f} MiB, above the {limit_mib} MiB limit; sample it down "
                        "(e.g. every 10th line)",
                        key="error.simulate.trace_size", fields={"file": file, "size_mib": size_mib,
                                                                 "limit_mib": limit_mib})
    requests: list[Request] = []
    with file.open(encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                requests.append(_trace_request(file, number, line, len(requests),
                                               requests[-1].arrival_s if requests else 0.0))
    if not requests:
        raise SpecError(f"trace {file} holds no requests",
                        key="error.simulate.trace_empty", fields={"file": file})
    return tuple(requests)


def _trace_request(file: Path, number: int, line: str, index: int, previous_s: float) -> Request:
    where = Text("error.simulate.trace_line", file=file, number=number)
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{where}: not JSON ({exc.msg}); each line must be one object",
                        key="error.simulate.trace_json", fields={"where": where, "reason": exc.msg}) from None
    if not isinstance(row, dict):
        raise SpecError(f"{where}: expected an object with arrival_s, prompt_tokens, output_tokens",
                        key="error.simulate.trace_object", fields={"where": where})
    arrival = row.get("arrival_s")
    if isinstance(arrival, bool) or not isinstance(arrival, int | float) or not math.isfinite(arrival) \
            or arrival < previous_s:
        raise SpecError(f"{where}: arrival_s must be a number of seconds, not before the previous line's "
                        f"({previous_s}); got {arrival!r}",
                        key="error.simulate.trace_arrival",
                        fields={"where": where, "previous": previous_s, "value": arrival})
    prompt, output = row.get("prompt_tokens"), row.get("output_tokens")
    if not (_positive_int(prompt) and _positive_int(output)):
        raise SpecError(f"{where}: prompt_tokens and output_tokens must be positive integers, got "
                        f"{prompt!r} and {output!r}",
                        key="error.simulate.trace_lengths", fields={"where": where, "prompt": prompt, "output": output})
    group, prefix = row.get("prefix_group"), row.get("prefix_tokens", 0)
    if group is not None and (not isinstance(group, int) or not isinstance(prefix, int) or not 0 <= prefix < prompt):
        raise SpecError(f"{where}: prefix_group must be an integer and prefix_tokens below prompt_tokens",
                        key="error.simulate.trace_prefix", fields={"where": where})
    return Request(id=index, arrival_s=float(arrival), prompt_tokens=prompt, output_tokens=output,
                   prefix_group=group, prefix_tokens=prefix if group is not None else 0)


def _positive_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) by linear interpolation between order statistics (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def bundled_workload(key: str) -> tuple[LengthDist, LengthDist]:
    """The (prompt, output) length histograms of a bundled dataset (``catalog/workloads.toml``)."""
    import tomllib
    from importlib import resources

    try:
        text = resources.files("suanli.catalog").joinpath("workloads.toml").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"--dataset {key}: no bundled length distributions in this installation; give "
                        "--prompt/--output", key="error.simulate.dataset_missing", fields={"dataset": key}) from None
    entries = {w["key"]: w for w in tomllib.loads(text).get("workload", [])}
    if key not in entries:
        bundled = ", ".join(sorted(entries))
        raise SpecError(f"unknown --dataset '{key}'; bundled: {bundled}",
                        key="error.simulate.dataset_unknown", fields={"dataset": key, "bundled": bundled})
    w = entries[key]
    if "prompt_edges" not in w:
        usable = sorted(k for k, e in entries.items() if "prompt_edges" in e)
        reason = w.get("histogram_unavailable") or Text("error.simulate.no_histogram")
        raise SpecError(f"--dataset {key}: {reason}; use one of {', '.join(usable)}, or --prompt/--output",
                        key="error.simulate.dataset_no_histogram",
                        fields={"dataset": key, "reason": reason, "usable": ', '.join(usable)})
    source = str(w.get("source", ""))
    return (LengthDist(edges=tuple(w["prompt_edges"]), weights=tuple(w["prompt_weights"]), name=f"{key} prompt",
                       source=source),
            LengthDist(edges=tuple(w["output_edges"]), weights=tuple(w["output_weights"]), name=f"{key} output",
                       source=source))
