"""``suanli train``: the training job's memory per GPU, and its step time, throughput and MFU."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from suanli.core.cost import RunCost, checkpoint, run_cost
from suanli.core.frozen_base import frozen_base
from suanli.core.memory import TrainingMemory, device_memory_assumptions, training_memory
from suanli.core.model_states import adapter_state_bytes, state_bytes
from suanli.core.params import count_params
from suanli.core.peft import trainable_params
from suanli.core.rl import RlSetup, distillation_memory, rl_memory
from suanli.core.training_time import TrainingTime, training_time
from suanli.errors import SpecError
from suanli.i18n import Joined, Text
from suanli.quantity import Quantity
from suanli.report import Report
from suanli.search.advice import Suggestion, fit_suggestions
from suanli.search.fit import usable_memory_bytes
from suanli.spec.assumptions import CostAssumptions, PerformanceAssumptions
from suanli.spec.family_match import approximation
from suanli.spec.hardware import Accelerator, PriceKind
from suanli.spec.layout import Layout
from suanli.spec.model import ModelSpec
from suanli.spec.training import TrainingJob
from suanli.spec.uncertainty import speed_band
from suanli.units import format_bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class CostRequest:
    """How to price a run: the catalog's cheapest price of ``price_kind`` or a user price per GPU-hour,
    energy and CO2 assumptions, and optionally interruptions every ``mtbi_s`` (spot pre-emption or hardware
    failures) with checkpoints at Daly's interval."""

    price_kind: PriceKind = "on-demand"
    usd_per_gpu_hour: float | None = None
    power_per_gpu_w: float | None = None
    mtbi_s: float | None = None
    assumptions: CostAssumptions = field(default_factory=CostAssumptions)


def training_report(spec: ModelSpec, job: TrainingJob, layout: Layout, accelerator: Accelerator, *,
                    rl: RlSetup | None = None, teacher: ModelSpec | None = None,
                    tokens: float | None = None, cost: CostRequest | None = None,
                    assumptions: PerformanceAssumptions | None = None) -> Report:
    """Memory per GPU; for single-model training also the step time, throughput and MFU, and with ``tokens``
    the wall time of a run of that many training tokens."""
    capacity = usable_memory_bytes(accelerator)
    if rl is not None or teacher is not None:
        return _multi_model_report(spec, job, layout, accelerator, rl=rl, teacher=teacher)
    memory = training_memory(spec, job, layout, capacity_bytes=capacity,
                             assumptions=device_memory_assumptions(accelerator))
    time = training_time(spec, job, layout, accelerator, assumptions=assumptions)
    values: dict[str, Any] = {
        "gpu": accelerator.key,
        "gpus": layout.gpus,
        "layout": _layout_values(layout),
        "job": {"method": job.method.value, "optimizer": job.optimizer.value, "precision": job.precision.value,
                "seq": job.seq, "trainable_params": whole_model_trainable_params(spec, job),
                "trainable_params_per_gpu": memory.trainable_params, "framework": job.framework.value},
        "memory": _memory_values(memory),
        "time": time_values(time, tokens),
    }
    notes: list[str] = []
    values["time"]["runnable"] = memory.fits  # False: the time of a job that cannot run as given
    if tokens is not None:
        run = _run_cost(spec, job, layout, accelerator, values["time"]["total_s"], cost or CostRequest())
        values["cost"] = {**run.to_dict(), "checkpoint_adapter_only": job.is_peft, "runnable": memory.fits}
        notes.extend(run.notes)
    base = frozen_base(spec, job)
    if base is not None:
        values["job"]["base_weights_format"] = "bf16" if base.dequantized else base.weights.key
        notes.append(Text("note.train.base_dequantized" if base.dequantized else "note.train.base_kept",
                          format=base.weights.key))
    headline = ""
    if not memory.fits:
        suggestions = fit_suggestions(spec, job, layout, capacity_bytes=capacity,
                                      assumptions=device_memory_assumptions(accelerator),
                                      host_offload=accelerator.kind != "cpu")
        values["memory"]["suggestions"] = [
            {"change": s.change, "total_bytes": s.total_bytes, "headroom_bytes": s.headroom_bytes, "gpus": s.gpus,
             **({"layout": _layout_values(s.layout)} if s.layout else {}),
             **({"method": s.method.value} if s.method else {})}
            for s in suggestions]
        notes.append(Text("note.train.does_not_fit", changes=Joined("join.or_clauses", [s.change for s in suggestions]))
                     if suggestions else Text("note.train.does_not_fit_no_change"))
        notes.append(Text("note.train.not_runnable"))
        headline = does_not_fit_headline(memory.total_bytes, capacity, suggestions[0] if suggestions else None)
    return Report(command="train", model=spec.name, values=values, approximate=approximation(spec), headline=headline,
                  explanations=(*_explain(memory), *explain_time(time, layout, tokens)), notes=tuple(notes))


