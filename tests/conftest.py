"""Shared fixtures: tiny configs whose counts are derived by hand in the tests, the keyed-error check, and the
browser tests' server, browser and page (tests/browser: real headless Chromium driven by playwright; skipped when
Chromium, playwright, FastAPI or uvicorn is missing, unless CI=true: then missing is a failure)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.surface.cli_helpers import KeyedError

BROWSER_TESTS = Path(__file__).parent / "browser"


@pytest.fixture
def tiny_llama() -> dict[str, Any]:
    """2 layers, hidden 64, 4 heads of 16, 2 KV heads, SwiGLU 128, vocab 100, untied."""
    return {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
            "max_position_embeddings": 256, "tie_word_embeddings": False}


@pytest.fixture
def keyed_error(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> KeyedError:
    """``keyed_error(argv, key)``: the command fails (exit 2) with the error ``key``; its English line is the
    catalogue's English filled with the error's fields, and its ``--lang zh`` line is the catalogue's Chinese, one
    line each. Returns the error, for checks of its fields."""
    from suanli.cli import lang_option
    from suanli.cli.main import main
    from suanli.i18n import Lang, error_text

    def check(argv: list[str], key: str) -> Exception:
        raised: list[Exception] = []
        original = lang_option.error_line

        def recording(exc: Exception, lang: Lang) -> str:
            raised.append(exc)
            return original(exc, lang)

        monkeypatch.setattr(lang_option, "error_line", recording)
        assert main([*argv, "--lang", "en"]) == 2
        english = capsys.readouterr().err
        assert main([*argv, "--lang", "zh"]) == 2
        chinese = capsys.readouterr().err
        exc = raised[0]
        assert getattr(exc, "key", "") == key, str(exc)
        fields = getattr(exc, "fields", {})
        assert error_text(key, fields, "en") == str(exc)  # the catalogue's English is the message
        assert english == f"suanli: error: {exc}\n"
        assert chinese == f"suanli: 错误: {error_text(key, fields, 'zh')}\n"
        return exc

    return check


def _browser_missing() -> str:
    from scripts.screenshots import CHROMIUM

    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    for module in ("playwright", "fastapi", "uvicorn"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[test]')"
    return ""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    browser_items = [item for item in items if BROWSER_TESTS in Path(item.path).parents]
    missing = _browser_missing() if browser_items else ""
    if missing and os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"browser tests cannot run in CI: {missing}", pytrace=False)
    for item in browser_items if missing else ():
        item.add_marker(pytest.mark.skip(reason=missing))


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    from scripts.screenshots import serving

    with serving() as url:
        yield url


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from scripts.screenshots import browser

    with browser() as instance:
        yield instance


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A page that records console errors and uncaught exceptions in ``page.console_errors``."""
    page = chromium.new_page(viewport={"width": 1300, "height": 900}, accept_downloads=True)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.console_errors = errors
    yield page
    page.close()
