"""``suanli web [--host 127.0.0.1] [--port 8731]``: serve the local page and its JSON API (FastAPI + uvicorn,
imported only when this command runs)."""

from __future__ import annotations

import argparse
import sys

from suanli.cli.common import Commands, positive_int

LOOPBACK = ("127.0.0.1", "localhost", "::1")
DEFAULT_PORT = 8731


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
    if args.host not in LOOPBACK:
        sys.stderr.write(f"suanli: warning: serving on {args.host}:{args.port}, reachable from other machines; "
                         "the page has no login. Use --host 127.0.0.1 to keep it on this machine.\n")
    sys.stderr.write(f"suanli web: http://{_url_host(args.host)}:{args.port}/  (Ctrl-C to stop)\n")
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="warning")
    return 0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
