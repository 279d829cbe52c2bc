"""Poll lag: time from a job's end to the client returning, and the number of polls it took.

    .venv/bin/python benchmarks/bench_poll_lag.py [--quick] [--skip-plain] [--skip-long] [--skip-held]

Part 1, plain server (benchmarks/wireserver.py: polls answered at once, never held), ours and the
SDK's side by side. Model ``job-<ms>`` ends <ms> after it was submitted. Each client calls
``model.run`` (v2 POST answered IN_PROGRESS, then its default poll schedule), one process per job;
both clients' jobs of 3, 7, 13, 20 and 31 s all start at once (10 processes), for ``rounds`` rounds;
then the same with jobs of 100, 115, 130, 145 and 160 s, once. The server records each job's end and
the time of every poll it answered (``time.monotonic`` is system-wide on Linux, so the client's
return time and the server's times are comparable), which splits each lag into its parts:

* schedule: from the job's end to the first poll the server received after it (the poll spacing);
* reply to return: from that poll reaching the server to ``run`` returning in the caller (request,
  reply, the hand-off from the worker thread to the caller, mapping);
* first poll: from the job's creation (the POST) to the first poll;
* interval / wait: each send-to-send interval over the schedule's nominal wait (0.5 s x 1.1^k,
  capped at 5 s for ours, 60 s for the SDK): 1.0 means the client polls exactly on its schedule.

A job's own lag depends mostly on where its end happened to fall between two polls (it is spread
evenly from 0 to the wait there), so 20 jobs a side give a mean only within ~+-0.25 s. The
*phase-averaged lag* removes that luck: until it notices the end, a client polls the same way
whenever the job ends, so its real poll times give the lag it would have had for every end
between 1 s and the poll that noticed it; their mean, plus the measured reply-to-return, is the
figure the verdict uses (it moves by ~0.03 s between runs of one job length).

Part 1b, the schedules alone on a fake clock: the expected lag and poll count of our
``PollSchedule`` and of the SDK's loop (aixplain 0.2.48 ``v1/modules/model/__init__.py``
``sync_poll``: first poll at once, then ``sleep(wait * uniform(0.8, 1.2))``, ``wait *= 1.1`` below
60 s), for 20 000 job ends spread evenly over 3-31 s and over 100-160 s -- exact where the
side-by-side runs are few and noisy.

Part 2, held polls on the embedded backend (ours only: the SDK never asks to hold a poll). A worker
process registers a model that sleeps for a random 0.2-2 s and records when it ends, runs it with
``run_async`` + ``sync_poll`` (default schedule) from 4 threads at a time against the embedded backend
in the same process, and reports the lag of each.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
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
    """``job(ms)``: ``model.run`` of ``job-<ms>``; the return time and the job's poll URL."""
    if name == "ours":
        from aix_jupyter.core.model import Model

        def job(ms: int) -> dict[str, Any]:
            model = Model(f"job-{ms}", name="job")
            seen: dict[str, Any] = {}

            def hook(event: Any) -> None:
                if event.kind == "submitted":
                    seen["poll_url"] = event.poll_url

            final = model.run("x", timeout=TIMEOUT, on_event=hook)
            t_return = time.monotonic()
            return {"t_return": t_return, "poll_url": seen.get("poll_url"), "status": str(final.status)}

    else:
        from aixplain.modules.model import Model

        class Probe(Model):  # type: ignore[misc]
            """The SDK's Model, noting the poll URL its ``run`` hands to ``sync_poll``."""

            def sync_poll(self, poll_url: str, *args: Any, **kwargs: Any) -> Any:
                self.seen_poll_url = poll_url
                return super().sync_poll(poll_url, *args, **kwargs)

        def job(ms: int) -> dict[str, Any]:
            model = Probe(f"job-{ms}", name="job", api_key=os.environ["TEAM_API_KEY"])
            model.url = os.environ["MODELS_RUN_URL"]
            final = model.run("x", timeout=TIMEOUT)
            t_return = time.monotonic()
            url = getattr(model, "seen_poll_url", None)
            return {"t_return": t_return, "poll_url": url, "status": str(getattr(final, "status", final))}

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
SHORT = (3, 7, 13, 20, 31)  # seconds
LONG = (100, 115, 130, 145, 160)
SIDES = ("ours", "aixplain")
CAP = {"ours": 5.0, "aixplain": 60.0}  # where each side's wait stops growing


def _stats(base: str, poll_url: str) -> dict[str, Any]:
    job_id = poll_url.rstrip("/").rsplit("/", 1)[1]
    with urllib.request.urlopen(f"{base}/stats/{job_id}", timeout=10) as r:
        return json.loads(r.read())


