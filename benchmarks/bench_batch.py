"""Batch throughput: 1 000 inputs at concurrency 16, against a loopback model answering in 50 ms.

    .venv/bin/python benchmarks/bench_batch.py [--quick]

Sides, each in its own process, against the same plain wire server (benchmarks/wireserver.py, a
third process), model ``sleep-50`` (v2 path: SUCCESS after 50 ms):
* ours (sync):  ``Model("sleep-50").map(inputs, concurrency=16)``
* ours (async): ``await Model("sleep-50").amap(inputs, concurrency=16)``
* raw httpx:    one ``httpx.AsyncClient``, ``asyncio.Semaphore(16)``, ``asyncio.gather`` of the
  POSTs + ``.json()`` -- what a careful user writes by hand, with no retries, events or results
* the SDK (when ``AIX_BENCH_COMPARE_PYTHON`` or benchmarks/.venv-compare has aixplain 0.2.48):
  ``Model.run`` in a loop (a tenth of the inputs: it does one at a time) and in a
  ``ThreadPoolExecutor(16)`` -- what a user of the SDK would write
The physical limit is 16 / 0.05 s = 320 items/s. Rounds are interleaved side by side; the figure is
the median throughput over rounds, and its ratios to the limit and to raw httpx. The server also
reports the most runs it had in progress at once (must never exceed 16).

Second part, jobs that go asynchronous: 200 inputs, each a 1 s job (model ``held-1000``, whose
polls the server holds until the job ends), ``concurrency=32``, ``map`` and ``amap``; the figure is
the median wall time over the ideal ceil(200 / 32) x 1 s = 7 s (target <= 1.15x).

Third part, memory: the growth of the worker's RSS (from /proc, after ``gc.collect()``) while a
``map`` of ``--memory-inputs`` tiny inputs (model ``echo``, answered at once) is run and its
``BatchResult`` kept, per item (target <= 2 KB per item beyond its data).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

from common import CMP_PY, OUR_PY, median, save, wire_env, wire_server, worker_main, worker_name, workers

CONCURRENCY = 16
LATENCY_MS = 50
LIMIT = CONCURRENCY / (LATENCY_MS / 1000)  # items/s
JOB_INPUTS, JOB_CONCURRENCY, JOB_SECONDS = 200, 32, 1.0
JOB_IDEAL = math.ceil(JOB_INPUTS / JOB_CONCURRENCY) * JOB_SECONDS


def _inputs(n: int) -> list[str]:
    return [f"item {i}" for i in range(n)]


def _stats(method: str) -> int:
    """The server's most runs in progress at once (DELETE: start counting afresh); stdlib only."""
    from urllib.request import Request, urlopen

    with urlopen(Request(f"{os.environ['AIX_BACKEND_URL']}/stats/open", method=method)) as reply:
        return int(json.loads(reply.read())["max_open"])


