"""Hugging Face accelerate with FSDP: an ``accelerate_config.yaml`` and the ``accelerate launch`` line.

Key names are accelerate's (huggingface/accelerate 1.16): the top-level fields of ``ClusterConfig`` in
accelerate/commands/config/config_args.py (``compute_environment``, ``distributed_type``, ``mixed_precision``,
``num_machines``, ``num_processes``, ``machine_rank``, ``main_process_ip``, ``main_process_port``, ``rdzv_backend``,
``same_network``, ``use_cpu``, ``fsdp_config``), and the ``fsdp_config`` keys that ``accelerate launch`` turns into
``FSDP_*`` variables in accelerate/utils/launch.py ``prepare_multi_gpu_env`` (``fsdp_version``,
``fsdp_sharding_strategy``, ``fsdp_offload_params``, ``fsdp_auto_wrap_policy``, ``fsdp_backward_prefetch``,
``fsdp_state_dict_type``, ``fsdp_use_orig_params``, ``fsdp_cpu_ram_efficient_loading``,
``fsdp_sync_module_states``, ``fsdp_activation_checkpointing``), read back by ``FullyShardedDataParallelPlugin``
(accelerate/utils/dataclasses.py).

``torchrun_export`` gives the same settings without ``accelerate launch``: the environment variables that
``prepare_multi_gpu_env`` would set (``ACCELERATE_USE_FSDP``, ``ACCELERATE_MIXED_PRECISION``, ``FSDP_*``), exported
before a plain ``torchrun`` line; ``Accelerator()`` reads them the same way.

ZeRO stages map onto FSDP's sharding strategies (PyTorch FSDP docs): 3 → FULL_SHARD (HYBRID_SHARD inside
``shard_group`` GPUs), 2 → SHARD_GRAD_OP, 0 → NO_SHARD. FSDP has no optimizer-only sharding (ZeRO-1).
"""

from __future__ import annotations

from typing import Any

from suanli.errors import LayoutError
from suanli.export.common import (
    LAUNCH_FILE,
    MASTER_PORT,
    Export,
    TrainingPlan,
    framework_note,
    require_data_parallel_only,
    script,
    shell_line,
    torchrun,
    train_script_word,
)
from suanli.spec.layout import Offload, Recompute
from suanli.spec.training import Framework

CONFIG_FILE = "accelerate_config.yaml"


def accelerate_export(plan: TrainingPlan) -> Export:
    """The accelerate FSDP config and launch line for ``plan`` (module docstring)."""
    require_data_parallel_only(plan, "accelerate/FSDP")
    config = accelerate_config(plan)
    words = ["accelerate", "launch", "--config_file", CONFIG_FILE]
    if plan.nodes > 1:
        words += ["--machine_rank", "${NODE_RANK:?set NODE_RANK on each node}",
                  "--main_process_ip", "${MASTER_ADDR:?set MASTER_ADDR to node 0}"]
    command = shell_line([*words, train_script_word()])
    launch = script([command], header=f"accelerate (FSDP) launch for {plan.spec.name} on {plan.layout.gpus}× "
                    f"{plan.accelerator.key} (written by suanli)\nTRAIN_SCRIPT uses accelerate.Accelerator "
                    "(or the HF Trainer), which reads the FSDP settings from this launch.")
    return Export(target="accelerate", files={CONFIG_FILE: to_yaml(config), LAUNCH_FILE: launch}, command=command,
                  notes=(*_notes(plan), *framework_note(plan, "FSDP", Framework.FSDP)))


def torchrun_export(plan: TrainingPlan) -> Export:
    """A torchrun launch of an accelerate script with FSDP set through the environment (module docstring)."""
    require_data_parallel_only(plan, "torchrun/FSDP")
    env = fsdp_environment(accelerate_config(plan))
    command = shell_line(torchrun(plan, [train_script_word()]))
    body = [f"export {name}={value}" for name, value in env.items()] + ["", command]
    launch = script(body, header=f"torchrun + FSDP (through accelerate's environment) for {plan.spec.name} on "
                    f"{plan.layout.gpus}× {plan.accelerator.key} (written by suanli)\nTRAIN_SCRIPT uses "
                    "accelerate.Accelerator (or the HF Trainer); run this on every node.")
    return Export(target="torchrun", files={LAUNCH_FILE: launch}, command=f"bash {LAUNCH_FILE}",
                  notes=(*_notes(plan), *framework_note(plan, "FSDP", Framework.FSDP)))


