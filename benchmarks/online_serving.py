"""``suanli simulate`` against published online-serving measurements (tests/golden/data/online_serving.toml).

Each case is replayed as published — model, GPU, tp/ep/replicas, engine and the knobs the source states,
closed-loop concurrency or Poisson rate, request count, fixed lengths or a bundled length distribution — and the
simulated TTFT, TPOT (or ITL where only that is given) and output throughput are compared with the published
ones, with the statistic the source reports (mean, else median). Nothing is fitted here: the serving assumptions
come from the static-batch calibration of issue 4, so both halves are held-out for the simulator; the split is
kept for a later fit.

    .venv/bin/python benchmarks/online_serving.py            # every case, then medians per set
    .venv/bin/python benchmarks/online_serving.py --sweeps   # also each sweep's saturation point
    .venv/bin/python benchmarks/online_serving.py --write    # regenerate docs/serving-accuracy.md
    .venv/bin/python benchmarks/online_serving.py --check    # CI: exit 1 if that page is stale

Cases the simulator cannot express are counted with the reason (an engine without a preset, a distribution
with no published histogram, DP attention).
"""

from __future__ import annotations

import argparse
import statistics
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from suanli.errors import SuanliError
from suanli.simulate.api import Deployment, simulate
from suanli.simulate.metrics import ServingMetrics
from suanli.simulate.workload import LengthDist, Workload, bundled_workload
from suanli.spec.engines import EngineKnobs, get_engine
from suanli.spec.hardware import get_accelerator
from suanli.spec.model import ModelSpec
from suanli.spec.precision import NumberFormat, parse_number_format
from suanli.spec.resolve import load_model

DATA = Path(__file__).resolve().parent.parent / "tests" / "golden" / "data" / "online_serving.toml"
MAX_REQUESTS = 2000  # longer runs are cut to this many requests (a steady state is reached well before)


@dataclass(frozen=True, slots=True)
class Result:
    case: dict[str, Any]
    errors: dict[str, float]  # metric → predicted / measured − 1
    predicted: dict[str, float]
    skipped: str = ""


def load_cases() -> list[dict[str, Any]]:
    with DATA.open("rb") as f:
        return list(tomllib.load(f)["case"])


def replay(case: dict[str, Any]) -> Result:
    reason = _unsupported(case)
    if reason:
        return Result(case, {}, {}, skipped=reason)
    try:
        metrics = _simulate(case)
    except SuanliError as exc:
        return Result(case, {}, {}, skipped=f"refused: {exc}")
    predicted = _predicted(metrics, case)
    errors = {name: predicted[name] / case[key] - 1 for name, key in _measured_keys(case).items()}
    return Result(case, errors, predicted)


def _unsupported(case: dict[str, Any]) -> str:
    if case.get("dp_attention"):
        return "DP attention (attention data-parallel, experts across ranks) is not modelled"
    if case.get("dataset"):
        try:
            bundled_workload(case["dataset"])
        except (SuanliError, KeyError):
            return f"no published histogram for dataset {case['dataset']!r}"
    if (case.get("num_scheduler_steps") or 1) > 1:
        return "multi-step scheduling (tokens streamed in bursts) is not modelled"
    return ""


def _simulate(case: dict[str, Any]) -> ServingMetrics:
    spec = load_model(case["model"])
    knobs = EngineKnobs(gpu_memory_utilization=case.get("gpu_memory_utilization") or case.get("mem_fraction_static"),
                        max_num_seqs=case.get("max_num_seqs") or case.get("max_batch_size")
                        or case.get("max_concurrent_requests"),
                        max_num_batched_tokens=case.get("max_num_batched_tokens") or case.get("max_num_tokens"),
                        enable_chunked_prefill=case.get("enable_chunked_prefill"))
    deployment = Deployment(accelerator=get_accelerator(case["gpu"]), engine=get_engine(case["engine"]),
                            tp=case.get("tp", 1), ep=case.get("ep", 1), replicas=case.get("replicas", 1),
                            weights_format=_weights_format(case, spec),
                            kv_format=None if case.get("kv_dtype", "auto") == "auto"
                            else parse_number_format(case["kv_dtype"]), knobs=knobs)
    if case.get("dataset"):
        prompt, output = bundled_workload(case["dataset"])
    else:
        prompt, output = LengthDist.constant(case["prompt_tokens"]), LengthDist.constant(case["output_tokens"])
    requests = min(case.get("requests") or 10 * (case.get("concurrency") or 10), MAX_REQUESTS)
    workload = Workload(requests=requests, prompt=prompt, output=output, concurrency=case.get("concurrency"),
                        rate_per_s=case.get("rate_per_s"), seed=1)
    return simulate(spec, deployment, workload, keep_timeline=False).metrics


