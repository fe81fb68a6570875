"""``suanli infer``: serving memory per GPU on an engine, and the batch's latency and throughput."""

from __future__ import annotations

from typing import Any

from suanli.core.inference_memory import InferenceMemory, checkpoint_weights_format, serving_memory
from suanli.core.inference_time import (
    InferenceTime,
    PhaseTime,
    ServingSetup,
    ServingThroughput,
    deployment_setup,
    max_load_throughput,
    mean_decode_time,
    prefill_time,
)
from suanli.core.serving_ops import compute_format, dequantizes
from suanli.core.vision import image_prompt_tokens, vision_encoder_time_s
from suanli.i18n import Text
from suanli.quantity import Quantity
from suanli.report import Report
from suanli.spec.assumptions import PerformanceAssumptions
from suanli.spec.engines import EnginePreset
from suanli.spec.family_match import approximation
from suanli.spec.hardware import Accelerator
from suanli.spec.model import ModelSpec
from suanli.spec.precision import NumberFormat, parse_number_format
from suanli.spec.serving import Deployment, StaticBatch
from suanli.spec.support import startup_note
from suanli.spec.uncertainty import speed_band


def inference_report(spec: ModelSpec, accelerator: Accelerator, *, engine: EnginePreset, tp: int, ep: int,
                     batch: int, prompt_tokens: int, output_tokens: int, weights_format: NumberFormat | None,
                     kv_format: NumberFormat | None, images: int = 0, image_size: tuple[int, int] | None = None,
                     tiles: int | None = None, assumptions: PerformanceAssumptions | None = None) -> Report:
    """``prompt_tokens`` include the image tokens of ``images`` images per sequence (``image_prompt_tokens``);
    their encoding before prefill adds to the time to first token."""
    deployment = Deployment(accelerator=accelerator, engine=engine, tp=tp, ep=ep, weights_format=weights_format,
                            kv_format=kv_format, assumptions=assumptions)
    memory = serving_memory(spec, deployment, StaticBatch(batch=batch, prompt_tokens=prompt_tokens,
                                                          output_tokens=output_tokens))
    setup = deployment_setup(spec, deployment)
    time = InferenceTime(engine=engine.key, accelerator=accelerator.key, tp=tp, ep=ep, batch=batch,
                         prompt_tokens=prompt_tokens, output_tokens=output_tokens,
                         prefill=prefill_time(setup, batch=batch, prompt_tokens=prompt_tokens),
                         decode=mean_decode_time(setup, batch=batch, prompt_tokens=prompt_tokens,
                                                 output_tokens=output_tokens),
                         vision_encoder_s=_vision_encoder_s(setup, batch * images, image_size, tiles))
    load = max_load_throughput(setup, prompt_tokens=prompt_tokens, output_tokens=max(output_tokens, 1))
    values: dict[str, Any] = {"gpu": accelerator.key, "gpus": tp * ep, "engine": engine.key, "tp": tp, "ep": ep,
                              "batch": batch, "prompt_tokens": prompt_tokens, "output_tokens": output_tokens,
                              "memory": _memory_values(memory), **_time_values(time, load)}
    values["memory"]["weights_format_source"] = weights_origin(spec, engine, weights_format)
    if images:
        height, width = image_size or (None, None)
        values["images"] = {"images_per_sequence": images,
                            "prompt_tokens_per_image": image_prompt_tokens(spec, images=1, height=height,
                                                                           width=width, tiles=tiles),
                            "vision_encoder_s": time.vision_encoder_s}
    notes: list[str] = []
    headline = ""
    if (startup := startup_note(spec, engine, memory.kv_capacity_tokens)) is not None:
        notes.append(startup)
    if not memory.fits:
        notes.append(_advice(memory))
        headline = Text("headline.infer.does_not_fit", total_gib=memory.total_bytes / 2**30, advice=_advice(memory))
    values["latency"]["runnable"] = memory.fits
    return Report(command="infer", model=spec.name, values=values, approximate=approximation(spec), headline=headline,
                  explanations=_explain(memory) + _explain_time(time, setup), notes=tuple(notes))