def does_not_fit_headline(total_bytes: float, capacity_bytes: float, nearest: Suggestion | None) -> str:
    """``DOES NOT FIT: 174 GiB per GPU, 79.6 GiB available; nearest layout that fits: ZeRO-1 … (76 GiB)``."""
    total, capacity = format_bytes(total_bytes), format_bytes(capacity_bytes)
    if nearest is None:
        return Text("headline.train.none", total=total, capacity=capacity)
    return Text("headline.train.nearest", total=total, capacity=capacity, change=nearest.change,
                fit_total=format_bytes(nearest.total_bytes))


def whole_model_trainable_params(spec: ModelSpec, job: TrainingJob) -> int:
    """Parameters the whole job trains: every one for full training, the method's own for PEFT
    (``core.peft.trainable_params``); the busiest GPU's share (its pipeline stage, tp/ep slice) is reported
    separately as ``trainable_params_per_gpu``."""
    return trainable_params(spec, job).trainable if job.is_peft else count_params(spec).total


def _run_cost(spec: ModelSpec, job: TrainingJob, layout: Layout, accelerator: Accelerator, wall_s: float,
              request: CostRequest) -> RunCost:
    """GPU-hours, price, energy and CO2 of the run; checkpoints sized from the job's model states. Without a
    catalog price of the asked kind and no --price, the run is left unpriced (with a note) rather than failing."""
    params = whole_model_trainable_params(spec, job)  # PEFT saves its adapters only (save_pretrained)
    states = state_bytes(job.precision, job.optimizer, spec) if not job.is_peft else adapter_state_bytes(job.optimizer)
    saved = checkpoint(params=params, gpus=layout.gpus, states=states, assumptions=request.assumptions)
    price_kind: PriceKind | None = request.price_kind
    if request.usd_per_gpu_hour is None and not any(p.kind == price_kind for p in accelerator.prices):
        price_kind = None
    run = run_cost(accelerator, layout.gpus, wall_s, price_kind=price_kind, usd_per_gpu_hour=request.usd_per_gpu_hour,
                   power_per_gpu_w=request.power_per_gpu_w, checkpoint=saved, mtbi_s=request.mtbi_s,
                   assumptions=request.assumptions)
    if price_kind is None and request.usd_per_gpu_hour is None:
        kinds = sorted({p.kind for p in accelerator.prices})
        listed = Joined("join.comma", [Text(f"term.price_kind.{k}") for k in kinds]) if kinds else Text("value.none")
        kind = Text(f"term.price_kind.{request.price_kind}")
        run = replace(run, notes=(*run.notes, Text("note.train.no_price", kind=kind, gpu=accelerator.name,
                                                   listed=listed)))
    return run


