"""Run, poll, cancel and metadata flows, written once for both the sync and the async API.

Each flow is a generator that *describes* the I/O it needs -- it yields ``Send`` and ``Sleep``
operations and receives their results -- and holds all the protocol decisions: payload
building, reply mapping, the poll schedule, events, cancellation. Two small drivers execute the
operations: ``drive_sync`` (threads, ``time``) and ``drive_async`` (asyncio). So sync and async
share one implementation and only the I/O differs.

Errors reach a flow as exceptions thrown into it at its ``yield``: ``TransportFailure`` (after
retries), ``DeadlineExceeded``, ``Cancelled`` (the caller's cancel event) and ``Interrupted``
(KeyboardInterrupt or asyncio cancellation: the flow cancels the job on the server, then the
driver re-raises the original interrupt).
"""

from __future__ import annotations

import mimetypes
import os
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from aix_jupyter.core.enums import ResponseStatus
from aix_jupyter.core.errors import RequestError
from aix_jupyter.core.events import EventHook, RunEvent
from aix_jupyter.core.polling import FINAL_GRACE, PollSchedule
from aix_jupyter.core.protocol import (
    NO_RESPONSE,
    RawReply,
    error_details,
    failed,
    http_error_message,
    map_poll_reply,
    map_run_reply,
    poll_progress,
    retry_after_seconds,
)
from aix_jupyter.core.response import ModelResponse
from aix_jupyter.core.transport import Call, Cancelled, DeadlineExceeded, TransportFailure

CANCEL_BUDGET = 0.5  # seconds a cancel (DELETE) may take before control returns anyway
CANCELLED_MESSAGE = "Run cancelled."


class Interrupted(Exception):
    """Thrown into a flow when the caller was interrupted (KeyboardInterrupt, task cancellation)."""


@dataclass
class Send:
    call: Call
    deadline: float | None = None
    cancellable: bool = True
    retry: bool = True


@dataclass
class Sleep:
    seconds: float


Flow = Generator["Send | Sleep", Any, Any]


class Emitter:
    """Builds RunEvents for one run and hands them to the hook (if any)."""

    __slots__ = ("hook", "model_id", "start")

    def __init__(self, hook: EventHook | None, model_id: str, start: float | None = None) -> None:
        self.hook = hook
        self.model_id = model_id
        self.start = time.monotonic() if start is None else start

    def __call__(self, kind: str, **kw: Any) -> None:
        if self.hook is not None:
            self.hook(RunEvent(kind, self.model_id, time.monotonic() - self.start, **kw))  # type: ignore[arg-type]

    def end(self, response: ModelResponse, poll_url: str | None = None, polls: int = 0) -> ModelResponse:
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


def cancel_flow(poll_url: str, budget: float | None = CANCEL_BUDGET) -> Flow:
    """DELETE <poll url>; True when the server says it cancelled the job."""
    deadline = None if budget is None else time.monotonic() + budget
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
        yield from cancel_flow(poll_url)
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
            sent = time.monotonic()
            try:
                reply: RawReply = yield Send(Call("GET", poll_url, headers=headers, what="poll"), deadline)
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
                elapsed=time.monotonic() - sent,
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
        yield from cancel_flow(poll_url)
        emit("cancelled", poll_url=poll_url, polls=schedule.polls, message="interrupted")
        raise


