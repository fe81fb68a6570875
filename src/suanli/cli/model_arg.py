"""The MODEL argument of every command that reads a model, with ``--as FAMILY``.

``--as llama`` reads a config.json whose ``model_type`` has no adapter as a standard decoder of a supported
family; every output of such a run is marked approximate (a note, and ``"approximate": true`` in --json).
A new command adds both with ``add_model_argument(parser)`` and reads them with ``load_model_arg(args)``
(or passes ``as_family=args.as_family`` to ``load_model``).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from suanli.spec.model import ModelSpec
    from suanli.spec.resolve import ResolvedModel

MODEL_HELP = ("catalog name (see `suanli models`), path to config.json, model directory, .gguf file, "
              "or Hugging Face repo id")
AS_HELP = ("read MODEL's config as a standard decoder of this supported model_type (e.g. llama, qwen3, mixtral) "
           "when its own model_type has no adapter; results are marked approximate")


def add_model_argument(parser: argparse.ArgumentParser, help_text: str = MODEL_HELP) -> None:
    """Add the positional MODEL and ``--as FAMILY`` to a command's parser."""
    parser.add_argument("model", metavar="MODEL", help=help_text)
    add_as_option(parser)


def add_as_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--as FAMILY`` (read into ``args.as_family``) to a parser that already has MODEL."""
    parser.add_argument("--as", dest="as_family", metavar="FAMILY", help=AS_HELP)


def resolve_model_arg(args: argparse.Namespace) -> ResolvedModel:
    """MODEL resolved (with ``--as`` when given)."""
    from suanli.spec.resolve import resolve_model

    return resolve_model(args.model, as_family=args.as_family)


def load_model_arg(args: argparse.Namespace) -> ModelSpec:
    """The ModelSpec of MODEL (with ``--as`` when given)."""
    return resolve_model_arg(args).spec