def _run_batches(
    base: str, env: dict[str, str], seconds: tuple[int, ...], rounds: int
) -> list[dict[str, Any]]:
    """Each round, every job of ``seconds`` for both clients at once, one worker process per job."""
    me = Path(__file__).resolve()
    ws = [
        (Worker(py, me, side, env=env), s)
        for s in seconds
        for py, side in ((OUR_PY, "ours"), (CMP_PY, "aixplain"))
    ]
    rows: list[dict[str, Any]] = []
    lock = threading.Lock()

    def drive(w: Worker, s: int) -> None:
        r = w.call("job", timeout=TIMEOUT + 60, ms=s * 1000)
        st = _stats(base, r["poll_url"])
        with lock:
            rows.append({"side": w.name, "seconds": s, **r, **st})

    try:
        for w, _ in ws:  # every worker has imported its client before any job starts
            w.call("ping", timeout=120)
        for _ in range(rounds):
            ts = [threading.Thread(target=drive, args=item) for item in ws]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
    finally:
        for w, _ in ws:
            w.close()
    return rows


def _phase_lag(times: list[float], start: float, noticed: float, after: float = 1.0) -> float:
    """Mean of (next poll - end) over job ends spread evenly from ``start + after`` to ``noticed``."""
    lo, total = start + after, 0.0
    for a, b in itertools.pairwise(times):
        left, right = max(a, lo), min(b, noticed)
        if right > left:  # ends in (left, right] are noticed by the poll at b
            total += ((b - left) ** 2 - (b - right) ** 2) / 2
        if b >= noticed:
            break
    return total / (noticed - lo)


def _parts(row: dict[str, Any]) -> dict[str, Any]:
    """One job's lag split by the server's poll times (see the module's docstring)."""
    times, end = row["poll_times"], row["end"]
    noticed = next(t for t in times if t >= end)
    wait, ratios = 0.5, []
    for a, b in itertools.pairwise(times):
        ratios.append((b - a) / wait)
        wait = min(wait * 1.1, CAP[row["side"]])
    return {
        "lag": row["t_return"] - end,
        "phase_lag": _phase_lag(times, row["created"], noticed) + row["t_return"] - noticed,
        "schedule": noticed - end,
        "reply_to_return": row["t_return"] - noticed,
        "first_poll": times[0] - row["created"],
        "ratios": ratios,
        "gap": max((b - a for a, b in itertools.pairwise(times)), default=0.0),
    }


def _mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else float("nan")


def _summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for side in SIDES:
        mine = [r for r in rows if r["side"] == side]
        parts = [_parts(r) for r in mine]
        lags = [p["lag"] for p in parts]
        ratios = [x for p in parts for x in p["ratios"]]
        res[side] = {
            "n": len(mine),
            "lag_mean_s": round(_mean(lags), 3),
            "lag_sem_s": round(statistics.stdev(lags) / len(lags) ** 0.5, 3) if len(lags) > 1 else None,
            "lag_median_s": round(median(lags), 3),
            "lag_max_s": round(max(lags), 3),
            "phase_lag_mean_s": round(_mean([p["phase_lag"] for p in parts]), 3),
            "polls_mean": round(_mean([r["polls"] for r in mine]), 2),
            "parts_mean_s": {
                "schedule": round(_mean([p["schedule"] for p in parts]), 3),
                "reply_to_return": round(_mean([p["reply_to_return"] for p in parts]), 4),
                "first_poll": round(_mean([p["first_poll"] for p in parts]), 4),
            },
            "reply_to_return_max_s": round(max(p["reply_to_return"] for p in parts), 3),
            "interval_over_wait": {"mean": round(_mean(ratios), 3), "max": round(max(ratios), 3)},
            "longest_interval_s": round(max(p["gap"] for p in parts), 3),
            "by_job_s": {
                str(s): [round(_parts(r)["lag"], 3) for r in mine if r["seconds"] == s]
                for s in sorted({r["seconds"] for r in mine})
            },
            "statuses": sorted({r["status"] for r in mine}),
        }
    ours, sdk = res["ours"], res["aixplain"]
    res["ratios"] = {
        "phase-averaged lag ours / aixplain": round(ours["phase_lag_mean_s"] / sdk["phase_lag_mean_s"], 3),
        "lag mean ours / aixplain": round(ours["lag_mean_s"] / max(sdk["lag_mean_s"], 1e-6), 3),
        "polls ours / aixplain": round(ours["polls_mean"] / sdk["polls_mean"], 3),
    }
    return res


