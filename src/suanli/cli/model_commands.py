"""``suanli models``, ``suanli params MODEL``, ``suanli flops MODEL``."""

from __future__ import annotations

import argparse
from typing import Any

from suanli.cli.common import Commands, add_output_flags, positive_int
from suanli.cli.model_arg import add_model_argument

MODEL_HELP = ("catalog name (see `suanli models`), path to config.json, model directory, .gguf file, "
              "or Hugging Face repo id")


def register(commands: Commands) -> None:
    models = commands.add_parser("models", help="list the bundled model catalog",
                                 description="List the bundled models with their exact parameter counts.")
    models.add_argument("--family", help="only models whose family contains this text (e.g. qwen)")
    models.add_argument("--json", action="store_true", help="print one JSON object")
    models.set_defaults(run=run_models)

    params = commands.add_parser("params", help="exact parameter counts (total, active, per component)",
                                 description="Exact parameter counts: total, active per token (MoE), "
                                 "embedding, per component and per layer.")
    add_model_argument(params, MODEL_HELP)
    add_output_flags(params)
    params.set_defaults(run=run_params)

    flops = commands.add_parser("flops", help="forward/backward/training FLOPs of one batch",
                                description="Matmul FLOPs (multiply-add = 2) of a forward and backward pass "
                                "over --batch sequences of --seq tokens.")
    add_model_argument(flops, MODEL_HELP)
    flops.add_argument("--seq", type=positive_int, required=True, help="sequence length in tokens")
    flops.add_argument("--batch", type=positive_int, default=1, help="sequences per batch (default 1)")
    flops.add_argument("--attention", choices=["full", "causal"], default="full",
                       help="count attention over all S×S pairs (default) or only the causal/windowed ones")
    flops.add_argument("--recompute", choices=["none", "selective", "full"], default="none",
                       help="activation recomputation to add as hardware FLOPs (default none)")
    flops.add_argument("--tokens", type=float, help="also give the training compute for this many tokens "
                       "(e.g. 300e9)")
    add_image_flags(flops)
    add_output_flags(flops)
    flops.set_defaults(run=run_flops)


def add_image_flags(parser: argparse.ArgumentParser) -> None:
    """``--images``, ``--image-size``, ``--tiles`` for vision-language models."""
    parser.add_argument("--images", type=positive_int, help="images per sequence (vision-language models): the "
                        "vision tower's FLOPs are given apart; Qwen/Gemma image tokens count in the sequence")
    parser.add_argument("--image-size", type=image_size, help="image size in px after the processor's resize, "
                        "SIDE or HEIGHTxWIDTH (default: the tower's fixed size; Qwen-VL needs one, e.g. 448)")
    parser.add_argument("--tiles", type=positive_int, help="tiles per image for Llama 3.2 Vision (default 4)")


def image_size(text: str) -> tuple[int, int]:
    """``448`` or ``448x672`` → (height, width) in px."""
    parts = text.lower().replace("×", "x").split("x")
    if len(parts) not in (1, 2) or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"image size must be SIDE or HEIGHTxWIDTH in px (e.g. 448 or 448x672), "
                                         f"got {text!r}")
    sides = [int(p) for p in parts]
    return sides[0], sides[-1]


def run_models(args: argparse.Namespace) -> int:
    from suanli.cli.render import emit_json, table
    from suanli.core.params import count_params
    from suanli.spec.hf import spec_from_config
    from suanli.spec.resolve import catalog_config, model_catalog
    from suanli.units import format_count

    rows: list[dict[str, Any]] = []
    for entry in model_catalog():
        if args.family and args.family.lower() not in (entry.family + entry.key).lower():
            continue
        spec = spec_from_config(catalog_config(entry), name=entry.key)
        counts = count_params(spec)
        rows.append({"model": entry.key, "family": entry.family, "model_type": spec.model_type,
                     "total_params": counts.total, "active_params": counts.active,
                     "stated_params": entry.stated_params, "hf_repo": entry.hf_repo,
                     "release_year": entry.release_year})
    if args.json:
        emit_json({"command": "models", "models": rows})
        return 0
    print(table(["model", "family", "type", "params", "active", "stated", "hf repo"],
                [[r["model"], r["family"], r["model_type"], format_count(r["total_params"]),
                  format_count(r["active_params"]), format_count(r["stated_params"]), r["hf_repo"]]
                 for r in rows], align="lllrrrl"))
    return 0


