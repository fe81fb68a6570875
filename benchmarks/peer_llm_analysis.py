"""suanli side by side with the peer llm-analysis (PyPI ``llm-analysis`` 0.2.2, github.com/cli99/llm-analysis) on
the published references of the golden tests, and the core time of one evaluation of each tool.

    python3 -m venv benchmarks/.venv-peer && benchmarks/.venv-peer/bin/pip install llm-analysis==0.2.2
    .venv/bin/python benchmarks/peer_llm_analysis.py              # rewrite docs/peer-comparison.md
    .venv/bin/python benchmarks/peer_llm_analysis.py --out -      # print the page instead

llm-analysis pins transformers<5 and huggingface-hub<0.15, so it lives in its own virtual environment (it needs
no torch). This script runs suanli in-process and llm-analysis in a subprocess of that environment (a small
worker written to a temporary file), exchanging JSON. It is not part of the test suite: CI never installs the peer.

Cases: every training case of ``tests/golden/data/training_throughput.toml`` (skipped when the file is absent)
and every inference case of ``tests/golden/data/inference_perf.toml``. suanli's figure for a case comes from the
golden tests' own evaluation path (``benchmarks/calibrate_training.py`` ``predict``; ``tests/golden/
test_inference_perf.py`` ``predict``). Each case is mapped onto llm-analysis's inputs as faithfully as its API
allows (``MAPPING`` below, also printed in the page); a case it cannot express is counted as such, not forced.
llm-analysis runs twice per case: with its own default efficiencies (flops_efficiency = hbm_memory_efficiency = 1)
and with suanli's named efficiencies (gemm_peak_fraction; decode_bandwidth_fraction for serving,
memory_bandwidth_fraction for training). Errors are predicted / published − 1, as in the golden tests.

Timing: median over repeats of one evaluation of one case, in µs of wall time (perf_counter), imports and
model/accelerator resolution excluded on both sides (llm-analysis is handed pre-built config objects; suanli's
``load_model``/``get_accelerator`` are memoised for the timing loop, the evaluation itself is unchanged).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from suanli.spec.assumptions import PerformanceAssumptions  # noqa: E402
from suanli.spec.hardware import Accelerator, get_accelerator  # noqa: E402
from suanli.spec.layout import AttentionImpl, Recompute  # noqa: E402
from suanli.spec.model import Mlp, ModelSpec  # noqa: E402
from suanli.spec.resolve import load_model  # noqa: E402
from suanli.spec.training import Method, PrecisionMode  # noqa: E402

PEER_PYTHON = ROOT / "benchmarks" / ".venv-peer" / "bin" / "python"
DOC = ROOT / "docs" / "peer-comparison.md"
TRAINING_DATA = ROOT / "tests" / "golden" / "data" / "training_throughput.toml"
INFERENCE_DATA = ROOT / "tests" / "golden" / "data" / "inference_perf.toml"
PEER = "llm-analysis"

#: GPU configs llm-analysis 0.2.2 ships under the same names as suanli's catalog keys; other GPUs get a
#: GPUConfig built from suanli's catalog (its API takes one; the values are datasheet figures either way).
PEER_GPUS = frozenset({"a100-sxm-80gb", "a100-sxm-40gb", "h100-sxm-80gb"})
#: Weight formats of the cases → llm-analysis's shipped dtype presets (weight bits, activation bits, embedding).
PEER_DTYPES = {"fp16": "w16a16e16", "bf16": "w16a16e16", "fp8": "w8a8e16", "q8_0": "w8a16e16", "q4_0": "w4a16e16"}
KV_BYTES = {"fp16": 2, "f16": 2, "bf16": 2, "fp8": 1, "int8": 1}
RECOMPUTE = {Recompute.NONE: 0, Recompute.SELECTIVE: 1, Recompute.FULL: 2}  # its ActivationRecomputation

MAPPING = """\
- **Model.** One `ModelConfig` per case, built from the same suanli `ModelSpec` the case uses (so both tools
  see one architecture): layers, heads, hidden size, vocabulary, `num_key_value_heads` (GQA is an input of
  0.2.2). Gated (SwiGLU) MLPs: `ffn_embed_dim = 1.5 · intermediate_size`, so its two-matrix MLP holds the true
  three-matrix weight count (what decode reads); its MLP FLOPs are fixed at 16·b·s·h² per layer whatever
  `ffn_embed_dim` is, so Llama-3's wider MLP (6·h·14336 vs 16·h² per token) is under-counted by its formula, not
  by the mapping. `max_seq_len` = max(the config's, the case's length), so its length check never refuses a
  case. Not expressible: MoE, MLA, sliding windows, layers that differ, `head_dim ≠ hidden/heads`.
