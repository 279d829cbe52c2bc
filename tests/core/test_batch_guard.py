"""The batch's run-request guard, driven exactly by the scripted transport on a fake clock."""

from __future__ import annotations

import pytest

from aix_jupyter.core.batch import PushedBack, guard_run_request
from aix_jupyter.core.enums import ResponseStatus
from aix_jupyter.core.transport import MAX_ATTEMPTS
from tests.core.scripted import DONE, RUNNING, STARTED, Answer, drive, scripted
from tests.core.test_flows_scripted import run_flow


@pytest.mark.parametrize("status", [429, 503])
def test_a_refused_run_request_is_handed_back_without_a_second_post(mode: str, status: int):
    t = scripted(mode).on("POST", Answer({"error": "busy"}, status=status, headers={"Retry-After": "2"}))
    outcome = drive(mode, guard_run_request(run_flow(t), pushbacks=0, connects=0), t)
    assert isinstance(outcome, PushedBack) and outcome.delay == 2.0 and not outcome.connect
    assert t.methods() == ["POST"] and t.sent[0].max_attempts == 1  # the transport did not retry it


def test_a_started_job_is_polled_as_usual_and_only_its_post_loses_the_transports_retries(mode: str):
    t = scripted(mode).on("POST", Answer(STARTED)).on("GET", Answer(RUNNING), Answer(DONE))
    outcome = drive(mode, guard_run_request(run_flow(t), pushbacks=0, connects=0), t)
    assert outcome.status is ResponseStatus.SUCCESS and outcome.data == "done"
    assert t.methods() == ["POST", "GET", "GET"]
    assert [s.max_attempts for s in t.sent] == [1, None, None]


def test_an_answer_the_core_would_not_retry_goes_to_the_run_flow(mode: str):
    t = scripted(mode).on("POST", Answer({"error": "boom"}, status=500))
    outcome = drive(mode, guard_run_request(run_flow(t), pushbacks=0, connects=0), t)
    assert outcome.status is ResponseStatus.FAILED and "Internal server error" in outcome.error_message


def test_connect_failures_are_handed_back_up_to_the_transports_attempt_limit(mode: str):
    t = scripted(mode).on("POST", Answer(fail="connect"))
    first = drive(mode, guard_run_request(run_flow(t), pushbacks=0, connects=0), t)
    assert isinstance(first, PushedBack) and first.connect
    t = scripted(mode).on("POST", Answer(fail="connect"))
    last = drive(mode, guard_run_request(run_flow(t), pushbacks=0, connects=MAX_ATTEMPTS - 1), t)
    assert last.status is ResponseStatus.FAILED and "scripted connect failure" in last.error_message


def test_a_timeout_after_the_post_was_sent_is_never_resent(mode: str):
    t = scripted(mode).on("POST", Answer(fail="timeout"))  # the job may have started
    outcome = drive(mode, guard_run_request(run_flow(t), pushbacks=0, connects=0), t)
    assert outcome.status is ResponseStatus.FAILED and t.methods() == ["POST"]


def test_push_backs_stop_after_the_batch_limit(mode: str):
    from aix_jupyter.core.batch import MAX_PUSHBACKS

    t = scripted(mode).on("POST", Answer({"error": "busy"}, status=429))
    outcome = drive(mode, guard_run_request(run_flow(t), pushbacks=MAX_PUSHBACKS - 1, connects=0), t)
    assert outcome.status is ResponseStatus.FAILED and "Rate limit exceeded" in outcome.error_message
