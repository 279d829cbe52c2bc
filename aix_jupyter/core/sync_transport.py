"""The blocking I/O driver: the caller gets control back at the run's deadline, at once when a
``cancel`` event is set from another thread, and at once on KeyboardInterrupt -- whatever the
server does.

Without a ``cancel`` event (and with a small body), the request is made in the caller's thread
(``_inline``): the sockets of the shared clients wait for data in slices of at most
``SIGNAL_SLICE`` (``_SlicedStream``), each bounded by the deadline, so a pending KeyboardInterrupt
is raised within a slice and the deadline ends a read as it passes. With a ``cancel`` event, the
request runs in a pooled daemon worker thread and the caller waits for it in slices.

Cancel during a submit. When the caller cancels (or presses Ctrl-C, or cancels the task) while a
run POST is still in flight, the request is left to finish in a worker thread and, if the reply
turns out to be a started job, DELETEs it (``cancel_orphan``), so no job is left running unseen.
The async transport makes such calls in the same pooled workers (awaited on its loop), so the same
holds for ``arun``, ``amap`` and a batch's private loop, even when the loop has ended by then. A
sync POST made in the caller's thread that Ctrl-C interrupts while it waits for its reply hands its
connection over to a worker, which reads the reply there (``_finish_orphan``).
"""

from __future__ import annotations

import atexit
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aix_jupyter.core.errors import AixError
from aix_jupyter.core.flows import drive_sync
from aix_jupyter.core.protocol import RawReply
from aix_jupyter.core.transport import (
    _UNSET,
    ABANDON_MARGIN,
    CANCEL_TIMEOUT,
    LOOPBACK,
    READ_TIMEOUT,
    Transport,
    _failure,
    _header_dict,
    _kill,
    _raw,
    _timeouts,
    _url,
    log,
)
from aix_jupyter.core.wire import Call, Cancelled, DeadlineExceeded, Opened
from aix_jupyter.core.workers import (
    SIGNAL_SLICE,
    WAIT_SLICE,
    _Job,
    _next_slice,
    run_in_worker,
    sleep_until,
    wait_job,
)

if TYPE_CHECKING:
    import httpx

STREAM_QUEUE = 16  # batches read ahead of a sync stream's consumer


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
    pools: list[Any] = [getattr(t, "_pool", None) for t in transports if t is not None]
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
        _sliced.clear()  # keyed by id(): a later client may get a closed one's id
        _direct.clear()
    for client in clients:
        client.close()


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
