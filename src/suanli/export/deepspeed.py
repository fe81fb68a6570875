"""DeepSpeed: a ``ds_config.json`` and the ``deepspeed`` launcher line for a data-parallel ZeRO layout.

Key names are DeepSpeed's (deepspeedai/DeepSpeed 0.19.8): ``train_batch_size``,
``train_micro_batch_size_per_gpu``, ``gradient_accumulation_steps``, ``bf16``/``fp16`` and ``optimizer`` in
deepspeed/runtime/config.py and constants.py; ``zero_optimization.stage``, ``offload_optimizer``, ``offload_param``
(``device`` cpu|nvme, ``nvme_path``, ``pin_memory``), ``overlap_comm`` and ``contiguous_gradients`` in
deepspeed/runtime/zero/config.py and zero/offload_config.py; ``activation_checkpointing`` in
deepspeed/runtime/activation_checkpointing/config.py. DeepSpeed checks
``train_batch_size = micro × accumulation × data-parallel ranks`` (config.py ``_batch_assertion``).

The launcher is the ``deepspeed`` command (deepspeed/launcher/runner.py: ``--num_nodes``, ``--num_gpus``,
``--hostfile``), which passes ``--deepspeed --deepspeed_config ds_config.json`` on to the training script.
"""

from __future__ import annotations

import json
from typing import Any

from suanli.errors import LayoutError
from suanli.export.common import (
    LAUNCH_FILE,
    Export,
    TrainingPlan,
    framework_note,
    require_data_parallel_only,
    script,
    shell_line,
    train_script_word,
)
from suanli.spec.layout import Offload, Recompute
from suanli.spec.training import Framework, Optimizer

CONFIG_FILE = "ds_config.json"
NVME_PATH = "/local_nvme"  # DeepSpeed's own examples' mount point for ZeRO-Infinity; the user edits it


def deepspeed_export(plan: TrainingPlan) -> Export:
    """The DeepSpeed config and launch line for ``plan`` (module docstring)."""
    require_data_parallel_only(plan, "DeepSpeed")
    if plan.layout.shard_group is not None:
        raise LayoutError("hybrid sharding (ZeRO-3 inside groups) has no DeepSpeed 0.19 setting (MiCS was removed); "
                          "use --export accelerate (HYBRID_SHARD) or full sharding",
                          key="error.export.deepspeed_hybrid")
    if plan.dtype == "fp8":
        raise LayoutError("DeepSpeed's config has no fp8 training switch (that is Transformer Engine's); "
                          "use --export megatron with --fp8-format, or bf16", key="error.export.deepspeed_fp8")
    config = deepspeed_config(plan)
    words = ["deepspeed", "--num_gpus", str(plan.procs_per_node), "--num_nodes", str(plan.nodes)]
    if plan.nodes > 1:
        words += ["--hostfile", "${HOSTFILE:?set HOSTFILE to a DeepSpeed hostfile of the nodes}"]
    words += [train_script_word(), "--deepspeed", "--deepspeed_config", CONFIG_FILE]
    command = shell_line(words)
    notes = [*_notes(plan), *framework_note(plan, "DeepSpeed", Framework.DEEPSPEED)]
    launch = script([command], header=f"DeepSpeed launch for {plan.spec.name} on {plan.layout.gpus}× "
                    f"{plan.accelerator.key} (written by suanli)\nTRAIN_SCRIPT must call deepspeed.initialize("
                    "args=..., model=...) or use the HF Trainer's --deepspeed option.")
    return Export(target="deepspeed", files={CONFIG_FILE: json.dumps(config, indent=2) + "\n", LAUNCH_FILE: launch},
                  command=command, notes=tuple(notes))


def deepspeed_config(plan: TrainingPlan) -> dict[str, Any]:
    """The JSON config as a dict (keys as in the module docstring)."""
    lay = plan.layout
    config: dict[str, Any] = {
        "train_batch_size": lay.effective_global_batch,
        "train_micro_batch_size_per_gpu": lay.micro_batch,
        "gradient_accumulation_steps": lay.grad_accumulation_steps,
        "zero_optimization": _zero(plan),
        "gradient_clipping": 1.0,
    }
    if plan.dtype == "bf16":
        config["bf16"] = {"enabled": True}
    elif plan.dtype == "fp16":
        config["fp16"] = {"enabled": True, "loss_scale": 0}  # 0: dynamic loss scaling
    if plan.job.optimizer in (Optimizer.ADAMW, Optimizer.ADAMW_8BIT, Optimizer.PAGED_ADAMW_8BIT) \
            and lay.offload_optimizer is not Offload.NONE:  # ZeRO-Offload builds its own CPU Adam from this section
        config["optimizer"] = {"type": "AdamW", "params": {"lr": 1e-4, "betas": [0.9, 0.95], "eps": 1e-8,
                                                           "weight_decay": 0.1}}
    if lay.recompute is not Recompute.NONE:
        config["activation_checkpointing"] = {"partition_activations": False, "cpu_checkpointing": False,
                                              "contiguous_memory_optimization": False,
                                              "synchronize_checkpoint_boundary": False}
    return config


def _zero(plan: TrainingPlan) -> dict[str, Any]:
    lay = plan.layout
    zero: dict[str, Any] = {"stage": lay.zero}
    if lay.zero >= 1:
        zero.update(overlap_comm=True, contiguous_gradients=True)
    if lay.offload_optimizer is not Offload.NONE:
        if lay.zero == 0:
            raise LayoutError("optimizer offload needs ZeRO stage 1, 2 or 3 in DeepSpeed; use --zero 1 or more",
                              key="error.export.deepspeed_offload_zero0")
        zero["offload_optimizer"] = _offload(lay.offload_optimizer)
    if lay.offload_params is not Offload.NONE:
        zero["offload_param"] = _offload(lay.offload_params)
    return zero


def _offload(where: Offload) -> dict[str, Any]:
    out: dict[str, Any] = {"device": where.value, "pin_memory": True}
    if where is Offload.NVME:
        out["nvme_path"] = NVME_PATH
    return out


def _notes(plan: TrainingPlan) -> list[str]:
    lay = plan.layout
    notes = []
    if lay.recompute is Recompute.FULL:
        notes.append("activation recomputation: call model.gradient_checkpointing_enable() in TRAIN_SCRIPT (HF "
                     "models); the activation_checkpointing section configures deepspeed.checkpointing for "
                     "models that use it")
    elif lay.recompute is Recompute.SELECTIVE:
        notes.append("selective recomputation (attention core only) has no DeepSpeed switch; FlashAttention "
                     "already avoids storing the scores, which is most of what it saves")
    if "optimizer" in dict(deepspeed_config(plan)):
        notes.append("ZeRO-Offload builds DeepSpeedCPUAdam from the optimizer section: set your lr there")
    if any(o is Offload.NVME for o in (lay.offload_optimizer, lay.offload_params)):
        notes.append(f"NVMe offload writes to {NVME_PATH}: point nvme_path at a local NVMe mount")
    if plan.job.is_peft:
        notes.append(f"{plan.job.method.value}: wrap the model with PEFT in TRAIN_SCRIPT before deepspeed.initialize")
    return notes
