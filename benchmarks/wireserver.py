"""A plain loopback server speaking the aiXplain model wire, for client-side benchmarks.

Standard library only, so it runs under any interpreter, in its own process (it never shares a GIL
with the client being measured). It is deliberately *plain*: polls are answered at once (no held
polls), so the client's own poll schedule decides when a finished job is noticed.

    python benchmarks/wireserver.py [--port 0]      # prints "READY <base url>" on stdout

Routes (any API key is accepted; every reply is JSON unless stated):
* POST /api/v2/execute/echo              -> SUCCESS at once, ``data`` = the request's ``data``
* POST /api/v{1,2}/execute/job-<ms>      -> IN_PROGRESS with a poll URL; the job ends <ms> later
* POST /api/v1/execute/echo              -> IN_PROGRESS; the job is already finished
* POST /api/v2/execute/sleep-<ms>        -> SUCCESS after <ms> (``data`` = the request's ``data``);
  ``GET /stats/open`` -> ``{"open", "max_open"}``: such runs in progress now / at most at once
  (``DELETE /stats/open`` starts counting ``max_open`` afresh)
* POST /api/v{1,2}/execute/held-<ms>     -> IN_PROGRESS; a job of <ms> whose polls honour ``Prefer:
  wait=N`` (held until the job ends or N s pass, answering ``Preference-Applied``); it counts as
  open (``/stats/open``) until the poll that reports its end. Other jobs' polls are never held.
* POST /api/v2/execute/sse-<n>[-<rate>]  with ``options.stream`` -> <n> SSE chunks, then
  ``data: [DONE]``; written as fast as possible, or paced at <rate> chunks/s; then the connection closes
* GET  /api/v1/data/<job>                -> ``{"completed": false}`` or the finished job
* GET  /stats/<job>                      -> ``{"polls", "created", "end"}`` (``time.monotonic()`` values,
  comparable across processes on Linux)
* GET  /sdk/models/<id>                  -> minimal model metadata (one text input, streaming)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import sys
import time
from dataclasses import dataclass, field
from urllib.parse import unquote


@dataclass
class Job:
    created: float
    end: float
    polls: int = 0
    data: str = "done"
    poll_times: list[float] = field(default_factory=list)
    held: bool = False  # polls honour Prefer: wait (held-<ms> jobs only)
    closed: bool = False  # a held job's end was reported (it no longer counts as open)


JOBS: dict[str, Job] = {}
_ids = itertools.count(1)
BASE = ""
REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
MAX_JOBS = 50_000
OPEN = {"open": 0, "max_open": 0}  # sleep-<ms> runs in progress


def _json_reply(status: int, body: object, keep_alive: bool, extra: str = "") -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'OK')}\r\n{extra}"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    return head.encode() + payload


def _new_job(duration_s: float, data: str = "done", held: bool = False) -> str:
    if len(JOBS) >= MAX_JOBS:
        JOBS.clear()
    job_id = f"j{next(_ids)}"
    now = time.monotonic()
    JOBS[job_id] = Job(created=now, end=now + duration_s, data=data, held=held)
    return job_id


def _opened() -> None:
    OPEN["open"] += 1
    OPEN["max_open"] = max(OPEN["max_open"], OPEN["open"])


def _model_metadata(model_id: str) -> dict[str, object]:
    return {
        "id": model_id,
        "name": model_id,
        "description": "benchmark model",
        "supplier": {"id": 1, "name": "bench", "code": "bench"},
        "function": {"id": "text-generation", "name": "Text Generation"},
        "pricing": {"price": 0},
        "version": {"id": "1", "name": "1"},
        "supportsStreaming": True,
        "functionType": "ai",
        "status": "onboarded",
        "params": [
            {
                "name": "text",
                "required": True,
                "isFixed": False,
                "values": [],
                "defaultValues": [],
                "availableOptions": [],
                "dataType": "text",
                "dataSubType": "text",
                "multipleValues": False,
            }
        ],
    }


async def _stream(writer: asyncio.StreamWriter, n: int, rate: float) -> None:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Connection: close\r\n\r\n"
    )
    if rate <= 0:
        # Pre-built in blocks so the server is never the bottleneck of a parsing benchmark.
        block: list[bytes] = []
        for i in range(n):
            block.append(b'data: {"data": "tok%d "}\n\n' % i)
            if len(block) == 2000:
                writer.write(b"".join(block))
                block.clear()
                await writer.drain()
        writer.write(b"".join(block) + b"data: [DONE]\n\n")
    else:
        start = time.monotonic()
        for i in range(n):
            due = start + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(b'data: {"data": "tok%d "}\n\n' % i)
            await writer.drain()
        writer.write(b"data: [DONE]\n\n")
    await writer.drain()


async def _handle(
    method: str, path: str, body: bytes, writer: asyncio.StreamWriter, keep: bool, prefer: str = ""
) -> bool:
    """Answer one request; return False when the connection must close."""
    path = path.split("?", 1)[0]
    m = re.fullmatch(r".*/api/v([12])/execute/(.+)", path)
    if method == "POST" and m:
        version, model = m.group(1), unquote(m.group(2))
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            writer.write(_json_reply(400, {"error": "malformed JSON"}, keep))
            return keep
        stream = isinstance(req.get("options"), dict) and req["options"].get("stream")
        sm = re.fullmatch(r"sse-(\d+)(?:-(\d+))?", model)
        if sm and stream:
            await _stream(writer, int(sm.group(1)), float(sm.group(2) or 0))
            return False
        zm = re.fullmatch(r"sleep-(\d+)", model)
        if zm and version == "2":
            _opened()
            try:
                await asyncio.sleep(int(zm.group(1)) / 1000)
            finally:
                OPEN["open"] -= 1
            reply = {"status": "SUCCESS", "completed": True, "data": req.get("data", ""), "usedCredits": 0}
            writer.write(_json_reply(200, reply, keep))
            return keep
        hm = re.fullmatch(r"held-(\d+)", model)
        if hm:
            _opened()
            job_id = _new_job(int(hm.group(1)) / 1000, str(req.get("data", "")), held=True)
            reply = {"status": "IN_PROGRESS", "data": f"{BASE}/api/v1/data/{job_id}"}
            writer.write(_json_reply(200, reply, keep))
            return keep
        jm = re.fullmatch(r"job-(\d+)", model)
        if model == "echo" and version == "2":
            reply = {
                "status": "SUCCESS",
                "completed": True,
                "data": req.get("data", ""),
                "usedCredits": 0,
                "runTime": 0.0,
                "requestId": "r",
            }
            writer.write(_json_reply(200, reply, keep))
            return keep
        if jm or model == "echo":
            job_id = _new_job(int(jm.group(1)) / 1000 if jm else 0.0)
            reply = {"status": "IN_PROGRESS", "data": f"{BASE}/api/v1/data/{job_id}"}
            writer.write(_json_reply(200, reply, keep))
            return keep
        writer.write(_json_reply(404, {"error": f"unknown model {model}"}, keep))
        return keep
    pm = re.fullmatch(r"/api/v1/data/(\w+)", path)
    if method == "GET" and pm:
        job = JOBS.get(pm.group(1))
        if job is None:
            writer.write(_json_reply(404, {"error": "unknown job"}, keep))
            return keep
        extra = ""
        wait = re.search(r"wait=([0-9.]+)", prefer) if job.held else None
        if wait:
            await asyncio.sleep(max(0.0, min(float(wait.group(1)), job.end - time.monotonic())))
            extra = f"Preference-Applied: wait={wait.group(1)}\r\n"
        now = time.monotonic()
        job.polls += 1
        job.poll_times.append(now)
        if now < job.end:
            reply: dict[str, object] = {"completed": False, "status": "IN_PROGRESS"}
        else:
            reply = {"completed": True, "status": "SUCCESS", "data": job.data, "usedCredits": 0, "runTime": 0}
            if job.held and not job.closed:
                OPEN["open"] -= 1
                job.closed = True
        writer.write(_json_reply(200, reply, keep, extra))
        return keep
    if path == "/stats/open" and method in ("GET", "DELETE"):
        if method == "DELETE":
            OPEN["max_open"] = OPEN["open"]
        writer.write(_json_reply(200, OPEN, keep))
        return keep
    sm2 = re.fullmatch(r"/stats/(\w+)", path)
    if method == "GET" and sm2:
        job = JOBS.get(sm2.group(1))
        if job is None:
            writer.write(_json_reply(404, {"error": "unknown job"}, keep))
        else:
            stats = {"polls": job.polls, "created": job.created, "end": job.end, "poll_times": job.poll_times}
            writer.write(_json_reply(200, stats, keep))
        return keep
    mm = re.fullmatch(r"/sdk/models/(.+)", path)
    if method == "GET" and mm:
        writer.write(_json_reply(200, _model_metadata(unquote(mm.group(1))), keep))
        return keep
    writer.write(_json_reply(404, {"error": f"no route {method} {path}"}, keep))
    return keep


async def _connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            lines = head.decode("latin-1").split("\r\n")
            method, path, proto = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0") or 0)
            body = await reader.readexactly(length) if length else b""
            keep = proto == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
            keep = await _handle(method, path, body, writer, keep, headers.get("prefer", ""))
            await writer.drain()
            if not keep:
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        return
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _main(host: str, port: int, lifetime: float) -> None:
    global BASE
    server = await asyncio.start_server(_connection, host, port, backlog=512)
    sock_port = server.sockets[0].getsockname()[1]
    BASE = f"http://{host}:{sock_port}"
    print(f"READY {BASE}", flush=True)
    async with server:
        # Bounded: the server stops by itself even if its parent forgets it.
        await asyncio.sleep(lifetime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--lifetime", type=float, default=1800.0, help="seconds before it exits by itself")
    args = parser.parse_args()
    if not args.host.startswith("127.") and args.host != "localhost":
        sys.exit("wireserver: loopback only")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(args.host, args.port, args.lifetime))


if __name__ == "__main__":
    main()
