"""``--lang zh|en``: one option on ``suanli`` and on every sub-command (so it may come before or after the command),
defaulting to the locale (``suanli.i18n.default_lang``). JSON keys never change with the language; table labels,
headings, notes and errors that carry a catalogue key do."""

from __future__ import annotations

import argparse
import contextlib
import functools
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from suanli.i18n import Lang

LANG_HELP = "language of tables, notes and errors: zh or en (default: $SUANLI_LANG, else the locale)"


def install(parser: argparse.ArgumentParser) -> None:
    """Add ``--lang`` to ``parser`` and to every sub-command parser below it. Only the top level holds a default
    (None): a sub-command's ``--lang`` is SUPPRESSed when absent, so it never overwrites the one given before the
    command."""
    parser.add_argument("--lang", type=_lang, default=None, metavar="{zh,en}", help=LANG_HELP)
    for sub in _subparsers(parser):
        _install_below(sub)


def _install_below(parser: argparse.ArgumentParser) -> None:
    if "--lang" not in parser._option_string_actions:
        parser.add_argument("--lang", type=_lang, default=argparse.SUPPRESS, metavar="{zh,en}", help=LANG_HELP)
    for sub in _subparsers(parser):
        _install_below(sub)


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    return [sub for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for sub in dict.fromkeys(action.choices.values())]


def _lang(text: str) -> Lang:
    from suanli.errors import SpecError
    from suanli.i18n import parse_lang

    try:
        return parse_lang(text)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def chosen_lang(args: argparse.Namespace) -> Lang:
    """``--lang`` when given, else the environment's language."""
    from suanli.i18n import default_lang

    lang: Lang | None = getattr(args, "lang", None)
    return lang or default_lang()


def error_line(exc: Exception, lang: Lang) -> str:
    """``suanli: error: …`` in ``lang``: a SuanliError with a catalogue key is said in that language, any other
    in its English message."""
    from suanli.i18n import ErrorMessage, t

    return f"suanli: {t('cli.error', lang)}: {ErrorMessage(exc).said_in(lang)}"


def lang_in(argv: Sequence[str] | None) -> Lang:
    """The language a command line asks for before it is parsed (so a usage error can be said in it): the last
    valid ``--lang X`` / ``--lang=X``, else the environment's."""
    from suanli.errors import SpecError
    from suanli.i18n import default_lang, parse_lang

    found: Lang | None = None
    words = list(sys.argv[1:] if argv is None else argv)
    for index, word in enumerate(words):
        value = word.partition("=")[2] if word.startswith("--lang=") else (
            words[index + 1] if word == "--lang" and index + 1 < len(words) else None)
        with contextlib.suppress(SpecError):  # a bad one: argparse says so, in the language found so far
            found = parse_lang(value) if value is not None else found
    return found or default_lang()


def usage_error_line(message: str, prog: str, lang: Lang) -> str:
    """argparse's one-line usage error in ``lang``: its fixed wording is matched against the ``error.usage.*``
    templates (``argument --tp: invalid choice: …``) and said again; what it quotes from the command line stays."""
    from suanli.i18n import t

    return f"suanli: {t('cli.error', lang)}: " + t("error.usage.line", lang, message=said_usage(message, lang),
                                                 prog=prog)


def said_usage(message: str, lang: Lang) -> str:
    """``message`` in ``lang`` when an ``error.usage.*`` template matches it (fields matched recursively), else as
    it is."""
    from suanli.i18n import t

    if lang == "en":
        return message
    for key, pattern in _usage_patterns():
        match = pattern.fullmatch(message)
        if match:
            return t(key, lang, **{name: said_usage(value, lang) for name, value in match.groupdict().items()})
    return message


@functools.cache
def _usage_patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """Each ``error.usage.*`` message's English as a regular expression, its fields as named groups."""
    from string import Formatter

    from suanli.i18n import messages

    patterns = []
    for key, entry in messages().items():
        if key.startswith("error.usage.") and key != "error.usage.line":
            parts = [re.escape(literal) + (f"(?P<{name}>.+?)" if name else "")
                     for literal, name, _, _ in Formatter().parse(entry["en"])]
            patterns.append((key, re.compile("".join(parts), re.DOTALL)))
    return tuple(patterns)