- **GPU.** Its own `gpu_configs` for A100 SXM 80/40 GB and H100 SXM (same datasheet values as suanli's
  catalog). L40S, RTX 4090 and RTX 3090 are not in its catalog: a `GPUConfig` is built from suanli's catalog
  (memory label, HBM bandwidth, dense fp16 peak, int8 peak (fp8 where no int8), NVLink or PCIe bandwidth).
- **Number formats.** bf16/fp16 → `w16a16e16`; fp8 weights and activations → `w8a8e16` (its 8-bit GEMM peak is
  H100's fp8 peak); GGUF Q8_0 → `w8a16e16`, Q4_0 → `w4a16e16` (block scales not counted: it takes whole bits);
  Q3_K_S has no preset (it ships 4/8/16-bit weights only): not expressible. KV cache dtype →
  `kv_cache_dtype_bytes`.
- **Serving.** `LLMAnalysis.inference(batch_size_per_gpu=B, seq_len=prompt, num_tokens_to_generate=output)`
  with `tp_size` = the case's TP. ttft → `prefill_latency`; tpot → `decode_latency` (its one decode step, KV
  read at the final length); static → `total_tokens_per_sec` (= B·O / (prefill + O·decode); per GPU ÷ TP);
  llama-bench pp N → `prefill_tokens_per_sec`, tg N → `decode_tokens_per_sec`. It has no engine: TensorRT-LLM,
  llama.cpp and CUDA graphs all map to the same call. **Not expressible: max-load throughput** (continuous
  batching; the concurrency a server reaches is bounded by its KV pool and max_num_seqs, which llm-analysis
  neither takes nor derives: it models one static batch).
- **Training.** `LLMAnalysis.training(batch_size_per_gpu=micro_batch, global_batch_size, seq_len,
  activation_recomputation, ds_zero)` with `tp_size, pp_size, dp_size = gpus/(tp·pp)`; `sp_size = tp` with
  sequence parallelism, else 1 (its default would be tp); FSDP FULL_SHARD → ZeRO-3; eager attention →
  `flash_attn=False`; AMP / mixed bf16 / fp16 → `w16a16e16` with fp32 master weights, fp8 → `w8a8e16`.
  step_s → `latency_per_iter`; tokens/s per GPU → global_batch·seq / `latency_per_iter` / GPUs. Its step time
  is FLOPs / (tp·pp·peak·efficiency): no communication, no pipeline bubble (so interleaving `vp` has nothing
  to act on), no memory-bound kernels, no framework; the cluster network and framework are inputs it has no
  place for. Not expressible: context or expert parallelism, PEFT methods.
- **Efficiencies.** Two columns for the peer: *its defaults* (`flops_efficiency` and `hbm_memory_efficiency`
  both 1, what `infer`/`train` use unless told) and *our efficiencies* (suanli's named assumptions:
  `flops_efficiency = gemm_peak_fraction`, `hbm_memory_efficiency = decode_bandwidth_fraction` for serving,
  `memory_bandwidth_fraction` for training). Everything else keeps llm-analysis's defaults.
"""

READING = """\
- **Training.** llm-analysis's step time is the step's FLOPs (recompute included) over
  `tp·pp·peak·flops_efficiency`: no memory-bound kernels, no separate attention efficiency, no communication,
  no pipeline bubble, no framework. At its default efficiency of 1 it predicts MFU 100%, about twice the
  published throughput; at suanli's GEMM efficiency (0.80) it still over-predicts the bf16 FSDP runs (+9% to
  +161%) and under-predicts Korthikanti et al.'s Megatron step times by 28-47% (their TP all-reduces, bubble
  and memory-bound kernels are missing). FP8 runs, where its `w8a8` preset doubles the peak, are its worst.
