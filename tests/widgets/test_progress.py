"""The run progress consumer: state from run events, the text line, the widget bar, front-end choice."""

from __future__ import annotations

import io
import re
import time

import pytest

from aix_jupyter.core.errors import ConfigurationError
from aix_jupyter.core.events import RunEvent
from aix_jupyter.progress import SANITIZE_REGEX, TextProgress, resolve_mode
from aix_jupyter.widgets.progress import WidgetProgress, make_progress

MODEL = "local/sentiment-vader"


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def still_bar(clock: FakeClock) -> WidgetProgress:
    """A widget bar on the fake clock, without its ticker thread (the test calls ``tick()``)."""
    progress = WidgetProgress(MODEL, display=False, clock=clock)
    progress.tick_interval = None
    return progress


def ev(kind, elapsed=0.0, **kw) -> RunEvent:
    return RunEvent(kind=kind, model_id=MODEL, elapsed=elapsed, **kw)


def test_headless_text_writes_only_the_final_line():
    out = io.StringIO()
    progress = TextProgress(MODEL, stream=out, live=False)
    progress(ev("submitted", poll_url="http://127.0.0.1:1/poll/abc"))
    for i in range(1, 4):
        progress(ev("polled", 0.1 * i, polls=i))
    progress(ev("finished", 0.4215, polls=3))
    progress.close()
    assert out.getvalue() == "[aix] local/sentiment-vader finished (3 polls, 0.42 s)\n"
    assert progress.poll_url == "http://127.0.0.1:1/poll/abc"


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([ev("chunk", 0.1), ev("chunk", 0.2), ev("finished", 1.2)], "finished (2 chunks, 1.20 s)"),
        (
            [ev("polled", 0.3, polls=1), ev("cancelled", 2.02, polls=1, message="run cancelled by the user")],
            "cancelled (1 poll, 2.02 s): run cancelled by the user",
        ),
        ([ev("failed", 0.05, message="parameter 'x'\n bad")], "failed (0 polls, 0.05 s): parameter 'x' bad"),
    ],
)
def test_final_line_per_outcome(events, expected):
    out = io.StringIO()
    with TextProgress(MODEL, stream=out, live=False) as progress:
        for event in events:
            progress(event)
    assert out.getvalue() == f"[aix] {MODEL} {expected}\n"


def test_sanitize_regex_normalises_the_varying_part():
    lines = [
        "[aix] m finished (1 poll, 0.05 s)",
        "[aix] m finished (12 polls, 10.50 s)",
        "[aix] m finished (57 chunks, 1.20 s)",
    ]
    assert {re.sub(SANITIZE_REGEX, "(N, T s)", line) for line in lines} == {"[aix] m finished (N, T s)"}


def test_live_text_redraws_in_place_and_ends_with_a_newline():
    out = io.StringIO()
    progress = TextProgress(MODEL, stream=out, live=True)
    progress.min_interval, progress.tick_interval = 0.0, None
    progress(ev("submitted"))
    progress(ev("polled", 0.3, polls=1, progress=0.45, eta=3.0))
    progress(ev("polled", 0.6, polls=2, progress={"done": 3, "total": 4}))
    progress(ev("finished", 0.9, polls=3))
    progress.close()
    text = out.getvalue()
    assert text.startswith("\r[aix] local/sentiment-vader running (0 polls")
    assert "running 45% ETA 3.0 s (1 poll" in text
    assert "running 75% (2 polls" in text
    assert text.endswith("finished (3 polls, 0.90 s)" + " " * 3 + "\n")  # padded over the longer line
    assert text.count("\n") == 1
    # what a notebook shows once the carriage returns are applied (as nbval does): the final line
    shown = re.sub(r"^.*\r(?=[^\n])", "", text, flags=re.M).rstrip()
    assert shown == f"[aix] {MODEL} finished (3 polls, 0.90 s)"


def test_updates_between_draws_are_rate_limited_but_final_states_never():
    out = io.StringIO()
    progress = TextProgress(MODEL, stream=out, live=True)
    progress.min_interval, progress.tick_interval = 60.0, None
    progress(ev("submitted"))
    for i in range(1, 50):
        progress(ev("polled", 0.01 * i, polls=i, progress=i / 50))
    progress(ev("finished", 0.6, polls=50))
    assert out.getvalue().count("\r") == 2  # submitted and finished; the 49 polls in between coalesced
    assert out.getvalue().endswith("finished (50 polls, 0.60 s)\n")


def test_closed_while_running_says_stopped_and_late_events_change_nothing():
    out = io.StringIO()
    progress = TextProgress(MODEL, stream=out, live=False)
    progress(ev("polled", 0.2, polls=1))
    progress.close()
    assert out.getvalue().startswith("[aix] local/sentiment-vader stopped (1 poll, ")
    done = TextProgress(MODEL, stream=io.StringIO(), live=False)
    done(ev("finished", 0.5, polls=2))
    done(ev("polled", 0.7, polls=5))
    assert (done.state, done.polls) == ("finished", 2)


def test_nothing_written_when_closed_before_any_event():
    out = io.StringIO()
    TextProgress(MODEL, stream=out, live=False).close()
    assert out.getvalue() == ""


