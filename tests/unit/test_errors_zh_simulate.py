"""The errors of `suanli simulate` and of the web API are said in Chinese with ``--lang zh``: the mistakes users meet
there (a bad trace line, a dataset name mistyped or without a histogram, a shared prefix without groups, a speculative
acceptance rate above 1, a draft model with another tokenizer, a zero --rate or --concurrency, a request over the web
server's limits)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.surface.cli_helpers import KeyedError

from suanli.errors import SpecError
from suanli.i18n import Lang, error_text
from suanli.simulate.workload import LengthDist, Workload

SIMULATE = ["simulate", "llama-3.2-1b", "--gpu", "h100"]


@pytest.mark.parametrize(("lines", "key"), [
    (['{"arrival_s": 2, "prompt_tokens": 8, "output_tokens": 4}', '{"arrival_s": 1, "prompt_tokens": 8, '
      '"output_tokens": 4}'], "error.simulate.trace_arrival"),
    (['{"arrival_s": 0, "prompt_tokens": 0, "output_tokens": 4}'], "error.simulate.trace_lengths"),
    (['{"arrival_s": 0, "prompt_tokens": 8, "output_tokens": 4, "prefix_group": 1, "prefix_tokens": 8}'],
     "error.simulate.trace_prefix"),
    (["[0, 8, 4]"], "error.simulate.trace_object"),
])
def test_a_malformed_trace_line(lines: list[str], key: str, tmp_path: Path, keyed_error: KeyedError) -> None:
    trace = tmp_path / "trace.jsonl"
    trace.write_text("\n".join(lines) + "\n", encoding="utf-8")
    keyed_error([*SIMULATE, "--trace", str(trace)], key)


@pytest.mark.parametrize(("options", "key"), [
    (["--dataset", "sharegtp"], "error.simulate.dataset_unknown"),
    (["--dataset", "sharegpt"], "error.simulate.dataset_no_histogram"),  # only its means are published
    (["--prefix-tokens", "100"], "error.simulate.prefix_groups"),
    (["--speculative-mtp", "--acceptance-rate", "1.5"], "error.simulate.acceptance_option"),
])
def test_a_bad_workload_option(options: list[str], key: str, keyed_error: KeyedError) -> None:
    keyed_error([*SIMULATE, "--rate", "1", "--requests", "10", *options], key)


def test_a_draft_model_with_another_tokenizer(keyed_error: KeyedError) -> None:
    keyed_error(["simulate", "llama-3.1-8b", "--gpu", "h100", "--rate", "1", "--requests", "10",
                 "--speculative-model", "qwen2.5-0.5b", "--num-speculative-tokens", "3", "--acceptance-rate", "0.7"],
                "error.simulate.draft_vocab")


@pytest.mark.parametrize(("option", "zh"), [("--rate", "必须是有限的正数"), ("--concurrency", "至少为 1"),
                                            ("--prompt", "至少为 1")])
def test_a_zero_rate_concurrency_or_length_is_refused_in_chinese(option: str, zh: str,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from suanli.cli.main import main

    traffic = [] if option in ("--rate", "--concurrency") else ["--rate", "1"]
    with pytest.raises(SystemExit) as exit_info:  # argparse refuses it before the simulator runs
        main([*SIMULATE, *traffic, option, "0", "--lang", "zh"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"suanli: 错误: 参数 {option}：{zh}") and err.count("\n") == 1


def test_the_fix_of_a_zero_rate_is_said_in_chinese() -> None:
    """Through the Python API the CLI's check is not in the way: the Workload says the fix in the reader's language."""
    with pytest.raises(SpecError) as caught:
        Workload(requests=10, prompt=LengthDist.constant(8), output=LengthDist.constant(4), rate_per_s=0)
    assert str(caught.value) == "rate must be positive, got 0; give requests per second, e.g. --rate 4"
    assert error_text(caught.value.key, caught.value.fields, "zh").endswith("请给出每秒请求数，例如 --rate 4")


def test_a_web_request_over_the_limit_is_said_in_chinese() -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from suanli.web.app import create_app

    client = TestClient(create_app())
    query = {"model": "llama-3.2-1b", "gpu": "h100", "concurrency": "4", "requests": "100000"}
    fields = {"option": "--requests", "value": "100000", "limit": 5000}
    said: tuple[tuple[Lang, str], ...] = (("en", "error"), ("zh", "错误"))
    for lang, word in said:
        response = client.get("/api/simulate", params={**query, "lang": lang})
        assert response.status_code == 400
        assert response.json()["error"] == f"suanli: {word}: {error_text('error.web.over_limit', fields, lang)}"
    posted = client.post("/api/params", json={"args": {"lang": "zh"}, "config": [1, 2]})
    assert posted.status_code == 400
    assert posted.json()["error"] == f"suanli: 错误: {error_text('error.web.posted_config', {}, 'zh')}"