- **Serving.** Its decode step reads the KV cache at the final length P+O, twice (load and store), at every
  step, so static batches with long outputs come out at half the published throughput or less; it has no
  kernel-launch, engine-step or collective overheads, so 128-token prefills come out 2-4x too fast; fp8
  prefill runs at the full 8-bit peak. Where a case is a plain roofline (llama.cpp fp16 prompt processing,
  batch-1 fp16 decode) it lands within 5-13% once given a realistic bandwidth efficiency.
"""

WORKER = r'''
import importlib.metadata, json, logging, statistics, sys, time
from llm_analysis.analysis import ActivationRecomputation, DSZeRO, LLMAnalysis
from llm_analysis.config import (DtypeConfig, GPUConfig, ModelConfig, ParallelismConfig,
                                 get_dtype_config_by_name, get_gpu_config_by_name)
from llm_analysis.logger import logger

logger.setLevel(logging.ERROR)


def configs(job):
    gpu = job["gpu"]
    gpu = get_gpu_config_by_name(gpu) if isinstance(gpu, str) else GPUConfig(**gpu)
    return (ModelConfig(**job["model"]), gpu, get_dtype_config_by_name(job["dtype"]),
            ParallelismConfig(**job["parallel"]))


def evaluate(job, built, efficiency):
    model, gpu, dtype, parallel = built
    analysis = LLMAnalysis(model, gpu, dtype, parallel, **efficiency)
    call = dict(job["call"])
    if job["mode"] == "train":
        call["activation_recomputation"] = ActivationRecomputation(call["activation_recomputation"])
        call["ds_zero"] = DSZeRO(call["ds_zero"])
        return analysis.training(**call)
    return analysis.inference(**call)


def timed_us(fn, repeats, budget_s):
    samples, deadline = [], time.perf_counter() + budget_s
    while len(samples) < repeats and (len(samples) < 5 or time.perf_counter() < deadline):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1e3)
    return statistics.median(samples)


def main():
    request = json.load(sys.stdin)
    results = []
    for job in request["jobs"]:
        out = {"id": job["id"]}
        try:
            built = configs(job)
            out["runs"] = {name: evaluate(job, built, eff) for name, eff in job["efficiencies"].items()}
            first = next(iter(job["efficiencies"].values()))
            if request["repeats"]:
                out["us"] = timed_us(lambda: evaluate(job, built, first), request["repeats"], request["budget_s"])
        except Exception as exc:  # the peer refuses a case with an assert or a ValueError
            out["error"] = f"{type(exc).__name__}: {exc}"
        results.append(out)
    json.dump({"version": importlib.metadata.version("llm-analysis"), "results": results}, sys.stdout,
              default=str)


main()
'''


class NotExpressible(Exception):
    """A case llm-analysis has no input for; the message says which."""


@dataclasses.dataclass
class Row:
    """One published figure with both tools' predictions."""

    id: str
    group: str  # "training" or "inference"
    metric: str
    published: float
    known_gap: bool
    held_out: bool  # never seen by suanli's calibration (benchmarks/calibrate_*.py fit the other half)
    suanli: float
    suanli_fn: Callable[[], float]
    job: dict[str, Any] | None = None  # llm-analysis inputs; None when not expressible
    extract: Callable[[dict[str, Any]], float] | None = None
    not_expressible: str = ""
    peer: dict[str, float] = dataclasses.field(default_factory=dict)  # efficiency variant → prediction
    peer_error: str = ""
    suanli_us: float = math.nan
    peer_us: float = math.nan

    @property
    def compared(self) -> bool:
        return bool(self.peer)


# ---- mapping onto llm-analysis's inputs ---------------------------------------------------------------------


