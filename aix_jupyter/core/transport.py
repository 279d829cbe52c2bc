"""HTTP for the client core: httpx underneath, deadlines, retries, and where the key may go.

Two thin I/O shells (``SyncTransport``, ``AsyncTransport``) with the same operations (``attempt``:
one request and its whole reply; ``open`` / ``read_rest`` / ``events``: a streamed reply;
``sleep``), driven by the flows, which hold the retry policy (``Retries``). Both return
``RawReply`` objects that the pure mapping functions in ``protocol`` turn into responses.

Limits. A reply body is read up to ``AIX_MAX_REPLY_BYTES`` (default 32 MiB; a larger one, or a
``Content-Length`` announcing one, is a ``ReplyTooLarge`` failure, which the flows turn into a
FAILED response that says so); a stream counts all its bytes against the same cap, and one event
may not exceed ``AIX_MAX_EVENT_BYTES`` (default 1 MiB). When a call returns, its I/O is over: a
request abandoned at its deadline or on cancel has its socket shut down at once (and its worker
ends with it), so a server that keeps sending cannot make the client read on in the background.

Deadlines. Every request (streams included) has connect and read timeouts. On top of that, a request made on
behalf of a run carries the run's deadline, and the caller gets control back at the deadline, at
once when a ``cancel`` event is set from another thread, and at once on KeyboardInterrupt --
whatever the server does (never answers, trickles bytes, holds a poll). The sync transport does
it in one of two ways. Without a ``cancel`` event (and with a small body), the request is made in
the caller's thread (``_inline``): the sockets of the shared clients wait for data in slices of
at most ``SIGNAL_SLICE`` (``_SlicedStream``), each bounded by the deadline, so a pending
KeyboardInterrupt is raised within a slice and the deadline ends a read as it passes. With a
``cancel`` event, the request runs in a pooled daemon worker thread and the caller waits for it in
slices. The async transport gets the same from ``asyncio.wait``. An abandoned worker ends on its
own (its httpx timeouts are bounded by the deadline plus a margin).

Retries (``retry_delay``). GET and DELETE (polls, metadata, cancel) are retried with jittered
exponential backoff on connection errors, timeouts and HTTP 429/502/503/504. A POST is retried
only where the server cannot have started a job: a connection that could not be opened, or an
HTTP 429/503 answer. ``Retry-After`` is honoured; a retry that would end after the deadline is
not made.

Cancel during a submit. When the caller cancels (or presses Ctrl-C, or cancels the task) while a
run POST is still in flight, the request is left to finish in a worker thread and, if the reply
turns out to be a started job, DELETEs it (``cancel_orphan``), so no job is left running unseen.
The async transport makes such calls in the same pooled workers (awaited on its loop), so the same
holds for ``arun``, ``amap`` and a batch's private loop, even when the loop has ended by then. A
sync POST made in the caller's thread that Ctrl-C interrupts while it waits for its reply hands its
connection over to a worker, which reads the reply there (``_finish_orphan``).

The API key. ``Transport`` attaches the key only to URLs on the origin (scheme, host, port) of
the configured run or backend URL (``Endpoints.may_receive_key``). A poll URL on any other
host is refused with ``UnsafePollURLError`` before anything is sent (we chose refusing over
polling without the key: a foreign poll URL is a sign of a misconfigured or hostile server, and
silently dropping the key would only turn it into a confusing 401). ``AIX_TRUSTED_HOSTS`` adds
hosts. Without any key nothing can leak, so such a poll URL is polled. Redirects are never
followed. Nothing here logs headers or the key.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import logging
import math
import os
import queue
import random
import re
import socket
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aix_jupyter.core.config import Endpoints, origin
from aix_jupyter.core.errors import AixError, ConfigurationError, RequestError, UnsafePollURLError
from aix_jupyter.core.protocol import RawReply, retry_after_seconds

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("aix_jupyter.core")

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
CANCEL_TIMEOUT = 2.0
STREAM_READ_TIMEOUT = 300.0  # longest silence between two streamed chunks
ABANDON_MARGIN = 0.25  # an abandoned request's own timeouts end it this long after its deadline
MAX_REPLY_BYTES = 32 * 1024 * 1024  # AIX_MAX_REPLY_BYTES
MAX_EVENT_BYTES = 1024 * 1024  # AIX_MAX_EVENT_BYTES
STREAM_QUEUE = 16  # batches read ahead of a sync stream's consumer
MAX_ATTEMPTS = 3
BACKOFF_BASE = 0.25
BACKOFF_MAX = 4.0
WAIT_SLICE = 0.05
SIGNAL_SLICE = 0.1
RETRY_STATUS_GET = frozenset({429, 502, 503, 504})
RETRY_STATUS_POST = frozenset({429, 503})
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


class _KeyFilter(logging.Filter):
    """Redacts the keys this process sends from the records of httpx and httpcore.

    httpcore logs every response's headers at DEBUG, so a server echoing the key in a header
    would put it in a log line. Installed on those loggers the first time a key is sent.
    """

    keys: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(key in message for key in self.keys):
            for key in self.keys:
                message = message.replace(key, "***")
            record.msg, record.args = message, None
        return True


_key_filter = _KeyFilter()
_LIBRARY_LOGGERS = ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy")


def _guard_logs(key: str) -> None:
    if key not in _KeyFilter.keys:
        if not _KeyFilter.keys:
            for name in _LIBRARY_LOGGERS:
                logging.getLogger(name).addFilter(_key_filter)
        _KeyFilter.keys.add(key)


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


def _limit(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigurationError(f"{name} must be a positive number of bytes, got {raw!r}")
    return value


def reply_limit() -> int:
    """The largest reply body (and streamed total) read, in bytes: ``AIX_MAX_REPLY_BYTES``."""
    return _limit("AIX_MAX_REPLY_BYTES", MAX_REPLY_BYTES)


def event_limit() -> int:
    """The largest single server-sent event, in bytes: ``AIX_MAX_EVENT_BYTES``."""
    return _limit("AIX_MAX_EVENT_BYTES", MAX_EVENT_BYTES)


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


def retry_delay(
    call: Call,
    attempt: int,
    *,
    reply: RawReply | None = None,
    error: TransportFailure | None = None,
    remaining: float | None = None,
    rng: random.Random | None = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> float | None:
    """Seconds to wait before retrying ``call`` after attempt number ``attempt`` (1-based), or None."""
    if attempt >= max_attempts:
        return None
    if reply is not None:
        allowed = RETRY_STATUS_GET if call.idempotent else RETRY_STATUS_POST
        if reply.status_code not in allowed:
            return None
        delay = retry_after_seconds(reply.header("retry-after"))
    elif error is not None:
        if error.kind in ("too-large", "invalid") or (not call.idempotent and error.kind != "connect"):
            return None
        delay = None
    else:
        return None
    if delay is None:
        delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (attempt - 1)) * (rng or random).uniform(0.5, 1.0)
    if remaining is not None and delay >= remaining:
        return None
    return delay


def _short_origin(url: str) -> str:
    scheme, host, port = origin(url)
    return f"{scheme}://{host}:{port}"


def _failure(exc: Exception, call: Call) -> AixError:
    """What an exception raised while talking to the server means, as an AixError (never foreign)."""
    import httpx

    if isinstance(exc, AixError):
        return exc
    where = _short_origin(call.url)
    if isinstance(exc, httpx.ConnectTimeout):
        return TransportFailure(f"{call.what}: could not connect to {where} (timed out)", kind="connect")
    if isinstance(exc, httpx.ConnectError):
        return TransportFailure(f"{call.what}: could not connect to {where} ({_reason(exc)})", kind="connect")
    if isinstance(exc, httpx.TimeoutException):
        return TransportFailure(f"{call.what}: {where} did not answer in time", kind="timeout")
    if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol | httpx.LocalProtocolError):
        return TransportFailure(f"{call.what}: the request cannot be made ({_reason(exc)})", kind="invalid")
    return TransportFailure(f"{call.what}: connection to {where} failed ({_reason(exc)})", kind="network")


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:160]


class Retries:
    """``retry_delay`` applied to the attempts of one call; the sync and async ``send`` share it.

    The time left is taken when an attempt starts for a failure (nothing came back) and when the
    reply arrives for an HTTP answer, so a retry that would end after the deadline is not made.
    """

    __slots__ = ("_left_at_start", "attempt", "call", "deadline", "max_attempts", "rng")

    def __init__(
        self, call: Call, deadline: float | None, rng: random.Random | None, max_attempts: int
    ) -> None:
        self.call, self.deadline, self.rng, self.max_attempts = call, deadline, rng, max_attempts
        self.attempt = 0
        self._left_at_start: float | None = None

    def _left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def start(self) -> None:
        self.attempt += 1
        self._left_at_start = self._left()

    def after_failure(self, error: TransportFailure) -> float | None:
        """Seconds to wait before the next attempt after ``error``, or None to give up."""
        delay = retry_delay(
            self.call,
            self.attempt,
            error=error,
            remaining=self._left_at_start,
            rng=self.rng,
            max_attempts=self.max_attempts,
        )
        if delay is not None:
            log.debug("%s failed (%s); retrying in %.2f s", self.call.what, error.kind, delay)
        return delay

    def after_reply(self, reply: RawReply) -> float | None:
        """Seconds to wait before the next attempt after ``reply``, or None to return it."""
        delay = retry_delay(
            self.call,
            self.attempt,
            reply=reply,
            remaining=self._left(),
            rng=self.rng,
            max_attempts=self.max_attempts,
        )
        if delay is not None:
            log.debug("%s answered HTTP %s; retrying in %.2f s", self.call.what, reply.status_code, delay)
        return delay


def attempts(call: Call, deadline: float | None, max_attempts: int) -> Any:
    """The retry policy of one request, as a flow (see ``flows``): it yields ``Attempt`` and
    ``Sleep`` operations, and returns the reply or raises the last TransportFailure."""
    from aix_jupyter.core.flows import Attempt, Sleep

    retries = Retries(call, deadline, None, max_attempts)
    while True:
        retries.start()
        try:
            reply: RawReply = yield Attempt(call, deadline)
        except TransportFailure as exc:
            delay = retries.after_failure(exc)
            if delay is None:
                raise
        else:
            delay = retries.after_reply(reply)
            if delay is None:
                return reply
        yield Sleep(delay)


_UNSET: Any = object()


@functools.lru_cache(maxsize=512)
def _url(url: str) -> httpx.URL:
    """``httpx.URL(url)``, parsed once (a URL is immutable)."""
    import httpx

    return httpx.URL(url)


_UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f]")


@functools.lru_cache(maxsize=512)
def _url_problem(url: str) -> str | None:
    """What makes ``url`` unfit for a request (the end of an error message), or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "is not an http(s) URL"
    if _UNSAFE_CHARS.search(url):
        return "contains white space or control characters"
    return None


