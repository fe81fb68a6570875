"""Core time of one full evaluation in the plain path (no explanation): ``train`` = training memory + step time,
``infer`` = serving memory + static-batch latency (``inference_memory`` + ``inference_time``), and
``infer + max load`` = what ``suanli infer`` computes (``suanli/infer_report.py``: memory, one serving setup,
prefill, mean decode step and max-load throughput), for a few models. Target (the search issue): well under
1 ms of core time per evaluation, so that a search over 1e5–1e6 layouts takes seconds.

    .venv/bin/python benchmarks/eval_speed.py                  # table + whether the target is met
    .venv/bin/python benchmarks/eval_speed.py --profile 25     # also the top 25 cProfile hotspots per miss

Each figure is the median over batches of CPU time (``time.process_time_ns``) divided by the evaluations in the
batch, after a warm-up; the model spec, accelerator and layout are built once outside the timed loop (a search
holds them too). Findings and numbers: docs/speed.md.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from suanli.core.inference_memory import inference_memory
from suanli.core.inference_time import (
    inference_time,
    max_load_throughput,
    mean_decode_time,
    prefill_time,
    serving_setup,
)
from suanli.core.memory import training_memory
from suanli.core.training_time import training_time
from suanli.search.fit import usable_memory_bytes
from suanli.spec.engines import get_engine
from suanli.spec.hardware import get_accelerator
from suanli.spec.layout import Layout, Recompute
from suanli.spec.precision import parse_number_format
from suanli.spec.resolve import load_model
from suanli.spec.training import Framework, PrecisionMode, TrainingJob

TARGET_US = 1000.0
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Scenario:
    model: str
    train_gpu: str
    layout: Layout
    job: TrainingJob
    infer_gpu: str
    tp: int
    ep: int
    quant: str
    batch: int
    prompt: int
    output: int

    @property
    def train_label(self) -> str:
        lay = self.layout
        return (f"{lay.gpus}x {self.train_gpu} tp{lay.tp} pp{lay.pp} dp{lay.dp} ep{lay.ep} zero{lay.zero} "
                f"seq {self.job.seq} {lay.recompute.value}")

    @property
    def infer_label(self) -> str:
        return f"{self.infer_gpu} tp{self.tp} ep{self.ep} {self.quant} B{self.batch} {self.prompt}+{self.output}"


SCENARIOS = (
    Scenario(model="llama-3.1-8b", train_gpu="h100",
             layout=Layout(dp=8, zero=3, micro_batch=1, global_batch=32, recompute=Recompute.SELECTIVE),
             job=TrainingJob(seq=8192, precision=PrecisionMode.AMP_BF16, framework=Framework.FSDP),
             infer_gpu="h100", tp=1, ep=1, quant="bf16", batch=16, prompt=1024, output=256),
    Scenario(model="llama-3.1-70b", train_gpu="h100",
             layout=Layout(tp=8, pp=4, dp=2, sp=True, zero=1, micro_batch=1, global_batch=128,
                           recompute=Recompute.SELECTIVE),
             job=TrainingJob(seq=8192, precision=PrecisionMode.MIXED_FP32_GRADS, framework=Framework.MEGATRON),
             infer_gpu="h100", tp=4, ep=1, quant="bf16", batch=32, prompt=2048, output=512),
    Scenario(model="mixtral-8x7b", train_gpu="h100",
             layout=Layout(tp=2, dp=32, ep=8, zero=1, micro_batch=1, global_batch=256, recompute=Recompute.SELECTIVE),
             job=TrainingJob(seq=4096, precision=PrecisionMode.MIXED_FP32_GRADS, framework=Framework.MEGATRON),
             infer_gpu="h100", tp=2, ep=1, quant="bf16", batch=16, prompt=1024, output=256),
    Scenario(model="deepseek-v3", train_gpu="h100",
             layout=Layout(pp=16, dp=16, ep=16, zero=1, micro_batch=1, global_batch=1024, recompute=Recompute.FULL),
             job=TrainingJob(seq=4096, precision=PrecisionMode.FP8, framework=Framework.MEGATRON),
             infer_gpu="h200", tp=8, ep=8, quant="fp8", batch=32, prompt=2048, output=512),
)


def evaluations(s: Scenario) -> dict[str, Callable[[], object]]:
    """The three timed calls of a scenario, with everything a search would hold built once."""
    spec = load_model(s.model)
    train_acc, infer_acc = get_accelerator(s.train_gpu), get_accelerator(s.infer_gpu)
    capacity = usable_memory_bytes(train_acc)
    engine, fmt = get_engine("vllm"), parse_number_format(s.quant)

    def train() -> object:
        return (training_memory(spec, s.job, s.layout, capacity_bytes=capacity),
                training_time(spec, s.job, s.layout, train_acc))

    def infer() -> object:
        return (inference_memory(spec, infer_acc, batch=s.batch, prompt_tokens=s.prompt, output_tokens=s.output,
                                 engine=engine, weights_format=fmt, tp=s.tp, ep=s.ep),
                inference_time(spec, infer_acc, batch=s.batch, prompt_tokens=s.prompt, output_tokens=s.output,
                               engine=engine, weights_format=fmt, tp=s.tp, ep=s.ep))

    def infer_and_load() -> object:  # what suanli.infer_report computes: one setup shared by the three
        setup = serving_setup(spec, infer_acc, engine=engine, weights_format=fmt, tp=s.tp, ep=s.ep)
        return (inference_memory(spec, infer_acc, batch=s.batch, prompt_tokens=s.prompt, output_tokens=s.output,
                                 engine=engine, weights_format=fmt, tp=s.tp, ep=s.ep),
                prefill_time(setup, batch=s.batch, prompt_tokens=s.prompt),
                mean_decode_time(setup, batch=s.batch, prompt_tokens=s.prompt, output_tokens=s.output),
                max_load_throughput(setup, prompt_tokens=s.prompt, output_tokens=s.output))

    return {"train": train, "infer": infer, "infer + max load": infer_and_load}


def core_us(fn: Callable[[], object], batches: int, min_batch_s: float) -> float:
    """Median CPU µs per call over ``batches`` batches, each long enough to dwarf the clock's resolution."""
    fn()
    per_batch = 1
    while True:  # size a batch to about min_batch_s
        start = time.process_time_ns()
        for _ in range(per_batch):
            fn()
        if (time.process_time_ns() - start) / 1e9 >= min_batch_s or per_batch >= 1 << 16:
            break
        per_batch *= 2
    samples = []
    for _ in range(batches):
        start = time.process_time_ns()
        for _ in range(per_batch):
            fn()
        samples.append((time.process_time_ns() - start) / 1e3 / per_batch)
    return statistics.median(samples)