def upload_flow(path: str, backend_url: str, deadline: float | None) -> Flow:
    """Upload a local file (temp-url, then PUT); return the link to send as data."""
    content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    call = Call(
        "POST",
        f"{backend_url.rstrip('/')}/sdk/file/upload/temp-url",
        json_body={"contentType": content_type, "originalName": os.path.basename(path)},
        auth="backend",
        what="file upload",
    )
    reply = yield Send(call, deadline)
    if not 200 <= reply.status_code < 300:
        raise RequestError(
            f"file upload of {os.path.basename(path)!r} failed: "
            + http_error_message(reply.status_code, error_details(reply))
        )
    try:
        info = reply.json()
    except ValueError:
        info = None
    if not isinstance(info, dict) or not info.get("uploadUrl"):
        raise RequestError(f"file upload of {os.path.basename(path)!r}: the server gave no uploadUrl")
    with open(path, "rb") as handle:
        content = handle.read()
    put = Call(
        "PUT",
        str(info["uploadUrl"]),
        auth=None,
        headers={"Content-Type": content_type},
        content=content,
        what="file upload",
    )
    reply = yield Send(put, deadline)
    if not 200 <= reply.status_code < 300:
        raise RequestError(
            f"file upload of {os.path.basename(path)!r} failed: PUT answered HTTP {reply.status_code}"
        )
    link = info.get("downloadUrl") or info.get("url") or info.get("key")
    if not link:
        raise RequestError(
            f"file upload of {os.path.basename(path)!r}: the server gave no downloadUrl or key"
        )
    return str(link)


def run_flow(
    url: str,
    body_flow: Flow,
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
        body = yield from body_flow
        try:
            reply = yield Send(Call("POST", url, json_body=body, what="run", cancel_orphan=True), deadline)
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
        emit("submitted", poll_url=response.url)
        if not poll:
            return response
        schedule = PollSchedule(wait_time, timeout, max_wait, start=start)
        return (yield from poll_flow(response.url, schedule, emit, timeout))  # type: ignore[arg-type]
    emit("submitted")
    if not poll and response.status is ResponseStatus.SUCCESS:
        return response
    return emit.end(response)


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


def status_flow(call: Call) -> Flow:
    """Send a request; return the RawReply whatever its status."""
    reply = yield Send(call)
    return reply


# ---------------------------------------------------------------------------------------------
# drivers: the only place where the two APIs differ


def _step(
    flow: Flow, value: Any, error: BaseException | None, interrupt: BaseException | None
) -> tuple[bool, Any]:
    """Feed the last I/O outcome to ``flow``: ``(True, result)`` when it ended, else ``(False, next op)``.

    An ``Interrupted`` thrown back out of the flow re-raises the caller's original interruption.
    """
    try:
        op = flow.send(value) if error is None else flow.throw(error)
    except StopIteration as stop:
        return True, stop.value
    except Interrupted:
        assert interrupt is not None
        raise interrupt from None
    return False, op


def drive_sync(flow: Flow, transport: Any, cancel: Any = None) -> Any:
    """Run ``flow`` with blocking I/O (``SyncTransport``)."""
    from aix_jupyter.core.transport import sleep_until

    interrupt: BaseException | None = None
    value: Any = None
    error: BaseException | None = None
    while True:
        ended, op = _step(flow, value, error, interrupt)
        if ended:
            return op
        value, error = None, None
        try:
            if isinstance(op, Send):
                value = transport.send(
                    op.call,
                    deadline=op.deadline,
                    cancel=cancel if op.cancellable else None,
                    max_attempts=None if op.retry else 1,
                )
            else:
                sleep_until(op.seconds, cancel)
        except (TransportFailure, DeadlineExceeded, Cancelled) as exc:
            error = exc
        except KeyboardInterrupt as exc:
            if interrupt is not None:
                raise
            interrupt, error = exc, Interrupted()


async def drive_async(flow: Flow, transport: Any, cancel: Any = None) -> Any:
    """Run ``flow`` with asyncio I/O (``AsyncTransport``)."""
    import asyncio

    from aix_jupyter.core.transport import asleep_until

    interrupt: BaseException | None = None
    value: Any = None
    error: BaseException | None = None
    while True:
        ended, op = _step(flow, value, error, interrupt)
        if ended:
            return op
        value, error = None, None
        try:
            if isinstance(op, Send):
                value = await transport.send(
                    op.call,
                    deadline=op.deadline,
                    cancel=cancel if op.cancellable else None,
                    max_attempts=None if op.retry else 1,
                )
            else:
                await asleep_until(op.seconds, cancel)
        except (TransportFailure, DeadlineExceeded, Cancelled) as exc:
            error = exc
        except (KeyboardInterrupt, asyncio.CancelledError) as exc:
            if interrupt is not None:
                raise
            interrupt, error = exc, Interrupted()
