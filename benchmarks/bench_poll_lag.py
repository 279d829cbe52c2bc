"""Poll lag: time from a job's end to the client returning, and the number of polls it took.

    .venv/bin/python benchmarks/bench_poll_lag.py [--quick] [--skip-plain] [--skip-held]

Part 1, plain server (benchmarks/wireserver.py: polls answered at once, never held). Model
``job-<ms>`` ends <ms> after it was submitted. Each client does ``run_async`` then ``sync_poll`` with
its default schedule; ours and the SDK's run at the same time, one process per job, on separate jobs.
The server records each job's end and counts its polls (``time.monotonic`` is system-wide on Linux, so
the client's return time and the server's end time are comparable). Jobs of 3 s (12 per
client) and of 60 s (3 per client), each batch all at once. The verdict uses the worst job (max lag).

Part 2, held polls on the embedded backend (ours only: the SDK never asks to hold a poll). A worker
process registers a model that sleeps for a random 0.2-2 s and records when it ends, runs it with
``run_async`` + ``sync_poll`` (default schedule) from 4 threads at a time against the embedded backend
in the same process, and reports the lag of each.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from common import (
    CMP_PY,
    CONFIG_VARS,
    OUR_PY,
    SETUP_HINT,
    Worker,
    compare_has,
    median,
    pct,
    previous,
    require,
    save,
    wire_env,
    wire_server,
    worker_main,
    worker_name,
)

TIMEOUT = 300.0


# ------------------------------------------------------------------------------------ worker sides
def _plain_worker(name: str) -> None:
    if name == "ours":
        from aix_jupyter.core.model import Model

        def job(ms: int) -> dict[str, Any]:
            model = Model(f"job-{ms}", name="job")
            started = model.run_async("x")
            assert started.status == "IN_PROGRESS" and started.url, started
            final = model.sync_poll(started.url, timeout=TIMEOUT)
            t_return = time.monotonic()
            return {"t_return": t_return, "poll_url": started.url, "status": str(final.status)}

    else:
        from aixplain.modules.model import Model

        def job(ms: int) -> dict[str, Any]:
            model = Model(f"job-{ms}", name="job", api_key=os.environ["TEAM_API_KEY"])
            model.url = os.environ["MODELS_RUN_URL"]
            started = model.run_async("x")
            assert str(started.status) in ("IN_PROGRESS", "ResponseStatus.IN_PROGRESS"), started
            final = model.sync_poll(started.url, timeout=TIMEOUT)
            t_return = time.monotonic()
            return {"t_return": t_return, "poll_url": started.url, "status": str(final.status)}

    worker_main({"job": job, "ping": lambda: "pong"})


def _held_worker() -> None:
    """Our client against the embedded backend, which holds polls (``Prefer: wait``)."""
    import aix_jupyter
    from aix_jupyter.core.model import Model

    ends: dict[str, float] = {}

    def sleepy(key: str, seconds: float = 1.0) -> str:
        """Sleep, then record when the work ended."""
        time.sleep(seconds)
        ends[key] = time.monotonic()
        return key

    aix_jupyter.register_model(sleepy, id="bench/sleepy", name="bench-sleepy", concurrency=8)
    model_id = "bench/sleepy"

    def batch(n: int, threads: int, seed: int) -> dict[str, Any]:
        rng = random.Random(seed)
        plan = [(f"k{seed}-{i}", round(rng.uniform(0.2, 2.0), 3)) for i in range(n)]
        lags: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()

        def one(key: str, seconds: float) -> None:
            model = Model(model_id)
            started = model.run_async({"key": key, "seconds": seconds})
            r = model.sync_poll(started.url, timeout=60)
            t_return = time.monotonic()
            with lock:
                if str(getattr(r.status, "value", r.status)) != "SUCCESS":
                    errors.append(f"{r.status}: {r.error_message}")
                else:
                    lags.append(t_return - ends[key])

        pending = list(plan)
        while pending:
            group, pending = pending[:threads], pending[threads:]
            ts = [threading.Thread(target=one, args=item) for item in group]
            for t in ts:
                t.start()
            for t in ts:
                t.join(timeout=90)
        return {"lags": lags, "errors": errors, "durations": [s for _, s in plan]}

    worker_main({"batch": batch})


def serve_worker(name: str) -> None:
    if name == "held":
        _held_worker()
    else:
        _plain_worker(name)


# ------------------------------------------------------------------------------------------ driver
def _stats(base: str, poll_url: str) -> dict[str, Any]:
    job_id = poll_url.rstrip("/").rsplit("/", 1)[1]
    with urllib.request.urlopen(f"{base}/stats/{job_id}", timeout=10) as r:
        return json.loads(r.read())


def _run_jobs(base: str, env: dict[str, str], ms: int, reps: int, parallel: bool) -> list[dict[str, Any]]:
    """Each side runs ``reps`` jobs: one after another, or all at once (one process per job)."""
    me = Path(__file__).resolve()
    sides = ((OUR_PY, "ours"), (CMP_PY, "aixplain"))
    n_procs = reps if parallel else 1
    per_proc = 1 if parallel else reps
    ws = [Worker(py, me, side, env=env) for _ in range(n_procs) for py, side in sides]
    rows: list[dict[str, Any]] = []
    lock = threading.Lock()

    def drive(w: Worker) -> None:
        for _ in range(per_proc):
            r = w.call("job", timeout=TIMEOUT + 30, ms=ms)
            st = _stats(base, r["poll_url"])
            lag = r["t_return"] - st["end"]
            row = {"side": w.name, "lag": lag, "polls": st["polls"], "status": r["status"]}
            with lock:
                rows.append(row)

    try:
        for w in ws:  # every worker has imported its client before any job starts
            w.call("ping", timeout=120)
        ts = [threading.Thread(target=drive, args=(w,)) for w in ws]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    finally:
        for w in ws:
            w.close()
    return rows


def _summarise(rows: list[dict[str, Any]], ms: int) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for side in ("ours", "aixplain"):
        mine = [r for r in rows if r["side"] == side]
        lags = [r["lag"] for r in mine]
        res[side] = {
            "n": len(mine),
            "lag_median_s": round(median(lags), 3),
            "lag_max_s": round(max(lags), 3),
            "lag_median_pct_of_job": round(100 * median(lags) / (ms / 1000), 2),
            "lag_max_pct_of_job": round(100 * max(lags) / (ms / 1000), 2),
            "polls_median": median([r["polls"] for r in mine]),
            "statuses": sorted({r["status"] for r in mine}),
        }
    ours, sdk = res["ours"], res["aixplain"]
    res["ratios"] = {
        "poll count ours / aixplain": round(ours["polls_median"] / sdk["polls_median"], 3),
        "lag ours / aixplain": round(ours["lag_median_s"] / max(sdk["lag_median_s"], 1e-6), 3),
    }
    return res


def plain(quick: bool) -> dict[str, Any]:
    short_reps = 4 if quick else 12
    long_reps = 1 if quick else 3
    out: dict[str, Any] = {}
    with wire_server(OUR_PY) as base:
        env = wire_env(base)
        for label, ms, reps, parallel in (("3 s", 3000, short_reps, True), ("60 s", 60000, long_reps, True)):
            out[label] = _summarise(_run_jobs(base, env, ms, reps, parallel), ms)
            print(label, json.dumps(out[label]), file=sys.stderr)
    return out


def held(quick: bool) -> dict[str, Any]:
    me = Path(__file__).resolve()
    n = 24 if quick else 60
    w = Worker(OUR_PY, me, "held", unset=CONFIG_VARS)
    try:
        w.call("batch", timeout=120, n=4, threads=2, seed=0)  # warm-up: backend start, first imports
        r = w.call("batch", timeout=600, n=n, threads=4, seed=1)
    finally:
        w.close()
    lags = r["lags"]
    durs = r["durations"]
    return {
        "n": len(lags),
        "errors": r["errors"][:5],
        "lag_p50_ms": round(pct(lags, 0.5) * 1000, 1),
        "lag_p95_ms": round(pct(lags, 0.95) * 1000, 1),
        "lag_max_ms": round(max(lags) * 1000, 1) if lags else None,
        "p95_lag_pct_of_median_job": round(100 * pct(lags, 0.95) / median(durs), 2) if lags else None,
        "job_seconds": "uniform 0.2-2.0, 4 at a time",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4x3 s, 1x60 s jobs; 24 held jobs")
    parser.add_argument("--skip-plain", action="store_true")
    parser.add_argument("--skip-held", action="store_true")
    args = parser.parse_args()
    require(args.skip_plain or compare_has("aixplain"), f"the comparison venv has no aixplain: {SETUP_HINT}")
    mode = "quick" if args.quick else "full"
    old = previous("poll_lag")
    result: dict[str, Any] = {}
    for part, skip, fn in (("plain", args.skip_plain, plain), ("held", args.skip_held, held)):
        if not skip:
            result[part] = {"mode": mode, **fn(args.quick)}
        elif part in old:
            result[part] = old[part]
    checks = []
    if "plain" in result:
        for label in ("3 s", "60 s"):
            p = result["plain"][label]
            checks.append(p["ours"]["lag_max_pct_of_job"] <= 2.0)
            checks.append(p["ratios"]["poll count ours / aixplain"] <= 1.5)
    if "held" in result:
        checks.append(result["held"]["lag_p95_ms"] <= 50)
    result["target"] = "plain: lag <= 2% of job time, polls <= 1.5 x aixplain's; held polls: lag p95 <= 50 ms"
    result["met"] = all(checks)
    print(json.dumps(result, indent=2))
    save("poll_lag", result)


if __name__ == "__main__":
    wn = worker_name(sys.argv)
    if wn:
        serve_worker(wn[0])
    else:
        main()