class Transport:
    """What both I/O shells share: the endpoints, header building and the key's boundary."""

    def __init__(self, endpoints: Endpoints, *, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.endpoints = endpoints
        self.max_attempts = max_attempts

    def attempts(self, call: Call, deadline: float | None = None, max_attempts: int | None = None) -> Any:
        return attempts(call, deadline, self.max_attempts if max_attempts is None else max_attempts)

    def check_url(self, url: str, *, what: str = "poll URL") -> None:
        """Raise UnsafePollURLError when the key would go to a host it is not configured for."""
        problem = _url_problem(url)
        if problem is not None:
            raise RequestError(f"{what} {problem}: {url[:80]!r}")
        if self.endpoints.api_key and not self.endpoints.may_receive_key(url):
            raise UnsafePollURLError(
                f"refusing to send the API key to {_short_origin(url)}: the {what} is on neither the run "
                f"host ({_short_origin(self.endpoints.run_url)}) nor the backend host "
                f"({_short_origin(self.endpoints.backend_url)}); add it to AIX_TRUSTED_HOSTS to trust it"
            )

    def headers(self, call: Call) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept-Encoding": "gzip, deflate", **call.headers}
        key = self.endpoints.api_key
        if call.auth and key:
            self.check_url(call.url, what=f"{call.what} URL")
            _guard_logs(key)
            headers["x-api-key"] = key
            if call.auth == "backend":
                headers["Authorization"] = f"Token {key}"
        return headers

    def body(self, call: Call) -> bytes | None:
        if call.content is not None:
            return call.content
        if call.json_body is None:
            return None
        import json

        return json.dumps(call.json_body).encode("utf-8")

    def request(
        self, client: Any, call: Call, deadline: float | None, *, stream: bool = False, body: Any = _UNSET
    ) -> Any:
        """The httpx request for ``call`` on ``client``, its timeouts bounded by ``deadline``."""
        try:
            return client.build_request(
                call.method,
                call.url,
                headers=self.headers(call),
                content=self.body(call) if body is _UNSET else body,
                timeout=_timeout(deadline, STREAM_READ_TIMEOUT if stream else READ_TIMEOUT),
            )
        except AixError:
            raise
        except Exception as exc:
            raise _failure(exc, call) from None

    def reader(self, call: Call) -> BodyReader:
        return BodyReader(call, self.endpoints.api_key)

    def event_reader(self, call: Call) -> EventReader:
        return EventReader(call, self.endpoints.api_key)


def _timeout(deadline: float | None, read: float) -> httpx.Timeout:
    import httpx

    return httpx.Timeout(**_timeouts(deadline, read))


def _timeouts(deadline: float | None, read: float) -> dict[str, float]:
    """The connect / read / write / pool timeouts of a request (httpx's ``Timeout.as_dict()``)."""
    if deadline is None:
        return {"connect": CONNECT_TIMEOUT, "read": read, "write": read, "pool": read}
    remaining = max(0.05, deadline - time.monotonic())
    # the caller stops waiting at the deadline; the request's own timeouts only bound its life
    read = min(read, remaining) + ABANDON_MARGIN
    return {
        "connect": min(CONNECT_TIMEOUT, remaining + ABANDON_MARGIN),
        "read": read,
        "write": read,
        "pool": read,
    }


def _too_large(call: Call, what: str, limit: int, setting: str) -> ReplyTooLarge:
    return ReplyTooLarge(
        f"{call.what}: {what} from {_short_origin(call.url)} is larger than {limit} bytes, the cap "
        f"({setting}); raise {setting} if this is expected"
    )


class _Reader:
    """What the body readers share: the size cap and content decoding with bounded output.

    Bodies are read raw and inflated here, ``room`` bytes at a time, so a small compressed reply
    cannot inflate past the cap in one step (a gzip bomb costs at most the cap).
    """

    __slots__ = ("_inflater", "call", "headers", "limit", "secret", "setting", "total")

    def __init__(self, call: Call, secret: str | None) -> None:
        self.call, self.secret = call, secret
        self.limit, self.setting = reply_limit(), "AIX_MAX_REPLY_BYTES"
        if call.max_bytes is not None and call.max_bytes[0] < self.limit:
            self.limit, self.setting = call.max_bytes
        self.total = 0
        self._inflater: Any = None
        self.headers: dict[str, str] = {}

    def start(self, response: httpx.Response, what: str = "the reply") -> None:
        self.headers = headers = _header_dict(response.headers)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            raise _too_large(self.call, what, self.limit, self.setting)
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("gzip", "x-gzip", "deflate"):
            self._inflater = zlib.decompressobj(47)  # a gzip or zlib header, detected
        elif encoding not in ("", "identity"):
            raise TransportFailure(
                f"{self.call.what}: the reply is in an encoding that was not asked for ({encoding[:40]!r})",
                kind="invalid",
            )

    def inflate(self, raw: bytes, what: str = "the reply") -> bytes:
        """``raw`` decoded; ReplyTooLarge once everything read exceeds the cap."""
        if self._inflater is not None:
            try:
                raw = self._inflater.decompress(raw, self.limit - self.total + 1)
            except zlib.error:
                raise TransportFailure(
                    f"{self.call.what}: the reply's compression is corrupt", kind="network"
                ) from None
            if self._inflater.unconsumed_tail:
                raise _too_large(self.call, what, self.limit, self.setting)
        self.total += len(raw)
        if self.total > self.limit:
            raise _too_large(self.call, what, self.limit, self.setting)
        return raw


class BodyReader(_Reader):
    """A whole reply body read up to ``reply_limit()``: ``start``, then ``add`` each raw read."""

    __slots__ = ("_parts",)

    def __init__(self, call: Call, secret: str | None) -> None:
        super().__init__(call, secret)
        self._parts = bytearray()

    def add(self, raw: bytes) -> None:
        self._parts += self.inflate(raw)

    def reply(self, response: httpx.Response) -> RawReply:
        return RawReply(response.status_code, self.headers, bytes(self._parts), secret=self.secret)


class EventReader(_Reader):
    """Decodes a stream's raw reads into batches of event payloads, within the caps."""

    __slots__ = ("_decoder",)

    def __init__(self, call: Call, secret: str | None) -> None:
        from aix_jupyter.core.streaming import SSEDecoder

        super().__init__(call, secret)
        self._decoder = SSEDecoder(secret, max_event=event_limit())

    def feed(self, raw: bytes) -> list[bytes]:
        return self._decoder.feed(self.inflate(raw, "the stream"))

    def end(self) -> list[bytes]:
        return self._decoder.flush()


@dataclass
class Opened:
    """A request whose reply headers arrived; its body is still to be read (``read_rest``/``events``)."""

    response: Any
    head: RawReply
    call: Call
    client: Any = None  # async: the stream's own client, closed with it


def _raw(response: httpx.Response, content: bytes, secret: str | None) -> RawReply:
    return RawReply(response.status_code, _header_dict(response.headers), content, secret=secret)


def _header_dict(headers: httpx.Headers | dict[str, str]) -> dict[str, str]:
    """``{lower-case name: value}``, repeated names joined with ", " (as ``httpx.Headers.items``)."""
    if isinstance(headers, dict):  # already so (``_Head``)
        return headers
    raw = headers.raw
    try:  # the common case, decoded directly: ASCII, no name repeated
        out = {k.decode("ascii").lower(): v.decode("ascii") for k, v in raw}
    except UnicodeDecodeError:
        out = {}
    if len(out) != len(raw):
        out = {k.lower(): v for k, v in headers.items()}
    return out


def _kill(response: Any) -> None:
    """Shut the response's socket down now, from any thread: a read blocked on it returns at once."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


# ---------------------------------------------------------------------------------------------
# sync


_clients: dict[bool, httpx.Client] = {}
_clients_lock = threading.Lock()
_sliced: set[int] = set()  # ids of the shared clients whose every connection reads in slices
# id of a shared client -> (its only transport, its default headers): requests made in the caller's
# thread go to that transport directly (``SyncTransport._inline``)
_direct: dict[int, tuple[httpx.HTTPTransport, dict[str, str]]] = {}


def sync_client(url: str) -> httpx.Client:
    """A shared httpx.Client (pooled); loopback URLs bypass any proxy from the environment."""
    local = (urlsplit(url).hostname or "").lower() in LOOPBACK
    client = _clients.get(local)
    if client is None:
        with _clients_lock:
            client = _clients.get(local)
            if client is None:
                import httpx

                # loopback: no proxy, so the one transport serves every request (``_direct``)
                transport = httpx.HTTPTransport(trust_env=False) if local else None
                client = httpx.Client(follow_redirects=False, trust_env=not local, transport=transport)
                if _slice_reads(client):
                    _sliced.add(id(client))
                    if transport is not None:
                        _direct[id(client)] = (transport, _header_dict(client.headers))
                if not _clients:
                    atexit.register(_close_clients)  # kept-alive sockets closed, not left to the GC
                _clients[local] = client
    return client


# -- requests in the caller's thread ---------------------------------------------------------
# The shared clients' connections wait for data in slices (``_SlicedStream``): between two
# slices the request's deadline is checked and a pending KeyboardInterrupt is raised, which is
# what lets a request without a cancel event run in the caller's thread (no hand-off to a worker,
# the largest part of a fast run's cost) and still keep its deadline and a prompt Ctrl-C.

_local = threading.local()
INLINE_MAX_BODY = 64 * 1024  # a larger body is sent from a worker (a long write is not sliced)
_ReadTimeout: Any = None  # httpcore.ReadTimeout, once a client reads in slices


class _Watch:
    """What the sliced reads of the caller's current request check: its deadline, and for a run
    POST (``orphan``) the bytes read so far, so that its reply can be finished elsewhere."""

    __slots__ = ("call", "deadline", "record", "stream", "transport")

    def __init__(self, deadline: float | None, transport: SyncTransport | None, call: Call) -> None:
        self.deadline, self.transport, self.call = deadline, transport, call
        self.record: list[bytes] | None = [] if transport is not None else None
        self.stream: Any = None


def _slice_reads(client: httpx.Client) -> bool:
    """Make every connection of ``client`` read in slices; False when its pools cannot be reached
    (another httpx / httpcore layout): its requests then all go through workers."""
    global _ReadTimeout
    import httpcore

    _ReadTimeout = httpcore.ReadTimeout
    transports = [getattr(client, "_transport", None), *getattr(client, "_mounts", {}).values()]
    pools = [getattr(t, "_pool", None) for t in transports if t is not None]
    if not pools or not all(hasattr(pool, "_network_backend") for pool in pools):
        return False
    for pool in pools:
        pool._network_backend = _SlicedBackend(pool._network_backend)
    return True


class _SlicedBackend:
    """An httpcore network backend whose streams read in slices (``_SlicedStream``)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def connect_tcp(self, *args: Any, **kwargs: Any) -> _SlicedStream:
        return _SlicedStream(self._inner.connect_tcp(*args, **kwargs))

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> _SlicedStream:
        return _SlicedStream(self._inner.connect_unix_socket(*args, **kwargs))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _SlicedStream:
    """An httpcore network stream that, for a request made in the caller's thread, waits for data
    in slices of at most ``SIGNAL_SLICE`` bounded by the request's deadline (a read that times
    out for a slice has consumed nothing, so it is simply made again). Other requests read as
    httpcore asks."""

    __slots__ = ("_detached", "_inner")

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._detached = False

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        watch: _Watch | None = getattr(_local, "watch", None)
        if watch is None:
            return self._inner.read(max_bytes, timeout)  # type: ignore[no-any-return]
        if watch.stream is not self:  # a new connection (or its TLS layer): its reply starts here
            watch.stream, watch.record = self, ([] if watch.transport is not None else None)
        end = None if timeout is None else time.monotonic() + timeout
        deadline = watch.deadline
        try:
            while True:
                now = time.monotonic()
                step = SIGNAL_SLICE
                if deadline is not None:
                    if now >= deadline:
                        raise DeadlineExceeded()
                    step = min(step, deadline - now)
                if end is not None:
                    if now >= end:
                        raise _ReadTimeout("timed out")
                    step = min(step, end - now)
                try:
                    data: bytes = self._inner.read(max_bytes, step)
                except _ReadTimeout:
                    continue
                if watch.record is not None:
                    watch.record.append(data)
                return data
        except KeyboardInterrupt:
            if watch.record is not None and watch.transport is not None:
                self._detached = True  # the connection is the worker's now: close() leaves it open
                inner, record, transport = self._inner, watch.record, watch.transport
                run_in_worker(lambda: transport._finish_orphan(inner, record, watch.call, deadline))
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        if not self._detached:
            self._inner.close()

    def start_tls(self, *args: Any, **kwargs: Any) -> _SlicedStream:
        return _SlicedStream(self._inner.start_tls(*args, **kwargs))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Head:
    """The status and headers of a reply read outside httpx (``_finish_orphan``)."""

    __slots__ = ("headers", "status_code")

    def __init__(self, status_code: int, headers: dict[str, str]) -> None:
        self.status_code, self.headers = status_code, headers


def _close_clients() -> None:
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()


class _Job:
    __slots__ = ("done", "error", "notify", "result")

    def __init__(self, notify: Callable[[], None] | None = None) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.notify = notify  # called by the worker once ``done`` is set


# Requests run in daemon worker threads that are kept for reuse: starting a thread per request
# costs more than the request itself on a loaded loopback. Daemon threads, not a
# concurrent.futures pool, so that a request abandoned at its deadline never delays the
# interpreter's exit. The pool grows to the largest number of requests in flight at once.
_work: queue.SimpleQueue[tuple[Callable[[], Any], _Job]] = queue.SimpleQueue()
_pool_lock = threading.Lock()
_idle_workers = 0


def _worker() -> None:
    global _idle_workers
    while True:
        fn, job = _work.get()
        try:
            job.result = fn()
        except BaseException as exc:  # handed to the waiting caller, who re-raises it
            job.error = exc
        finally:
            job.done.set()
            if job.notify is not None:
                with contextlib.suppress(Exception):  # e.g. the waiting loop is closed: nobody waits
                    job.notify()
        del fn, job
        with _pool_lock:
            _idle_workers += 1


def run_in_worker(
    fn: Callable[[], Any], name: str = "aix-http", notify: Callable[[], None] | None = None
) -> _Job:
    """Run ``fn`` in a pooled daemon worker thread; the returned job says when it is done (and the
    worker calls ``notify()`` then, when given)."""
    global _idle_workers
    job = _Job(notify)
    with _pool_lock:
        if _idle_workers:
            _idle_workers -= 1  # that worker is reserved for this item
        else:
            threading.Thread(target=_worker, name=name, daemon=True).start()
    _work.put((fn, job))
    return job


def wait_job(job: _Job, deadline: float | None, cancel: threading.Event | None) -> Any:
    """Wait for ``job`` in the caller's thread; raise Cancelled / DeadlineExceeded / the job's error.

    The wait is sliced (``WAIT_SLICE`` with a cancel event, ``SIGNAL_SLICE`` without) so that a
    pending KeyboardInterrupt is noticed promptly whichever thread the signal reached.
    """
    step_max = WAIT_SLICE if cancel is not None else SIGNAL_SLICE
    while True:
        try:
            step = _next_slice(deadline, cancel, step_max)
        except DeadlineExceeded:
            if job.done.is_set():
                break
            raise
        if job.done.wait(step):
            break
    if job.error is not None:
        raise job.error
    return job.result


def _next_slice(deadline: float | None, cancel: threading.Event | None, step: float) -> float:
    """How long to wait before looking again; raise Cancelled / DeadlineExceeded when it is over."""
    if cancel is not None and cancel.is_set():
        raise Cancelled()
    if deadline is None:
        return step
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlineExceeded()
    return min(step, remaining)


def sleep_until(seconds: float, cancel: threading.Event | None) -> None:
    """Sleep in slices, returning early with Cancelled when ``cancel`` is set."""
    end = time.monotonic() + max(0.0, seconds)
    with contextlib.suppress(DeadlineExceeded):
        while True:
            step = _next_slice(end, cancel, SIGNAL_SLICE)
            if cancel is None:
                time.sleep(step)
            elif cancel.wait(step):
                raise Cancelled()


class _Exchange:
    """The response of a request made in a worker, which its caller may abandon at any time.

    Abandoning with ``kill`` shuts the response's socket down (``_kill``), so the worker's read
    ends at once; a response that arrives after that is killed as it arrives.
    """

    __slots__ = ("abandoned", "killed", "lock", "response")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.response: Any = None
        self.abandoned = self.killed = False

    def attach(self, response: Any) -> bool:
        """Record ``response``; False (and the response killed) when the caller already left."""
        with self.lock:
            self.response = response
            if self.killed:
                _kill(response)
            return not self.killed

    def abandon(self, kill: bool = True) -> None:
        with self.lock:
            self.abandoned = True
            self.killed = self.killed or kill
            if kill and self.response is not None:
                _kill(self.response)


def _wait(job: _Job, exchange: _Exchange, deadline: float | None, cancel: Any, keep: bool = False) -> Any:
    """``wait_job``; a caller that leaves (deadline, cancel, Ctrl-C) abandons the exchange.

    ``keep``: on cancel or Ctrl-C the request is left to finish (its worker cleans up after it).
    """
    try:
        return wait_job(job, deadline, cancel)
    except DeadlineExceeded:
        exchange.abandon()
        raise
    except BaseException:
        exchange.abandon(kill=not keep)
        raise


class SyncTransport(Transport):
    """Blocking I/O: a request without a cancel event runs in the caller's thread, its reads sliced
    (``_inline``); one with a cancel event, and a stream, in a pooled worker thread the caller waits
    for in slices."""

    is_async = False

    def send(self, call: Call, *, cancel: threading.Event | None = None, **limits: Any) -> RawReply:
        """``call`` with the retry policy (``limits``: ``deadline``, ``max_attempts``); raise
        TransportFailure / Cancelled / DeadlineExceeded."""
        from aix_jupyter.core.flows import drive_sync

        return drive_sync(self.attempts(call, **limits), self, cancel)

    def _read(self, response: Any, call: Call, exchange: _Exchange) -> RawReply:
        """The whole body of ``response`` (capped), in the worker; the response is closed after."""
        reader = self.reader(call)
        try:
            if not exchange.attach(response):
                raise Cancelled()
            reader.start(response)
            for chunk in response.iter_raw():
                reader.add(chunk)
        except (Cancelled, DeadlineExceeded):
            raise
        except Exception as exc:
            raise _failure(exc, call) from None
        finally:
            response.close()
        return reader.reply(response)

    def attempt(self, call: Call, deadline: float | None, cancel: threading.Event | None) -> RawReply:
        """One request and its whole reply; raise TransportFailure / Cancelled / DeadlineExceeded."""
        client = sync_client(call.url)
        body = self.body(call)
        if cancel is None and id(client) in _sliced and (body is None or len(body) <= INLINE_MAX_BODY):
            return self._inline(client, call, body, deadline)
        job, exchange = self.start(call, deadline, client=client, body=body)
        try:
            return _wait(job, exchange, deadline, cancel, keep=call.cancel_orphan)
        except (Cancelled, KeyboardInterrupt):
            self.left(call, job)
            raise

    def start(
        self,
        call: Call,
        deadline: float | None,
        notify: Callable[[], None] | None = None,
        *,
        client: Any = None,
        body: Any = _UNSET,
    ) -> tuple[_Job, _Exchange]:
        """Make ``call`` in a pooled worker (``notify()`` from there once it is done). When its caller
        abandons the exchange without killing it, a ``cancel_orphan`` call's reply is cleaned up there."""
        client = sync_client(call.url) if client is None else client
        body = self.body(call) if body is _UNSET else body
        request = self.request(client, call, deadline, body=body)
        exchange = _Exchange()
        orphan = self.cancel_orphan if call.cancel_orphan else None

        def do() -> RawReply:
            try:
                response = client.send(request, stream=True)
            except Exception as exc:
                raise _failure(exc, call) from None
            reply = self._read(response, call, exchange)
            if exchange.abandoned and orphan is not None:
                orphan(reply)  # the caller left (cancel, Ctrl-C): clean up what it started
            return reply

        return run_in_worker(do, notify=notify), exchange

    def left(self, call: Call, job: _Job) -> None:
        """The caller of ``start`` left (cancel, Ctrl-C, task cancellation) without killing the exchange."""
        if call.cancel_orphan and job.done.is_set() and job.error is None:
            self.cancel_orphan(job.result)  # it finished just as the caller left

    def _inline(self, client: Any, call: Call, body: bytes | None, deadline: float | None) -> RawReply:
        """``attempt`` in the caller's thread, its reads sliced (see ``_SlicedStream``).

        On a loopback client the request goes straight to its transport: what ``Client.send`` adds
        (auth and redirect machinery, cookies, event hooks) is nothing these requests use."""
        watch = _Watch(deadline, self if call.cancel_orphan else None, call)
        outer = getattr(_local, "watch", None)
        _local.watch = watch
        try:
            direct = _direct.get(id(client))
            try:
                if direct is not None:
                    response = direct[0].handle_request(self.direct_request(call, body, deadline, direct[1]))
                else:
                    response = client.send(self.request(client, call, deadline, body=body), stream=True)
            except (AixError, DeadlineExceeded, Cancelled):
                raise
            except Exception as exc:
                raise _failure(exc, call) from None
            return self._read(response, call, _Exchange())
        finally:
            _local.watch = outer

    def direct_request(
        self, call: Call, body: bytes | None, deadline: float | None, defaults: dict[str, str]
    ) -> httpx.Request:
        """The request ``Client.build_request`` would make for ``call`` (the client's default headers
        under ours; the timeouts of ``_timeout``), built directly."""
        import httpx

        merged = dict(defaults)
        for name, value in self.headers(call).items():
            merged[name.lower()] = value
        try:
            return httpx.Request(
                call.method,
                _url(call.url),
                headers=list(merged.items()),
                content=body,
                extensions={"timeout": _timeouts(deadline, READ_TIMEOUT)},
            )
        except Exception as exc:
            raise _failure(exc, call) from None

    def _finish_orphan(self, stream: Any, record: list[bytes], call: Call, deadline: float | None) -> None:
        """In a worker: read the rest of the reply to a run POST whose caller left (Ctrl-C) from its
        connection (``record``: what was read of it before), then ``cancel_orphan`` it."""
        import h11

        end = (time.monotonic() + READ_TIMEOUT if deadline is None else deadline) + ABANDON_MARGIN
        try:
            conn = h11.Connection(h11.CLIENT)
            conn.send(h11.Request(method=call.method, target="/", headers=[("Host", "orphan")]))
            conn.send(h11.EndOfMessage())
            for data in record:
                conn.receive_data(data)
            reader, head = self.reader(call), None
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    left = end - time.monotonic()
                    if left <= 0:
                        return
                    conn.receive_data(stream.read(64 * 1024, min(left, READ_TIMEOUT)))
                elif isinstance(event, h11.Response):
                    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
                    head = _Head(event.status_code, headers)
                    reader.start(head)  # type: ignore[arg-type]
                elif isinstance(event, h11.Data):
                    reader.add(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage) and head is not None:
                    break
                elif not isinstance(event, h11.InformationalResponse):
                    return  # the connection closed, or something else: no reply to clean up after
            self.cancel_orphan(reader.reply(head))  # type: ignore[arg-type]
        except Exception as exc:  # best effort: the caller is gone, nobody to report to
            log.debug("the reply of an interrupted run could not be read (%s)", type(exc).__name__)
        finally:
            with contextlib.suppress(Exception):
                stream.close()

    def cancel_orphan(self, reply: RawReply) -> None:
        """DELETE the job a run POST started after its caller had cancelled (best effort, bounded)."""
        from aix_jupyter.core.protocol import map_run_reply

        response = map_run_reply(reply)
        url = response.url
        if response.status.value != "IN_PROGRESS" or not url:
            return
        if self.endpoints.api_key and not self.endpoints.may_receive_key(url):
            return
        call = Call("DELETE", url, what="cancel")
        with contextlib.suppress(Exception):  # best effort: the caller is gone, nobody to report to
            sync_client(url).request("DELETE", url, headers=self.headers(call), timeout=CANCEL_TIMEOUT)
        log.debug("cancelled a job started after its run was cancelled")

    def sleep(self, seconds: float, cancel: threading.Event | None) -> None:
        sleep_until(seconds, cancel)

    def open(self, call: Call, deadline: float | None, cancel: threading.Event | None) -> Opened:
        """Send ``call`` and return once the reply's headers arrived (the body is read later)."""
        client = sync_client(call.url)
        request = self.request(client, call, deadline, stream=True)
        exchange = _Exchange()

        def do() -> Any:
            try:
                response = client.send(request, stream=True)
            except Exception as exc:
                raise _failure(exc, call) from None
            if not exchange.attach(response):
                response.close()
            return response

        response = _wait(run_in_worker(do), exchange, deadline, cancel)
        return Opened(response, _raw(response, b"", self.endpoints.api_key), call)

    def read_rest(self, opened: Opened, deadline: float | None, cancel: threading.Event | None) -> RawReply:
        """The rest of an opened reply (capped); the response is closed after."""
        exchange = _Exchange()
        job = run_in_worker(lambda: self._read(opened.response, opened.call, exchange))
        return _wait(job, exchange, deadline, cancel)

    def events(
        self, opened: Opened, deadline: float | None, cancel: threading.Event | None
    ) -> Iterator[list[bytes]]:
        """Batches of SSE payloads of an opened stream, read ahead in a daemon thread.

        The consumer waits in slices, so ``cancel`` and the deadline end the wait at once; closing
        the iterator (or reaching the end) shuts the connection down. The reader stops by itself
        at the deadline too, so a stream nobody consumes holds its connection no longer.
        """
        reader = self.event_reader(opened.call)
        box: queue.Queue[Any] = queue.Queue(STREAM_QUEUE)
        stop = threading.Event()
        response = opened.response

        def put(item: Any) -> bool:
            while not stop.is_set():
                if deadline is not None and time.monotonic() > deadline + ABANDON_MARGIN:
                    return False
                with contextlib.suppress(queue.Full):
                    box.put(item, timeout=SIGNAL_SLICE)
                    return True
            return False

        def pump() -> None:
            try:
                reader.start(response, "the stream")
                for raw in response.iter_raw():
                    batch = reader.feed(raw)
                    if batch and not put(batch):
                        return
                rest = reader.end()
                if not rest or put(rest):
                    put(_EOF)
            except Exception as exc:
                put(_failure(exc, opened.call))
            finally:
                _kill(response)
                response.close()

        run_in_worker(pump)  # a pooled worker reads ahead for the whole stream
        try:
            while True:
                item = _take(box, deadline, cancel)
                if item is _EOF:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            _kill(response)


_EOF = object()


def _take(box: queue.Queue[Any], deadline: float | None, cancel: threading.Event | None) -> Any:
    while True:
        step = _next_slice(deadline, cancel, WAIT_SLICE)
        with contextlib.suppress(queue.Empty):
            return box.get(timeout=step)


# ---------------------------------------------------------------------------------------------
# async

_ssl_context: Any = None


def _verify() -> Any:
    global _ssl_context
    if _ssl_context is None:
        import httpx

        _ssl_context = httpx.create_ssl_context()
    return _ssl_context


def async_client(url: str) -> httpx.AsyncClient:
    """A new AsyncClient (cheap: the SSL context is shared); close it when done."""
    import httpx

    local = (urlsplit(url).hostname or "").lower() in LOOPBACK
    return httpx.AsyncClient(follow_redirects=False, trust_env=not local, verify=_verify())


async def await_within(awaitable: Any, deadline: float | None, cancel: threading.Event | None) -> Any:
    """Await with a deadline and a thread-safe cancel event; the inner task is cancelled on exit."""
    task = asyncio.ensure_future(awaitable)
    try:
        while True:
            if cancel is not None and cancel.is_set():
                raise Cancelled()
            if deadline is None:
                step = WAIT_SLICE if cancel is not None else None
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DeadlineExceeded()
                step = min(WAIT_SLICE, remaining) if cancel is not None else remaining
            done, _ = await asyncio.wait({task}, timeout=step)
            if done:
                return task.result()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait({task}, timeout=0.5)


async def asleep_until(seconds: float, cancel: threading.Event | None) -> None:
    """``sleep_until`` for asyncio."""
    end = time.monotonic() + max(0.0, seconds)
    with contextlib.suppress(DeadlineExceeded):
        while True:
            await asyncio.sleep(_next_slice(end, cancel, WAIT_SLICE if cancel is not None else math.inf))


class AsyncTransport(Transport):
    is_async = True  # what a plan's finish asks to read a stream the same way it was opened

    """asyncio I/O: the same operations as ``SyncTransport``, as coroutines.

    The requests of one flow share a client per kind of host (``aclose`` closes them); a stream
    has a client of its own, closed with the stream.
    """

    def __init__(self, endpoints: Endpoints, client: httpx.AsyncClient | None = None, **kw: Any) -> None:
        super().__init__(endpoints, **kw)
        self._shared = client  # the caller's client for every request (it closes it, not aclose)
        self._clients: dict[bool, httpx.AsyncClient] = {}

    def client(self, url: str) -> httpx.AsyncClient:
        if self._shared is not None:
            return self._shared
        local = (urlsplit(url).hostname or "").lower() in LOOPBACK
        if local not in self._clients:
            self._clients[local] = async_client(url)
        return self._clients[local]

    async def send(self, call: Call, *, cancel: threading.Event | None = None, **limits: Any) -> RawReply:
        """``SyncTransport.send`` for asyncio."""
        from aix_jupyter.core.flows import drive_async

        return await drive_async(self.attempts(call, **limits), self, cancel)

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    async def _send(self, client: Any, call: Call, deadline: float | None, stream: bool = False) -> Any:
        request = self.request(client, call, deadline, stream=stream)
        try:
            return await client.send(request, stream=True)
        except Exception as exc:
            raise _failure(exc, call) from None

    async def _read(self, response: Any, call: Call) -> RawReply:
        reader = self.reader(call)
        try:
            reader.start(response)
            async for chunk in response.aiter_raw():
                reader.add(chunk)
        except Exception as exc:
            raise _failure(exc, call) from None
        finally:
            await response.aclose()
        return reader.reply(response)

    async def attempt(self, call: Call, deadline: float | None, cancel: threading.Event | None) -> RawReply:
        if call.cancel_orphan:
            return await self._attempt_in_worker(call, deadline, cancel)

        async def do() -> RawReply:
            response = await self._send(self.client(call.url), call, deadline)
            return await self._read(response, call)

        return await await_within(do(), deadline, cancel)

    async def _attempt_in_worker(
        self, call: Call, deadline: float | None, cancel: threading.Event | None
    ) -> RawReply:
        """A ``cancel_orphan`` call (a run POST), made as the sync shell makes it, in a pooled worker:
        a caller who leaves while it is in flight (``cancel``, task cancellation) gets control back at
        once, and the job the reply names is cancelled there -- even when this loop is gone by then."""
        loop = asyncio.get_running_loop()
        done = loop.create_future()

        def wake() -> None:  # in the worker
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        shell = SyncTransport(self.endpoints)
        job, exchange = shell.start(call, deadline, notify=wake)
        try:
            await await_within(done, deadline, cancel)
        except DeadlineExceeded:
            exchange.abandon()
            raise
        except BaseException:
            exchange.abandon(kill=False)
            shell.left(call, job)
            raise
        if job.error is not None:
            raise job.error
        return job.result

    async def sleep(self, seconds: float, cancel: threading.Event | None) -> None:
        await asleep_until(seconds, cancel)

    async def open(self, call: Call, deadline: float | None, cancel: threading.Event | None) -> Opened:
        client = async_client(call.url)
        try:
            response = await await_within(self._send(client, call, deadline, True), deadline, cancel)
        except BaseException:
            await client.aclose()
            raise
        return Opened(response, _raw(response, b"", self.endpoints.api_key), call, client)

    async def _close(self, opened: Opened) -> None:
        await opened.response.aclose()
        await opened.client.aclose()

    async def read_rest(
        self, opened: Opened, deadline: float | None, cancel: threading.Event | None
    ) -> RawReply:
        try:
            return await await_within(self._read(opened.response, opened.call), deadline, cancel)
        finally:
            await self._close(opened)

    async def events(
        self, opened: Opened, deadline: float | None, cancel: threading.Event | None
    ) -> AsyncIterator[list[bytes]]:
        """Batches of SSE payloads of an opened stream; closing the iterator closes the stream."""
        reader = self.event_reader(opened.call)
        chunks = opened.response.aiter_raw()
        try:
            reader.start(opened.response, "the stream")
            while True:
                try:
                    raw = await await_within(chunks.__anext__(), deadline, cancel)
                except StopAsyncIteration:
                    break
                except (AixError, Cancelled, DeadlineExceeded):
                    raise
                except Exception as exc:
                    raise _failure(exc, opened.call) from None
                yield reader.feed(raw)  # an empty batch is skipped by the streamer
            yield reader.end()
        finally:
            await self._close(opened)