def _multi_model_report(spec: ModelSpec, job: TrainingJob, layout: Layout, accelerator: Accelerator, *,
                        rl: RlSetup | None, teacher: ModelSpec | None) -> Report:
    """RL fine-tuning or distillation: the trained model's memory plus the other resident models."""
    capacity = usable_memory_bytes(accelerator)
    if rl is not None and teacher is not None:
        raise SpecError("give either --rl or --teacher, not both",
                        key="error.cli.rl_and_teacher")
    if rl is not None:
        multi = rl_memory(spec, job, layout, rl, capacity_bytes=capacity)
        seq = rl.seq
        kind: dict[str, Any] = {"rl": rl.algorithm.value, "prompt_tokens": rl.prompt_tokens,
                                "response_tokens": rl.response_tokens, "prompts_per_gpu": rl.prompts_per_gpu,
                                "group_size": rl.group_size}
    elif teacher is not None:
        multi = distillation_memory(spec, teacher, job, layout, capacity_bytes=capacity)
        seq, kind = job.seq, {"teacher": teacher.name}
    else:
        raise SpecError("a multi-model job needs --rl or --teacher",
                        key="error.cli.multi_model")
    memory = _memory_values(multi.trained)
    per_gpu = memory["per_gpu"]
    per_gpu.pop("total_bytes")
    per_gpu.update(multi.extra_bytes)
    per_gpu["rollout_kv_beyond_activations_bytes"] = multi.phase_swap_bytes
    per_gpu["total_bytes"] = multi.total_bytes
    memory.update(fits=multi.fits, headroom_bytes=multi.headroom_bytes)
    values: dict[str, Any] = {
        "gpu": accelerator.key, "gpus": layout.gpus, "layout": _layout_values(layout),
        "job": {"method": job.method.value, "optimizer": job.optimizer.value, "precision": job.precision.value,
                "seq": seq, "trainable_params": whole_model_trainable_params(spec, job),
                "trainable_params_per_gpu": multi.trained.trainable_params, **kind},
        "memory": memory,
    }
    notes = () if multi.fits else (Text("note.train.multi_model_does_not_fit"),)
    headline = "" if multi.fits else Text("headline.train.multi_model", total=format_bytes(multi.total_bytes),
                                          capacity=format_bytes(capacity))
    return Report(command="train", model=spec.name, values=values, explanations=_explain(multi.trained), notes=notes,
                  approximate=approximation(spec), headline=headline)


def _layout_values(layout: Layout) -> dict[str, Any]:
    return {"tp": layout.tp, "pp": layout.pp, "dp": layout.dp, "cp": layout.cp, "ep": layout.ep, "vp": layout.vp,
            "sp": layout.sp, "zero": layout.zero, "micro_batch": layout.micro_batch,
            "global_batch": layout.effective_global_batch, "grad_accumulation_steps": layout.grad_accumulation_steps,
            "recompute": layout.recompute.value, "schedule": layout.schedule.value,
            "offload_optimizer": layout.offload_optimizer.value, "offload_params": layout.offload_params.value}


def _memory_values(memory: TrainingMemory) -> dict[str, Any]:
    per_gpu = {
        "weights_bytes": memory.weights_bytes,
        "gradients_bytes": memory.gradients_bytes,
        "master_weights_bytes": memory.master_weights_bytes,
        "optimizer_bytes": memory.optimizer_bytes,
        "activations_bytes": memory.activations_bytes,
        "workspace_bytes": memory.workspace_bytes,
        "comm_buffers_bytes": memory.comm_buffers_bytes,
        "cuda_context_bytes": memory.cuda_context_bytes,
        "fragmentation_bytes": memory.fragmentation_bytes,
        "tied_grad_sum_bytes": memory.tied_grad_sum_bytes,
        # negative: gradients not live at the peak; 0.0 - x, not -x, so that nothing overlapping reads 0 B, not -0 B
        "gradient_overlap_bytes": 0.0 - memory.gradient_overlap_bytes,
        "total_bytes": memory.total_bytes,
    }
    return {"per_gpu": per_gpu, "fits": memory.fits, "capacity_bytes": memory.capacity_bytes,
            "headroom_bytes": memory.headroom_bytes, "stage": memory.stage,
            "micro_batches_in_flight": memory.micro_batches_in_flight,
            "host_bytes": memory.host_bytes, "nvme_bytes": memory.nvme_bytes}


def _explain(memory: TrainingMemory) -> tuple[Quantity, ...]:
    parts = [Quantity.input(getattr(memory, f"{name}_bytes"), name, "B")
             for name in ("weights", "gradients", "master_weights", "optimizer", "activations", "workspace",
                          "comm_buffers", "cuda_context", "fragmentation")]
    total = sum(parts[1:], parts[0]).named("total_bytes_per_gpu", "B",
                                           source=Text("value.source.busiest_stage", stage=memory.stage))
    return (total,)


