"""Run the backend app on uvicorn: in a daemon thread of this process (embedded) or in the foreground.

Both ways go through :func:`serve`, which puts the connection guard (``guard.py``: request-head
deadline, connection cap, quiet logs) in front of the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette

from aix_jupyter.backend.app import BackendState
from aix_jupyter.backend.guard import (
    ConnectionLimits,
    guarded_protocol,
    loop_exception_handler,
    quiet_logging,
)

#: the listen() backlog, also the most connections asyncio accepts per loop tick
BACKLOG = 128


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0 = a free port chosen by the OS)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose proto is
    # IPPROTO_TCP, and accepted sockets inherit it. With proto 0, every reply on a kept-alive
    # connection waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(BACKLOG)
    sock.set_inheritable(True)
    return sock


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def uvicorn_config(app: Starlette, limits: ConnectionLimits | None = None, **kwargs: Any) -> uvicorn.Config:
    """uvicorn's settings for the backend, with the connection guard (default limits if none given)."""
    # log_config=None: leave the host process's logging alone (a kernel, a test run).
    return uvicorn.Config(
        app,
        http=guarded_protocol(limits or ConnectionLimits()),
        backlog=BACKLOG,
        timeout_keep_alive=5,
        proxy_headers=False,  # no proxy in front by default: X-Forwarded-* would be client-chosen
        ws="none",  # the wire has no WebSocket endpoint
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="asyncio",
        timeout_graceful_shutdown=2,
        **kwargs,
    )


async def serve(server: uvicorn.Server, sock: socket.socket, limits: ConnectionLimits) -> None:
    """Serve on ``sock`` until ``server.should_exit``, with the guard's logging on this loop."""
    quiet_logging()
    asyncio.get_running_loop().set_exception_handler(loop_exception_handler(limits))
    await server.serve(sockets=[sock])


class BackendServer:
    """uvicorn serving ``app`` on ``host:port`` from a daemon thread, behind the connection guard."""

    def __init__(
        self,
        app: Starlette,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self.app = app
        self.host = host
        self.token = token
        self.limits = limits or ConnectionLimits()
        self._sock = bind_socket(host, port)
        self.port: int = self._sock.getsockname()[1]
        self._server = uvicorn.Server(uvicorn_config(app, self.limits))
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        return f"http://{url_host(self.host)}:{self.port}"

    @property
    def state(self) -> BackendState:
        return self.app.state.backend  # type: ignore[no-any-return]

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._server.should_exit

    def start(self, timeout: float = 10.0) -> BackendServer:
        if self._thread is not None:  # already serving (``with server.start():``): never a second loop
            return self
        self._thread = threading.Thread(target=self._run, name=f"aix-backend-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"the aix backend failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the aix backend did not start within {timeout:g} s")
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        try:
            asyncio.run(serve(self._server, self._sock, self.limits))
        except BaseException as exc:
            self._error = exc
        finally:
            with contextlib.suppress(OSError):
                self._sock.close()

    def stop(self, timeout: float = 5.0) -> None:
        self.state.jobs.cancel_all()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self.state.uploads.close()

    def __enter__(self) -> BackendServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
