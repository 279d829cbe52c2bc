"""Batch runs (Model.map / amap) against a real loopback wire server that counts open jobs."""

from __future__ import annotations

import _thread
import asyncio
import itertools
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from aix_jupyter.core.batch import BatchEvent, BatchInterrupted, BatchResult, Limiter
from aix_jupyter.core.errors import ParameterError
from aix_jupyter.core.model import Model
from tests.core.batchserver import BatchServer
from tests.core.conftest import KEY

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def bserver() -> Iterator[BatchServer]:
    with BatchServer() as srv:
        yield srv


@pytest.fixture
def bmodel(bserver: BatchServer) -> Model:
    return Model("echo", name="Echo", url=bserver.run_url, api_key=KEY)


def bmap(mode: str, model: Model, *args: Any, **kw: Any) -> BatchResult:
    if mode == "sync":
        return model.map(*args, **kw)
    return asyncio.run(model.amap(*args, **kw))


def speed(data: Any) -> float:
    """Inputs named fast* take 50 ms, slow* 30 s."""
    return 30.0 if str(data).startswith("slow") else 0.05


def after_posts(server: BatchServer, count: int, then: Any, extra: float = 0.0) -> threading.Thread:
    """Call ``then()`` once the server has admitted ``count`` runs (and ``extra`` s more)."""

    def watch() -> None:
        while sum(server.runs.values()) < count:
            time.sleep(0.005)
        time.sleep(extra)
        then()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


# -- results ---------------------------------------------------------------------------------------


def test_order_is_the_input_order_whatever_the_finish_order(mode: str, bserver: BatchServer, bmodel: Model):
    bserver.latency = lambda data: 0.01 * (int(data[1:]) % 7)  # later items often finish first
    inputs = [f"x{i}" for i in range(40)]
    result = bmap(mode, bmodel, inputs, concurrency=8)
    assert isinstance(result, BatchResult) and len(result) == 40
    assert result.data == [f"echo: {x}" for x in inputs]
    assert [r.data for r in result] == result.data and result[3].data == "echo: x3"
    assert result.ok and result.failed == [] and result.stopped is None
    assert result.used_credits == pytest.approx(0.4)
    assert result.wall_time > 0
    assert all(count == 1 for count in bserver.runs.values()) and len(bserver.runs) == 40


@pytest.mark.parametrize("polled", [False, True], ids=["answered", "polled"])
def test_concurrency_is_never_exceeded_on_the_server(mode: str, polled: bool):
    with BatchServer(latency=0.15, polled=polled, hold=False) as server:
        model = Model("echo", url=server.run_url, api_key=KEY)
        result = bmap(mode, model, [f"x{i}" for i in range(24)], concurrency=5)
    assert result.ok, result
    assert server.max_open == 5  # reached, never exceeded (a polled job counts until its end)
    if polled:
        assert len(server.seen("GET", "/api/v1/data/")) >= 24


def test_a_429_storm_is_survived_with_every_input_run_exactly_once(mode: str):
    events: list[BatchEvent] = []
    with BatchServer(latency=0.05, cap=3, retry_after=0.05) as server:
        server.storm = 10  # and the first ten are refused whatever the load
        model = Model("echo", url=server.run_url, api_key=KEY)
        inputs = [f"x{i}" for i in range(40)]
        result = bmap(mode, model, inputs, concurrency=12, on_event=events.append)
    assert result.ok, result
    assert result.data == [f"echo: {x}" for x in inputs]
    assert server.refused >= 10
    assert sorted(server.runs) == sorted(inputs) and set(server.runs.values()) == {1}
    lowered = [e.concurrency for e in events if e.kind == "concurrency"]
    assert lowered and min(lowered) < 12 and max(e.concurrency for e in events) <= 12


def test_retry_after_is_honoured_before_the_next_submission(bserver: BatchServer, bmodel: Model):
    bserver.storm, bserver.retry_after = 1, 0.4
    result = bmodel.map(["a", "b"], concurrency=1)
    assert result.ok
    posts = bserver.seen("POST", "/api/v2/execute/")
    assert len(posts) == 3
    assert posts[1].at - posts[0].at >= 0.39


