"""``suanli measure MODEL --device cpu|cuda --mode train|infer``: run a real training step or generation of a small
model on this machine and print suanli's prediction for the same run beside it, with signed errors."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from suanli.cli.common import Commands, positive_int
from suanli.cli.model_arg import add_as_option

if TYPE_CHECKING:
    from suanli.measure.predict import MeasureJob, Prediction
    from suanli.measure.run import Measurement
    from suanli.spec.assumptions import PerformanceAssumptions
    from suanli.spec.hardware import Accelerator

DEFAULT_SEQ = 256
DEFAULT_OUTPUT = 32
METRICS = ("peak_memory_bytes", "step_s", "ttft_s", "tpot_s")


def register(commands: Commands) -> None:
    measure = commands.add_parser(
        "measure", help="run a real training step or generation of a small model here: predicted vs measured",
        description="Builds MODEL from its config with random weights (nothing is downloaded) with transformers and "
        "torch, runs warm-up steps then timed ones on the local device (training: forward, backward and a fused "
        "AdamW step; inference: prefill, then greedy decoding with the KV cache), and prints suanli's prediction for "
        "the same run beside what was measured, with signed errors (predicted / measured - 1). Peak memory comes "
        "from torch.cuda.max_memory_allocated on CUDA, and on the CPU from a tracked replay of every allocation "
        "plus the persistent tensors (the RSS high-water mark is shown as a second opinion).")
    measure.add_argument("model", metavar="MODEL", help="catalog name, config.json or model directory (small: it "
                         "runs here), e.g. tinyllama-stories15m")
    add_as_option(measure)
    measure.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where to run (default cpu)")
    measure.add_argument("--mode", choices=("train", "infer"), default="train", help="default train")
    measure.add_argument("--seq", type=positive_int, help=f"tokens per sequence (inference: the prompt) "
                         f"(default {DEFAULT_SEQ}, or the model's context when shorter)")
    measure.add_argument("--batch", type=positive_int, default=1, help="sequences (default 1)")
    measure.add_argument("--output", type=positive_int, default=DEFAULT_OUTPUT,
                         help=f"inference: tokens generated per sequence (default {DEFAULT_OUTPUT})")
    measure.add_argument("--method", choices=("full", "lora"), default="full", help="training method (default full)")
    measure.add_argument("--lora-rank", type=positive_int, default=16, help="LoRA rank on every block linear "
                         "(default 16)")
    measure.add_argument("--dtype", choices=("fp32", "bf16"), help="the model's dtype; training keeps weights, "
                         "gradients and AdamW states in it (default fp32 on cpu, bf16 on cuda)")
    measure.add_argument("--steps", type=positive_int, default=5, help="timed steps (default 5; the median is "
                         "reported)")
    measure.add_argument("--warmup", type=positive_int, default=2, help="untimed steps first (default 2; the first "
                         "training step creates AdamW's states)")
    measure.add_argument("--gpu", default="local", help="the catalog accelerator to predict for (default local: "
                         "this machine's CPU for --device cpu, its first GPU for --device cuda; see `suanli probe`)")
    measure.add_argument("--calibration", metavar="PROFILE.toml", help="predict with the efficiencies `suanli bench` "
                         "measured on this device")
    measure.add_argument("--json", action="store_true", help="print one JSON object (stable keys) instead of a table")
    measure.set_defaults(run=run_measure)


def run_measure(args: argparse.Namespace) -> int:
    from suanli.cli.render import emit_json
    from suanli.measure.predict import Device, predict
    from suanli.measure.run import available_memory_bytes, check_fits, require_torch, run_measurement
    from suanli.spec.resolve import resolve_model

    device = Device(args.device)
    require_torch(device)
    resolved = resolve_model(args.model, as_family=args.as_family)
    config = _config(args.model, resolved.origin)
    job = _job(args, resolved.spec, device)
    accelerator, where = _accelerator(args.gpu, device)
    notes = [where]
    accelerator, performance, calibrated = _calibrated(accelerator, args.calibration, job.dtype.value)
    notes.extend(calibrated)
    predicted = predict(resolved.spec, job, accelerator, performance)
    check_fits(predicted.peak_memory_bytes, available_memory_bytes(device), device)
    measured = run_measurement(config, job)
    notes.extend(_notes(job, measured))
    payload = _payload(args, resolved.spec.name, job, accelerator.key, predicted, measured, notes)
    if args.json:
        emit_json(payload)
        return 0
    print(_render(payload))
    return 0


def _config(model: str, origin: str) -> dict[str, Any]:
    """The config.json dict the model is built from: the catalog's bundled file, or the user's file/directory."""
    from pathlib import Path

    from suanli.errors import SpecError
    from suanli.spec.resolve import catalog_config, find_catalog_model, read_config_json

    entry = find_catalog_model(model)
    if origin == "catalog" and entry is not None:
        return catalog_config(entry)
    path = Path(model)
    if path.is_dir():
        path = path / "config.json"
    if origin in ("config", "directory") and path.is_file():
        return read_config_json(path)
    raise SpecError(f"measure builds the model from a config.json it can read here; {model!r} resolved from "
                    f"{origin}: pass a catalog name, a config.json or a model directory",
                    key="error.measure.needs_config", fields={"model": model, "origin": origin})


def _job(args: argparse.Namespace, spec: Any, device: Any) -> MeasureJob:
    from suanli.measure.predict import Device, DType, MeasureJob, Mode
    from suanli.spec.support import max_context_tokens
    from suanli.spec.training import Method

    mode = Mode(args.mode)
    context = max_context_tokens(spec)
    seq = args.seq or min(DEFAULT_SEQ, context)
    output = args.output if mode is Mode.INFER else 0
    if seq + output > context:
        from suanli.errors import SpecError

        longest = max(1, context - output)
        raise SpecError(f"--seq {seq} + --output {output} = {seq + output} tokens exceed {spec.name}'s context of "
                        f"{context}; use --seq {longest} or less", key="error.measure.beyond_context",
                        fields={"seq": seq, "output": output, "total": seq + output, "model": spec.name,
                                "context": context, "longest": longest})
    dtype = DType(args.dtype or ("fp32" if device is Device.CPU else "bf16"))
    return MeasureJob(device=device, mode=mode, seq=seq, batch=args.batch, output_tokens=output,
                      method=Method(args.method), dtype=dtype, steps=args.steps, warmup=args.warmup,
                      lora_rank=args.lora_rank)


def _accelerator(name: str, device: Any) -> tuple[Accelerator, str]:
    """The accelerator the prediction is for, and a note saying what it is."""
    from suanli.cli.local_gpu import is_local
    from suanli.i18n import Text
    from suanli.measure.predict import Device
    from suanli.spec.hardware import get_accelerator

    if not is_local(name):
        accelerator = get_accelerator(name)
        return accelerator, Text("note.measure.predicted_for_gpu", gpu=accelerator.key, device=device.value)
    from suanli.measure.probe import local_device, probe

    local = local_device(probe(), cpu=device is Device.CPU)
    return local.accelerator, Text("note.measure.predicted_for_local", gpu=local.accelerator.key, local=local.note)


def _calibrated(accelerator: Accelerator, path: str | None, fmt: str) -> tuple[Accelerator,
                                                                         PerformanceAssumptions | None, list[str]]:
    """With ``--calibration``: the accelerator and efficiencies fitted to the profile ``suanli bench`` wrote
    (``core.calibrate``), for the job's GEMM format ``fmt``; the profile must be this accelerator's."""
    from suanli.i18n import Text

    if path is None:
        return accelerator, None, [Text("note.measure.uncalibrated")]
    from suanli.cli.calibration_arg import fit_profile

    profile, result = fit_profile(path, accelerator, fmt=fmt)
    fit = result.assumptions
    eager = "" if fit.eager_call_overhead_s is None else Text("note.measure.eager_call",
                                                              us=fit.eager_call_overhead_s * 1e6)
    calibrated = Text("note.measure.calibrated", path=path, date=profile.date, fmt=fmt,
                      fraction=fit.gemm_peak_fraction, half_work=fit.gemm_half_work_flops,
                      op_us=fit.kernel_overhead_s * 1e6, eager=eager)
    notes: list[str] = [calibrated, *(Text("note.measure.warning", warning=w) for w in result.gemm.warnings)]
    return result.accelerator, fit, notes


def _notes(job: MeasureJob, measured: Measurement) -> list[str]:
    from suanli.i18n import Text
    from suanli.measure.predict import Device, Mode

    measured_key = "note.measure.measured_steps" if job.mode is Mode.TRAIN else "note.measure.measured_generations"
    notes: list[str] = [Text(measured_key, device=measured.device_name, torch=measured.torch_version,
                             threads=measured.threads, steps=job.steps, warmup=job.warmup)]
    notes.append(Text("note.measure.peak_cpu" if job.device is Device.CPU else "note.measure.peak_cuda"))
    if len(measured.samples_s) > 1 and min(measured.samples_s) > 0:
        spread = max(measured.samples_s) / min(measured.samples_s) - 1
        if spread > 0.2:
            notes.append(Text("note.measure.spread", spread=spread))
    return notes


def _payload(args: argparse.Namespace, model: str, job: MeasureJob, accelerator: str, predicted: Prediction,
             measured: Measurement, notes: list[str]) -> dict[str, Any]:
    from suanli.measure.predict import signed_error

    wanted = ("peak_memory_bytes", "step_s") if job.mode.value == "train" else ("peak_memory_bytes", "ttft_s",
                                                                                 "tpot_s")
    pred = {k: getattr(predicted, k) for k in wanted}
    meas = {k: getattr(measured, k) for k in wanted}
    error = {k: signed_error(pred[k], meas[k]) for k in wanted}
    pred |= {"components": predicted.components, "reserved_bytes": predicted.reserved_bytes}
    meas |= {"peak_memory_source": measured.peak_memory_source, "persistent_bytes": measured.persistent_bytes,
             "rss_delta_bytes": measured.rss_delta_bytes, "reserved_bytes": measured.reserved_bytes,
             "samples_s": list(measured.samples_s), "device_name": measured.device_name,
             "torch_version": measured.torch_version, "threads": measured.threads}
    if predicted.reserved_bytes is not None and measured.reserved_bytes:
        error["reserved_bytes"] = signed_error(predicted.reserved_bytes, measured.reserved_bytes)
    return {"command": "measure", "model": model, "device": job.device.value, "mode": job.mode.value,
            "gpu": accelerator, "calibration": args.calibration,
            "job": {"seq": job.seq, "batch": job.batch, "output_tokens": job.output_tokens,
                    "method": job.method.value, "dtype": job.dtype.value, "steps": job.steps,
                    "warmup": job.warmup},
            "predicted": pred, "measured": meas, "error": error, "notes": notes}


def _render(payload: dict[str, Any]) -> str:
    from suanli.cli.render import key_values, table
    from suanli.i18n import Text, say, t
    from suanli.units import format_bytes

    job = payload["job"]
    new = Text("value.measure.new_tokens", tokens=job["output_tokens"]) if payload["mode"] == "infer" else ""
    run = Text("value.measure.run", mode=t(f"term.measure_mode.{payload['mode']}"), device=payload["device"],
               batch=job["batch"],
               seq=job["seq"], new=new, method=t(f"term.method.{job['method']}"), dtype=job["dtype"])
    # "run" is said through its own message: the label "run" elsewhere is a job's total time
    head = key_values([("model", payload["model"]), (t("value.measure.run_label"), run),
                       ("predicted for", payload["gpu"])])
    rows = []
    for metric, error in payload["error"].items():
        shown = format_bytes if metric.endswith("_bytes") else _seconds
        pred, meas = payload["predicted"].get(metric), payload["measured"].get(metric)
        rows.append([metric.removesuffix("_bytes").removesuffix("_s").replace("_", " "),
                     "—" if pred is None else shown(pred), "—" if meas is None else shown(meas),
                     "—" if error is None else f"{error:+.1%}"])
    rss = payload["measured"].get("rss_delta_bytes")
    lines = [head, "", table(["metric", "predicted", "measured", "error"], rows, align="lrrr")]
    if rss:
        lines.append("\n" + t("value.measure.rss", rss=format_bytes(rss)))
    lines.append("")
    lines.extend(t("cli.note_line", text=say(note)) for note in payload["notes"])
    return "\n".join(lines)


def _seconds(value: float) -> str:
    return f"{value * 1e3:.3g} ms" if value < 1 else f"{value:.3g} s"
