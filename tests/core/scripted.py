"""A scripted transport on a fake clock: drives the core's flows exactly and instantly.

The flows (``aix_jupyter.core.flows``) do no I/O of their own: they yield ``Send`` and ``Sleep``
operations, which ``drive_sync`` / ``drive_async`` hand to a transport's ``send`` and ``sleep``.
``Scripted`` is such a transport: every request takes the scripted number of seconds of *fake*
time and gets the scripted answer, and it keeps the real transports' contract --

* a request whose answer would come after its ``deadline`` raises ``DeadlineExceeded`` at the
  deadline (or at once when the deadline has passed);
* a cancel event set while a cancellable request or a sleep is under way raises ``Cancelled`` at
  that moment (``cancel_at``); a request sent without the event is not interrupted;
* an interrupt (``interrupt_at``) raises ``KeyboardInterrupt`` (sync) or ``asyncio.CancelledError``
  (async) at that moment, whatever is under way;
* ``TransportFailure`` stands for a request that failed after the transport's own retries.

Every request is recorded (``sent``) with its fake send time, deadline, whether it could be
cancelled and how many attempts it was allowed, and every sleep (``slept``), so a test asserts
the exact schedule.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aix_jupyter.core.config import Endpoints
from aix_jupyter.core.flows import drive_async, drive_sync
from aix_jupyter.core.protocol import RawReply
from aix_jupyter.core.transport import Call, Cancelled, DeadlineExceeded, TransportFailure

BASE = "http://127.0.0.1:9"
RUN_URL = f"{BASE}/api/v2/execute/m"
POLL_URL = f"{BASE}/api/v1/data/job1"
RUNNING = {"completed": False, "status": "IN_PROGRESS"}
DONE = {"completed": True, "status": "SUCCESS", "data": "done"}
STARTED = {"status": "IN_PROGRESS", "data": POLL_URL}


class FakeClock:
    """Monotonic seconds that move only when the transport says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Answer:
    """What one request does: take ``takes`` fake seconds, then answer (or fail, or never answer)."""

    json: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    takes: float = 0.01
    fail: str | None = None  # a TransportFailure of this kind ("connect", "timeout", "network")
    hang: bool = False  # never answers

    def reply(self) -> RawReply:
        body = b"" if self.json is None else json.dumps(self.json).encode()
        return RawReply(self.status, {k.lower(): v for k, v in self.headers.items()}, body)


@dataclass
class Sent:
    at: float
    call: Call
    deadline: float | None
    cancellable: bool
    max_attempts: int | None

    @property
    def method(self) -> str:
        return self.call.method


def job_ending_at(end: float, takes: float = 0.01) -> Callable[[float], Answer]:
    """Poll answers of a job that ends at fake time ``end``: running before, done from then on."""
    return lambda now: Answer(DONE if now >= end else RUNNING, takes=takes)


