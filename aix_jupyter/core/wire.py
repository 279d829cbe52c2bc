"""The wire's sans-I/O types: a request to make (``Call``), a reply whose body is still to come
(``Opened``), and how a request can end without a reply (``TransportFailure``, ``ReplyTooLarge``,
``Cancelled``, ``DeadlineExceeded``).

The flows describe their I/O with these, the I/O drivers (``sync_transport``, ``async_transport``)
perform it with them, and neither needs the other to know them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aix_jupyter.core.errors import RequestError
from aix_jupyter.core.protocol import RawReply


class Cancelled(Exception):
    """Internal: the caller's cancel event was set while waiting."""


class DeadlineExceeded(Exception):
    """Internal: the run's deadline passed while waiting."""


class TransportFailure(RequestError):
    """The request could not be completed (connection refused, timeout, broken connection).

    ``kind`` is "connect" (nothing was sent), "timeout", "network", "invalid" (the request could
    not be made, e.g. a malformed URL) or "too-large" (the reply exceeded a cap).
    """

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


class ReplyTooLarge(TransportFailure):
    """A reply (or a stream, or one of its events) exceeded its size cap."""

    def __init__(self, message: str) -> None:
        super().__init__(message, kind="too-large")


@dataclass
class Call:
    """One HTTP request to make. ``auth`` is "run" (x-api-key), "backend" (both headers) or None."""

    method: str
    url: str
    json_body: Any = None
    auth: str | None = "run"
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    what: str = "request"
    cancel_orphan: bool = False  # a job this call starts after its caller left is cancelled
    #: a cap on this reply below ``AIX_MAX_REPLY_BYTES`` (and the setting that names it, for the message)
    max_bytes: tuple[int, str] | None = None

    @property
    def idempotent(self) -> bool:
        return self.method.upper() in ("GET", "DELETE", "HEAD", "PUT")


@dataclass
class Opened:
    """A request whose reply headers arrived; its body is still to be read (``read_rest``/``events``)."""

    response: Any
    head: RawReply
    call: Call
    client: Any = None  # async: the stream's own client, closed with it
