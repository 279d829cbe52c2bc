"""The poll schedule, sans I/O: the sync and async poll loops both drive one ``PollSchedule``.

Schedule (as the SDK documents it, with a cap that bounds the lag):

* the first poll is made at once;
* then the wait starts at ``max(wait_time, 0.2)`` s and grows by 10 % after each poll, each wait
  jittered by +-20 % so that many clients do not poll in waves;
* the wait is capped at ``max_wait`` (default ``DEFAULT_MAX_WAIT`` = 5 s) instead of the SDK's
  60 s, and the jitter never takes a wait past the cap: it narrows as the wait nears the cap
  (+-20 % up to ``max_wait / 1.2``, none at the cap), always centred on the wait, so the mean
  wait -- the number of polls -- is what it would be without the cap on the jitter;
* a ``Retry-After`` on a poll reply is honoured (it replaces the next wait);
* each poll asks the server to hold it (``Prefer: wait=N``, RFC 7240) for about the next wait,
  so a server that supports it answers the moment the job ends. Time the server spent holding
  is subtracted from the next wait, so a holding server is polled back-to-back and a server
  that ignores the header sees the plain schedule. When the server says it held
  (``Preference-Applied: wait=N``) the hold grows to ``LONG_HOLD`` seconds -- or stays at
  ``PROGRESS_HOLD`` while the server reports progress, so that a progress bar keeps moving;
* polling stops at ``timeout``: a wait is cut at the deadline, one last poll gets at most
  ``FINAL_GRACE`` seconds, so ``sync_poll(timeout=T)`` returns within T + 0.5 s.

Below the cap this is the SDK's schedule (0.5 s, +10 %, +-20 %), so on short jobs the lag and
the poll count are the SDK's: on a server that does not hold polls, a job is noticed on average
about half a wait late (figures, ours and the SDK's side by side: benchmarks/README.md, 3).

Why a 5 s cap, and what it costs. With the SDK's defaults (0.5 s, +10 %, cap 60 s) a job
finishing at t is noticed up to ~30 s late near the 300 s timeout (its wait there is ~30 s).
Capped at 5 s, polls are at most 5 s apart from send to send (unless the server's Retry-After
asks for longer), so a job is noticed at most 5 s plus one request late, about 2.5 s on
average, for any job length. The cost is requests on long jobs: waits reach 5 s after 25 polls
(~44 s); after that one poll per 5 s. Polls until a job is noticed (``expected_polls``, no
jitter): a 10 s job 13 (SDK 13), a 60 s job 29 (SDK 28), a 120 s job 41 (SDK 35), a 300 s job
77 (SDK 45) -- at most one request per 5 s more, against a lag bounded at 5 s instead of 30 s.
Against a server that holds polls (our embedded backend) the lag is ~0 and a 300 s job costs
~30 polls (10 s holds).
``max_wait`` is configurable (``Model.run(..., max_wait=...)``, ``sync_poll(..., max_wait=...)``).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

from aix_jupyter.core.errors import ParameterError

MIN_WAIT = 0.2
GROWTH = 1.1
JITTER = 0.2
DEFAULT_MAX_WAIT = 5.0
LONG_HOLD = 10
PROGRESS_HOLD = 1
FINAL_GRACE = 0.3


_JITTER = random.Random()  # shared by every schedule: seeding a new generator costs ~30 us a run


class PollSchedule:
    """State of one poll loop: when to poll next, how long to ask the server to hold, when to stop."""

    def __init__(
        self,
        wait_time: float = 0.5,
        timeout: float = 300.0,
        max_wait: float = DEFAULT_MAX_WAIT,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        start: float | None = None,
        jitter: float = JITTER,
    ) -> None:
        if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout >= 0):
            raise ParameterError(f"timeout must be a finite number of seconds >= 0, got {timeout!r}")
        if not (isinstance(wait_time, int | float) and math.isfinite(wait_time) and wait_time >= 0):
            raise ParameterError(f"wait_time must be a finite number of seconds >= 0, got {wait_time!r}")
        if not (isinstance(max_wait, int | float) and max_wait > 0):
            raise ParameterError(f"max_wait must be a number of seconds > 0, got {max_wait!r}")
        self.clock = clock
        self.start = clock() if start is None else start
        self.deadline = self.start + float(timeout)
        self.max_wait = float(max(max_wait, MIN_WAIT))
        self.wait = min(max(float(wait_time), MIN_WAIT), self.max_wait)
        self.jitter = jitter
        self.rng = rng or _JITTER
        self.polls = 0
        self.server_holds = False
        self.reports_progress = False
        self.final = False
        self._last_elapsed = 0.0

    # -- time -----------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.clock() - self.start

    def remaining(self) -> float:
        return self.deadline - self.clock()

    def expired(self) -> bool:
        return self.remaining() <= 0

    def budget(self) -> float:
        """Seconds the next poll request may take (a little grace for the last poll)."""
        remaining = self.remaining()
        return remaining if remaining > 0 else (FINAL_GRACE if self.final else 0.0)

    # -- schedule -------------------------------------------------------------------------------
    def hold(self) -> int | None:
        """Seconds to ask the server to hold the next poll (``Prefer: wait=N``), or None."""
        if self.polls == 0 and not self.server_holds:
            want = 1  # first poll: at once, but a holding server may answer within the first second
        else:
            hold = PROGRESS_HOLD if self.reports_progress else LONG_HOLD
            want = hold if self.server_holds else math.ceil(self.wait)
        limit = math.floor(self.remaining())
        want = min(want, limit)
        return want if want >= 1 else None

    def observe(
        self, *, elapsed: float, preference_applied: str | None = None, progress: bool = False
    ) -> None:
        """Record one answered poll that said "still running" (and whether it reported progress)."""
        self.polls += 1
        self.reports_progress = progress
        if preference_applied and "wait" in preference_applied.lower():
            self.server_holds = True
        self._last_elapsed = elapsed

    def next_delay(self, retry_after: float | None = None) -> float | None:
        """Seconds to sleep before the next poll, or None when the deadline has passed.

        The returned delay never goes past the deadline; when it reaches it, the next poll is
        the final one (``budget()`` gives it ``FINAL_GRACE`` seconds).
        """
        if self.final or self.remaining() <= 0:
            return None
        if retry_after is not None:
            delay = max(0.0, retry_after)
        else:
            spread = min(self.jitter, self.max_wait / self.wait - 1.0)  # never past max_wait
            delay = self.wait * self.rng.uniform(1 - spread, 1 + spread)
            delay = max(0.0, delay - self._last_elapsed)
        self.wait = min(self.wait * GROWTH, self.max_wait)
        remaining = self.remaining()
        if delay >= remaining:
            self.final = True
            return max(0.0, remaining)
        return delay


def expected_polls(duration: float, wait_time: float = 0.5, max_wait: float = DEFAULT_MAX_WAIT) -> int:
    """Polls (without jitter or holds) until a job of ``duration`` seconds is noticed."""
    t, wait, polls = 0.0, min(max(wait_time, MIN_WAIT), max_wait), 1
    while t < duration:
        t += wait
        wait = min(wait * GROWTH, max_wait)
        polls += 1
    return polls
