"""Run, stream, poll, cancel and metadata flows, written once for both the sync and the async API.

Each flow is a generator that *describes* the I/O it needs -- it yields operations (``Send``,
``Sleep``, ``Open``, ``ReadRest``) and receives their results -- and holds all the protocol
decisions: uploads, reply mapping, the poll schedule, events, cancellation (the retry policy of one
``Send`` is a flow too: ``retries.attempts``). Two small drivers execute the operations:
``drive_sync`` (``SyncTransport``: threads, ``time``) and ``drive_async`` (``AsyncTransport``:
asyncio); every operation calls the transport method of the same name, so the drivers differ only by
an ``await``. Nothing here imports a transport: the flows, their operations and the drivers are
sans I/O, and the transports are handed in (``plans`` makes the public methods of them).

Time. A flow reads the time only from its run's clock (``Emitter.clock``, ``PollSchedule.clock``;
``time.monotonic`` unless a test gives a fake one) and waits only by yielding ``Sleep``, so a
scripted transport with a fake clock drives a flow exactly and instantly (tests/core/scripted.py).

Errors reach a flow as exceptions thrown into it at its ``yield``: ``TransportFailure`` (after
retries), ``DeadlineExceeded``, ``Cancelled`` (the caller's cancel event) and ``Interrupted``
(KeyboardInterrupt or asyncio cancellation: the flow cancels the job on the server, then the
driver re-raises the original interrupt).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aix_jupyter.core.enums import ResponseStatus
from aix_jupyter.core.errors import RequestError
from aix_jupyter.core.events import EventHook, OutcomeKind, RunEvent, report_response
from aix_jupyter.core.polling import FINAL_GRACE, PollSchedule
from aix_jupyter.core.protocol import (
    NO_RESPONSE,
    RawReply,
    RunRequest,
    error_details,
    failed,
    http_error_message,
    http_failure,
    map_poll_reply,
    map_run_reply,
    poll_progress,
    retry_after_seconds,
)
from aix_jupyter.core.response import ModelResponse
from aix_jupyter.core.wire import Call, Cancelled, DeadlineExceeded, Opened, TransportFailure

if TYPE_CHECKING:
    from aix_jupyter.core.mediatypes import LocalMedia

CANCEL_BUDGET = 0.5  # seconds a cancel (DELETE) may take before control returns anyway
CANCELLED_MESSAGE = "Run cancelled."


class Interrupted(Exception):
    """Thrown into a flow when the caller was interrupted (KeyboardInterrupt, task cancellation).

    Raised inside a flow, too, when the interrupt came while an event hook ran (``original`` is it).
    """

    def __init__(self, original: BaseException | None = None) -> None:
        super().__init__()
        self.original = original


# ---------------------------------------------------------------------------------------------
# operations: what a flow asks of the transport (each calls the transport method of its name)


@dataclass
class Send:
    """One request and its whole reply, with the retry policy (``transport.send``; ``retry=False``:
    one attempt). The flow gets the reply, or ``TransportFailure`` once the retries are spent."""

    call: Call
    deadline: float | None = None
    cancellable: bool = True
    retry: bool = True

    def run(self, transport: Any, cancel: threading.Event | None) -> Any:
        return transport.send(
            self.call,
            deadline=self.deadline,
            cancel=cancel if self.cancellable else None,
            max_attempts=None if self.retry else 1,
        )


@dataclass
class Attempt:
    """One attempt of a ``Send`` (``transport.attempts`` makes them): one request, its whole reply."""

    call: Call
    deadline: float | None = None

    def run(self, transport: Any, cancel: threading.Event | None) -> Any:
        return transport.attempt(self.call, self.deadline, cancel)


@dataclass
class Sleep:
    seconds: float

    def run(self, transport: Any, cancel: threading.Event | None) -> Any:
        return transport.sleep(self.seconds, cancel)


@dataclass
class Open:
    """Send a request and stop when its reply's headers arrived (a stream, read on later)."""

    call: Call
    deadline: float | None = None

    def run(self, transport: Any, cancel: threading.Event | None) -> Any:
        return transport.open(self.call, self.deadline, cancel)


@dataclass
class ReadRest:
    """The rest of an opened reply, capped; the reply is closed after."""

    opened: Opened
    deadline: float | None = None

    def run(self, transport: Any, cancel: threading.Event | None) -> Any:
        return transport.read_rest(self.opened, self.deadline, cancel)


Op = Send | Attempt | Sleep | Open | ReadRest
Flow = Generator[Op, Any, Any]


