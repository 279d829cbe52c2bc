"""A small, real HTTP server on loopback that speaks the aiXplain wire, with scriptable faults.

Used by the core's protocol tests, and reusable by benchmark scripts as a plain wire server::

    from tests.core.wireserver import WireServer

    with WireServer() as server:               # 127.0.0.1, random free port, threaded
        model = Model("echo", url=server.run_url)   # server.run_url = <base>/api/v1/execute
        model.run("hi")                         # -> SUCCESS, data "echo: hi"

Default behaviour (no script):

* ``POST /api/v2/execute/{id}``: answers at once ``{"status": "SUCCESS", "completed": true, "data":
  "echo: <data>"}`` when ``job_seconds == 0``; else starts a job and answers IN_PROGRESS + poll URL.
  With ``"options": {"stream": true}`` it streams ``stream_chunks`` (default: the words of the
  input) as server-sent events, then ``data: [DONE]``.
* ``POST /api/v1/execute/{id}``: starts a job (``job_seconds`` long) -> IN_PROGRESS + poll URL.
* ``GET /api/v1/data/{job}``: ``{"completed": false, "progress": .., "eta": ..}`` while running
  (progress only when ``progress=True``), then the SUCCESS reply. ``Prefer: wait=N`` holds the
  poll until the job ends or N s pass when ``hold=True`` (answering ``Preference-Applied``);
  with ``hold=False`` the header is ignored (a plain, non-holding server).
* ``DELETE /api/v1/data/{job}``: cancels -> ``{"cancelled": true}``.
* ``GET /sdk/models/{id}``, ``/sdk/models/by-name/{name}``, ``/sdk/models?ids=a,b`` (in pages of
  ``ids_page_size`` with ``pageTotal``, the models in the page, when set), ``POST /sdk/models/paginate``,
  ``DELETE /sdk/models/{id}``, ``GET /sdk/finetune/{id}/ml-logs``: from ``models`` /
  ``finetune_logs``.
* ``POST /sdk/file/upload/temp-url`` -> ``{key, uploadUrl, downloadUrl}``; ``PUT`` stores the
  bytes in ``uploads``; ``GET`` of the download URL answers them (the first bytes of a ``Range: bytes=0-N``
  request when ``ranges`` is set).

Scripting: ``server.script("POST /api/v2/execute", Reply(...), Reply(...))`` queues replies for
requests whose "METHOD path" starts with the given prefix; each is used once, in order, before
the default behaviour resumes. A ``Reply`` can delay, hang (never answer), send any status,
headers, JSON or raw body, a list of SSE events, or close a stream before ``[DONE]``.
Every request is recorded in ``server.requests`` (method, path, headers, body, query string).
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    hang: bool = False  # never answer (until the server stops)
    sse: list[str] | None = None  # raw SSE event payloads (each sent as "data: <p>\n\n")
    sse_raw: bytes | None = None  # raw bytes of an event stream
    sse_delay: float = 0.0  # seconds between events
    close_early: bool = False  # end the stream without [DONE]
    trickle: float = 0.0  # send the body one byte every `trickle` seconds
    call: Callable[[Recorded], Any] | None = None  # computes the JSON body from the request


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    query: str = ""  # the raw query string

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Job:
    id: str
    model_id: str
    data: Any
    started: float
    seconds: float
    cancelled: bool = False
    result: Any = None

    def done(self) -> bool:
        return self.cancelled or time.monotonic() - self.started >= self.seconds


def default_metadata(model_id: str, **extra: Any) -> dict[str, Any]:
    meta = {
        "id": model_id,
        "name": f"Model {model_id}",
        "description": "a test model",
        "supplier": {"id": 1, "name": "TestSupplier", "code": "test"},
        "function": {"id": "text-generation", "name": "Text Generation"},
        "pricing": {"price": 0.0},
        "version": {"id": "1.0", "name": "1.0"},
        "supportsStreaming": True,
        "functionType": "ai",
        "createdAt": "2024-01-02T03:04:05Z",
        "status": "onboarded",
        "params": [
            {"name": "text", "required": True, "dataType": "text", "values": [], "defaultValues": []},
            {
                "name": "temperature",
                "required": False,
                "dataType": "number",
                "defaultValues": [{"value": 0.7}],
                "minValue": 0,
                "maxValue": 2,
            },
        ],
    }
    meta.update(extra)
    return meta


class _Server(ThreadingHTTPServer):
    # the default listen backlog (5) drops connections opened at once by a batch of clients,
    # which then wait a whole SYN retransmit (1 s)
    request_queue_size = 128


class WireServer:
    handler: type[_Handler]  # the request handler class (subclasses may extend it); set below

    def __init__(self, *, job_seconds: float = 0.0, hold: bool = True, progress: bool = False) -> None:
        self.job_seconds = job_seconds
        self.hold = hold
        self.ranges = False  # answer "Range: bytes=0-N" with the first bytes (206)
        self.progress = progress
        self.stream_chunks: list[str] | None = None
        self.models: dict[str, dict[str, Any]] = {"echo": default_metadata("echo")}
        self.finetune_logs: dict[str, Any] = {}
        self.ids_page_size: int | None = None
        self.uploads: dict[str, bytes] = {}
        self.jobs: dict[str, Job] = {}
        self.requests: list[Recorded] = []
        self._scripts: list[tuple[str, list[Reply]]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> WireServer:
        server = self

        class Handler(self.handler):  # type: ignore[name-defined,misc]
            wire = server

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="wireserver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> WireServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def run_url(self) -> str:
        return self.url + "/api/v1/execute"

    # -- scripting ------------------------------------------------------------------------------
    def script(self, prefix: str, *replies: Reply) -> None:
        with self._lock:
            self._scripts.append((prefix, list(replies)))

    def _scripted(self, method: str, path: str) -> Reply | None:
        key = f"{method} {path}"
        with self._lock:
            for prefix, replies in self._scripts:
                if key.startswith(prefix) and replies:
                    return replies.pop(0)
        return None

    def seen(self, method: str, prefix: str = "") -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]

    def poll_url(self, job_id: str) -> str:
        return f"{self.url}/api/v1/data/{job_id}"

    def start_job(self, model_id: str, data: Any, seconds: float | None = None) -> Job:
        job = Job(
            uuid.uuid4().hex[:12],
            model_id,
            data,
            time.monotonic(),
            self.job_seconds if seconds is None else seconds,
        )
        with self._lock:
            self.jobs[job.id] = job
        return job

    def job_reply(self, job: Job) -> dict[str, Any]:
        if job.cancelled:
            return {"completed": True, "status": "FAILED", "error_message": "Run cancelled by the client."}
        if not job.done():
            body: dict[str, Any] = {"completed": False, "status": "IN_PROGRESS"}
            if self.progress:
                elapsed = time.monotonic() - job.started
                body["progress"] = round(min(1.0, elapsed / job.seconds), 3) if job.seconds else 1.0
                body["eta"] = round(max(0.0, job.seconds - elapsed), 3)
            return body
        return {
            "completed": True,
            "status": "SUCCESS",
            "data": job.result if job.result is not None else f"echo: {job.data}",
            "usedCredits": 0.01,
            "runTime": job.seconds,
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        }


class _Handler(BaseHTTPRequestHandler):
    wire: WireServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every reply
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # -- plumbing -------------------------------------------------------------------------------
    def _read(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        trickle: float = 0.0,
    ) -> None:
        payload = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        self.send_response(status)
        hdrs = {"Content-Type": "application/json"} if raw is None else {}
        hdrs.update(headers or {})
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if trickle:
            for i in range(len(payload)):
                if self.wire._stopping.wait(trickle):
                    return
                self.wfile.write(payload[i : i + 1])
                self.wfile.flush()
        else:
            self.wfile.write(payload)

    def _sse(self, events: list[bytes], *, delay: float = 0.0, done: bool = True, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for event in events:
            if delay and self.wire._stopping.wait(delay):
                return
            self.wfile.write(event)
            if delay:
                self.wfile.flush()
        if done:
            self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _handle(self, method: str) -> None:
        wire = self.wire
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        body = self._read()
        headers = {k.lower(): v for k, v in self.headers.items()}
        rec = Recorded(method, path, headers, body, time.monotonic(), parts.query)
        with wire._lock:
            wire.requests.append(rec)
        reply = wire._scripted(method, parts.path)
        if reply is not None:
            self._scripted_reply(reply, rec)
            return
        self._default(method, parts.path, rec)

    def _scripted_reply(self, reply: Reply, rec: Recorded) -> None:
        if reply.hang:
            self.wire._stopping.wait()
            self.close_connection = True
            return
        if reply.delay and self.wire._stopping.wait(reply.delay):
            return
        if reply.sse is not None or reply.sse_raw is not None:
            events = [f"data: {p}\n\n".encode() for p in (reply.sse or [])]
            if reply.sse_raw is not None:
                events.append(reply.sse_raw)
            self._sse(events, delay=reply.sse_delay, done=not reply.close_early, status=reply.status)
            return
        body = reply.call(rec) if reply.call is not None else reply.json
        self._send(reply.status, body, reply.headers, reply.body, reply.trickle)

    # -- default wire behaviour -------------------------------------------------------------------
    def _default(self, method: str, path: str, rec: Recorded) -> None:
        wire = self.wire
        segs = [unquote(s) for s in path.strip("/").split("/")]
        if method == "POST" and path.startswith(("/api/v1/execute/", "/api/v2/execute/")):
            model_id = unquote(path.split("/execute/", 1)[1])
            payload = rec.json() or {}
            data = payload.get("data")
            if path.startswith("/api/v2/") and (payload.get("options") or {}).get("stream"):
                chunks = wire.stream_chunks if wire.stream_chunks is not None else str(data).split()
                events = [b"data: " + json.dumps({"data": c + " "}).encode() + b"\n\n" for c in chunks]
                self._sse(events)
                return
            if path.startswith("/api/v2/") and wire.job_seconds <= 0:
                self._send(
                    200,
                    {
                        "status": "SUCCESS",
                        "completed": True,
                        "data": f"echo: {data}",
                        "usedCredits": 0.01,
                        "runTime": 0.001,
                        "requestId": "r1",
                    },
                )
                return
            job = wire.start_job(model_id, data)
            self._send(200, {"status": "IN_PROGRESS", "data": wire.poll_url(job.id), "completed": False})
            return
        if path.startswith("/api/v1/data/"):
            job = wire.jobs.get(segs[-1])
            if job is None:
                self._send(404, {"error": "job not found"})
                return
            if method == "DELETE":
                cancelled = not job.done()
                job.cancelled = job.cancelled or cancelled
                self._send(200, {"cancelled": cancelled})
                return
            headers = {}
            prefer = rec.headers.get("prefer", "")
            if wire.hold and "wait=" in prefer:
                wait = float(prefer.split("wait=", 1)[1].split(",")[0].split(";")[0])
                end = time.monotonic() + wait
                while not job.done() and time.monotonic() < end and not wire._stopping.is_set():
                    time.sleep(0.005)
                headers["Preference-Applied"] = f"wait={wait:g}"
            self._send(200, wire.job_reply(job), headers)
            return
        if path == "/sdk/models/paginate" and method == "POST":
            query = (rec.json() or {}).get("q", "")
            items = [m for m in wire.models.values() if query.lower() in m["name"].lower()]
            self._send(200, {"items": items, "total": len(items)})
            return
        if path == "/sdk/models" and method == "GET":
            query = parse_qs(rec.query)
            ids = [i for i in query.get("ids", [""])[0].split(",") if i]
            items = [wire.models[i] for i in ids if i in wire.models]
            if wire.ids_page_size is None:
                self._send(200, {"items": items, "total": len(items)})
                return
            number, size = int(query.get("pageNumber", ["0"])[0]), wire.ids_page_size
            page = items[number * size : (number + 1) * size]
            self._send(
                200, {"items": page, "total": len(items), "pageTotal": len(page), "pageNumber": number}
            )
            return
        if path.startswith("/sdk/models/by-name/") and method == "GET":
            name = segs[-1]
            found = [m for m in wire.models.values() if m["name"] == name]
            self._send(200, found[0]) if found else self._send(404, {"error": f"no model named {name}"})
            return
        if path.startswith("/sdk/models/"):
            model_id = unquote(path[len("/sdk/models/") :])
            meta = wire.models.get(model_id)
            if meta is None:
                self._send(404, {"error": f"model {model_id} not found"})
            elif method == "DELETE":
                del wire.models[model_id]
                self._send(200, {"deleted": True})
            else:
                self._send(200, meta)
            return
        if path.startswith("/sdk/finetune/") and method == "GET":
            logs = wire.finetune_logs.get(segs[2])
            self._send(200, logs) if logs is not None else self._send(404, {"error": "no fine-tune job"})
            return
        if path == "/sdk/file/upload/temp-url" and method == "POST":
            key = uuid.uuid4().hex[:10]
            self._send(
                200,
                {
                    "key": key,
                    "uploadUrl": f"{wire.url}/upload/{key}",
                    "downloadUrl": f"{wire.url}/files/{key}",
                },
            )
            return
        if path.startswith("/upload/") and method == "PUT":
            wire.uploads[segs[-1]] = rec.body
            self._send(200, None, raw=b"")
            return
        if path.startswith("/files/") and method == "GET" and segs[-1] in wire.uploads:
            content = wire.uploads[segs[-1]]
            wanted = rec.headers.get("range", "")
            if wire.ranges and wanted.startswith("bytes=0-"):  # the first bytes only
                self._send(206, None, raw=content[: int(wanted[len("bytes=0-") :]) + 1])
                return
            self._send(200, None, raw=content)
            return
        self._send(404, {"error": f"no route {method} {path}"})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


WireServer.handler = _Handler
