"""Server faults, timeouts, retries, cancellation and interrupts, end to end against a real server.

Sync and async paths. The flows' exact timing (deadlines, the poll schedule, cancel budgets) is
tested on a fake clock in test_flows_scripted.py; the timing checks here are deliberately
generous: each bound is far below what the failure it guards against would take (an httpx
timeout, a server's reply delay, a 10 s held poll), and threads that cancel or interrupt a run
wait for the server to see the request they interrupt instead of sleeping a guessed time.
"""

from __future__ import annotations

import _thread
import asyncio
import socket
import threading
import time

import pytest

from aix_jupyter import Model, ResponseStatus
from aix_jupyter.core.errors import UnsafePollURLError
from tests.core.conftest import KEY, call
from tests.core.wireserver import Reply

GENERIC = "Model Run: An error occurred while processing your request."


def timed(fn, *args, **kwargs):
    start = time.monotonic()
    result = fn(*args, **kwargs)
    return result, time.monotonic() - start


def wait_for(condition, timeout: float = 10.0) -> None:
    """Wait until ``condition()`` is true (a server-side fact), or fail the test."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the server never saw the expected request"
        time.sleep(0.005)


def when(condition, action) -> dict[str, float]:
    """In another thread, do ``action()`` as soon as ``condition()`` holds; the time it did is returned."""
    done: dict[str, float] = {}

    def go() -> None:
        wait_for(condition)
        done["at"] = time.monotonic()
        action()

    threading.Thread(target=go, daemon=True).start()
    return done


def held_polls(server, n: int):
    """True once the server has received ``n`` polls (with a holding server, the n-th is being held)."""
    return lambda: len(server.seen("GET", "/api/v1/data/")) >= n


# -- timeouts hold whatever the server does ------------------------------------------------------
@pytest.mark.parametrize("timeout", [1.0, pytest.param(2.0, marks=pytest.mark.slow)])
def test_run_timeout_holds_against_a_server_that_never_answers(mode, server, model, timeout):
    server.script("POST /api/v2/execute", Reply(hang=True))
    response, took = timed(call, mode, model, "run", "x", timeout=timeout)
    assert response.status is ResponseStatus.FAILED and response.completed is False
    # the run's deadline, not the transport's own read timeout (deadline + 1 s: "Model Run: ...")
    assert response.error_message.startswith("No response from the service.")
    assert timeout - 0.05 <= took < timeout + 0.9


def test_run_timeout_holds_against_a_slow_answer(mode, server, model):
    server.script("POST /api/v2/execute", Reply(delay=5, json={"status": "SUCCESS", "data": "late"}))
    response, took = timed(call, mode, model, "run", "x", timeout=1)
    assert response.status is ResponseStatus.FAILED and response.error_message.startswith("No response")
    assert took < 3  # the answer comes at 5 s


def test_run_timeout_holds_against_a_trickling_answer(mode, server, model):
    server.script("POST /api/v2/execute", Reply(json={"status": "SUCCESS", "data": "x" * 50}, trickle=0.2))
    response, took = timed(call, mode, model, "run", "x", timeout=1)
    assert response.status is ResponseStatus.FAILED and response.error_message.startswith("No response")
    assert took < 3  # the whole answer takes ~15 s, and every byte comes within the read timeout


def test_sync_poll_timeout_holds_when_a_poll_never_answers(mode, server, model):
    server.job_seconds = 60
    started = model.run_async("x")
    server.script("GET /api/v1/data/", Reply(hang=True), Reply(hang=True), Reply(hang=True))
    response, took = timed(call, mode, model, "sync_poll", started.url, timeout=1)
    assert response.status is ResponseStatus.FAILED and response.url == started.url
    # the poll's deadline, not the transport's read timeout (deadline + 1 s: "did not answer in time")
    assert "no result within 1 s" in response.error_message and took < 1.9


# -- retries ------------------------------------------------------------------------------------
def test_poll_retried_after_a_5xx(mode, server, model):
    server.job_seconds = 0.2
    started = model.run_async("x")
    server.script("GET /api/v1/data/", Reply(502, json={"error": "bad gateway"}))
    response = call(mode, model, "sync_poll", started.url, timeout=10)
    assert response.status is ResponseStatus.SUCCESS
    assert len(server.seen("GET", "/api/v1/data/")) >= 2


def test_post_retried_after_503_but_not_after_502(mode, server, model):
    server.script("POST /api/v2/execute", Reply(503, json={"error": "busy"}))
    assert call(mode, model, "run", "x").status is ResponseStatus.SUCCESS
    assert len(server.seen("POST")) == 2
    server.script("POST /api/v2/execute", Reply(502, json={"error": "bad gateway"}))
    response = call(mode, model, "run", "x")
    assert response.status is ResponseStatus.FAILED  # the job may have started: no second POST
    assert response.error_message == "Unspecified Client/Server Error (Status 502) Details: bad gateway"
    assert len(server.seen("POST")) == 3


def test_429_retry_after_is_honoured(mode, server, model):
    server.script(
        "POST /api/v2/execute", Reply(429, json={"error": "slow down"}, headers={"Retry-After": "1"})
    )
    response = call(mode, model, "run", "x")
    assert response.status is ResponseStatus.SUCCESS
    first, second = server.seen("POST")
    assert second.at - first.at >= 0.95


def test_429_retry_after_beyond_the_deadline_fails_at_once(mode, server, model):
    server.script("POST /api/v2/execute", Reply(429, json={"error": "later"}, headers={"Retry-After": "30"}))
    response, took = timed(call, mode, model, "run", "x", timeout=5)
    assert response.status is ResponseStatus.FAILED and took < 4  # neither the 30 s nor the 5 s deadline
    assert len(server.seen("POST")) == 1
    assert response.error_message == "Rate limit exceeded: Please try again later. Details: later"


def test_connection_refused(mode):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    m = Model("echo", url=f"http://127.0.0.1:{port}/api/v1/execute", api_key=KEY)
    response, took = timed(call, mode, m, "run", "x", timeout=5)
    assert response.status is ResponseStatus.FAILED and took < 3
    assert "could not connect to http://127.0.0.1" in response.error_message
    assert KEY not in response.error_message


# -- reply shapes -------------------------------------------------------------------------------
def test_non_json_2xx(mode, server, model):
    server.script(
        "POST /api/v2/execute", Reply(body=b"<html>oops</html>", headers={"Content-Type": "text/html"})
    )
    response = call(mode, model, "run", "x")
    assert response.status is ResponseStatus.FAILED
    assert "not JSON" in response.error_message and "\n" not in response.error_message


def test_non_json_poll_reply_ends_the_poll(mode, server, model):
    server.job_seconds = 60
    started = model.run_async("x")
    server.script("GET /api/v1/data/", Reply(body=b"garbage"))
    response = call(mode, model, "sync_poll", started.url, timeout=30)
    assert response.status is ResponseStatus.FAILED
    assert len(server.seen("GET", "/api/v1/data/")) == 1  # no second poll


def test_reply_without_status_is_a_job(mode, server, model):
    job = server.start_job("echo", "q", seconds=0)
    server.script("POST /api/v2/execute", Reply(json={"data": server.poll_url(job.id)}))
    response = call(mode, model, "run", "q")
    assert response.status is ResponseStatus.SUCCESS and response.data == "echo: q"


def test_in_progress_without_data_fails(mode, server, model):
    server.script("POST /api/v2/execute", Reply(json={"status": "IN_PROGRESS"}))
    response = call(mode, model, "run", "x")
    assert response.status is ResponseStatus.FAILED and response.error_message == GENERIC


def test_poll_404_fails_at_once(mode, server, model):
    response = call(mode, model, "sync_poll", server.poll_url("missing"), timeout=30)
    assert response.status is ResponseStatus.FAILED and len(server.seen("GET")) == 1
    assert response.error_message.startswith("Resource not found")


def test_error_code_reply_is_failed_not_a_crash(mode, server, model):
    server.script(
        "POST /api/v2/execute",
        Reply(json={"status": "SUCCESS", "error_code": "E_QUOTA", "error_message": "quota exceeded"}),
    )
    response = call(mode, model, "run", "x")
    assert response.status is ResponseStatus.FAILED
    assert response.error_code == "E_QUOTA" and response.error_message == "quota exceeded"


def test_error_code_in_a_poll_ends_the_poll(mode, server, model):
    server.job_seconds = 60
    started = model.run_async("x")
    server.script("GET /api/v1/data/", Reply(json={"completed": False, "error_code": "E1"}))
    response = call(mode, model, "sync_poll", started.url, timeout=30)
    assert response.status is ResponseStatus.FAILED and response.error_code == "E1"
    assert len(server.seen("GET", "/api/v1/data/")) == 1
    assert response.error_message == GENERIC


@pytest.mark.parametrize("body", [{"status": "WEIRD", "completed": False}, {"foo": 1}, ["a list"]])
def test_unknown_or_missing_status_ends_the_poll(mode, server, model, body):
    server.job_seconds = 60
    started = model.run_async("x")
    server.script("GET /api/v1/data/", Reply(json=body))
    response = call(mode, model, "sync_poll", started.url, timeout=30)
    assert response.status is ResponseStatus.FAILED and response.error_message
    assert len(server.seen("GET", "/api/v1/data/")) == 1


def test_supplier_error_in_a_poll(mode, server, model):
    server.job_seconds = 60
    started = model.run_async("x")
    server.script("GET /api/v1/data/", Reply(json={"completed": True, "error": "boom", "supplierError": "s"}))
    response = call(mode, model, "sync_poll", started.url)
    assert response.status is ResponseStatus.FAILED and response.error_message == "boom - s"


def test_http_error_on_run(mode, server, model):
    server.script("POST /api/v2/execute", Reply(401, json={"error": "bad key"}))
    response = call(mode, model, "run", "x")
    assert response.status is ResponseStatus.FAILED and response.completed is True
    assert response.error_message == (
        "Unauthorized API key: Please verify the spelling of the API key and its current validity."
        " Details: bad key"
    )


# -- streaming faults ---------------------------------------------------------------------------
def _stream(mode, model, data="x"):
    if mode == "sync":
        streamer = model.run_stream(data)
        return streamer, list(streamer)

    async def go():
        streamer = await model.arun_stream(data)
        return streamer, [c async for c in streamer]

    return asyncio.run(go())


def test_stream_closed_before_done(mode, server, model):
    server.script("POST /api/v2/execute", Reply(sse=['{"data": "a"}', '{"data": "b"}'], close_early=True))
    streamer, chunks = _stream(mode, model)
    assert [c.data for c in chunks[:2]] == ["a", "b"]
    assert chunks[-1].status is ResponseStatus.FAILED and "before [DONE]" in chunks[-1].error_message
    assert streamer.status is ResponseStatus.FAILED and streamer.text == "ab"


def test_stream_http_error_is_checked(mode, server, model):
    server.script("POST /api/v2/execute", Reply(500, json={"error": "model crashed"}))
    _streamer, chunks = _stream(mode, model)
    assert len(chunks) == 1 and chunks[0].status is ResponseStatus.FAILED
    assert chunks[0].error_message == "Internal server error: Please try again later. Details: model crashed"


def test_stream_keeps_data_prefix_inside_chunks_and_skips_blank_lines(mode, server, model):
    raw = (
        b'data: {"data": "say data: hi"}\r\n\r\n: comment\n\n'
        b'data: {"data": {"text": "T"}}\n\ndata: [DONE]\n\n'
    )
    server.script("POST /api/v2/execute", Reply(sse=[], sse_raw=raw, close_early=True))
    streamer, chunks = _stream(mode, model)
    assert [c.data for c in chunks] == ["say data: hi", "T", ""]
    assert streamer.status is ResponseStatus.SUCCESS


def test_stream_falls_back_to_a_json_reply(mode, server, model):
    server.script(
        "POST /api/v2/execute", Reply(json={"status": "SUCCESS", "completed": True, "data": "whole"})
    )
    streamer, chunks = _stream(mode, model)
    assert [c.data for c in chunks] == ["whole", ""] and streamer.text == "whole"


def test_stream_error_event(mode, server, model):
    server.script("POST /api/v2/execute", Reply(sse=['{"data": "a"}', '{"error": "overloaded"}']))
    _streamer, chunks = _stream(mode, model)
    assert chunks[-1].status is ResponseStatus.FAILED and chunks[-1].error_message == "overloaded"


# -- the API key's boundary ---------------------------------------------------------------------
def test_poll_url_on_another_host_is_refused(mode, server, model):
    foreign = f"http://localhost:{server.port}/api/v1/data/x"  # same server, another host name
    server.script("POST /api/v2/execute", Reply(json={"status": "IN_PROGRESS", "data": foreign}))
    with pytest.raises(UnsafePollURLError, match="refusing to send the API key to http://localhost") as info:
        call(mode, model, "run", "x")
    assert KEY not in str(info.value) and "\n" not in str(info.value)
    for name in ("sync_poll", "poll", "cancel_run"):
        with pytest.raises(UnsafePollURLError):
            call(mode, model, name, "https://evil.example/api/v1/data/1")
    assert not server.seen("GET")  # nothing was sent with the key


def test_poll_url_on_another_host_is_polled_when_there_is_no_key(server):
    job = server.start_job("echo", "k", seconds=0)
    m = Model("echo", url=server.run_url)
    response = m.sync_poll(f"http://localhost:{server.port}/api/v1/data/{job.id}")
    assert response.data == "echo: k"


def test_trusted_hosts_extend_the_boundary(monkeypatch, server, model):
    job = server.start_job("echo", "t", seconds=0)
    monkeypatch.setenv("AIX_TRUSTED_HOSTS", f"localhost:{server.port}")
    assert model.sync_poll(f"http://localhost:{server.port}/api/v1/data/{job.id}").data == "echo: t"


def test_key_from_a_server_echo_is_redacted(mode, server, model):
    server.script("POST /api/v2/execute", Reply(401, json={"error": f"key {KEY} is invalid"}))
    response = call(mode, model, "run", "x")
    assert KEY not in response.error_message and "***" in response.error_message


# -- progress, holds, cancellation, interrupts ---------------------------------------------------
def test_polled_events_carry_progress_and_eta(mode, server, model):
    server.job_seconds, server.progress, server.hold = 0.8, True, False
    events = []
    response = call(mode, model, "run", "x", wait_time=0.2, on_event=events.append)
    assert response.status is ResponseStatus.SUCCESS
    kinds = [e.kind for e in events]
    assert kinds[0] == "submitted" and kinds[-1] == "finished" and "polled" in kinds
    polled = [e for e in events if e.kind == "polled"]
    assert all(0 <= e.progress <= 1 and e.eta >= 0 for e in polled)
    assert polled[0].poll_url == events[0].poll_url and [e.polls for e in polled] == list(
        range(1, len(polled) + 1)
    )
    assert events[-1].response is response


def test_holding_server_answers_when_the_job_ends(mode, server, model):
    server.job_seconds = 1.0
    response = call(mode, model, "run", "x", wait_time=0.5)
    assert response.status is ResponseStatus.SUCCESS
    polls = server.seen("GET", "/api/v1/data/")
    assert all("wait=" in r.headers.get("prefer", "") for r in polls)
    job = next(iter(server.jobs.values()))
    # the poll that brought the result reached the server before the job ended: it was held
    # until the end, instead of the end waiting for the next scheduled poll
    assert polls[-1].at < job.started + job.seconds and len(polls) <= 2


def test_cancel_from_another_thread_ends_a_held_poll_and_deletes_the_job(mode, server, model):
    server.job_seconds = 60
    cancel = threading.Event()
    events = []
    cancelled = when(held_polls(server, 2), cancel.set)  # the 2nd poll is held for up to 10 s
    response = call(mode, model, "run", "x", cancel=cancel, on_event=events.append)
    assert time.monotonic() - cancelled["at"] < 5
    assert response.status is ResponseStatus.FAILED and "cancelled" in response.error_message
    assert len(server.seen("DELETE", "/api/v1/data/")) == 1
    assert events[-1].kind == "cancelled"
    assert next(iter(server.jobs.values())).cancelled


def test_cancel_event_ends_a_stream(mode, server, model):
    server.script("POST /api/v2/execute", Reply(sse=['{"data": "a"}'] * 100, sse_delay=0.1))
    cancel = threading.Event()
    events = []

    def consume(streamer):
        out = []
        for chunk in streamer:
            out.append(chunk)
            if len(out) == 2:
                cancel.set()
        return out

    async def aconsume():
        streamer = await model.arun_stream("x", cancel=cancel, on_event=events.append)
        out = []
        async for chunk in streamer:
            out.append(chunk)
            if len(out) == 2:
                cancel.set()
        return out

    start = time.monotonic()
    if mode == "sync":
        chunks = consume(model.run_stream("x", cancel=cancel, on_event=events.append))
    else:
        chunks = asyncio.run(aconsume())
    assert time.monotonic() - start < 5  # the whole stream takes 10 s
    assert chunks[-1].status is ResponseStatus.FAILED and "cancelled" in chunks[-1].error_message
    assert events[-1].kind == "cancelled"


def test_keyboard_interrupt_cancels_the_job_and_reraises(server, model):
    server.job_seconds = 60
    events = []
    interrupted = when(held_polls(server, 2), _thread.interrupt_main)
    with pytest.raises(KeyboardInterrupt):
        model.run("x", on_event=events.append)
    assert time.monotonic() - interrupted["at"] < 5  # the held poll would last 10 s
    assert len(server.seen("DELETE", "/api/v1/data/")) == 1
    assert events[-1].kind == "cancelled"


def test_asyncio_cancellation_cancels_the_job(server, model):
    server.job_seconds = 60

    async def go():
        task = asyncio.create_task(model.arun("x"))
        while not held_polls(server, 2)():
            await asyncio.sleep(0.005)
        task.cancel()
        start = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - start

    assert asyncio.run(go()) < 5  # the held poll would last 10 s
    assert len(server.seen("DELETE", "/api/v1/data/")) == 1


@pytest.mark.parametrize("how", ["interrupt_main", "SIGINT"])
def test_ctrl_c_during_the_run_post_returns_at_once_and_its_job_is_cancelled(server, model, how):
    """Ctrl-C while a run POST made in the caller's thread waits for its reply: KeyboardInterrupt at
    once, and the job the reply announces is deleted once it arrives (read by a worker)."""
    import os
    import signal

    job = server.start_job("echo", "late", seconds=60)
    server.script(
        "POST /api/v2/execute",
        Reply(delay=2, json={"status": "IN_PROGRESS", "data": server.poll_url(job.id)}),
    )
    interrupt = (
        _thread.interrupt_main if how == "interrupt_main" else lambda: os.kill(os.getpid(), signal.SIGINT)
    )
    interrupted = when(lambda: server.seen("POST"), interrupt)
    with pytest.raises(KeyboardInterrupt):
        model.run("x")
    assert time.monotonic() - interrupted["at"] < 1.5  # the reply comes 2 s after the POST
    wait_for(lambda: server.seen("DELETE"))
    assert server.seen("DELETE")[0].path == f"/api/v1/data/{job.id}" and job.cancelled


def test_a_run_without_a_cancel_event_needs_no_worker_thread(server, model, monkeypatch):
    """The fast path: a run without a cancel event makes its requests in the caller's thread."""
    from aix_jupyter.core import sync_transport

    def no_worker(*args, **kwargs):
        raise AssertionError("a worker thread was used")

    monkeypatch.setattr(sync_transport, "run_in_worker", no_worker)
    assert model.run("hi").data == "echo: hi"
    server.job_seconds = 0.3  # a job that goes on: its polls too
    assert model.run("polled", wait_time=0.05).data == "echo: polled"