def _vision_encoder_s(setup: ServingSetup, images: int, image_size: tuple[int, int] | None,
                      tiles: int | None) -> float:
    """The vision tower's roofline time for the batch's images, in 16 bits (quantized checkpoints keep the
    tower unquantized), sharded over tp."""
    if not images or setup.spec.vision is None:
        return 0.0
    height, width = image_size or (None, None)
    fmt = compute_format(parse_number_format("bf16"), setup.accelerator)
    return vision_encoder_time_s(setup.spec.vision, setup.accelerator, setup.assumptions, compute_format=fmt,
                                 images=images, height=height, width=width, tiles=tiles, tp=setup.tp)


def weights_origin(spec: ModelSpec, engine: EnginePreset, asked: NumberFormat | None) -> str:
    """Where the weight format came from: "--quant", the checkpoint's "quantization_config" or "torch_dtype"."""
    if asked is not None:
        return "--quant"
    q = spec.quantization
    return "quantization_config" if q is not None and checkpoint_weights_format(spec, engine) == q.weights \
        else "torch_dtype"


def _memory_values(m: InferenceMemory) -> dict[str, Any]:
    per_gpu = {"weights_bytes": m.weights_bytes, "kv_cache_bytes": m.kv_cache_bytes,
               "activations_bytes": m.activation_bytes, "overhead_bytes": m.overhead_bytes,
               "total_bytes": m.total_bytes}
    if m.ssm_state_bytes:  # hybrid / state-space models: the per-request cache split by form
        per_gpu["kv_cache_attention_bytes"] = m.kv_cache_attention_bytes
        per_gpu["ssm_state_bytes"] = m.ssm_state_bytes
    return {"per_gpu": per_gpu, "fits": m.fits, "kv_capacity_tokens": m.kv_capacity_tokens,
            "kv_budget_bytes": m.kv_budget_bytes, "kv_bytes_per_token": m.kv_bytes_per_token,
            "headroom_bytes": m.headroom_bytes, "reserved_bytes": m.reserved_bytes, "visible_bytes": m.visible_bytes,
            "memory_fraction": m.memory_fraction, "weights_format": m.weights.format_key, "kv_format": m.kv_format,
            "overheads_bytes": dict(m.overheads), "host_bytes": m.host_bytes}


def _phase_values(p: PhaseTime) -> dict[str, Any]:
    return {"time_s": p.time_s, "bound": p.bound, "compute_s": p.compute_s, "weights_s": p.weights_s,
            "kv_s": p.kv_s, "activations_s": p.activations_s, "comm_s": p.comm_s, "overhead_s": p.overhead_s,
            "flops": p.flops, "weight_bytes": p.weight_bytes, "kv_bytes": p.kv_bytes,
            "activation_bytes": p.activation_bytes}


def _time_values(t: InferenceTime, load: ServingThroughput) -> dict[str, Any]:
    max_load: dict[str, Any] = {"concurrency": load.concurrency, "output_tokens_per_s": load.output_tokens_per_s,
                "requests_per_s": load.requests_per_s, "total_tokens_per_s": load.total_tokens_per_s,
                "tpot_s": load.tpot_s, "prefill_s_per_request": load.prefill_s_per_request}
    latency, rate = speed_band("inference_latency"), speed_band("inference_throughput")
    max_load["output_tokens_per_s_range"] = rate.throughput_range(load.output_tokens_per_s)
    return {"latency": {"ttft_s": t.ttft_s, "tpot_s": t.tpot_s, "e2e_s": t.e2e_s,
                        "ttft_s_range": latency.time_range(t.ttft_s), "tpot_s_range": latency.time_range(t.tpot_s),
                        "e2e_s_range": latency.time_range(t.e2e_s), "band_cases": latency.cases},
            "throughput": {"output_tokens_per_s": t.output_tokens_per_s, "requests_per_s": t.requests_per_s,
                           "total_tokens_per_s": t.total_tokens_per_s,
                           "output_tokens_per_s_range": rate.throughput_range(t.output_tokens_per_s),
                           "band_cases": rate.cases, "max_load": max_load},
            "phases": {"prefill": _phase_values(t.prefill), "decode": _phase_values(t.decode)}}


