"""HTTP for the client core: what both I/O drivers share -- httpx requests, deadlines as timeouts,
reply size caps, and where the key may go.

The I/O drivers (``sync_transport.SyncTransport``, ``async_transport.AsyncTransport``) have the
same operations (``attempt``: one request and its whole reply; ``open`` / ``read_rest`` /
``events``: a streamed reply; ``sleep``) and subclass ``Transport`` here; they are driven by the
flows, which hold the retry policy (``retries``). Both return ``RawReply`` objects that the pure
mapping functions in ``protocol`` turn into responses; the request and its failures are the
sans-I/O types of ``wire``.

Limits. A reply body is read up to ``AIX_MAX_REPLY_BYTES`` (default 32 MiB; a larger one, or a
``Content-Length`` announcing one, is a ``ReplyTooLarge`` failure, which the flows turn into a
FAILED response that says so); a stream counts all its bytes against the same cap, and one event
may not exceed ``AIX_MAX_EVENT_BYTES`` (default 1 MiB). When a call returns, its I/O is over: a
request abandoned at its deadline or on cancel has its socket shut down at once (and its worker
ends with it), so a server that keeps sending cannot make the client read on in the background.

Deadlines. Every request (streams included) has connect and read timeouts. On top of that, a request made on
behalf of a run carries the run's deadline, and the caller gets control back at the deadline, at
once when a ``cancel`` event is set from another thread, and at once on KeyboardInterrupt --
whatever the server does (never answers, trickles bytes, holds a poll): the sync transport by
sliced reads in the caller's thread or a worker it waits for in slices (``sync_transport``), the
async one from ``asyncio.wait``. An abandoned worker ends on its own (its httpx timeouts are bounded
by the deadline plus a margin, ``_timeout`` here).

The API key. ``Transport`` attaches the key only to URLs on the origin (scheme, host, port) of
the configured run or backend URL (``Endpoints.may_receive_key``). A poll URL on any other
host is refused with ``UnsafePollURLError`` before anything is sent (we chose refusing over
polling without the key: a foreign poll URL is a sign of a misconfigured or hostile server, and
silently dropping the key would only turn it into a confusing 401). ``AIX_TRUSTED_HOSTS`` adds
hosts. Without any key nothing can leak, so such a poll URL is polled. Redirects are never
followed. Nothing here logs headers or the key.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import socket
import time
import zlib
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

# (``X as X``: re-exported from here, where they were defined before the wire types, the retry policy
# and the worker pool had modules of their own)
from aix_jupyter.core.config import Endpoints, origin
from aix_jupyter.core.errors import AixError, ConfigurationError, RequestError, UnsafePollURLError
from aix_jupyter.core.protocol import RawReply
from aix_jupyter.core.retries import MAX_ATTEMPTS, attempts
from aix_jupyter.core.retries import retry_delay as retry_delay
from aix_jupyter.core.streaming import SSEDecoder
from aix_jupyter.core.wire import Call, ReplyTooLarge, TransportFailure
from aix_jupyter.core.wire import Cancelled as Cancelled
from aix_jupyter.core.wire import DeadlineExceeded as DeadlineExceeded
from aix_jupyter.core.workers import run_in_worker as run_in_worker
from aix_jupyter.core.workers import wait_job as wait_job

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

        super().__init__(call, secret)
        self._decoder = SSEDecoder(secret, max_event=event_limit())

    def feed(self, raw: bytes) -> list[bytes]:
        return self._decoder.feed(self.inflate(raw, "the stream"))

    def end(self) -> list[bytes]:
        return self._decoder.flush()


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