def test_closing_the_shared_clients_forgets_them_and_a_new_one_runs_in_the_callers_thread_again(
    server, model, monkeypatch
):
    """The fast path's tables are keyed by the shared client's id(): closing the clients clears them,
    so a later client (which may reuse a closed one's id) is never sent to a closed one's transport."""
    from aix_jupyter.core import sync_transport

    assert model.run("before").data == "echo: before"
    sync_transport._close_clients()
    assert not sync_transport._sliced and not sync_transport._direct

    def no_worker(*args, **kwargs):
        raise AssertionError("a worker thread was used")

    monkeypatch.setattr(sync_transport, "run_in_worker", no_worker)
    assert model.run("after").data == "echo: after"
    client = sync_transport.sync_client(server.run_url)
    assert sync_transport._sliced == {id(client)} and set(sync_transport._direct) == {id(client)}


def test_a_job_started_after_the_cancel_is_cancelled_too(server, model):
    """Cancel while the run POST is still in flight: the job it starts is deleted when it arrives."""
    job = server.start_job("echo", "late", seconds=60)
    server.script(
        "POST /api/v2/execute",
        Reply(delay=3, json={"status": "IN_PROGRESS", "data": server.poll_url(job.id)}),
    )
    cancel = threading.Event()
    when(lambda: server.seen("POST"), cancel.set)
    response, took = timed(model.run, "x", cancel=cancel)
    assert "cancelled" in response.error_message and took < 2.5  # before the server's answer
    wait_for(lambda: server.seen("DELETE"))
    assert server.seen("DELETE")[0].path == f"/api/v1/data/{job.id}" and job.cancelled
