"""Measure the core's timeout accuracy and poll lag against the loopback wire server.

    .venv/bin/python tests/core/measure.py [--quick]

Timeout accuracy: ``run(timeout=T)`` / ``arun`` against a server that never answers the POST,
``run`` against one that answers after 10 s, and ``sync_poll(timeout=T)`` on a job that never
ends. Poll lag: time from the job's end (server clock = the same monotonic clock, same process)
to ``run`` returning, against a holding server (``Prefer: wait``) and a plain one.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aix_jupyter.core.model import Model
from tests.core.wireserver import Reply, WireServer


def timeouts(t: float) -> dict[str, float]:
    out = {}
    with WireServer() as server:
        model = Model("echo", url=server.run_url, api_key="k")
        server.script("POST /api/v2/execute", Reply(hang=True), Reply(hang=True))
        start = time.monotonic()
        model.run("x", timeout=t)
        out["run, never answers"] = time.monotonic() - start
        start = time.monotonic()
        asyncio.run(model.arun("x", timeout=t))
        out["arun, never answers"] = time.monotonic() - start
        server.script("POST /api/v2/execute", Reply(delay=10, json={"status": "SUCCESS"}))
        start = time.monotonic()
        model.run("x", timeout=t)
        out["run, answers after 10 s"] = time.monotonic() - start
        server.job_seconds = 1e6
        url = model.run_async("x").url
        start = time.monotonic()
        model.sync_poll(url, timeout=t)
        out["sync_poll, job never ends"] = time.monotonic() - start
        start = time.monotonic()
        asyncio.run(model.async_poll(url, timeout=t))
        out["async_poll, job never ends"] = time.monotonic() - start
    return {k: round(v, 3) for k, v in out.items()}


def lag(seconds: float, hold: bool, rounds: int) -> dict[str, float]:
    lags, polls = [], []
    with WireServer(job_seconds=seconds, hold=hold) as server:
        model = Model("echo", url=server.run_url, api_key="k")
        for _ in range(rounds):
            before = len(server.seen("GET"))
            model.run("x")
            returned = time.monotonic()
            job = list(server.jobs.values())[-1]
            lags.append(returned - (job.started + job.seconds))
            polls.append(len(server.seen("GET")) - before)
    return {
        "median_lag_s": round(statistics.median(lags), 3),
        "max_lag_s": round(max(lags), 3),
        "polls": statistics.median(polls),
    }


def main() -> None:
    quick = "--quick" in sys.argv
    result = {"timeout=2": timeouts(2.0)}
    for seconds in (1.0, 5.0) if quick else (1.0, 5.0, 20.0):
        rounds = 3 if quick or seconds > 5 else 5
        result[f"job {seconds:g} s, holding server"] = lag(seconds, True, rounds)
        result[f"job {seconds:g} s, plain server"] = lag(seconds, False, rounds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