def model_config(spec: ModelSpec, length: int) -> dict[str, Any]:
    """llm-analysis's ModelConfig fields for ``spec`` (raises NotExpressible for what 0.2.2 cannot hold)."""
    groups = spec.layer_groups()
    if len(groups) > 1:
        raise NotExpressible("layers differ (llm-analysis repeats one layer)")
    layer = groups[0][0]
    att = layer.attention
    if spec.is_moe or not isinstance(layer.ffn, Mlp):
        raise NotExpressible("mixture of experts")
    if att.mla is not None:
        raise NotExpressible("multi-head latent attention")
    if att.sliding_window is not None:
        raise NotExpressible("sliding-window attention")
    if att.head_dim * att.num_heads != spec.hidden_size:
        raise NotExpressible(f"head_dim {att.head_dim} ≠ hidden/heads (llm-analysis derives it)")
    ffn = layer.ffn.intermediate_size * 3 / 2 if layer.ffn.gated else layer.ffn.intermediate_size
    return {"name": spec.name, "num_layers": spec.num_layers, "n_head": att.num_heads, "hidden_dim": spec.hidden_size,
            "vocab_size": spec.vocab_size, "max_seq_len": max(spec.max_position_embeddings, length),
            "num_key_value_heads": att.num_kv_heads, "ffn_embed_dim": ffn, "expansion_ratio": ffn / spec.hidden_size,
            "model_type": spec.model_type}


def gpu_config(acc: Accelerator) -> str | dict[str, Any]:
    """Its shipped config by name, or one built from suanli's catalog entry."""
    if acc.key in PEER_GPUS:
        return acc.key
    peaks = acc.peak_flops_per_s
    fp16 = peaks.get("fp16", peaks.get("bf16"))
    if fp16 is None:
        raise NotExpressible(f"{acc.key} has no fp16 tensor peak")
    i8 = peaks.get("int8", peaks.get("fp8", 2 * fp16))
    link = acc.scale_up.bandwidth_bytes_per_s if acc.scale_up else (
        acc.host_link.bandwidth_bytes_per_s if acc.host_link else 32e9)
    return {"name": acc.key, "mem_per_GPU_in_GB": acc.memory_gb,
            "hbm_bandwidth_in_GB_per_sec": acc.memory_bandwidth_bytes_per_s / 1e9,
            "intra_node_bandwidth_in_GB_per_sec": link / 1e9, "intra_node_min_message_latency": 8e-06,
            "peak_fp16_TFLOPS": fp16 / 1e12, "peak_i8_TFLOPS": i8 / 1e12,
            "peak_i4_TFLOPS": peaks.get("int4", 2 * i8) / 1e12}


def efficiencies(serving: bool) -> dict[str, dict[str, float | None]]:
    a = PerformanceAssumptions()
    hbm = a.decode_bandwidth_fraction if serving else a.memory_bandwidth_fraction
    return {"defaults": {"flops_efficiency": None, "hbm_memory_efficiency": None},
            "ours": {"flops_efficiency": a.gemm_peak_fraction, "hbm_memory_efficiency": hbm}}


def inference_job(case: dict[str, Any]) -> tuple[dict[str, Any], Callable[[dict[str, Any]], float]]:
    kind = case["kind"]
    if kind == "max_load":
        raise NotExpressible("continuous batching at max load (llm-analysis models one static batch)")
    dtype = PEER_DTYPES.get(case["quant"])
    if dtype is None:
        raise NotExpressible(f"weight format {case['quant']} (no llm-analysis dtype preset)")
    p, o, b, tp = case["prompt"], case["output"], case.get("batch", 1), case["tp"]
    job = {"mode": "infer", "model": model_config(load_model(case["model"]), p + o),
           "gpu": gpu_config(get_accelerator(case["gpu"])), "dtype": dtype,
           "parallel": {"tp_size": tp, "pp_size": 1, "dp_size": 1},
           "call": {"batch_size_per_gpu": b, "seq_len": p, "num_tokens_to_generate": o,
                    "kv_cache_dtype_bytes": KV_BYTES[case["kv_dtype"]]},
           "efficiencies": efficiencies(serving=True)}
    per_gpu = tp if case.get("per_gpu") else 1
    extract: dict[str, Callable[[dict[str, Any]], float]] = {
        "ttft": lambda r: r["prefill_latency"],
        "tpot": lambda r: r["decode_latency"],
        "static": lambda r: r["total_tokens_per_sec"] / per_gpu,
        "prefill_rate": lambda r: r["prefill_tokens_per_sec"],
        "decode_rate": lambda r: r["decode_tokens_per_sec"],
    }
    return job, extract[kind]


