"""``--help`` in the reader's language. argparse's help strings, descriptions, group titles and fixed words ("usage:",
"options", "show this help message and exit") are said through the catalogue's ``help.*`` messages
(``i18n/help/*.toml``), looked up by their English text, as table labels are; a string without a message stays
English. ``%(default)s``-style placeholders are the same in both languages (a test guards it). English help never
reads the catalogue, so ``suanli --help`` stays fast."""

from __future__ import annotations

import argparse
import functools
import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType


class SaidHelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, each text it lays out said in Chinese when the catalogue has it, wrapped by display
    width between Chinese characters and whole ASCII words (textwrap would cut an option name in two), and section
    headings closed with a full-width colon."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return wrap_mixed(self._whitespace_matcher.sub(" ", text).strip(), width)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(indent + line for line in self._split_lines(text, width - len(indent)))

    def format_help(self) -> str:
        return _HEADING_COLON.sub(lambda match: f"{match.group(1)}：\n", super().format_help())

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


# a section heading argparse closed with an ASCII colon, when it is Chinese
_HEADING_COLON = re.compile(r"^([^\s].*[\u4e00-\u9fff）]):\n", re.MULTILINE)
# one wrapping unit: a CJK character or full-width punctuation, an ASCII word, or a run of spaces
_UNITS = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]|[^\s\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]+|\s+")
_NO_LINE_START = frozenset("，。；：、）》」』！？,.;:)")  # punctuation that stays at the end of the line before
_NO_LINE_END = frozenset("（《「『(")  # punctuation that moves to the start of the next line


def wrap_mixed(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` terminal columns (a CJK character takes two), breaking between CJK
    characters or at spaces, never inside an ASCII word, never starting a line with closing punctuation nor ending
    one with an opening bracket."""
    from suanli.i18n import display_width

    lines: list[str] = []
    line, used = "", 0
    for unit in _UNITS.findall(text):
        size = display_width(unit)
        if unit.isspace():
            if line:
                line, used = line + " ", used + 1
            continue
        if line and used + size > width and unit not in _NO_LINE_START:
            carried = line[-1] if line[-1] in _NO_LINE_END else ""  # an opening bracket goes with what it opens
            lines.append(line[:len(line) - len(carried)].rstrip())
            line, used = carried, display_width(carried)
        line, used = line + unit, used + size
    if line.strip():
        lines.append(line.rstrip())
    return lines


def said_help(text: str) -> str:
    """``text`` in Chinese when a ``help.*`` message has it as its English, else ``text``."""
    return _chinese_help().get(text) or text


@functools.cache
def _chinese_help() -> Mapping[str, str]:
    from suanli.i18n import messages

    return MappingProxyType({entry["en"]: entry["zh"] for key, entry in messages().items() if key.startswith("help.")})
