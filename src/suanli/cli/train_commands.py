"""``suanli train MODEL --gpu G ...``: memory per GPU of a training or fine-tuning job, what makes it fit, and its
step time, throughput and MFU."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from suanli.cli.calibration_arg import add_calibration_option
from suanli.cli.common import Commands, add_output_flags, positive_float, positive_int
from suanli.cli.export_arg import TRAINING, add_export_option, check_target
from suanli.cli.model_arg import add_as_option

if TYPE_CHECKING:
    from suanli.core.rl import RlSetup
    from suanli.report import Report
    from suanli.spec.hardware import Accelerator
    from suanli.spec.layout import Layout
    from suanli.spec.model import ModelSpec
    from suanli.spec.training import PrecisionMode, TrainingJob
    from suanli.train_report import CostRequest

PRECISIONS = ("bf16", "fp16", "fp8", "fp32", "pure-bf16")
FRAMEWORKS = ("deepspeed", "megatron", "fsdp", "hf", "torchtune")
METHODS = ("full", "lora", "qlora", "dora", "dylora", "adalora", "prefix-tuning", "prompt-tuning",
           "p-tuning-v2", "adapter", "bitfit", "ia3")
OPTIMIZERS = ("adamw", "adamw-8bit", "paged-adamw-8bit", "sgd", "sgd-momentum", "adafactor", "lion")
FSDP_MODES = {"full-shard": 3, "shard-grad-op": 2, "hybrid-shard": 3}
GPUS_PER_NODE = 8


def register(commands: Commands) -> None:
    train = commands.add_parser(
        "train", help="memory per GPU of a training / fine-tuning job, what would make it fit, step time and MFU",
        description="Per-GPU memory of pre-training or fine-tuning (full, LoRA, QLoRA and other PEFT methods) "
        "under a parallel layout: weights, gradients, master weights, optimizer states, activations, buffers; and "
        "the step time (compute, recompute, exposed communication, pipeline bubble, optimizer), tokens/s and MFU.")
    train.add_argument("model", metavar="MODEL", help="catalog name, config.json, model directory or repo id")
    add_as_option(train)
    train.add_argument("--gpu", required=True,
                       help="accelerator (see `suanli gpus`), e.g. h100, a100-40gb, 4090, or local (`suanli probe`)")
    train.add_argument("--gpus", type=positive_int, help="number of GPUs (default: tp × pp × dp × cp)")
    for name, text in (("tp", "tensor"), ("pp", "pipeline"), ("ep", "expert"), ("cp", "context"),
                       ("vp", "interleaved (virtual) stages per pipeline rank for the")):
        train.add_argument(f"--{name}", type=positive_int, default=1, help=f"{text} parallel degree (default 1)")
    train.add_argument("--dp", type=positive_int, help="data parallel degree (default gpus / (tp·pp·cp))")
    train.add_argument("--sp", action="store_true", help="sequence parallelism inside the TP group")
    train.add_argument("--tp-comm-overlap", action="store_true", help="overlap TP collectives with the linears' "
                       "GEMMs (Megatron-Core tp_comm_overlap / TE userbuffers; with --sp)")
    train.add_argument("--zero", type=int, choices=(0, 1, 2, 3), help="ZeRO stage (default: the framework's "
                       "recipe when dp > 1: fsdp/torchtune 3, megatron 1 (distributed optimizer), else 0)")
    train.add_argument("--fsdp", choices=sorted(FSDP_MODES), help="FSDP sharding (full-shard = ZeRO-3, "
                       "shard-grad-op = ZeRO-2, hybrid-shard = ZeRO-3 inside each 8-GPU node)")
    train.add_argument("--offload-optimizer", choices=("none", "cpu", "nvme"), default="none")
    train.add_argument("--offload-params", choices=("none", "cpu", "nvme"), default="none")
    train.add_argument("--micro-batch", type=positive_int, default=1, help="sequences per GPU per step (default 1)")
    train.add_argument("--global-batch", type=positive_int, help="sequences per optimizer step (default micro × dp)")
    train.add_argument("--seq", type=positive_int, help="sequence length in tokens (default 2048, or the model's "
                       "context when shorter)")
    train.add_argument("--recompute", choices=("none", "selective", "full"),
                       help="activation recomputation (default: the framework's recipe: full for PEFT methods on "
                       "hf/deepspeed/fsdp (TRL, QLoRA) and for torchtune, else none)")
    train.add_argument("--schedule", choices=("1f1b", "gpipe", "interleaved"), help="pipeline schedule "
                       "(default 1f1b, interleaved when --vp > 1)")
    train.add_argument("--attention", choices=("flash", "sdpa", "eager"), default="flash",
                       help="attention kernel: eager keeps the S×S scores for backward (default flash)")
    train.add_argument("--precision", choices=PRECISIONS, help="default bf16 (fp16 where the GPU has no bf16)")
    train.add_argument("--framework", choices=FRAMEWORKS, default="deepspeed",
                       help="where model states live: deepspeed/fsdp (bf16 weights+grads, fp32 master), megatron "
                       "(fp32 grads), hf (torch.autocast: fp32 weights), torchtune (pure bf16, chunked loss) "
                       "(default deepspeed)")
    train.add_argument("--method", choices=METHODS, default="full")
    train.add_argument("--optimizer", choices=OPTIMIZERS, help="default adamw (paged-adamw-8bit for qlora)")
    add_lora_options(train)
    train.add_argument("--tokens", type=positive_float, help="training tokens of the whole run (e.g. 2e12): "
                       "adds time.total_s")
    money = train.add_argument_group("cost and energy of a run of --tokens")
    money.add_argument("--price", type=positive_float, metavar="USD", help="price per GPU-hour (default: the "
                       "catalog's cheapest of --price-kind)")
    money.add_argument("--price-kind", choices=("on-demand", "spot", "reserved"), default="on-demand")
    money.add_argument("--power-w", type=positive_float, help="average power per GPU including its share of the "
                       "host, watts (default: TDP × utilisation × (1 + host overhead))")
    money.add_argument("--pue", type=positive_float, help="data-centre power usage effectiveness (default 1.1)")
    money.add_argument("--grid-co2", type=float, metavar="KG_PER_KWH",
                       help="grid carbon intensity, kg CO2e per kWh (default 0.48, world average 2023)")
    money.add_argument("--mtbi-hours", type=positive_float, help="mean hours between interruptions (spot "
                       "pre-emption); adds checkpoint and restart overhead at Daly's optimal interval")
    money.add_argument("--hardware-failures", action="store_true",
                       help="add the overhead of hardware failures at Llama 3's observed rate for this many GPUs")
    rl = train.add_argument_group("RL fine-tuning and distillation (several models resident at once)")
    rl.add_argument("--rl", choices=("ppo", "grpo", "dpo"), help="RL algorithm: PPO (actor, critic, reference, "
                    "reward), GRPO (actor, reference, optional reward model), DPO (policy and reference)")
    rl.add_argument("--reward-model", metavar="MODEL", help="reward model (default: the actor's architecture "
                    "for PPO, none for GRPO)")
    rl.add_argument("--critic-model", metavar="MODEL", help="critic (default: the reward model's architecture)")
    rl.add_argument("--prompt-tokens", type=positive_int, default=512, help="rollout prompt length (default 512)")
    rl.add_argument("--response-tokens", type=positive_int, default=1024,
                    help="rollout response length (default 1024)")
    rl.add_argument("--prompts-per-gpu", type=positive_int, default=1, help="rollout prompts per GPU (default 1)")
    rl.add_argument("--group-size", type=positive_int, default=1, help="GRPO responses per prompt (e.g. 8)")
    rl.add_argument("--teacher", metavar="MODEL", help="distillation: the frozen teacher model")
    train.add_argument("--force", action="store_true", help="estimate even when a check fails (format or method "
                       "the hardware lacks, sequence beyond the model's context); the output names the check")
    add_calibration_option(train)
    add_output_flags(train)
    add_export_option(train, TRAINING)
    train.set_defaults(run=run_train)


def add_lora_options(group: argparse._ActionsContainer) -> None:
    """The LoRA flags ``parse_job`` reads; train, plan train and plan buy share them."""
    group.add_argument("--lora-rank", type=positive_int, default=16, help="LoRA rank (max rank for dylora/adalora)")
    group.add_argument("--lora-dropout", type=float, default=0.0, help="LoRA dropout (adds masks; default 0)")
    group.add_argument("--lora-targets", default="q,k,v,o,gate,up,down",
                       help="comma-separated: q,k,v,o,gate,up,down,experts or all-linear")


# Terms that exist only in some setups (one process, one micro-batch, a tied trained embedding): the table shows
# them when they count; --json always has them.
_ROWS_SHOWN_WHEN_NONZERO = frozenset({"tied_grad_sum_bytes", "gradient_overlap_bytes"})


def run_train(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from suanli.cli.calibration_arg import calibrated
    from suanli.cli.local_gpu import apply_local_defaults, resolve_accelerator
    from suanli.cli.render import emit_json, explanations, key_values, report_json, table
    from suanli.core.training_time import compute_format
    from suanli.i18n import Text, say, t
    from suanli.spec.resolve import load_model
    from suanli.train_report import training_report
    from suanli.units import format_bytes

    check_target(args, TRAINING)
    apply_local_defaults(args, set_gpus=True)
    layout = parse_layout(args)
    accelerator, spec = resolve_accelerator(args.gpu), load_model(args.model, as_family=args.as_family)
    fill_hardware_defaults(args, spec, accelerator)
    job = parse_job(args)
    forced = training_checks(job, spec, accelerator, force=args.force)
    calibration = calibrated(args, accelerator, fmt=compute_format(job.precision, accelerator))
    report = with_forced(training_report(spec, job, layout, calibration.accelerator, rl=parse_rl(args),
                                         teacher=load_model(args.teacher) if args.teacher else None,
                                         tokens=args.tokens, cost=parse_cost(args, layout.gpus),
                                         assumptions=calibration.assumptions), forced)
    report = calibration.apply(report)
    report = replace(report, values={**report.values, "defaults": args.recipe_defaults})
    if args.export:
        from suanli.cli.export_arg import export_training_job

        report = replace(report, values={**report.values,
                                         "export": export_training_job(args, spec, job, layout, accelerator)})
    if args.json:
        emit_json(report_json(report, explain=args.explain))
        return 0
    memory = report.values["memory"]
    per_gpu = memory["per_gpu"]
    verdict = t("value.fits" if memory["fits"] else "value.does_not_fit")
    job_values = report.values["job"]
    if report.headline:  # a job that does not fit says so before anything else
        print(say(report.headline) + "\n")
    print(key_values([
        ("model", report.model), ("job", t("value.train.job", method=t(f"term.method.{job.method.value}"),
                                           precision=job.precision.value, optimizer=job.optimizer.value,
                                           seq=job_values["seq"], trainable=_trainable(job_values))),
        ("layout", t("value.train.layout", gpus=layout.gpus, gpu=report.values["gpu"], tp=layout.tp, pp=layout.pp,
                     dp=layout.dp, cp=layout.cp, ep=layout.ep, zero=layout.zero, micro_batch=layout.micro_batch,
                     recompute=Text(f"term.recompute.{layout.recompute.value}"))),
        ("per GPU", t("value.train.per_gpu", total=format_bytes(per_gpu["total_bytes"]),
                      capacity=format_bytes(memory["capacity_bytes"]), verdict=verdict,
                      headroom=format_bytes(memory["headroom_bytes"]))),
    ]))
    print()
    print(table(["component", "per GPU"], [[name.removesuffix("_bytes").replace("_", " "), format_bytes(value)]
                                           for name, value in per_gpu.items()
                                           if value or name not in _ROWS_SHOWN_WHEN_NONZERO], align="lr"))
    if memory["host_bytes"] or memory["nvme_bytes"]:
        host, nvme = format_bytes(memory["host_bytes"]), format_bytes(memory["nvme_bytes"])
        print("\n" + t("value.train.offloaded", host=host, nvme=nvme))
    for suggestion in memory.get("suggestions", []):
        print(t("value.train.fits_with", change=suggestion["change"], total=format_bytes(suggestion["total_bytes"])))
    if "time" in report.values:
        if not report.values["time"].get("runnable", True):
            print("\n" + t("value.train.not_runnable"))
        print("\n" + _time_text(report.values["time"], layout.effective_global_batch))
    if "cost" in report.values:
        print("\n" + _cost_text(report.values["cost"]))
    for default in report.values["defaults"]:
        print(t("value.train.default", setting=default["setting"], value=default["value"],
                framework=args.framework, source=default["source"]))
    for note in report.notes:
        print(t("cli.note_line", text=say(note)))
    if "export" in report.values:
        from suanli.cli.export_arg import export_text

        print("\n" + export_text(report.values["export"]))
    if args.explain:
        print("\n" + explanations(report.explanations))
    return 0


def _time_text(time: dict[str, Any], global_batch: int) -> str:
    from suanli.cli.render import key_values, table
    from suanli.i18n import t

    low, high = time["tokens_per_s_range"]
    lines = [("step", t("value.train.step", step=_duration(time["step_s"]), batch=global_batch,
                        micro_batches=time["micro_batches_per_step"])),
             ("throughput", t("value.train.throughput", tokens_per_s=time["tokens_per_s"], low=low, high=high,
                              per_gpu=time["tokens_per_s_per_gpu"])),
             ("MFU", t("value.train.mfu", mfu=time["mfu"], tflops=time["tflops_per_gpu"], fmt=time["compute_format"],
                       hfu=time["hfu"]))]
    if "total_s" in time:
        lines.append(("run", t("value.train.run", duration=_duration(time["total_s"]), tokens=time["tokens"])))
    step = time["step_s"]
    rows = [[name.removesuffix("_s").replace("_", " "), _duration(value), f"{value / step:.1%}"]
            for name, value in time["breakdown"].items() if value > 0]
    return key_values(lines) + "\n\n" + table(["step time", "seconds", "share"], rows, align="lrr")


def _trainable(job: dict[str, Any]) -> str:
    """The whole model's trainable count, and the busiest GPU's share when it differs."""
    from suanli.i18n import t

    whole, per_gpu = job["trainable_params"], job["trainable_params_per_gpu"]
    return t("value.train.trainable_busiest", whole=whole, per_gpu=per_gpu) if round(per_gpu) != whole \
        else f"{whole:,.0f}"


def _cost_text(cost: dict[str, Any]) -> str:
    from suanli.cli.render import key_values
    from suanli.i18n import t
    from suanli.units import format_bytes

    if cost["usd"] is None:
        price = t("value.cost.unpriced")
    elif cost["price_kind"] == "user":  # --price: no provider, no date
        price = t("value.cost.price_user", usd=cost["usd"], rate=cost["usd_per_gpu_hour"])
    else:
        price = t("value.cost.price", usd=cost["usd"], rate=cost["usd_per_gpu_hour"], provider=cost["price_provider"],
                  kind=t(f"term.price_kind.{cost['price_kind']}"), date=cost["price_date"])
    lines = [("GPU-hours", f"{cost['gpu_hours']:,.0f}"), ("cost", price)]
    if cost["energy_kwh"] is not None:
        lines.append(("energy", t("value.cost.energy", kwh=cost["energy_kwh"], watts=cost["power_per_gpu_w"],
                                  pue=cost["pue"], tonnes=cost["co2_kg"] / 1000, grid=cost["grid_kg_co2e_per_kwh"])))
    saved = "value.cost.checkpoint_adapters" if cost.get("checkpoint_adapter_only") else "value.cost.checkpoint"
    lines.append(("checkpoint", t(saved, size=format_bytes(cost["checkpoint_bytes"], binary=False),
                                  weights=format_bytes(cost["checkpoint_weights_bytes"], binary=False),
                                  duration=_duration(cost["checkpoint_save_s"]))))
    if cost["interruption_overhead_fraction"] is not None:
        lines.append(("interruptions", t("value.cost.interruptions", mtbi=_duration(cost["mtbi_s"]),
                                         interval=_duration(cost["checkpoint_interval_s"]),
                                         overhead=cost["interruption_overhead_fraction"])))
    return key_values(lines)


def parse_layout(args: argparse.Namespace) -> Layout:
    from suanli.errors import LayoutError
    from suanli.spec.layout import Layout, Offload, PipelineSchedule, Recompute

    model_parallel = args.tp * args.pp * args.cp
    gpus = args.gpus or model_parallel * (args.dp or 1)
    if gpus % model_parallel:
        raise LayoutError(f"--gpus {gpus} is not a multiple of tp × pp × cp = {model_parallel}; "
                          f"use --gpus {model_parallel * max(1, gpus // model_parallel)}",
                          key="error.cli.gpus_not_multiple",
                          fields={"gpus": gpus, "model_parallel": model_parallel,
                                  "suggested": model_parallel * max(1, gpus // model_parallel)})
    dp = args.dp or gpus // model_parallel
    if model_parallel * dp != gpus:
        raise LayoutError(f"gpus ({gpus}) must equal tp × pp × dp × cp = {args.tp} × {args.pp} × {dp} × {args.cp}"
                          f" = {model_parallel * dp}; drop --dp to derive it",
                          key="error.cli.gpus_product", fields={"gpus": gpus, "tp": args.tp, "pp": args.pp, "dp": dp,
                                                                 "cp": args.cp, "product": model_parallel * dp})
    if args.fsdp and args.zero and args.zero != FSDP_MODES[args.fsdp]:
        raise LayoutError(f"--fsdp {args.fsdp} is ZeRO-{FSDP_MODES[args.fsdp]} and contradicts --zero {args.zero}; "
                          "give one of them",
                          key="error.cli.fsdp_zero",
                          fields={"fsdp": args.fsdp, "stage": FSDP_MODES[args.fsdp], "zero": args.zero})
    args.recipe_defaults = apply_recipe_defaults(args, dp)
    zero, shard_group = args.zero, None
    if args.fsdp:
        zero = FSDP_MODES[args.fsdp]
        if args.fsdp == "hybrid-shard" and dp > GPUS_PER_NODE:
            shard_group = GPUS_PER_NODE
    schedule = args.schedule or ("interleaved" if args.vp > 1 else "1f1b")
    return Layout(tp=args.tp, pp=args.pp, dp=dp, cp=args.cp, ep=args.ep, vp=args.vp, sp=args.sp, zero=zero,
                  shard_group=shard_group, offload_optimizer=Offload(args.offload_optimizer),
                  offload_params=Offload(args.offload_params), micro_batch=args.micro_batch,
                  global_batch=args.global_batch, schedule=PipelineSchedule(schedule),
                  recompute=Recompute(args.recompute))


def apply_recipe_defaults(args: argparse.Namespace, dp: int) -> list[dict[str, str]]:
    """Fill --recompute and --zero, where not given, from the framework's recipe defaults for the method
    (spec/recipes.py; ZeRO only with dp > 1 and no --fsdp); the applied ones, with their sources."""
    from suanli.spec.recipes import recipe_defaults
    from suanli.spec.training import Framework, Method

    found = recipe_defaults(Framework(args.framework), Method(args.method))
    applied = []
    recompute = found.get("recompute")
    if args.recompute is None:
        args.recompute = recompute.value if recompute else "none"
        if recompute:
            applied.append({"setting": "recompute", "value": recompute.value, "source": recompute.source})
    zero = found.get("zero")
    if args.zero is None and args.fsdp is None:
        args.zero = int(zero.value) if zero and dp > 1 else 0
        if zero and dp > 1:
            applied.append({"setting": "zero", "value": zero.value, "source": zero.source})
    return applied


def parse_job(args: argparse.Namespace) -> TrainingJob:
    from suanli.spec.layout import AttentionImpl
    from suanli.spec.training import Framework, Method, Optimizer, PeftConfig, TrainingJob

    method = Method(args.method)
    optimizer = args.optimizer or ("paged-adamw-8bit" if method is Method.QLORA else "adamw")
    targets = tuple(t.strip() for t in args.lora_targets.split(",") if t.strip())
    return TrainingJob(seq=args.seq or 2048, method=method, peft=PeftConfig(rank=args.lora_rank, target_modules=targets,
                                                                   lora_dropout=args.lora_dropout),
                       optimizer=Optimizer(optimizer),
                       precision=precision_mode(args.precision or "bf16", args.framework),
                       attention=AttentionImpl(args.attention), framework=Framework(args.framework),
                       tp_comm_overlap=getattr(args, "tp_comm_overlap", False))


def fill_hardware_defaults(args: argparse.Namespace, spec: ModelSpec, accelerator: Accelerator) -> None:
    """Defaults that depend on the model and the GPU: bf16, or fp16 on parts without bf16 (V100, T4);
    2048-token sequences, or the model's whole context when shorter (GPT-2's 1024)."""
    from suanli.spec.support import max_context_tokens

    if args.precision is None:
        args.precision = "bf16" if accelerator.supports("bf16") or not accelerator.supports("fp16") else "fp16"
    if args.seq is None:
        args.seq = min(2048, max_context_tokens(spec))


def training_checks(job: TrainingJob, spec: ModelSpec, accelerator: Accelerator, *, force: bool) -> tuple[str, ...]:
    """What the hardware and the model allow (spec/support.py): raises, or with --force returns notes."""
    from suanli.spec.support import context_violation, enforce, method_violation, training_format_violation

    return enforce((method_violation(job.method, accelerator), training_format_violation(job.precision, accelerator),
                    context_violation(spec, job.seq, "--seq")), force=force)


def with_forced(report: Report, forced: tuple[str, ...]) -> Report:
    """The report with the forced checks first in its notes and listed under ``forced_checks``."""
    from dataclasses import replace

    if not forced:
        return report
    return replace(report, values={**report.values, "forced_checks": list(forced)}, notes=(*forced, *report.notes))


def parse_cost(args: argparse.Namespace, gpus: int) -> CostRequest:
    from dataclasses import replace

    from suanli.core.cost import job_mtbi_s
    from suanli.errors import SpecError
    from suanli.spec.assumptions import CostAssumptions
    from suanli.train_report import CostRequest

    if args.tokens is None and any(v is not None for v in (args.price, args.power_w, args.pue, args.grid_co2,
                                                            args.mtbi_hours)):
        raise SpecError("cost and energy options price a whole run: add --tokens (e.g. --tokens 1e12)",
                        key="error.cli.cost_needs_tokens")
    if args.mtbi_hours is not None and args.hardware_failures:
        raise SpecError("give --mtbi-hours or --hardware-failures, not both",
                        key="error.cli.mtbi_or_failures")
    assumptions = CostAssumptions()
    overrides = {k: v for k, v in (("pue", args.pue), ("grid_kg_co2e_per_kwh", args.grid_co2)) if v is not None}
    assumptions = replace(assumptions, **overrides)
    mtbi = args.mtbi_hours * 3600 if args.mtbi_hours is not None else None
    if args.hardware_failures:
        mtbi = job_mtbi_s(gpus, assumptions)
    return CostRequest(price_kind=args.price_kind, usd_per_gpu_hour=args.price, power_per_gpu_w=args.power_w,
                       mtbi_s=mtbi, assumptions=assumptions)


def parse_rl(args: argparse.Namespace) -> RlSetup | None:
    from suanli.core.rl import RlAlgorithm, RlSetup
    from suanli.errors import SpecError
    from suanli.spec.resolve import load_model

    if args.rl is None:
        if args.reward_model or args.critic_model or args.group_size > 1:
            raise SpecError("--reward-model, --critic-model and --group-size need --rl ppo|grpo|dpo",
                            key="error.cli.rl_options")
        return None
    return RlSetup(algorithm=RlAlgorithm(args.rl), prompt_tokens=args.prompt_tokens,
                   response_tokens=args.response_tokens, prompts_per_gpu=args.prompts_per_gpu,
                   group_size=args.group_size,
                   reward_model=load_model(args.reward_model) if args.reward_model else None,
                   critic_model=load_model(args.critic_model) if args.critic_model else None)


def precision_mode(precision: str, framework: str) -> PrecisionMode:
    """The precision mode a framework uses for ``--precision`` (see spec/training.py's table)."""
    from suanli.spec.training import PrecisionMode

    if precision in ("fp32", "fp8", "pure-bf16"):
        return PrecisionMode(precision)
    if framework == "hf":
        return PrecisionMode.AMP_BF16 if precision == "bf16" else PrecisionMode.AMP_FP16
    if framework == "megatron":
        return PrecisionMode.MIXED_FP32_GRADS
    if framework == "torchtune":  # recipes train in the model dtype: bf16 weights, grads and optimizer states
        return PrecisionMode.PURE_BF16 if precision == "bf16" else PrecisionMode.MIXED_FP16
    return PrecisionMode.MIXED_BF16 if precision == "bf16" else PrecisionMode.MIXED_FP16


def _duration(seconds: float) -> str:
    """``0.0123`` → ``12.3 ms``; ``93600`` → ``1.08 days``."""
    from suanli.i18n import t

    for scale, key in ((86400.0, "value.days"), (3600.0, "value.hours"), (60.0, "value.minutes")):
        if seconds >= scale:
            return t(key, n=seconds / scale)
    for scale, unit in ((1.0, "s"), (1e-3, "ms")):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e6:.3g} µs"