def run_params(args: argparse.Namespace) -> int:
    from suanli.cli.render import emit_json, explanations, key_values, report_json, table
    from suanli.i18n import t
    from suanli.report import params_report
    from suanli.spec.resolve import resolve_model
    from suanli.units import format_count

    report = params_report(resolve_model(args.model, as_family=args.as_family))
    if args.json:
        emit_json(report_json(report, explain=args.explain))
        return 0
    v = report.values
    pairs = [("model", f"{report.model} ({v['model_type']})"), ("total", f"{v['total_params']:,}"),
             ("active per token", f"{v['active_params']:,}"), ("embedding", f"{v['embedding_params']:,}"),
             ("non-embedding", f"{v['non_embedding_params']:,}")]
    if "stated_params" in v:
        pairs.append(("publisher states", f"{format_count(v['stated_params'])}  ({v['stated_params_source']})"))
    if "stored_params" in v:
        pairs.append(("weight files store", t("value.params.stored", params=v["stored_params"],
                                              bytes=v["stored_bytes"])))
    print(key_values(pairs))
    total = v["total_params"]
    print()
    print(table(["component", "params", "share"],
                [[name, f"{n:,}", f"{100 * n / total:.2f}%"] for name, n in v["components_params"].items()],
                align="lrr"))
    _print_notes(report.notes)
    if args.explain:
        print("\n" + explanations(report.explanations))
    return 0


def run_flops(args: argparse.Namespace) -> int:
    from suanli.cli.render import emit_json, explanations, key_values, report_json, table
    from suanli.i18n import t
    from suanli.report import flops_report
    from suanli.spec.assumptions import AttentionSpan
    from suanli.spec.layout import Recompute
    from suanli.spec.resolve import load_model
    from suanli.units import format_decimal

    if args.tokens is not None and not args.tokens > 0:
        from suanli.errors import SpecError

        raise SpecError(f"--tokens must be positive, got {args.tokens:g}; e.g. --tokens 300e9",
                        key="error.cli.tokens_positive", fields={"tokens": args.tokens})
    if (args.image_size or args.tiles) and not args.images:
        from suanli.errors import SpecError

        raise SpecError("--image-size and --tiles describe images: add --images N (images per sequence)",
                        key="error.cli.images_needed")
    report = flops_report(load_model(args.model, as_family=args.as_family), seq=args.seq, batch=args.batch,
                          span=AttentionSpan(args.attention), recompute=Recompute(args.recompute),
                          images=args.images or 0, image_size=args.image_size, tiles=args.tiles)
    payload = report_json(report, explain=args.explain)
    if args.tokens is not None:
        payload["train_tokens"] = args.tokens
        payload["training_flops_for_tokens"] = payload["training_flops_per_token"] * args.tokens
        payload["six_n_d_flops_for_tokens"] = payload["six_n_d_flops"] / payload["tokens"] * args.tokens
    if args.json:
        emit_json(payload)
        return 0
    pairs = [("model", report.model),
             ("batch × seq", t("value.flops.batch_seq", batch=args.batch, seq=args.seq, tokens=payload["tokens"])),
             ("forward", format_decimal(payload["forward_flops"], "FLOP")),
             ("backward", format_decimal(payload["backward_flops"], "FLOP")),
             ("training (fwd+bwd)", format_decimal(payload["training_flops"], "FLOP")),
             ("with recompute", format_decimal(payload["training_with_recompute_flops"], "FLOP")),
             ("per token, training", format_decimal(payload["training_flops_per_token"], "FLOP")),
             ("6·N·D for comparison", t("value.flops.six_n_d", flops=format_decimal(payload["six_n_d_flops"], "FLOP"),
                                        ratio=payload["ratio_to_six_n_d"]))]
    vision = payload.get("vision")
    if vision is not None:
        pairs.append(("vision tower", t("value.flops.vision", per_image=format_decimal(
            vision["forward_flops_per_image"], "FLOP"), height=vision["image_height"], width=vision["image_width"],
            tokens=vision["tokens_per_image"], tokens_are=vision["tokens_are"],
            batch=format_decimal(vision["forward_flops"], "FLOP"))))
    if args.tokens is not None:
        pairs.append((t("value.flops.training_tokens", tokens=args.tokens),
                      f"{payload['training_flops_for_tokens']:.3e} FLOP "
                      f"(6·N·D: {payload['six_n_d_flops_for_tokens']:.3e})"))
    print(key_values(pairs))
    forward = payload["forward_flops"]
    print()
    print(table(["component", "forward FLOP", "share"],
                [[name, format_decimal(f, "FLOP"), f"{100 * f / forward:.2f}%"]
                 for name, f in payload["components_forward_flops"].items()], align="lrr"))
    _print_notes(report.notes)
    if args.explain:
        print("\n" + explanations(report.explanations))
    return 0


def _print_notes(notes: tuple[str, ...]) -> None:
    from suanli.i18n import say, t

    for note in notes:
        print(t("cli.note_line", text=say(note)))
