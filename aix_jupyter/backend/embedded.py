"""The embedded backend: started on first use inside this process (e.g. the Jupyter kernel).

``ensure_running()`` is the default backend that the package's top level registers with the client
core (``config.set_default_backend``), called when nothing else is configured; the core itself never
imports this module. It is thread-safe and idempotent: the first call binds 127.0.0.1 on a free
port, makes a random token and starts uvicorn in a daemon thread (tens of milliseconds; no model is
loaded until its first run); later calls return the same ``(base_url, token)``.

Run URL = ``base_url + "/api/v1/execute"`` (the v2 path ``/api/v2/execute``), backend URL = ``base_url``.
"""

from __future__ import annotations

import atexit
import secrets
import threading
from typing import Any

_lock = threading.Lock()
_server: Any = None  # BackendServer, imported lazily so that importing this module stays cheap


def ensure_running() -> tuple[str, str]:
    """Start the embedded backend if needed; return ``(base_url, token)``."""
    global _server
    with _lock:
        if _server is None or not _server.alive:
            from aix_jupyter.backend.app import create_app
            from aix_jupyter.backend.registry import default_catalog
            from aix_jupyter.backend.server import BackendServer

            token = secrets.token_urlsafe(32)
            app = create_app(default_catalog(), token=token)
            _server = BackendServer(app, host="127.0.0.1", port=0, token=token).start()
        return _server.base_url, _server.token


def is_running() -> bool:
    with _lock:
        return _server is not None and _server.alive


def stop() -> None:
    """Stop the embedded backend, cancelling its unfinished runs (``ensure_running`` starts a new one)."""
    global _server
    with _lock:
        server, _server = _server, None
    if server is not None:
        server.stop()


def _at_exit() -> None:
    server = _server
    if server is not None:
        server.state.jobs.cancel_all()


atexit.register(_at_exit)
