"""The public API is exactly what __all__ lists, and each name resolves."""

from __future__ import annotations

import subprocess
import sys

import suanli

EXPECTED = {
    "Deployment", "EngineKnobs", "LengthDist", "SpeculativeDecoding", "Workload", "simulate",
    "AttentionSpan", "FlopCounts", "ModelSpec", "ParamCounts", "Recompute", "Report", "SuanliError",
    "count_flops", "count_params", "flops_report", "get_accelerator", "load_accelerators", "load_model",
    "model_catalog", "params_report", "parse_number_format", "resolve_model", "spec_from_config",
    "Layout", "TrainingJob", "training_memory", "inference_memory", "get_engine",
    "training_time", "inference_time", "run_cost", "vision_flops",
    "StaticBatch", "serving_memory", "serving_time",
}


def test_all_is_the_curated_surface() -> None:
    assert set(suanli.__all__) == EXPECTED


def test_every_public_name_resolves() -> None:
    for name in suanli.__all__:
        assert getattr(suanli, name) is not None


def test_core_does_not_import_torch() -> None:
    code = ("import sys, suanli; s = suanli.load_model('llama-3.1-8b'); suanli.count_flops(s, seq=8); "
            "from suanli.cli.main import main; "
            "print(any(m in sys.modules for m in ('torch', 'transformers', 'numpy')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
