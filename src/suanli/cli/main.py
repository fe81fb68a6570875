"""``suanli`` entry point: builds the parser, dispatches, and turns every SuanliError into exit status 2
with one line on stderr. Command modules import the core lazily so ``suanli --help`` starts fast."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from suanli.cli import (
    bench_commands,
    explain_commands,
    fit_commands,
    hardware_commands,
    infer_commands,
    lang_option,
    measure_commands,
    model_commands,
    plan_commands,
    probe_commands,
    roofline_commands,
    simulate_commands,
    train_commands,
    web_commands,
)
from suanli.cli.common import Commands

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2), like every other bad input."""

    def error(self, message: str) -> NoReturn:
        from suanli.i18n import current_lang

        self.exit(EXIT_USAGE, lang_option.usage_error_line(message, self.prog, current_lang()) + "\n")

    def _get_formatter(self) -> argparse.HelpFormatter:
        """Help in the language of ``--lang`` (cli/help_text.py); English reads no catalogue."""
        from suanli.i18n import current_lang

        if current_lang() == "en":
            return super()._get_formatter()
        from suanli.cli.help_text import SaidHelpFormatter

        return SaidHelpFormatter(prog=self.prog)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="suanli",
        description="算力 — will this model fit, how fast will it run, and what will it cost? "
        "Every number can explain its formula (--explain).",
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="show the version and exit")
    commands: Commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    model_commands.register(commands)
    train_commands.register(commands)
    infer_commands.register(commands)
    fit_commands.register(commands)
    simulate_commands.register(commands)
    plan_commands.register(commands)
    hardware_commands.register(commands)
    roofline_commands.register(commands)
    probe_commands.register(commands)
    bench_commands.register(commands)
    measure_commands.register(commands)
    web_commands.register(commands)
    explain_commands.register(commands)
    lang_option.install(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from suanli.i18n import use_lang

    parser = build_parser()
    with use_lang(lang_option.lang_in(argv)):  # a usage error is said in the language asked for
        args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        with use_lang(lang_option.chosen_lang(args)):
            parser.print_help()
        return 0
    from suanli.errors import SuanliError

    lang = lang_option.chosen_lang(args)
    try:
        with use_lang(lang):
            code: int = args.run(args)
    except SuanliError as exc:
        sys.stderr.write(lang_option.error_line(exc, lang) + "\n")
        return EXIT_USAGE
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug in suanli: one line, no traceback, unless asked for
        if os.environ.get("SUANLI_DEBUG"):
            raise
        sys.stderr.write(f"suanli: internal error: {type(exc).__name__}: {exc} "
                         "(please report it; set SUANLI_DEBUG=1 for the traceback)\n")
        return 1
    return code


class _VersionAction(argparse.Action):
    """``--version``, reading the installed version only when asked (importlib.metadata costs ~20 ms)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        sys.stdout.write(f"suanli {_version()}\n")  # stdout, as argparse's own version action prints
        parser.exit(0)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("suanli")
    except PackageNotFoundError:
        return "unknown"
