"""The client's limits against a hostile loopback server, measured (figures for README "Client").

    PYTHONPATH=$PWD .venv/bin/python benchmarks/limits_client.py

Each line: what the server does, what the client answered, how long it took, how long after the
call returned the server saw the connection closed, and the RSS growth of this process.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aix_jupyter import Model
from aix_jupyter.core.streaming import SSEDecoder
from tests.core.hostile import BLOCK, Hostile, rss_bytes

MB = 1024 * 1024


def endless(h, conn, request):
    h.head(conn, Content_Type="application/json", Content_Length=str(10**12))
    h.flood(conn, pause=0.002)


def flood(h, conn, request):
    h.head(conn, Content_Type="application/json", Connection="close")
    h.flood(conn, 300 * MB)


def sse_flood(h, conn, request):
    h.head(conn, Content_Type="text/event-stream", Connection="close")
    event = b'data: {"data": "' + b"y" * 4000 + b'"}\n\n'
    while not h.stopping:
        h.send(conn, event * 16)


def silent(h, conn, request):
    h.wait_stop(conn)


def measure(name, behaviour, method, **kwargs):
    with Hostile(behaviour) as h:
        model = Model("m", url=h.run_url, api_key="k", supports_streaming=True)
        before = rss_bytes()
        start = time.monotonic()
        result = getattr(model, method)("x", **kwargs)
        if method == "run_stream":
            result = [*result][-1]
        ended = time.monotonic()
        growth = rss_bytes() - before
        closed = h.hung_up.wait(3)
        after = (h.hung_up_at - ended) if closed else float("nan")
        print(
            json.dumps(
                {
                    "case": name,
                    "status": str(result.status),
                    "message": result.error_message[:90],
                    "seconds": round(ended - start, 3),
                    "closed_after_return_s": round(after, 3),
                    "server_sent_MB": round(h.sent / MB, 1),
                    "rss_growth_MB": round(growth / MB, 1),
                }
            )
        )


def main() -> None:
    os.environ["AIX_MAX_REPLY_BYTES"] = str(10**12)  # so that the deadline, not the cap, ends it
    measure("endless body (~30 MB/s), run(timeout=2)", endless, "run", timeout=2)
    os.environ["AIX_MAX_REPLY_BYTES"] = str(32 * MB)  # the default
    measure("300 MB body, run, default 32 MiB cap", flood, "run", timeout=60)
    measure("endless SSE events, run_stream, default cap", sse_flood, "run_stream", timeout=60)
    measure("silent server, run_stream(timeout=2)", silent, "run_stream", timeout=2)
    for mb in (8, 16, 32):
        decoder = SSEDecoder()
        start = time.perf_counter()
        decoder.feed(b"data: ")
        for _ in range(mb * 16):
            decoder.feed(BLOCK)
        took = round(time.perf_counter() - start, 3)
        print(json.dumps({"case": f"SSE decode, {mb} MB line", "seconds": took}))


if __name__ == "__main__":
    main()