def test_failing_items_do_not_stop_the_rest_and_retry_failed_reruns_only_them(
    mode: str, bserver: BatchServer, bmodel: Model
):
    bad = {f"x{i}" for i in range(0, 50, 10)}  # 10 %
    bserver.fail_if = lambda data: data in bad
    inputs = [f"x{i}" for i in range(50)]
    result = bmap(mode, bmodel, inputs, concurrency=6)
    assert not result.ok
    assert result.failed == [0, 10, 20, 30, 40]
    assert result.data[1] == "echo: x1" and result.data[10] is None
    assert "cannot process x10" in result[10].error_message
    assert "5 failed" in repr(result) and "cannot process x0" in repr(result)
    assert "cannot process x0" in result._repr_html_()

    bserver.fail_if = None
    again = result.retry_failed() if mode == "sync" else asyncio.run(result.aretry_failed())
    assert again.ok and again.reused == 45
    assert again.data == [f"echo: {x}" for x in inputs]
    assert {x for x, n in bserver.runs.items() if n == 2} == bad
    assert all(bserver.runs[x] == 1 for x in inputs if x not in bad)


def test_resume_reuses_the_successes_of_the_same_inputs(bserver: BatchServer, bmodel: Model):
    first = bmodel.map(["a", "b", "c"])
    second = bmodel.map(["a", "B", "c", "d"], resume=first)
    assert second.data == ["echo: a", "echo: B", "echo: c", "echo: d"] and second.reused == 2
    assert bserver.runs == {"a": 1, "b": 1, "c": 1, "B": 1, "d": 1}
    other = Model("other", url=bserver.run_url, api_key=KEY)
    with pytest.raises(ParameterError, match="from model 'echo'"):
        other.map(["a"], resume=first)


def test_an_input_the_model_cannot_take_fails_alone(bserver: BatchServer):
    model = Model(
        "echo",
        url=bserver.run_url,
        api_key=KEY,
        model_params={"text": {"required": True, "dataType": "text"}, "n": {"dataType": "number"}},
    )
    result = model.map(["ok", {"text": "fine", "n": "many"}, "also ok"])
    assert result.failed == [1]
    assert "parameter 'n'" in result[1].error_message
    assert result.data[0] == "echo: ok" and result.data[2] == "echo: also ok"


# -- stopping --------------------------------------------------------------------------------------


def _mixed() -> list[str]:
    return [f"fast{i}" for i in range(6)] + [f"slow{i}" for i in range(10)]


def test_cancel_returns_within_a_second_deleting_the_jobs_in_flight(mode: str):
    cancel = threading.Event()
    with BatchServer(latency=speed, polled=True) as server:
        model = Model("echo", url=server.run_url, api_key=KEY)
        stamp: dict[str, float] = {}
        after_posts(server, 10, lambda: (stamp.setdefault("t", time.monotonic()), cancel.set()), 0.2)
        result = bmap(mode, model, _mixed(), concurrency=4, cancel=cancel)
        took = time.monotonic() - stamp["t"]
        deleted = list(server.deleted)
    assert took < 1.0, took
    assert result.stopped == "cancelled" and not result.ok and len(result) == 16
    assert result.data[:6] == [f"echo: fast{i}" for i in range(6)]  # finished results kept
    in_flight = [i for i, r in enumerate(result) if "Run cancelled" in r.error_message]
    assert [result.inputs[i] for i in in_flight] == ["slow0", "slow1", "slow2", "slow3"]
    assert len(deleted) == 4 and server.open == 0
    assert all("Not run: the batch was cancelled" in r.error_message for r in result[10:])


def test_ctrl_c_in_a_sync_map_raises_batch_interrupted_with_the_partial_result():
    with BatchServer(latency=speed, polled=True) as server:
        model = Model("echo", url=server.run_url, api_key=KEY)
        stamp: dict[str, float] = {}
        after_posts(
            server, 10, lambda: (stamp.setdefault("t", time.monotonic()), _thread.interrupt_main()), 0.2
        )
        with pytest.raises(BatchInterrupted) as info:
            model.map(_mixed(), concurrency=4)
        took = time.monotonic() - stamp["t"]
        deleted = list(server.deleted)
    assert took < 1.0, took
    assert isinstance(info.value, KeyboardInterrupt)
    partial = info.value.results
    assert partial.stopped == "interrupted" and len(partial) == 16
    assert partial.data[:6] == [f"echo: fast{i}" for i in range(6)]
    assert len(deleted) == 4


