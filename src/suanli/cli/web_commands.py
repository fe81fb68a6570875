"""``suanli web [--host 127.0.0.1] [--port 8731]``: serve the local page and its JSON API (FastAPI + uvicorn,
imported only when this command runs)."""

from __future__ import annotations

import argparse
import errno
import socket
import sys
from typing import Any

from suanli.cli.common import Commands, positive_int

LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_PORT = 8731
# How long an idle keep-alive connection stays open on the server. It must outlast the clients' own idle expiry
# (httpx 5 s, the browsers' up to a few minutes for a tab that is polling): when both sides use 5 s (uvicorn's
# default) the server can close a connection just as the client sends a request on it, and that request fails
# with a read error (seen once in 3000 requests of benchmarks/web_load.py). 75 s is nginx's default.
KEEP_ALIVE_S = 75


def register(commands: Commands) -> None:
    web = commands.add_parser(
        "web", help="serve a local web page with charts (every number is the CLI's --json)",
        description="Serve the suanli page and its JSON API (/api/train?model=…&gpu=…, the same objects as --json) "
        "on this machine. Binds 127.0.0.1 unless --host says otherwise. Needs: pip install 'suanli[web]'.")
    web.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, this machine only)")
    web.add_argument("--port", type=positive_int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    web.set_defaults(run=run_web)


def run_web(args: argparse.Namespace) -> int:
    from suanli.errors import SpecError, Unavailable

    if args.port > 65535:
        raise SpecError(f"--port {args.port} is not a TCP port; use 1..65535, e.g. --port {DEFAULT_PORT}",
                        key="error.web.port", fields={"port": args.port, "default": DEFAULT_PORT})
    try:
        import uvicorn

        from suanli.web.app import create_app
    except ImportError as exc:
        raise Unavailable(f"suanli web needs FastAPI and uvicorn ({exc.name} is missing): "
                          "pip install 'suanli[web]'",
                          key="error.web.missing", fields={"module": exc.name}) from None
    from suanli.i18n import current_lang, t

    listening = bind(args.host, args.port)  # before the warning: a busy port is an error, not a served page
    if args.host not in LOOPBACK:
        sys.stderr.write(f"suanli: warning: serving on {args.host}:{args.port}, reachable from other machines; "
                         "the page has no login. Use --host 127.0.0.1 to keep it on this machine.\n")
    lang = current_lang()  # --lang, else the locale: the printed link opens the page in it
    url = f"http://{_url_host(args.host)}:{args.port}/#fit?lang={lang}"
    sys.stderr.write(t("cli.web.serving", lang, url=url, lang=lang) + "\n")
    server = uvicorn.Server(uvicorn.Config(create_app(), host=args.host, port=args.port, log_level="warning",
                                           timeout_keep_alive=KEEP_ALIVE_S))
    serve(server, listening)
    return 0


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (handed to uvicorn), so that a busy port or an address that is not this
    machine's is one clear error line here rather than uvicorn's log and exit status 1."""
    listening = None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        listening = socket.socket(family, kind, proto)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: no wait after a restart
        listening.bind(address)
        listening.listen(128)
    except OSError as exc:
        if listening is not None:
            listening.close()
        raise _refused(host, port, exc) from None
    return listening


def _refused(host: str, port: int, exc: OSError) -> Exception:
    from suanli.errors import Unavailable

    reason = exc.strerror or str(exc)
    if exc.errno != errno.EADDRINUSE:  # an unknown name, not an address of this machine, not allowed, …
        return Unavailable(f"cannot serve on {host}:{port}: {reason}; use another --host",
                           key="error.web.address", fields={"host": host, "port": port, "reason": reason})
    other = port + 1 if port < 65535 else DEFAULT_PORT
    return Unavailable(f"cannot listen on {host}:{port}: {reason} (another server is on that port); "
                       f"use another --port, e.g. --port {other}",
                       key="error.web.bind", fields={"host": host, "port": port, "reason": reason, "other": other})


def serve(server: Any, listening: socket.socket) -> None:
    """Run uvicorn's ``server`` on the socket ``bind`` opened, until Ctrl-C."""
    with listening:
        server.run(sockets=[listening])


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
