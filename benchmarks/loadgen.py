"""A small closed-loop HTTP/1.1 load generator on raw asyncio sockets (loopback only).

Far cheaper per request than an HTTP client library, so on a 2-core machine the server, not the
generator, is what limits the rate. ``C`` keep-alive connections each send one request, read the
whole reply (Content-Length or chunked), and send the next, for a bounded time.

    python benchmarks/loadgen.py URL --seconds 3 --connections 16 [--body JSON] [--header 'k: v']
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit


async def _read_reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip().lower()
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    if headers.get("transfer-encoding") == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                return status, b"".join(parts)
    return status, await reader.read()


async def run_load(
    url: str, seconds: float, connections: int, body: bytes | None, headers: dict[str, str]
) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    if not (host.startswith("127.") or host == "localhost"):
        raise SystemExit("loadgen: loopback only")
    method = "POST" if body is not None else "GET"
    head = [f"{method} {parts.path or '/'} HTTP/1.1", f"Host: {host}:{port}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")
    counts = {"ok": 0, "bad": 0}
    latencies: list[float] = []
    first_reply: list[bytes] = []
    deadline = time.monotonic() + seconds

    async def conn() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                writer.write(request)
                status, payload = await _read_reply(reader)
                latencies.append(time.perf_counter() - t0)
                if not first_reply:
                    first_reply.append(payload)
                counts["ok" if status == 200 else "bad"] += 1
        finally:
            writer.close()

    t0 = time.monotonic()
    await asyncio.gather(*(conn() for _ in range(connections)))
    elapsed = time.monotonic() - t0
    latencies.sort()
    return {
        "requests": counts["ok"] + counts["bad"],
        "errors": counts["bad"],
        "seconds": elapsed,
        "rps": counts["ok"] / elapsed,
        "latency_p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else float("nan"),
        "latency_p95_ms": 1000 * latencies[int(len(latencies) * 0.95)] if latencies else float("nan"),
        "first_reply": first_reply[0].decode(errors="replace")[:300] if first_reply else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--body", default=None)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args()
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    body = args.body.encode() if args.body is not None else None
    seconds = min(args.seconds, 60.0)
    print(json.dumps(asyncio.run(run_load(args.url, seconds, args.connections, body, headers))))


if __name__ == "__main__":
    main()