def training_job(case: Any) -> tuple[dict[str, Any], Callable[[dict[str, Any]], float]]:
    lay, job = case.layout, case.job
    if lay.cp > 1 or lay.ep > 1:
        raise NotExpressible("context or expert parallelism")
    if job.method is not Method.FULL:
        raise NotExpressible(f"{job.method.value} fine-tuning")
    if job.precision is PrecisionMode.FP32:
        raise NotExpressible("fp32 training (no 32-bit dtype preset)")
    gpus = lay.tp * lay.pp * lay.dp
    out = {"mode": "train", "model": model_config(case.spec, job.seq), "gpu": gpu_config(get_accelerator(case.gpu)),
           "dtype": "w8a8e16" if job.precision is PrecisionMode.FP8 else "w16a16e16",
           "parallel": {"tp_size": lay.tp, "pp_size": lay.pp, "dp_size": lay.dp, "sp_size": lay.tp if lay.sp else 1},
           "call": {"batch_size_per_gpu": lay.micro_batch, "global_batch_size": lay.effective_global_batch,
                    "seq_len": job.seq, "activation_recomputation": RECOMPUTE[lay.recompute], "ds_zero": lay.zero,
                    "flash_attn": job.attention is not AttentionImpl.EAGER,
                    "mlp_gated_linear_units": bool(getattr(case.spec.layers[0].ffn, "gated", False))},
           "efficiencies": efficiencies(serving=False)}
    if case.metric == "step_s":
        return out, lambda r: r["latency_per_iter"]
    return out, lambda r: r["global_batch_size"] * r["seq_len"] / r["latency_per_iter"] / gpus


# ---- the two sides --------------------------------------------------------------------------------------------


def training_rows() -> list[Row]:
    if not TRAINING_DATA.exists():
        print(f"note: {TRAINING_DATA.relative_to(ROOT)} not found; training cases skipped", file=sys.stderr)
        return []
    from benchmarks.calibrate_training import load_cases, predict

    rows = []
    for case in load_cases():
        row = Row(id=case.id, group="training", metric=case.metric, published=case.published,
                  known_gap=case.known_gap, held_out=case.half == "held-out", suanli=predict(case),
                  suanli_fn=functools.partial(predict, case))
        _attach(row, lambda c=case: training_job(c))
        rows.append(row)
    return rows


def inference_rows() -> list[Row]:
    import tests.golden.test_inference_perf as perf

    rows = []
    for case in perf.load_cases():
        row = Row(id=case["id"], group="inference", metric=case["kind"], published=case["value"],
                  known_gap=bool(case.get("known_gap")), held_out=case["half"] == "held_out",
                  suanli=perf.predict(case),
                  suanli_fn=functools.partial(perf.predict, case))
        _attach(row, lambda c=case: inference_job(c))
        rows.append(row)
    return rows


def _attach(row: Row, build: Callable[[], tuple[dict[str, Any], Callable[[dict[str, Any]], float]]]) -> None:
    try:
        job, extract = build()
    except NotExpressible as exc:
        row.not_expressible = str(exc)
        return
    row.job, row.extract = {**job, "id": row.id}, extract


def run_peer(rows: list[Row], python: Path, repeats: int, budget_s: float) -> str:
    """Evaluate every expressible case in llm-analysis's environment; fill ``peer`` / ``peer_us``."""
    jobs = [r.job for r in rows if r.job is not None]
    with tempfile.NamedTemporaryFile("w", suffix="_llm_analysis_worker.py", delete=False) as f:
        f.write(WORKER)
        worker = Path(f.name)
    try:
        done = subprocess.run([str(python), str(worker)], input=json.dumps(
            {"jobs": jobs, "repeats": repeats, "budget_s": budget_s}), capture_output=True, text=True, check=False)
    finally:
        worker.unlink()
    if done.returncode:
        raise SystemExit(f"the llm-analysis worker failed ({python}):\n{done.stderr[-3000:]}")
    reply = json.loads(done.stdout)
    by_id = {r.id: r for r in rows}
    for result in reply["results"]:
        row = by_id[result["id"]]
        if "error" in result:
            row.peer_error = result["error"].splitlines()[0][:160]
            continue
        assert row.extract is not None
        row.peer = {name: row.extract(summary) for name, summary in result["runs"].items()}
        row.peer_us = result.get("us", math.nan)
    return str(reply["version"])


