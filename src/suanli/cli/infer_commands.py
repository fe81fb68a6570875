"""``suanli infer MODEL --gpu G``: serving memory per GPU (engine-aware), latency (TTFT, TPOT, end-to-end) and
throughput of the batch, and the replica's throughput at max load."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from suanli.cli.calibration_arg import add_calibration_option
from suanli.cli.common import Commands, add_output_flags, positive_int
from suanli.cli.engine_knobs import add_engine_knobs, engine_knobs
from suanli.cli.model_arg import add_as_option
from suanli.cli.model_commands import add_image_flags
from suanli.cli.train_commands import with_forced

if TYPE_CHECKING:
    from suanli.spec.engines import EnginePreset
    from suanli.spec.hardware import Accelerator
    from suanli.spec.model import ModelSpec
    from suanli.spec.precision import NumberFormat

ENGINES = ("vllm", "sglang", "trtllm", "tgi", "llamacpp", "hf")


def register(commands: Commands) -> None:
    infer = commands.add_parser(
        "infer", help="serving memory per GPU, latency (TTFT, TPOT) and throughput",
        description="Per-GPU memory of serving a model on an engine (vLLM by default): weights in the chosen "
        "format, this batch's KV cache, prefill activations, overheads, and the KV tokens the engine's "
        "memory budget holds; the batch's time to first token, time per output token, end-to-end latency and "
        "throughput (static batch), and the replica's throughput at max load (continuous batching).")
    infer.add_argument("model", metavar="MODEL", help="catalog name, config.json, model directory or repo id")
    add_as_option(infer)
    infer.add_argument("--gpu", required=True, help="accelerator (see `suanli gpus`), or local (`suanli probe`)")
    infer.add_argument("--gpus", type=positive_int, help="GPUs per replica, used as tensor parallel degree")
    infer.add_argument("--tp", type=positive_int, help="tensor parallel degree (default --gpus or 1)")
    infer.add_argument("--ep", type=positive_int, default=1, help="expert parallel degree (default 1)")
    infer.add_argument("--batch", type=positive_int, default=1, help="concurrent sequences (default 1)")
    infer.add_argument("--prompt", type=positive_int, help="prompt tokens (default 1024, less when the model's "
                       "context is shorter than prompt + output)")
    infer.add_argument("--output", type=int, default=256, help="generated tokens (default 256)")
    infer.add_argument("--quant", help="weight format: bf16, fp8, int8, int4, awq, gptq, nf4, q4_k_m, … "
                       "(default: the checkpoint's: its quantization_config, else its dtype)")
    infer.add_argument("--kv-dtype", help="KV-cache format: bf16, fp8, int8, int4 (default the engine's)")
    infer.add_argument("--engine", choices=ENGINES, default="vllm")
    infer.add_argument("--force", action="store_true", help="estimate even when a check fails (engine or format "
                       "the hardware lacks, prompt + output beyond the model's context); the output names the check")
    add_image_flags(infer)
    add_engine_knobs(infer)
    add_calibration_option(infer)
    add_output_flags(infer)
    infer.set_defaults(run=run_infer)


def run_infer(args: argparse.Namespace) -> int:
    from suanli.cli.calibration_arg import calibrated
    from suanli.cli.local_gpu import apply_local_defaults, resolve_accelerator
    from suanli.cli.render import emit_json, explanations, key_values, report_json, table
    from suanli.i18n import say, t
    from suanli.infer_report import inference_report
    from suanli.spec.engines import get_engine
    from suanli.spec.precision import parse_number_format
    from suanli.spec.resolve import load_model
    from suanli.units import format_bytes

    apply_local_defaults(args)
    tp = _tensor_parallel(args)
    spec = load_model(args.model, as_family=args.as_family)
    accelerator, engine = resolve_accelerator(args.gpu), engine_knobs(args).apply(get_engine(args.engine))
    _fill_prompt(args, spec)
    _add_image_tokens(args, spec)
    weights_format = parse_number_format(args.quant) if args.quant else None
    forced = _serving_checks(args, spec, accelerator, engine, weights_format)
    calibration = calibrated(args, accelerator)
    report = with_forced(inference_report(
        spec, calibration.accelerator, engine=engine, tp=tp, ep=args.ep,
        batch=args.batch, prompt_tokens=args.prompt, output_tokens=args.output, weights_format=weights_format,
        kv_format=parse_number_format(args.kv_dtype) if args.kv_dtype else None, images=args.images or 0,
        image_size=args.image_size, tiles=args.tiles, assumptions=calibration.assumptions), forced)
    report = calibration.apply(report)
    if args.json:
        emit_json(report_json(report, explain=args.explain))
        return 0
    memory: dict[str, Any] = report.values["memory"]
    per_gpu = memory["per_gpu"]
    verdict = t("value.fits" if memory["fits"] else "value.does_not_fit")
    if report.headline:
        print(say(report.headline) + "\n")
    print(key_values([
        ("model", report.model),
        ("serving", t("value.infer.serving", engine=report.values["engine"], tp=tp, gpu=report.values["gpu"],
                      batch=args.batch, prompt=args.prompt, output=args.output, weights=memory["weights_format"],
                      origin=_origin(memory["weights_format_source"]), kv=memory["kv_format"])),
        ("this batch", t("value.infer.this_batch", total=format_bytes(per_gpu["total_bytes"]), verdict=verdict)),
        ("KV pool", t("value.infer.kv_pool", pool=format_bytes(memory["kv_budget_bytes"]),
                      tokens=memory["kv_capacity_tokens"],
                      sequences=memory["kv_capacity_tokens"] // (args.prompt + args.output))),
        *_image_lines(report.values),
        *_time_lines(report.values),
    ]))
    print()
    print(table(["component", "per GPU"], [[name.removesuffix("_bytes").replace("_", " "), format_bytes(value)]
                                           for name, value in per_gpu.items()], align="lr"))
    print()
    print(_phase_table(report.values["phases"]))
    for note in report.notes:
        print(t("cli.note_line", text=say(note)))
    if args.explain:
        print("\n" + explanations(report.explanations))
    return 0


def _image_lines(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    images = values.get("images")
    if images is None:
        return []
    from suanli.i18n import t

    return [("images", t("value.infer.images", images=images["images_per_sequence"],
                         tokens=images["prompt_tokens_per_image"], encode_ms=1e3 * images["vision_encoder_s"]))]


def _add_image_tokens(args: argparse.Namespace, spec: ModelSpec) -> None:
    """``--images``: the images' tokens join the prompt (--prompt counts the text)."""
    from suanli.core.vision import image_prompt_tokens
    from suanli.errors import SpecError

    if not args.images:
        if args.image_size or args.tiles:
            raise SpecError("--image-size and --tiles describe images: add --images N (images per sequence)",
                            key="error.cli.images_needed")
        return
    height, width = args.image_size or (None, None)
    args.prompt += image_prompt_tokens(spec, images=args.images, height=height, width=width, tiles=args.tiles)


