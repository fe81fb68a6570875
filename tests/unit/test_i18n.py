"""The message catalogue: every key in both languages with the same fields; language from the environment."""

from __future__ import annotations

import pytest

from suanli.errors import SpecError
from suanli.i18n import LANGS, default_lang, fields_of, messages, parse_lang, t, translate_label, use_lang


def test_every_key_has_every_language_and_nothing_else() -> None:
    bad = {key: sorted(entry) for key, entry in messages().items() if sorted(entry) != sorted(LANGS)}
    assert not bad, f"keys missing a language (or with an unknown one): {bad}"


def test_no_message_is_empty() -> None:
    empty = [(key, lang) for key, entry in messages().items() for lang, text in entry.items() if not text.strip()]
    assert not empty


def test_both_languages_fill_the_same_fields() -> None:
    mismatched = {key: {lang: sorted(fields_of(text)) for lang, text in entry.items()}
                  for key, entry in messages().items()
                  if len({fields_of(text) for text in entry.values()}) > 1}
    assert not mismatched, mismatched


def test_labels_are_unique_by_english_text() -> None:
    english = [entry["en"] for key, entry in messages().items() if key.startswith("label.")]
    assert len(english) == len(set(english))


def test_fields_are_filled() -> None:
    assert fields_of("{a} of {b:.1f} and {a}") == {"a", "b"}
    assert t("cli.error", "zh") == "错误"
    with use_lang("zh"):
        assert t("cli.error") == "错误"
    with use_lang("en"):
        assert t("cli.error") == "error"


def test_unknown_key_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="no message"):
        t("no.such.key", "en")


@pytest.mark.parametrize(("env", "expected"), [
    ({}, "en"),
    ({"LANG": "zh_CN.UTF-8"}, "zh"),
    ({"LANG": "en_US.UTF-8"}, "en"),
    ({"LC_ALL": "zh_TW.UTF-8", "LANG": "en_US.UTF-8"}, "zh"),  # LC_ALL outranks LANG
    ({"LC_ALL": "C", "LANG": "zh_CN.UTF-8"}, "en"),
    ({"LC_MESSAGES": "zh_CN", "LANG": "en_US"}, "zh"),
    ({"SUANLI_LANG": "en", "LC_ALL": "zh_CN.UTF-8"}, "en"),  # SUANLI_LANG overrides the locale
    ({"SUANLI_LANG": "zh", "LANG": "C"}, "zh"),
    ({"SUANLI_LANG": "fr", "LANG": "zh_CN"}, "zh"),  # an unknown SUANLI_LANG is ignored
])
def test_default_lang_follows_the_environment(env: dict[str, str], expected: str) -> None:
    assert default_lang(env) == expected


def test_parse_lang() -> None:
    assert parse_lang("zh_CN.UTF-8") == "zh"
    assert parse_lang("EN") == "en"
    with pytest.raises(SpecError, match="unknown language 'fr'; use one of en, zh"):
        parse_lang("fr")


def test_translate_label_passes_unknown_labels_through() -> None:
    assert translate_label("no such label 123", "zh") == "no such label 123"
    assert translate_label("total", "en") == "total"
