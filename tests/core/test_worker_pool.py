"""The sync transport's worker threads: reused between requests, grown for concurrent ones."""

from __future__ import annotations

import threading

from aix_jupyter.core.transport import run_in_worker, wait_job


def _workers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "aix-http"}


def test_sequential_requests_reuse_one_worker():
    wait_job(run_in_worker(lambda: None), None, None)  # at least one idle worker now
    before = _workers()
    results = [wait_job(run_in_worker(lambda i=i: i * 2), None, None) for i in range(50)]
    assert results == [i * 2 for i in range(50)]
    assert _workers() == before


def test_concurrent_requests_each_get_a_worker_and_errors_reach_the_caller():
    gate = threading.Barrier(4, timeout=5)  # fails unless four items run at the same time
    jobs = [run_in_worker(gate.wait) for _ in range(4)]
    assert sorted(wait_job(job, None, None) for job in jobs) == [0, 1, 2, 3]

    def boom() -> None:
        raise ValueError("from the worker")

    job = run_in_worker(boom)
    try:
        wait_job(job, None, None)
    except ValueError as exc:
        assert str(exc) == "from the worker"
    else:
        raise AssertionError("the worker's error was lost")