class Scripted:
    """The I/O half of a flow's run, scripted: answers per HTTP method, in order, on a fake clock.

    ``on("GET", a, b)`` answers the first GET with ``a`` and every later one with ``b`` (the last
    answer of a method repeats). An answer may also be a function of the fake time at which the
    request reaches the server (``job_ending_at``).
    """

    def __init__(self, clock: FakeClock | None = None, api_key: str | None = "sk-scripted-KEY") -> None:
        self.clock = clock or FakeClock()
        self.endpoints = Endpoints(f"{BASE}/api/v1/execute", BASE, api_key)
        self.answers: dict[str, list[Answer | Callable[[float], Answer]]] = {}
        self.sent: list[Sent] = []
        self.slept: list[tuple[float, float]] = []  # (fake time, seconds asked)
        self.cancel_event: threading.Event | None = None  # the caller's, bound by ``drive``
        self._due: list[tuple[float, str]] = []  # (fake time, "cancel" | "interrupt")
        self.interrupt: Callable[[], BaseException] = KeyboardInterrupt

    # -- the script -------------------------------------------------------------------------------
    def on(self, method: str, *answers: Answer | Callable[[float], Answer]) -> Scripted:
        self.answers[method] = list(answers)
        return self

    def cancel_at(self, t: float) -> None:
        """Set the caller's cancel event ``t`` fake seconds from now (as another thread would)."""
        self._due.append((self.clock.now + t, "cancel"))

    def interrupt_at(self, t: float) -> None:
        """Interrupt the caller (Ctrl-C / task cancellation) ``t`` fake seconds from now."""
        self._due.append((self.clock.now + t, "interrupt"))

    def gets(self) -> list[Sent]:
        return [s for s in self.sent if s.method == "GET"]

    def methods(self) -> list[str]:
        return [s.method for s in self.sent]

    # -- the transport's contract -----------------------------------------------------------------
    def _next(self, method: str) -> Answer:
        queue = self.answers.get(method)
        if not queue:
            raise AssertionError(f"the script has no answer for {method}")
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer if isinstance(answer, Answer) else answer(self.clock.now)

    def _advance(self, until: float, watching: bool) -> None:
        """Move the clock to ``until``; a cancel or an interrupt due before then happens first.

        A cancel sets the caller's event and raises Cancelled when the operation under way
        watches the event (``watching``); an interrupt always raises.
        """
        while True:
            due = [item for item in self._due if item[0] <= until]
            if not due:
                self.clock.now = max(self.clock.now, until)
                return
            item = min(due)
            self._due.remove(item)
            self.clock.now = max(self.clock.now, item[0])
            if item[1] == "interrupt":
                raise self.interrupt()
            assert self.cancel_event is not None, "cancel_at needs a cancel event: drive(..., cancel=...)"
            self.cancel_event.set()
            if watching:
                raise Cancelled()

    def _send(
        self,
        call: Call,
        *,
        deadline: float | None = None,
        cancel: threading.Event | None = None,
        max_attempts: int | None = None,
    ) -> RawReply:
        self.sent.append(Sent(self.clock.now, call, deadline, cancel is not None, max_attempts))
        watching = cancel is not None
        if watching and cancel.is_set():
            raise Cancelled()
        answer = self._next(call.method)
        end = math.inf if answer.hang else self.clock.now + answer.takes
        if deadline is not None and end > deadline:
            self._advance(deadline, watching)
            raise DeadlineExceeded()
        if end == math.inf:
            raise AssertionError(f"{call.method} {call.url} hangs without a deadline: the flow never ends")
        self._advance(end, watching)
        if answer.fail:
            raise TransportFailure(f"{call.what}: scripted {answer.fail} failure", kind=answer.fail)
        reply = answer.reply()  # received as the real transports receive: the key scrubbed out
        return RawReply(reply.status_code, reply.headers, reply.content, secret=self.endpoints.api_key)

    def _sleep(self, seconds: float, cancel: threading.Event | None = None) -> None:
        self.slept.append((self.clock.now, seconds))
        if cancel is not None and cancel.is_set():
            raise Cancelled()
        self._advance(self.clock.now + max(0.0, seconds), cancel is not None)


class SyncScripted(Scripted):
    def send(self, call: Call, **kw: Any) -> RawReply:
        return self._send(call, **kw)

    def sleep(self, seconds: float, cancel: threading.Event | None = None) -> None:
        self._sleep(seconds, cancel)


class AsyncScripted(Scripted):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.interrupt = asyncio.CancelledError

    async def send(self, call: Call, **kw: Any) -> RawReply:
        return self._send(call, **kw)

    async def sleep(self, seconds: float, cancel: threading.Event | None = None) -> None:
        self._sleep(seconds, cancel)


def scripted(mode: str, clock: FakeClock | None = None, api_key: str | None = "sk-scripted-KEY") -> Scripted:
    return (SyncScripted if mode == "sync" else AsyncScripted)(clock, api_key)


def drive(mode: str, flow: Any, transport: Scripted, cancel: threading.Event | None = None) -> Any:
    """Run ``flow`` to its end with the real sync or async driver over ``transport``."""
    transport.cancel_event = cancel
    if mode == "sync":
        return drive_sync(flow, transport, cancel)
    return asyncio.run(drive_async(flow, transport, cancel))
