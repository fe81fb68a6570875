"""``--lang zh|en``: one option on ``suanli`` and on every sub-command (so it may come before or after the command),
defaulting to the locale (``suanli.i18n.default_lang``). JSON keys never change with the language; table labels,
headings, notes and errors that carry a catalogue key do."""

from __future__ import annotations

import argparse
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
    from suanli.i18n import error_text, messages, t

    key = getattr(exc, "key", "")
    text = str(exc)
    if lang != "en" and key in messages():
        text = error_text(key, getattr(exc, "fields", {}), lang)
    return f"suanli: {t('cli.error', lang)}: {text}"
