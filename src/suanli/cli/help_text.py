"""``--help`` in the reader's language. argparse's help strings, descriptions, group titles and fixed words ("usage:",
"options", "show this help message and exit") are said through the catalogue's ``help.*`` messages
(``i18n/help/*.toml``), looked up by their English text, as table labels are; a string without a message stays
English. ``%(default)s``-style placeholders are the same in both languages (a test guards it). English help never
reads the catalogue, so ``suanli --help`` stays fast."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Iterable, Mapping
from types import MappingProxyType


class SaidHelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, each text it lays out said in Chinese when the catalogue has it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = super()._get_help_string(action)
        return said_help(text) if text else text

    def add_text(self, text: str | None) -> None:
        super().add_text(said_help(text) if text and text is not argparse.SUPPRESS else text)

    def start_section(self, heading: str | None) -> None:
        super().start_section(said_help(heading) if heading else heading)

    def add_usage(self, usage: str | None, actions: Iterable[argparse.Action],
                  groups: Iterable[argparse._MutuallyExclusiveGroup], prefix: str | None = None) -> None:
        super().add_usage(usage, actions, groups, said_help("usage: ") if prefix is None else prefix)


def said_help(text: str) -> str:
    """``text`` in Chinese when a ``help.*`` message has it as its English, else ``text``."""
    return _chinese_help().get(text) or text


@functools.cache
def _chinese_help() -> Mapping[str, str]:
    from suanli.i18n import messages

    return MappingProxyType({entry["en"]: entry["zh"] for key, entry in messages().items() if key.startswith("help.")})
