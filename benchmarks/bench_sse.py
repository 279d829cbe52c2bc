"""Streaming: 100 000 SSE chunks received and parsed, our streamer vs the SDK's.

    .venv/bin/python benchmarks/bench_sse.py [--quick] [--chunks 100000]

The plain wire server (its own process) answers ``run_stream`` on model ``sse-<n>`` with <n> events
``data: {"data": "tok<i> "}`` and ``data: [DONE]``, written in large blocks so the server is never the
bottleneck. Each client (own process) calls ``Model(...).run_stream("x")`` and iterates to the end,
checking that it saw all <n> chunks in order; the time covers the request, the HTTP read and the
parsing into ``ModelResponse`` chunks. Rounds interleave the two clients; the figure is the median.
A second figure times parsing alone: the same SSE text, already split into lines in memory, through
each side's public ``ModelResponseStreamer(lines)`` constructor.
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
)


def serve_worker(name: str) -> None:
    if name == "ours":
        from aix_jupyter.core.model import Model
        from aix_jupyter.core.streaming import ModelResponseStreamer

        def make(model_id: str) -> object:
            return Model(model_id, name="sse", supports_streaming=True)

    else:
        from aixplain.modules.model import Model
        from aixplain.modules.model.model_response_streamer import ModelResponseStreamer

        def make(model_id: str) -> object:
            m = Model(model_id, name="sse", api_key=os.environ["TEAM_API_KEY"], supports_streaming=True)
            m.url = os.environ["MODELS_RUN_URL"]
            return m

    def stream(n: int) -> dict[str, float]:
        model = make(f"sse-{n}")
        t0 = time.perf_counter()
        seen = 0
        yielded = 0
        last = ""
        for chunk in model.run_stream("x"):  # type: ignore[attr-defined]
            yielded += 1
            if chunk.data:
                seen += 1
                last = chunk.data
        dt = time.perf_counter() - t0
        assert seen == n and last == f"tok{n - 1} ", (seen, last)
        return {"seconds": dt, "yielded": yielded}

    def parse(n: int) -> dict[str, float]:
        """Parsing alone: the same SSE lines, already in memory, through the public streamer."""
        lines = "".join(f'data: {{"data": "tok{i} "}}\n\n' for i in range(n)) + "data: [DONE]\n\n"
        split = lines.splitlines()
        t0 = time.perf_counter()
        seen = sum(1 for chunk in ModelResponseStreamer(iter(split)) if chunk.data)
        dt = time.perf_counter() - t0
        assert seen == n, seen
        return {"seconds": dt}

    worker_main({"stream": stream, "parse": parse})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 7")
    parser.add_argument("--chunks", type=int, default=100_000)
    args = parser.parse_args()
    require(compare_has("aixplain"), f"the comparison venv has no aixplain: {SETUP_HINT}")
    rounds = 3 if args.quick else 7
    me = Path(__file__).resolve()
    from common import workers

    times: dict[str, list[float]] = {"ours": [], "aixplain": []}
    parse_times: dict[str, list[float]] = {"ours": [], "aixplain": []}
    yielded: dict[str, int] = {}
    with (
        wire_server(OUR_PY) as base,
        workers((OUR_PY, me, "ours", ()), (CMP_PY, me, "aixplain", ()), env=wire_env(base)) as ws,
    ):
        for w in ws:
            w.call("stream", n=1000)  # warm-up
        for r in range(rounds):
            for w in ws if r % 2 == 0 else reversed(ws):
                out = w.call("stream", timeout=300, n=args.chunks)
                times[w.name].append(out["seconds"])
                yielded[w.name] = out["yielded"]
                parse_times[w.name].append(w.call("parse", timeout=300, n=args.chunks)["seconds"])
    med = {k: round(median(v), 3) for k, v in times.items()}
    ratio = round(med["ours"] / med["aixplain"], 3)
    pmed = {k: round(median(v), 3) for k, v in parse_times.items()}
    result = {
        "mode": "quick" if args.quick else "full",
        "rounds": rounds,
        "chunks": args.chunks,
        "median_seconds": med,
        "chunks_per_second": {k: round(args.chunks / v) for k, v in med.items()},
        "chunks_yielded": yielded,
        "parse_only_median_seconds": pmed,
        "ratios": {
            "ours / aixplain (time)": ratio,
            "parse only, ours / aixplain (time)": round(pmed["ours"] / pmed["aixplain"], 3),
        },
        "target": "ours <= 0.4 x aixplain's time",
        "met": ratio <= 0.4,
    }
    print(json.dumps(result, indent=2))
    save("sse", result)


if __name__ == "__main__":
    wn = worker_name(sys.argv)
    if wn:
        serve_worker(wn[0])
    else:
        main()
