"""One message catalogue for every human-facing string that has a translation: ``messages.toml``; for the errors,
one file per part of the package in ``errors/`` (``errors/spec.toml`` …); for ``--help``, one file per command in
``help/``. A key is in exactly one file.

Each message is a TOML table holding one string per language::

    [cli.error]
    en = "error"
    zh = "错误"

``t("cli.error", "zh")`` → ``"错误"``. ``{field}`` placeholders are filled from keyword arguments with
``str.format``; both languages of a key name the same fields (a test guards it). JSON keys never go through
here: only text meant for people (table labels, headings, notes, errors, the glossary, the web page's words).

The language is chosen at the edge: ``--lang zh|en`` on the CLI, else ``default_lang()`` from the environment
(``SUANLI_LANG`` first, then the POSIX locale variables ``LC_ALL``, ``LC_MESSAGES``, ``LANG``: a value starting
with ``zh`` means Chinese, anything else English). ``use_lang()`` sets it for a block (a ContextVar, so threads
of the web server never see each other's choice) and ``t()`` without a language reads it.
"""

from __future__ import annotations

import functools
import os
import tomllib
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from importlib import resources
from string import Formatter
from types import MappingProxyType
from typing import Any, Literal, TypeAlias, cast

Lang: TypeAlias = Literal["en", "zh"]
LANGS: tuple[Lang, ...] = ("en", "zh")
LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG")  # POSIX precedence: the first one set wins

_CURRENT: ContextVar[Lang | None] = ContextVar("suanli_lang", default=None)

__all__ = ["LANGS", "Joined", "Lang", "Text", "as_label", "current_lang", "default_lang", "did_you_mean",
           "display_width", "error_text", "fields_of", "messages", "parse_lang", "say", "t", "translate_label",
           "use_lang"]


def parse_lang(text: str) -> Lang:
    """``"zh"``, ``"zh_CN.UTF-8"``, ``"ZH-hans"`` → ``"zh"``; ``"en"``, ``"en_US"`` → ``"en"``; else a SpecError."""
    lang = _lang_of(text)
    if lang is None:
        from suanli.errors import SpecError

        langs = ", ".join(LANGS)
        raise SpecError(f"unknown language {text!r}; use one of {langs}", key="error.spec.unknown_language",
                        fields={"text": text, "langs": langs})
    return lang


def _lang_of(text: str) -> Lang | None:
    prefix = text.strip().lower()[:2]
    return prefix if prefix in LANGS else None


def default_lang(environ: Mapping[str, str] | None = None) -> Lang:
    """The language the environment asks for: ``SUANLI_LANG`` (``zh`` or ``en``) when set to one of them, else the
    first set locale variable (``LC_ALL``, ``LC_MESSAGES``, ``LANG``): Chinese when it starts with ``zh``."""
    env = os.environ if environ is None else environ
    chosen = _lang_of(env.get("SUANLI_LANG", ""))
    if chosen is not None:
        return chosen
    for name in LOCALE_VARIABLES:
        value = env.get(name, "")
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def current_lang() -> Lang:
    """The language set by the enclosing ``use_lang()``, else ``default_lang()``."""
    lang = _CURRENT.get()
    return default_lang() if lang is None else lang


@contextmanager
def use_lang(lang: Lang) -> Iterator[Lang]:
    """Within this block ``t()`` and ``current_lang()`` use ``lang``."""
    token = _CURRENT.set(lang)
    try:
        yield lang
    finally:
        _CURRENT.reset(token)


@functools.cache
def messages() -> Mapping[str, Mapping[Lang, str]]:
    """Every message: dotted key → {language: text} (the files are read once per process)."""
    flat: dict[str, Mapping[Lang, str]] = {}
    for name, text in catalogue_files().items():
        found: dict[str, Mapping[Lang, str]] = {}
        _flatten(tomllib.loads(text), "", found)
        twice = sorted(found.keys() & flat.keys())
        if twice:
            raise RuntimeError(f"suanli/i18n/{name} repeats messages of another catalogue file: {twice[:5]}")
        flat.update(found)
    return MappingProxyType(flat)


