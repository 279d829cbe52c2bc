"""The asyncio I/O driver: the operations of ``sync_transport``'s, as coroutines; deadlines and
the cancel event from ``asyncio.wait`` (``await_within``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aix_jupyter.core.config import Endpoints
from aix_jupyter.core.errors import AixError
from aix_jupyter.core.flows import drive_async
from aix_jupyter.core.protocol import RawReply
from aix_jupyter.core.sync_transport import SyncTransport
from aix_jupyter.core.transport import LOOPBACK, Transport, _failure, _raw
from aix_jupyter.core.wire import Call, Cancelled, DeadlineExceeded, Opened
from aix_jupyter.core.workers import WAIT_SLICE, _next_slice

if TYPE_CHECKING:
    import httpx

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

        def settle() -> None:
            if not done.done():
                done.set_result(None)

        def wake() -> None:  # in the worker
            loop.call_soon_threadsafe(settle)

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