def hotspots(fn: Callable[[], object], top: int, calls: int = 200) -> str:
    """cProfile of ``calls`` evaluations: the top functions by own time, then by cumulative time."""
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(calls):
        fn()
    profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue().replace(str(ROOT) + "/", "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=15, help="timed batches per figure (median taken)")
    parser.add_argument("--batch-seconds", type=float, default=0.05, help="CPU seconds per timed batch, about")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="print the top N hotspots of each miss")
    args = parser.parse_args()
    misses: list[tuple[str, Callable[[], object]]] = []
    print(f"| model | evaluation | setting | core µs / evaluation | ratio to {TARGET_US:.0f} µs | met |")
    print("|---|---|---|---:|---:|---|")
    for s in SCENARIOS:
        for name, fn in evaluations(s).items():
            us = core_us(fn, args.batches, args.batch_seconds)
            met = us < TARGET_US
            setting = s.train_label if name == "train" else s.infer_label
            print(f"| {s.model} | {name} | {setting} | {us:.0f} | {us / TARGET_US:.2f} | {'yes' if met else 'no'} |")
            if not met:
                misses.append((f"{s.model} {name}", fn))
    print(f"\n{len(misses)} of {3 * len(SCENARIOS)} evaluations miss the {TARGET_US:.0f} µs target"
          + (": " + ", ".join(m for m, _ in misses) if misses else ""))
    if args.profile:
        for label, fn in misses:
            print(f"\n### {label}\n")
            print(hotspots(fn, args.profile))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
