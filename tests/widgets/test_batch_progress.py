"""The batch progress consumer: counts from batch events, coalesced repaints, text line, widget bar."""

from __future__ import annotations

import io
import itertools
import re

import pytest

from aix_jupyter.core.batch import BatchEvent
from aix_jupyter.progress import BatchProgress, BatchTextProgress
from aix_jupyter.widgets.progress import BatchWidgetProgress, make_batch_progress
from widgets.test_progress import FakeClock

MODEL = "local/sentiment-vader"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def ev(kind, *, done=0, failed=0, total=4, in_flight=0, elapsed=0.0, model=MODEL, message="", credits=0.0):
    return BatchEvent(
        kind=kind,
        model_id=model,
        index=None,
        done=done,
        failed=failed,
        total=total,
        in_flight=in_flight,
        concurrency=2,
        used_credits=credits,
        elapsed=elapsed,
        message=message,
    )


class Counting(BatchProgress):
    """A batch progress that records what each repaint showed."""

    tick_interval = None

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(MODEL, clock=clock)
        self.painted: list[tuple[float, int, bool]] = []

    def _render(self, *, final: bool) -> None:
        self.painted.append((self.clock(), self.done, final))


def test_headless_text_writes_only_the_final_line(clock):
    out = io.StringIO()
    progress = BatchTextProgress(MODEL, stream=out, live=False, clock=clock)
    progress(ev("started"))
    for i in range(1, 5):
        clock.advance(0.2)
        progress(ev("item_finished", done=i, failed=int(i == 3), elapsed=0.2 * i, credits=0.5 * i))
    progress(ev("finished", done=4, failed=1, elapsed=0.8123, credits=2.0))
    progress.close()
    assert out.getvalue() == f"[aix] {MODEL} finished: 4/4 done, 1 failed · 2 credits (0.81 s)\n"
    assert progress.outcome == "partial"


def test_live_text_redraws_in_place_with_rate_eta_and_in_flight(clock):
    out = io.StringIO()
    progress = BatchTextProgress(MODEL, stream=out, live=True, clock=clock)
    progress.tick_interval = None
    progress(ev("started"))
    clock.advance(1.0)
    progress(ev("item_finished", done=2, in_flight=2, elapsed=1.0))
    assert out.getvalue().split("\r")[-1] == (
        f"[aix] {MODEL} running 2.0/s ETA 1.0 s: 2/4 done, 0 failed, 2 in flight (concurrency 2) "
        "· 0 credits (1.00 s)"
    )
    progress(ev("finished", done=4, elapsed=2.0))
    last = out.getvalue().split("\r")[-1]
    assert (
        last.endswith("\n")
        and last.rstrip() == f"[aix] {MODEL} finished: 4/4 done, 0 failed · 0 credits (2.00 s)"
    )


def test_repaints_are_coalesced_to_ten_a_second_whatever_the_item_rate(clock):
    progress = Counting(clock)
    progress(ev("started", total=3000))
    for i in range(1, 3001):  # 1 000 items a second for 3 s
        clock.advance(0.001)
        progress(ev("item_finished", done=i, total=3000, elapsed=i / 1000))
        progress.tick()
    progress(ev("finished", done=3000, total=3000, elapsed=3.0))
    times = [t for t, _, _ in progress.painted]
    busiest = max(sum(1 for u in times if t <= u < t + 1.0) for t in times)
    assert busiest <= 10, busiest  # in any one-second window, the first and the final repaint included
    assert len(times) >= 20  # and it does repaint while the batch goes on
    steps = itertools.pairwise([t for t, _, final in progress.painted if not final])
    assert all(b - a >= progress.min_interval - 1e-9 for a, b in steps)
    assert progress.painted[-1][1:] == (3000, True)  # the final state is drawn, once
    progress.close()
    assert sum(final for *_, final in progress.painted) == 1


def test_a_coalesced_update_is_drawn_by_the_next_tick(clock):
    progress = Counting(clock)
    progress(ev("started"))
    progress(ev("item_finished", done=1, elapsed=0.01))  # within min_interval of the first repaint
    assert progress.painted[-1][1] == 0
    assert progress.tick() and progress.painted[-1][1] == 0  # still too soon
    clock.advance(progress.min_interval)
    assert progress.tick()
    assert progress.painted[-1][1:] == (1, False)
    assert len(progress.painted) == 2
    assert progress.tick() and len(progress.painted) == 2  # nothing new: no repaint


def test_several_batches_add_up_and_end_when_all_have_finished(clock):
    progress = Counting(clock)
    progress(ev("started", model="a/x", total=2))
    progress(ev("started", model="b/y", total=2))
    progress(ev("finished", model="a/x", done=2, total=2, elapsed=0.5))
    assert progress.state == "running" and progress.total == 4 and progress.done == 2
    progress(ev("finished", model="b/y", done=2, failed=2, total=2, elapsed=0.7))
    assert progress.state == "finished" and progress.outcome == "partial" and progress.failed == 2
    assert progress.painted[-1][2] is True


