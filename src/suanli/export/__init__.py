"""Runnable exports: a plan as the files and launch command of the engine that will run it.

One module per target, each a pure function from a plan to an ``Export`` (files as text, the command, notes):

==========  =====================================================  ==============================
target      files                                                  made from
==========  =====================================================  ==============================
deepspeed   ds_config.json, launch.sh (deepspeed launcher)         TrainingPlan (dp + ZeRO)
accelerate  accelerate_config.yaml (FSDP), launch.sh               TrainingPlan (dp + FSDP)
torchrun    launch.sh (FSDP_* environment + torchrun)              TrainingPlan (dp + FSDP)
megatron    megatron_args.txt, launch.sh (torchrun pretrain_gpt)   TrainingPlan (tp/pp/vp/cp/ep)
vllm        launch.sh (vllm serve; NixlConnector P/D)              ServingPlan
sglang      launch.sh (sglang.launch_server; P/D + router)         ServingPlan
trtllm      launch.sh, extra_llm_api_options.yaml (trtllm-serve)   ServingPlan
==========  =====================================================  ==============================

A layout a target cannot express raises LayoutError naming the target that can.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from suanli.errors import NotFound, close_matches, suggest
from suanli.export.accelerate import accelerate_export, torchrun_export
from suanli.export.common import Export, TrainingPlan
from suanli.export.deepspeed import deepspeed_export
from suanli.export.megatron import megatron_export
from suanli.export.serving import ServingPlan
from suanli.export.sglang import sglang_export
from suanli.export.trtllm import trtllm_export
from suanli.export.vllm import vllm_export

TRAINING_TARGETS: dict[str, Callable[[TrainingPlan], Export]] = {
    "deepspeed": deepspeed_export, "accelerate": accelerate_export, "torchrun": torchrun_export,
    "megatron": megatron_export}
SERVING_TARGETS: dict[str, Callable[[ServingPlan], Export]] = {
    "vllm": vllm_export, "sglang": sglang_export, "trtllm": trtllm_export}
ALIASES = {"fsdp": "accelerate", "megatron-lm": "megatron", "tensorrt-llm": "trtllm"}


def export_training(target: str, plan: TrainingPlan) -> Export:
    """The files and command of training ``target`` for ``plan``."""
    return TRAINING_TARGETS[_target(target, TRAINING_TARGETS, "training")](plan)


def export_serving(target: str, plan: ServingPlan) -> Export:
    """The files and command of serving ``target`` for ``plan``."""
    return SERVING_TARGETS[_target(target, SERVING_TARGETS, "serving")](plan)


def _target(name: str, targets: Mapping[str, object], kind: str) -> str:
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in targets:
        raise NotFound(f"unknown {kind} export target {name!r}{suggest(key, targets)}; "
                       f"{kind} targets: {', '.join(targets)}", key=f"error.export.unknown_{kind}_target",
                       fields={"name": name, "suggestions": close_matches(key, targets), "targets": ", ".join(targets)})
    return key


__all__ = ["SERVING_TARGETS", "TRAINING_TARGETS", "Export", "ServingPlan", "TrainingPlan", "export_serving",
           "export_training"]
