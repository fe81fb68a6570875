"""The web API runs the CLI's own commands: query parameters become the command's argv, the command's own argparse
parser reads them, and the command's own run function builds the report, so the page and ``--json`` can never
disagree. Nothing here computes a number.

``?gpu=h100&gpus=8&sp=true`` on ``/api/train`` runs ``suanli train MODEL --gpu=h100 --gpus=8 --sp --json``; the
object ``emit_json`` would print is returned instead (``cli.render.captured_json``). Bad input raises the same
SuanliError, with the same one line, as the CLI; usage errors (unknown option, bad value) become a ``UsageError``
carrying argparse's line.

No fastapi here: app.py wraps these functions in routes.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from suanli.errors import SpecError, SuanliError

if TYPE_CHECKING:
    from suanli.i18n import Lang

# URL name → the CLI's command words.
COMMANDS: dict[str, tuple[str, ...]] = {
    "params": ("params",), "flops": ("flops",), "train": ("train",), "infer": ("infer",), "fit": ("fit",),
    "simulate": ("simulate",), "plan-train": ("plan", "train"), "plan-serve": ("plan", "serve"),
    "plan-buy": ("plan", "buy"), "models": ("models",), "gpus": ("gpus",), "roofline": ("roofline",),
    "explain": ("explain",),
}
# Options that read or write files on the server: the page never passes them.
FILE_OPTIONS = frozenset({"--export", "--timeline", "--trace", "--calibration", "--help", "--json"})
# Options whose value is a model: a catalog name or Hub repo id only (a local path could read server files).
MODEL_OPTIONS = frozenset({"model", "--reward-model", "--critic-model", "--teacher", "--speculative-model",
                           "--train", "--serve"})
MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?")
# Bounds on the work one request may ask for (the CLI has none; a shared server needs them).
LIMITS: dict[str, int] = {"--requests": 5000, "--top": 50, "--max-gpus": 4096, "--timeline-points": 2000}
MAX_SWEEP_POINTS = 16
MAX_GPU_KINDS = 4  # --gpu h100,a100-80gb,…: each kind multiplies a plan's search
MAX_CONCURRENCY = 4096
TRUE, FALSE = frozenset({"", "1", "true", "on", "yes"}), frozenset({"0", "false", "off", "no"})


class UsageError(SuanliError):
    """A request the command's parser refuses (unknown option, missing or malformed value). ``prog`` is set when the
    message is argparse's own (``argument --tp: …``), so it can be said in ``--lang`` as the CLI says it; else its
    catalogue ``key`` and ``fields`` say it (as any SuanliError's)."""

    def __init__(self, message: str, *, prog: str = "", key: str = "",
                 fields: Mapping[str, object] | None = None) -> None:
        super().__init__(message, key=key, fields=fields)
        self.message, self.prog = message, prog

    def line(self, lang: Lang) -> str:
        """The one line the CLI prints for this refusal in ``lang`` (``cli.main._Parser.error``)."""
        from suanli.cli import lang_option

        if self.prog:
            return lang_option.usage_error_line(self.message, self.prog, lang)
        return lang_option.error_line(self, lang)


class CommandError(SuanliError):
    """A command that refused its input; ``line`` is what the CLI prints on stderr for it (in ``--lang``)."""

    def __init__(self, line: str) -> None:
        super().__init__(line)
        self.line = line


@dataclass(frozen=True, slots=True)
class CommandRunner:
    """The CLI's parser, built once, whose every (sub)parser raises UsageError instead of exiting."""

    parser: argparse.ArgumentParser

    @staticmethod
    def build() -> CommandRunner:
        from suanli.cli.main import build_parser

        parser = build_parser()
        for each in _all_parsers(parser):
            each.error = _raiser(each)  # type: ignore[method-assign]
        return CommandRunner(parser)

    def subparser(self, words: Sequence[str]) -> argparse.ArgumentParser:
        node = self.parser
        for word in words:
            children = _subcommands(node)
            if word not in children:
                raise UsageError(f"this installation has no `suanli {' '.join(words)}` command",
                                 key="error.web.no_subcommand", fields={"words": ' '.join(words)})
            node = children[word]
        return node

    def run(self, command: str, params: Mapping[str, Sequence[str]], *,
            model_dir: str | None = None) -> dict[str, Any]:
        """The ``--json`` object of ``suanli <command> <params>``, run as ``cli.main.main`` runs it (in the language
        of ``--lang``); a refusal raises CommandError with the CLI's stderr line."""
        return self._run(command, params, model_dir=model_dir)[0]

    def run_said(self, command: str, params: Mapping[str, Sequence[str]], *,
                 model_dir: str | None = None) -> dict[str, Any]:
        """``{"json": <the --json object>, "said": {path: text}}``: the same object, and each of its texts that has a
        catalogue key (headlines, advice, notes, layouts: ``i18n.Text``) as the CLI's tables say it in ``lang``, by
        its dotted path (``memory.suggestions.0.change``); empty in English. The JSON itself is never translated."""
        payload, raw, lang = self._run(command, params, model_dir=model_dir)
        return {"json": payload, "said": said_texts(raw, lang)}

    def _run(self, command: str, params: Mapping[str, Sequence[str]], *,
             model_dir: str | None = None) -> tuple[dict[str, Any], dict[str, Any], Lang]:
        from suanli.cli import lang_option
        from suanli.cli.render import captured_json, captured_payloads
        from suanli.i18n import use_lang

        lang = _request_lang(params)
        try:
            words = command_words(command)
            argv = [*words, *to_argv(self.subparser(words), params, model_dir=model_dir), "--json"]
            args = self.parser.parse_args(argv)
            lang = lang_option.chosen_lang(args)
            with captured_json() as sink, captured_payloads() as raw, use_lang(lang):
                args.run(args)
        except UsageError as exc:  # argparse's line (cli.main._Parser.error), in the language asked for
            raise CommandError(exc.line(lang)) from exc
        except SuanliError as exc:
            raise CommandError(lang_option.error_line(exc, lang)) from exc
        if len(sink) != 1:
            raise RuntimeError(f"suanli {' '.join(words)} emitted {len(sink)} JSON objects, expected one")
        return sink[0], raw[0], lang


def said_texts(payload: Any, lang: Lang, path: str = "") -> dict[str, str]:
    """Every ``i18n.Text`` in ``payload`` said in ``lang``, by dotted path, where that differs from its English."""
    from suanli.i18n import Text

    if isinstance(payload, Text):
        said = payload.said_in(lang)
        return {path: said} if said != str(payload) else {}
    items: Iterable[tuple[Any, Any]] = ()
    if isinstance(payload, Mapping):
        items = payload.items()
    elif isinstance(payload, list | tuple):
        items = enumerate(payload)
    found: dict[str, str] = {}
    for key, value in items:
        found |= said_texts(value, lang, f"{path}.{key}" if path else str(key))
    return found


def _request_lang(params: Mapping[str, Sequence[str]]) -> Lang:
    """The language asked for (``lang``, spelled as ``--lang`` takes it: ``zh``, ``ZH``, ``zh_CN``), for errors raised
    before the parser reads it; else the default."""
    return lang_asked((params.get("lang") or [""])[-1])


def lang_asked(asked: str) -> Lang:
    """``asked`` as ``--lang`` reads it (``zh``, ``ZH``, ``zh_CN``); the default language when it names none."""
    from suanli.i18n import default_lang, parse_lang

    try:
        return parse_lang(asked)
    except SpecError:
        return default_lang()


def command_words(command: str) -> tuple[str, ...]:
    """``plan-train`` → ``("plan", "train")``; an unknown name is a UsageError listing the known ones."""
    if command not in COMMANDS:
        raise UsageError(f"no command '{command}' in the web API; use one of {', '.join(COMMANDS)}",
                         key="error.web.no_command", fields={"command": command, "commands": ', '.join(COMMANDS)})
    return COMMANDS[command]


def to_argv(parser: argparse.ArgumentParser, params: Mapping[str, Sequence[str]], *,
            model_dir: str | None = None) -> list[str]:
    """Query parameters → argv for ``parser``: ``model`` is the positional MODEL, ``micro-batch`` /
    ``micro_batch`` name ``--micro-batch``, a flag takes true/false; every value is checked and bounded."""
    options = _options(parser)
    positionals = [a.dest for a in parser._actions if not a.option_strings and a.nargs != argparse.PARSER]
    takes_model = "model" in positionals
    argv: list[str] = []
    for key, values in params.items():
        if key in positionals:
            if key != "model" or model_dir is None:
                argv.insert(positionals.index(key), _checked_model(key, values[-1]) if key == "model"
                            else _positional(key, values[-1]))
            continue
        name = "--" + key.replace("_", "-")
        action = options.get(name)
        if action is None or name in FILE_OPTIONS:
            known = sorted(o.removeprefix("--") for o in options if o not in FILE_OPTIONS)
            raise UsageError(f"'{key}' is not an option of this command; use one of: {', '.join(known)}",
                             key="error.web.not_an_option", fields={"option": key, "known": ', '.join(known)})
        argv += _option_argv(name, action, values[-1])
    if model_dir is not None:
        if not takes_model:
            raise UsageError("this command names its models with options; a pasted config.json needs params, "
                             "flops, train, infer, fit, simulate, plan-train or plan-serve",
                             key="error.web.pasted_needs_model")
        argv.insert(0, model_dir)
    return argv


def _option_argv(name: str, action: argparse.Action, value: str) -> list[str]:
    if action.nargs == 0:  # a flag
        if value.lower() in TRUE:
            return [name]
        if value.lower() in FALSE:
            return []
        raise UsageError(f"{name} is a flag: give true or false, not '{value}'",
                         key="error.web.flag_value", fields={"option": name, "value": value})
    if name in MODEL_OPTIONS:
        value = _checked_model(name, value)
    _check_bound(name, value)
    return [f"{name}={value}"]


def _positional(name: str, value: str) -> str:
    if value.startswith("-") or len(value) > 200:
        raise UsageError(f"{name} '{value[:100]}' is not a valid value",
                         key="error.web.positional_value", fields={"name": name, "value": value[:100]})
    return value


def _checked_model(name: str, value: str) -> str:
    if not MODEL_NAME.fullmatch(value) or ".." in value:
        raise SpecError(f"{name} '{value[:100]}': the web page takes a catalog name or a Hugging Face repo id "
                        "(org/name); paste a config.json to use your own model",
                        key="error.web.model_name", fields={"option": name, "value": value[:100]})
    return value


def _check_bound(name: str, value: str) -> None:
    """Caps on requests, candidates and sweep points, so one request cannot occupy the server for long."""
    numbers = [float(part) for part in value.split(",") if _is_number(part)]
    if name in LIMITS and numbers and max(numbers) > LIMITS[name]:
        raise SpecError(f"{name} {value} is over the web server's limit of {LIMITS[name]}; run the CLI for more",
                        key="error.web.over_limit", fields={"option": name, "value": value, "limit": LIMITS[name]})
    if name == "--gpu" and len(value.split(",")) > MAX_GPU_KINDS:
        raise SpecError(f"--gpu: at most {MAX_GPU_KINDS} accelerators at once on the web server; run the CLI for more",
                        key="error.web.gpu_kinds", fields={"limit": MAX_GPU_KINDS})
    if name in ("--concurrency", "--rate"):
        if len(value.split(",")) > MAX_SWEEP_POINTS:
            raise SpecError(f"{name}: at most {MAX_SWEEP_POINTS} sweep points on the web server",
                            key="error.web.sweep_points", fields={"option": name, "limit": MAX_SWEEP_POINTS})
        if name == "--concurrency" and numbers and max(numbers) > MAX_CONCURRENCY:
            raise SpecError(f"--concurrency {value} is over the web server's limit of {MAX_CONCURRENCY} clients",
                            key="error.web.concurrency_limit", fields={"value": value, "limit": MAX_CONCURRENCY})


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """``--long-name`` → its action (the longest spelling of each option)."""
    return {max(a.option_strings, key=len): a for a in parser._actions if a.option_strings}


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    # argparse has no public way to list sub-parsers; _SubParsersAction.choices is stable since Python 3.2.
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _all_parsers(parser: argparse.ArgumentParser) -> Iterable[argparse.ArgumentParser]:
    yield parser
    for child in _subcommands(parser).values():
        yield from _all_parsers(child)


def _raiser(parser: argparse.ArgumentParser) -> Any:
    """``parser.error`` that raises the CLI's one line (``suanli: error: …``, see main._Parser) as a UsageError."""

    def error(message: str) -> NoReturn:
        raise UsageError(message, prog=parser.prog)

    return error