def catalogue_files() -> dict[str, str]:
    """The catalogue's files, ``messages.toml`` then ``errors/*.toml`` and ``help/*.toml`` by name: path under i18n
    → text."""
    root = resources.files("suanli.i18n")
    files = {"messages.toml": root.joinpath("messages.toml").read_text(encoding="utf-8")}
    for folder in CATALOGUE_FOLDERS:
        found = sorted((entry for entry in root.joinpath(folder).iterdir() if entry.name.endswith(".toml")),
                       key=lambda entry: entry.name)
        files.update({f"{folder}/{entry.name}": entry.read_text(encoding="utf-8") for entry in found})
    return files


CATALOGUE_FOLDERS = ("errors", "help")  # errors raised, one file per package area; --help, one file per command


def _flatten(table: Mapping[str, Any], prefix: str, out: dict[str, Mapping[Lang, str]]) -> None:
    """A table whose values include strings is a message; tables nest keys (``[cli.error]`` → ``"cli.error"``)."""
    for name, value in table.items():
        key = f"{prefix}{name}"
        if not isinstance(value, dict):
            continue
        texts = {lang: text for lang, text in value.items() if isinstance(text, str)}
        if texts:
            out[key] = MappingProxyType(cast(dict[Lang, str], texts))
        _flatten({k: v for k, v in value.items() if isinstance(v, dict)}, f"{key}.", out)


def t(key: str, lang: Lang | None = None, /, **fields: Any) -> str:
    """The message ``key`` in ``lang`` (default: ``current_lang()``), its ``{field}`` placeholders filled.

    >>> t("cli.error", "zh")
    '错误'
    """
    entry = messages().get(key)
    if entry is None:
        raise KeyError(f"no message {key!r} in suanli/i18n's catalogue (messages.toml, errors/*.toml)")
    lang = lang or current_lang()
    text = entry[lang]
    return text.format(**{name: _said(value, lang) for name, value in fields.items()}) if fields else text


class Text(str):
    """A message said in English — the string itself, so ``--json``, ``==`` and every English caller see exactly
    the text they always saw — that remembers its catalogue key and fields, so an edge can say it again in the
    reader's language: ``Text("note.x", n=3).said_in("zh")``. A field that is itself a ``Text`` is said in the same
    language (a note naming an advice label). Core code builds notes, headlines and advice this way; only the CLI
    and the web page choose a language."""

    key: str
    fields: Mapping[str, Any]

    def __new__(cls, key: str, /, **fields: Any) -> Text:
        text = super().__new__(cls, t(key, "en", **fields))
        text.key, text.fields = key, MappingProxyType(fields)
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), self.key, dict(self.fields))

    def said_in(self, lang: Lang | None = None) -> str:
        """The text in ``lang`` (default: ``current_lang()``)."""
        lang = lang or current_lang()
        return str(self) if lang == "en" else t(self.key, lang, **self.fields)


class Joined(Text):
    """Parts joined by a separator message (``"; or "`` / ``"；或 "``): ``Joined("join.or", [a, b])``; each part
    that is a ``Text`` is said in the reader's language too."""

    def __new__(cls, separator: str, parts: Sequence[str] = ()) -> Joined:
        text = str.__new__(cls, t(separator, "en").join(parts))
        text.key, text.fields = separator, MappingProxyType({"parts": tuple(parts)})
        return text

    def said_in(self, lang: Lang | None = None) -> str:
        lang = lang or current_lang()
        return t(self.key, lang).join(say(part, lang) for part in self.fields["parts"])


