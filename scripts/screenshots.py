"""Screenshots of every view of the ``suanli web`` page, taken in headless Chromium (playwright).

    python scripts/screenshots.py                    # docs/screenshots/{fit,train,serve,plan,plan-serve,glossary}.png
    python scripts/screenshots.py --lang zh --out /tmp/shots

Starts the app on a free loopback port in this process, opens each view for a bundled model, waits until its
charts have drawn, and fails (exit 1) on any console error. The browser tests call ``capture`` the same way.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("SUANLI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# view → (URL fragment, the charts that view draws)
VIEWS: dict[str, tuple[str, tuple[str, ...]]] = {
    "fit": ("fit?model=llama-3.1-70b&mode=infer", ("chart-fit",)),
    "train": ("train?model=llama-3-8b&gpu=h100-sxm-80gb&gpus=8&tokens=1e10",
              ("chart-train-memory", "chart-train-time")),
    "serve": ("serve?model=llama-3-8b&gpu=h100-sxm-80gb&batch=8&prompt=1000&output=200",
              ("chart-serve-memory", "chart-serve-curves", "chart-serve-roofline", "chart-serve-timeline")),
    "plan": ("plan?model=llama-3-8b&gpu=h100-sxm-80gb&tokens=1e10&max-gpus=32", ("chart-plan",)),
    "plan-serve": ("plan-serve?model=llama-3-8b&gpu=h100-sxm-80gb&rate=5&prompt=1000&output=200&slo-ttft-ms=500"
                   "&slo-tpot-ms=50", ("chart-plan-serve",)),
    "glossary": ("glossary?model=llama-3-8b", ()),
}
TIMEOUT_MS = 60_000


@dataclass
class Capture:
    """What one view showed: its screenshot, the console errors, and the page's error line."""

    view: str
    path: Path | None
    console_errors: list[str] = field(default_factory=list)
    page_error: str = ""


@contextmanager
def serving() -> Iterator[str]:
    """The app on a free loopback port in a background thread; yields its base URL."""
    import uvicorn

    from suanli.web.app import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the web server did not start within 30 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as play:
        chromium = play.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def capture(chromium: object, base_url: str, view: str, *, lang: str = "en", out: Path | None = None,
            width: int = 1400, height: int = 1000) -> Capture:
    """Open ``view`` in ``lang``, wait for its result and charts, and screenshot it into ``out`` (when given)."""
    fragment, charts = VIEWS[view]
    page = chromium.new_page(viewport={"width": width, "height": height})  # type: ignore[attr-defined]
    result = Capture(view=view, path=None)
    page.on("console", lambda m: result.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: result.console_errors.append(str(e)))
    try:
        page.goto(f"{base_url}/#{fragment}&lang={lang}")
        page.wait_for_selector(f"body[data-ready='{view}']", timeout=TIMEOUT_MS)
        result.page_error = page.inner_text("#error").strip()
        if result.page_error:  # an API error: say it rather than wait for charts that will not come
            return result
        for chart in charts:
            page.wait_for_selector(f"#{chart}[data-rendered='1'] canvas", timeout=TIMEOUT_MS)
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            result.path = out / (f"{view}.png" if lang == "en" else f"{view}-{lang}.png")
            page.screenshot(path=str(result.path), full_page=True)
    finally:
        page.close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--lang", choices=("en", "zh"), default="en")
    parser.add_argument("--views", default=",".join(VIEWS), help="comma-separated subset of " + ", ".join(VIEWS))
    args = parser.parse_args(argv)
    failed = False
    with serving() as base_url, browser() as chromium:
        for view in args.views.split(","):
            shot = capture(chromium, base_url, view, lang=args.lang, out=args.out)
            problems = shot.console_errors + ([shot.page_error] if shot.page_error else [])
            failed |= bool(problems)
            print(f"{view}: {shot.path}" + (f"  PROBLEMS: {problems}" if problems else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