def test_closed_before_the_batch_ended_says_stopped(clock):
    out = io.StringIO()
    progress = BatchTextProgress(MODEL, stream=out, live=False, clock=clock)
    progress(ev("started"))
    progress(ev("item_finished", done=1, in_flight=1, elapsed=0.3))
    progress.close()
    assert out.getvalue() == f"[aix] {MODEL} stopped (interrupted): 1/4 done, 0 failed · 0 credits (0.30 s)\n"
    assert progress.outcome == "stopped"


@pytest.mark.parametrize(
    ("done", "failed", "message", "style", "status"),
    [
        (4, 0, "", "success", "finished"),
        (4, 1, "", "warning", "finished"),
        (4, 4, "", "danger", "finished"),
        (4, 2, "timeout", "warning", "stopped (timeout)"),
    ],
)
def test_widget_final_state_shows_the_counts_coloured_by_outcome(clock, done, failed, message, style, status):
    progress = BatchWidgetProgress(MODEL, display=False, clock=clock)
    progress.tick_interval = None
    progress(ev("started"))
    assert progress.value == 0.0 and progress.bar_style == "info"
    clock.advance(0.5)
    progress(ev("item_finished", done=2, in_flight=2, elapsed=0.5))
    assert progress.value == 0.5 and "width:50.0%" in progress.html.value
    assert "2/4 done" in progress.html.value
    progress(ev("finished", done=done, failed=failed, elapsed=1.0, message=message, credits=1.5))
    assert progress.value == 1.0 and progress.bar_style == style
    assert f"class='aix-batch aix-{style}'" in progress.html.value and "width:100.0%" in progress.html.value
    label = f"{status} · {done}/4 done, {failed} failed · 1.5 credits · 1.0 s"
    assert progress.label_text() == label and label in progress.html.value
    assert (
        repr(progress.widget)
        == f"[aix] {MODEL} {status}: {done}/4 done, {failed} failed · 1.5 credits (1.00 s)"
    )


def test_widget_without_a_total_slides(clock):
    progress = BatchWidgetProgress(MODEL, display=False, clock=clock)
    progress.tick_interval = None
    assert repr(progress.widget) == f"[aix] {MODEL} waiting"
    progress(ev("started", total=None))
    assert "aix-indeterminate" in progress.html.value
    progress(ev("finished", total=None, done=3, elapsed=0.2))
    assert "aix-indeterminate" not in progress.html.value and progress.bar_style == "success"


def test_a_widget_repaint_changes_one_trait_of_one_widget(clock):
    progress = BatchWidgetProgress(MODEL, display=False, clock=clock)
    progress.tick_interval = None
    changes = []
    for child in progress.widget.children:
        child.observe(lambda change: changes.append(change["name"]))  # every synced trait change
    progress(ev("started"))
    clock.advance(0.2)
    progress(ev("item_finished", done=1, elapsed=0.2))
    progress(ev("finished", done=4, elapsed=0.3))
    assert progress.renders == 3 and changes == ["value"] * 3  # one comm message per repaint


def test_widget_closed_before_the_batch_began_says_so(clock):
    progress = BatchWidgetProgress(MODEL, display=False, clock=clock)
    progress.tick_interval = None
    assert progress.label_text() == "ready"
    progress.close()  # e.g. map raised before its first event
    assert progress.label_text() == "not started" and "not started" in progress.html.value
    assert progress.bar_style == "" and progress.value == 0.0


def test_make_batch_progress_follows_the_frontend(monkeypatch):
    monkeypatch.setenv("AIX_FRONTEND", "headless")
    assert type(make_batch_progress(MODEL)) is BatchTextProgress
    monkeypatch.setenv("AIX_FRONTEND", "live")
    assert type(make_batch_progress(MODEL, display=False)) is BatchWidgetProgress
    assert type(make_batch_progress(MODEL, mode="text")) is BatchTextProgress


@pytest.mark.slow
def test_a_real_batch_ends_with_one_line(clock):
    from aix_jupyter.core.factory import ModelFactory

    out = io.StringIO()
    progress = BatchTextProgress(MODEL, stream=out, live=False)
    result = ModelFactory.get(MODEL).map(["I love it", "awful", "fine"], on_event=progress, concurrency=2)
    progress.close()
    assert result.ok
    assert re.fullmatch(
        rf"\[aix\] {MODEL} finished: 3/3 done, 0 failed · 0 credits \(\d+\.\d\d s\)\n", out.getvalue()
    )