class Translated(Text):
    """Text from a data file that carries its own translation (``source`` and ``source_zh`` of a catalog entry): the
    English as it is, the Chinese given beside it. For prose that lives with its data rather than in the message
    catalogue, such as a recipe default's cited source."""

    def __new__(cls, english: str, zh: str) -> Translated:
        text = str.__new__(cls, english)
        text.key, text.fields = "", MappingProxyType({"zh": zh})
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (str(self), self.fields["zh"])

    def said_in(self, lang: Lang | None = None) -> str:
        lang = lang or current_lang()
        return str(self.fields["zh"]) if lang == "zh" else str(self)


class ErrorMessage(Text):
    """An error's message as a field of another error (or of a catalog entry's problem): its English as raised, said
    again in the reader's language through the error's own catalogue key (closest-name hints included); an error
    without a key, such as a ValueError, stays English."""

    def __new__(cls, exc: Exception) -> ErrorMessage:
        return cls._of(str(exc), getattr(exc, "key", ""), getattr(exc, "fields", {}))

    @classmethod
    def _of(cls, english: str, key: str, fields: Mapping[str, Any]) -> ErrorMessage:
        text = str.__new__(cls, english)
        text.key, text.fields = key, MappingProxyType(dict(fields))
        return text

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self)._of, (str(self), self.key, dict(self.fields))

    def said_in(self, lang: Lang | None = None) -> str:
        lang = lang or current_lang()
        return str(self) if lang == "en" or self.key not in messages() else error_text(self.key, self.fields, lang)


def _rebuild(cls: type[Text], key: str, fields: dict[str, Any]) -> Text:
    return cls(key, fields["parts"]) if issubclass(cls, Joined) else cls(key, **fields)


def say(text: object, lang: Lang | None = None) -> str:
    """``text`` in ``lang`` when it is a ``Text``, else as it is (``str(text)``)."""
    return text.said_in(lang) if isinstance(text, Text) else str(text)


def _said(value: Any, lang: Lang) -> Any:
    return value.said_in(lang) if isinstance(value, Text) else value


def fields_of(text: str) -> frozenset[str]:
    """The ``{field}`` names a message fills: ``"{a} of {b:.1f}"`` → {'a', 'b'}."""
    return frozenset(name for _, name, _, _ in Formatter().parse(text) if name)


def translate_label(text: str, lang: Lang | None = None) -> str:
    """A table label or heading in ``lang``: the ``label.*`` message whose English text is ``text``, else ``text``
    unchanged (labels that carry numbers, and those not yet in the catalogue, stay as they are)."""
    lang = lang or current_lang()
    if lang == "en":
        return text
    key = _label_keys().get(text)
    return text if key is None else messages()[key][lang]


def as_label(text: str) -> str:
    """``text`` as a ``Text`` of the ``label.*`` message whose English it is (so an error or note that quotes a
    label, such as a plan's rejection reason, says it in the reader's language), else ``text`` unchanged."""
    key = _label_keys().get(text)
    return text if key is None else Text(key)


@functools.cache
def _label_keys() -> Mapping[str, str]:
    """English label text → its ``label.*`` key (tables print English labels; this finds their message)."""
    return MappingProxyType({entry["en"]: key for key, entry in messages().items() if key.startswith("label.")})


def did_you_mean(names: Sequence[str], lang: Lang | None = None) -> str:
    """``"; did you mean a, b or c?"`` / ``"；你要找的是不是 a、b 或 c？"``, or ``""`` for no names."""
    if not names:
        return ""
    lang = lang or current_lang()
    if len(names) == 1:
        joined = names[0]
    elif lang == "zh":
        joined = f"{'、'.join(names[:-1])} 或 {names[-1]}"
    else:
        joined = f"{', '.join(names[:-1])} or {names[-1]}"
    return t("error.did_you_mean", lang, names=joined)


def error_text(key: str, fields: Mapping[str, Any], lang: Lang | None = None) -> str:
    """An error's message ``key`` in ``lang``; a ``suggestions`` field (closest names) becomes ``{hint}``."""
    values = dict(fields)
    values["hint"] = did_you_mean(list(values.pop("suggestions", ())), lang)
    return t(key, lang, **values)


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes: East Asian wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)