def test_widget_bar_states_and_colours(clock):
    progress = still_bar(clock)
    assert repr(progress.widget) == f"[aix] {MODEL} waiting"
    assert progress.label.value == "ready"
    progress(ev("submitted"))
    assert "aix-indeterminate" in progress.bar._dom_classes  # no server progress: indeterminate
    assert progress.bar.value == 0.0
    assert progress.label.value == "running · 0 polls · 0.00 s"
    clock.advance(0.5)  # past min_interval (0.3 s): the next event is drawn
    progress(ev("polled", 0.5, polls=2, progress=0.5, eta=12))
    assert "aix-indeterminate" not in progress.bar._dom_classes
    assert progress.bar.value == 0.5
    assert progress.label.value == "running 50% ETA 12 s · 2 polls · 0.50 s"
    progress(ev("finished", 0.9, polls=3))
    assert (progress.bar.value, progress.bar.bar_style) == (1.0, "success")
    assert progress.label.value == "finished · 3 polls · 0.90 s"
    assert repr(progress.widget) == f"[aix] {MODEL} finished (3 polls, 0.90 s)"
    progress.reset()
    assert (progress.state, progress.bar.value, progress.bar.bar_style, progress.label.value) == (
        "waiting",
        0.0,
        "",
        "ready",
    )
    progress(ev("cancelled", 1.0, polls=1, message="cancelled"))
    assert progress.bar.bar_style == "warning"
    progress.reset()
    progress(ev("failed", 1.0, message="boom <b>"))
    assert progress.bar.bar_style == "danger"
    assert progress.label.value.endswith("boom &lt;b&gt;")  # escaped: the label is HTML
    progress.close()


def test_widget_rate_limits_redraws_between_events(clock):
    progress = still_bar(clock)
    progress(ev("submitted"))
    clock.advance(0.1)
    progress(ev("polled", 0.1, polls=1, progress=0.2))
    assert progress.bar.value == 0.0  # 0.1 s after the last draw: not drawn (min_interval 0.3 s)
    assert progress.progress == 0.2  # ... though the state has it
    clock.advance(0.25)
    progress(ev("polled", 0.35, polls=2, progress=0.4))
    assert progress.bar.value == 0.4 and progress.label.value == "running 40% · 2 polls · 0.35 s"
    clock.advance(0.01)
    progress(ev("finished", 0.36, polls=2))  # a final state is always drawn
    assert progress.label.value == "finished · 2 polls · 0.36 s"


def test_tick_redraws_the_elapsed_time_unless_an_event_just_did(clock):
    progress = still_bar(clock)
    progress(ev("submitted"))
    assert progress.label.value == "running · 0 polls · 0.00 s"
    clock.advance(0.2)
    assert progress.tick(0.5) is True
    assert progress.label.value == "running · 0 polls · 0.00 s"  # drawn 0.2 s ago: no extra message
    clock.advance(1.1)
    assert progress.tick(0.5) is True
    assert progress.label.value == "running · 0 polls · 1.3 s"  # counts on between polls
    clock.advance(60.5)
    progress.tick(0.5)
    assert progress.label.value == "running · 0 polls · 1 min 02 s"
    progress(ev("finished", 62.0))
    assert progress.tick(0.5) is False  # over: the ticker thread stops


def test_eta_counts_down_between_polls(clock):
    progress = TextProgress(MODEL, stream=io.StringIO(), live=False, clock=clock)
    progress(ev("polled", 1.0, polls=1, progress=0.25, eta=9.0))
    clock.advance(4.0)
    assert progress.status() == "running 25% ETA 5.0 s"
    clock.advance(10.0)
    assert progress.status() == "running 25% ETA 0.00 s"  # never negative


@pytest.mark.slow
def test_widget_ticker_thread_redraws_without_events():
    """End to end with the real clock and thread; generous bound, the loop ends as soon as it ticks."""
    progress = WidgetProgress(MODEL, display=False)
    progress(ev("submitted"))
    first = progress.label.value
    deadline = time.monotonic() + 20
    while progress.label.value == first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert progress.label.value != first  # the ticker redrew the elapsed time without any event
    progress(ev("finished", 1.3))
    progress.close()
    assert progress._ticker is None


def test_mode_resolution(monkeypatch):
    monkeypatch.delenv("AIX_FRONTEND", raising=False)
    assert resolve_mode("auto") == "text"  # plain Python, no kernel
    assert isinstance(make_progress(MODEL), TextProgress)
    assert isinstance(make_progress(MODEL, mode="widget", display=False), WidgetProgress)
    monkeypatch.setenv("AIX_FRONTEND", "live")
    assert resolve_mode() == "widget"
    assert resolve_mode("text") == "text"  # the argument wins over the environment
    monkeypatch.setenv("AIX_FRONTEND", "fancy")
    with pytest.raises(
        ConfigurationError, match="AIX_FRONTEND must be one of auto, live, headless, terminal; got 'fan"
    ):
        resolve_mode()
    with pytest.raises(ConfigurationError, match="progress mode must be one of"):
        resolve_mode("bar")
