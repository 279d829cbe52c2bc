"""Batch progress: frontend messages per second while 1 000 items/s complete (target <= 10).

    .venv/bin/python benchmarks/bench_batch_progress.py [--quick]

A real IPython kernel (ipykernel, started with jupyter_client, ``AIX_FRONTEND=live`` so the batch
progress is the widget bar) points at the plain wire server (benchmarks/wireserver.py, its own
process). Two runs, alternating round by round; the driver counts the ``comm_msg`` messages on the
IOPub channel between the request and the reply (what a frontend would receive):

* paced: ``BatchWidgetProgress`` displayed, fed ``BatchEvent``s for <n> items paced at exactly
  1 000 items/s from the kernel's main thread (where a sync ``map`` hands its events to the
  display), the item rate the client itself cannot reach on a 2-core box;
* map: ``%aix map sleep-5 --concurrency 32 -o r xs`` over <m> inputs against the wire server (the
  real pipeline at whatever item rate it reaches; the result is checked: every item succeeded).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from bench_widget import _execute
from common import OUR_PY, median, save, wire_env, wire_server

RATE = 1000
PACED = """
import time
from aix_jupyter.core.batch import BatchEvent
from aix_jupyter.widgets.progress import BatchWidgetProgress
p = BatchWidgetProgress("paced")
def ev(kind, done, t):
    return BatchEvent(kind, "paced", None, done, 0, {n}, 16, 16, 0.0, t)
t0 = time.monotonic()
p(ev("started", 0, 0.0))
for i in range(1, {n} + 1):
    due = t0 + i / {rate}
    while time.monotonic() < due:
        pass
    p(ev("item_finished", i, time.monotonic() - t0))
p(ev("finished", {n}, time.monotonic() - t0))
p.close()
assert p.done == {n} and p.state == "finished", p.line()
"""
MAP = "%aix map sleep-5 --concurrency 32 -o r xs\nassert r.ok and len(r) == {m}, r\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 2 000 items instead of 4 of 5 000")
    args = parser.parse_args()
    from jupyter_client.manager import start_new_kernel

    rounds, n, m = (2, 2000, 1000) if args.quick else (4, 5000, 2000)
    runs: dict[str, list[dict[str, float]]] = {"paced": [], "map": []}
    with wire_server(OUR_PY) as base:
        env = {**os.environ, **wire_env(base), "PYTHONUNBUFFERED": "1", "AIX_FRONTEND": "live"}
        km, kc = start_new_kernel(kernel_name="python3", env=env, cwd="/tmp")
        try:
            _execute(kc, f"%load_ext aix_jupyter\nxs = [f'item {{i}}' for i in range({m})]\n", 60)
            codes = {"paced": PACED.format(n=n, rate=RATE), "map": MAP.format(m=m)}
            _execute(kc, MAP.format(m=m), 120)  # warm-up
            for r in range(rounds):
                order = ("paced", "map") if r % 2 == 0 else ("map", "paced")
                for name in order:
                    t0 = time.monotonic()
                    _, iopub = _execute(kc, codes[name], 300)
                    wall = time.monotonic() - t0
                    items = n if name == "paced" else m
                    comm = sum(1 for msg in iopub if msg["msg_type"] == "comm_msg")
                    runs[name].append({"wall": wall, "items_per_s": items / wall, "comm_msgs": comm})
                    print(f"round {r + 1} {name}: {runs[name][-1]}", file=sys.stderr)
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)

    def summary(name: str) -> dict[str, float]:
        xs = runs[name]
        return {
            "items_per_second": round(median([x["items_per_s"] for x in xs]), 1),
            "messages_per_second": round(median([x["comm_msgs"] / x["wall"] for x in xs]), 2),
            "comm_msgs_per_run": median([x["comm_msgs"] for x in xs]),
        }

    paced, mapped = summary("paced"), summary("map")
    result = {
        "mode": "quick" if args.quick else "full",
        "rounds": rounds,
        "paced_items": n,
        "paced_items_per_second_target": RATE,
        "map_inputs": m,
        "paced": paced,
        "map": mapped,
        "runs": runs,
        "target": "<= 10 frontend messages/s while 1 000 items/s complete",
        "met": paced["messages_per_second"] <= 10 and mapped["messages_per_second"] <= 10,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    save("batch_progress", result)


if __name__ == "__main__":
    main()
