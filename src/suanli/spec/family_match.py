"""A config.json whose ``model_type`` has no adapter: the closest supported families, and reading it as one of
them (``--as FAMILY``).

Reading a config as another family is an approximation: the adapter of that family names the keys it reads and
builds that family's standard block, so whatever the real architecture adds or changes (extra projections,
norms, experts, other layer kinds) is not counted. A spec read this way carries the reason in its ``extras``
under ``APPROXIMATE``, and every report marks its numbers approximate.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping
from typing import Any

from suanli.errors import UnsupportedArchitecture
from suanli.i18n import Text
from suanli.spec.hf_keys import canonical_config
from suanli.spec.model import ModelSpec

APPROXIMATE = "approximate"  # the ModelSpec.extras key whose note says why the spec is approximate

_HEAD_SUFFIX = re.compile(r"(For[A-Z]\w*|LMHeadModel|Model)$")


def closest_families(config: Mapping[str, Any], supported: Collection[str], *, limit: int = 3) -> list[str]:
    """Supported families closest to the config's ``model_type`` and to its ``architectures`` class names
    (``Qwen3NextForCausalLM`` → ``qwen3next``), closest first: families whose whole name appears in one of
    those names (``qwen3`` in ``qwen3next``) rank first, then by ``difflib`` similarity (at least 0.6)."""
    names = _names_to_match(config)
    scored = []
    for family in supported:
        key = _plain(family)
        similarity = max((difflib.SequenceMatcher(None, name, key).ratio() for name in names), default=0.0)
        contained = any(key in name for name in names)
        if contained or similarity >= 0.6:
            scored.append((not contained, -similarity, family))
    return [family for *_, family in sorted(scored)[:limit]]


def _plain(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def _names_to_match(config: Mapping[str, Any]) -> list[str]:
    names = [str(config.get("model_type") or "")]
    architectures = config.get("architectures")
    if isinstance(architectures, list):
        names += [_HEAD_SUFFIX.sub("", a) for a in architectures if isinstance(a, str)]
    return [_plain(n) for n in names if n]


def unsupported_error(config: Mapping[str, Any], name: str, supported: Collection[str]) -> UnsupportedArchitecture:
    """The one-line error for a model_type without an adapter: the closest families and the ``--as`` way out."""
    model_type = config.get("model_type")
    architectures = config.get("architectures")
    shown = f" ({', '.join(map(str, architectures))})" if isinstance(architectures, list) and architectures else ""
    close = closest_families(config, supported)
    if close:
        fix = Text("error.unsupported.closest", families=", ".join(close), family=close[0])
    else:
        fix = Text("error.unsupported.any")
    families = ", ".join(sorted(supported))
    return UnsupportedArchitecture(
        f"{name}: model_type '{model_type}'{shown} is not supported; {fix} (supported: {families})",
        key="error.unsupported", fields={"name": name, "model_type": model_type, "shown": shown, "fix": fix,
                                         "supported": families},
    )


def config_as(config: Mapping[str, Any], family: str, supported: Collection[str], *, name: str) -> dict[str, Any]:
    """``config`` relabelled as ``family`` (its own spellings resolved first, under its own model_type)."""
    if family not in supported:
        close = difflib.get_close_matches(family.lower(), list(supported), n=3, cutoff=0.6)
        did_you_mean = Text("error.did_you_mean", names=", ".join(close)) if close else ""
        raise UnsupportedArchitecture(f"{name}: --as '{family}' is not a supported family{did_you_mean} "
                                      f"(supported: {', '.join(sorted(supported))})", key="error.unknown_family",
                                      fields={"name": name, "family": family, "did_you_mean": did_you_mean,
                                              "supported": ", ".join(sorted(supported))})
    return {**canonical_config(config), "model_type": family}


def approximate_note(config: Mapping[str, Any], family: str) -> str:
    """Why a spec read with ``--as family`` is approximate."""
    original = config.get("model_type")
    what = Text("note.as.config", model_type=original) if original else Text("note.as.config_untyped")
    return Text("note.as.approximate", what=what, family=family)


def approximation(spec: ModelSpec) -> str:
    """The reason a spec is approximate (read with ``--as``), or "" when it was read by its own adapter."""
    return dict(spec.extras).get(APPROXIMATE, "")