def _advice(m: InferenceMemory) -> str:
    if m.kv_budget_bytes <= 0:
        return Text("advice.infer.no_kv_room")
    return Text("advice.infer.kv_short", need_gib=m.kv_cache_bytes / 2**30, pool_gib=m.kv_budget_bytes / 2**30,
                tokens=m.kv_capacity_tokens)


def _explain(m: InferenceMemory) -> tuple[Quantity, ...]:
    parts = [Quantity.input(value, name, "B") for name, value in
             (("weights", m.weights_bytes), ("kv_cache", m.kv_cache_bytes), ("activations", m.activation_bytes),
              ("overheads", m.overhead_bytes))]
    total = sum(parts[1:], parts[0]).named("total_bytes_per_gpu", "B",
                                           source=Text("value.source.engine_memory", engine=m.engine))
    kv = (Quantity.input(m.batch, "batch") * Quantity.input(m.tokens_per_seq, "tokens_per_seq")
          * Quantity.input(m.kv_bytes_per_token, "kv_bytes_per_token", "B")).named("kv_cache_bytes_unpaged", "B")
    return (total, kv)


def _memory_term(phase: str, part: str, seconds: float, nbytes: float, bandwidth: Quantity) -> Quantity:
    """``bytes / bandwidth`` when that reproduces the booked time (everything on the GPU), else the time."""
    traced = Quantity.input(nbytes, f"{phase}_{part}_bytes_read", "B") / bandwidth
    if seconds and abs(traced.value / seconds - 1) < 1e-9:
        return traced.named(f"{phase}_{part}_s", "s")
    return Quantity.input(seconds, f"{phase}_{part}_s", "s")


def _explain_phase(phase: str, p: PhaseTime, setup: ServingSetup) -> Quantity:
    a, acc = setup.assumptions, setup.accelerator
    bandwidth = (Quantity.input(acc.memory_bandwidth_bytes_per_s, "memory_bandwidth", "B/s", source=acc.name)
                 * Quantity.input(a.decode_bandwidth_fraction, "decode_bandwidth_fraction"))
    weight_bw = bandwidth
    if dequantizes(setup.weights_format, acc):
        weight_bw = bandwidth * Quantity.input(a.quantized_weight_bandwidth_fraction,
                                               "quantized_weight_bandwidth_fraction")
    terms = [_memory_term(phase, "weights", p.weights_s, p.weight_bytes, weight_bw),
             _memory_term(phase, "kv", p.kv_s, p.kv_bytes, bandwidth),
             _memory_term(phase, "activations", p.activations_s, p.activation_bytes, bandwidth),
             Quantity.input(p.compute_s, f"{phase}_compute_s", "s",
                            source=Text("value.source.compute_bound_kernels")),
             Quantity.input(p.comm_s, f"{phase}_comm_s", "s", source=Text("value.source.tp_all_reduces")),
             Quantity.input(p.overhead_s, f"{phase}_overhead_s", "s", source=Text("value.source.launches"))]
    kept = [t for t in terms if t.value] or terms[:1]
    return sum(kept[1:], kept[0])


def _explain_time(t: InferenceTime, setup: ServingSetup) -> tuple[Quantity, ...]:
    ttft = _explain_phase("prefill", t.prefill, setup).named(
        "ttft_s", "s", source=Text("value.source.prefill", bound=Text(f"term.bound.{t.prefill.bound}")))
    tpot = _explain_phase("decode", t.decode, setup).named(
        "tpot_s", "s", source=Text("value.source.decode", bound=Text(f"term.bound.{t.decode.bound}")))
    steps = Quantity.input(max(t.output_tokens - 1, 0), "decode_steps", source="output_tokens - 1")
    e2e = (Quantity.input(t.ttft_s, "ttft_s", "s") + steps * Quantity.input(t.tpot_s, "tpot_s", "s")).named(
        "e2e_s", "s")
    rate = (Quantity.input(t.batch, "batch") * Quantity.input(t.output_tokens, "output_tokens")
            / Quantity.input(t.e2e_s, "e2e_s", "s")).named("output_tokens_per_s", "tokens/s",
                                                           source=Text("value.source.static_batch"))
    return (ttft, tpot, e2e, rate)
