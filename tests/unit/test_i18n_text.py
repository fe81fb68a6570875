"""``suanli.i18n.Text``: English text (as the JSON shows it) that can be said again in Chinese; and every
``Text("key", ...)`` / ``key="..."`` in the source names a catalogue message with exactly the fields it fills."""

from __future__ import annotations

import ast
import copy
import json
import pickle
from pathlib import Path

import pytest

from suanli import errors
from suanli.i18n import Joined, Text, Translated, as_label, fields_of, messages, say, use_lang

SRC = Path(__file__).parents[2] / "src" / "suanli"
ERRORS = {name for name, value in vars(errors).items()
          if isinstance(value, type) and issubclass(value, errors.SuanliError)}


def test_text_is_its_english_and_says_itself_in_chinese() -> None:
    note = Text("advice.zero_over_dp", stage=3, dp=8)
    assert note == "ZeRO-3 across the 8 data-parallel GPUs" and isinstance(note, str)
    assert json.dumps({"n": note}) == '{"n": "ZeRO-3 across the 8 data-parallel GPUs"}'
    assert note.said_in("zh") == "在 8 张数据并行卡上启用 ZeRO-3"
    assert note.said_in("en") == str(note)
    with use_lang("zh"):
        assert say(note) == "在 8 张数据并行卡上启用 ZeRO-3"
        assert say("plain English") == "plain English"


def test_nested_and_joined_texts_are_said_in_one_language() -> None:
    parts = [Text("advice.zero_over_dp", stage=3, dp=8), Text("advice.full_recompute")]
    change = Joined("join.plus", parts)
    note = Text("note.train.does_not_fit", changes=Joined("join.or_clauses", [change, Text("advice.lora")]))
    assert note == ("does not fit; ZeRO-3 across the 8 data-parallel GPUs + full activation recomputation; "
                    "or LoRA instead of full fine-tuning (+ full recompute) would")
    assert note.said_in("zh") == ("放不下；以下改动可以放下：在 8 张数据并行卡上启用 ZeRO-3 + 完全激活重计算；"
                                  "或 用 LoRA 代替全参数微调（加完全重计算）")


def test_a_quoted_label_is_said_in_the_reader_language() -> None:
    reason = as_label("out of memory")
    assert reason == "out of memory" and say(reason, "zh") == "显存不足"
    assert as_label("no such label 123") == "no such label 123" and not isinstance(as_label("x y z"), Text)


def test_number_formats_are_the_same_in_both_languages() -> None:
    advice = Text("advice.infer.kv_short", need_gib=68.04, pool_gib=52.5, tokens=430224)
    assert "68.0 GiB of KV cache but the pool holds 52.5 GiB (430,224 tokens)" in advice
    assert "需要 68.0 GiB KV 缓存，但缓存池只有 52.5 GiB（430,224 个 token）" in advice.said_in("zh")


@pytest.mark.parametrize("clone", [copy.copy, copy.deepcopy, lambda x: pickle.loads(pickle.dumps(x))])
def test_texts_survive_copy_and_pickle(clone: object) -> None:
    for text in (Text("advice.more_gpus", gpus=16, dp=16),
                 Joined("join.plus", [Text("advice.full_recompute"), "plain"]),
                 Translated("defaults to True (sft_config.py)", "默认为 True（sft_config.py）")):
        cloned = clone(text)  # type: ignore[operator]
        assert cloned == text and type(cloned) is type(text) and cloned.said_in("zh") == text.said_in("zh")


def _keyword_names(call: ast.Call) -> set[str] | None:
    """The keyword names of a call, or None when it passes ``**mapping`` (the names are not visible)."""
    names = {k.arg for k in call.keywords}
    return None if None in names else {name for name in names if name is not None}


def _uses() -> list[tuple[str, str, set[str] | None]]:
    """(where, key, fields) for every ``Text("key", f=…)``, ``Joined("key", …)`` and ``…Error(…, key="key",
    fields={…})`` whose key is a string literal."""
    found: list[tuple[str, str, set[str] | None]] = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            where = f"{path.relative_to(SRC)}:{node.lineno}"
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
            first = node.args[0] if node.args else None
            if name in ("Text", "Joined") and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.append((where, first.value, set() if name == "Joined" else _keyword_names(node)))
            key = next((k.value for k in node.keywords if k.arg == "key"), None) if name in ERRORS else None
            if isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value:
                given = next((k.value for k in node.keywords if k.arg == "fields"), None)
                fields = ({str(k.value) for k in given.keys if isinstance(k, ast.Constant)}
                          if isinstance(given, ast.Dict) and None not in given.keys else None)
                if given is None:
                    fields = set()
                if fields is not None and "suggestions" in fields:
                    fields = (fields - {"suggestions"}) | {"hint"}
                found.append((where, key.value, fields))
    return found


def test_every_key_in_the_source_is_in_the_catalogue_with_the_fields_it_fills() -> None:
    uses = _uses()
    assert len(uses) > 120, "the scan found the keyed texts (143 when written)"
    missing = [(where, key) for where, key, _ in uses if key not in messages()]
    assert not missing, f"keys used in the code but absent from messages.toml: {missing}"
    wrong = [(where, key, sorted(fields), sorted(fields_of(messages()[key]["en"])))
             for where, key, fields in uses
             if fields is not None and fields != set(fields_of(messages()[key]["en"]))]
    assert not wrong, f"fields given differ from the message's fields: {wrong}"
