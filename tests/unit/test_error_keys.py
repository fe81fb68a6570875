"""Every error suanli raises can be said in Chinese: each ``SpecError(…)`` / ``LayoutError(…)`` / … in the package
names a catalogue key, the catalogue's English is the text the raise site writes, and the Chinese is a translation.

The check reads the source (``ast``), so it covers the errors no test provokes. Where the message at the raise site
is a literal or an f-string, its literal words must be the catalogue's English with each ``{field}`` standing for
one ``{expression}`` of the f-string (a ``{name!r}`` may stand for ``'{name}'``)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from suanli import errors, i18n
from suanli.i18n import messages

SRC = Path(__file__).parents[2] / "src" / "suanli"
ERRORS = {name for name, value in vars(errors).items()
          if isinstance(value, type) and issubclass(value, errors.SuanliError)}
HOLE = "\0"  # one {expression} of an f-string, or one {field} of a message
CJK = re.compile(r"[\u4e00-\u9fff]")


def _error_calls() -> list[tuple[str, ast.Call]]:
    """(file:line, call) for every call of a SuanliError class in the package."""
    calls = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                if name in ERRORS:
                    calls.append((f"{path.relative_to(SRC)}:{node.lineno}", node))
    return calls


def _literal_key(call: ast.Call) -> str | None:
    key = next((k.value for k in call.keywords if k.arg == "key"), None)
    return key.value if isinstance(key, ast.Constant) and isinstance(key.value, str) else None


def _template(node: ast.expr) -> str | None:
    """The words of a literal message with each ``{expression}`` as HOLE; None when it is not a literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else HOLE for v in node.values)  # type: ignore[misc]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _template(node.left), _template(node.right)
        return None if left is None or right is None else left + right
    return None


def _matches(code: str, english: str) -> bool:
    """Whether the raise site's words are the catalogue's English: the message with its ``{fields}`` as HOLE must
    match the code's words with each HOLE standing for any text (a ``{name!r}`` adds quotes, a helper's fragment
    may be one field or several)."""
    message = re.sub(r"\{[^{}]*\}", HOLE, english.replace("{{", "\1").replace("}}", "\2"))
    message = message.replace("\1", "{").replace("\2", "}")
    pattern = ".*".join(re.escape(part) for part in code.split(HOLE))
    return re.fullmatch(pattern, message, flags=re.DOTALL) is not None


def test_every_error_raised_in_the_package_names_a_catalogue_key() -> None:
    calls = _error_calls()
    assert len(calls) > 300, "the scan found the package's errors (391 when written)"
    keyless = [where for where, call in calls if not any(k.arg == "key" for k in call.keywords)]
    assert not keyless, f"{len(keyless)} errors without key= (they cannot be said in --lang zh): {keyless}"


def test_each_error_key_is_in_the_catalogue_and_its_english_is_the_raise_sites_text() -> None:
    catalogue = messages()
    missing, differ = [], []
    for where, call in _error_calls():
        key = _literal_key(call)
        if key is None:
            continue
        if key not in catalogue:
            missing.append((where, key))
            continue
        code = _template(call.args[0]) if call.args else None
        if code is not None and not _matches(code, catalogue[key]["en"]):
            differ.append((where, key, code.replace(HOLE, "{…}"), catalogue[key]["en"]))
    assert not missing, f"keys absent from the catalogue: {missing}"
    assert not differ, f"the catalogue's English is not the message raised: {differ}"


def test_error_messages_are_translated_not_copied() -> None:
    untranslated = [key for key, entry in messages().items()
                    if key.startswith("error.") and not CJK.search(entry["zh"])]
    assert not untranslated, f"error messages whose zh has no Chinese: {untranslated}"


def test_a_key_in_two_catalogue_files_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    twice = '[error.same]\nen = "x"\nzh = "甲"\n'
    monkeypatch.setattr(i18n, "catalogue_files", lambda: {"messages.toml": twice, "errors/a.toml": twice})
    i18n.messages.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=r"errors/a\.toml repeats .*error\.same"):
            i18n.messages()
    finally:
        monkeypatch.undo()
        i18n.messages.cache_clear()


def test_the_matcher_catches_a_changed_word() -> None:
    assert _matches(f"unknown language {HOLE}; use one of {HOLE}", "unknown language '{text}'; use one of {langs}")
    assert not _matches(f"unknown language {HOLE}; use one of {HOLE}", "unknown tongue '{text}'; use one of {langs}")
    assert not _matches("must be positive", "must be positive, got {value}")
