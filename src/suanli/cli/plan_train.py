"""``suanli plan train MODEL --gpu G[,G2…] --tokens T``: the fastest (or cheapest, or least energy) training
layout over the declared search space, with the ranked candidates, the time–cost front and every rejected
candidate counted by reason. Each reported layout is ``suanli train``'s own report at that layout."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from suanli.cli.calibration_arg import add_calibration_option
from suanli.cli.common import Commands, accelerator_list, add_output_flags, positive_float, positive_int
from suanli.cli.export_arg import TRAINING, add_export_option, check_target, export_text, export_training_job
from suanli.cli.model_arg import add_as_option
from suanli.cli.train_commands import FRAMEWORKS, METHODS, OPTIMIZERS, PRECISIONS, add_lora_options
from suanli.units import SECONDS_PER_DAY

if TYPE_CHECKING:
    from suanli.cli.calibration_arg import Calibrated
    from suanli.search.plan_train import PlanRequest, Scored, TrainPlan
    from suanli.spec.model import ModelSpec
    from suanli.spec.training import TrainingJob

OBJECTIVES = ("time", "cost", "energy")
DEFAULT_MAX_GPUS = 1024


def register(sub: Commands) -> None:
    plan = sub.add_parser(
        "train", help="the best parallel layout for a training run: time, cost or energy, under a deadline or budget",
        description="Searches tp, pp, dp, cp, ep, vp, ZeRO stage, micro-batch, recompute, sequence parallelism and "
        "offload over cluster sizes up to --max-gpus (powers of two and whole nodes) on one or several accelerators, "
        "scoring each layout with the same model as `suanli train`.")
    plan.add_argument("model", metavar="MODEL", help="catalog name, config.json, model directory or repo id")
    add_as_option(plan)
    plan.add_argument("--gpu", required=True, help="accelerator(s), comma-separated: h100 or h100,a100-80gb")
    plan.add_argument("--tokens", type=positive_float, required=True, help="training tokens of the run, e.g. 15e12")
    plan.add_argument("--max-gpus", type=positive_int, default=DEFAULT_MAX_GPUS,
                      help=f"largest cluster to consider (default {DEFAULT_MAX_GPUS})")
    plan.add_argument("--objective", default="time", help="what to minimise: time, cost or energy (default time)")
    plan.add_argument("--deadline-days", type=positive_float, help="the run must finish within this many days")
    plan.add_argument("--budget-usd", type=positive_float, help="the run must cost at most this much")
    plan.add_argument("--top", type=positive_int, default=10, help="ranked candidates to report (default 10)")
    job = plan.add_argument_group("the job (as in `suanli train`)")
    job.add_argument("--seq", type=positive_int, help="sequence length (default 2048, or the model's context)")
    job.add_argument("--global-batch", type=positive_int, help="sequences per optimizer step (default: about 4M "
                     "tokens, Llama 2's batch)")
    job.add_argument("--method", choices=METHODS, default="full")
    job.add_argument("--precision", choices=PRECISIONS, help="default bf16 (fp16 where the GPU has no bf16)")
    job.add_argument("--framework", choices=FRAMEWORKS, default="deepspeed",
                     help="where model states live and how activations are counted (default deepspeed, as train)")
    job.add_argument("--optimizer", choices=OPTIMIZERS, help="default adamw (paged-adamw-8bit for qlora)")
    job.add_argument("--attention", choices=("flash", "sdpa", "eager"), default="flash")
    add_lora_options(job)
    money = plan.add_argument_group("cost and energy (as in `suanli train`)")
    money.add_argument("--price", type=positive_float, metavar="USD", help="price per GPU-hour (default: the "
                       "catalog's cheapest of --price-kind)")
    money.add_argument("--price-kind", choices=("on-demand", "spot", "reserved"), default="on-demand")
    money.add_argument("--power-w", type=positive_float, help="average power per GPU including its host share, W")
    money.add_argument("--pue", type=positive_float, help="data-centre power usage effectiveness (default 1.1)")
    money.add_argument("--grid-co2", type=float, metavar="KG_PER_KWH", help="grid carbon intensity, kg CO2e/kWh")
    plan.add_argument("--search-offload", action="store_true",
                      help="also search optimizer and parameter offload to host memory (off by default: the model "
                      "does not yet charge the host's optimizer step, so offload would look almost free)")
    plan.add_argument("--host-memory-gb", type=positive_float,
                      help="host memory per GPU for offloaded states, GB (default 256: a DGX H100's 2 TB over 8)")
    plan.add_argument("--force", action="store_true", help="plan even when a hardware or context check fails")
    add_export_option(plan, TRAINING)  # after --force: the export reuses it to overwrite a folder
    add_calibration_option(plan)
    add_output_flags(plan)
    plan.set_defaults(run=run_plan_train, mtbi_hours=None, hardware_failures=False)


def build_request(args: argparse.Namespace) -> tuple[PlanRequest, ModelSpec, TrainingJob, Calibrated]:
    """The plan's request from the arguments, with train's own parsing of the job and the price, and the
    --calibration profile's (run_plan_train adds its note and key)."""
    from suanli.cli.calibration_arg import calibrated_one
    from suanli.cli.local_gpu import apply_local_defaults
    from suanli.cli.train_commands import fill_hardware_defaults, parse_cost, parse_job, training_checks
    from suanli.core.training_time import compute_format
    from suanli.errors import SpecError
    from suanli.search.plan_train import DEFAULT_HOST_BYTES_PER_GPU, Objective, PlanRequest, default_global_batch
    from suanli.search.space import WITH_OFFLOAD, TrainSpace
    from suanli.spec.resolve import load_model

    if args.objective not in OBJECTIVES:
        raise SpecError(f"unknown objective '{args.objective}'; use --objective time, cost or energy",
                        key="error.plan.objective", fields={"objective": args.objective})
    apply_local_defaults(args)
    accelerators = accelerator_list(args.gpu)
    spec = load_model(args.model, as_family=args.as_family)
    fill_hardware_defaults(args, spec, accelerators[0])
    args.recompute = "none"  # a searched dimension; parse_job does not read it
    job = parse_job(args)
    for accelerator in accelerators:
        training_checks(job, spec, accelerator, force=args.force)
    calibration = calibrated_one(args, accelerators, fmt=compute_format(job.precision, accelerators[0]))
    if calibration.values is not None:
        accelerators = (calibration.accelerator,)
    deadline = args.deadline_days * SECONDS_PER_DAY if args.deadline_days is not None else None
    host = args.host_memory_gb * 1e9 if args.host_memory_gb is not None else DEFAULT_HOST_BYTES_PER_GPU
    request = PlanRequest(spec=spec, job=job, accelerators=accelerators, tokens=args.tokens,
                          global_batch=args.global_batch or default_global_batch(job.seq), max_gpus=args.max_gpus,
                          objective=Objective(args.objective), deadline_s=deadline, budget_usd=args.budget_usd,
                          cost=parse_cost(args, 1), top=args.top, host_bytes_per_gpu=host,
                          space=TrainSpace(offload=WITH_OFFLOAD) if args.search_offload else TrainSpace(),
                          assumptions=calibration.assumptions)
    return request, spec, job, calibration


