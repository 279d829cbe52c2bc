"""A stopped batch leaves no job running: the jobs its run POSTs still in flight start are cancelled.

The loopback server starts a job as soon as a run POST arrives but answers (with the job's poll URL)
only ``ANSWER`` seconds later. Whatever stops the batch while those POSTs are in flight (the cancel
event, the timeout, Ctrl-C in a sync ``map``, cancelling the ``amap`` task), control comes back
before the answers, and every job they started is then cancelled on the server (``DELETE``) --
as a single ``Model.run`` does (``Call.cancel_orphan``).
"""

from __future__ import annotations

import _thread
import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from aix_jupyter.core.batch import BatchInterrupted, BatchResult
from aix_jupyter.core.model import Model
from tests.core.batchserver import BatchServer
from tests.core.conftest import KEY

pytestmark = pytest.mark.timeout(60)

ANSWER = 2.0  # seconds between a job's start and the run POST's answer carrying its poll URL
INPUTS = [f"x{i}" for i in range(6)]
IN_FLIGHT = 3  # the batch's concurrency: the POSTs in flight when it is stopped


@pytest.fixture
def server() -> Iterator[BatchServer]:
    with BatchServer(latency=30.0, polled=True, answer_delay=ANSWER) as srv:
        yield srv


@pytest.fixture
def model(server: BatchServer) -> Model:
    return Model("echo", url=server.run_url, api_key=KEY)


def once_in_flight(server: BatchServer, then: Callable[[], Any]) -> dict[str, float]:
    """In another thread: once ``IN_FLIGHT`` jobs started (their answers pending), ``then()``."""
    stamp: dict[str, float] = {}

    def watch() -> None:
        while len(server.started) < IN_FLIGHT:
            time.sleep(0.005)
        time.sleep(0.1)
        stamp["at"] = time.monotonic()
        then()

    threading.Thread(target=watch, daemon=True).start()
    return stamp


def amap_timed(model: Model, stamp: dict[str, float], **kw: Any) -> tuple[BatchResult, float]:
    """``amap`` on a loop of its own; the seconds from ``stamp`` to its return (not the loop's end)."""

    async def go() -> tuple[BatchResult, float]:
        result = await model.amap(INPUTS, concurrency=IN_FLIGHT, **kw)
        return result, time.monotonic() - stamp.get("at", time.monotonic())

    return asyncio.run(go())


def map_timed(mode: str, model: Model, stamp: dict[str, float], **kw: Any) -> tuple[BatchResult, float]:
    if mode == "async":
        return amap_timed(model, stamp, **kw)
    result = model.map(INPUTS, concurrency=IN_FLIGHT, **kw)
    return result, time.monotonic() - stamp.get("at", time.monotonic())


def assert_no_job_left(server: BatchServer) -> None:
    """Every job started was cancelled by DELETE (the server saw it), and none is running."""
    deadline = time.monotonic() + ANSWER + 5.0
    while len(server.deleted) < IN_FLIGHT and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(server.started) == IN_FLIGHT
    assert sorted(server.deleted) == sorted(server.started), "a started job was left running"
    assert server.open == 0


def assert_cut_in_flight(result: BatchResult, why: str) -> None:
    assert len(result) == len(INPUTS) and not result.ok
    assert all("cancelled" in r.error_message for r in result[:IN_FLIGHT])
    assert all(f"Not run: the batch {why}" in r.error_message for r in result[IN_FLIGHT:])


def test_the_cancel_event_cancels_the_jobs_of_the_posts_in_flight(
    mode: str, server: BatchServer, model: Model
):
    cancel = threading.Event()
    stamp = once_in_flight(server, cancel.set)
    result, took = map_timed(mode, model, stamp, cancel=cancel)
    assert took < ANSWER - 0.5, took  # back before the server answered
    assert result.stopped == "cancelled"
    assert_cut_in_flight(result, "was cancelled")
    assert_no_job_left(server)


def test_the_timeout_cancels_the_jobs_of_the_posts_in_flight(mode: str, server: BatchServer, model: Model):
    start = time.monotonic()
    result, _ = map_timed(mode, model, {}, timeout=0.6)
    took = time.monotonic() - start if mode == "sync" else result.wall_time
    assert took < ANSWER - 0.2, took
    assert result.stopped == "timeout"
    assert_cut_in_flight(result, "timeout of 0.6 s ran out")
    assert_no_job_left(server)


def test_ctrl_c_in_a_sync_map_cancels_the_jobs_of_the_posts_in_flight(server: BatchServer, model: Model):
    stamp = once_in_flight(server, _thread.interrupt_main)
    with pytest.raises(BatchInterrupted) as info:
        model.map(INPUTS, concurrency=IN_FLIGHT)
    took = time.monotonic() - stamp["at"]
    assert took < ANSWER - 0.5, took
    assert info.value.results.stopped == "interrupted"
    assert_cut_in_flight(info.value.results, "was interrupted")
    assert_no_job_left(server)


def test_cancelling_the_amap_task_cancels_the_jobs_of_the_posts_in_flight(server: BatchServer, model: Model):
    async def main() -> float:
        task = asyncio.ensure_future(model.amap(INPUTS, concurrency=IN_FLIGHT))
        while len(server.started) < IN_FLIGHT:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.1)
        start = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - start

    took = asyncio.run(main())
    assert took < ANSWER - 0.5, took
    assert_no_job_left(server)


def test_cancelling_the_amap_task_in_a_loop_that_goes_on_cancels_them_too(server: BatchServer, model: Model):
    """In a notebook the loop outlives the cancelled task: the answers are awaited there."""

    async def main() -> None:
        task = asyncio.ensure_future(model.amap(INPUTS, concurrency=IN_FLIGHT))
        while len(server.started) < IN_FLIGHT:
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        deadline = time.monotonic() + ANSWER + 5.0
        while len(server.deleted) < IN_FLIGHT and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert_no_job_left(server)


def test_a_single_arun_cancelled_while_its_post_is_in_flight_cancels_its_job(server: BatchServer):
    model = Model("echo", url=server.run_url, api_key=KEY)
    cancel = threading.Event()

    async def main() -> float:
        task = asyncio.ensure_future(model.arun("x", cancel=cancel))
        while not server.started:
            await asyncio.sleep(0.005)
        start = time.monotonic()
        cancel.set()
        response = await task
        assert "cancelled" in response.error_message
        return time.monotonic() - start

    assert asyncio.run(main()) < ANSWER - 0.5
    deadline = time.monotonic() + ANSWER + 5.0
    while not server.deleted and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.deleted == server.started and len(server.started) == 1 and server.open == 0
