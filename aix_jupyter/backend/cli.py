"""``aix serve``: run the backend standalone, to share models with other kernels or machines."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import re
import runpy
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from aix_jupyter.backend.jobs import DEFAULT_KEPT_BYTES
from aix_jupyter.backend.server import is_loopback

#: the environment variable ``aix serve`` reads its token from when no option gives one
TOKEN_ENV = "AIX_SERVE_TOKEN"


def positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    """An argparse ``type`` that takes numbers above zero only."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


#: the limit options of ``aix serve``: flag, number type, default, help (README: "Threat model and limits")
LIMIT_OPTIONS: list[tuple[str, type[int] | type[float], float | None, str]] = [
    ("--max-jobs", int, 64, "most queued or running runs before 429 (default 64)"),
    ("--ttl", float, 600.0, "seconds finished runs stay pollable (default 600)"),
    (
        "--max-kept-mb",
        float,
        DEFAULT_KEPT_BYTES / 2**20,
        f"MiB of finished runs' results kept for polling, oldest dropped first "
        f"(default {DEFAULT_KEPT_BYTES // 2**20})",
    ),
    (
        "--max-connections",
        int,
        None,
        "most open connections (default 1000, or half the file-descriptor limit if lower)",
    ),
    (
        "--header-timeout",
        float,
        10.0,
        "seconds a connection may take to send a complete request head (default 10)",
    ),
]


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
    token = serve.add_mutually_exclusive_group()
    token.add_argument(
        "--token",
        default=None,
        help=f"API token clients must send (visible to other local users in the process list; prefer "
        f"--token-file or ${TOKEN_ENV}). Default: ${TOKEN_ENV}, else a random one, printed. "
        "Required off loopback.",
    )
    token.add_argument(
        "--token-file",
        default=None,
        metavar="PATH",
        help="read the API token from this file (surrounding whitespace, e.g. the final newline, is removed)",
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
        help="base URL clients reach this server at, used in poll and file URLs "
        "(default: the address each connection reached; never the request's Host header)",
    )
    serve.add_argument(
        "--models",
        action="append",
        default=[],
        metavar="FILE_OR_MODULE",
        help="a Python file or module whose @register_model functions to serve too (repeatable)",
    )
    for flag, kind, default, help_text in LIMIT_OPTIONS:
        serve.add_argument(flag, type=positive(kind), default=default, help=help_text)
    return parser


class UsageError(Exception):
    """A bad command-line value: printed as ``aix serve: <message>``, exit status 2."""


_TOKEN_CHARS = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces: what a header can carry


def check_token(token: str, source: str) -> str:
    """``token`` if clients can send it in a header, else :class:`UsageError` naming ``source``."""
    if not token.strip():
        raise UsageError(f"the token from {source} is empty")
    if token != token.strip():
        raise UsageError(
            f"the token from {source} has leading or trailing whitespace, which no client can send; remove it"
        )
    if not _TOKEN_CHARS.fullmatch(token):
        raise UsageError(
            f"the token from {source} contains a space, control or non-ASCII character; "
            "use printable ASCII only, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    return token


def resolve_token(args: argparse.Namespace) -> tuple[str | None, str]:
    """The token (None: none given) and how to show it in the printed setup lines.

    Sources, first found wins: ``--token``, ``--token-file``, ``$AIX_SERVE_TOKEN``. A token given on
    the command line is shown (it is in the process list anyway); one from a file or the environment
    is shown as a shell expression that reads it, so it never lands in a terminal's scrollback or a log.
    """
    if args.token is not None:
        return check_token(args.token, "--token"), args.token
    if args.token_file is not None:
        path = Path(args.token_file).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read --token-file {path}: {exc}") from None
        return check_token(text.strip(), f"--token-file {path}"), f'"$(cat {path})"'
    env = os.environ.get(TOKEN_ENV)
    if env is not None:
        return check_token(env, f"${TOKEN_ENV}"), f'"${TOKEN_ENV}"'
    return None, ""


def check_public_url(url: str | None) -> str | None:
    """``url`` without its trailing slash if it is an http(s) base URL, else :class:`UsageError`."""
    if url is None:
        return None
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.query
        or parts.fragment
        or re.search(r"[\x00-\x20\x7f]", url)
    ):
        raise UsageError(
            f"--public-url must be an http(s) base URL such as https://models.example:8443, got {url!r}"
        )
    return url.rstrip("/")


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
    try:
        token, shown_token = resolve_token(args)
        public_url = check_public_url(args.public_url)
    except UsageError as exc:
        print(f"aix serve: {exc}", file=sys.stderr)
        return 2
    if token is None and not is_loopback(args.host):
        print(
            f"aix serve: refusing to bind {args.host} (not loopback) without a token; pass "
            f"--token-file <path> (or ${TOKEN_ENV}, or --token <secret>)",
            file=sys.stderr,
        )
        return 2
    import uvicorn

    from aix_jupyter.backend.app import create_app
    from aix_jupyter.backend.guard import ConnectionLimits
    from aix_jupyter.backend.jobs import JobStore
    from aix_jupyter.backend.registry import default_catalog
    from aix_jupyter.backend.server import bind_socket, url_host, uvicorn_config
    from aix_jupyter.backend.server import serve as serve_on

    catalog = default_catalog()
    for source in args.models:
        try:
            load_models(source)
        except Exception as exc:
            print(
                f"aix serve: cannot load models from {source}: {type(exc).__name__}: {exc}", file=sys.stderr
            )
            return 1
    if token is None:
        token = shown_token = secrets.token_urlsafe(24)
    limits = ConnectionLimits(header_timeout=args.header_timeout)
    if args.max_connections is not None:
        limits.max_connections = args.max_connections
    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        print(f"aix serve: cannot bind {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
    url = public_url or f"http://{url_host(shown_host)}:{port}"
    app = create_app(
        catalog,
        token=token,
        jobs=JobStore(max_pending=args.max_jobs, ttl=args.ttl, max_kept_bytes=int(args.max_kept_mb * 2**20)),
        sync_wait=args.sync_wait,
        public_url=public_url,
    )
    print(f"aix backend serving {len(app.state.backend.catalog)} models on {url}", flush=True)
    print("Point aix_jupyter clients at it:", flush=True)
    print(f"  export AIX_BACKEND_URL={url}", flush=True)
    print(f"  export AIXPLAIN_API_KEY={shown_token}", flush=True)
    print("Or the official aixplain SDK:", flush=True)
    print(
        f"  export MODELS_RUN_URL={url}/api/v1/execute BACKEND_URL={url} AIXPLAIN_ALLOW_INSECURE_URLS=1 "
        f"TEAM_API_KEY={shown_token}",
        flush=True,
    )
    server = uvicorn.Server(uvicorn_config(app, limits))
    try:
        asyncio.run(serve_on(server, sock, limits))
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
