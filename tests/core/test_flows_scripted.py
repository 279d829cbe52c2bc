"""The run, poll and cancel flows driven by the real drivers over a scripted transport and a fake clock.

Every time below is exact: the clock moves only by the scripted request durations and the sleeps
the flows ask for, so deadlines, the poll schedule, retries asked of the transport and cancellation
are checked to the microsecond, and nothing waits. The same scripts run through ``drive_sync`` and
``drive_async`` (the ``mode`` fixture). End-to-end checks against a real server are in test_faults.py.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading

import pytest

from aix_jupyter.core import flows
from aix_jupyter.core.enums import ResponseStatus
from aix_jupyter.core.events import RunEvent
from aix_jupyter.core.polling import FINAL_GRACE, LONG_HOLD, PROGRESS_HOLD, PollSchedule
from aix_jupyter.core.protocol import RunRequest
from tests.core.scripted import (
    BASE,
    DONE,
    POLL_URL,
    RUN_URL,
    RUNNING,
    STARTED,
    Answer,
    FakeClock,
    Scripted,
    drive,
    scripted,
)

T0 = 1000.0  # the fake clock's start
NO_RESULT = "No response from the service."


def emitter(t: Scripted, events: list[RunEvent] | None, start: float | None = None) -> flows.Emitter:
    hook = None if events is None else events.append
    return flows.Emitter(hook, "m", start, clock=t.clock)


def run_flow(
    t: Scripted, events: list[RunEvent] | None = None, *, timeout: float = 300.0, poll: bool = True
) -> flows.Flow:
    """``Model.run``'s flow (``poll=False``: ``run_async``'s) with the default schedule."""
    request = RunRequest({"data": "x"})  # no file to upload: the flow's first I/O is the run POST
    return flows.run_flow(
        RUN_URL,
        request,
        BASE,
        timeout=timeout,
        wait_time=0.5,
        max_wait=5.0,
        emit=emitter(t, events),
        poll=poll,
    )


def poll_flow(
    t: Scripted, events: list[RunEvent] | None = None, *, timeout: float = 300.0, **schedule: float
) -> flows.Flow:
    """``sync_poll``'s flow; ``schedule``: wait_time, max_wait, jitter (0: the schedule's nominal waits)."""
    plan = PollSchedule(
        schedule.get("wait_time", 0.5),
        timeout,
        schedule.get("max_wait", 5.0),
        clock=t.clock,
        jitter=schedule.get("jitter", 0.0),
        rng=random.Random(0),
    )
    return flows.poll_flow(POLL_URL, plan, emitter(t, events, plan.start), timeout)


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 9) for a, b in itertools.pairwise(times)]


# -- the poll schedule, as the flow follows it ---------------------------------------------------
def test_polls_follow_the_schedule_send_to_send(mode):
    t = scripted(mode).on("GET", *[Answer(RUNNING, takes=0.02)] * 5, Answer(DONE, takes=0.02))
    flow = poll_flow(t)
    response = drive(mode, flow, t)
    assert response.status is ResponseStatus.SUCCESS and response.data == "done"
    sends = [s.at - T0 for s in t.gets()]
    # the first poll at once, then 0.5 s growing 10 % a poll, measured from send to send: the
    # request's own time is taken off the next wait
    assert sends[0] == 0
    assert gaps(sends) == pytest.approx([0.5, 0.55, 0.605, 0.6655, 0.73205])
    assert [round(s, 9) for _, s in t.slept] == pytest.approx([0.48, 0.53, 0.585, 0.6455, 0.71205])
    assert t.clock.now == pytest.approx(T0 + sum(gaps(sends)) + 0.02)  # returns when the answer arrives


def test_wait_caps_at_max_wait(mode):
    t = scripted(mode).on("GET", *[Answer(RUNNING, takes=0.0)] * 30, Answer(DONE, takes=0.0))
    flow = poll_flow(t, wait_time=1.0, max_wait=2.0)
    drive(mode, flow, t)
    assert max(s for _, s in t.slept) == pytest.approx(2.0)
    assert [round(s, 9) for _, s in t.slept][:9] == pytest.approx(
        [1.0, 1.1, 1.21, 1.331, 1.4641, 1.61051, 1.771561, 1.9487171, 2.0]
    )


def test_retry_after_on_a_running_poll_sets_the_next_wait(mode):
    t = scripted(mode).on("GET", Answer(RUNNING, headers={"Retry-After": "3"}), Answer(RUNNING), Answer(DONE))
    flow = poll_flow(t)
    drive(mode, flow, t)
    assert t.slept[0][1] == 3.0  # exactly the server's value, not the schedule's 0.5
    assert gaps([s.at for s in t.gets()])[0] == pytest.approx(3.01)


def test_a_plain_server_is_asked_to_hold_for_about_the_next_wait(mode):
    t = scripted(mode).on("GET", *[Answer(RUNNING, takes=0.0)] * 12, Answer(DONE, takes=0.0))
    flow = poll_flow(t, wait_time=1.0)
    drive(mode, flow, t)
    prefer = [s.call.headers.get("Prefer") for s in t.gets()]
    assert prefer[:5] == ["wait=1", "wait=2", "wait=2", "wait=2", "wait=2"]  # ceil(1.1), ceil(1.21), ...
    assert [round(s, 9) for _, s in t.slept][:3] == pytest.approx(
        [1.0, 1.1, 1.21]
    )  # the header changes nothing


def test_a_holding_server_is_polled_back_to_back_with_long_holds(mode):
    applied = {"Preference-Applied": "wait=1"}
    t = scripted(mode).on(
        "GET",
        Answer(RUNNING, headers=applied, takes=1.0),
        Answer(RUNNING, headers={"Preference-Applied": "wait=10"}, takes=10.0),
        Answer({**RUNNING, "progress": 0.5}, headers={"Preference-Applied": "wait=10"}, takes=4.0),
        Answer(DONE, takes=0.5),
    )
    flow = poll_flow(t)
    response = drive(mode, flow, t)
    assert response.data == "done"
    assert [s.call.headers["Prefer"] for s in t.gets()] == [
        "wait=1",
        f"wait={LONG_HOLD}",
        f"wait={LONG_HOLD}",
        f"wait={PROGRESS_HOLD}",
    ]
    assert [s for _, s in t.slept] == [0.0, 0.0, 0.0]  # the time held is taken off the wait
    assert t.clock.now == T0 + 15.5  # noticed the moment the server answered


def test_the_hold_never_reaches_past_the_deadline(mode):
    applied = {"Preference-Applied": "wait=10"}
    t = scripted(mode).on(
        "GET", Answer(RUNNING, headers=applied, takes=1.0), Answer(RUNNING, headers=applied, takes=10.0)
    )
    flow = poll_flow(t, timeout=14.5)
    drive(mode, flow, t)
    assert [s.call.headers.get("Prefer") for s in t.gets()] == ["wait=1", "wait=10", "wait=3"]


# -- deadlines -------------------------------------------------------------------------------------
def test_sync_poll_timeout_cuts_the_last_wait_and_grants_one_final_poll(mode):
    t = scripted(mode).on("GET", Answer(RUNNING, takes=0.01))
    events: list[RunEvent] = []
    flow = poll_flow(t, events, timeout=3.0, jitter=0.2)
    response = drive(mode, flow, t)
    assert response.status is ResponseStatus.FAILED and response.completed is False
    assert response.url == POLL_URL
    assert response.error_message == (
        f"{NO_RESULT} (no result within 3 s; the job may still be running: sync_poll(response.url) resumes)"
    )
    assert t.gets()[-1].at == T0 + 3.0  # the last poll is made exactly at the deadline...
    assert t.gets()[-1].deadline == T0 + 3.0 + FINAL_GRACE  # ...with a little grace to answer
    assert all(s.deadline == T0 + 3.0 for s in t.gets()[:-1])
    assert t.clock.now == T0 + 3.01
    assert events[-1].kind == "failed" and events[-1].polls == len(t.gets())


def test_a_poll_that_never_answers_ends_at_the_deadline(mode):
    t = scripted(mode).on("GET", Answer(RUNNING, takes=0.01), Answer(hang=True))
    flow = poll_flow(t, timeout=2.0)
    response = drive(mode, flow, t)
    assert response.status is ResponseStatus.FAILED and response.completed is False
    assert t.clock.now == T0 + 2.0 and len(t.gets()) == 2


def test_a_final_poll_that_never_answers_gets_only_the_grace(mode):
    t = scripted(mode).on("GET", Answer(RUNNING, takes=0.01), Answer(hang=True))
    flow = poll_flow(t, timeout=0.3)  # the first wait (0.5 s) is cut at 0.3 s: the next poll is final
    drive(mode, flow, t)
    assert t.gets()[-1].at == T0 + 0.3
    assert t.clock.now == pytest.approx(T0 + 0.3 + FINAL_GRACE)


def test_run_timeout_covers_the_submit_and_the_polls(mode):
    t = scripted(mode).on("POST", Answer(STARTED, takes=1.0)).on("GET", Answer(RUNNING, takes=0.01))
    response = drive(mode, run_flow(t, timeout=1.2), t)
    assert response.status is ResponseStatus.FAILED and response.completed is False
    assert "no result within 1.2 s" in response.error_message and response.url == POLL_URL
    assert t.sent[0].deadline == T0 + 1.2  # the POST carries the run's deadline
    assert [s.at - T0 for s in t.gets()] == pytest.approx([1.0, 1.2])  # at once, then cut at the deadline
    assert t.clock.now == pytest.approx(T0 + 1.21)


def test_a_submit_that_never_answers_ends_at_the_deadline(mode):
    events: list[RunEvent] = []
    t = scripted(mode).on("POST", Answer(hang=True))
    response = drive(mode, run_flow(t, events, timeout=2.5), t)
    assert response.status is ResponseStatus.FAILED and response.completed is False
    assert response.error_message == f"{NO_RESULT} (no result within 2.5 s)"
    assert t.clock.now == T0 + 2.5 and t.methods() == ["POST"]
    assert [e.kind for e in events] == ["failed"] and events[0].elapsed == 2.5


def test_run_async_submits_without_a_deadline(mode):
    t = scripted(mode).on("POST", Answer(STARTED))
    response = drive(mode, run_flow(t, timeout=0, poll=False), t)
    assert response.status is ResponseStatus.IN_PROGRESS and response.url == POLL_URL
    assert t.sent[0].deadline is None and t.methods() == ["POST"]


# -- what the flows ask of the transport's retries ----------------------------------------------
def test_polls_and_the_submit_may_be_retried_by_the_transport(mode):
    t = scripted(mode).on("POST", Answer(STARTED)).on("GET", Answer(DONE))
    drive(mode, run_flow(t), t, threading.Event())
    assert [s.max_attempts for s in t.sent] == [None, None]  # the transport's own policy
    assert all(s.cancellable for s in t.sent)  # and the caller's cancel event ends them


def test_a_failure_after_the_transports_retries_ends_the_poll(mode):
    events: list[RunEvent] = []
    t = scripted(mode).on("GET", Answer(RUNNING), Answer(fail="network"))
    flow = poll_flow(t, events)
    response = drive(mode, flow, t)
    assert response.status is ResponseStatus.FAILED and response.completed is False
    assert response.error_message == f"{NO_RESULT} poll: scripted network failure"
    assert events[-1].kind == "failed" and len(t.gets()) == 2


def test_a_failed_submit_is_a_failed_run(mode):
    t = scripted(mode).on("POST", Answer(fail="connect"))
    response = drive(mode, run_flow(t), t)
    assert response.status is ResponseStatus.FAILED
    assert response.error_message == "Model Run: run: scripted connect failure"


# -- cancellation ------------------------------------------------------------------------------
def test_cancel_during_a_wait_returns_at_once_and_deletes_the_job(mode):
    events: list[RunEvent] = []
    cancel = threading.Event()
    t = (
        scripted(mode)
        .on("POST", Answer(STARTED, takes=0.1))
        .on("GET", Answer(RUNNING))
        .on("DELETE", Answer({"cancelled": True}, takes=0.05))
    )
    t.cancel_at(0.4)  # during the first wait (0.11 .. ~0.6 s)
    response = drive(mode, run_flow(t, events), t, cancel)
    assert response.status is ResponseStatus.FAILED and response.completed is True
    assert response.error_message == "Run cancelled." and response.url == POLL_URL
    assert t.methods() == ["POST", "GET", "DELETE"]
    delete = t.sent[-1]
    assert delete.at == T0 + 0.4 and delete.call.url == POLL_URL
    assert delete.deadline == T0 + 0.4 + flows.CANCEL_BUDGET  # bounded, never retried, not cancellable
    assert delete.max_attempts == 1 and not delete.cancellable
    assert t.clock.now == pytest.approx(T0 + 0.45)
    assert [e.kind for e in events] == ["submitted", "polled", "cancelled"]


def test_cancel_during_a_held_poll_returns_at_once(mode):
    cancel = threading.Event()
    t = (
        scripted(mode)
        .on("GET", Answer(RUNNING, takes=10.0))
        .on("DELETE", Answer({"cancelled": True}, takes=0.0))
    )
    t.cancel_at(0.25)
    flow = poll_flow(t)
    response = drive(mode, flow, t, cancel)
    assert response.error_message == "Run cancelled."
    assert t.clock.now == T0 + 0.25 and t.methods() == ["GET", "DELETE"]


def test_a_cancel_whose_delete_hangs_returns_after_the_cancel_budget(mode):
    cancel = threading.Event()
    t = scripted(mode).on("GET", Answer(RUNNING)).on("DELETE", Answer(hang=True))
    t.cancel_at(1.0)
    flow = poll_flow(t)
    response = drive(mode, flow, t, cancel)
    assert response.error_message == "Run cancelled."
    assert t.clock.now == T0 + 1.0 + flows.CANCEL_BUDGET


def test_cancel_during_the_submit_sends_no_delete(mode):
    events: list[RunEvent] = []
    cancel = threading.Event()
    t = scripted(mode).on("POST", Answer(STARTED, takes=2.0))
    t.cancel_at(0.3)
    response = drive(mode, run_flow(t, events), t, cancel)
    assert response.error_message == "Run cancelled." and response.url is None
    assert t.methods() == ["POST"] and t.clock.now == T0 + 0.3  # the orphan is the transport's to clean up
    assert [e.kind for e in events] == ["cancelled"]


def test_a_cancel_set_before_the_run_sends_nothing_but_the_submit(mode):
    cancel = threading.Event()
    cancel.set()
    t = scripted(mode).on("POST", Answer(STARTED))
    response = drive(mode, run_flow(t), t, cancel)
    assert response.error_message == "Run cancelled." and t.clock.now == T0


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (Answer({"cancelled": True}), True),
        (Answer({"cancelled": False}), False),
        (Answer({"error": "gone"}, status=404), False),
        (Answer(None, status=204), True),
        (Answer(fail="network"), False),
    ],
)
def test_cancel_run_reports_what_the_server_said(mode, answer, said):
    t = scripted(mode).on("DELETE", answer)
    assert drive(mode, flows.cancel_flow(POLL_URL, budget=None, clock=t.clock), t) is said
    assert t.sent[0].deadline is None and t.sent[0].max_attempts is None  # an explicit cancel_run may retry


# -- interrupts (Ctrl-C, task cancellation) ----------------------------------------------------------
def _interrupt(mode: str) -> type[BaseException]:
    return KeyboardInterrupt if mode == "sync" else asyncio.CancelledError


def test_an_interrupt_during_a_poll_cancels_the_job_and_reraises(mode):
    events: list[RunEvent] = []
    t = (
        scripted(mode)
        .on("POST", Answer(STARTED))
        .on("GET", Answer(RUNNING, takes=2.0))
        .on("DELETE", Answer({"cancelled": True}, takes=0.1))
    )
    t.interrupt_at(0.5)
    with pytest.raises(_interrupt(mode)):
        drive(mode, run_flow(t, events), t)
    assert t.methods() == ["POST", "GET", "DELETE"]
    assert t.sent[-1].at == T0 + 0.5 and t.sent[-1].deadline == T0 + 0.5 + flows.CANCEL_BUDGET
    assert t.clock.now == pytest.approx(T0 + 0.6)
    assert events[-1].kind == "cancelled" and events[-1].message == "interrupted"


def test_an_interrupt_during_a_wait_cancels_the_job_and_reraises(mode):
    t = scripted(mode).on("GET", Answer(RUNNING)).on("DELETE", Answer({"cancelled": True}))
    t.interrupt_at(0.3)
    flow = poll_flow(t)
    with pytest.raises(_interrupt(mode)):
        drive(mode, flow, t)
    assert t.methods() == ["GET", "DELETE"] and t.sent[-1].at == T0 + 0.3


def test_a_second_interrupt_during_the_cancel_is_not_swallowed(mode):
    t = scripted(mode).on("GET", Answer(RUNNING)).on("DELETE", Answer(takes=0.4))
    t.interrupt_at(0.3)
    t.interrupt_at(0.5)
    flow = poll_flow(t)
    with pytest.raises(_interrupt(mode)):
        drive(mode, flow, t)
    assert t.clock.now == T0 + 0.5  # the second one ends the wait for the DELETE


def test_an_interrupt_during_the_submit_reraises_without_a_delete(mode):
    events: list[RunEvent] = []
    t = scripted(mode).on("POST", Answer(STARTED, takes=1.0))
    t.interrupt_at(0.2)
    with pytest.raises(_interrupt(mode)):
        drive(mode, run_flow(t, events), t)
    assert t.methods() == ["POST"] and [(e.kind, e.message) for e in events] == [("cancelled", "interrupted")]


@pytest.mark.parametrize("kind", ["submitted", "polled"])
def test_ctrl_c_in_an_event_hook_cancels_the_job_and_reraises(mode, kind):
    """A KeyboardInterrupt raised while a hook runs (progress drawing, a user's callback) is an interrupt."""
    events: list[RunEvent] = []

    def hook(event: RunEvent) -> None:
        events.append(event)
        if event.kind == kind:
            raise KeyboardInterrupt

    t = (
        scripted(mode)
        .on("POST", Answer(STARTED))
        .on("GET", Answer(RUNNING, takes=0.1))
        .on("DELETE", Answer({"cancelled": True}, takes=0.1))
    )
    flow = flows.run_flow(
        RUN_URL,
        RunRequest({"data": "x"}),
        BASE,
        timeout=300.0,
        wait_time=0.5,
        max_wait=5.0,
        emit=flows.Emitter(hook, "m", None, clock=t.clock),
    )
    with pytest.raises(KeyboardInterrupt):
        drive(mode, flow, t)
    assert t.methods()[-1] == "DELETE" and t.methods().count("DELETE") == 1
    assert t.sent[-1].call.url == POLL_URL
    assert events[-1].kind == "cancelled" and events[-1].message == "interrupted"


# -- events and the key -------------------------------------------------------------------------
def test_events_carry_the_run_clock(mode):
    events: list[RunEvent] = []
    t = (
        scripted(mode)
        .on("POST", Answer(STARTED, takes=0.25))
        .on("GET", Answer({**RUNNING, "progress": 0.5, "eta": 3}, takes=0.05), Answer(DONE, takes=0.05))
    )
    response = drive(mode, run_flow(t, events), t)
    assert [e.kind for e in events] == ["submitted", "polled", "finished"]
    assert [e.elapsed for e in events[:2]] == pytest.approx([0.25, 0.30])
    assert events[1].progress == 0.5 and events[1].eta == 3.0 and events[1].polls == 1
    assert events[-1].elapsed == pytest.approx(t.clock.now - T0) and events[-1].response is response
    assert events[-1].polls == 2


def test_a_key_the_server_echoes_is_scrubbed_from_the_result(mode):
    t = (
        scripted(mode)
        .on("POST", Answer(STARTED))
        .on("GET", Answer({"completed": True, "error_message": "key sk-scripted-KEY is not allowed"}))
    )
    response = drive(mode, run_flow(t), t)
    assert response.error_message == "key *** is not allowed"


def test_the_scripted_clock_is_the_only_time_source():
    """A run on the fake clock takes no real time: an hour of polling completes at once."""
    import time

    t = scripted("sync", FakeClock(0.0)).on("POST", Answer(STARTED)).on("GET", Answer(RUNNING))
    began = time.monotonic()
    response = drive("sync", run_flow(t, timeout=3600), t)
    assert time.monotonic() - began < 5
    assert "no result within 3600 s" in response.error_message
    assert 3600.0 <= t.clock.now <= 3600.01 + 1e-9  # the deadline, or the final poll's answer just after
