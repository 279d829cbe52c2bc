"""The sans-IO poll schedule."""

from __future__ import annotations

import random

import pytest

from aix_jupyter.core.errors import ParameterError
from aix_jupyter.core.polling import (
    DEFAULT_MAX_WAIT,
    FINAL_GRACE,
    LONG_HOLD,
    PROGRESS_HOLD,
    PollSchedule,
    expected_polls,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(wait=0.5, timeout=300.0, cap=DEFAULT_MAX_WAIT, jitter=0.0):
    clock = Clock()
    return PollSchedule(wait, timeout, cap, clock=clock, rng=random.Random(0), jitter=jitter), clock


def waits(schedule, clock, n):
    out = []
    for _ in range(n):
        schedule.observe(elapsed=0.0)
        delay = schedule.next_delay()
        if delay is None:
            break
        out.append(delay)
        clock.now += delay
    return out


def test_starts_at_wait_time_grows_ten_percent_and_caps():
    schedule, clock = make()
    seq = waits(schedule, clock, 40)
    assert seq[0] == pytest.approx(0.5) and seq[1] == pytest.approx(0.55) and seq[2] == pytest.approx(0.605)
    assert max(seq) == pytest.approx(DEFAULT_MAX_WAIT)
    assert seq[-1] == pytest.approx(DEFAULT_MAX_WAIT)


def test_minimum_wait_is_0_2():
    schedule, clock = make(wait=0.01)
    assert waits(schedule, clock, 1) == [pytest.approx(0.2)]


def test_jitter_stays_within_twenty_percent():
    schedule = PollSchedule(1.0, 1e6, 1.0, rng=random.Random(3))
    delays = []
    for _ in range(500):
        schedule.observe(elapsed=0.0)
        delays.append(schedule.next_delay())
    assert min(delays) >= 0.8 and max(delays) <= 1.2
    assert max(delays) - min(delays) > 0.2  # really jittered


def test_time_held_by_the_server_is_subtracted():
    schedule, _ = make(wait=2.0)
    schedule.observe(elapsed=1.5)
    assert schedule.next_delay() == pytest.approx(0.5)
    schedule.observe(elapsed=5.0)
    assert schedule.next_delay() == 0.0


def test_retry_after_replaces_the_wait():
    schedule, _ = make()
    schedule.observe(elapsed=0.0)
    assert schedule.next_delay(retry_after=3.0) == 3.0


def test_deadline_cuts_the_wait_and_grants_a_final_poll():
    schedule, clock = make(wait=1.0, timeout=2.5, cap=1.0)
    seq = waits(schedule, clock, 10)
    assert seq == [pytest.approx(1.0), pytest.approx(1.0), pytest.approx(0.5)]
    assert schedule.final
    clock.now += 0.01
    assert schedule.budget() == FINAL_GRACE
    assert schedule.next_delay() is None


def test_hold_follows_the_wait_then_grows_when_the_server_holds():
    schedule, clock = make(wait=2.0, timeout=100)
    assert schedule.hold() == 1  # first poll
    schedule.observe(elapsed=0.0)
    schedule.next_delay()
    assert schedule.hold() == 3  # ceil(2.2)
    schedule.observe(elapsed=1.0, preference_applied="wait=3")
    assert schedule.hold() == LONG_HOLD
    schedule.observe(elapsed=1.0, preference_applied="wait=10", progress=True)
    assert schedule.hold() == PROGRESS_HOLD  # keep a progress bar moving
    schedule.observe(elapsed=1.0, preference_applied="wait=1")
    clock.now += 96.5
    assert schedule.hold() == 3  # never past the deadline
    clock.now += 3
    assert schedule.hold() is None


@pytest.mark.parametrize(
    "bad", [{"timeout": -1}, {"timeout": float("inf")}, {"wait_time": "x"}, {"max_wait": 0}]
)
def test_bad_numbers_are_rejected(bad):
    kwargs = {"wait_time": 0.5, "timeout": 10, "max_wait": 5} | bad
    with pytest.raises(ParameterError):
        PollSchedule(**kwargs)


def test_expected_polls_documented_figures():
    assert [expected_polls(d) for d in (10, 60, 120, 300)] == [13, 29, 41, 77]
    assert [expected_polls(d, max_wait=60) for d in (10, 60, 120, 300)] == [13, 28, 35, 45]