def run_plan_train(args: argparse.Namespace) -> int:
    from suanli.cli.render import emit_json
    from suanli.search.plan_train import plan_train

    check_target(args, TRAINING)
    request, spec, job, calibration = build_request(args)
    plan = plan_train(request)
    _raise_when_empty(plan, request)
    reports = [_report(s, request) for s in plan.ranked]
    if calibration.values is not None:
        reports = [{**r, "calibration": calibration.values, "notes": [*r.get("notes", []), calibration.note]}
                   for r in reports]
    payload: dict[str, Any] = {
        "command": "plan train", "model": spec.name, "objective": request.objective.value,
        "tokens": request.tokens, "global_batch": request.global_batch, "max_gpus": request.max_gpus,
        "gpus_considered": [a.key for a in request.accelerators],
        "deadline_s": request.deadline_s, "budget_usd": request.budget_usd,
        "best": reports[0], "candidates": reports,
        "pareto": [_summary(s) for s in plan.pareto],
        "rejected": plan.rejected, "evaluated": plan.considered, "feasible": plan.feasible,
        "screened": plan.screened, "model_evaluations": plan.model_evaluations,
    }
    if args.export:  # the best layout's runnable files (the same functions as `train --export`)
        best = plan.ranked[0]
        payload["export"] = export_training_job(args, spec, request.job, best.layout, best.accelerator)
    if args.json:
        emit_json(payload)
        return 0
    print(_text(payload, job))
    if args.export:
        print("\n" + export_text(payload["export"]))
    return 0


