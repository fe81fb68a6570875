"""The web API answers with exactly the CLI's ``--json`` objects, and bad input with HTTP 400 and the CLI's line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from suanli.cli.main import main
from suanli.i18n import Lang

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import httpx
from fastapi.testclient import TestClient

from suanli.web.app import MAX_BODY_BYTES, create_app


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app())


def cli_json(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


def cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:  # argparse errors exit; SuanliErrors return 2
        code = main(argv)
        raise SystemExit(code)
    assert exit_info.value.code == 2
    return capsys.readouterr().err.strip()


CASES = [
    ("params", {"model": "llama-3-8b"}, ["params", "llama-3-8b"]),
    ("flops", {"model": "gpt2", "seq": "512", "batch": "4"}, ["flops", "gpt2", "--seq", "512", "--batch", "4"]),
    ("train", {"model": "llama-3-8b", "gpu": "h100", "gpus": "8", "zero": "3", "sp": "true", "tokens": "1e10"},
     ["train", "llama-3-8b", "--gpu", "h100", "--gpus", "8", "--zero", "3", "--sp", "--tokens", "1e10"]),
    ("infer", {"model": "qwen2.5-7b", "gpu": "a100-80gb", "batch": "8", "prompt": "1000", "output": "200"},
     ["infer", "qwen2.5-7b", "--gpu", "a100-80gb", "--batch", "8", "--prompt", "1000", "--output", "200"]),
    ("fit", {"model": "llama-3.1-70b", "mode": "lora"}, ["fit", "llama-3.1-70b", "--mode", "lora"]),
    ("simulate", {"model": "llama-3-8b", "gpu": "h100", "concurrency": "1,8", "requests": "40", "prompt": "256",
                  "output": "64"},
     ["simulate", "llama-3-8b", "--gpu", "h100", "--concurrency", "1,8", "--requests", "40", "--prompt", "256",
      "--output", "64"]),
    ("gpus", {"vendor": "nvidia"}, ["gpus", "--vendor", "nvidia"]),
    ("roofline", {"model": "gemma-2-2b", "gpu": "a100-80gb", "seq": "512", "batch": "2"},
     ["roofline", "gemma-2-2b", "--gpu", "a100-80gb", "--seq", "512", "--batch", "2"]),
    ("plan-train", {"model": "llama-3.2-1b", "gpu": "h100", "tokens": "1e9", "max-gpus": "8"},
     ["plan", "train", "llama-3.2-1b", "--gpu", "h100", "--tokens", "1e9", "--max-gpus", "8"]),
    ("plan-buy", {"budget-usd": "1e6", "serve": "llama-3-8b", "rate": "5", "prompt": "500", "output": "100"},
     ["plan", "buy", "--budget-usd", "1e6", "--serve", "llama-3-8b", "--rate", "5", "--prompt", "500", "--output",
      "100"]),
    ("simulate", {"model": "llama-3-8b", "gpu": "h100", "concurrency": "2,16", "requests": "60", "prompt": "512",
                  "output": "64", "timeline-points": "40"},  # the serving view's timeline: the CLI's object
     ["simulate", "llama-3-8b", "--gpu", "h100", "--concurrency", "2,16", "--requests", "60", "--prompt", "512",
      "--output", "64", "--timeline-points", "40"]),
    ("plan-serve", {"model": "llama-3-8b", "gpu": "h100", "rate": "4", "prompt": "500", "output": "100",
                    "slo-ttft-ms": "500", "slo-tpot-ms": "50"},
     ["plan", "serve", "llama-3-8b", "--gpu", "h100", "--rate", "4", "--prompt", "500", "--output", "100",
      "--slo-ttft-ms", "500", "--slo-tpot-ms", "50"]),
]


@pytest.mark.parametrize(("command", "query", "argv"), CASES, ids=[c[0] for c in CASES])
def test_web_json_is_the_cli_json(client: TestClient, capsys: pytest.CaptureFixture[str], command: str,
                                  query: dict[str, str], argv: list[str]) -> None:
    response = client.get(f"/api/{command}", params=query)
    assert response.status_code == 200, response.text
    assert response.json() == cli_json(argv, capsys)


def test_explain_adds_the_formulas_to_the_same_object(client: TestClient, capsys: pytest.CaptureFixture[str]) -> None:
    query = {"model": "llama-3-8b", "gpu": "h100", "gpus": "8", "explain": "true"}
    web = client.get("/api/train", params=query).json()
    assert web == cli_json(["train", "llama-3-8b", "--gpu", "h100", "--gpus", "8", "--explain"], capsys)
    step = next(e for e in web["explanations"] if e["name"] == "step_s")
    assert step["value"] == pytest.approx(web["time"]["step_s"])
    assert step["text"].startswith("step_s = ")


@pytest.mark.parametrize(("query", "argv"), [
    ({"model": "llama-3-8b", "gpu": "h1000"}, ["train", "llama-3-8b", "--gpu", "h1000"]),
    ({"model": "llama-3-8b", "gpu": "h100", "tp": "abc"}, ["train", "llama-3-8b", "--gpu", "h100", "--tp", "abc"]),
    ({"model": "llama-3-8b", "gpu": "h100", "gpus": "8", "tp": "3"},
     ["train", "llama-3-8b", "--gpu", "h100", "--gpus", "8", "--tp", "3"]),
    ({"model": "no-such-model-xyz", "gpu": "h100"}, ["train", "no-such-model-xyz", "--gpu", "h100"]),
])
def test_bad_input_is_400_with_the_cli_line(client: TestClient, capsys: pytest.CaptureFixture[str],
                                            query: dict[str, str], argv: list[str]) -> None:
    response = client.get("/api/train", params=query)
    assert response.status_code == 400
    assert response.json() == {"error": cli_error(argv, capsys)}


@pytest.mark.parametrize(("query", "argv", "status"), [
    ({"model": "llama-3-8b", "gpu": "h1000", "lang": "zh"}, ["train", "llama-3-8b", "--gpu", "h1000", "--lang", "zh"],
     400),
    ({"model": "llama-3-8b", "gpu": "h100", "gpus": "8", "lang": "zh"},
     ["train", "llama-3-8b", "--gpu", "h100", "--gpus", "8", "--lang", "zh"], 200),
])
def test_lang_zh_is_the_cli_in_zh(client: TestClient, capsys: pytest.CaptureFixture[str], query: dict[str, str],
                                  argv: list[str], status: int) -> None:
    response = client.get("/api/train", params=query)
    assert response.status_code == status
    if status == 400:
        assert response.json() == {"error": cli_error(argv, capsys)}
        assert "错误" in response.json()["error"]  # said in Chinese, as the CLI says it
    else:
        assert response.json() == cli_json(argv, capsys)


@pytest.mark.parametrize(("command", "query", "argv"), [
    ("train", {"model": "llama-3-8b", "gpu": "h100", "tp": "abc"},
     ["train", "llama-3-8b", "--gpu", "h100", "--tp", "abc"]),
    ("train", {"model": "llama-3-8b", "gpu": "h100", "recompute": "some"},
     ["train", "llama-3-8b", "--gpu", "h100", "--recompute", "some"]),
    ("train", {"gpu": "h100"}, ["train", "--gpu", "h100"]),
    ("plan-train", {"model": "llama-3-8b", "gpu": "h100", "tokens": "1e9", "max-gpus": "0"},
     ["plan", "train", "llama-3-8b", "--gpu", "h100", "--tokens", "1e9", "--max-gpus", "0"]),
])
def test_usage_errors_in_zh_are_the_cli_zh_line(client: TestClient, capsys: pytest.CaptureFixture[str], command: str,
                                               query: dict[str, str], argv: list[str]) -> None:
    response = client.get(f"/api/{command}", params={**query, "lang": "zh"})
    assert response.status_code == 400
    line = response.json()["error"]
    assert line == cli_error([*argv, "--lang", "zh"], capsys)
    assert line.startswith("suanli: 错误: ") and "参见" in line  # argparse's words in Chinese, as the CLI says them
    english = client.get(f"/api/{command}", params={**query, "lang": "en"}).json()["error"]
    assert english == cli_error([*argv, "--lang", "en"], capsys) != line


def test_said_is_the_same_json_with_its_texts_in_the_page_language(client: TestClient,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "llama-3-8b", "--gpu", "h100", "--gpus", "8", "--lang", "zh"]
    query = {"model": "llama-3-8b", "gpu": "h100", "gpus": "8", "lang": "zh"}
    body = client.get("/api/said/train", params=query).json()
    assert body["json"] == cli_json(argv, capsys)  # the JSON stays the CLI's (English texts)
    said = body["said"]
    assert {"headline", "memory.suggestions.0.change"} <= set(said)
    assert body["json"]["headline"].startswith("DOES NOT FIT") and not said["headline"].startswith("DOES")
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert said["headline"] in table and said["memory.suggestions.0.change"] in table  # as the CLI's zh table says it
    english = client.get("/api/said/train", params={**query, "lang": "en"}).json()
    assert english == {"json": body["json"], "said": {}}


@pytest.mark.parametrize(("url", "fragment"), [
    ("/api/train?model=llama-3-8b&gpu=h100&bogus=1", "'bogus' is not an option"),
    ("/api/simulate?model=llama-3-8b&gpu=h100&export=vllm", "'export' is not an option"),  # writes files
    ("/api/simulate?model=llama-3-8b&gpu=h100&timeline=/tmp/x.csv", "'timeline' is not an option"),
    ("/api/train?model=llama-3-8b&gpu=h100&calibration=/etc/passwd", "'calibration' is not an option"),  # reads
    ("/api/params?model=../../etc/passwd", "catalog name or a Hugging Face repo id"),
    ("/api/params?model=/etc", "catalog name or a Hugging Face repo id"),
    ("/api/simulate?model=llama-3-8b&gpu=h100&concurrency=4&requests=100000&prompt=10&output=10", "limit of 5000"),
    ("/api/simulate?model=llama-3-8b&gpu=h100&concurrency=4&timeline-points=50000", "limit of 2000"),
    ("/api/train?model=llama-3-8b&gpu=h100&sp=maybe", "--sp is a flag"),
    ("/api/plan-train?model=gpt2&gpu=h100,h200,a100,mi300x,l40s&tokens=1e9", "at most 4 accelerators"),
    ("/api/nonsense?model=gpt2", "no command 'nonsense'"),
])
def test_refused_requests(client: TestClient, url: str, fragment: str) -> None:
    response = client.get(url)
    assert response.status_code == 400
    assert fragment in response.json()["error"]
    assert response.json()["error"].startswith("suanli: error: ")


@pytest.mark.parametrize("lang", ["zh", "ZH", "zh_CN"])
def test_a_refusal_before_parsing_is_said_in_any_spelling_of_lang(client: TestClient, lang: str) -> None:
    response = client.get("/api/nonsense", params={"model": "gpt2", "lang": lang})  # --lang takes all three
    assert response.status_code == 400
    assert response.json()["error"].startswith("suanli: 错误: web API 中没有命令 'nonsense'")  # the error's zh too


TINY_LLAMA = {"model_type": "llama", "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
              "max_position_embeddings": 2048, "auto_map": {"AutoModel": "evil.Model"}}


def test_pasted_config_is_the_cli_on_that_file(client: TestClient, capsys: pytest.CaptureFixture[str],
                                               tmp_path: Path) -> None:
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_LLAMA))
    web = client.post("/api/params", json={"config": TINY_LLAMA, "name": "tiny"})
    assert web.status_code == 200, web.text
    cli = cli_json(["params", str(folder)], capsys)
    assert {k: v for k, v in web.json().items() if k != "source"} == {k: v for k, v in cli.items() if k != "source"}
    per_layer = 2 * 256 * 256 + 2 * 256 * (2 * 64) + 3 * 256 * 688 + 2 * 256  # q,o; k,v (2 KV heads); MLP; norms
    assert web.json()["total_params"] == 2 * per_layer + 2 * 1000 * 256 + 256  # untied embedding and head; norm


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    response = client.post("/api/params", content=b" " * (MAX_BODY_BYTES + 1),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_posted_args_must_be_flat(client: TestClient) -> None:
    response = client.post("/api/params", json={"args": {"model": ["a", "b"]}})
    assert response.status_code == 400


def test_page_and_chart_library_are_served_locally(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "/static/vendor/echarts.min.js" in page.text
    assert "http://" not in page.text and "https://cdn" not in page.text
    assert client.get("/static/vendor/echarts.min.js").status_code == 200


def test_cli_start_up_does_not_import_the_web_stack() -> None:
    code = ("import sys; from suanli.cli.main import build_parser; build_parser(); "
            "print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette', 'suanli.web') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_web_without_the_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn → ImportError
    assert main(["web"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'suanli[web]'" in err


def test_web_warns_when_not_on_loopback(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from suanli.cli import web_commands

    served: dict[str, Any] = {}
    monkeypatch.setattr(web_commands, "bind", lambda host, port: served.update(host=host, port=port))
    monkeypatch.setattr(web_commands, "serve", lambda server, listening: served.update(config=server.config))
    assert main(["web", "--host", "0.0.0.0", "--port", "9000"]) == 0
    assert served["host"] == "0.0.0.0" and served["port"] == 9000 and served["config"].port == 9000
    # idle connections outlive httpx's 5 s expiry, so the client closes first (no keep-alive race, no read error)
    assert served["config"].timeout_keep_alive > httpx.Limits().keepalive_expiry
    assert "warning" in capsys.readouterr().err
    assert main(["web"]) == 0
    assert served["host"] == "127.0.0.1" and "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_web_says_where_it_listens_and_in_which_language(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str], lang: Lang) -> None:
    from suanli.cli import web_commands
    from suanli.i18n import t

    served: dict[str, Any] = {}
    monkeypatch.setattr(web_commands, "serve", lambda server, listening: served.update(
        address=listening.getsockname(), fd=listening.fileno()))
    with socket.socket() as probe:  # a port free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["web", "--port", str(port), "--lang", lang]) == 0
    assert served["address"] == ("127.0.0.1", port)  # the socket uvicorn is given was bound by suanli
    url = f"http://127.0.0.1:{port}/#fit?lang={lang}"  # the page opens in the CLI's language
    assert capsys.readouterr().err == t("cli.web.serving", lang, url=url, lang=lang) + "\n"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_web_on_a_busy_port_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str], lang: str) -> None:
    from suanli.cli import web_commands

    monkeypatch.setattr(web_commands, "serve", lambda server, listening: pytest.fail("served on a busy port"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["web", "--port", str(port), "--lang", lang]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("suanli: ") and str(port) in err and "--port" in err
    assert ("无法监听" in err) == (lang == "zh")


@pytest.mark.parametrize(("argv", "fragment"), [
    (["web", "--port", "0"], "argument --port: must be at least 1, got 0"),
    (["web", "--port", "70000"], "--port 70000 is not a TCP port"),
    (["web", "--host", "192.0.2.1", "--port", "8731"], "cannot serve on 192.0.2.1:8731"),  # not this machine's
])
def test_web_bad_port_or_host_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                                     fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    from suanli.cli import web_commands

    monkeypatch.setattr(web_commands, "serve", lambda server, listening: pytest.fail("served"))
    line = cli_error([*argv, "--lang", "en"], capsys)  # exit status 2
    assert "\n" not in line and line.startswith("suanli: error: ") and fragment in line


def test_each_fit_suggestion_carries_a_layout_that_fits(client: TestClient) -> None:
    """The page turns a suggestion's layout into query options (a click); doing so here must give the suggested
    total, and a job that fits."""
    base = {"model": "llama-3-70b", "gpu": "h100", "gpus": "8"}
    report = client.get("/api/train", params=base).json()
    assert report["memory"]["fits"] is False
    suggestions = report["memory"]["suggestions"]
    assert suggestions
    for suggestion in suggestions:
        layout = suggestion["layout"]
        changed = {**base, "gpus": str(suggestion["gpus"]), "zero": str(layout["zero"]),
                   "micro-batch": str(layout["micro_batch"]), "global-batch": str(layout["global_batch"]),
                   "recompute": layout["recompute"], "offload-optimizer": layout["offload_optimizer"],
                   "method": suggestion["method"], "optimizer": report["job"]["optimizer"]}  # the job's, kept
        after = client.get("/api/train", params=changed).json()
        assert after["memory"]["fits"] is True, suggestion["change"]
        assert after["memory"]["per_gpu"]["total_bytes"] == pytest.approx(suggestion["total_bytes"])
