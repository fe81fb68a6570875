"""``--lang zh|en`` on the CLI: labels and keyed errors change language, JSON never does, the default follows the
locale, and every error key raised in the code is in the message catalogue."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from suanli.cli.main import main
from suanli.cli.render import key_values, table
from suanli.i18n import display_width, messages, use_lang

SRC = Path(__file__).parents[2] / "src" / "suanli"
PARAMS = ["params", "llama-3.2-1b"]


def test_tables_are_labelled_in_chinese(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*PARAMS, "--lang", "zh"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("模型") and "每 token 激活" in out and "组成部分" in out
    assert main(["--lang", "en", *PARAMS]) == 0
    assert capsys.readouterr().out.startswith("model")


def test_the_option_may_come_before_or_after_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    outputs = []
    for argv in (["--lang", "zh", *PARAMS], [*PARAMS, "--lang", "zh"], ["--lang", "en", *PARAMS, "--lang", "zh"]):
        assert main(argv) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] == outputs[2]


def test_default_follows_the_environment(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LANG", "zh_CN.UTF-8")
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    monkeypatch.delenv("SUANLI_LANG", raising=False)
    assert main(PARAMS) == 0
    assert capsys.readouterr().out.startswith("模型")
    monkeypatch.setenv("SUANLI_LANG", "en")
    assert main(PARAMS) == 0
    assert capsys.readouterr().out.startswith("model")


def test_json_is_the_same_in_every_language(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["infer", "llama-3.2-1b", "--gpu", "h100", "--batch", "2", "--prompt", "512", "--output", "64", "--json"]
    payloads = []
    for lang in ("en", "zh"):
        assert main([*argv, "--lang", lang]) == 0
        payloads.append(json.loads(capsys.readouterr().out))
    assert payloads[0] == payloads[1]


@pytest.mark.parametrize(("argv", "english", "chinese"), [
    (["infer", "llama-3.1-8b", "--gpu", "h10", "--batch", "1", "--prompt", "8", "--output", "8"],
     "unknown accelerator 'h10'; did you mean h100", "未知加速卡 'h10'；你要找的是不是 h100"),
    (["params", "lama-3.1-8b"], "unknown model 'lama-3.1-8b'; did you mean llama-3.1-8b",
     "未知模型 'lama-3.1-8b'；你要找的是不是 llama-3.1-8b"),
    (["train", "llama-3.1-8b", "--gpu", "h100", "--gpus", "3", "--tp", "3"],
     "is not divisible by tp (3)", "不能被 tp（3）整除"),
])
def test_common_errors_are_translated(argv: list[str], english: str, chinese: str,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--lang", "en"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("suanli: error: ") and english in err and err.count("\n") == 1
    assert main([*argv, "--lang", "zh"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("suanli: 错误: ") and chinese in err and err.count("\n") == 1


def test_malformed_config_is_translated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"model_type": "llama",', encoding="utf-8")
    assert main(["params", str(config), "--lang", "zh"]) == 2
    assert "不是合法的 JSON（第 1 行" in capsys.readouterr().err


def test_an_unknown_language_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*PARAMS, "--lang", "fr"])
    assert exit_info.value.code == 2
    assert "unknown language 'fr'; use one of en, zh" in capsys.readouterr().err


def test_chinese_tables_align_by_display_width() -> None:
    with use_lang("zh"):
        lines = table(["component", "share"], [["weights", "1%"], ["tied grad sum", "22%"]], align="lr").splitlines()
        assert lines[2].startswith("权重 ")
        assert len({display_width(line) for line in lines}) == 1  # every row as wide as the rule under the heading
        assert key_values([("model", "x"), ("per GPU", "y")]).splitlines() == ["模型  x", "每卡  y"]


def test_every_error_key_raised_in_the_code_is_in_the_catalogue() -> None:
    used = {match for path in SRC.rglob("*.py")
            for match in re.findall(r'key="((?:error|explain)\.[a-z_.]+)"', path.read_text(encoding="utf-8"))}
    assert used, "the scan found the keyed errors"
    assert used - set(messages()) == set()


def test_explain_keeps_the_formulas_and_translates_their_glue(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*PARAMS, "--explain", "--lang", "zh"]) == 0
    out = capsys.readouterr().out
    assert "\n  其中 embedding_params = vocab_size × hidden_size" in out and "\n  where " not in out
