"""``suanli simulate MODEL --gpu G (--concurrency C | --rate QPS)``: a serving deployment under traffic —
continuous batching, the engine's scheduler, paged KV cache, replicas, prefill/decode disaggregation."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suanli.cli.calibration_arg import add_calibration_option, calibrated
from suanli.cli.common import Commands, add_output_flags, positive_float, positive_int
from suanli.cli.engine_knobs import add_engine_knobs, engine_knobs
from suanli.cli.export_arg import SERVING, add_export_option, check_target
from suanli.cli.model_arg import add_as_option

if TYPE_CHECKING:
    from suanli.simulate.api import SpeculativeDecoding
    from suanli.simulate.run import SimulationResult
    from suanli.simulate.workload import LengthDist, Workload
    from suanli.spec.model import ModelSpec

ENGINES = ("vllm", "sglang", "trtllm", "tgi", "hf")
ROUTERS = ("least-outstanding", "round-robin", "prefix-aware")


def int_list(text: str) -> list[int]:
    """argparse type: one positive integer or a comma-separated list of them (a sweep)."""
    return [positive_int(part) for part in _parts(text)]


def float_list(text: str) -> list[float]:
    return [positive_float(part) for part in _parts(text)]


def _parts(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",")]
    if not all(parts) or len(parts) > 64:
        raise argparse.ArgumentTypeError(f"expected a number or up to 64 comma-separated numbers, got '{text}'")
    return parts


def register(commands: Commands) -> None:
    sim = commands.add_parser(
        "simulate", help="serving under traffic: continuous batching, TTFT/TPOT percentiles, goodput",
        description="Discrete-event simulation of a serving deployment: requests arrive (closed loop of "
        "--concurrency clients, or open-loop Poisson --rate), the engine's scheduler batches them step by step "
        "(vLLM, SGLang, TensorRT-LLM in-flight batching, or static HF generate), the paged KV cache admits, "
        "preempts and reuses prefixes, and every step takes the time the same roofline as `suanli infer` gives.")
    sim.add_argument("model", metavar="MODEL", help="catalog name, config.json, model directory or repo id")
    add_as_option(sim)
    sim.add_argument("--gpu", required=True, help="accelerator (see `suanli gpus`), or local (`suanli probe`)")
    sim.add_argument("--gpus", type=positive_int, help="GPUs in all (default tp × replicas, or tp × (P + D))")
    sim.add_argument("--tp", type=positive_int, default=1, help="tensor parallel degree of a replica (default 1)")
    sim.add_argument("--ep", type=positive_int, default=1, help="expert parallel degree (MoE; default 1)")
    sim.add_argument("--replicas", type=positive_int, help="replicas behind the router (default 1)")
    sim.add_argument("--router", choices=ROUTERS, default="least-outstanding")
    sim.add_argument("--pd", metavar="P:D", help="prefill/decode disaggregation: P prefill and D decode replicas")
    sim.add_argument("--quant", help="weight format (default: the checkpoint's)")
    sim.add_argument("--kv-dtype", help="KV-cache format (default the engine's)")
    sim.add_argument("--engine", choices=ENGINES, default="vllm")
    load = sim.add_mutually_exclusive_group()
    load.add_argument("--concurrency", type=int_list, metavar="C[,C2…]", help="closed loop: C clients, each sending "
                      "its next request when the last one finishes; a comma list runs a sweep")
    load.add_argument("--rate", type=float_list, metavar="QPS[,QPS2…]", help="open loop: mean requests per second; "
                      "a comma list runs a sweep")
    sim.add_argument("--burstiness", type=positive_float, default=1.0, metavar="CV",
                     help="coefficient of variation of the arrival gaps (1 = Poisson; >1 burstier, gamma)")
    sim.add_argument("--requests", type=positive_int, default=200, help="requests to simulate (default 200)")
    sim.add_argument("--prompt", type=positive_int, default=1024, help="prompt tokens (default 1024)")
    sim.add_argument("--output", type=positive_int, default=256, help="output tokens (default 256)")
    sim.add_argument("--dataset", help="length distribution instead of fixed lengths (see catalog/workloads.toml)")
    sim.add_argument("--trace", type=Path, metavar="FILE.jsonl", help="replay arrival_s/prompt_tokens/"
                     "output_tokens lines instead of generating requests")
    sim.add_argument("--prefix-groups", type=int, default=0, help="requests share one of N prompt prefixes")
    sim.add_argument("--prefix-tokens", type=int, default=0, help="tokens of each shared prefix")
    sim.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sim.add_argument("--slo-ttft-ms", type=positive_float, help="TTFT target for goodput")
    sim.add_argument("--slo-tpot-ms", type=positive_float, help="TPOT target for goodput")
    add_engine_knobs(sim)
    spec = sim.add_argument_group("speculative decoding")
    spec.add_argument("--speculative-model", metavar="MODEL", help="draft model (same tokenizer), run beside it")
    spec.add_argument("--speculative-mtp", action="store_true", help="MTP/EAGLE-style draft heads (one more block)")
    spec.add_argument("--num-speculative-tokens", type=positive_int, help="draft tokens per step (MTP default 1)")
    spec.add_argument("--acceptance-rate", type=float, help="probability each draft token is accepted (MTP "
                      "default 0.85, DeepSeek-V3 report §5.4.3; required with --speculative-model)")
    sim.add_argument("--timeline", type=Path, metavar="FILE", help="write the per-step timeline (.csv or .json)")
    sim.add_argument("--timeline-points", type=positive_int, metavar="N",
                     help="add the timeline to --json as `timeline`, averaged into at most N equal time "
                     "buckets (each sweep point its own; what the web page draws)")
    add_calibration_option(sim)
    add_output_flags(sim)
    add_export_option(sim, SERVING)
    sim.set_defaults(run=run_simulate)


def run_simulate(args: argparse.Namespace) -> int:
    from suanli.cli.local_gpu import apply_local_defaults, resolve_accelerator
    from suanli.cli.render import emit_json, key_values
    from suanli.i18n import t
    from suanli.simulate.api import Deployment, simulate
    from suanli.simulate.metrics import Slo
    from suanli.simulate.run import Router
    from suanli.spec.engines import get_engine
    from suanli.spec.precision import parse_number_format
    from suanli.spec.resolve import load_model

    check_target(args, SERVING)
    apply_local_defaults(args)
    spec = load_model(args.model, as_family=args.as_family)
    sweep = _sweep(args)
    pd = _parse_pd(args.pd)
    replicas = _replicas(args, pd)
    calibration = calibrated(args, resolve_accelerator(args.gpu))
    deployment = Deployment(
        accelerator=calibration.accelerator, assumptions=calibration.assumptions, engine=get_engine(args.engine),
        tp=args.tp, ep=args.ep,
        replicas=replicas, pd=pd, router=Router(args.router),
        weights_format=parse_number_format(args.quant) if args.quant else None,
        kv_format=parse_number_format(args.kv_dtype) if args.kv_dtype else None,
        knobs=engine_knobs(args))
    slo = Slo(ttft_s=args.slo_ttft_ms / 1e3 if args.slo_ttft_ms else None,
              tpot_s=args.slo_tpot_ms / 1e3 if args.slo_tpot_ms else None) \
        if args.slo_ttft_ms or args.slo_tpot_ms else None
    speculative = _speculative(args)
    payloads, last = [], None
    for concurrency, rate in sweep:
        workload = _workload(args, spec, concurrency, rate)
        last = simulate(spec, deployment, workload, slo=slo, speculative=speculative,
                        keep_timeline=args.timeline is not None or args.timeline_points is not None)
        payloads.append(_payload(spec, deployment, workload, last) | _timeline_payload(args, last))
    if calibration.values is not None:
        payloads = [{**p, "calibration": calibration.values} for p in payloads]
        if not args.json:
            print(t("cli.note_line", text=calibration.note))
    if args.timeline is not None and last is not None:
        _write_timeline(args.timeline, last)  # a sweep writes its last point's timeline
    extra: dict[str, Any] = {}
    if args.export:
        from suanli.cli.export_arg import export_deployment, export_text

        extra["export"] = export_deployment(args, spec, deployment, workload)
    if len(payloads) > 1:
        if args.json:
            emit_json({"sweep": payloads, "swept": "concurrency" if args.concurrency else "rate_per_s", **extra})
            return 0
        head = _lines(payloads[0])[:3]
        w = payloads[0]["workload"]
        head[2] = ("traffic", t("value.simulate.traffic_sweep", requests=w["requests"],
                                prompt=w["prompt_tokens_mean"], output=w["output_tokens_mean"]))
        print(key_values(head))
        print()
        print(_sweep_table(payloads))
        _print_notes(last)
        if extra:
            print("\n" + export_text(extra["export"]))
        return 0
    if args.json:
        emit_json({**payloads[0], **extra})
        return 0
    print(key_values(_lines(payloads[0])))
    _print_notes(last)
    if extra:
        print("\n" + export_text(extra["export"]))
    return 0


def _print_notes(result: SimulationResult | None) -> None:
    from suanli.i18n import say, t

    for note in result.notes if result is not None else ():
        print(t("cli.note_line", text=say(note)))


def _sweep(args: argparse.Namespace) -> list[tuple[int | None, float | None]]:
    if args.trace is not None:
        return [(None, None)]
    if args.concurrency:
        return [(c, None) for c in args.concurrency]
    if args.rate:
        return [(None, r) for r in args.rate]
    from suanli.errors import SpecError

    raise SpecError("give the traffic: --concurrency C (closed loop of C clients) or --rate QPS (open loop)",
                    key="error.cli.traffic")


def _sweep_table(payloads: list[dict[str, Any]]) -> str:
    from suanli.cli.render import table

    rows = []
    for p in payloads:
        lat, w = p["latency"], p["workload"]
        rows.append([str(w["concurrency"]) if w["concurrency"] else f"{w['rate_per_s']:g}/s",
                     f"{lat['ttft_s']['p50'] * 1e3:,.0f}", f"{lat['ttft_s']['p99'] * 1e3:,.0f}",
                     f"{lat['tpot_s']['p50'] * 1e3:,.1f}", f"{lat['tpot_s']['p99'] * 1e3:,.1f}",
                     f"{p['throughput']['output_tokens_per_s']:,.0f}", f"{p['batch']['mean_running']:,.1f}",
                     f"{p['kv']['peak_utilization']:.0%}", str(p["preemptions"])])
    return table(["load", "TTFT p50 ms", "p99", "TPOT p50 ms", "p99", "output tok/s", "running", "KV peak",
                  "preempted"], rows, align="lrrrrrrrr")


def _speculative(args: argparse.Namespace) -> SpeculativeDecoding | None:
    from suanli.errors import SpecError
    from suanli.simulate.api import MTP_DEFAULT_ACCEPTANCE, SpeculativeDecoding
    from suanli.spec.resolve import load_model

    if args.speculative_model and args.speculative_mtp:
        raise SpecError("--speculative-model and --speculative-mtp are two ways to draft; choose one",
                        key="error.cli.speculative_both")
    if not (args.speculative_model or args.speculative_mtp):
        if args.num_speculative_tokens or args.acceptance_rate is not None:
            raise SpecError("--num-speculative-tokens/--acceptance-rate need --speculative-model or --speculative-mtp",
                            key="error.cli.speculative_knobs")
        return None
    if args.speculative_model and (args.num_speculative_tokens is None or args.acceptance_rate is None):
        raise SpecError("a draft model's speedup depends on how often its tokens are accepted: give "
                        "--num-speculative-tokens K and --acceptance-rate A (e.g. 3 and 0.7)",
                        key="error.cli.speculative_acceptance")
    acceptance = MTP_DEFAULT_ACCEPTANCE if args.acceptance_rate is None else args.acceptance_rate
    draft = load_model(args.speculative_model) if args.speculative_model else None
    return SpeculativeDecoding(k=args.num_speculative_tokens or 1, acceptance=acceptance, draft=draft)


def _workload(args: argparse.Namespace, spec: ModelSpec, concurrency: int | None, rate: float | None) -> Workload:
    from suanli.errors import SpecError
    from suanli.simulate.workload import LengthDist, Workload, read_trace

    if args.trace is not None:
        trace = read_trace(args.trace)
        return Workload(requests=len(trace), prompt=LengthDist.constant(1), output=LengthDist.constant(1),
                        trace=trace, seed=args.seed)
    prompt, output = _lengths(args)
    if args.prefix_groups < 0 or args.prefix_tokens < 0:
        raise SpecError("--prefix-groups and --prefix-tokens must be zero or positive",
                        key="error.cli.prefix_negative")
    return Workload(requests=args.requests, prompt=prompt, output=output, concurrency=concurrency,
                    rate_per_s=rate, burstiness_cv=args.burstiness, seed=args.seed,
                    prefix_groups=args.prefix_groups, prefix_tokens=args.prefix_tokens)


def _lengths(args: argparse.Namespace) -> tuple[LengthDist, LengthDist]:
    from suanli.simulate.workload import LengthDist, bundled_workload

    if args.dataset:
        return bundled_workload(args.dataset)
    return LengthDist.constant(args.prompt), LengthDist.constant(args.output)


def _parse_pd(text: str | None) -> tuple[int, int] | None:
    from suanli.errors import SpecError

    if text is None:
        return None
    parts = text.split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise SpecError(f"--pd takes PREFILL:DECODE replica counts such as 1:3, got '{text}'",
                        key="error.cli.pd_format", fields={"text": text})
    prefill, decode = (int(p) for p in parts)
    if prefill < 1 or decode < 1:
        raise SpecError(f"--pd needs at least one prefill and one decode replica, got {text}",
                        key="error.cli.pd_counts", fields={"text": text})
    return prefill, decode


def _replicas(args: argparse.Namespace, pd: tuple[int, int] | None) -> int:
    from suanli.errors import LayoutError

    groups = sum(pd) if pd else (args.replicas or 1)
    if pd and args.replicas:
        raise LayoutError("--replicas and --pd both set the replica count; --pd P:D already gives P + D replicas",
                          key="error.cli.replicas_pd")
    if args.gpus is not None:
        if args.gpus % args.tp:
            raise LayoutError(f"--gpus {args.gpus} is not a multiple of --tp {args.tp}; each replica is tp GPUs",
                              key="error.cli.gpus_tp", fields={"gpus": args.gpus, "tp": args.tp})
        wanted = args.gpus // args.tp
        if pd and wanted != groups:
            raise LayoutError(f"--pd {args.pd} needs {groups * args.tp} GPUs at tp {args.tp}, not --gpus {args.gpus}; "
                              f"use --pd ratios that add up to {wanted} replicas",
                              key="error.cli.pd_gpus", fields={"pd": args.pd, "needed": groups * args.tp,
                                                                "tp": args.tp, "gpus": args.gpus, "replicas": wanted})
        if not pd and args.replicas and args.replicas != wanted:
            raise LayoutError(f"--replicas {args.replicas} × --tp {args.tp} is not --gpus {args.gpus}",
                              key="error.cli.replicas_gpus",
                              fields={"replicas": args.replicas, "tp": args.tp, "gpus": args.gpus})
        return 1 if pd else wanted
    return 1 if pd else groups


def _payload(spec: ModelSpec, deployment: Any, workload: Workload, result: SimulationResult) -> dict[str, Any]:
    m = result.metrics
    return {
        "model": spec.name, "gpu": deployment.accelerator.key, "engine": deployment.engine.key,
        "deployment": {"tp": deployment.tp, "ep": deployment.ep, "replicas": deployment.replicas,
                       "pd": f"{deployment.pd[0]}:{deployment.pd[1]}" if deployment.pd else None,
                       "gpus": deployment.gpus, "router": deployment.router.value},
        "workload": {"requests": m.requests, "concurrency": workload.concurrency, "rate_per_s": workload.rate_per_s,
                     "prompt_tokens_mean": sum(s.request.prompt_tokens for s in result.sequences) / m.requests,
                     "output_tokens_mean": sum(s.request.output_tokens for s in result.sequences) / m.requests},
        "latency": {"ttft_s": m.ttft.to_dict(), "tpot_s": m.tpot.to_dict(), "itl_s": m.itl.to_dict(),
                    "e2e_s": m.e2e.to_dict()},
        "throughput": {"output_tokens_per_s": m.output_tokens_per_s, "requests_per_s": m.requests_per_s},
        "goodput": {"requests_per_s": m.goodput_requests_per_s},
        "kv": {"peak_utilization": m.kv_peak_utilization},
        "batch": {"mean_running": m.mean_running},
        "preemptions": m.preemptions, "steps": m.steps, "makespan_s": m.makespan_s,
    } | ({"notes": list(result.notes)} if result.notes else {})


def _lines(p: dict[str, Any]) -> list[tuple[str, str]]:
    from suanli.i18n import t

    lat, d, w = p["latency"], p["deployment"], p["workload"]

    def dist(name: str, scale: float = 1e3, unit: str = "ms") -> str:
        x = lat[name]
        return t("value.simulate.distribution", mean=x["mean"] * scale, unit=unit, p50=x["p50"] * scale,
                 p90=x["p90"] * scale, p99=x["p99"] * scale)

    layout = f"pd {d['pd']}" if d["pd"] else t("value.simulate.replicas", replicas=d["replicas"], router=d["router"])
    load = t("value.simulate.clients", clients=w["concurrency"]) if w["concurrency"] else \
        t("value.simulate.rate", rate=w["rate_per_s"]) if w["rate_per_s"] else t("value.simulate.trace")
    good = p["goodput"]["requests_per_s"]
    throughput = t("value.simulate.throughput", tokens_per_s=p["throughput"]["output_tokens_per_s"],
                   requests_per_s=p["throughput"]["requests_per_s"])
    return [
        ("model", p["model"]),
        ("serving", t("value.simulate.serving", engine=p["engine"], gpus=d["gpus"], gpu=p["gpu"], tp=d["tp"],
                      layout=layout)),
        ("traffic", t("value.simulate.traffic", requests=w["requests"], load=load, prompt=w["prompt_tokens_mean"],
                      output=w["output_tokens_mean"])),
        ("TTFT", dist("ttft_s")),
        ("TPOT", dist("tpot_s")),
        ("ITL", dist("itl_s")),
        ("end-to-end", dist("e2e_s", 1.0, "s")),
        ("throughput", throughput if good is None else t("value.simulate.goodput", throughput=throughput,
                                                            goodput=good)),
        ("batch", t("value.simulate.batch", running=p["batch"]["mean_running"], kv_peak=p["kv"]["peak_utilization"],
                    preemptions=p["preemptions"], steps=p["steps"])),
    ]


def _timeline_payload(args: argparse.Namespace, result: SimulationResult) -> dict[str, Any]:
    """``{"timeline": {...}}`` (simulate/timeline.py) with --timeline-points N, else nothing (an additive key)."""
    if args.timeline_points is None:
        return {}
    from suanli.simulate.timeline import bucket_timeline

    return {"timeline": bucket_timeline(result.timeline, points=args.timeline_points,
                                       kv_blocks_total=result.kv_blocks_total).to_dict()}


def _write_timeline(path: Path, result: SimulationResult) -> None:
    """CSV or JSON by suffix, written to a temporary file first so a failure never leaves a partial one."""
    import csv
    import io
    import json
    import os
    import tempfile

    from suanli.errors import SpecError
    from suanli.simulate.timeline import RAW_COLUMNS

    if path.suffix not in (".csv", ".json"):
        raise SpecError(f"--timeline {path}: use a .csv or .json file name",
                        key="error.cli.timeline_suffix", fields={"path": path})
    if not path.parent.exists():  # a bare file name's parent is Path("."), which exists
        raise SpecError(f"--timeline {path}: the folder {path.parent} does not exist",
                        key="error.cli.timeline_folder", fields={"path": path, "folder": path.parent})
    rows = [dict(zip(RAW_COLUMNS, row, strict=True)) for row in result.timeline]
    if path.suffix == ".json":
        text = json.dumps({"columns": RAW_COLUMNS, "rows": rows})
    else:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=RAW_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        text = out.getvalue()
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(text)
    os.replace(tmp.name, path)
