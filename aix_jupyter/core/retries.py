"""The retry policy of one request (``retry_delay``), and its attempts as a flow (``attempts``).

GET and DELETE (polls, metadata, cancel) are retried with jittered exponential backoff on
connection errors, timeouts and HTTP 429/502/503/504. A POST is retried only where the server
cannot have started a job: a connection that could not be opened, or an HTTP 429/503 answer.
``Retry-After`` is honoured; a retry that would end after the deadline is not made. Sans I/O:
the transports' ``send`` drives ``attempts`` (see ``flows``), the batch's guard asks
``retry_delay`` whether a run request may go out again.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from aix_jupyter.core.flows import Attempt, Sleep
from aix_jupyter.core.protocol import RawReply, retry_after_seconds
from aix_jupyter.core.wire import Call, TransportFailure

log = logging.getLogger("aix_jupyter.core")

MAX_ATTEMPTS = 3
BACKOFF_BASE = 0.25
BACKOFF_MAX = 4.0
RETRY_STATUS_GET = frozenset({429, 502, 503, 504})
RETRY_STATUS_POST = frozenset({429, 503})


def retry_delay(
    call: Call,
    attempt: int,
    *,
    reply: RawReply | None = None,
    error: TransportFailure | None = None,
    remaining: float | None = None,
    rng: random.Random | None = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> float | None:
    """Seconds to wait before retrying ``call`` after attempt number ``attempt`` (1-based), or None."""
    if attempt >= max_attempts:
        return None
    if reply is not None:
        allowed = RETRY_STATUS_GET if call.idempotent else RETRY_STATUS_POST
        if reply.status_code not in allowed:
            return None
        delay = retry_after_seconds(reply.header("retry-after"))
    elif error is not None:
        if error.kind in ("too-large", "invalid") or (not call.idempotent and error.kind != "connect"):
            return None
        delay = None
    else:
        return None
    if delay is None:
        delay = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (attempt - 1)) * (rng or random).uniform(0.5, 1.0)
    if remaining is not None and delay >= remaining:
        return None
    return delay


class Retries:
    """``retry_delay`` applied to the attempts of one call; the sync and async ``send`` share it.

    The time left is taken when an attempt starts for a failure (nothing came back) and when the
    reply arrives for an HTTP answer, so a retry that would end after the deadline is not made.
    """

    __slots__ = ("_left_at_start", "attempt", "call", "deadline", "max_attempts", "rng")

    def __init__(
        self, call: Call, deadline: float | None, rng: random.Random | None, max_attempts: int
    ) -> None:
        self.call, self.deadline, self.rng, self.max_attempts = call, deadline, rng, max_attempts
        self.attempt = 0
        self._left_at_start: float | None = None

    def _left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def start(self) -> None:
        self.attempt += 1
        self._left_at_start = self._left()

    def after_failure(self, error: TransportFailure) -> float | None:
        """Seconds to wait before the next attempt after ``error``, or None to give up."""
        delay = retry_delay(
            self.call,
            self.attempt,
            error=error,
            remaining=self._left_at_start,
            rng=self.rng,
            max_attempts=self.max_attempts,
        )
        if delay is not None:
            log.debug("%s failed (%s); retrying in %.2f s", self.call.what, error.kind, delay)
        return delay

    def after_reply(self, reply: RawReply) -> float | None:
        """Seconds to wait before the next attempt after ``reply``, or None to return it."""
        delay = retry_delay(
            self.call,
            self.attempt,
            reply=reply,
            remaining=self._left(),
            rng=self.rng,
            max_attempts=self.max_attempts,
        )
        if delay is not None:
            log.debug("%s answered HTTP %s; retrying in %.2f s", self.call.what, reply.status_code, delay)
        return delay


def attempts(call: Call, deadline: float | None, max_attempts: int) -> Any:
    """The retry policy of one request, as a flow (see ``flows``): it yields ``Attempt`` and
    ``Sleep`` operations, and returns the reply or raises the last TransportFailure."""

    retries = Retries(call, deadline, None, max_attempts)
    while True:
        retries.start()
        try:
            reply: RawReply = yield Attempt(call, deadline)
        except TransportFailure as exc:
            delay = retries.after_failure(exc)
            if delay is None:
                raise
        else:
            delay = retries.after_reply(reply)
            if delay is None:
                return reply
        yield Sleep(delay)
