"""The sans-IO poll schedule: its waits, holds and deadline, and the lag bound it gives on a plain server."""

from __future__ import annotations

import random

import pytest

from aix_jupyter.core import flows
from aix_jupyter.core.errors import ParameterError
from aix_jupyter.core.polling import (
    DEFAULT_MAX_WAIT,
    FINAL_GRACE,
    LONG_HOLD,
    PROGRESS_HOLD,
    PollSchedule,
    expected_polls,
)
from tests.core.scripted import FakeClock, drive, job_ending_at, scripted


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


# -- the lag bound and the poll count (plain server: no holds) -----------------------------------
def _delays(wait_time: float, cap: float, seed: int, n: int = 80) -> list[float]:
    schedule = PollSchedule(wait_time, 1e9, cap, rng=random.Random(seed), clock=Clock())
    out = []
    for _ in range(n):
        schedule.observe(elapsed=0.0)
        out.append(schedule.next_delay())
    return out


@pytest.mark.parametrize(("wait_time", "cap"), [(0.5, 5.0), (0.2, 1.0), (4.5, 5.0), (5.0, 5.0), (9.0, 3.0)])
def test_no_jittered_wait_passes_the_cap(wait_time, cap):
    for seed in range(50):
        assert max(_delays(wait_time, cap, seed)) <= cap


def test_below_the_cap_the_jitter_is_the_sdks_twenty_percent():
    first = [_delays(1.0, 5.0, seed, n=1)[0] for seed in range(2000)]
    assert 0.8 <= min(first) < 0.81 and 1.19 < max(first) <= 1.2


@pytest.mark.parametrize("nominal", [0.5, 3.0, 4.4, 4.9, 5.0])
def test_the_jitter_is_centred_on_the_wait_so_the_poll_count_does_not_change(nominal):
    """Narrowing the jitter near the cap keeps each wait's mean: no more polls than an unjittered schedule."""
    draws = [_delays(nominal, 5.0, seed, n=1)[0] for seed in range(4000)]
    assert sum(draws) / len(draws) == pytest.approx(nominal, rel=0.005)
    spread = min(0.2, 5.0 / nominal - 1)
    assert min(draws) >= nominal * (1 - spread) - 1e-12 and max(draws) <= nominal * (1 + spread) + 1e-12


def test_clients_started_together_do_not_poll_in_waves_at_the_cap():
    """The waits at the cap are not jittered, but the jittered waits before it have spread the clients."""
    rng = random.Random(7)
    at_poll_40 = []
    for _ in range(200):
        clock = Clock()
        schedule = PollSchedule(0.5, 1e9, 5.0, rng=rng, clock=clock)
        for _ in range(40):
            schedule.observe(elapsed=0.0)
            clock.now += schedule.next_delay()
        at_poll_40.append(clock.now)
    # in waves, all 200 would poll within the same instant of each 5 s period; spread, no half
    # second of the period holds more than a quarter of them
    phases = sorted(t % 5.0 for t in at_poll_40)
    wrapped = phases + [p + 5.0 for p in phases]
    crowd = max(sum(1 for p in wrapped if start <= p < start + 0.5) for start in phases)
    assert crowd <= 50


def _lag(
    end: float, seed: int, mode: str = "sync", cap: float = 5.0, takes: float = 0.02
) -> tuple[float, int]:
    """(seconds from the job's end to the poll loop returning, polls) through the real flow and driver."""
    t = scripted(mode, FakeClock(0.0)).on("GET", job_ending_at(end, takes=takes))
    schedule = PollSchedule(0.5, 1000.0, cap, clock=t.clock, rng=random.Random(seed))
    flow = flows.poll_flow(
        "http://127.0.0.1:9/api/v1/data/j", schedule, flows.Emitter(None, "m", clock=t.clock), 1000.0
    )
    response = drive(mode, flow, t)
    assert response.data == "done"
    return t.clock.now - end, len(t.gets())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_job_is_noticed_at_most_the_cap_plus_one_request_late(mode):
    ends = [0.37 * k for k in range(1, 500)]  # 0.4 .. 185 s: the growing waits and the cap
    worst = max(_lag(end, seed=k, mode=mode)[0] for k, end in enumerate(ends))
    assert worst <= DEFAULT_MAX_WAIT + 0.02
    assert worst > DEFAULT_MAX_WAIT - 0.5  # the bound is reached, not avoided by polling more
