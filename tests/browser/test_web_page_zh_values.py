"""The ``suanli web`` page in Chinese says the CLI values it shows through the catalogue: the fit view's mode picker,
the training method picker and the roofline's "compute-bound"/"memory-bound" (the option values and the JSON stay
the CLI's). And the serving view simulates the deployment infer describes (--gpus N is tp N in both), and says
why an engine the simulator does not model (llama.cpp) has no curves.

Skipped when Chromium or playwright is missing, unless CI=true (tests/conftest.py)."""

from __future__ import annotations

from typing import Any

from suanli.i18n import t


def _shown(page: Any, select: str) -> str:
    return page.evaluate(f"document.querySelector({select!r}).selectedOptions[0].textContent")  # type: ignore[no-any-return]


def test_the_mode_and_method_pickers_are_said_in_chinese(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/#fit?model=llama-3-8b&mode=lora&lang=zh")
    page.wait_for_selector("body[data-ready='fit']")
    assert _shown(page, "#view-fit [name=mode]") == t("web.mode.lora", "zh") != "lora"
    assert _shown(page, "#view-train [name=method]") == t("web.method.full", "zh") != "full"
    assert "mode=lora" in page.url  # the value the CLI takes is unchanged
    page.click("#langs button[data-lang='en']")
    page.wait_for_function("document.documentElement.lang === 'en'")
    assert _shown(page, "#view-fit [name=mode]") == "lora"
    assert page.console_errors == []


def test_the_roofline_bound_is_said_in_chinese(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/#serve?model=llama-3.2-1b&gpu=h100-sxm-80gb&batch=2&prompt=200&output=20&lang=zh")
    page.wait_for_selector("#chart-serve-roofline[data-rendered='1'] canvas")
    tip = page.evaluate("""() => echarts.getInstanceByDom(document.getElementById('chart-serve-roofline'))
        .getOption().tooltip[0].formatter({data: {name: 'qkv', group: 'layer', bound: 'memory', value: [1, 1]}})""")
    assert tip.endswith(t("term.bound.memory", "zh")) and "memory-bound" not in tip


def test_the_serving_view_simulates_the_tensor_parallel_deployment_infer_describes(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/#serve?model=mixtral-8x7b&gpu=h100-sxm-80gb&gpus=2&batch=8&prompt=500&output=50&lang=zh")
    page.wait_for_selector("body[data-ready='serve']", timeout=120_000)
    assert page.inner_text("#error") == ""  # 2 replicas of tp 1 leave Mixtral no KV cache; tp 2 does not
    page.wait_for_selector("#chart-serve-curves[data-rendered='1'] canvas")


def test_the_serving_view_says_why_llamacpp_has_no_simulated_curves(page: Any, base_url: str) -> None:
    page.goto(f"{base_url}/#serve?model=llama-3.2-1b&gpu=h100-sxm-80gb&engine=llamacpp&batch=1&prompt=200&output=20"
              "&lang=zh")
    page.wait_for_selector("body[data-ready='serve']", timeout=120_000)
    assert page.inner_text("#error") == ""  # infer prices llama.cpp; only the simulator does not model its server
    page.wait_for_selector("#chart-serve-roofline[data-rendered='1'] canvas")
    note = t("web.serve.not_simulated", "zh", engine="llamacpp")
    assert page.inner_text("#timeline-note") == note
    title = page.evaluate("echarts.getInstanceByDom(document.getElementById('chart-serve-curves')).getOption()"
                          ".title[0].text")
    assert title == note
    assert page.console_errors == []
