"""``suanli explain TERM``: a glossary entry in Chinese or English with a number suanli computes live, and
``suanli explain --list``, the glossary's index."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from suanli.cli.common import Commands

if TYPE_CHECKING:
    from suanli.glossary import Entry, ExampleResult
    from suanli.i18n import Lang


def register(commands: Commands) -> None:
    explain = commands.add_parser("explain", help="explain a term of large-model compute (zh/en), with a live example",
                                  description="A glossary entry (算力 terms: FLOPS vs FLOPs, ZeRO-3, KV cache, "
                                  "张量并行, TTFT, ...) in Chinese or English, with a number suanli computes "
                                  "and the command that computes it.")
    explain.add_argument("term", nargs="?", help="a term, alias or Chinese name (case-insensitive), e.g. kv-cache, "
                         "ZeRO-3, 张量并行")
    explain.add_argument("--list", action="store_true", help="list every term")
    explain.add_argument("--no-example", action="store_true", help="skip computing the live example")
    explain.add_argument("--json", action="store_true", help="print one JSON object (term, zh, en, example)")
    explain.set_defaults(run=run_explain)


def run_explain(args: argparse.Namespace) -> int:
    from suanli.cli.lang_option import chosen_lang
    from suanli.cli.render import emit_json
    from suanli.errors import SpecError
    from suanli.glossary import entry_json, lookup, run_example
    from suanli.i18n import t

    lang = chosen_lang(args)
    if args.list:
        return _run_list(args, lang)
    if not args.term:
        raise SpecError(t("explain.no_term", "en"), key="explain.no_term")
    entry = lookup(args.term)
    result = None if args.no_example else run_example(entry.example)
    if args.json:
        emit_json(entry_json(entry, result))
    else:
        print(render_entry(entry, result, lang))
    return 0


def render_entry(entry: Entry, result: ExampleResult | None, lang: Lang) -> str:
    """The entry for people: name (and the other language's), aliases, explanation, example and its command."""
    from suanli.i18n import t

    other = entry.name_en if lang == "zh" else entry.name_zh
    lines = [f"{entry.name(lang)}  ({other}; {entry.id})", "",
             entry.text(lang), ""]
    aliases = [a for a in entry.aliases if a.casefold() not in {entry.name_en.casefold(), entry.name_zh.casefold()}]
    if aliases:
        lines += [f"{t('explain.also_called', lang)}: {', '.join(aliases)}", ""]
    if result is not None:
        lines += [f"{t('explain.example', lang)}: {result.sentence(entry.example, lang)}",
                  f"  {t('explain.computed_by', lang)}: {result.command}  → {entry.example.path}"]
    else:
        lines.append(f"{t('explain.computed_by', lang)}: suanli {entry.example.command} --json  → {entry.example.path}")
    return "\n".join(lines)


def _run_list(args: argparse.Namespace, lang: Lang) -> int:
    from suanli.cli.render import emit_json, table
    from suanli.glossary import SECTIONS, load_glossary
    from suanli.i18n import t

    entries = load_glossary()
    if args.json:
        terms: list[dict[str, Any]] = [{"term": e.id, "section": e.section, "name_en": e.name_en,
                                        "name_zh": e.name_zh, "aliases": list(e.aliases)} for e in entries]
        emit_json({"command": "explain", "terms": terms})
        return 0
    blocks = []
    for section in SECTIONS:
        rows = [[e.name(lang), e.id] for e in entries if e.section == section]
        blocks.append(f"{t(f'explain.section.{section}', lang)}\n{table(['name', 'term'], rows, align='ll')}")
    print("\n\n".join(blocks))
    return 0
