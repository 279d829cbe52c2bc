"""Per-run overhead: N synchronous runs against one loopback wire server.

    .venv/bin/python benchmarks/bench_run_overhead.py [--quick]

Three clients, each in its own process, against the same plain wire server (benchmarks/wireserver.py,
its own process), model ``echo`` answered SUCCESS at once on the v2 path:
* ours:      ``aix_jupyter.core.model.Model("echo").run(text)``        (project venv)
* aixplain:  ``aixplain.modules.model.Model("echo").run(text)``         (comparison venv, SDK 0.2.48)
* raw httpx: ``httpx.Client`` (keep-alive) ``POST .../api/v2/execute/echo`` + ``.json()``  (project venv)
Both SDK-style clients reach the server through the same environment (MODELS_RUN_URL etc.). Rounds of
``--runs`` calls each are interleaved client by client; the figure is the median time per run over
rounds, and the ratio to raw httpx.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from common import (
    CMP_PY,
    OUR_PY,
    SETUP_HINT,
    compare_has,
    median,
    require,
    save,
    wire_env,
    wire_server,
    worker_main,
    worker_name,
    workers,
)

TEXT = "The quick brown fox jumps over the lazy dog."


# ------------------------------------------------------------------------------------ worker sides
def _ours() -> object:
    from aix_jupyter.core.model import Model

    model = Model("echo", name="echo")

    def run_once() -> None:
        r = model.run(TEXT)
        assert r.status == "SUCCESS" and r.data == TEXT, r

    return run_once


def _aixplain() -> object:
    from aixplain.modules.model import Model

    model = Model("echo", name="echo", api_key=os.environ["TEAM_API_KEY"])
    model.url = os.environ["MODELS_RUN_URL"]

    def run_once() -> None:
        r = model.run(TEXT)
        assert r.status == "SUCCESS" and r.data == TEXT, r

    return run_once


def _httpx() -> object:
    import httpx

    client = httpx.Client(timeout=30)
    url = os.environ["MODELS_RUN_URL"].replace("api/v1/execute", "api/v2/execute") + "/echo"
    headers = {"x-api-key": os.environ["TEAM_API_KEY"], "Content-Type": "application/json"}

    def run_once() -> None:
        r = client.post(url, json={"data": TEXT}, headers=headers)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "SUCCESS" and body["data"] == TEXT, body

    return run_once


def serve_worker(name: str) -> None:
    run_once = {"ours": _ours, "aixplain": _aixplain, "httpx": _httpx}[name]()

    def batch(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            run_once()  # type: ignore[operator]
        return time.perf_counter() - t0

    worker_main({"batch": batch})


# ------------------------------------------------------------------------------------------ driver
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 rounds of 100 runs instead of 20 of 200")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--runs", type=int)
    args = parser.parse_args()
    require(compare_has("aixplain"), f"the comparison venv has no aixplain: {SETUP_HINT}")
    rounds = args.rounds or (8 if args.quick else 20)
    runs = args.runs or (100 if args.quick else 200)
    me = Path(__file__).resolve()
    with wire_server(OUR_PY) as base:
        env = wire_env(base)
        specs = [(OUR_PY, me, "ours", ()), (CMP_PY, me, "aixplain", ()), (OUR_PY, me, "httpx", ())]
        with workers(*specs, env=env) as ws:
            for w in ws:  # warm-up: imports, connection set-up, first-call caches
                w.call("batch", n=20)
            per_run: dict[str, list[float]] = {w.name: [] for w in ws}
            deadline = time.monotonic() + 600
            for r in range(rounds):
                for w in ws if r % 2 == 0 else reversed(ws):
                    per_run[w.name].append(w.call("batch", n=runs) / runs)
                if time.monotonic() > deadline:
                    break
    us = {k: round(median(v) * 1e6, 1) for k, v in per_run.items()}
    spread = {k: [round(min(v) * 1e6, 1), round(max(v) * 1e6, 1)] for k, v in per_run.items()}
    # Paired: each round's ratio of sides measured back to back, so slow drifts of the machine's load
    # cancel; the median of those is shown beside the ratio of medians (the verdict uses the latter).
    paired = [o / h for o, h in zip(per_run["ours"], per_run["httpx"], strict=True)]
    ratios = {
        "ours / raw httpx": round(us["ours"] / us["httpx"], 3),
        "aixplain / raw httpx": round(us["aixplain"] / us["httpx"], 3),
        "ours / aixplain": round(us["ours"] / us["aixplain"], 3),
        "ours / raw httpx, median of per-round ratios": round(median(paired), 3),
    }
    result = {
        "mode": "quick" if args.quick else "full",
        "rounds": len(per_run["ours"]),
        "runs_per_round": runs,
        "median_us_per_run": us,
        "min_max_us_per_run": spread,
        "ratios": ratios,
        "target": "ours <= 1.15 x raw httpx and <= 0.7 x aixplain",
        "met": ratios["ours / raw httpx"] <= 1.15 and ratios["ours / aixplain"] <= 0.7,
    }
    print(json.dumps(result, indent=2))
    save("run_overhead", result)


if __name__ == "__main__":
    wn = worker_name(sys.argv)
    if wn:
        serve_worker(wn[0])
    else:
        main()