class Emitter:
    """Builds RunEvents for one run and hands them to the hook (if any).

    ``session`` is what the run's end counts as for the session observers (``core.events``):
    ``"run"``, or None when something else reports it (a batch reports its items, a streamer its end).
    ``check`` (when given) makes the run's final response of the server's before anyone sees it
    (an LLM's structured output: an answer that does not match its schema is FAILED).
    """

    __slots__ = ("check", "clock", "hook", "model_id", "session", "start")

    def __init__(
        self,
        hook: EventHook | None,
        model_id: str,
        start: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        session: OutcomeKind | None = None,
        check: Callable[[ModelResponse], ModelResponse] | None = None,
    ) -> None:
        self.hook = hook
        self.check = check
        self.model_id = model_id
        self.session = session
        self.clock = clock  # the run's clock: event times, the deadline, the poll schedule
        self.start = clock() if start is None else start

    def __call__(self, kind: str, **kw: Any) -> None:
        if self.hook is not None:
            try:
                self.hook(RunEvent(kind, self.model_id, self.clock() - self.start, **kw))  # type: ignore[arg-type]
            except KeyboardInterrupt as exc:
                # Ctrl-C while a hook ran (drawing progress, a user's callback): the flow cancels its
                # job just as for an interrupt during I/O, then the driver re-raises this one.
                raise Interrupted(exc) from None

    def settle(self, response: ModelResponse, poll_url: str | None = None) -> ModelResponse:
        """Report the run's outcome to the session observers (the one place a run's end is counted)."""
        if self.session is not None:
            report_response(self.session, self.model_id, response, poll_url)
        return response

    def end(self, response: ModelResponse, poll_url: str | None = None, polls: int = 0) -> ModelResponse:
        if self.check is not None:
            response = self.check(response)
        self.settle(response, poll_url)
        if response.status is ResponseStatus.SUCCESS:
            self("finished", response=response, poll_url=poll_url, polls=polls)
        elif CANCELLED_MESSAGE in response.error_message:
            self(
                "cancelled", response=response, poll_url=poll_url, polls=polls, message=response.error_message
            )
        else:
            self("failed", response=response, poll_url=poll_url, polls=polls, message=response.error_message)
        return response


def timed_out(timeout: float, poll_url: str | None) -> ModelResponse:
    hint = "; the job may still be running: sync_poll(response.url) resumes" if poll_url else ""
    return failed(f"{NO_RESPONSE} (no result within {timeout:g} s{hint})", completed=False, url=poll_url)


def cancel_flow(
    poll_url: str, budget: float | None = CANCEL_BUDGET, clock: Callable[[], float] = time.monotonic
) -> Flow:
    """DELETE <poll url>; True when the server says it cancelled the job."""
    deadline = None if budget is None else clock() + budget
    try:
        reply = yield Send(
            Call("DELETE", poll_url, what="cancel"), deadline, cancellable=False, retry=budget is None
        )
    except (TransportFailure, DeadlineExceeded):
        return False
    if not 200 <= reply.status_code < 300:
        return False
    try:
        body = reply.json()
    except ValueError:
        return True
    if isinstance(body, dict) and "cancelled" in body:
        return bool(body["cancelled"])
    return True


def _cancelled(emit: Emitter, poll_url: str | None, polls: int) -> Flow:
    if poll_url:
        yield from cancel_flow(poll_url, clock=emit.clock)
    response = failed(CANCELLED_MESSAGE, completed=True, url=poll_url)
    return emit.end(response, poll_url, polls)


def poll_once_flow(poll_url: str, deadline: float | None = None) -> Flow:
    """One poll: the mapped reply (transport failures become FAILED, not completed)."""
    try:
        reply = yield Send(Call("GET", poll_url, what="poll"), deadline)
    except TransportFailure as exc:
        return failed(f"{NO_RESPONSE} {exc}", completed=False, url=poll_url)
    except DeadlineExceeded:
        return failed(NO_RESPONSE, completed=False, url=poll_url)
    return map_poll_reply(reply)


