"""``%aix usage`` counts every run of the kernel once: the magics, the Python API and ModelWidget.

The ledger is a session observer of the core (``core.events.observe_session``), subscribed by
``%load_ext``; these tests run real models of the embedded backend through each front end.
"""

from __future__ import annotations

import asyncio

import pytest

from aix_jupyter import ModelFactory, ModelWidget, compare
from aix_jupyter.core import events
from aix_jupyter.core.events import RunOutcome, observe_session

VADER = "local/sentiment-vader"
LANGID = "local/langid-langdetect"
COLUMNS = ["runs", "streams", "batches", "items", "failed", "credits"]


@pytest.fixture
def usage(cell):
    def read() -> dict[str, dict[str, str]]:
        out = cell("%aix usage")
        assert out.error is None, out.error
        return {row[0]: dict(zip(COLUMNS, row[1:], strict=True)) for row in out.result.rows}

    return read


def counts(runs=0, streams=0, batches=0, items=0, failed=0):
    return {
        "runs": str(runs),
        "streams": str(streams),
        "batches": str(batches),
        "items": str(items),
        "failed": str(failed),
        "credits": "0",
    }


@pytest.mark.slow
def test_python_api_widget_and_magic_runs_are_each_counted_once(cell, usage):
    vader = ModelFactory.get(VADER)
    assert vader.run("I love it").data == "POSITIVE"  # Model.run
    assert asyncio.run(vader.arun("I hate it")).data == "NEGATIVE"  # its async twin
    assert usage() == {VADER: counts(runs=2, items=2)}

    result = vader.map(["good", {"nope": 1}, "fine"])  # the dict lacks 'data': that item fails
    assert result.failed == [1]
    assert usage()[VADER] == counts(runs=2, batches=1, items=5, failed=1)  # items, not also runs

    compare([VADER, LANGID], "hello world")
    assert usage()[VADER] == counts(runs=2, batches=2, items=6, failed=1)
    assert usage()[LANGID] == counts(batches=1, items=1)

    typewriter = ModelFactory.get("local/typewriter")
    assert "".join(c.data for c in typewriter.run_stream("one two", {"delay": 0}) if c.data) == "one two"
    assert usage()["local/typewriter"] == counts(streams=1, items=1)

    widget = ModelWidget(VADER)
    assert widget.run(data="What a lovely day").data == "POSITIVE"
    widget.close()
    assert cell(f"%aix run {VADER} I love it").error is None
    assert cell("%aix stream local/typewriter --delay 0 three four").error is None
    assert usage()[VADER] == counts(runs=4, batches=2, items=8, failed=1)
    assert usage()["local/typewriter"] == counts(streams=2, items=2)


@pytest.mark.slow
def test_a_job_is_one_run_however_often_it_is_polled(cell, ip, usage):
    countdown = ModelFactory.get("local/countdown")
    job = countdown.run_async({"data": "a", "seconds": 0.3})  # submitted: one run, its end not seen yet
    assert job.url and usage()["local/countdown"] == counts(runs=1, items=1)
    assert countdown.sync_poll(job.url).data == "a"
    assert countdown.poll(job.url).data == "a"  # polled again after its end: nothing more
    job = countdown.run_async({"data": "b", "seconds": 1.5})
    late = countdown.sync_poll(job.url, timeout=0.3)  # gave up waiting: the job goes on
    assert not late.completed and late.url == job.url
    assert usage()["local/countdown"] == counts(runs=2, items=2)
    ip.user_ns["url"] = late.url
    out = cell("%aix poll {url} --wait --timeout 30")  # its end, seen by the magic: no second run
    assert out.error is None and out.result.data == "b"
    assert countdown.poll(late.url).data == "b"
    assert usage() == {"local/countdown": counts(runs=2, items=2)}  # (the magic's poll knew no model)
    failed = countdown.run("c", parameters={"seconds": 0.1, "fail": True})
    assert failed.status.value == "FAILED"
    assert usage()["local/countdown"] == counts(runs=3, items=3, failed=1)


def test_the_ledger_follows_the_extension_and_a_failing_observer_only_warns(ip):
    magics = ip.magics_manager.registry["AixMagics"]
    assert magics.ledger.record in events._observers  # subscribed by %load_ext
    ip.run_line_magic("unload_ext", "aix_jupyter")
    assert magics.ledger.record not in events._observers
    ip.run_line_magic("load_ext", "aix_jupyter")

    def broken(outcome: RunOutcome) -> None:
        raise ValueError("boom")

    remove = observe_session(broken)
    try:
        with pytest.warns(RuntimeWarning, match="boom"):
            events.report_outcome(RunOutcome("run", "m", "SUCCESS"))
    finally:
        remove()
    assert broken not in events._observers
