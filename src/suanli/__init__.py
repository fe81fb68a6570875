"""suanli (算力): memory, FLOPs, time and cost of training and serving large models — every number explained.

The public API is what ``__all__`` lists (guarded by ``tests/surface/test_public_api.py``)::

    >>> import suanli
    >>> spec = suanli.load_model("llama-3.1-8b")
    >>> suanli.count_params(spec).total
    8030261248
    >>> suanli.count_flops(spec, seq=2048).training   # forward + backward, one sequence
    98814312579072.0

Heavier pieces are imported on first use, so ``import suanli`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "AttentionSpan",
    "Deployment",
    "EngineKnobs",
    "FlopCounts",
    "Layout",
    "LengthDist",
    "ModelSpec",
    "ParamCounts",
    "Recompute",
    "Report",
    "SpeculativeDecoding",
    "StaticBatch",
    "SuanliError",
    "TrainingJob",
    "Workload",
    "count_flops",
    "count_params",
    "flops_report",
    "get_accelerator",
    "get_engine",
    "inference_memory",
    "inference_time",
    "load_accelerators",
    "load_model",
    "model_catalog",
    "params_report",
    "parse_number_format",
    "resolve_model",
    "run_cost",
    "serving_memory",
    "serving_time",
    "simulate",
    "spec_from_config",
    "training_memory",
    "training_time",
    "vision_flops",
]

_LOCATIONS = {
    "Deployment": "suanli.simulate.api",
    "EngineKnobs": "suanli.spec.engines",
    "LengthDist": "suanli.simulate.workload",
    "SpeculativeDecoding": "suanli.simulate.api",
    "Workload": "suanli.simulate.workload",
    "simulate": "suanli.simulate.api",
    "AttentionSpan": "suanli.spec.assumptions",
    "FlopCounts": "suanli.core.flops",
    "ModelSpec": "suanli.spec.model",
    "ParamCounts": "suanli.core.params",
    "Recompute": "suanli.spec.layout",
    "Report": "suanli.report",
    "SuanliError": "suanli.errors",
    "count_flops": "suanli.core.flops",
    "count_params": "suanli.core.params",
    "flops_report": "suanli.report",
    "get_accelerator": "suanli.spec.hardware",
    "load_accelerators": "suanli.spec.hardware",
    "load_model": "suanli.spec.resolve",
    "model_catalog": "suanli.spec.resolve",
    "params_report": "suanli.report",
    "parse_number_format": "suanli.spec.precision",
    "resolve_model": "suanli.spec.resolve",
    "spec_from_config": "suanli.spec.hf",
    "Layout": "suanli.spec.layout",
    "TrainingJob": "suanli.spec.training",
    "training_memory": "suanli.core.memory",
    "inference_memory": "suanli.core.inference_memory",
    "serving_memory": "suanli.core.inference_memory",
    "StaticBatch": "suanli.spec.serving",
    "get_engine": "suanli.spec.engines",
    "training_time": "suanli.core.training_time",
    "inference_time": "suanli.core.inference_time",
    "serving_time": "suanli.core.inference_time",
    "run_cost": "suanli.core.cost",
    "vision_flops": "suanli.core.vision",
}

if TYPE_CHECKING:
    from suanli.core.cost import run_cost
    from suanli.core.flops import FlopCounts, count_flops
    from suanli.core.inference_memory import inference_memory, serving_memory
    from suanli.core.inference_time import inference_time, serving_time
    from suanli.core.memory import training_memory
    from suanli.core.params import ParamCounts, count_params
    from suanli.core.training_time import training_time
    from suanli.core.vision import vision_flops
    from suanli.errors import SuanliError
    from suanli.report import Report, flops_report, params_report
    from suanli.simulate.api import Deployment, SpeculativeDecoding, simulate
    from suanli.simulate.workload import LengthDist, Workload
    from suanli.spec.assumptions import AttentionSpan
    from suanli.spec.engines import EngineKnobs, get_engine
    from suanli.spec.hardware import get_accelerator, load_accelerators
    from suanli.spec.hf import spec_from_config
    from suanli.spec.layout import Layout, Recompute
    from suanli.spec.model import ModelSpec
    from suanli.spec.precision import parse_number_format
    from suanli.spec.resolve import load_model, model_catalog, resolve_model
    from suanli.spec.serving import StaticBatch
    from suanli.spec.training import TrainingJob


def __getattr__(name: str) -> Any:
    module = _LOCATIONS.get(name)
    if module is None:
        raise AttributeError(f"module 'suanli' has no attribute '{name}'")
    from importlib import import_module

    return getattr(import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