def _report(scored: Scored, request: PlanRequest) -> dict[str, Any]:
    """``suanli train``'s report at this layout (the same function, the same numbers)."""
    from suanli.train_report import training_report

    report = training_report(request.spec, request.job, scored.layout, scored.accelerator, tokens=request.tokens,
                             cost=request.cost, assumptions=request.assumptions).to_dict()
    report["command"] = "train"
    report["defaults"] = []  # train's key: recipe defaults applied; the plan searched ZeRO and recompute instead
    return report


def _summary(scored: Scored) -> dict[str, Any]:
    lay = scored.layout
    return {"gpu": scored.accelerator.key, "gpus": lay.gpus, "total_s": scored.total_s, "usd": scored.usd,
            "energy_kwh": scored.energy_kwh,
            "layout": {"tp": lay.tp, "pp": lay.pp, "dp": lay.dp, "cp": lay.cp, "ep": lay.ep, "vp": lay.vp,
                       "zero": lay.zero, "micro_batch": lay.micro_batch, "recompute": lay.recompute.value,
                       "sp": lay.sp, "offload_optimizer": lay.offload_optimizer.value,
                       "offload_params": lay.offload_params.value}}


def _raise_when_empty(plan: TrainPlan, request: PlanRequest) -> None:
    """No layout fits, or none meets the deadline/budget: one line naming the closest answer."""
    from suanli.errors import LayoutError, SpecError
    from suanli.i18n import Joined, Text
    from suanli.search.plan_train import closest

    if plan.ranked:
        return
    names = ",".join(a.key for a in request.accelerators)
    unpriced = [reason for reason in plan.rejected if reason.startswith(("no price for", "no power"))]
    if not plan.pareto and unpriced:
        fix = "pass --price USD_PER_GPU_HOUR" if "price" in unpriced[0] else "pass --power-w WATTS"
        reasons = Joined("join.reasons_semicolon", unpriced)
        raise SpecError(f"{reasons}, so --objective {request.objective.value} cannot rank its layouts; "
                        f"{fix} or use --objective time", key="error.plan.unpriced",
                        fields={"reasons": reasons, "objective": request.objective.value,
                                "fix": Text("error.plan.pass_price" if "price" in unpriced[0]
                                            else "error.plan.pass_power")})
    if not plan.pareto:
        raise LayoutError(f"no layout of {request.spec.name} fits on up to {request.max_gpus} × {names} "
                          f"(global batch {request.global_batch}, seq {request.job.seq}); raise --max-gpus, "
                          "lower --seq, or use --method lora/qlora",
                          key="error.plan.nothing_fits",
                          fields={"model": request.spec.name, "max_gpus": request.max_gpus, "gpus": names,
                                  "global_batch": request.global_batch, "seq": request.job.seq})
    near = closest(plan, request)
    if near is None:  # unreachable: the front is not empty
        raise SpecError("no layout meets the constraints", key="error.plan.no_layout_meets")
    wanted = []
    if request.deadline_s is not None:
        wanted.append(Text("error.plan.deadline", days=request.deadline_s / SECONDS_PER_DAY))
    if request.budget_usd is not None:
        wanted.append(Text("error.plan.budget", usd=request.budget_usd))
    price = Text("value.cost.unpriced") if near.usd is None else f"${near.usd:,.0f}"
    constraints = Joined("join.and", wanted)
    raise SpecError(f"no layout meets {constraints}; the closest is {_layout_text(near)}: "
                    f"{near.total_s / SECONDS_PER_DAY:.3g} days, {price}; relax the constraint or raise --max-gpus",
                    key="error.plan.constraints", fields={"constraints": constraints, "layout": _layout_text(near),
                                                          "days": near.total_s / SECONDS_PER_DAY, "price": price})


