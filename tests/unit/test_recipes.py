"""Recipe defaults per --framework and --method: applied only to options left unset, each printed with its source."""

from __future__ import annotations

import json
from typing import Any

import pytest

from suanli.cli.main import main
from suanli.spec.recipes import recipe_catalog, recipe_defaults
from suanli.spec.training import Framework, Method


def _train(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["train", *argv, "--json"]) == 0
    payload: dict[str, Any] = json.loads(capsys.readouterr().out)
    return payload


def test_every_default_names_its_source_file() -> None:
    assert recipe_catalog()
    for entry in recipe_catalog():
        assert any(marker in entry.source for marker in (".py", ".yaml", ".sh")), entry


def test_peft_on_the_hf_stack_checkpoints_full_training_does_not() -> None:
    for framework in (Framework.HF, Framework.DEEPSPEED, Framework.FSDP):
        assert recipe_defaults(framework, Method.QLORA)["recompute"].value == "full"
        assert "recompute" not in recipe_defaults(framework, Method.FULL)
    assert recipe_defaults(Framework.TORCHTUNE, Method.FULL)["recompute"].value == "full"


def test_qlora_of_a_70b_model_fits_one_48gb_card_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    """QLoRA (Dettmers et al. 2023) fine-tunes 65B models on one 48 GB GPU with gradient checkpointing; TRL and
    qlora.py turn it on by default, so the default job must be the checkpointed one."""
    payload = _train(capsys, "llama-3-70b", "--gpu", "l40s", "--method", "qlora")
    assert payload["memory"]["fits"] is True and payload["layout"]["recompute"] == "full"
    (default,) = payload["defaults"]
    assert default["setting"] == "recompute" and "sft_config.py" in default["source"]
    explicit = _train(capsys, "llama-3-70b", "--gpu", "l40s", "--method", "qlora", "--recompute", "none")
    assert explicit["memory"]["fits"] is False and explicit["defaults"] == []


def test_framework_sharding_defaults_apply_with_data_parallelism(capsys: pytest.CaptureFixture[str]) -> None:
    megatron = _train(capsys, "gpt2", "--gpu", "h100", "--gpus", "8", "--framework", "megatron")
    assert megatron["layout"]["zero"] == 1
    assert any(d["setting"] == "zero" and "--use-distributed-optimizer" in d["source"] for d in megatron["defaults"])
    assert _train(capsys, "gpt2", "--gpu", "h100", "--framework", "megatron")["layout"]["zero"] == 0  # dp 1
    assert _train(capsys, "gpt2", "--gpu", "h100", "--gpus", "8", "--framework", "fsdp")["layout"]["zero"] == 3
    explicit = _train(capsys, "gpt2", "--gpu", "h100", "--gpus", "8", "--framework", "fsdp", "--fsdp", "shard-grad-op")
    assert explicit["layout"]["zero"] == 2 and all(d["setting"] != "zero" for d in explicit["defaults"])
    plain = _train(capsys, "gpt2", "--gpu", "h100", "--gpus", "8", "--framework", "hf")
    assert plain["layout"]["zero"] == 0 and plain["layout"]["recompute"] == "none" and plain["defaults"] == []
