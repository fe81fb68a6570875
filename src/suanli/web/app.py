"""The FastAPI application of ``suanli web``: one page (static/), and a JSON API whose every answer is the
``--json`` object of the CLI command of the same name (api.py runs the command's own parser and function).

Routes::

    GET  /                      the page
    GET  /static/…              its JS, CSS and the vendored chart library (never a CDN)
    GET  /api/{command}?…       params flops train infer fit simulate plan-train plan-serve plan-buy models gpus
    POST /api/{command}         {"args": {…}, "config": {…}}: the same, with a pasted config.json as MODEL
    GET  /api/said/{command}?…  {"json": the same object, "said": its headlines/advice/notes in ``lang`` by path}
    GET  /api/messages?lang=zh  the page's labels from the message catalogue
    GET  /api/explain/{term}    a glossary entry (``suanli explain TERM --json``)

Bad input → HTTP 400 ``{"error": "suanli: error: …"}``, the line the CLI prints on stderr; a body over
MAX_BODY_BYTES → 413. A pasted config.json is read as data (never executed; no remote code).
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from suanli.errors import SpecError, SuanliError
from suanli.web.api import CommandError, CommandRunner, lang_asked

MAX_BODY_BYTES = 1_000_000  # a pasted config.json is a few kB; the largest bundled one is ~10 kB
PASTED_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def create_app() -> FastAPI:
    """A new application (its own parser; no state shared between applications)."""
    runner = CommandRunner.build()
    app = FastAPI(title="suanli", docs_url=None, redoc_url=None)  # the docs pages load scripts from a CDN
    static = Path(str(resources.files("suanli.web").joinpath("static")))
    app.mount("/static", StaticFiles(directory=static), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(static / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/messages")
    def messages(lang: str = "en") -> JSONResponse:
        return _answer(lambda: page_messages(lang), lang)

    @app.get("/api/explain/{term}")
    def explain(term: str, lang: str = "en") -> JSONResponse:
        return _answer(lambda: runner.run("explain", {"term": [term], "lang": [lang]}))

    @app.get("/api/said/{command}")
    def get_said(command: str, request: Request) -> JSONResponse:
        return _answer(lambda: runner.run_said(command, _query(request)))

    @app.post("/api/said/{command}")
    def post_said(command: str, body: dict[str, Any]) -> JSONResponse:
        return _answer(lambda: _run_posted(runner, command, body, said=True), _posted_lang(body))

    @app.get("/api/{command}")
    def get_command(command: str, request: Request) -> JSONResponse:
        return _answer(lambda: runner.run(command, _query(request)))

    @app.post("/api/{command}")
    def post_command(command: str, body: dict[str, Any]) -> JSONResponse:
        return _answer(lambda: _run_posted(runner, command, body), _posted_lang(body))

    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    return app


def _query(request: Request) -> dict[str, list[str]]:
    """The query string as the CLI's options: each name with every value it was given (``?gpu=h100&gpu=a100``)."""
    return {key: request.query_params.getlist(key) for key in request.query_params}


def _run_posted(runner: CommandRunner, command: str, body: dict[str, Any], *, said: bool = False) -> dict[str, Any]:
    """``{"args": {...}, "config": {...}, "name": "my-model"}``: the config is written to a private temporary folder
    as config.json (data only) and that folder is MODEL."""
    args = body.get("args", {})
    if not isinstance(args, dict) or not all(isinstance(v, str | int | float | bool) for v in args.values()):
        raise SpecError('"args" must be an object of option → value, e.g. {"gpu": "h100", "gpus": 8}',
                        key="error.web.posted_args")
    params = {str(k): [str(v).lower() if isinstance(v, bool) else str(v)] for k, v in args.items()}
    run = runner.run_said if said else runner.run
    config = body.get("config")
    if config is None:
        return run(command, params)
    if not isinstance(config, dict):
        raise SpecError('"config" must be the JSON object of a config.json', key="error.web.posted_config")
    name = str(body.get("name") or config.get("_name_or_path") or "pasted-model").rsplit("/", 1)[-1]
    if not PASTED_NAME.fullmatch(name):
        name = "pasted-model"
    with tempfile.TemporaryDirectory(prefix="suanli-web-") as folder:
        model_dir = Path(folder) / name
        model_dir.mkdir()
        (model_dir / "config.json").write_text(json.dumps(config), encoding="utf-8")
        return run(command, params, model_dir=str(model_dir))


def page_messages(lang: str) -> dict[str, Any]:
    """Every ``web.*`` and ``term.*`` message of the catalogue in ``lang`` (the page's words; ``term.recompute.none``
    says a layout's recompute value), and the ``label.*`` table labels by
    their English text (``translate_label``: the page names a JSON component ``kv_cache_bytes`` "kv cache")."""
    from suanli.i18n import messages, parse_lang

    chosen = parse_lang(lang)
    catalogue = messages()
    return {"lang": chosen,
            "messages": {key: texts[chosen] for key, texts in catalogue.items() if key.startswith(("web.", "term."))},
            "labels": {texts["en"]: texts[chosen] for key, texts in catalogue.items() if key.startswith("label.")}}


def _posted_lang(body: dict[str, Any]) -> str:
    """The ``lang`` a posted body's ``args`` ask for (``""``: none), to say a refusal of the body itself in it."""
    args = body.get("args")
    return str(args.get("lang", "")) if isinstance(args, dict) else ""


def _answer(compute: Callable[[], dict[str, Any]], lang: str = "") -> JSONResponse:
    """``compute()``'s object, or HTTP 400 with the CLI's line for a refusal (one raised here, outside a command, is
    said in ``lang`` as ``--lang`` reads it)."""
    from suanli.cli.lang_option import error_line

    try:
        return JSONResponse(compute())
    except CommandError as exc:
        return JSONResponse({"error": exc.line}, status_code=400)
    except SuanliError as exc:
        return JSONResponse({"error": error_line(exc, lang_asked(lang))}, status_code=400)
    except Exception as exc:  # a bug: one line, as the CLI prints it
        return JSONResponse({"error": f"suanli: internal error: {type(exc).__name__}: {exc}"}, status_code=500)


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` (declared or streamed) is answered 413."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            await _too_large(send, self.max_bytes)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(send, self.max_bytes)


class _TooLarge(Exception):
    pass


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"error": f"suanli: error: request body over {limit:,} bytes; paste only config.json"})
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body.encode()})