def serve_sdk(name: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from aixplain.modules.model import Model

    model = Model(f"sleep-{LATENCY_MS}", name="sleep", api_key=os.environ["TEAM_API_KEY"])
    model.url = os.environ["MODELS_RUN_URL"]

    def one(text: str) -> object:
        reply = model.run(text)
        assert reply.status == "SUCCESS", reply
        return reply.data

    one("warm-up")  # the SDK imports modules lazily on the first run, a race when 16 threads start

    def batch(n: int) -> dict[str, float]:
        inputs = _inputs(n)
        _stats("DELETE")
        t0, c0 = time.perf_counter(), time.process_time()
        if name == "aixplain-loop":
            data = [one(x) for x in inputs]
        else:
            with ThreadPoolExecutor(CONCURRENCY) as pool:
                data = list(pool.map(one, inputs))
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert data == inputs, "wrong or missing results"
        return {"seconds": seconds, "cpu_seconds": cpu, "max_open": _stats("GET")}

    worker_main({"batch": batch})


def serve_worker(name: str) -> None:
    import asyncio

    if name.startswith("aixplain"):
        serve_sdk(name)
        return

    from aix_jupyter.core.model import Model

    model = Model(f"sleep-{LATENCY_MS}")

    async def raw(inputs: list[str]) -> list[object]:
        import httpx

        url = f"{os.environ['AIX_BACKEND_URL']}/api/v2/execute/{model.id}"
        headers = {"x-api-key": os.environ["TEAM_API_KEY"]}
        gate = asyncio.Semaphore(CONCURRENCY)
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        async with httpx.AsyncClient(timeout=30, limits=limits) as client:

            async def one(text: str) -> object:
                async with gate:
                    reply = await client.post(url, json={"data": text}, headers=headers)
                    return reply.json()["data"]

            return list(await asyncio.gather(*(one(x) for x in inputs)))

    def batch(n: int) -> dict[str, float]:
        inputs = _inputs(n)
        _stats("DELETE")
        t0, c0 = time.perf_counter(), time.process_time()
        if name == "ours":
            data = model.map(inputs, concurrency=CONCURRENCY).data
        elif name == "ours-async":
            data = asyncio.run(model.amap(inputs, concurrency=CONCURRENCY)).data
        else:
            data = asyncio.run(raw(inputs))
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        assert data == inputs, "wrong or missing results"
        return {"seconds": seconds, "cpu_seconds": cpu, "max_open": _stats("GET")}

    def jobs(n: int) -> dict[str, float]:
        inputs = _inputs(n)
        held = Model(f"held-{int(JOB_SECONDS * 1000)}")
        _stats("DELETE")
        t0 = time.perf_counter()
        if name == "ours":
            data = held.map(inputs, concurrency=JOB_CONCURRENCY).data
        else:
            data = asyncio.run(held.amap(inputs, concurrency=JOB_CONCURRENCY)).data
        seconds = time.perf_counter() - t0
        assert data == inputs, "wrong or missing results"
        return {"seconds": seconds, "max_open": _stats("GET")}

    def memory(n: int) -> dict[str, float]:
        import gc

        inputs = _inputs(n)
        gc.collect()
        before = _rss()
        result = Model("echo").map(inputs, concurrency=CONCURRENCY)
        gc.collect()
        grown = _rss() - before
        assert result.data == inputs, "wrong or missing results"
        data = sum(len(x) for x in inputs)  # each item's input and its echoed output
        return {"bytes_per_item": grown / n, "data_bytes_per_item": 2 * data / n}

    worker_main({"batch": batch, "jobs": jobs, "memory": memory})


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 300 inputs instead of 7 of 1 000")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--inputs", type=int)
    parser.add_argument("--memory-inputs", type=int)
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 7)
    job_rounds = 1 if args.quick else 3
    memory_inputs = args.memory_inputs or (5_000 if args.quick else 20_000)
    n = args.inputs or (300 if args.quick else 1000)
    me = Path(__file__).resolve()
    specs = [(OUR_PY, me, w, ()) for w in ("ours", "ours-async", "httpx")]
    if CMP_PY.exists():
        specs += [(CMP_PY, me, w, ()) for w in ("aixplain-loop", "aixplain-threads")]
    sizes = {"aixplain-loop": max(20, n // 10)}  # one at a time: a tenth of the inputs
    with wire_server(OUR_PY) as base, workers(*specs, env=wire_env(base)) as ws:
        for w in ws:  # warm-up: imports, first connections
            w.call("batch", n=32)
        rates: dict[str, list[float]] = {w.name: [] for w in ws}
        cpu: dict[str, list[float]] = {w.name: [] for w in ws}
        max_open: dict[str, int] = {w.name: 0 for w in ws}
        for r in range(rounds):
            for w in ws if r % 2 == 0 else list(reversed(ws)):
                size = sizes.get(w.name, n)
                out = w.call("batch", n=size)
                rates[w.name].append(size / out["seconds"])
                cpu[w.name].append(out["cpu_seconds"] / size)
                max_open[w.name] = max(max_open[w.name], out["max_open"])
        job_times: dict[str, list[float]] = {"ours": [], "ours-async": []}
        job_open = 0
        for r in range(job_rounds):
            for w in ws[:2] if r % 2 == 0 else list(reversed(ws[:2])):
                out = w.call("jobs", n=JOB_INPUTS)
                job_times[w.name].append(out["seconds"])
                job_open = max(job_open, out["max_open"])
        memory = ws[0].call("memory", n=memory_inputs, timeout=1200)
    rate = {k: round(median(v), 1) for k, v in rates.items()}
    cpu_us = {k: round(median(v) * 1e6) for k, v in cpu.items()}
    ratios = {
        "ours / limit": round(rate["ours"] / LIMIT, 3),
        "ours / raw httpx": round(rate["ours"] / rate["httpx"], 3),
        "ours async / limit": round(rate["ours-async"] / LIMIT, 3),
        "ours async / raw httpx": round(rate["ours-async"] / rate["httpx"], 3),
        "raw httpx / limit": round(rate["httpx"] / LIMIT, 3),
        # each round's ratio of sides measured back to back, so slow drifts of the load cancel
        "client CPU per item, ours / raw httpx": round(cpu_us["ours"] / cpu_us["httpx"], 3),
        "ours / raw httpx, median of per-round ratios": round(
            median([o / h for o, h in zip(rates["ours"], rates["httpx"], strict=True)]), 3
        ),
    }
    for sdk in ("aixplain-loop", "aixplain-threads"):
        if sdk in rate:
            ratios[f"ours / {sdk}"] = round(rate["ours"] / rate[sdk], 3)
    job_wall = {k: round(median(v), 3) for k, v in job_times.items()}
    jobs_part = {
        "inputs": JOB_INPUTS,
        "concurrency": JOB_CONCURRENCY,
        "job_seconds": JOB_SECONDS,
        "ideal_seconds": JOB_IDEAL,
        "rounds": job_rounds,
        "median_seconds": job_wall,
        "over_ideal": {k: round(v / JOB_IDEAL, 3) for k, v in job_wall.items()},
        "server_max_open": job_open,
        "target": "<= 1.15 x the ideal; never more than 32 open",
    }
    jobs_part["met"] = max(jobs_part["over_ideal"].values()) <= 1.15 and job_open <= JOB_CONCURRENCY
    result = {
        "mode": "quick" if args.quick else "full",
        "rounds": rounds,
        "inputs": n,
        "concurrency": CONCURRENCY,
        "latency_ms": LATENCY_MS,
        "limit_items_per_s": LIMIT,
        "median_items_per_s": rate,
        "min_max_items_per_s": {k: [round(min(v), 1), round(max(v), 1)] for k, v in rates.items()},
        "server_max_open": max_open,
        "median_client_cpu_us_per_item": cpu_us,
        "ratios": ratios,
        "target": "ours >= 0.9 x the limit and >= 1.0 x raw httpx; never more than 16 open",
        "met": ratios["ours / limit"] >= 0.9
        and ratios["ours / raw httpx"] >= 1.0
        and max(max_open.values()) <= CONCURRENCY,
        "jobs": jobs_part,
        "memory": {
            "inputs": memory_inputs,
            "rss_bytes_per_item": round(memory["bytes_per_item"]),
            "data_bytes_per_item": round(memory["data_bytes_per_item"]),
            "target": "<= 2048 bytes per item beyond its data",
            "met": memory["bytes_per_item"] - memory["data_bytes_per_item"] <= 2048,
        },
    }
    print(json.dumps(result, indent=2))
    save("batch", result)


if __name__ == "__main__":
    wn = worker_name(sys.argv)
    if wn:
        serve_worker(wn[0])
    else:
        main()
