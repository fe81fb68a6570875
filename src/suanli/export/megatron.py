"""Megatron-LM / Megatron-Core: the arguments of ``pretrain_gpt.py`` for a layout, and the torchrun line.

Argument names are Megatron-LM's (NVIDIA/Megatron-LM at d98e8a6, 2026-08-22), registered in
megatron/training/arguments.py, many through ``ArgumentGroupFactory(TransformerConfig)`` from
megatron/core/transformer/transformer_config.py and model_parallel_config.py:
``--tensor-model-parallel-size``, ``--pipeline-model-parallel-size``, ``--num-layers-per-virtual-pipeline-stage``,
``--context-parallel-size``, ``--expert-model-parallel-size``, ``--sequence-parallel``,
``--use-distributed-optimizer``, ``--recompute-granularity {full,selective}``, ``--recompute-method
{uniform,block}``, ``--recompute-num-layers``, ``--micro-batch-size``, ``--global-batch-size``, ``--seq-length``,
``--bf16``/``--fp16``, ``--fp8-format {e4m3,hybrid}``, ``--optimizer-cpu-offload`` and the model shape
(``--num-layers``, ``--hidden-size``, ``--ffn-hidden-size``, ``--num-attention-heads``, ``--group-query-attention``,
``--num-query-groups``, ``--kv-channels``, ``--num-experts``, ``--moe-router-topk``, ``--moe-ffn-hidden-size``,
``--normalization``, ``--swiglu``, ``--position-embedding-type``, ``--untie-embeddings-and-output-weights``,
``--disable-bias-linear``, ``--add-qkv-bias``). The data-parallel size is what is left: gpus / (tp · pp · cp).
"""

from __future__ import annotations

import math

from suanli.errors import LayoutError
from suanli.export.common import LAUNCH_FILE, Export, TrainingPlan, framework_note, script, shell_line, torchrun
from suanli.i18n import Text
from suanli.spec.layout import Offload, PipelineSchedule, Recompute
from suanli.spec.model import Attention, Mlp, Moe, NormKind, PositionKind
from suanli.spec.training import Framework

ARGS_FILE = "megatron_args.txt"


def megatron_export(plan: TrainingPlan) -> Export:
    """Megatron arguments (one per line in ``megatron_args.txt``) and a launch script (module docstring)."""
    parallel = parallel_args(plan)
    model, model_notes = model_args(plan)
    args = [*parallel, *model]
    program = ["${MEGATRON_DIR:?set MEGATRON_DIR to a Megatron-LM checkout}/pretrain_gpt.py", *args,
               "--tokenizer-type", "HuggingFaceTokenizer", "--tokenizer-model", plan.model_id,
               "--data-path", "${DATA_PATH:?set DATA_PATH to a Megatron-preprocessed dataset prefix}"]
    command = shell_line(torchrun(plan, program))
    launch = script([command], header=f"Megatron-LM launch for {plan.spec.name} on {plan.layout.gpus}× "
                    f"{plan.accelerator.key} (written by suanli)\nRun on every node; each node sets NODE_RANK.")
    text = "\n".join(_pairs(args)) + "\n"
    notes = [*_notes(plan), *model_notes, *framework_note(plan, "Megatron-LM", Framework.MEGATRON)]
    return Export(target="megatron", files={ARGS_FILE: text, LAUNCH_FILE: launch}, command=command,
                  notes=tuple(notes))