def _weights_format(case: dict[str, Any], spec: ModelSpec) -> NumberFormat | None:
    """The case's ``quant``; None (the checkpoint's own layout) where the checkpoint is already quantized to
    that kind of number: the sources say "fp8" for DeepSeek-R1, whose Hub checkpoint engines load as its
    128×128-block FP8, not as per-tensor fp8."""
    quant = case.get("quant")
    if not quant:
        return None
    fmt = parse_number_format(quant)
    own = spec.quantization.weights if spec.quantization else None
    if own is not None and (own.family, own.bits_per_element) == (fmt.family, fmt.bits_per_element):
        return None
    return fmt


def _measured_keys(case: dict[str, Any]) -> dict[str, str]:
    """Which published figure each compared metric uses: the mean where given, else the median."""
    keys: dict[str, str] = {}
    for metric in ("ttft", "tpot"):
        for stat in ("mean", "median"):
            if f"{metric}_{stat}_s" in case:
                keys[metric] = f"{metric}_{stat}_s"
                break
    if "tpot" not in keys and "itl_mean_s" in case:
        keys["tpot"] = "itl_mean_s"  # one token per streamed chunk: mean ITL is TPOT
    if "output_tokens_per_s" in case:
        keys["throughput"] = "output_tokens_per_s"
    return keys


def _predicted(m: ServingMetrics, case: dict[str, Any]) -> dict[str, float]:
    keys = _measured_keys(case)
    ttft = m.ttft.mean if keys.get("ttft", "").endswith("mean_s") else m.ttft.p50
    tpot = m.tpot.mean if keys.get("tpot", "").endswith(("mean_s",)) else m.tpot.p50
    return {"ttft": ttft, "tpot": tpot, "throughput": m.output_tokens_per_s}


def summary(results: list[Result]) -> list[str]:
    lines = []
    for split in ("calibration", "held-out"):
        for metric in ("ttft", "tpot", "throughput"):
            for label, keep in (("all", lambda c: True),
                                ("concurrency ≥ 16", lambda c: (c.get("concurrency") or 0) >= 16)):
                errs = [abs(r.errors[metric]) for r in results
                        if metric in r.errors and r.case["split"] == split and keep(r.case)]
                if errs:
                    lines.append(f"{split:<12} {metric:<11} {label:<17} n={len(errs):>3}  median |error| "
                                 f"{statistics.median(errs):6.1%}  worst {max(errs):7.1%}")
    return lines


def saturation(results: list[Result]) -> list[str]:
    """Per concurrency sweep: the first concurrency whose throughput is within 5% of the sweep's best,
    published and simulated."""
    sweeps: dict[str, list[Result]] = defaultdict(list)
    for r in results:
        if r.case.get("concurrency") and "throughput" in r.errors and not r.case["sweep"].endswith("-osl"):
            sweeps[r.case["sweep"]].append(r)
    lines = []
    for name, rs in sorted(sweeps.items()):
        if len(rs) < 3:
            continue
        rs.sort(key=lambda r: r.case["concurrency"])
        lines.append(f"{name:<55} published {_knee(rs, measured=True):>5}  simulated {_knee(rs, measured=False):>5}")
    return lines


def _knee(rs: list[Result], *, measured: bool) -> int:
    values = [r.case["output_tokens_per_s"] if measured else r.predicted["throughput"] for r in rs]
    best = max(values)
    return int(next(r.case["concurrency"] for r, v in zip(rs, values, strict=True) if v >= 0.95 * best))


PAGE = Path(__file__).resolve().parent.parent / "docs" / "serving-accuracy.md"


