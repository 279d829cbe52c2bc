"""Connection hygiene for the backend's HTTP server: a request-head deadline, a connection cap, quiet logs.

uvicorn (h11) on its own waits forever for a request's headers and accepts connections until the
process runs out of file descriptors, and asyncio then logs a traceback for every failed ``accept()``
(tens of MB a second). The guard, installed through uvicorn's ``http=`` protocol-class setting:

* **head deadline**: a connection must deliver a complete request head within ``header_timeout``
  seconds of opening (or of its previous response, on a kept-alive connection), else it is closed;
* **connection cap**: at most ``max_connections`` open at once, counted at ``accept()``, before any
  authentication. Over the cap, the connection that has waited longest without sending a complete
  request head is closed to make room; when every connection is busy with a request, the newcomer
  gets a ``503`` and is closed;
* **quiet logs**: the server's loggers pass one line per cause and interval (repeats are counted and
  reported with the next line), and a failed ``accept()`` logs one line, no traceback, and frees file
  descriptors by closing the oldest connections still waiting for a request head.
"""

from __future__ import annotations

import asyncio
import logging
import re
import resource
import threading
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

logger = logging.getLogger("aix_jupyter.backend")

#: file descriptors left for everything else in the process (a kernel has files, ZMQ sockets, ...)
_FD_RESERVE_FRACTION = 2


def default_max_connections() -> int:
    """1000, or half the process's file-descriptor limit when that is lower."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1000
    return max(16, min(1000, soft // _FD_RESERVE_FRACTION))


_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"retry-after: 1\r\ncontent-length: %d\r\n\r\n%s"
)
_REFUSAL_BODY = (
    b'{"error":"Too many open connections; retry later","statusCode":503,'
    b'"message":"Too many open connections; retry later"}'
)


@dataclass
class ConnectionLimits:
    """The guard's settings and its live bookkeeping (one per server)."""

    max_connections: int = field(default_factory=default_max_connections)
    header_timeout: float = 10.0
    #: connections waiting for a request head, oldest first (dict as an ordered set)
    waiting: dict[GuardedH11Protocol, None] = field(default_factory=dict, repr=False)
    closed_slow: int = 0
    evicted: int = 0
    refused: int = 0

    def evict_oldest_waiting(self, count: int = 1) -> int:
        """Close up to ``count`` connections that have waited longest for a request head."""
        closed = 0
        while closed < count and self.waiting:
            victim = next(iter(self.waiting))
            victim.drop()
            closed += 1
        self.evicted += closed
        return closed


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head deadline and a connection cap (see the module doc)."""

    limits: ClassVar[ConnectionLimits]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_cycle: object = None
        limits = self.limits
        if len(self.connections) > limits.max_connections:
            if limits.evict_oldest_waiting():
                logger.warning(
                    "aix backend: at the connection limit (%d): closed the connection that waited "
                    "longest for a request head",
                    limits.max_connections,
                )
                self._await_head()
                return
            limits.refused += 1
            logger.warning(
                "aix backend: refused a connection: %d open, all busy (limit %d)",
                len(self.connections) - 1,
                limits.max_connections,
            )
            transport.write(_REFUSAL % (len(_REFUSAL_BODY), _REFUSAL_BODY))
            transport.close()
            return
        self._await_head()

    def _await_head(self) -> None:
        """Start the request-head deadline (a new connection, or a kept-alive one between requests)."""
        self._stop_waiting()
        self._head_cycle = self.cycle
        self.limits.waiting[self] = None
        self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timed_out)

    def _stop_waiting(self) -> None:
        self.limits.waiting.pop(self, None)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.cycle is self._head_cycle and not self.transport.is_closing():
            self.limits.closed_slow += 1
            logger.warning(
                "aix backend: closed a connection that sent no complete request head within %g s",
                self.limits.header_timeout,
            )
            self.drop()

    def drop(self) -> None:
        """Close this connection now (it is waiting for a request head, so no reply is cut)."""
        self._stop_waiting()
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_timer is not None and self.cycle is not self._head_cycle:
            self._stop_waiting()  # a request head arrived: the request is the app's business now

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        if hasattr(self, "_head_timer"):
            self._stop_waiting()
        super().connection_lost(exc)


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` bound to one server's ``limits``."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})


# -- quiet logs -----------------------------------------------------------------------------------
class OncePerInterval(logging.Filter):
    """Let one record per cause through per ``interval`` seconds; count the rest and say so next time.

    The cause is the message with its numbers blanked ("fd=3", ports, counts), so a flood of one kind
    of event is one line a minute, whatever its details. Debug records all pass (they are asked for).
    """

    MAX_CAUSES = 256

    def __init__(self, interval: float = 60.0, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, list[float]] = {}  # cause -> [window start, suppressed count]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.INFO:
            return True  # debug output is asked for: all of it
        message = record.getMessage()
        cause = f"{record.name}:{re.sub(r'[0-9]+', '#', message)[:200]}"
        now = self.clock()
        with self._lock:
            entry = self._seen.get(cause)
            if entry is not None and now - entry[0] < self.interval:
                entry[1] += 1
                return False
            suppressed = int(entry[1]) if entry is not None else 0
            self._seen.pop(cause, None)
            if len(self._seen) >= self.MAX_CAUSES:
                self._seen.pop(next(iter(self._seen)))
            self._seen[cause] = [now, 0]
        if suppressed:
            record.msg = f"{message} (and {suppressed} more like this in the last {self.interval:g} s)"
            record.args = None
        return True


#: the loggers the server writes to under attack (uvicorn's "Invalid HTTP request received", ours)
QUIET_LOGGERS = ("uvicorn.error", "aix_jupyter.backend")
_FILTER = OncePerInterval()


def quiet_logging() -> None:
    """Put the once-per-interval filter on the server's loggers (idempotent)."""
    for name in QUIET_LOGGERS:
        target = logging.getLogger(name)
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)


def loop_exception_handler(limits: ConnectionLimits) -> Any:
    """An asyncio exception handler for the server's loop: one line per cause, no traceback.

    A failed ``accept()`` (out of file descriptors) also closes the oldest connections still waiting
    for a request head, so the server can accept again.
    """

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message") or "asyncio error")
        exc = context.get("exception")
        if "out of system resource" in message:
            freed = limits.evict_oldest_waiting(16)
            logger.warning("aix backend: %s (%s); closed %d waiting connections", message, exc, freed)
        else:
            logger.warning("aix backend: %s (%s)", message, exc if exc is not None else "no exception")

    return handle
