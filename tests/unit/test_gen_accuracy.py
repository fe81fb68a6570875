"""scripts/gen_accuracy.py's summaries: each half with and without the known gaps, and the sign bias per GPU
generation, on hand-made rows."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_accuracy", ROOT / "scripts" / "gen_accuracy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_accuracy", module)
    spec.loader.exec_module(module)
    return module


GEN = _module()


def _row(case: str, published: float, ours: float, *, gap: bool = False, gpu: str = "h100-sxm-80gb",
         metric: str = "tokens_per_s_per_gpu") -> object:
    return GEN.Row("training throughput", case, "held-out", metric, published, ours, gap, "src", gpu)


def test_summaries_with_and_without_the_known_gaps() -> None:
    rows = [_row("a", 100, 110), _row("b", 100, 95), _row("c", 100, 150, gap=True)]
    assert GEN.summarise(rows) == "n=2, median 7.5%, mean 7.5%, worst 10.0%"
    assert GEN.summarise(rows, gaps=True) == "n=3, median 10.0%, mean 21.7%, worst 50.0%"


def test_sign_bias_counts_a_short_step_time_as_predicting_faster() -> None:
    rows = [_row("a", 100, 110, gpu="a100-sxm-80gb"), _row("b", 10.0, 8.0, gpu="a100-sxm-80gb", metric="step_s"),
            _row("c", 100, 90, gpu="b200-sxm-180gb")]
    table = "\n".join(GEN.sign_bias_lines(rows))
    assert "| a100 | 2 | 2 | 0 | +17.5% | +17.5% |" in table  # +10% and 10/8 - 1 = +25%
    assert "| b200 | 1 | 0 | 1 | -10.0% | -10.0% |" in table


def test_one_sided_generations_read_step_times_as_speeds() -> None:
    """A throughput predicted 10% high and a step time predicted 20% short both say "faster": one-sided."""
    rows = [_row("a", 100, 110, gpu="a100-sxm-80gb"), _row("b", 10.0, 8.0, gpu="a100-sxm-80gb", metric="step_s"),
            _row("c", 100, 90, gpu="b200-sxm-180gb"), _row("d", 10.0, 8.0, gpu="b200-sxm-180gb", metric="step_s"),
            _row("korthikanti-x", 1.0, 1.0, metric="step_s"),
            GEN.Row("inference max load", "m", "held-out", "max_load", 100, 100, False, "src")]
    lines = GEN.targets_lines(rows)
    assert lines[-1] == "GPU generations whose held-out training cases all err the same way (gaps included): a100."
