"""The glossary behind ``suanli explain TERM``: every concept of large-model compute (算力) in English and Chinese,
each with a live example that suanli computes.

The entries are data (``i18n/glossary.toml``). An entry's example names a suanli command and the JSON path of one
number in that command's ``--json`` object; ``run_example`` runs the command in-process through the CLI's own parser
and command function (the code ``suanli`` runs, as the web server does), so the glossary can never quote a number
the command would not print. A path is dot-separated: object keys, list indexes (``gpus.0``), or ``key=value`` to pick
the list item whose ``key`` equals ``value`` (``rows.gpu=h100-sxm-80gb.min_gpus``).
"""

from __future__ import annotations

import functools
import shlex
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from suanli import units
from suanli.errors import NotFound, close_matches, suggest

if TYPE_CHECKING:
    import argparse

    from suanli.i18n import Lang

SECTIONS = ("hardware", "metrics", "parallelism", "precision", "inference", "models", "cost")


@dataclass(frozen=True, slots=True, kw_only=True)
class Example:
    """A number the glossary quotes: ``suanli COMMAND --json`` and where in its object the number is."""

    command: str  # the arguments after ``suanli``, without --json
    path: str
    unit: str  # how to show it: a key of _FORMATS
    en: str  # the sentence around the number, "{value}" where it goes
    zh: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One glossary term in both languages."""

    id: str
    section: str
    name_en: str
    name_zh: str
    aliases: tuple[str, ...]
    en: str
    zh: str
    example: Example

    def names(self) -> tuple[str, ...]:
        """Every spelling that finds this entry (compared case-insensitively)."""
        return (self.id, self.name_en, self.name_zh, *self.aliases)

    def name(self, lang: Lang) -> str:
        return self.name_zh if lang == "zh" else self.name_en

    def text(self, lang: Lang) -> str:
        return self.zh if lang == "zh" else self.en


@dataclass(frozen=True, slots=True, kw_only=True)
class ExampleResult:
    """A computed example: the number, how it reads, and the command that prints it."""

    value: float
    shown: str
    command: str  # the full ``suanli …`` command line

    def sentence(self, example: Example, lang: Lang) -> str:
        return (example.zh if lang == "zh" else example.en).format(value=self.shown)


@functools.cache
def load_glossary() -> tuple[Entry, ...]:
    """Every entry, in the file's order (read once per process)."""
    text = resources.files("suanli.i18n").joinpath("glossary.toml").read_text(encoding="utf-8")
    return tuple(_entry(raw) for raw in tomllib.loads(text)["term"])


def _entry(raw: Mapping[str, Any]) -> Entry:
    example = raw["example"]
    return Entry(id=raw["id"], section=raw["section"], name_en=raw["name_en"], name_zh=raw["name_zh"],
                 aliases=tuple(raw.get("aliases", ())), en=raw["en"].strip(), zh=raw["zh"].strip(),
                 example=Example(command=example["command"], path=example["path"], unit=example["unit"],
                                 en=example["en"], zh=example["zh"]))


@functools.cache
def _index() -> Mapping[str, Entry]:
    return {_fold(name): entry for entry in load_glossary() for name in entry.names()}


def _fold(name: str) -> str:
    """Case, spaces, hyphens and underscores do not matter: "ZeRO 3" = "zero-3" = "zero_3"."""
    return "".join(name.casefold().replace("-", " ").replace("_", " ").split())


def lookup(term: str) -> Entry:
    """The entry for ``term`` (its id, English or Chinese name, or an alias), else NotFound with the closest terms."""
    entry = _index().get(_fold(term))
    if entry is None:
        names = sorted({name.casefold() for e in load_glossary() for name in e.names()})
        raise NotFound(f"no glossary entry for {term!r}{suggest(term, names)}; see `suanli explain --list`",
                       key="error.unknown_term", fields={"term": term, "suggestions": close_matches(term, names)})
    return entry


def run_example(example: Example) -> ExampleResult:
    """Run the example's command (in-process, through the CLI's parser) and read its number."""
    payload = command_json(shlex.split(example.command))
    value = float(json_path(payload, example.path))
    return ExampleResult(value=value, shown=format_value(value, example.unit),
                         command=f"suanli {example.command} --json")


def command_json(argv: Sequence[str]) -> dict[str, Any]:
    """The object ``suanli ARGV --json`` prints, computed in this process."""
    from suanli.cli.render import captured_json

    args = _parser().parse_args([*argv, "--json"])
    with captured_json() as sink:
        args.run(args)
    return sink[0]


@functools.cache
def _parser() -> argparse.ArgumentParser:
    from suanli.cli.main import build_parser

    return build_parser()


def json_path(payload: Any, path: str) -> Any:
    """``json_path(obj, "rows.gpu=h100-sxm-80gb.min_gpus")``: keys, list indexes and ``key=value`` list picks."""
    node = payload
    for part in path.split("."):
        if isinstance(node, list) and "=" in part:
            key, wanted = part.split("=", 1)
            node = next(item for item in node if str(item.get(key)) == wanted)
        elif isinstance(node, list):
            node = node[int(part)]
        else:
            node = node[part]
    return node


def format_value(value: float, unit: str) -> str:
    """A number as the glossary shows it (binary units for memory, decimal SI prefixes for rates and FLOPs)."""
    if unit not in _FORMATS:
        raise ValueError(f"glossary unit {unit!r} is not one of {', '.join(_FORMATS)}")
    return _FORMATS[unit](value)


# An example's ``unit`` → how its number reads.
_FORMATS: Mapping[str, Callable[[float], str]] = {
    "bytes": units.format_bytes,
    "bytes_decimal": lambda v: units.format_bytes(v, binary=False),
    "flop": lambda v: units.format_decimal(v, "FLOP"),
    "flop_per_s": lambda v: units.format_decimal(v, "FLOP/s"),
    "bytes_per_s": lambda v: units.format_decimal(v, "B/s"),
    "s": lambda v: f"{v:.3g} s",
    "ms": lambda v: f"{v * 1e3:.3g} ms",
    "tokens_per_s": lambda v: f"{v:,.0f} tokens/s",
    "count": units.format_count,
    "percent": lambda v: f"{100 * v:.1f}%",
    "usd": lambda v: f"${v:,.2f}",
    "kwh": lambda v: f"{v:,.1f} kWh",
    "kg": lambda v: f"{v:,.1f} kg",
    "ratio": lambda v: f"{v:.3g}",
}


def entry_json(entry: Entry, result: ExampleResult | None) -> dict[str, Any]:
    """``suanli explain TERM --json``: ``term``, ``zh``, ``en``, ``example`` (both languages; keys never translate)."""
    example: dict[str, Any] = {"command": f"suanli {entry.example.command} --json", "path": entry.example.path}
    if result is not None:
        example |= {"value": result.value, "shown": result.shown, "en": result.sentence(entry.example, "en"),
                    "zh": result.sentence(entry.example, "zh")}
    return {"command": "explain", "term": entry.id, "section": entry.section, "name_en": entry.name_en,
            "name_zh": entry.name_zh, "aliases": list(entry.aliases), "en": entry.en, "zh": entry.zh,
            "example": example}