def parallel_args(plan: TrainingPlan) -> list[str]:
    lay, job = plan.layout, plan.job
    if lay.shard_group is not None or lay.zero >= 2:
        hybrid = Text("fix.export.hybrid") if lay.shard_group else ""
        raise LayoutError(f"ZeRO-{lay.zero}{hybrid} is not Megatron's distributed optimizer (ZeRO-1); use --zero 1 "
                          "with --export megatron, or --export deepspeed/accelerate", key="error.export.megatron_zero",
                          fields={"zero": lay.zero, "hybrid": hybrid})
    if lay.offload_params is not Offload.NONE or lay.offload_optimizer is Offload.NVME:
        raise LayoutError("Megatron offloads the optimizer to CPU only (--optimizer-cpu-offload); drop the "
                          "parameter / NVMe offload or use --export deepspeed", key="error.export.megatron_offload")
    args = ["--tensor-model-parallel-size", str(lay.tp), "--pipeline-model-parallel-size", str(lay.pp),
            "--context-parallel-size", str(lay.cp), "--expert-model-parallel-size", str(lay.ep),
            "--micro-batch-size", str(lay.micro_batch), "--global-batch-size", str(lay.effective_global_batch),
            "--seq-length", str(job.seq)]
    if lay.schedule is PipelineSchedule.INTERLEAVED and lay.vp > 1:
        args += ["--num-layers-per-virtual-pipeline-stage", str(plan.spec.num_layers // (lay.pp * lay.vp))]
    if lay.sp and lay.tp > 1:
        args.append("--sequence-parallel")
    if lay.zero == 1:
        args.append("--use-distributed-optimizer")
    if lay.offload_optimizer is Offload.CPU:
        args += ["--optimizer-cpu-offload"]
    if lay.recompute is Recompute.FULL:
        args += ["--recompute-granularity", "full", "--recompute-method", "uniform", "--recompute-num-layers", "1"]
    elif lay.recompute is Recompute.SELECTIVE:
        args += ["--recompute-granularity", "selective"]
    args += _precision(plan)
    if plan.tokens is not None:
        tokens_per_step = lay.effective_global_batch * job.seq
        args += ["--train-iters", str(math.ceil(plan.tokens / tokens_per_step))]
    return args


def _precision(plan: TrainingPlan) -> list[str]:
    dtype = plan.dtype
    if dtype == "fp8":  # Transformer Engine fp8 GEMMs inside bf16 training
        return ["--bf16", "--fp8-format", "hybrid"]
    return {"bf16": ["--bf16"], "fp16": ["--fp16"]}.get(dtype, [])


def model_args(plan: TrainingPlan) -> tuple[list[str], list[str]]:
    """The GPT model's shape flags, for a stack of identical attention + MLP/MoE blocks; otherwise none and a note."""
    spec = plan.spec
    first = spec.layers[0]
    uniform = all(layer == first for layer in spec.layers)
    attention, ffn = first.attention, first.ffn
    if not uniform or not isinstance(attention, Attention) or attention.mla is not None or first.mixer is not None \
            or ffn is None:
        return [], [f"{spec.name}'s blocks are not one repeated attention + MLP block: write its model flags "
                    "(or use Megatron-Bridge's converter); the parallel flags above are complete"]
    args = ["--num-layers", str(spec.num_layers), "--hidden-size", str(spec.hidden_size),
            "--num-attention-heads", str(attention.num_heads), "--kv-channels", str(attention.head_dim),
            "--max-position-embeddings", str(spec.max_position_embeddings)]
    if attention.num_kv_heads != attention.num_heads:
        args += ["--group-query-attention", "--num-query-groups", str(attention.num_kv_heads)]
    mlp = ffn.expert if isinstance(ffn, Moe) else ffn
    if isinstance(ffn, Moe):
        args += ["--num-experts", str(ffn.num_experts), "--moe-router-topk", str(ffn.top_k),
                 "--moe-ffn-hidden-size", str(mlp.intermediate_size)]
        if ffn.shared is not None:
            args += ["--moe-shared-expert-intermediate-size", str(ffn.shared.intermediate_size)]
    else:
        args += ["--ffn-hidden-size", str(mlp.intermediate_size)]
    args += _shape_flags(plan, attention, mlp)
    return args, []


def _shape_flags(plan: TrainingPlan, attention: Attention, mlp: Mlp) -> list[str]:
    spec = plan.spec
    args = []
    if spec.final_norm is not None and spec.final_norm.kind is NormKind.RMS_NORM:
        args += ["--normalization", "RMSNorm"]
    if mlp.gated and mlp.activation == "silu":
        args.append("--swiglu")
    if spec.position is PositionKind.ROTARY:
        args += ["--position-embedding-type", "rope"]
    if not spec.tie_word_embeddings:
        args.append("--untie-embeddings-and-output-weights")
    if not (mlp.bias or attention.out_bias):
        args.append("--disable-bias-linear")
    if attention.qkv_bias:
        args.append("--add-qkv-bias")
    return args


def _pairs(args: list[str]) -> list[str]:
    """One flag per line, with its value."""
    lines: list[str] = []
    for word in args:
        if word.startswith("--") or not lines:
            lines.append(word)
        else:
            lines[-1] += " " + word
    return lines


def _notes(plan: TrainingPlan) -> list[str]:
    notes = [f"data-parallel size is implied: {plan.layout.gpus} GPUs / (tp·pp·cp) = {plan.layout.dp}"]
    if plan.tokens is None:
        notes.append("add --train-iters (or --train-samples) for the run's length; give --tokens to have it set")
    if plan.job.is_peft:
        notes.append(f"Megatron-LM's pretrain_gpt.py trains every weight; {plan.job.method.value} needs NeMo / "
                     "Megatron-Bridge's PEFT recipes")
    return notes