def time_values(time: TrainingTime, tokens: float | None = None) -> dict[str, Any]:
    """The ``time`` section: DESIGN §5's keys, the breakdown of one step, and with ``tokens`` the run."""
    b = time.breakdown
    values: dict[str, Any] = {
        "step_s": time.step_s,
        "tokens_per_s": time.tokens_per_s,
        "tokens_per_s_per_gpu": time.tokens_per_s / time.gpus,
        "samples_per_s": time.samples_per_s,
        "mfu": time.mfu,
        "hfu": time.hfu,
        "tflops_per_gpu": time.tflops_per_gpu,
        "model_flops_per_step": time.model_flops_per_step,
        "hardware_flops_per_step": time.hardware_flops_per_step,
        "compute_format": time.compute_format,
        "peak_flops_per_gpu": time.peak_flops_per_gpu,
        "tokens_per_step": time.tokens_per_step,
        "micro_batches_per_step": time.micro_batches,
        "slowest_stage": time.stage,
        "breakdown": {"compute_s": b.compute_s, "recompute_s": b.recompute_s, "tp_comm_s": b.tp_comm_s,
                      "cp_comm_exposed_s": b.cp_comm_exposed_s, "ep_comm_s": b.ep_comm_s, "pp_comm_s": b.pp_comm_s,
                      "bubble_s": b.bubble_s, "dp_comm_exposed_s": b.dp_comm_exposed_s,
                      "optimizer_s": b.optimizer_s},
    }
    band = speed_band("training")
    values.update(step_s_range=band.time_range(time.step_s),
                  tokens_per_s_range=band.throughput_range(time.tokens_per_s),
                  mfu_range=band.throughput_range(time.mfu), band_cases=band.cases)
    if tokens is not None:
        values["tokens"] = tokens
        values["steps"] = tokens / time.tokens_per_step
        values["total_s"] = tokens / time.tokens_per_s
        values["total_s_range"] = band.time_range(values["total_s"])
    return values


_SOURCES = ("compute_s", "recompute_s", "tp_comm_s", "cp_comm_exposed_s", "ep_comm_s", "pp_comm_s",
            "dp_comm_exposed_s", "optimizer_s")  # each term's source: the message value.source.<term>


def explain_time(time: TrainingTime, layout: Layout, tokens: float | None = None) -> tuple[Quantity, ...]:
    """Each term of the step with its source, the step as their sum (the bubble by its formula), then
    throughput, TFLOP/s per GPU and MFU from the step."""
    b = time.breakdown
    terms = [Quantity.input(getattr(b, name), name, "s", Text(f"value.source.{name}")) for name in _SOURCES
             if getattr(b, name) > 0 or name == "compute_s"]
    if layout.pp > 1:
        m = Quantity.input(time.micro_batches, "micro_batches")
        stage = Quantity.input(time.mean_stage_micro_batch_s, "mean_stage_micro_batch_s", "s")
        pp, vp = Quantity.input(layout.pp, "pp"), Quantity.input(layout.vp, "vp")
        terms.append(((pp - 1) / (m * vp) * (m * stage)).named(
            "bubble_s", "s", source=Text("value.source.bubble_s")))
    step = sum(terms[1:], terms[0]).named("step_s", "s", source=Text("value.source.step_s"))
    step_leaf = Quantity.input(step.value, "step_s", "s")
    gpus = Quantity.input(time.gpus, "gpus")
    flops = Quantity.input(time.model_flops_per_step, "model_flops_per_step", "FLOP",
                           Text("value.source.model_flops_per_step"))
    peak = Quantity.input(time.peak_flops_per_gpu, f"peak_{time.compute_format}_flops_per_s", "FLOP/s",
                          Text("value.source.catalog"))
    tokens_per_s = (Quantity.input(time.tokens_per_step, "tokens_per_step") / step_leaf).named(
        "tokens_per_s", "tokens/s", source=Text("value.source.tokens_per_s"))
    out = [*(q for q in terms if not q.op), step, tokens_per_s,
           (flops / step_leaf / gpus / 1e12).named("tflops_per_gpu", "TFLOP/s",
                                                   source=Text("value.source.tflops_per_gpu")),
           (flops / (step_leaf * peak * gpus)).named("mfu", source=Text("value.source.mfu"))]
    if tokens is not None:
        out.append((Quantity.input(tokens, "tokens") / Quantity.input(tokens_per_s.value, "tokens_per_s", "tokens/s"))
                   .named("total_s", "s", source="tokens / tokens_per_s"))
    return tuple(out)