def plain(quick: bool, long: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    batches = [("3-31 s", SHORT, 1 if quick else 4)]
    if long:
        batches.append(("100-160 s", LONG, 1))
    with wire_server(OUR_PY, lifetime=3600) as base:
        env = wire_env(base)
        for label, seconds, rounds in batches:
            out[label] = {
                "jobs_s": list(seconds),
                "rounds": rounds,
                **_summarise(_run_batches(base, env, seconds, rounds)),
            }
            print(label, json.dumps(out[label]), file=sys.stderr)
    return out


# --------------------------------------------------------------------------- the schedules on a fake clock
REQUEST_S = 0.002  # a loopback poll's duration, as measured above (reply to return)


def _ours_on_fake_clock(end: float, rng: random.Random) -> tuple[float, int]:
    from aix_jupyter.core.polling import PollSchedule

    now = [0.0]
    schedule = PollSchedule(0.5, 1e9, 5.0, rng=rng, clock=lambda: now[0], start=0.0)
    polls = 0
    while True:
        sent = now[0]
        polls += 1
        if sent >= end:
            return sent + REQUEST_S - end, polls
        now[0] += REQUEST_S
        schedule.observe(elapsed=now[0] - sent)
        now[0] += schedule.next_delay() or 0.0


def _sdk_on_fake_clock(end: float, rng: random.Random) -> tuple[float, int]:
    """aixplain 0.2.48's sync_poll loop, transcribed (its sleep does not count the request's time)."""
    t, wait, polls = 0.0, 0.5, 0
    while True:
        polls += 1
        if t >= end:
            return t + REQUEST_S - end, polls
        t += REQUEST_S + wait * rng.uniform(0.8, 1.2)
        if wait < 60:
            wait *= 1.1


def schedules(draws: int) -> dict[str, Any]:
    """Both schedules for ``draws`` job ends spread evenly over each range (not only its 5 lengths)."""
    out: dict[str, Any] = {"draws": draws, "request_s": REQUEST_S}
    for label, seconds in (("3-31 s", SHORT), ("100-160 s", LONG)):
        block: dict[str, Any] = {}
        for name, fn in (("ours", _ours_on_fake_clock), ("aixplain", _sdk_on_fake_clock)):
            rng = random.Random(1)
            ends = [rng.uniform(seconds[0], seconds[-1]) for _ in range(draws)]
            results = [fn(end, rng) for end in ends]
            block[name] = {
                "lag_mean_s": round(_mean([lag for lag, _ in results]), 3),
                "lag_max_s": round(max(lag for lag, _ in results), 3),
                "polls_mean": round(_mean([p for _, p in results]), 2),
            }
        block["ratios"] = {
            "lag mean ours / aixplain": round(
                block["ours"]["lag_mean_s"] / block["aixplain"]["lag_mean_s"], 3
            ),
            "polls ours / aixplain": round(block["ours"]["polls_mean"] / block["aixplain"]["polls_mean"], 3),
        }
        out[label] = block
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


LAG_CAP_S = 5.0 + 0.1  # our max_wait plus one request (generously: a loopback poll takes ~2 ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="one round of short jobs, no long jobs; 24 held jobs"
    )
    parser.add_argument("--skip-plain", action="store_true")
    parser.add_argument("--skip-long", action="store_true", help="no 100-160 s jobs (they take ~3 min)")
    parser.add_argument("--skip-held", action="store_true")
    args = parser.parse_args()
    require(args.skip_plain or compare_has("aixplain"), f"the comparison venv has no aixplain: {SETUP_HINT}")
    mode = "quick" if args.quick else "full"
    old = previous("poll_lag")
    result: dict[str, Any] = {"schedules": schedules(5000 if args.quick else 20000)}
    print("schedules", json.dumps(result["schedules"]), file=sys.stderr)
    if not args.skip_plain:
        result["plain"] = {"mode": mode, **plain(args.quick, long=not (args.quick or args.skip_long))}
        if "100-160 s" not in result["plain"] and "100-160 s" in old.get("plain", {}):
            result["plain"]["100-160 s"] = old["plain"]["100-160 s"]  # kept from the last run that had it
    elif "plain" in old:
        result["plain"] = old["plain"]
    if not args.skip_held:
        result["held"] = {"mode": mode, **held(args.quick)}
    elif "held" in old:
        result["held"] = old["held"]
    checks = []
    short = result["schedules"]["3-31 s"]["ratios"]
    checks += [short["lag mean ours / aixplain"] <= 1.02, short["polls ours / aixplain"] <= 1.02]
    if "plain" in result:
        q = result["plain"]["3-31 s"]["ratios"]
        checks += [q["phase-averaged lag ours / aixplain"] <= 1.05, q["polls ours / aixplain"] <= 1.05]
        if "100-160 s" in result["plain"]:
            o = result["plain"]["100-160 s"]["ours"]
            checks += [o["lag_max_s"] <= LAG_CAP_S, o["longest_interval_s"] <= LAG_CAP_S]
    checks.append(result["schedules"]["100-160 s"]["ours"]["lag_max_s"] <= LAG_CAP_S)
    if "held" in result:
        checks.append(result["held"]["lag_p95_ms"] <= 50)
    result["target"] = (
        "plain, 3-31 s jobs: lag and polls no more than the SDK's (fake clock: <= 1.02x; measured,"
        " phase-averaged: <= 1.05x); 100-160 s jobs: our max lag and longest poll interval <= 5 s cap"
        " + one request (measured and on the fake clock); held polls:"
        " lag p95 <= 50 ms"
    )
    result["met"] = all(checks)
    print(json.dumps(result, indent=2))
    save("poll_lag", result)


if __name__ == "__main__":
    wn = worker_name(sys.argv)
    if wn:
        serve_worker(wn[0])
    else:
        main()