def page(results: list[Result]) -> str:
    """docs/serving-accuracy.md: every case with its errors, the medians per set, the saturation points."""
    simulated = [r for r in results if not r.skipped]
    lines = [
        "<!-- generated by benchmarks/online_serving.py --write — do not edit by hand -->",
        "",
        "# `suanli simulate` against published online-serving measurements",
        "",
        "Each published run (tests/golden/data/online_serving.toml; sources in docs/serving-references.md) is "
        "replayed through the simulator as published, and the simulated TTFT, TPOT (mean ITL where only that is "
        "given) and output throughput are compared with the published statistic (mean, else median). The "
        "simulator fits nothing: every step is priced by the roofline calibrated on static batches (issue 4), so "
        "both halves are held-out for it. Error = predicted / measured − 1.",
        "",
        "## Summary",
        "",
        "```",
        *summary(results),
        f"{len(simulated)} cases simulated, {len(results) - len(simulated)} not expressible (below)",
        "```",
        "",
        "## Why the misses",
        "",
        "- Dense models (NIM Llama-3.3-70B, Mistral-7B on an RTX 4090) are within ~10–20% at low concurrency. At",
        "  high concurrency the NIM sweep saturates at ~100 clients while we saturate at 50: its table does not say",
        "  the KV-cache dtype; an fp8 KV cache (common in NIM's fp8 profiles, unconfirmed) would double our pool and",
        "  the running batch. We replay the documented settings only.",
        "- DeepSeek-R1 (30 of the simulated cases) is still too fast. Modelled since the first replay, from measured",
        "  kernels: block-scaled fp8 GEMMs at 0.21 of the fp8 peak with a 15 µs floor (vLLM PR #23280, SGLang PRs",
        "  #5207/#5820), the fused-MoE launches, and vLLM 0.7's whole-prompt prefill for MLA models. Left: prefill",
        "  fused-MoE speed at prefill sizes in early-2025 engines (vLLM PR #13932 shows 48–64 TFLOP/s untuned on",
        "  H100, not encoded: it conflicts with tuned H200 configs), TensorRT-LLM's PyTorch backend possibly",
        "  without CUDA graphs (unverified), and MI300X kernel and collective costs (no sourced figures: we predict",
        "  the same time as on H200; it measured 1.4–1.8× slower). No factor is fitted per model or per case.",
        "- vLLM 0.7.4's DeepSeek-R1 sweep on 8×H200 stops growing at 64 clients and at 128 queues for a whole wave",
        "  (TTFT median 83 s), so its KV pool held roughly 64–90 requests of 4,000 tokens; ours holds 136. The",
        "  whole-prompt profile (max(max_model_len, 2048) tokens with chunked prefill off, its fused MoE chunked at",
        "  32,768 tokens) is modelled. Not modelled: vLLM 0.7.1–0.7.3's MLA matrix absorption, which keeps fp8",
        "  W_Q_UK and W_UV_O per layer (about 4 GiB per GPU at tp 8; removed in 0.8, vLLM PR #14770) — our vLLM",
        "  presets are V1 engines — and the run's max_model_len, which dstack does not state.",
        "- TGI (`--engine tgi`, v3 defaults) replays dstack's two MI300X runs and misses them as vLLM's runs on the",
        "  same machine do (MI300X kernel and collective costs, above).",
        "- Not expressible yet: SGLang's DP attention for DeepSeek (experts across ranks), multi-step scheduling,",
        "  and ShareGPT runs (no published histogram of the benchmark clients' sample).",
        "",
        "## Saturation of concurrency sweeps",
        "",
        "The first concurrency whose output throughput is within 5% of the sweep's best.",
        "",
        "```",
        *saturation(results),
        "```",
        "",
        "## Every case",
        "",
        "| set | case | TTFT | TPOT | throughput |",
        "|---|---|---:|---:|---:|",
    ]
    for r in simulated:
        cells = [f"{r.errors[m]:+.1%}" if m in r.errors else "—" for m in ("ttft", "tpot", "throughput")]
        lines.append(f"| {r.case['split']} | {r.case['id']} | {' | '.join(cells)} |")
    lines += ["", "## Not expressible", ""]
    lines += [f"- {r.case['id']}: {r.skipped}" for r in results if r.skipped]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweeps", action="store_true", help="also each sweep's saturation point")
    parser.add_argument("--write", action="store_true", help="regenerate docs/serving-accuracy.md")
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/serving-accuracy.md is stale")
    args = parser.parse_args()
    results = [replay(case) for case in load_cases()]
    if args.write or args.check:
        text = page(results)
        if args.check:
            if not PAGE.is_file() or PAGE.read_text(encoding="utf-8") != text:
                print("stale generated file: serving-accuracy.md; run `python benchmarks/online_serving.py --write`")
                return 1
            return 0
        PAGE.write_text(text, encoding="utf-8")
        return 0
    for r in results:
        if r.skipped:
            print(f"skip  {r.case['id']}: {r.skipped}")
            continue
        errs = "  ".join(f"{k} {v:+6.1%}" for k, v in r.errors.items())
        print(f"{r.case['split'][:5]} {r.case['id']:<58} {errs}")
    print()
    print("\n".join(summary(results)))
    skipped = [r for r in results if r.skipped]
    print(f"{len(results) - len(skipped)} cases simulated, {len(skipped)} skipped")
    if args.sweeps:
        print("\nsaturation (first concurrency within 5% of the best throughput):")
        print("\n".join(saturation(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
