"""``suanli fit MODEL``: can my GPU run this? The fewest GPUs of every catalog accelerator that hold the job."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from suanli.cli.common import Commands, accelerator_list, positive_int
from suanli.cli.model_arg import add_as_option

if TYPE_CHECKING:
    from suanli.spec.model import ModelSpec


def register(commands: Commands) -> None:
    fit = commands.add_parser(
        "fit", help="for every accelerator: the fewest GPUs that hold the model, with headroom",
        description="For every catalog accelerator, the fewest GPUs (1, 2, 4, 8, then whole 8-GPU nodes) that "
        "hold the job, with the per-GPU total and the headroom. Inference spreads the model with tensor "
        "parallelism; training shards it with ZeRO-3 / FSDP.")
    fit.add_argument("model", metavar="MODEL", help="catalog name, config.json, model directory or repo id")
    add_as_option(fit)
    fit.add_argument("--mode", choices=("infer", "train", "lora", "qlora"), default="infer")
    fit.add_argument("--quant", help="inference weight format (bf16, fp8, int8, int4, awq, gptq, nf4, q4_k_m…; "
                     "default: the checkpoint's quantization_config, else its dtype)")
    fit.add_argument("--kv-dtype", help="inference KV-cache format (default: the engine's, bf16)")
    fit.add_argument("--engine", choices=("vllm", "sglang", "trtllm", "llamacpp", "hf"), default="vllm")
    fit.add_argument("--context", type=positive_int, help="tokens per sequence (default 4096 for inference, "
                     "2048 for training)")
    fit.add_argument("--batch", type=positive_int, default=1, help="sequences at once (default 1)")
    fit.add_argument("--vendor", help="only accelerators of this vendor")
    fit.add_argument("--gpu", help="only these accelerators, comma-separated; local: this machine's (`suanli probe`)")
    fit.add_argument("--force", action="store_true", help="estimate even when --context exceeds the model's context")
    fit.add_argument("--json", action="store_true", help="print one JSON object")
    fit.set_defaults(run=run_fit)


def run_fit(args: argparse.Namespace) -> int:
    from suanli.cli.render import emit_json, table
    from suanli.errors import SpecError
    from suanli.i18n import Text, say, t
    from suanli.report import approximate_fields
    from suanli.search.fit import fit_table, inference_evaluator, training_evaluator
    from suanli.spec.family_match import approximation
    from suanli.spec.hardware import check_filters, load_accelerators
    from suanli.spec.resolve import load_model
    from suanli.spec.support import context_violation, enforce, max_context_tokens
    from suanli.spec.training import Method
    from suanli.units import format_bytes

    check_filters(vendor=args.vendor)
    spec = load_model(args.model, as_family=args.as_family)
    approximate = approximation(spec)
    forced = enforce([context_violation(spec, args.context, "--context")] if args.context else [], force=args.force)
    if args.mode == "infer":
        context = args.context or min(4096, max_context_tokens(spec))
        fitter = inference_evaluator(spec, engine=args.engine, quant=args.quant, kv_dtype=args.kv_dtype,
                                       context=context, batch=args.batch)
    else:
        if args.quant or args.kv_dtype:
            raise SpecError(f"--quant and --kv-dtype apply to --mode infer; --mode {args.mode} sets its own formats "
                            "(qlora keeps the base in NF4)",
                            key="error.cli.fit_formats", fields={"mode": args.mode})
        context = args.context or min(2048, max_context_tokens(spec))
        method = Method.FULL if args.mode == "train" else Method(args.mode)
        fitter = training_evaluator(spec, method, seq=context, micro_batch=args.batch)
    chosen = accelerator_list(args.gpu) if args.gpu else load_accelerators()
    accelerators = tuple(a for a in chosen if not args.vendor or a.vendor.lower() == args.vendor.lower())
    rows = fit_table(fitter, accelerators)
    rows.sort(key=lambda r: (r.min_gpus is None, r.min_gpus or 0, -(r.headroom_bytes or 0)))
    if args.json:
        emit_json({"command": "fit", "model": spec.name, **approximate_fields(approximate), "mode": args.mode,
                   "context": context, "batch": args.batch,
                   "rows": [{"gpu": r.gpu, "name": r.name, "min_gpus": r.min_gpus,
                             "per_gpu_total_bytes": r.per_gpu_total_bytes, "headroom_bytes": r.headroom_bytes,
                             "capacity_bytes": r.capacity_bytes, "layout": r.layout, "note": r.note} for r in rows],
                   "forced_checks": list(forced)})
        return 0
    mode = t(f"term.fit_mode.{args.mode}")
    print(t("value.fit.header", model=spec.name, mode=mode, context=context, batch=args.batch) + "\n")
    checkpoint = _checkpoint_format(spec, args.engine) if args.mode == "infer" and not args.quant else None
    if checkpoint is not None:
        print(t("value.fit.checkpoint", format=checkpoint) + "\n")
    print(table(["gpu", "memory", "min GPUs", "per GPU", "headroom", "layout"],
                [[r.gpu, format_bytes(r.capacity_bytes), "—" if r.min_gpus is None else r.min_gpus,
                  "—" if r.per_gpu_total_bytes is None else format_bytes(r.per_gpu_total_bytes),
                  "—" if r.headroom_bytes is None else format_bytes(r.headroom_bytes), r.layout or "—"]
                 for r in rows], align="lrrrrl"))
    for note in ([Text("note.approximate", reason=approximate)] if approximate else []) + list(forced):
        print(t("cli.note_line", text=say(note)))
    if args.mode == "qlora":
        print("\n" + t("value.fit.qlora_only"))
    refused = [row.gpu for row in rows if row.note and row.min_gpus is None]
    if refused and args.mode != "qlora":
        print("\n" + t("value.fit.refused", gpus=", ".join(refused)))
    for row in rows:
        if row.note and row.min_gpus is not None:
            print(t("cli.note_line", text=f"{row.gpu}: {say(row.note)}"))
    return 0


def _checkpoint_format(spec: ModelSpec, engine: str) -> str | None:
    """The checkpoint's own quantized layout (``quantization_config``) when the engine serves it, else None."""
    from suanli.core.inference_memory import checkpoint_weights_format
    from suanli.spec.engines import get_engine

    q = spec.quantization
    return q.weights.key if q is not None and checkpoint_weights_format(spec, get_engine(engine)) == q.weights \
        else None
