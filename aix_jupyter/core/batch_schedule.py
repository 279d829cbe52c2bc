"""A batch's back-pressure, sans I/O: the adaptive concurrency (``Limiter``, pure and clock-free) and
the guard of an item's run request (``guard_run_request``), which hands a refused request back to
the scheduler (``batch``) instead of sending it again.

An HTTP 429/503 answer to a run request means no job was started (the core's rule for retrying a
POST, ``retries.retry_delay``), so the item gives its slot back and is queued again after the
server's ``Retry-After``; no new item starts before then. Each push-back halves the effective
concurrency (at most once per round of requests: answers to requests sent before the last cut do
not cut again); each success raises it by 1/limit (about +1 per round), never above
``concurrency``. A connection that could not be opened is retried the same way, at most
``MAX_ATTEMPTS`` times (the transport's limit), without lowering the concurrency. Nothing that may
have started a job is ever sent twice.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any

from aix_jupyter.core.flows import Flow, Send
from aix_jupyter.core.retries import MAX_ATTEMPTS, retry_delay
from aix_jupyter.core.wire import TransportFailure

MAX_PUSHBACKS = 50  # 429/503 answers one item may get before its run fails with the server's message
MIN_PAUSE = 0.05  # seconds: the shortest wait after a push-back (Retry-After: 0 must not spin)


class Limiter:
    """Adaptive concurrency (AIMD) with a pause that honours ``Retry-After``; pure (times are given).

    ``limit`` starts at ``maximum``. ``pushed_back`` halves it (at most once per round: an answer to
    a request sent before the last cut does not cut again) and pauses new starts for the server's
    delay; ``succeeded`` adds ``1/limit``, never above ``maximum``. ``effective`` is the integer
    number of slots, at least 1.
    """

    __slots__ = ("_last_cut", "in_flight", "limit", "maximum", "paused_until")

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.limit = float(maximum)
        self.in_flight = 0
        self.paused_until = float("-inf")
        self._last_cut = float("-inf")

    @property
    def effective(self) -> int:
        return max(1, int(self.limit))

    def can_start(self, now: float) -> bool:
        return self.in_flight < self.effective and now >= self.paused_until

    def pushed_back(self, sent_at: float, now: float, delay: float) -> bool:
        """A request sent at ``sent_at`` was refused at ``now``; True when ``effective`` changed."""
        self.paused_until = max(self.paused_until, now + max(delay, MIN_PAUSE))
        if sent_at < self._last_cut:
            return False
        before = self.effective
        self.limit = max(1.0, self.limit / 2)
        self._last_cut = now
        return self.effective != before

    def succeeded(self) -> bool:
        """An item succeeded; True when ``effective`` changed."""
        if self.limit >= self.maximum:
            return False
        before = self.effective
        self.limit = min(float(self.maximum), self.limit + 1.0 / self.limit)
        return self.effective != before


class SharedLimit:
    """At most ``maximum`` jobs in flight across the batches that share it (``compare``'s
    ``concurrency``), for batches run on one event loop.

    Shared fairly: a free slot goes to the batch holding the fewest among those waiting for one (a
    batch that did not start yet waits), so M batches under a limit of N hold about N/M each, and a
    batch with nothing left to start leaves its share to the others. A batch refused a slot awaits
    ``changed()``, which resolves when a slot is taken or given back, or a batch stops waiting.
    """

    __slots__ = ("_waiters", "holding", "in_flight", "maximum", "waiting")

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.in_flight = 0
        self.holding: dict[int, int] = {}  # id() of a batch -> the slots it holds
        self.waiting: set[int] = set()  # id() of the batches refused a slot (or not started yet)
        self._waiters: list[asyncio.Future[None]] = []

    def join(self, batch: object) -> None:
        self.holding[id(batch)] = 0
        self.waiting.add(id(batch))

    def may_start(self, batch: object) -> bool:
        """May ``batch`` start one more job now? (When not, it counts as waiting for a slot.)"""
        key = id(batch)
        mine = self.holding.get(key, 0)
        if self.in_flight < self.maximum and not any(
            self.holding.get(other, 0) < mine for other in self.waiting if other != key
        ):
            return True
        self.waiting.add(key)
        return False

    def take(self, batch: object) -> None:
        self.in_flight += 1
        self.holding[id(batch)] = self.holding.get(id(batch), 0) + 1
        self.waiting.discard(id(batch))
        self._wake()

    def give(self, batch: object, count: int = 1) -> None:
        self.in_flight -= count
        self.holding[id(batch)] = self.holding.get(id(batch), 0) - count
        self._wake()

    def leave(self, batch: object) -> None:
        """``batch`` has no item left to start (or stopped)."""
        if id(batch) in self.waiting:
            self.waiting.discard(id(batch))
            self._wake()

    def changed(self) -> asyncio.Future[None]:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return waiter

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


@dataclass(frozen=True, slots=True)
class PushedBack:
    """What an item's guarded flow returns when its run request started no job and may be resent."""

    delay: float
    sent_at: float
    connect: bool  # the connection could not be opened (not the server pushing back)


def guard_run_request(flow: Flow, pushbacks: int, connects: int) -> Flow:
    """``flow`` with its run POST sent once per attempt, the outcome judged by the core's retry rule.

    The run POST goes out without the transport's own retries. When the core's rule
    (``transport.retry_delay``) allows resending it -- an HTTP 429/503 answer, or a connection
    that could not be opened, i.e. no job can have started -- the run flow is closed and a
    ``PushedBack`` is returned instead, so the scheduler frees the slot and requeues the item.
    Otherwise the answer goes to the run flow as usual. Every other step passes through untouched.
    """
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            op = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value
        value, error = None, None
        if not (isinstance(op, Send) and op.call.method == "POST" and op.call.what == "run"):
            try:
                value = yield op
            except BaseException as exc:  # handed on to the run flow, which decides
                error = exc
            continue
        call = op.call
        sent_at = time.monotonic()
        try:
            value = yield replace(op, retry=False)
        except TransportFailure as exc:
            delay = retry_delay(call, connects + 1, error=exc, max_attempts=MAX_ATTEMPTS)
            if delay is None:
                error = exc
                continue
            flow.close()
            return PushedBack(delay, sent_at, connect=True)
        except BaseException as exc:
            error = exc
            continue
        delay = retry_delay(call, pushbacks + 1, reply=value, max_attempts=MAX_PUSHBACKS)
        if delay is not None:
            flow.close()
            return PushedBack(delay, sent_at, connect=False)
