"""Recipe defaults per --framework and --method: applied only to options left unset, each printed with its source."""

from __future__ import annotations

import json
import re
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


def test_every_source_is_said_in_chinese_with_the_same_citations() -> None:
    """source_zh translates the prose; the files, flags and values it cites are the English's, character for
    character (a translation that dropped or changed a citation would send a reader to the wrong place)."""
    for entry in recipe_catalog():
        chinese = entry.source.said_in("zh")
        assert re.search(r"[\u4e00-\u9fff]", chinese), entry
        cited = set(re.findall(r"[\w./-]+\.(?:py|yaml|sh)\b|--[\w-]+", entry.source))
        assert cited and cited <= set(re.findall(r"[\w./-]+\.(?:py|yaml|sh)\b|--[\w-]+", chinese)), entry
        assert entry.source.said_in("en") == entry.source


def test_train_says_the_applied_default_in_the_readers_language(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "llama-3.1-8b", "--gpu", "h100", "--gpus", "8", "--framework", "fsdp"]
    assert main([*argv, "--lang", "zh"]) == 0
    chinese = capsys.readouterr().out
    assert "ZeRO-3（torch/distributed/fsdp/fully_sharded_data_parallel.py）" in chinese
    assert "defaults to" not in chinese
    assert _train(capsys, *argv[1:], "--lang", "zh")["defaults"][0]["source"].startswith(
        "torch FullyShardedDataParallel: sharding_strategy defaults to")  # --json stays English


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