def poll_flow(poll_url: str, schedule: PollSchedule, emit: Emitter, timeout: float) -> Flow:
    """Poll until the job ends, the deadline passes, or the caller cancels."""
    try:
        while True:
            hold = schedule.hold()
            headers = {"Prefer": f"wait={hold}"} if hold else {}
            deadline = schedule.deadline + (FINAL_GRACE if schedule.final else 0.0)
            sent = schedule.clock()
            call = Call("GET", poll_url, headers=headers, what="poll")
            try:
                reply: RawReply = yield Send(call, deadline)
            except DeadlineExceeded:
                return emit.end(timed_out(timeout, poll_url), poll_url, schedule.polls)
            except TransportFailure as exc:
                return emit.end(
                    failed(f"{NO_RESPONSE} {exc}", completed=False, url=poll_url), poll_url, schedule.polls
                )
            response = map_poll_reply(reply)
            if response.status is not ResponseStatus.IN_PROGRESS:
                return emit.end(response, poll_url, schedule.polls + 1)
            progress, eta = poll_progress(response)
            schedule.observe(
                elapsed=schedule.clock() - sent,
                preference_applied=reply.header("preference-applied"),
                progress=progress is not None or eta is not None,
            )
            extra = {k: v for k, v in response.additional_fields.items() if k not in ("progress", "eta")}
            emit(
                "polled",
                poll_url=poll_url,
                polls=schedule.polls,
                progress=progress,
                eta=eta,
                extra=extra or None,
            )
            delay = schedule.next_delay(retry_after_seconds(reply.header("retry-after")))
            if delay is None:
                return emit.end(timed_out(timeout, poll_url), poll_url, schedule.polls)
            yield Sleep(delay)
    except Cancelled:
        return (yield from _cancelled(emit, poll_url, schedule.polls))
    except Interrupted:
        yield from cancel_flow(poll_url, clock=schedule.clock)
        emit("cancelled", poll_url=poll_url, polls=schedule.polls, message="interrupted")
        raise


def upload_flow(file: LocalMedia, backend_url: str, deadline: float | None) -> Flow:
    """Upload local media (temp-url, then PUT its bytes); return the link to send in its place."""
    name = file.name
    call = Call(
        "POST",
        f"{backend_url.rstrip('/')}/sdk/file/upload/temp-url",
        json_body={"contentType": file.content_type, "originalName": name},
        auth="backend",
        what="file upload",
    )
    reply = yield Send(call, deadline)
    if not 200 <= reply.status_code < 300:
        raise RequestError(
            f"file upload of {name!r} failed: " + http_error_message(reply.status_code, error_details(reply))
        )
    try:
        info = reply.json()
    except ValueError:
        info = None
    if not isinstance(info, dict) or not info.get("uploadUrl"):
        raise RequestError(f"file upload of {name!r}: the server gave no uploadUrl")
    put = Call(
        "PUT",
        str(info["uploadUrl"]),
        auth=None,
        headers={"Content-Type": file.content_type},
        content=file.content,
        what="file upload",
    )
    reply = yield Send(put, deadline)
    if not 200 <= reply.status_code < 300:
        raise RequestError(f"file upload of {name!r} failed: PUT answered HTTP {reply.status_code}")
    link = info.get("downloadUrl") or info.get("url") or info.get("key")
    if not link:
        raise RequestError(f"file upload of {name!r}: the server gave no downloadUrl or key")
    return str(link)


def body_flow(request: RunRequest, backend_url: str, deadline: float | None) -> Flow:
    """The request body, once the local media it holds are uploaded (their links replace them)."""
    links = {}
    for file in request.files:
        links[file.ref] = yield from upload_flow(file, backend_url, deadline)
    return request.body_with(links)


def run_flow(
    url: str,
    request: RunRequest,
    backend_url: str,
    *,
    timeout: float,
    wait_time: float,
    max_wait: float,
    emit: Emitter,
    poll: bool = True,
) -> Flow:
    """POST a run (v2: wait; v1: ``poll=False``) and, when the job goes on, poll it to the end."""
    start = emit.start
    deadline = start + timeout if poll else None
    try:
        body = yield from body_flow(request, backend_url, deadline)
        try:
            call = Call("POST", url, json_body=body, what="run", cancel_orphan=True)
            reply = yield Send(call, deadline)
        except DeadlineExceeded:
            return emit.end(timed_out(timeout, None))
        except TransportFailure as exc:
            return emit.end(failed(f"Model Run: {exc}"))
        response = map_run_reply(reply)
    except Cancelled:
        return (yield from _cancelled(emit, None, 0))
    except Interrupted:
        emit("cancelled", message="interrupted")
        raise
    if response.status is ResponseStatus.IN_PROGRESS:
        try:
            emit("submitted", poll_url=response.url)
        except Interrupted:  # Ctrl-C in the hook: the job exists, so it is cancelled
            yield from cancel_flow(response.url, clock=emit.clock)  # type: ignore[arg-type]
            emit("cancelled", poll_url=response.url, message="interrupted")
            raise
        if not poll:
            return emit.settle(response, response.url)  # a job that goes on: counted when submitted
        schedule = PollSchedule(wait_time, timeout, max_wait, start=start, clock=emit.clock)
        return (yield from poll_flow(response.url, schedule, emit, timeout))  # type: ignore[arg-type]
    emit("submitted")
    if not poll and response.status is ResponseStatus.SUCCESS:
        return emit.settle(response)
    return emit.end(response)


