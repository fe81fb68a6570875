"""The ``suanli web`` page in a real headless Chromium (Debian's ``chromium``, driven by playwright): every view
draws its charts with no console error, the language switch works, advice is clickable, state lives in the URL,
charts export PNG and CSV, and screenshots can be taken (scripts/screenshots.py writes docs/screenshots/).

Skipped when Chromium or playwright is missing, unless CI=true: then missing means failure.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scripts.screenshots import CHROMIUM, VIEWS, browser, capture, serving

IN_CI = os.environ.get("CI", "").lower() == "true"


def _missing() -> str:
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    for module in ("playwright", "fastapi", "uvicorn"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[test]')"
    return ""


MISSING = _missing()
if MISSING and IN_CI:
    pytest.fail(f"browser tests cannot run in CI: {MISSING}", pytrace=False)
pytestmark = pytest.mark.skipif(bool(MISSING), reason=MISSING or "ok")


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with serving() as url:
        yield url


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with browser() as instance:
        yield instance


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    page = chromium.new_page(viewport={"width": 1300, "height": 900}, accept_downloads=True)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.console_errors = errors
    yield page
    page.close()


def _has_explain() -> bool:
    from suanli.web.api import CommandRunner

    try:
        CommandRunner.build().subparser(("explain",))
    except Exception:
        return False
    return True


@pytest.mark.parametrize("view", list(VIEWS))
def test_each_view_renders_its_charts_without_console_errors(chromium: Any, base_url: str, view: str,
                                                           tmp_path: Path) -> None:
    if view == "glossary" and not _has_explain():
        pytest.skip("no `suanli explain` command in this tree yet")
    shot = capture(chromium, base_url, view, out=tmp_path)
    assert shot.console_errors == []
    assert shot.page_error == ""
    assert shot.path is not None and shot.path.stat().st_size > 10_000  # a real screenshot, not a blank page


def test_language_switch(page: Any, base_url: str) -> None:
    from suanli.i18n import t

    page.goto(f"{base_url}/#fit?model=llama-3-8b")
    page.wait_for_selector("body[data-ready='fit']")
    tab = page.locator("#tabs button[data-view='train']")
    assert tab.inner_text() == t("web.view.train", "en")
    page.click("#langs button[data-lang='zh']")
    page.wait_for_function("document.documentElement.lang === 'zh-CN'")
    assert tab.inner_text() == t("web.view.train", "zh") != t("web.view.train", "en")
    assert "lang=zh" in page.url
    page.click("#langs button[data-lang='en']")
    page.wait_for_function("document.documentElement.lang === 'en'")
    assert tab.inner_text() == t("web.view.train", "en")
    assert page.console_errors == []


def test_fits_with_advice_is_clickable(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/#train?model=llama-3-8b&gpu=h100-sxm-80gb&gpus=8")
    page.wait_for_selector("body[data-ready='train']")
    assert page.inner_text("#train-headline").startswith("DOES NOT FIT")
    first = page.locator("#train-advice button.suggestion").first
    first.click()
    page.wait_for_function("document.querySelector('#train-headline').textContent === ''")
    assert "zero=" in page.url  # the applied change is in the shareable URL
    assert page.console_errors == []


def test_url_state_is_restored_and_tooltips_explain(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/#train?model=qwen2.5-7b&gpu=a100-sxm-80gb&gpus=16&zero=3")
    page.wait_for_selector("body[data-ready='train']")
    assert page.input_value("#model") == "qwen2.5-7b"
    assert page.input_value("#gpu") == "a100-sxm-80gb"
    assert page.input_value("#view-train [name='gpus']") == "16"
    tip = page.get_attribute("#train-figures .fig[data-path='time.step_s']", "title")
    assert tip.startswith("step_s = ")  # the --explain derivation


def test_charts_export_png_and_csv(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/#fit?model=llama-3.1-70b")
    page.wait_for_selector("#chart-fit[data-rendered='1'] canvas")
    png = page.evaluate("echarts.getInstanceByDom(document.getElementById('chart-fit')).getDataURL({type: 'png'})")
    assert png.startswith("data:image/png;base64,")
    with page.expect_download() as download_info:
        page.click("#chart-fit + button.csv")
    text = Path(download_info.value.path()).read_text()
    header, *rows = text.strip().splitlines()
    assert header == "gpu,min_gpus,per_gpu_total_bytes,headroom_bytes,capacity_bytes,layout"
    assert any(row.startswith("h100-sxm-80gb,") for row in rows)


def test_pasted_config_json(page: Any, base_url: str, tiny_llama: dict[str, Any]) -> None:
    page.goto(f"{base_url}/#fit?model=llama-3-8b")
    page.wait_for_selector("body[data-ready='fit']")
    page.click("#paste summary")
    page.fill("#config", json.dumps(tiny_llama))
    page.evaluate("document.body.dataset.ready = ''")
    page.click("#view-fit button[type='submit']")
    page.wait_for_selector("body[data-ready='fit']")
    assert page.inner_text("#error") == ""
    assert page.locator("#fit-table tbody tr").count() > 10
    page.fill("#config", "{not json")
    page.evaluate("document.body.dataset.ready = ''")
    page.click("#view-fit button[type='submit']")
    page.wait_for_selector("body[data-ready='fit']")
    assert "not valid JSON" in page.inner_text("#error")
