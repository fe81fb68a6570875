"""``--help`` in Chinese: every help text, description and group title of the CLI has a ``help.*`` message whose
English is that text, the Chinese keeps its %(…)s placeholders, ``--lang zh --help`` prints it, and English help
reads no catalogue (``suanli --help`` stays fast)."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from suanli.cli.main import build_parser, main
from suanli.i18n import messages

PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sdrf]|%%")
CJK = re.compile(r"[\u4e00-\u9fff]")


def _texts(parser: argparse.ArgumentParser, seen: set[int] | None = None) -> Iterator[str]:
    """Every text ``--help`` shows for ``parser`` and the parsers below it."""
    seen = set() if seen is None else seen
    if id(parser) in seen:
        return
    seen.add(id(parser))
    if parser.description:
        yield parser.description
    yield from (group.title for group in parser._action_groups if group.title)
    for action in parser._actions:
        if action.help and action.help is not argparse.SUPPRESS:
            yield action.help
        if isinstance(action, argparse._SubParsersAction):
            yield from (choice.help for choice in action._choices_actions if choice.help)
            for sub in action.choices.values():
                yield from _texts(sub, seen)


def _help_messages() -> dict[str, str]:
    return {entry["en"]: entry["zh"] for key, entry in messages().items() if key.startswith("help.")}


def test_every_help_text_has_a_chinese_message() -> None:
    said = _help_messages()
    texts = set(_texts(build_parser())) | {"usage: "}
    assert len(texts) > 200, "the walk found the CLI's help texts (230 when written)"
    missing = sorted(text for text in texts if not said.get(text))
    assert not missing, f"{len(missing)} help texts without a help.* message (i18n/help/*.toml): {missing[:10]}"


def test_chinese_help_keeps_placeholders_and_is_chinese() -> None:
    for english, chinese in _help_messages().items():
        assert sorted(PLACEHOLDER.findall(english)) == sorted(PLACEHOLDER.findall(chinese)), english
        assert CJK.search(chinese), f"not translated: {english!r}"


def test_help_in_chinese(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help", "--lang", "zh"])
    assert exit_info.value.code == 0
    chinese = capsys.readouterr().out
    said = _help_messages()
    assert chinese.startswith(said["usage: "].rstrip())
    assert said["catalog name, config.json, model directory or repo id"] in chinese
    assert said["show this help message and exit"] in chinese
    with pytest.raises(SystemExit):
        main(["train", "--help", "--lang", "en"])
    english = capsys.readouterr().out
    assert english.startswith("usage: suanli train") and "catalog name, config.json" in english
    assert not CJK.search(english.replace("算力", ""))


def test_bare_suanli_prints_its_help_in_the_language_asked(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--lang", "zh"]) == 0
    assert capsys.readouterr().out.startswith(_help_messages()["usage: "] + "suanli")
    assert main(["--lang", "en"]) == 0
    assert capsys.readouterr().out.startswith("usage: suanli")


def test_english_help_reads_no_catalogue() -> None:
    code = ("import contextlib, io, sys\n"
            "from suanli.cli.main import main\n"
            "from suanli import i18n\n"
            "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['train', '--help', '--lang', 'en'])\n"
            "print(i18n.messages.cache_info().currsize)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "0"


def test_mixed_text_wraps_by_display_width_between_words() -> None:
    from suanli.cli.help_text import wrap_mixed
    from suanli.i18n import display_width

    text = "把 TP 集合通信与线性层的 GEMM 重叠（Megatron-Core tp_comm_overlap / TE userbuffers；需配合 --sp）"
    lines = wrap_mixed(text, 24)
    assert all(display_width(line) <= 24 for line in lines[:-1] if not line.endswith(("；", "）")))
    words = set(re.findall(r"[A-Za-z_/-]+", text))
    assert words <= {w for line in lines for w in re.findall(r"[A-Za-z_/-]+", line)}  # no ASCII word cut in two
    assert not any(line.startswith(("，", "；", "）")) or line.endswith("（") for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
