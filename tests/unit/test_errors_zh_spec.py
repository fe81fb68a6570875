"""The errors of the job specs are said in Chinese with ``--lang zh``: the mistakes users meet there (a quantized
format spelled with the wrong bits or group, an assumption override out of range, a LoRA dropout or target that does
not exist, a checkpoint whose torch_dtype stores no weights) and the shared size checks with their fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.surface.cli_helpers import KeyedError

from suanli.errors import SpecError, require_non_negative, require_positive
from suanli.i18n import Text, error_text, parse_lang
from suanli.spec.training import PeftConfig, TrainingJob

BAD = [  # (argv, the key it must raise)
    (["infer", "llama-3.1-8b", "--gpu", "h100", "--quant", "awq-8bit"], "error.precision.four_bit_only"),
    (["infer", "llama-3.1-8b", "--gpu", "h100", "--quant", "gptq-5bit"], "error.precision.gptq_bits"),
    (["infer", "llama-3.1-8b", "--gpu", "h100", "--quant", "gptq-4bit-g0"], "error.precision.group_size"),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--tokens", "1e12", "--pue", "0.9"], "error.assumptions.cost_pue"),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--tokens", "1e12", "--grid-co2", "-1"],
     "error.assumptions.cost_non_negative"),
    (["plan", "buy", "--train", "llama-3.2-1b", "--tokens", "1e10", "--budget-usd", "100000",
      "--maintenance-fraction", "-0.1"], "error.assumptions.maintenance_fraction"),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--method", "lora", "--lora-dropout", "1"],
     "error.training.lora_dropout"),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--method", "lora", "--lora-targets", "q,kk"],
     "error.training.lora_targets"),
]


@pytest.mark.parametrize(("argv", "key"), BAD, ids=[key for _, key in BAD])
def test_spec_errors_say_the_same_in_english_and_translate(argv: list[str], key: str,
                                                           keyed_error: KeyedError) -> None:
    keyed_error(argv, key)


@pytest.mark.parametrize(("dtype", "key"), [("int32", "error.precision.dtype_packed"),
                                             ("auto", "error.precision.dtype_auto"),
                                             ("bfloat61", "error.precision.dtype_unknown")])
def test_a_checkpoint_dtype_that_stores_no_weights(dtype: str, key: str, tiny_llama: dict[str, Any],
                                                   tmp_path: Path, keyed_error: KeyedError) -> None:
    (tmp_path / "config.json").write_text(json.dumps({**tiny_llama, "torch_dtype": dtype}), encoding="utf-8")
    keyed_error(["infer", str(tmp_path), "--gpu", "h100", "--prompt", "100", "--output", "10"], key)


def _said(exc: pytest.ExceptionInfo[SpecError], lang: str) -> str:
    return error_text(exc.value.key, exc.value.fields, parse_lang(lang))


def test_a_size_check_says_its_fix_in_chinese() -> None:
    with pytest.raises(SpecError) as exc:
        TrainingJob(seq=0)
    assert str(exc.value) == "seq must be positive, got 0; give the sequence length in tokens, e.g. --seq 4096"
    assert _said(exc, "en") == str(exc.value)
    assert _said(exc, "zh") == "seq 必须为正数，当前为 0；请以 token 数给出序列长度，例如 --seq 4096"
    with pytest.raises(SpecError) as exc:
        PeftConfig(rank=-8)
    assert _said(exc, "zh") == "LoRA rank 必须为正数，当前为 -8；常用的秩为 8、16、64"


def test_size_checks_without_a_fix_and_with_an_english_one() -> None:
    with pytest.raises(SpecError) as exc:
        require_non_negative("wall_s", -1.5)
    assert str(exc.value) == "wall_s must be zero or positive, got -1.5" and exc.value.key == "error.spec.non_negative"
    assert _said(exc, "zh") == "wall_s 必须为零或正数，当前为 -1.5"
    with pytest.raises(SpecError) as exc:
        require_positive("gpus", float("nan"), fix="use --gpus 8")  # NaN is no size; a plain-English fix stays as is
    assert _said(exc, "zh") == "gpus 必须为正数，当前为 nan；use --gpus 8"
    require_positive("gpus", 1, fix=Text("fix.training.seq"))
    require_non_negative("wall_s", 0.0)


def test_an_unknown_language_is_named() -> None:
    with pytest.raises(SpecError) as exc:
        parse_lang("fr")
    assert str(exc.value) == "unknown language 'fr'; use one of en, zh"
    assert _said(exc, "zh") == "未知语言 'fr'；可选：en, zh"