def time_suanli(rows: list[Row], repeats: int, budget_s: float) -> None:
    """Median µs of one evaluation per case; model and accelerator resolution memoised (see module docstring)."""
    import tests.golden.test_inference_perf as perf

    with mock.patch.object(perf, "load_model", functools.cache(load_model)), \
            mock.patch.object(perf, "get_accelerator", functools.cache(get_accelerator)):
        for row in rows:
            row.suanli_us = timed_us(row.suanli_fn, repeats, budget_s)


def timed_us(fn: Callable[[], object], repeats: int, budget_s: float) -> float:
    fn()
    samples: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(samples) < repeats and (len(samples) < 5 or time.perf_counter() < deadline):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1e3)
    return statistics.median(samples)


# ---- the page ------------------------------------------------------------------------------------------------


def err(predicted: float | None, published: float) -> float:
    return math.nan if predicted is None else predicted / published - 1


def stats(errors: list[float]) -> str:
    a = [abs(e) for e in errors]
    if not a:
        return "– | – | –"
    return f"{statistics.median(a):.1%} | {statistics.fmean(a):.1%} | {max(a):.1%}"


TOOLS: list[tuple[str, Callable[[Row], float]]] = [
    ("suanli", lambda r: err(r.suanli, r.published)),
    (f"{PEER} (its defaults)", lambda r: err(r.peer.get("defaults"), r.published)),
    (f"{PEER} (our efficiencies)", lambda r: err(r.peer.get("ours"), r.published)),
]


def summary_table(rows: list[Row]) -> list[str]:
    out = ["| cases | tool | n | median abs. error | mean | worst |", "|---|---|---:|---:|---:|---:|"]
    for label, chosen in (("training", [r for r in rows if r.group == "training"]),
                          ("inference", [r for r in rows if r.group == "inference"]), ("all", rows)):
        subsets = ((chosen, ""), ([r for r in chosen if not r.known_gap], ", no known gaps"),
                   ([r for r in chosen if r.held_out and not r.known_gap], ", held-out half, no known gaps"))
        for subset, which in subsets:
            both = [r for r in subset if r.compared]
            if not both:
                continue
            for tool, e in TOOLS:
                out.append(f"| {label}{which} | {tool} | {len(both)} | {stats([e(r) for r in both])} |")
    return out


def timing_table(rows: list[Row]) -> list[str]:
    out = ["| cases | suanli µs / evaluation (median, range) | llm-analysis µs / evaluation (median, range) |",
           "|---|---:|---:|"]
    for group in ("training", "inference"):
        timed = [r for r in rows if r.group == group and r.compared and not math.isnan(r.peer_us)]
        if not timed:
            continue
        ours, theirs = [r.suanli_us for r in timed], [r.peer_us for r in timed]
        out.append(f"| {group} ({len(timed)}) | {statistics.median(ours):.0f} ({min(ours):.0f}–{max(ours):.0f}) | "
                   f"{statistics.median(theirs):.0f} ({min(theirs):.0f}–{max(theirs):.0f}) |")
    return out


def fmt(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.4g}"


def pct(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:+.1%}"


