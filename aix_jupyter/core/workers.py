"""Worker threads and sliced waits: what lets a blocking caller get control back at a deadline,
on a cancel event set from another thread, and at once on Ctrl-C (see ``sync_transport``).
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from aix_jupyter.core.wire import Cancelled, DeadlineExceeded

WAIT_SLICE = 0.05
SIGNAL_SLICE = 0.1


class _Job:
    __slots__ = ("done", "error", "notify", "result")

    def __init__(self, notify: Callable[[], None] | None = None) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.notify = notify  # called by the worker once ``done`` is set


# Requests run in daemon worker threads that are kept for reuse: starting a thread per request
# costs more than the request itself on a loaded loopback. Daemon threads, not a
# concurrent.futures pool, so that a request abandoned at its deadline never delays the
# interpreter's exit. The pool grows to the largest number of requests in flight at once.
_work: queue.SimpleQueue[tuple[Callable[[], Any], _Job]] = queue.SimpleQueue()
_pool_lock = threading.Lock()
_idle_workers = 0


def _worker() -> None:
    global _idle_workers
    while True:
        fn, job = _work.get()
        try:
            job.result = fn()
        except BaseException as exc:  # handed to the waiting caller, who re-raises it
            job.error = exc
        finally:
            job.done.set()
            if job.notify is not None:
                with contextlib.suppress(Exception):  # e.g. the waiting loop is closed: nobody waits
                    job.notify()
        del fn, job
        with _pool_lock:
            _idle_workers += 1


def run_in_worker(
    fn: Callable[[], Any], name: str = "aix-http", notify: Callable[[], None] | None = None
) -> _Job:
    """Run ``fn`` in a pooled daemon worker thread; the returned job says when it is done (and the
    worker calls ``notify()`` then, when given)."""
    global _idle_workers
    job = _Job(notify)
    with _pool_lock:
        if _idle_workers:
            _idle_workers -= 1  # that worker is reserved for this item
        else:
            threading.Thread(target=_worker, name=name, daemon=True).start()
    _work.put((fn, job))
    return job


def wait_job(job: _Job, deadline: float | None, cancel: threading.Event | None) -> Any:
    """Wait for ``job`` in the caller's thread; raise Cancelled / DeadlineExceeded / the job's error.

    The wait is sliced (``WAIT_SLICE`` with a cancel event, ``SIGNAL_SLICE`` without) so that a
    pending KeyboardInterrupt is noticed promptly whichever thread the signal reached.
    """
    step_max = WAIT_SLICE if cancel is not None else SIGNAL_SLICE
    while True:
        try:
            step = _next_slice(deadline, cancel, step_max)
        except DeadlineExceeded:
            if job.done.is_set():
                break
            raise
        if job.done.wait(step):
            break
    if job.error is not None:
        raise job.error
    return job.result


def _next_slice(deadline: float | None, cancel: threading.Event | None, step: float) -> float:
    """How long to wait before looking again; raise Cancelled / DeadlineExceeded when it is over."""
    if cancel is not None and cancel.is_set():
        raise Cancelled()
    if deadline is None:
        return step
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DeadlineExceeded()
    return min(step, remaining)


def sleep_until(seconds: float, cancel: threading.Event | None) -> None:
    """Sleep in slices, returning early with Cancelled when ``cancel`` is set."""
    end = time.monotonic() + max(0.0, seconds)
    with contextlib.suppress(DeadlineExceeded):
        while True:
            step = _next_slice(end, cancel, SIGNAL_SLICE)
            if cancel is None:
                time.sleep(step)
            elif cancel.wait(step):
                raise Cancelled()
