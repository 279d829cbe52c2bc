"""HTTP for the client core: httpx underneath, deadlines, retries, and where the key may go.

Two thin I/O shells (``SyncTransport``, ``AsyncTransport``) around one pure retry policy
(``retry_delay``). Both return ``RawReply`` objects that the pure mapping functions in
``protocol`` turn into responses.

Deadlines. Every request has connect and read timeouts. On top of that, a request made on
behalf of a run carries the run's deadline: the sync transport performs the request in a
short-lived daemon worker thread and waits for it in the caller's thread in slices, so the
caller gets control back at the deadline, at once when a ``cancel`` event is set from another
thread, and at once on KeyboardInterrupt -- whatever the server does (never answers, trickles
bytes, holds a poll). The async transport gets the same from ``asyncio.wait``. An abandoned
worker ends on its own (its httpx timeouts are bounded by the deadline plus a margin).

Retries (``retry_delay``). GET and DELETE (polls, metadata, cancel) are retried with jittered
exponential backoff on connection errors, timeouts and HTTP 429/502/503/504. A POST is retried
only where the server cannot have started a job: a connection that could not be opened, or an
HTTP 429/503 answer. ``Retry-After`` is honoured; a retry that would end after the deadline is
not made.

Cancel during a submit. When the caller cancels (or presses Ctrl-C) while a run POST is still in
flight, the sync transport lets the request finish in its worker thread and, if the reply turns
out to be a started job, DELETEs it (``cancel_orphan``), so no job is left running unseen.

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
import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aix_jupyter.core.config import Endpoints, origin
from aix_jupyter.core.errors import RequestError, UnsafePollURLError
from aix_jupyter.core.protocol import RawReply, retry_after_seconds

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("aix_jupyter.core")

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
CANCEL_TIMEOUT = 2.0
STREAM_READ_TIMEOUT = 300.0  # longest silence between two streamed chunks
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

    ``kind`` is "connect" (nothing was sent), "timeout" or "network".
    """

    def __init__(self, message: str, *, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


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
    cancel_orphan: bool = False  # a job this call starts after its caller cancelled is cancelled (sync)

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
        if not call.idempotent and error.kind != "connect":
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


def _failure(exc: Exception, call: Call) -> TransportFailure:
    import httpx

    where = _short_origin(call.url)
    if isinstance(exc, httpx.ConnectTimeout):
        return TransportFailure(f"{call.what}: could not connect to {where} (timed out)", kind="connect")
    if isinstance(exc, httpx.ConnectError):
        return TransportFailure(f"{call.what}: could not connect to {where} ({_reason(exc)})", kind="connect")
    if isinstance(exc, httpx.TimeoutException):
        return TransportFailure(f"{call.what}: {where} did not answer in time", kind="timeout")
    if isinstance(exc, httpx.HTTPError | OSError):
        return TransportFailure(f"{call.what}: connection to {where} failed ({_reason(exc)})", kind="network")
    raise exc


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


class Transport:
    """What both I/O shells share: the endpoints, header building and the key's boundary."""

    def __init__(self, endpoints: Endpoints, *, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.endpoints = endpoints
        self.max_attempts = max_attempts
        self.rng: random.Random | None = None  # None: the module's generator (tests may set their own)

    def retries(self, call: Call, deadline: float | None, max_attempts: int | None) -> Retries:
        attempts = self.max_attempts if max_attempts is None else max_attempts
        return Retries(call, deadline, self.rng, attempts)

    def check_url(self, url: str, *, what: str = "poll URL") -> None:
        """Raise UnsafePollURLError when the key would go to a host it is not configured for."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RequestError(f"{what} is not an http(s) URL: {url[:80]!r}")
        if self.endpoints.api_key and not self.endpoints.may_receive_key(url):
            raise UnsafePollURLError(
                f"refusing to send the API key to {_short_origin(url)}: the {what} is on neither the run "
                f"host ({_short_origin(self.endpoints.run_url)}) nor the backend host "
                f"({_short_origin(self.endpoints.backend_url)}); add it to AIX_TRUSTED_HOSTS to trust it"
            )

    def headers(self, call: Call) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **call.headers}
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


def _timeout(deadline: float | None, hold: float = 0.0) -> httpx.Timeout:
    import httpx

    if deadline is None:
        return httpx.Timeout(READ_TIMEOUT + hold, connect=CONNECT_TIMEOUT)
    remaining = max(0.05, deadline - time.monotonic())
    # the caller stops waiting at the deadline; the worker's own timeouts only bound its life
    return httpx.Timeout(remaining + 1.0, connect=min(CONNECT_TIMEOUT, remaining + 0.5))


def _raw(response: httpx.Response, content: bytes, secret: str | None) -> RawReply:
    headers = {k.lower(): v for k, v in response.headers.items()}
    return RawReply(response.status_code, headers, content, secret=secret)


# ---------------------------------------------------------------------------------------------
# sync


_clients: dict[bool, httpx.Client] = {}
_clients_lock = threading.Lock()


def sync_client(url: str) -> httpx.Client:
    """A shared httpx.Client (pooled); loopback URLs bypass any proxy from the environment."""
    local = (urlsplit(url).hostname or "").lower() in LOOPBACK
    client = _clients.get(local)
    if client is None:
        with _clients_lock:
            client = _clients.get(local)
            if client is None:
                import httpx

                client = httpx.Client(follow_redirects=False, trust_env=not local)
                _clients[local] = client
    return client


class _Job:
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


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
        del fn, job
        with _pool_lock:
            _idle_workers += 1


def run_in_worker(fn: Callable[[], Any], name: str = "aix-http") -> _Job:
    """Run ``fn`` in a pooled daemon worker thread; the returned job says when it is done."""
    global _idle_workers
    job = _Job()
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
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        step = step_max
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if job.done.is_set():
                    break
                raise DeadlineExceeded()
            step = min(step, remaining)
        if job.done.wait(step):
            break
    if job.error is not None:
        raise job.error
    return job.result


def sleep_until(seconds: float, cancel: threading.Event | None) -> None:
    """Sleep in slices, returning early with Cancelled when ``cancel`` is set."""
    end = time.monotonic() + max(0.0, seconds)
    while True:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        remaining = end - time.monotonic()
        if remaining <= 0:
            return
        if cancel is None:
            time.sleep(min(remaining, SIGNAL_SLICE))
        elif cancel.wait(min(remaining, SIGNAL_SLICE)):
            raise Cancelled()


class SyncTransport(Transport):
    def _once(
        self, call: Call, deadline: float | None, cancel: threading.Event | None, hold: float
    ) -> RawReply:
        client = sync_client(call.url)
        headers = self.headers(call)
        body = self.body(call)
        timeout = _timeout(deadline, hold)

        abandoned = threading.Event()
        on_orphan = self.cancel_orphan if call.cancel_orphan else None

        def do() -> RawReply:
            try:
                response = client.request(
                    call.method, call.url, headers=headers, content=body, timeout=timeout
                )
            except Exception as exc:
                raise _failure(exc, call) from None
            reply = _raw(response, response.content, self.endpoints.api_key)
            if abandoned.is_set() and on_orphan is not None:
                on_orphan(reply)  # the caller left (cancel, Ctrl-C): clean up what it started
            return reply

        job = run_in_worker(do)
        try:
            return wait_job(job, deadline, cancel)
        except (Cancelled, KeyboardInterrupt):
            abandoned.set()
            if job.done.is_set() and job.error is None and on_orphan is not None:
                on_orphan(job.result)  # it finished just as the caller left
            raise

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

    def send(
        self,
        call: Call,
        *,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
        hold: float = 0.0,
        max_attempts: int | None = None,
    ) -> RawReply:
        """Send with retries; raise TransportFailure / Cancelled / DeadlineExceeded."""
        retries = self.retries(call, deadline, max_attempts)
        while True:
            retries.start()
            try:
                reply = self._once(call, deadline, cancel, hold)
            except TransportFailure as exc:
                delay = retries.after_failure(exc)
                if delay is None:
                    raise
            else:
                delay = retries.after_reply(reply)
                if delay is None:
                    return reply
            sleep_until(delay, cancel)

    def open_stream(
        self, call: Call, cancel: threading.Event | None = None
    ) -> tuple[httpx.Response, RawReply]:
        """Send ``call`` and return the open streaming response once its headers arrived.

        Waits in slices so that ``cancel`` ends the wait at once (raising Cancelled); a response
        that arrives after that is closed by the worker.
        """
        import httpx

        client = sync_client(call.url)
        request = client.build_request(
            call.method,
            call.url,
            headers=self.headers(call),
            content=self.body(call),
            timeout=httpx.Timeout(STREAM_READ_TIMEOUT, connect=CONNECT_TIMEOUT),
        )
        abandoned = threading.Event()

        def do() -> httpx.Response:
            try:
                response = client.send(request, stream=True)
            except Exception as exc:
                raise _failure(exc, call) from None
            if abandoned.is_set():
                response.close()
            return response

        try:
            response = do() if cancel is None else wait_job(run_in_worker(do), None, cancel)
        except Cancelled:
            abandoned.set()
            raise
        return response, _raw(response, b"", self.endpoints.api_key)

    def read_rest(self, response: httpx.Response) -> bytes:
        try:
            return response.read()
        except Exception as exc:
            raise _failure(exc, Call("GET", str(response.request.url), what="stream")) from None

    def iter_payloads(self, response: httpx.Response) -> Iterator[list[bytes]]:
        """Batches of SSE event payloads read from ``response``."""
        from aix_jupyter.core.streaming import SSEDecoder

        decoder = SSEDecoder(self.endpoints.api_key)
        feed = decoder.feed
        try:
            for raw in response.iter_bytes():
                out = feed(raw)
                if out:
                    yield out
        except Exception as exc:
            if response.is_closed:
                return
            raise _failure(exc, Call("POST", str(response.request.url), what="stream")) from None
        rest = decoder.flush()
        if rest:
            yield rest


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
    end = time.monotonic() + max(0.0, seconds)
    while True:
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        remaining = end - time.monotonic()
        if remaining <= 0:
            return
        await asyncio.sleep(min(remaining, WAIT_SLICE) if cancel is not None else remaining)


class AsyncTransport(Transport):
    def __init__(self, endpoints: Endpoints, client: httpx.AsyncClient | None = None, **kw: Any) -> None:
        super().__init__(endpoints, **kw)
        self._client = client

    async def _once(
        self,
        client: httpx.AsyncClient,
        call: Call,
        deadline: float | None,
        cancel: threading.Event | None,
        hold: float,
    ) -> RawReply:
        headers = self.headers(call)

        async def do() -> RawReply:
            try:
                response = await client.request(
                    call.method,
                    call.url,
                    headers=headers,
                    content=self.body(call),
                    timeout=_timeout(deadline, hold),
                )
            except Exception as exc:
                raise _failure(exc, call) from None
            return _raw(response, response.content, self.endpoints.api_key)

        return await await_within(do(), deadline, cancel)

    async def send(
        self,
        call: Call,
        *,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
        hold: float = 0.0,
        max_attempts: int | None = None,
    ) -> RawReply:
        retries = self.retries(call, deadline, max_attempts)
        own = self._client is None
        client = self._client or async_client(call.url)
        try:
            while True:
                retries.start()
                try:
                    reply = await self._once(client, call, deadline, cancel, hold)
                except TransportFailure as exc:
                    delay = retries.after_failure(exc)
                    if delay is None:
                        raise
                else:
                    delay = retries.after_reply(reply)
                    if delay is None:
                        return reply
                await asleep_until(delay, cancel)
        finally:
            if own:
                await client.aclose()

    async def open_stream(self, call: Call, cancel: threading.Event | None = None) -> Any:
        import httpx

        client = self._client or async_client(call.url)
        request = client.build_request(
            call.method,
            call.url,
            headers=self.headers(call),
            content=self.body(call),
            timeout=httpx.Timeout(STREAM_READ_TIMEOUT, connect=CONNECT_TIMEOUT),
        )

        async def do() -> httpx.Response:
            try:
                return await client.send(request, stream=True)
            except Exception as exc:
                raise _failure(exc, call) from None

        response = await await_within(do(), None, cancel)
        return response, _raw(response, b"", self.endpoints.api_key)

    async def aiter_payloads(self, response: httpx.Response) -> AsyncIterator[list[bytes]]:
        from aix_jupyter.core.streaming import SSEDecoder

        decoder = SSEDecoder(self.endpoints.api_key)
        feed = decoder.feed
        try:
            async for raw in response.aiter_bytes():
                out = feed(raw)
                if out:
                    yield out
        except Exception as exc:
            if response.is_closed:
                return
            raise _failure(exc, Call("POST", str(response.request.url), what="stream")) from None
        rest = decoder.flush()
        if rest:
            yield rest


def redact(text: str, secrets: Mapping[str, str | None] | None = None) -> str:
    """``text`` with every given secret replaced by ``***`` (defence in depth for messages)."""
    for value in (secrets or {}).values():
        if value:
            text = text.replace(value, "***")
    return text