def case_table(rows: list[Row]) -> list[str]:
    out = ["| case | metric | published | suanli | error | llm-analysis (defaults) | error | "
           "llm-analysis (our eff.) | error | note |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        d, o = r.peer.get("defaults"), r.peer.get("ours")
        note = ("not expressible: " + r.not_expressible) if r.not_expressible else (
            ("llm-analysis refused: " + r.peer_error) if r.peer_error else "")
        if r.known_gap:
            note = "suanli known gap" + ("; " + note if note else "")
        out.append(f"| {r.id} | {r.metric} | {fmt(r.published)} | {fmt(r.suanli)} | "
                   f"{pct(err(r.suanli, r.published))} | {fmt(d)} | {pct(err(d, r.published))} | {fmt(o)} | "
                   f"{pct(err(o, r.published))} | {note} |")
    return out


def expressible_lines(rows: list[Row]) -> list[str]:
    out = []
    for group in ("training", "inference"):
        chosen = [r for r in rows if r.group == group]
        if not chosen:
            continue
        reasons = Counter(r.not_expressible for r in chosen if r.not_expressible)
        refused = sum(1 for r in chosen if r.peer_error)
        parts = [f"{n} {why}" for why, n in reasons.most_common()] + ([f"{refused} refused by llm-analysis"]
                                                                     if refused else [])
        out.append(f"- {group}: {sum(r.compared for r in chosen)} of {len(chosen)} cases compared"
                   + (f" (not compared: {'; '.join(parts)})" if parts else ""))
    return out


def headline(rows: list[Row]) -> list[str]:
    out = []
    for group in ("training", "inference"):
        both = [r for r in rows if r.group == group and r.compared]
        if not both:
            continue
        parts = []
        for tool, e in TOOLS:
            a = [abs(e(r)) for r in both]
            parts.append(f"{tool} median {statistics.median(a):.1%}, worst {max(a):.1%}")
        out.append(f"- **{group}** ({len(both)} cases both express): " + "; ".join(parts) + ".")
    return out


def page(rows: list[Row], version: str, repeats: int) -> str:
    lines = [
        "# suanli side by side with llm-analysis",
        "",
        f"Generated by `benchmarks/peer_llm_analysis.py` (llm-analysis {version}, PyPI; github.com/cli99/"
        "llm-analysis). The cases are the published figures of the golden tests "
        "(`tests/golden/data/training_throughput.toml`, `tests/golden/data/inference_perf.toml`, each with its "
        "citation there). Error = predicted / published − 1. Summary statistics are over the cases both tools "
        "can express, suanli's declared known gaps included (and, on further lines, left out; and the held-out half "
        "alone: suanli's efficiencies were fitted on the calibration half of these files, llm-analysis's on none).",
        "",
        "## Summary",
        "",
        *headline(rows),
        "",
        *expressible_lines(rows),
        "",
        *summary_table(rows),
        "",
        "## Time for one evaluation",
        "",
        f"Median over up to {repeats} repeats per case, then the median (and range) over the cases of each group; "
        "wall time on this machine, one core, imports and model/accelerator resolution excluded on both sides. "
        "suanli: the golden tests' evaluation of the case (training: `training_time`; serving: `serving_setup` + "
        "the case's `inference_time` / `prefill_time` / `decode_step_time`). llm-analysis: `LLMAnalysis(...)` + "
        "`.training(...)` / `.inference(...)` from pre-built configs, logging at ERROR; each of its calls also "
        "computes its memory estimate, while suanli's timed training call is the step time alone (memory + time "
        "together: `benchmarks/eval_speed.py`, docs/speed.md). The serving path is the golden test's, which builds "
        "the serving setup twice for static/ttft/tpot cases (once itself, once inside `inference_time`).",
        "",
        *timing_table(rows),
        "",
        "## Where the differences come from",
        "",
        READING,
        "## How each case was mapped onto llm-analysis",
        "",
        MAPPING,
        "## Every case",
        "",
        *case_table(rows),
        "",
        "## Rerun",
        "",
        "```",
        "python3 -m venv benchmarks/.venv-peer && benchmarks/.venv-peer/bin/pip install llm-analysis==0.2.2",
        ".venv/bin/python benchmarks/peer_llm_analysis.py   # rewrites this page",
        "```",
        "",
        "The peer's venv is ignored by git and never installed by CI; this comparison is not part of the test suite.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", type=Path, default=PEER_PYTHON, help="python of llm-analysis's venv")
    parser.add_argument("--repeats", type=int, default=200, help="timing repeats per case (0: no timing)")
    parser.add_argument("--budget", type=float, default=0.5, help="seconds of timing per case and tool, at most")
    parser.add_argument("--out", default=str(DOC), help="page to write, or - for stdout")
    args = parser.parse_args()
    if not args.peer_python.exists():
        print(f"llm-analysis's environment is missing ({args.peer_python}); create it with\n"
              "  python3 -m venv benchmarks/.venv-peer && benchmarks/.venv-peer/bin/pip install llm-analysis==0.2.2",
              file=sys.stderr)
        return 2
    rows = training_rows() + inference_rows()
    version = run_peer(rows, args.peer_python, args.repeats, args.budget)
    if args.repeats:
        time_suanli([r for r in rows if r.compared], args.repeats, args.budget)
    text = page(rows, version, args.repeats)
    if args.out == "-":
        print(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
        print("\n".join(headline(rows) + expressible_lines(rows) + timing_table(rows)))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
