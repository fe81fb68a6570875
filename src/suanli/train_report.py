"""``suanli train``: the training job's memory per GPU (time and cost come with the time model)."""

from __future__ import annotations

from typing import Any

from suanli.core.memory import TrainingMemory, training_memory
from suanli.core.rl import RlSetup, distillation_memory, rl_memory
from suanli.errors import SpecError
from suanli.quantity import Quantity
from suanli.report import Report
from suanli.search.advice import fit_suggestions
from suanli.search.fit import usable_memory_bytes
from suanli.spec.hardware import Accelerator
from suanli.spec.layout import Layout
from suanli.spec.model import ModelSpec
from suanli.spec.training import TrainingJob


def training_report(spec: ModelSpec, job: TrainingJob, layout: Layout, accelerator: Accelerator, *,
                    rl: RlSetup | None = None, teacher: ModelSpec | None = None) -> Report:
    capacity = usable_memory_bytes(accelerator)
    if rl is not None or teacher is not None:
        return _multi_model_report(spec, job, layout, accelerator, rl=rl, teacher=teacher)
    memory = training_memory(spec, job, layout, capacity_bytes=capacity)
    values: dict[str, Any] = {
        "gpu": accelerator.key,
        "gpus": layout.gpus,
        "layout": _layout_values(layout),
        "job": {"method": job.method.value, "optimizer": job.optimizer.value, "precision": job.precision.value,
                "seq": job.seq, "trainable_params": memory.trainable_params},
        "memory": _memory_values(memory),
    }
    notes: list[str] = []
    if not memory.fits:
        suggestions = fit_suggestions(spec, job, layout, capacity_bytes=capacity)
        values["memory"]["suggestions"] = [
            {"change": s.change, "total_bytes": s.total_bytes, "headroom_bytes": s.headroom_bytes, "gpus": s.gpus}
            for s in suggestions]
        notes.append("does not fit; " + ("; or ".join(s.change for s in suggestions)
                                         if suggestions else "no single change tried makes it fit") + " would")
    return Report(command="train", model=spec.name, values=values, explanations=_explain(memory),
                  notes=tuple(notes))


def _multi_model_report(spec: ModelSpec, job: TrainingJob, layout: Layout, accelerator: Accelerator, *,
                        rl: RlSetup | None, teacher: ModelSpec | None) -> Report:
    """RL fine-tuning or distillation: the trained model's memory plus the other resident models."""
    capacity = usable_memory_bytes(accelerator)
    if rl is not None and teacher is not None:
        raise SpecError("give either --rl or --teacher, not both")
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
        raise SpecError("a multi-model job needs --rl or --teacher")
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
                "seq": seq, "trainable_params": multi.trained.trainable_params, **kind},
        "memory": memory,
    }
    notes = () if multi.fits else ("does not fit; shard with --zero 3 over more GPUs, use LoRA for the actor, "
                                   "or lower the rollout batch",)
    return Report(command="train", model=spec.name, values=values, explanations=_explain(multi.trained), notes=notes)


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
                                           source=f"pipeline stage {memory.stage}, the most loaded")
    return (total,)
