"""The blocking I/O driver: each request runs in a pooled worker thread (``workers``) that the caller
waits for in slices, so it gets control back at the run's deadline, at once when a ``cancel`` event
is set from another thread, and at once on KeyboardInterrupt -- whatever the server does.

Cancel during a submit. When the caller cancels (or presses Ctrl-C) while a run POST is still in
flight, the request is let finish in its worker thread and, if the reply turns out to be a started
job, the job is DELETEd (``cancel_orphan``), so no job is left running unseen.
"""

from __future__ import annotations

import atexit
import contextlib
import queue
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aix_jupyter.core.flows import drive_sync
from aix_jupyter.core.protocol import RawReply
from aix_jupyter.core.transport import (
    ABANDON_MARGIN,
    CANCEL_TIMEOUT,
    LOOPBACK,
    Transport,
    _failure,
    _kill,
    _raw,
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
                if not _clients:
                    atexit.register(_close_clients)  # kept-alive sockets closed, not left to the GC
                _clients[local] = client
    return client


def _close_clients() -> None:
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
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
    is_async = False

    """Blocking I/O: each request runs in a pooled worker thread the caller waits for in slices."""

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
        except Cancelled:
            raise
        except Exception as exc:
            raise _failure(exc, call) from None
        finally:
            response.close()
        return reader.reply(response)

    def attempt(self, call: Call, deadline: float | None, cancel: threading.Event | None) -> RawReply:
        """One request and its whole reply; raise TransportFailure / Cancelled / DeadlineExceeded."""
        client = sync_client(call.url)
        request = self.request(client, call, deadline)
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

        job = run_in_worker(do)
        try:
            return _wait(job, exchange, deadline, cancel, keep=orphan is not None)
        except (Cancelled, KeyboardInterrupt):
            if orphan is not None and job.done.is_set() and job.error is None:
                orphan(job.result)  # it finished just as the caller left
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
