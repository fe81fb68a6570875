"""The errors of the hardware part (calibration profiles, serving engines, the catalogs, purchase prices) are said in
Chinese with ``--lang zh``: the mistakes users make most, through the CLI where the CLI reaches them."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.surface.cli_helpers import KeyedError

from suanli.errors import SpecError, SuanliError
from suanli.i18n import error_text

PROFILE = """schema = 1
[device]
name = "NVIDIA H100 80GB HBM3"
key = "h100-sxm-80gb"
kind = "cuda"
[run]
torch_version = "2.5.1"
date = "2026-12-03T12:00:00+00:00"
[memory]
copy_bytes_per_s = 2.6e12
[[gemm]]
dtype = "bf16"
m = 4096
n = 4096
k = 4096
seconds = 0.0002
achieved_flops_per_s = 687194767360000.0
"""

PROFILE_MISTAKES = [  # (what the user's profile has instead, the key)
    (PROFILE.replace("seconds = 0.0002", "seconds = -0.0002"), "error.calibration_profile.bad_value"),
    (PROFILE.replace("copy_bytes_per_s", "copy_bandwidth"), "error.calibration_profile.bad_value"),
    (PROFILE.replace("schema = 1", "schema = 2"), "error.calibration_profile.bad_value"),
    (PROFILE.replace("687194767360000.0", "6.9e15"), "error.calibration_profile.bad_value"),
    (PROFILE.replace("[memory]", "[memory\n"), "error.calibration_profile.not_toml"),
]


@pytest.mark.parametrize(("text", "key"), PROFILE_MISTAKES)
def test_a_malformed_calibration_profile_is_named_in_chinese(text: str, key: str, tmp_path: Path,
                                                             keyed_error: KeyedError) -> None:
    path = tmp_path / "h100.toml"
    path.write_text(text, encoding="utf-8")
    keyed_error(["infer", "llama-3.2-1b", "--gpu", "h100", "--calibration", str(path)], key)


def test_a_calibration_profile_that_does_not_exist(tmp_path: Path,
                                                   keyed_error: KeyedError) -> None:
    path = tmp_path / "no-such-profile.toml"
    keyed_error(["train", "llama-3.2-1b", "--gpu", "h100", "--calibration", str(path)],
                "error.calibration_profile.missing_file")


def test_the_problem_inside_a_profile_error_is_said_in_chinese_too(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from suanli.cli.main import main

    path = tmp_path / "h100.toml"
    path.write_text(PROFILE.replace("seconds = 0.0002", "seconds = -0.0002"), encoding="utf-8")
    assert main(["infer", "llama-3.2-1b", "--gpu", "h100", "--calibration", str(path), "--lang", "zh"]) == 2
    assert capsys.readouterr().err == (f"suanli: 错误: 校准配置文件 {path}：gemm[0].seconds 必须是正数，"
                                       "实际为 -0.0002；请修正该值，或用 `suanli bench --out PROFILE.toml` 重新测量\n")


def _said(error: SuanliError) -> tuple[str, str]:
    """(English, Chinese) of a keyed error; its English is the catalogue's, word for word."""
    assert error_text(error.key, error.fields, "en") == str(error)
    return str(error), error_text(error.key, error.fields, "zh")


def test_an_unknown_engine_offers_the_closest_in_chinese() -> None:
    from suanli.spec.engines import get_engine

    with pytest.raises(SuanliError) as caught:
        get_engine("vlm")
    english, chinese = _said(caught.value)
    assert english.startswith("unknown engine 'vlm'; did you mean vllm")
    assert chinese.startswith("未知的推理引擎 'vlm'；你要找的是不是 vllm")


def test_a_gpu_memory_utilization_above_one_from_the_api() -> None:
    from suanli.spec.engines import EngineKnobs, get_engine

    with pytest.raises(SpecError) as caught:
        EngineKnobs(gpu_memory_utilization=1.5).apply(get_engine("vllm"))
    assert _said(caught.value) == ("gpu_memory_utilization must be in (0, 1], got 1.5",
                                   "gpu_memory_utilization 必须在 (0, 1] 之间，实际为 1.5")


def test_a_purchase_price_of_several_gpus_per_card() -> None:
    from suanli.spec.purchase import Purchase

    with pytest.raises(SpecError) as caught:
        Purchase(accelerator="h100-sxm-80gb", unit="gpu", gpus_per_unit=8, usd=250000.0, kind="quote",
                 description="an HGX H100 server", date="2026-11", source="a vendor's quote", confidence="medium")
    assert _said(caught.value)[1] == ("h100-sxm-80gb 的购买价格（2026-11）：unit 为 'gpu' 时只含一块 GPU，而不是 8 块；"
                                      "请用 unit = 'node'")


def test_a_catalog_entry_error_says_its_inner_problem_in_chinese() -> None:
    from suanli.spec.hardware import _build, _interconnect

    entry = {"key": "nvlink9", "name": "NVLink 9", "kind": "scale-up", "bandwidth_gb_s_per_direction": 900,
             "bandwidth_scope": "per-gpu", "latency_basis": "source", "sources": ["a page"]}
    with pytest.raises(SpecError) as caught:
        _build(_interconnect, [entry], "interconnect")
    assert _said(caught.value)[1] == ("interconnects.toml 的条目 'nvlink9'：缺少字段 'latency_us'；"
                                      "文件开头列出了各字段及其单位")
    entry.update(latency_us=1.0, kind="scale-sideways")
    with pytest.raises(SpecError) as caught:
        _build(_interconnect, [entry], "interconnect")
    assert _said(caught.value) == (
        "interconnects.toml, entry 'nvlink9': nvlink9: kind 'scale-sideways' is not one of scale-up, host, "
        "scale-out; the file's header lists the fields and their units",
        "interconnects.toml 的条目 'nvlink9'：nvlink9: kind 'scale-sideways' 不是 scale-up, host, scale-out 之一；"
        "文件开头列出了各字段及其单位")


def test_a_catalog_entry_error_says_an_inner_closest_name_hint_in_chinese() -> None:
    """An inner error that offers the closest names (its ``suggestions`` field) is said in Chinese too, hint included
    (entry_problem once left such errors in English)."""
    from suanli.spec.engines import get_engine
    from suanli.spec.hardware import _build

    with pytest.raises(SpecError) as caught:
        _build(lambda raw: get_engine(raw["engine"]), [{"key": "x", "engine": "vlm"}], "purchase")
    english, chinese = _said(caught.value)
    assert english.startswith("purchases.toml, entry 'x': unknown engine 'vlm'; did you mean vllm?; known: vllm, ")
    assert chinese.startswith("purchases.toml 的条目 'x'：未知的推理引擎 'vlm'；你要找的是不是 vllm？；已知：vllm, ")