def stream_flow(
    url: str, request: RunRequest, backend_url: str, *, timeout: float, max_wait: float, emit: Emitter
) -> Flow:
    """POST a streamed run: the ``Opened`` event stream, or the final response when there is none.

    A reply that is not an event stream is read whole (capped) and mapped like a run's reply; a
    job it starts is polled to its end. The final response carries no event: the streamer made
    of it emits the run's last event, as it does for a stream.
    """
    deadline = emit.start + timeout
    try:
        body = yield from body_flow(request, backend_url, deadline)
        call = Call("POST", url, json_body=body, what="stream")
        try:
            opened: Opened = yield Open(call, deadline)
            emit("submitted")
            head = opened.head
            if 200 <= head.status_code < 300 and "text/event-stream" in (head.header("content-type") or ""):
                return opened
            reply = yield ReadRest(opened, deadline)
        except DeadlineExceeded:
            return timed_out(timeout, None)
        except TransportFailure as exc:
            return failed(f"Model Run: {exc}")
        if not 200 <= reply.status_code < 300:
            return http_failure(reply)
        result = map_run_reply(reply)
        if result.status is ResponseStatus.IN_PROGRESS and result.url:
            schedule = PollSchedule(0.5, timeout, max_wait, start=emit.start, clock=emit.clock)
            quiet = Emitter(None, emit.model_id, emit.start, emit.clock)
            return (yield from poll_flow(result.url, schedule, quiet, timeout))
        return result
    except Cancelled:
        return failed(CANCELLED_MESSAGE)
    except Interrupted:
        emit("cancelled", message="interrupted")
        raise


def json_flow(call: Call, what: str, deadline: float | None = None) -> Flow:
    """Send a metadata request; return the decoded JSON of a 2xx reply or raise RequestError."""
    reply = yield Send(call, deadline)
    if not 200 <= reply.status_code < 300:
        raise RequestError(f"{what}: " + http_error_message(reply.status_code, error_details(reply)))
    try:
        return reply.json()
    except ValueError:
        raise RequestError(
            f"{what}: the server answered HTTP {reply.status_code} with a body that is not JSON"
        ) from None


def value_flow(value: Any) -> Flow:
    """A flow that asks for no I/O and returns ``value``."""
    return value
    yield  # a generator: this line is never reached


def status_flow(call: Call) -> Flow:
    """Send a request; return the RawReply whatever its status."""
    reply = yield Send(call)
    return reply


# ---------------------------------------------------------------------------------------------
# drivers: the only place where the two APIs differ

IO_OUTCOMES = (TransportFailure, DeadlineExceeded, Cancelled)


class Driving:
    """One flow being driven: feeds it the outcome of each operation, until it returns.

    ``op`` is the operation to perform next (None once the flow ended, its result in ``result``).
    An interruption (KeyboardInterrupt, asyncio cancellation) is thrown into the flow once as
    ``Interrupted`` so that it can cancel its job; the flow then re-raises the original one.
    """

    __slots__ = ("flow", "interrupt", "op", "result")

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.interrupt: BaseException | None = None
        self.result: Any = None
        self.op: Op | None = None
        self.advance(None, None)

    def advance(self, value: Any, error: BaseException | None) -> None:
        if error is not None and not isinstance(error, IO_OUTCOMES):
            if not isinstance(error, KeyboardInterrupt | _async_cancelled()) or self.interrupt is not None:
                raise error
            self.interrupt, error = error, Interrupted()
        try:
            self.op = self.flow.send(value) if error is None else self.flow.throw(error)
        except StopIteration as stop:
            self.op, self.result = None, stop.value
        except Interrupted as exc:
            original = self.interrupt or exc.original
            assert original is not None
            raise original from None


def _async_cancelled() -> type[BaseException]:
    import asyncio

    return asyncio.CancelledError


Outcome = tuple[Any, BaseException | None]  # what an operation returned, or what it raised


def _perform(op: Op, transport: Any, cancel: threading.Event | None) -> Outcome:
    try:
        return op.run(transport, cancel), None
    except BaseException as exc:
        return None, exc


async def _aperform(op: Op, transport: Any, cancel: threading.Event | None) -> Outcome:
    try:
        return await op.run(transport, cancel), None
    except BaseException as exc:
        return None, exc


def drive_sync(flow: Flow, transport: Any, cancel: threading.Event | None = None) -> Any:
    """Run ``flow`` with blocking I/O (``SyncTransport``)."""
    driving = Driving(flow)
    while driving.op is not None:
        driving.advance(*_perform(driving.op, transport, cancel))
    return driving.result


async def drive_async(flow: Flow, transport: Any, cancel: threading.Event | None = None) -> Any:
    """Run ``flow`` with asyncio I/O (``AsyncTransport``)."""
    driving = Driving(flow)
    while driving.op is not None:
        driving.advance(*await _aperform(driving.op, transport, cancel))
    return driving.result