def test_cancelling_the_amap_task_deletes_the_jobs_in_flight_within_a_second():
    with BatchServer(latency=speed, polled=True) as server:
        model = Model("echo", url=server.run_url, api_key=KEY)

        async def main() -> float:
            task = asyncio.ensure_future(model.amap(_mixed(), concurrency=4))
            while sum(server.runs.values()) < 10:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            start = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return time.monotonic() - start

        took = asyncio.run(main())
        deleted = list(server.deleted)
    assert took < 1.0, took
    assert len(deleted) == 4


def test_the_timeout_bounds_the_whole_batch(mode: str):
    with BatchServer(latency=speed, polled=True) as server:
        model = Model("echo", url=server.run_url, api_key=KEY)
        start = time.monotonic()
        result = bmap(mode, model, _mixed(), concurrency=4, timeout=1.0)
        took = time.monotonic() - start
        deleted = list(server.deleted)
    assert took < 2.0, took
    assert result.stopped == "timeout" and len(result) == 16
    assert result.data[:6] == [f"echo: fast{i}" for i in range(6)]
    cut = [r.error_message for r in result if "cancelled" in r.error_message and "timeout" in r.error_message]
    assert len(cut) == 4 and len(deleted) == 4
    assert all("Not run: the batch timeout of 1 s ran out first" in r.error_message for r in result[10:])


# -- inputs ----------------------------------------------------------------------------------------


def test_a_generator_is_consumed_lazily(bserver: BatchServer, bmodel: Model):
    pulled = itertools.count()
    taken = [0]

    def endless() -> Iterator[str]:
        for i in itertools.count():  # infinite: materialising it would never end
            taken[0] = next(pulled) + 1
            yield f"x{i}"

    cancel = threading.Event()
    seen: list[tuple[int, int]] = []

    def hook(event: BatchEvent) -> None:
        seen.append((taken[0], event.done))
        if event.done >= 30:
            cancel.set()

    bserver.latency = 0.01
    result = asyncio.run(bmodel.amap(endless(), concurrency=4, cancel=cancel, on_event=hook))
    assert result.stopped == "cancelled" and result.data[:30] == [f"echo: x{i}" for i in range(30)]
    assert all(pulled_so_far <= done + 4 for pulled_so_far, done in seen)
    assert len(result) == taken[0] <= 34


def test_a_series_keeps_its_index(mode: str, bmodel: Model):
    pd = pytest.importorskip("pandas")
    series = pd.Series(["a", "b", "c"], index=["r1", "r2", "r3"], name="text")
    result = bmap(mode, bmodel, series)
    assert result.input_index == ["r1", "r2", "r3"]
    assert result.index(result[1]) == 1  # still a Sequence
    frame = result.to_pandas()
    assert list(frame.index) == ["r1", "r2", "r3"]
    assert list(frame.columns) == ["input", "status", "data", "error", "credits", "run_time"]
    assert frame.loc["r2", "data"] == "echo: b" and frame.loc["r2", "status"] == "SUCCESS"


def test_numbers_from_a_series_are_sent_as_numbers(bserver: BatchServer, bmodel: Model):
    pd = pytest.importorskip("pandas")
    result = bmodel.map(pd.Series([1, 2]))
    assert result.ok and result.data == ["echo: 1", "echo: 2"]  # in input order
    sent = [r.json()["data"] for r in bserver.seen("POST")]  # both in flight at once: in any order
    assert sorted(sent) == [1, 2] and all(type(x) is int for x in sent)


def test_to_pandas_without_pandas_says_so(monkeypatch: pytest.MonkeyPatch, bmodel: Model):
    result = bmodel.map(["a"])
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"needs pandas.*pip install pandas"):
        result.to_pandas()


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ("one text", "single text"),
        ({"text": "x"}, "single dict"),
        (42, "iterable of inputs"),
    ],
)
def test_inputs_that_would_iterate_wrongly_are_refused(bserver: BatchServer, bmodel: Model, inputs, message):
    with pytest.raises(ParameterError, match=message):
        bmodel.map(inputs)
    assert bserver.requests == []


def test_a_dataframe_is_refused_naming_the_column_to_pass(bmodel: Model):
    pd = pytest.importorskip("pandas")
    with pytest.raises(ParameterError, match=r"df\['text'\]"):
        bmodel.map(pd.DataFrame({"text": ["a"]}))


