"""``aix serve``: run the backend standalone, to share models with other kernels or machines."""

from __future__ import annotations

import argparse
import importlib
import os
import runpy
import secrets
import sys
from pathlib import Path

from aix_jupyter.backend.server import is_loopback


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aix", description="aix_jupyter command line")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve the local models over the aiXplain wire",
        description="Serve the built-in local models over the aiXplain model wire.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    serve.add_argument(
        "--token",
        default=None,
        help="API token clients must send (default: a random one, printed). Required off loopback.",
    )
    serve.add_argument(
        "--sync-wait",
        type=float,
        default=2.0,
        help="seconds a synchronous run waits before answering with a poll URL (default 2)",
    )
    serve.add_argument(
        "--public-url",
        default=None,
        help="base URL clients reach this server at, used in poll URLs (default: from each request)",
    )
    serve.add_argument(
        "--models",
        action="append",
        default=[],
        metavar="FILE_OR_MODULE",
        help="a Python file or module whose @register_model functions to serve too (repeatable)",
    )
    serve.add_argument(
        "--max-jobs", type=int, default=64, help="most queued or running runs before 429 (default 64)"
    )
    serve.add_argument(
        "--ttl", type=float, default=600.0, help="seconds finished runs stay pollable (default 600)"
    )
    return parser


def load_models(source: str) -> None:
    """Run a Python file (``models.py``) or import a module (``pkg.models``) so that its
    ``@register_model`` functions join the served catalog."""
    if source.endswith(".py") or os.path.sep in source:
        path = Path(source).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {path}")
        sys.path.insert(0, str(path.parent))
        runpy.run_path(str(path), run_name=f"aix_models_{path.stem}")
    else:
        importlib.import_module(source)


def serve(args: argparse.Namespace) -> int:
    if args.token is None and not is_loopback(args.host):
        print(
            f"aix serve: refusing to bind {args.host} (not loopback) without a token; pass --token <secret>",
            file=sys.stderr,
        )
        return 2
    if args.token is not None and not args.token.strip():
        print("aix serve: --token must not be empty", file=sys.stderr)
        return 2
    import uvicorn

    from aix_jupyter.backend.app import create_app
    from aix_jupyter.backend.jobs import JobStore
    from aix_jupyter.backend.registry import default_catalog
    from aix_jupyter.backend.server import bind_socket, url_host, uvicorn_config

    catalog = default_catalog()
    for source in args.models:
        try:
            load_models(source)
        except Exception as exc:
            print(
                f"aix serve: cannot load models from {source}: {type(exc).__name__}: {exc}", file=sys.stderr
            )
            return 1
    token = args.token or secrets.token_urlsafe(24)
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"aix serve: cannot bind {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    url = args.public_url or f"http://{url_host(shown_host)}:{port}"
    app = create_app(
        catalog,
        token=token,
        jobs=JobStore(max_pending=args.max_jobs, ttl=args.ttl),
        sync_wait=args.sync_wait,
        public_url=args.public_url,
    )
    print(f"aix backend serving {len(app.state.backend.catalog)} models on {url}", flush=True)
    print("Point aix_jupyter clients at it:", flush=True)
    print(f"  export AIX_BACKEND_URL={url}", flush=True)
    print(f"  export AIXPLAIN_API_KEY={token}", flush=True)
    print("Or the official aixplain SDK:", flush=True)
    print(
        f"  export MODELS_RUN_URL={url}/api/v1/execute BACKEND_URL={url} AIXPLAIN_ALLOW_INSECURE_URLS=1 "
        f"TEAM_API_KEY={token}",
        flush=True,
    )
    server = uvicorn.Server(uvicorn_config(app))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        print("aix serve: stopped", file=sys.stderr)
    finally:
        app.state.backend.jobs.cancel_all()
        app.state.backend.uploads.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return serve(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