def fsdp_environment(config: dict[str, Any]) -> dict[str, str]:
    """The variables ``accelerate launch`` sets for this config (accelerate/utils/launch.py)."""
    env = {"ACCELERATE_USE_FSDP": "true", "ACCELERATE_MIXED_PRECISION": str(config["mixed_precision"])}
    for key, value in config["fsdp_config"].items():
        env[key.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def accelerate_config(plan: TrainingPlan) -> dict[str, Any]:
    lay = plan.layout
    if plan.dtype == "fp8":
        raise LayoutError("the accelerate FSDP export covers bf16, fp16 and fp32; for fp8 use --export megatron",
                          key="error.export.fsdp_fp8")
    if lay.offload_optimizer is not Offload.NONE and lay.offload_params is Offload.NONE:
        raise LayoutError("FSDP offloads parameters, gradients and optimizer states together (CPUOffload); for "
                          "optimizer-only offload use --export deepspeed, or add --offload-params cpu --zero 3",
                          key="error.export.fsdp_optimizer_offload")
    if Offload.NVME in (lay.offload_optimizer, lay.offload_params):
        raise LayoutError("FSDP offloads to CPU memory only; for NVMe use --export deepspeed (ZeRO-Infinity)",
                          key="error.export.fsdp_nvme")
    config: dict[str, Any] = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "FSDP",
        "mixed_precision": {"fp32": "no"}.get(plan.dtype, plan.dtype),
        "num_machines": plan.nodes,
        "num_processes": lay.gpus,
        "machine_rank": 0,
        "main_process_port": MASTER_PORT,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
        "fsdp_config": {
            "fsdp_version": 1,
            "fsdp_sharding_strategy": sharding_strategy(lay.zero, hybrid=lay.shard_group is not None),
            "fsdp_offload_params": lay.offload_params is Offload.CPU,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_backward_prefetch": "BACKWARD_PRE",
            "fsdp_state_dict_type": "SHARDED_STATE_DICT",
            "fsdp_use_orig_params": True,
            "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_sync_module_states": True,
            "fsdp_activation_checkpointing": lay.recompute is not Recompute.NONE,
        },
    }
    if plan.nodes > 1:
        config["main_process_ip"] = "127.0.0.1"  # replaced per node by --main_process_ip in launch.sh
    return config


def sharding_strategy(zero: int, *, hybrid: bool) -> str:
    """FSDP's ShardingStrategy name for a ZeRO stage (module docstring)."""
    if zero == 3:
        return "HYBRID_SHARD" if hybrid else "FULL_SHARD"
    return "SHARD_GRAD_OP" if zero in (1, 2) else "NO_SHARD"


def _notes(plan: TrainingPlan) -> list[str]:
    lay = plan.layout
    notes = []
    if lay.zero == 1:
        notes.append("FSDP has no optimizer-only sharding (ZeRO-1): SHARD_GRAD_OP also shards gradients (ZeRO-2), "
                     "which needs less memory than estimated, not more")
    if lay.shard_group is not None:
        notes.append(f"HYBRID_SHARD shards inside each node and replicates across nodes; the estimate assumed "
                     f"groups of {lay.shard_group} GPUs")
    if lay.recompute is Recompute.SELECTIVE:
        notes.append("fsdp_activation_checkpointing recomputes whole blocks (full recomputation), more than the "
                     "selective recomputation estimated")
    if lay.effective_global_batch != lay.micro_batch * lay.dp:
        notes.append(f"pass per-device batch {lay.micro_batch} and gradient accumulation "
                     f"{lay.grad_accumulation_steps} to TRAIN_SCRIPT (Accelerator(gradient_accumulation_steps=...) "
                     "or the Trainer's --per_device_train_batch_size / --gradient_accumulation_steps)")
    else:
        notes.append(f"pass per-device batch {lay.micro_batch} to TRAIN_SCRIPT (no gradient accumulation)")
    return notes


def to_yaml(data: dict[str, Any], indent: int = 0) -> str:
    """A small YAML writer for nested dicts of str/int/float/bool/None scalars (the configs need no more)."""
    lines = []
    for key, value in data.items():
        pad = " " * indent
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:\n{to_yaml(value, indent + 2)}".rstrip("\n"))
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return "\n".join(lines) + "\n"


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value)
    return text if text.replace("_", "").replace(".", "").replace("-", "").isalnum() and not text[0].isdigit() \
        else '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