def _layout_text(scored: Scored) -> str:
    lay = scored.layout
    extras = [f"ZeRO-{lay.zero}", f"micro-batch {lay.micro_batch}", f"recompute {lay.recompute.value}"]
    if lay.sp:
        extras.append("sp")
    if lay.offload_optimizer.value != "none":
        extras.append("offload " + ("optimizer+params" if lay.offload_params.value != "none" else "optimizer"))
    return (f"{lay.gpus}× {scored.accelerator.key} tp {lay.tp} pp {lay.pp} dp {lay.dp} cp {lay.cp} ep {lay.ep}"
            f"{f' vp {lay.vp}' if lay.vp > 1 else ''}, " + ", ".join(extras))


def _text(payload: dict[str, Any], job: TrainingJob) -> str:
    from suanli.cli.render import key_values, table
    from suanli.i18n import t

    best = payload["best"]
    lines = [("model", payload["model"]),
             ("job", t("value.plan.job", method=t(f"term.method.{job.method.value}"), precision=job.precision.value,
                       seq=job.seq, global_batch=payload["global_batch"], tokens=payload["tokens"])),
             ("objective", t(f"value.plan.objective.{payload['objective']}")), ("best", _row_layout(best)),
             ("run", _run_text(best)),
             ("searched", t("value.plan.searched", evaluated=payload["evaluated"], feasible=payload["feasible"],
                            rejected=sum(payload["rejected"].values()), evaluations=payload["model_evaluations"]))]
    rows = [[str(k + 1), _row_layout(r), f"{r['time']['total_s'] / SECONDS_PER_DAY:.3g}",
             _usd(r), f"{r['time']['mfu']:.1%}", f"{r['memory']['per_gpu']['total_bytes'] / 2**30:.1f}"]
            for k, r in enumerate(payload["candidates"])]
    ranked = table(["#", "layout", "days", "cost", "MFU", "GiB/GPU"], rows, align="rlrrrr")
    front = table(["GPUs", "gpu", "days", "cost"],
                  [[str(p["gpus"]), p["gpu"], f"{p['total_s'] / SECONDS_PER_DAY:.3g}",
                    t("value.cost.unpriced") if p["usd"] is None else f"${p['usd']:,.0f}"] for p in payload["pareto"]],
                  align="rlrr")
    rejected = table(["rejected", "candidates"], [[k, f"{v:,}"] for k, v in payload["rejected"].items()],
                     align="lr")
    return "\n\n".join([key_values(lines), ranked, t("value.plan.pareto") + "\n" + front, rejected])


def _row_layout(report: dict[str, Any]) -> str:
    """``4× h100-sxm-80gb, tp1 pp1 dp4 cp1, ZeRO-2, mb 8, recompute none`` in the reader's language."""
    from suanli.i18n import Text, t

    lay = report["layout"]
    parts = [f"{report['gpus']}× {report['gpu']}", f"tp{lay['tp']} pp{lay['pp']} dp{lay['dp']} cp{lay['cp']}"
             f"{' ep' + str(lay['ep']) if lay['ep'] > 1 else ''}{' vp' + str(lay['vp']) if lay['vp'] > 1 else ''}",
             f"ZeRO-{lay['zero']}", t("value.plan.micro_batch", micro_batch=lay["micro_batch"]),
             t("value.plan.recompute", recompute=Text(f"term.recompute.{lay['recompute']}"))]
    if lay["sp"]:
        parts.append("sp")
    if lay["offload_optimizer"] != "none":
        parts.append(t("value.plan.offload_all" if lay["offload_params"] != "none" else "value.plan.offload_optimizer"))
    return t("join.comma").join(parts)


def _run_text(report: dict[str, Any]) -> str:
    time, cost = report["time"], report["cost"]
    from suanli.i18n import t

    energy = "" if cost["energy_kwh"] is None else t("value.plan.energy", kwh=cost["energy_kwh"])
    return t("value.plan.run", days=time["total_s"] / SECONDS_PER_DAY, usd=_usd(report), energy=energy,
             mfu=time["mfu"], tokens_per_s=time["tokens_per_s"])


def _usd(report: dict[str, Any]) -> str:
    from suanli.i18n import t

    usd = report["cost"]["usd"]
    return t("value.cost.unpriced") if usd is None else f"${usd:,.0f}"
