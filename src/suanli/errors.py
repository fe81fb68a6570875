"""One error hierarchy for everything a user can get wrong.

::

    SuanliError                      base; the CLI turns any of these into exit 2 and one line on stderr
    ├── SpecError                    a model, hardware or job spec that cannot describe a real thing
    │   ├── ConfigError              a config.json / safetensors / gguf file that is malformed or incomplete
    │   └── UnsupportedArchitecture  a model_type with no adapter (the message lists the supported ones)
    ├── LayoutError                  a parallel layout that cannot be built (tp does not divide heads, ...)
    ├── NotFound                     a name that is in no catalog (the message offers the closest names)
    │   ├── UnknownModel
    │   └── UnknownAccelerator
    └── Unavailable                  something the answer needs is not reachable here (offline hub, missing extra)

Every message names the numbers involved and proposes a fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping


class SuanliError(Exception):
    """Base of every error suanli raises on purpose.

    The message is English. An error may also name a message ``key`` of ``suanli/i18n/messages.toml`` and the
    ``fields`` that fill it, so the CLI can say the same thing in the user's language (``--lang zh``)."""

    def __init__(self, *args: object, key: str = "", fields: Mapping[str, object] | None = None) -> None:
        super().__init__(*args)
        self.key = key
        self.fields: dict[str, object] = dict(fields or {})


class SpecError(SuanliError, ValueError):
    """A spec that cannot describe a real model, accelerator or job."""


class ConfigError(SpecError):
    """A model file (config.json, safetensors header, gguf header) that is malformed or incomplete."""


class UnsupportedArchitecture(SpecError):
    """A `model_type` for which no adapter exists."""


class LayoutError(SuanliError, ValueError):
    """A parallel layout that cannot be realised for this model and cluster."""


class NotFound(SuanliError, LookupError):
    """A name that no catalog holds."""


class UnknownModel(NotFound):
    """A model name that is no catalog entry, file, directory or reachable repo id."""


class UnknownAccelerator(NotFound):
    """An accelerator name that is not in the hardware catalog."""


class Unavailable(SuanliError):
    """Something the answer needs cannot be reached here (hub offline, optional package missing)."""


def close_matches(name: str, candidates: Iterable[str], *, limit: int = 3) -> list[str]:
    """The candidates closest to ``name`` (lower-cased), best first; empty when none is close."""
    return difflib.get_close_matches(name.lower(), [c.lower() for c in candidates], n=limit, cutoff=0.6)


def suggest(name: str, candidates: Iterable[str], *, limit: int = 3) -> str:
    """Return ``"; did you mean a, b or c?"`` for the closest candidates, or ``""`` when none is close."""
    matches = close_matches(name, candidates, limit=limit)
    if not matches:
        return ""
    if len(matches) == 1:
        return f"; did you mean {matches[0]}?"
    return f"; did you mean {', '.join(matches[:-1])} or {matches[-1]}?"


def require_positive(name: str, value: float, *, fix: str = "") -> None:
    """Raise SpecError unless ``value`` > 0. Used by spec constructors for sizes and counts. ``fix`` proposes the
    remedy; pass a ``suanli.i18n.Text`` (``Text("fix.…")``) so ``--lang zh`` says it in Chinese too."""
    if value > 0:
        return
    if fix:
        raise SpecError(f"{name} must be positive, got {value}; {fix}", key="error.spec.positive_fix",
                        fields={"name": name, "value": value, "fix": fix})
    raise SpecError(f"{name} must be positive, got {value}", key="error.spec.positive",
                    fields={"name": name, "value": value})


def require_non_negative(name: str, value: float, *, fix: str = "") -> None:
    """Raise SpecError unless ``value`` >= 0; ``fix`` as for ``require_positive``."""
    if value >= 0:
        return
    if fix:
        raise SpecError(f"{name} must be zero or positive, got {value}; {fix}", key="error.spec.non_negative_fix",
                        fields={"name": name, "value": value, "fix": fix})
    raise SpecError(f"{name} must be zero or positive, got {value}", key="error.spec.non_negative",
                    fields={"name": name, "value": value})
