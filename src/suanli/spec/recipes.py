"""The defaults a training framework's own recipes use, per method: gradient checkpointing for PEFT jobs on
the HF stack, FSDP's full sharding, Megatron's distributed optimizer. Data in ``catalog/recipes.toml``, each
with its source; ``suanli train`` applies them to the options a user left unset and prints them."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

from suanli.errors import ConfigError
from suanli.i18n import Translated
from suanli.spec.training import Framework, Method

Setting = Literal["recompute", "zero"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RecipeDefault:
    """One default of one framework's recipes: ``setting`` takes ``value`` for the methods named."""

    framework: Framework
    methods: Literal["full", "peft", "*"]
    setting: Setting
    value: str
    source: Translated  # English as cited, with the catalog's Chinese (``source_zh``) for --lang zh

    def applies_to(self, method: Method) -> bool:
        return self.methods == "*" or (self.methods == "peft") == (method is not Method.FULL)


@cache
def recipe_catalog() -> tuple[RecipeDefault, ...]:
    text = resources.files("suanli").joinpath("catalog", "recipes.toml").read_text(encoding="utf-8")
    return tuple(_entry(raw) for raw in tomllib.loads(text)["default"])


def _entry(raw: dict[str, object]) -> RecipeDefault:
    methods, setting = raw["methods"], raw["setting"]
    if methods not in ("full", "peft", "*") or setting not in ("recompute", "zero") or "source_zh" not in raw:
        raise ConfigError(f"recipes.toml: bad entry {raw!r}; methods is full|peft|*, setting recompute|zero, "
                          "and source_zh says the source in Chinese",
                          key="error.recipes.bad_entry", fields={"entry": raw})
    return RecipeDefault(framework=Framework(str(raw["framework"])), methods=methods, setting=setting,
                         value=str(raw["value"]), source=Translated(str(raw["source"]), str(raw["source_zh"])))


def recipe_defaults(framework: Framework, method: Method) -> dict[Setting, RecipeDefault]:
    """The framework's defaults for this method, by setting (the catalog's first match wins)."""
    found: dict[Setting, RecipeDefault] = {}
    for entry in recipe_catalog():
        if entry.framework is framework and entry.applies_to(method):
            found.setdefault(entry.setting, entry)
    return found