def _origin(source: str) -> str:
    """`` (from quantization_config)`` for a default taken from the checkpoint; nothing for --quant."""
    from suanli.i18n import t

    return "" if source == "--quant" else t("value.infer.origin", source=source)


def _time_lines(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    lat, thr, phases = values["latency"], values["throughput"], values["phases"]
    load = thr["max_load"]

    def band(pair: list[float], scale: float, digits: int) -> str:
        return f"{pair[0] * scale:,.{digits}f}–{pair[1] * scale:,.{digits}f}"

    from suanli.i18n import t

    def bound(phase: str) -> str:  # "compute" ("-bound" is in the English template), 受算力限制 in Chinese
        return t(f"term.bound.{phases[phase]['bound']}")

    return [
        ("latency", t("value.infer.latency", ttft_ms=lat["ttft_s"] * 1e3, ttft_band=band(lat["ttft_s_range"], 1e3, 1),
                      prefill_bound=bound("prefill"), tpot_ms=lat["tpot_s"] * 1e3,
                      tpot_band=band(lat["tpot_s_range"], 1e3, 2), decode_bound=bound("decode"), e2e_s=lat["e2e_s"])),
        ("throughput", t("value.infer.throughput", tokens_per_s=thr["output_tokens_per_s"],
                         band=band(thr["output_tokens_per_s_range"], 1, 0), requests_per_s=thr["requests_per_s"],
                         max_tokens_per_s=load["output_tokens_per_s"], concurrency=load["concurrency"])),
        ("bands", t("value.infer.bands", latency_cases=lat["band_cases"], throughput_cases=thr["band_cases"])),
    ]


def _phase_table(phases: dict[str, Any]) -> str:
    from suanli.cli.render import table

    parts = ("compute_s", "weights_s", "kv_s", "activations_s", "comm_s", "overhead_s", "time_s")
    rows = [[part.removesuffix("_s").replace("_", " ") if part != "time_s" else "total",
             f"{phases['prefill'][part] * 1e3:,.3f}", f"{phases['decode'][part] * 1e3:,.3f}"] for part in parts]
    return table(["time (ms)", "prefill", "decode step"], rows, align="lrr")


def _fill_prompt(args: argparse.Namespace, spec: ModelSpec) -> None:
    """Default prompt: 1024 tokens, or what the model's context leaves after the output (GPT-2: 1024 − 256)."""
    from suanli.spec.support import max_context_tokens

    if args.prompt is None:
        args.prompt = max(1, min(1024, max_context_tokens(spec) - max(args.output, 0)))


def _serving_checks(args: argparse.Namespace, spec: ModelSpec, accelerator: Accelerator, engine: EnginePreset,
                    weights_format: NumberFormat | None) -> tuple[str, ...]:
    """Expert parallelism needs experts; the engine, format and context checks of spec/support.py."""
    from suanli.errors import LayoutError
    from suanli.spec.support import (
        context_violation,
        enforce,
        engine_violation,
        model_len_violation,
        weights_format_violation,
    )

    if args.ep > 1 and not spec.is_moe:
        raise LayoutError(f"--ep {args.ep} needs a mixture-of-experts model; {spec.name} is dense (no experts to "
                          "split); drop --ep and spread the model with --tp",
                          key="error.cli.ep_dense", fields={"ep": args.ep, "model": spec.name})
    served = weights_format or (spec.quantization.weights if spec.quantization else None)  # --quant or checkpoint
    return enforce((engine_violation(engine, accelerator),
                    weights_format_violation(served, accelerator) if served else None,
                    context_violation(spec, args.prompt + args.output, "--prompt + --output"),
                    model_len_violation(spec, engine, args.prompt + args.output, "--prompt + --output")),
                   force=args.force)


def _tensor_parallel(args: argparse.Namespace) -> int:
    from suanli.errors import LayoutError, SpecError
    from suanli.spec.limits import check_gpu_count

    if args.tp and args.gpus and args.tp * args.ep != args.gpus and args.tp != args.gpus:
        raise LayoutError(f"--tp {args.tp} and --gpus {args.gpus} disagree; give one of them "
                          "(a replica's GPUs are its tensor-parallel ranks)",
                          key="error.cli.tp_gpus", fields={"tp": args.tp, "gpus": args.gpus})
    if args.output < 0:
        raise SpecError(f"--output must be zero or positive, got {args.output}",
                        key="error.cli.output_negative", fields={"output": args.output})
    tp: int = args.tp or args.gpus or 1
    check_gpu_count("tp × ep", tp * args.ep)
    return tp