def test_parameters_are_validated_once_before_anything_is_sent(bserver: BatchServer):
    model = Model(
        "echo", url=bserver.run_url, api_key=KEY, model_params={"temperature": {"dataType": "number"}}
    )
    with pytest.raises(ParameterError, match="unknown parameter 'top_k'"):
        model.map(["a", "b"], {"top_k": 3})
    with pytest.raises(ParameterError, match="temperature"):
        model.map(["a", "b"], {"temperature": "hot"})
    with pytest.raises(ParameterError, match="concurrency"):
        model.map(["a"], concurrency=0)
    with pytest.raises(ParameterError, match="timeout"):
        model.map(["a"], timeout=-1)
    assert bserver.requests == []
    result = model.map(["a", "b"], {"temperature": 0.5})
    assert result.ok and all(r.json()["temperature"] == 0.5 for r in bserver.seen("POST"))


# -- where it runs ---------------------------------------------------------------------------------


def test_map_works_inside_a_running_event_loop_and_from_a_thread(bmodel: Model):
    async def in_a_cell() -> BatchResult:
        asyncio.get_running_loop()  # as in a notebook: this thread runs a loop
        return bmodel.map(["a", "b"])

    assert asyncio.run(in_a_cell()).data == ["echo: a", "echo: b"]
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.setdefault("r", bmodel.map(["c"])))
    thread.start()
    thread.join(20)
    assert box["r"].data == ["echo: c"]


def test_events_carry_the_item_index_and_the_batch_counts(mode: str, bserver: BatchServer, bmodel: Model):
    events: list[BatchEvent] = []
    threads: set[int] = set()

    def hook(event: BatchEvent) -> None:
        events.append(event)
        threads.add(threading.get_ident())

    bserver.fail_if = lambda data: data == "b"
    bmap(mode, bmodel, ["a", "b", "c"], concurrency=2, on_event=hook)
    kinds = [e.kind for e in events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert events[0].total == 3 and events[0].concurrency == 2
    runs = [e for e in events if e.kind == "run"]
    assert {e.index for e in runs} == {0, 1, 2} and {e.run.kind for e in runs} >= {"submitted", "finished"}
    assert [e.index for e in events if e.kind == "item_failed"] == [1]
    assert sorted(e.index for e in events if e.kind == "item_finished") == [0, 2]
    last = events[-1]
    assert (last.done, last.failed, last.in_flight) == (3, 1, 0)
    assert last.used_credits == pytest.approx(0.02)
    assert all(e.in_flight <= 2 for e in events)
    assert last.rate == pytest.approx(3 / last.elapsed) and last.eta == 0
    assert events[0].eta is None  # nothing ended yet
    assert threads == {threading.get_ident()}  # sync map: the hook runs in the caller's thread


# -- the concurrency controller (pure) -------------------------------------------------------------


def test_limiter_halves_once_per_round_and_grows_back_slowly():
    limiter = Limiter(16)
    assert limiter.effective == 16 and limiter.can_start(0.0)
    assert limiter.pushed_back(sent_at=1.0, now=2.0, delay=0.5)
    assert limiter.effective == 8
    assert not limiter.can_start(2.4) and limiter.can_start(2.5)  # Retry-After honoured
    assert not limiter.pushed_back(sent_at=1.5, now=2.1, delay=0.0)  # same round: no second cut
    assert limiter.effective == 8
    assert limiter.pushed_back(sent_at=2.6, now=3.0, delay=0.0)
    assert limiter.effective == 4
    for _ in range(3):
        limiter.succeeded()
    assert limiter.effective == 4  # +1/limit each: about +1 per round of successes
    for _ in range(200):
        limiter.succeeded()
    assert limiter.effective == 16 and limiter.limit == 16.0  # never above the maximum
    for i in range(10):
        limiter.pushed_back(sent_at=10.0 + i, now=10.0 + i, delay=0.0)
    assert limiter.effective == 1


def test_in_flight_never_exceeds_the_effective_limit():
    limiter = Limiter(2)
    limiter.in_flight = 2
    assert not limiter.can_start(0.0)
    limiter.in_flight = 1
    assert limiter.can_start(0.0)


def test_a_server_that_cannot_be_reached_fails_each_item_after_the_cores_retries():
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model = Model("echo", url=f"http://127.0.0.1:{port}/api/v1/execute", api_key=KEY)
    start = time.monotonic()
    result = model.map(["a", "b", "c"], concurrency=2, timeout=20)
    assert time.monotonic() - start < 5
    assert result.failed == [0, 1, 2] and result.stopped is None
    assert all("could not connect" in r.error_message for r in result)
