"""``suanli plan serve MODEL --rate QPS --slo-ttft-ms X --slo-tpot-ms Y``: the fewest GPUs (or lowest $/hour) that
serve the rate within the targets, over accelerators, tp, replicas and prefill/decode disaggregation."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from suanli.cli.calibration_arg import add_calibration_option, calibrated_one
from suanli.cli.common import add_output_flags, positive_float, positive_int
from suanli.cli.export_arg import SERVING, add_export_option, check_target, export_text
from suanli.cli.model_arg import add_as_option

if TYPE_CHECKING:
    from suanli.search.plan_serve import CheckedPlan, ServePlan, ServeTarget
    from suanli.spec.model import ModelSpec

# Accelerators tried when --gpu is not given: data-centre parts serving engines run on, one per generation.
DEFAULT_GPUS = ("h100", "h200", "a100-80gb", "l40s", "mi300x", "b200")


def register(sub: argparse._SubParsersAction[Any]) -> None:
    serve = sub.add_parser(
        "serve", help="fewest GPUs or lowest $/h serving a request rate within TTFT/TPOT targets",
        description="Size a deployment analytically with infer's model (largest decode batch within the TPOT "
        "target, replicas for the rate, prefill/decode splits), then check the cheapest candidates with the "
        "serving simulator: a plan passes when the 90th percentiles of TTFT and TPOT meet the targets.")
    serve.add_argument("model", metavar="MODEL", help="catalog name, config.json, model directory or repo id")
    add_as_option(serve)
    serve.add_argument("--rate", type=positive_float, required=True, metavar="QPS", help="requests per second")
    serve.add_argument("--prompt", type=positive_int, default=1024, help="prompt tokens (default 1024)")
    serve.add_argument("--output", type=positive_int, default=256, help="output tokens (default 256)")
    serve.add_argument("--slo-ttft-ms", type=positive_float, required=True, help="90th-percentile TTFT target")
    serve.add_argument("--slo-tpot-ms", type=positive_float, required=True, help="90th-percentile TPOT target")
    serve.add_argument("--gpu", help=f"accelerators to consider, comma separated (default {','.join(DEFAULT_GPUS)})")
    serve.add_argument("--objective", choices=("gpus", "cost"), default="gpus",
                       help="fewest GPUs (default) or lowest on-demand $/hour")
    serve.add_argument("--engine", choices=("vllm", "sglang", "trtllm"), default="vllm")
    serve.add_argument("--quant", help="weight format (default: the checkpoint's)")
    serve.add_argument("--max-gpus", type=positive_int, default=512, help="largest deployment considered")
    serve.add_argument("--seed", type=int, default=0)
    add_export_option(serve, SERVING)
    add_calibration_option(serve)
    add_output_flags(serve)
    serve.set_defaults(run=run_plan_serve)


def run_plan_serve(args: argparse.Namespace) -> int:
    from suanli.cli.local_gpu import apply_local_defaults, resolve_accelerator
    from suanli.cli.render import emit_json, key_values, table
    from suanli.errors import SpecError
    from suanli.i18n import Joined, Text, as_label, t, translate_label
    from suanli.search.plan_serve import Objective, ServeTarget, plan_serve
    from suanli.spec.engines import get_engine
    from suanli.spec.precision import parse_number_format
    from suanli.spec.resolve import load_model

    check_target(args, SERVING)
    spec = load_model(args.model, as_family=args.as_family)
    names = [n.strip() for n in (args.gpu.split(",") if args.gpu else DEFAULT_GPUS) if n.strip()]
    apply_local_defaults(args)
    accelerators = [resolve_accelerator(n) for n in names]
    calibration = calibrated_one(args, accelerators)
    if calibration.values is not None:
        accelerators = [calibration.accelerator]
    target = ServeTarget(rate_per_s=args.rate, prompt_tokens=args.prompt, output_tokens=args.output,
                         ttft_s=args.slo_ttft_ms / 1e3, tpot_s=args.slo_tpot_ms / 1e3)
    plan = plan_serve(spec, target, accelerators, engine=get_engine(args.engine), objective=Objective(args.objective),
                      weights_format=parse_number_format(args.quant) if args.quant else None,
                      max_gpus=args.max_gpus, seed=args.seed, assumptions=calibration.assumptions)
    if plan.best is None:
        reasons = Joined("join.reasons", [Text("error.plan_serve.reason", count=n, reason=as_label(r))
                                          for r, n in sorted(plan.rejected.items(), key=lambda x: -x[1])[:3]])
        raise SpecError(f"no deployment of up to {args.max_gpus} GPUs serves {args.rate:g} requests/s within "
                        f"TTFT {args.slo_ttft_ms:g} ms and TPOT {args.slo_tpot_ms:g} ms ({reasons}); relax a target, "
                        "lower the rate or allow more GPUs",
                        key="error.plan_serve.none",
                        fields={"max_gpus": args.max_gpus, "rate": args.rate, "ttft_ms": args.slo_ttft_ms,
                                "tpot_ms": args.slo_tpot_ms, "reasons": reasons})
    payload = _payload(plan)
    if calibration.values is not None:
        payload["calibration"] = calibration.values
        if not args.json:
            print(t("cli.note_line", text=calibration.note))
    if args.export:
        payload["export"] = _export_best(args, spec, plan.best, target)
    if args.json:
        emit_json(payload)
        return 0
    best = payload["best"]
    print(key_values([
        ("best", t("value.plan_serve.best", gpus=best["gpus"], gpu=best["gpu"], tp=best["tp"],
                   ep=f" ep {best['ep']}" if best["ep"] > 1 else "",
                   replicas=t("value.plan_serve.pd", pd=best["pd"]) if best["pd"] else
                   t("value.plan_serve.replicas", replicas=best["replicas"]),
                   price="" if best["usd_per_hour"] is None else t("value.plan_serve.price",
                                                                   usd=best["usd_per_hour"]))),
        ("simulated", t("value.plan_serve.simulated", ttft_ms=best["latency"]["ttft_s"]["p90"] * 1e3,
                        tpot_ms=best["latency"]["tpot_s"]["p90"] * 1e3,
                        tokens_per_s=best["throughput"]["output_tokens_per_s"])),
        ("searched", t("value.plan_serve.searched", evaluated=payload["evaluated"], simulated=payload["simulated"],
                       rejected=sum(payload["rejected"].values()))),
    ]))
    rows = [[c["gpu"], str(c["gpus"]), str(c["tp"]), str(c["ep"]), c["pd"] or f"{c['replicas']}×",
             "—" if c["usd_per_hour"] is None else f"{c['usd_per_hour']:,.2f}",
             f"{c['latency']['ttft_s']['p90'] * 1e3:,.0f}", f"{c['latency']['tpot_s']['p90'] * 1e3:,.1f}"]
            for c in payload["candidates"]]
    print()
    print(table(["gpu", "GPUs", "tp", "ep", "replicas / P:D", "$/h", "TTFT p90 ms", "TPOT p90 ms"], rows,
                align="lrrrrrrr"))
    for reason, count in sorted(payload["rejected"].items(), key=lambda x: -x[1]):
        print(t("value.plan_serve.rejected", count=count, reason=translate_label(reason)))
    if args.export:
        print("\n" + export_text(payload["export"]))
    return 0


def _export_best(args: argparse.Namespace, spec: ModelSpec, best: CheckedPlan, target: ServeTarget) -> dict[str, Any]:
    """``--export TARGET DIR``: the best deployment's launch files, for the plan's engine (the export refuses
    another engine's target: the plan's numbers assume this one)."""
    from suanli.cli.export_arg import model_id, write_export
    from suanli.export import ServingPlan, export_serving
    from suanli.spec.engines import get_engine
    from suanli.spec.precision import parse_number_format

    deployment = best.candidate.deployment(get_engine(args.engine),
                                           parse_number_format(args.quant) if args.quant else None)
    serving = ServingPlan(spec=spec, deployment=deployment, model_id=model_id(args.model),
                          max_model_len=min(target.prompt_tokens + target.output_tokens, spec.max_position_embeddings))
    target_name, folder = args.export
    return write_export(export_serving(target_name, serving), Path(folder), force=args.force)


def _payload(plan: ServePlan) -> dict[str, Any]:
    return {"best": _plan_dict(plan.best) if plan.best else None,
            "candidates": [_plan_dict(c) for c in plan.checked], "rejected": plan.rejected,
            "evaluated": plan.evaluated, "simulated": plan.simulated}


def _plan_dict(p: CheckedPlan) -> dict[str, Any]:
    c, m = p.candidate, p.metrics
    return {"gpu": c.accelerator.key, "gpus": c.gpus, "tp": c.tp, "ep": c.ep,
            "replicas": c.replicas, "pd": f"{c.pd[0]}:{c.pd[1]}" if c.pd else None,
            "usd_per_hour": c.usd_per_hour,
            "latency": {"ttft_s": m.ttft.to_dict(), "tpot_s": m.tpot.to_dict(), "itl_s": m.itl.to_dict(),
                        "e2e_s": m.e2e.to_dict()},
            "throughput": {"output_tokens_per_s": m.output_tokens_per_s, "requests_per_s": m.requests_per_s}}
