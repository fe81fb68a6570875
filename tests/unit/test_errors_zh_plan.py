"""The mistakes users make with ``plan buy``, ``plan train`` and ``--export`` are said in Chinese under ``--lang zh``
with the same facts as the English line (the catalogue's errors/plan.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.surface.cli_helpers import KeyedError

from suanli.errors import NotFound
from suanli.export import SERVING_TARGETS, TRAINING_TARGETS, _target
from suanli.i18n import error_text

BAD = [  # (argv, the key it must raise); DIR is replaced by a fresh folder
    (["plan", "buy", "--train", "llama-3.1-8b", "--budget-usd", "1000"], "error.plan.buy_over_budget"),
    (["plan", "buy", "--train", "llama-3.1-8b", "--budget-usd", "1e5", "--purchase-usd", "h100=40k"],
     "error.plan.purchase_usd"),
    (["plan", "buy", "--serve", "llama-3.1-8b", "--budget-usd", "1e5", "--tokens", "1e9"],
     "error.plan.buy_training_options"),
    (["plan", "buy", "--train", "llama-3.1-8b", "--budget-usd", "1e5", "--gpu", "ascend-910b"],
     "error.plan.buy_unpriced"),
    (["plan", "train", "llama-3.1-70b", "--gpu", "h100", "--tokens", "1e9", "--max-gpus", "16", "--export",
      "deepspeed", "DIR"], "error.export.data_parallel_only"),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--gpus", "16", "--fsdp", "hybrid-shard", "--export", "megatron",
      "DIR"], "error.export.megatron_zero"),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--gpus", "8", "--precision", "fp8", "--export", "accelerate", "DIR"],
     "error.export.fsdp_fp8"),
    (["simulate", "llama-3.2-1b", "--gpu", "h100", "--engine", "sglang", "--rate", "1", "--requests", "4", "--export",
      "vllm", "DIR"], "error.export.engine_mismatch"),
]


@pytest.mark.parametrize(("argv", "key"), BAD, ids=[key for _, key in BAD])
def test_plan_and_export_mistakes_are_said_in_chinese(argv: list[str], key: str, tmp_path: Path,
                                                      keyed_error: KeyedError) -> None:
    folder = tmp_path / "out"
    keyed_error([str(folder) if word == "DIR" else word for word in argv], key)
    assert not folder.exists(), "a refused export writes nothing"


@pytest.mark.parametrize(("targets", "kind"), [(TRAINING_TARGETS, "training"), (SERVING_TARGETS, "serving")])
def test_an_unknown_export_target_of_the_api_is_said_in_chinese(targets: dict[str, object], kind: str) -> None:
    """The key is chosen by the kind of target (the source scan cannot read it): both exist and say the same."""
    with pytest.raises(NotFound) as raised:
        _target("deepsped" if kind == "training" else "vlm", targets, kind)
    error = raised.value
    assert error_text(error.key, error.fields, "en") == str(error)
    assert "did you mean" in str(error)
    chinese = error_text(error.key, error.fields, "zh")
    assert chinese.startswith("未知的") and "你要找的是不是" in chinese and ", ".join(targets) in chinese
