"""The ASGI application: the aiXplain model wire (PROTOCOL.md), served by Starlette.

Endpoints (``{id}`` may contain ``/``, sent raw or as ``%2F``)::

    POST   /api/v1/execute/{id}              start a run -> {"status": "IN_PROGRESS", "data": <poll url>}
    POST   /api/v2/execute/{id}              run and wait (a slow model answers IN_PROGRESS + poll url);
                                             with {"options": {"stream": true}}: server-sent events
    GET    /api/v1/data/{job}                poll (``Prefer: wait=N`` holds it up to N <= 30 s)
    DELETE /api/v1/data/{job}                cancel -> {"cancelled": true|false, ...}
    GET    /sdk/models/{id}                  model metadata; /sdk/models/by-name/{name}; /sdk/models?ids=a,b
    POST   /sdk/models/paginate              {q, pageNumber, pageSize, functions, ioFilter, sort}
                                             -> {items, total} (see catalog.py for the filters)
    DELETE /sdk/models/{id}                  delete a registered model (built-ins 403; alias /sdk/utilities)
    GET    /sdk/finetune/{id}/ml-logs        404 JSON: no local model is a fine-tune
    POST   /sdk/file/upload/temp-url         -> {key, uploadUrl, downloadUrl}; PUT/GET the signed /files/{id}
    GET    /health                           liveness (no token needed)

Every request but ``/health`` and the signed file URLs needs the token (``x-api-key: T`` or
``Authorization: Token T``). Every error is a JSON body ``{"error", "statusCode", "message"}``: 400
malformed JSON (or valid JSON the server will not take: nested deeper than ``MAX_JSON_DEPTH``, a
number too long or out of range, a lone UTF-16 surrogate), 401 no/wrong token, 403 a file URL that
is forged or expired, 404 unknown model or job, 408 a request body not received in time, 409 a file
URL used twice, 410 a finished run whose result is no longer kept, 413 body too large, 429
(+ Retry-After) too many queued runs, 490 a parameter that fails the model's schema (the SDK's
"validation" range). Replies always serialise: text that UTF-8 cannot carry is sent \\u-escaped.

Poll and file URLs are built from the configured public URL, else from the address the connection
reached (the ASGI ``server``), never from the request's ``Host`` header.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aix_jupyter.backend.catalog import LANGUAGE_CODES, SORT_KEYS, Catalog, CatalogError, ModelSpec
from aix_jupyter.backend.jobs import FileSink, Job, JobState, JobStore, ServerBusy, jsonable
from aix_jupyter.backend.uploads import Upload, UploadError, UploadStore, served_type

logger = logging.getLogger("aix_jupyter.backend")

VALIDATION_STATUS = 490  # "validation" in the aiXplain status ranges (490-499)
MAX_HELD_POLL = 30.0
#: the deepest nesting of arrays and objects a request body may have
MAX_JSON_DEPTH = 100
_SURROGATE = re.compile("[\ud800-\udfff]")
#: a surrogate in a raw body: escaped, or UTF-8-style bytes (``json`` decodes with ``surrogatepass``)
_ESCAPED_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_RAW_SURROGATE = re.compile(rb"\xed[\xa0-\xbf]")
OPEN_PATHS = ("/health", "/files/")


class WireError(Exception):
    """An error answered as JSON with an HTTP status."""

    def __init__(
        self, status: int, message: str, *, headers: dict[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers
        self.extra = extra


@dataclass
class BackendState:
    """Everything the app serves from; one per app."""

    catalog: Catalog
    token: str | None
    jobs: JobStore = field(default_factory=JobStore)
    uploads: UploadStore = field(default_factory=UploadStore)
    #: seconds the v2 (synchronous) path waits before answering IN_PROGRESS with a poll URL
    sync_wait: float = 2.0
    max_body: int = 10 * 1024 * 1024
    max_upload: int = 64 * 1024 * 1024
    #: seconds a request's whole body may take to arrive (slow-body attacks)
    body_timeout: float = 120.0
    #: base URL put into poll and file URLs; None = the address each connection reached
    public_url: str | None = None


def json_bytes(content: Any, *, compact: bool = True) -> bytes:
    """``content`` as UTF-8 JSON, whatever it holds.

    Non-finite floats become null; a string holding a lone surrogate (which UTF-8 cannot carry) makes
    the whole text ASCII with ``\\uXXXX`` escapes, which every JSON reader turns back into the same
    string. So a reply never fails to serialise, whatever a model returned.
    """
    separators = (",", ":") if compact else None
    try:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=separators)
    except ValueError:  # NaN or infinity somewhere
        content = jsonable(content)
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=separators)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=separators).encode()


class WireJSON(JSONResponse):
    """A JSON reply rendered with :func:`json_bytes` (never a 500 for content UTF-8 cannot carry)."""

    def render(self, content: Any) -> bytes:
        return json_bytes(content)


def _error_body(status: int, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": message, "statusCode": status, "message": message, **extra}


def json_error(
    status: int, message: str, *, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return WireJSON(_error_body(status, message, **extra), status_code=status, headers=headers)


class TokenAuth:
    """Pure-ASGI middleware: every request must carry the token, else 401 JSON."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.token is None or scope["path"].startswith(OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        supplied: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-api-key" and value.strip():
                supplied = value.strip()
                break
            if name == b"authorization":
                scheme, _, credential = value.partition(b" ")
                if scheme.lower() in (b"token", b"bearer"):
                    supplied = credential.strip()
        if supplied is None or not hmac.compare_digest(supplied, self.token):
            what = "Missing API token" if supplied is None else "Invalid API token"
            response = json_error(
                401, f"{what}: send it as 'x-api-key: <token>' or 'Authorization: Token <token>'"
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class CatchAll:
    """Pure-ASGI middleware: an unexpected exception becomes a 500 JSON reply, never a traceback.

    (Starlette's own handler re-raises after answering, which makes uvicorn reset the connection and
    print the traceback, into a notebook cell when the server is embedded in a kernel.)
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            logger.warning(
                "aix backend: %s on %s %s: %s", type(exc).__name__, scope["method"], scope["path"], exc
            )
            logger.debug("aix backend: traceback", exc_info=exc)
            if not started:
                response = json_error(
                    500, f"Internal server error ({type(exc).__name__}); the server keeps running"
                )
                await response(scope, receive, send)


# -- request helpers ----------------------------------------------------------------------------------
async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The request's body: 413 past ``limit`` bytes, 408 when it takes over ``timeout`` seconds."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise WireError(413, f"Request body too large ({int(length)} bytes; limit {limit} bytes)")
    size, parts = 0, []
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise WireError(413, f"Request body too large (over {limit} bytes)")
                parts.append(chunk)
    except TimeoutError:
        raise WireError(
            408, f"Request body not received within {timeout:g} s ({size} bytes arrived)"
        ) from None
    return b"".join(parts)


class _Refused(ValueError):
    """Valid JSON that the server will not take (raised while parsing)."""


def _parse_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Refused(f"the number {text[:30]}{'...' if len(text) > 30 else ''} is out of range")
    return value


def _parse_constant(name: str) -> float:
    raise _Refused(f"{name} is not a JSON number")


def parse_json(raw: bytes) -> Any:
    """Parse a request body; 400 naming the problem for bad JSON and for JSON the server refuses.

    Refused: nesting deeper than :data:`MAX_JSON_DEPTH`, integers over Python's digit limit, numbers
    out of float range, ``NaN``/``Infinity``, and strings with a lone surrogate (``"\\ud800"``), which
    no reply could carry back as UTF-8.
    """
    try:
        value = json.loads(raw, parse_float=_parse_float, parse_constant=_parse_constant)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WireError(400, f"Malformed JSON body: {exc}") from None
    except RecursionError:
        raise WireError(400, f"JSON body nested deeper than {MAX_JSON_DEPTH} levels") from None
    except _Refused as exc:
        raise WireError(400, f"Unsupported JSON body: {exc}") from None
    except ValueError as exc:  # int() over sys.get_int_max_str_digits()
        digits = re.search(r"limit \((\d+) digits\)", str(exc))
        limit = f"more than {digits.group(1)} digits" if digits else "too many digits"
        raise WireError(400, f"Unsupported JSON body: an integer with {limit}") from None
    if isinstance(value, dict | list):
        _check_tree(value, raw)
    elif isinstance(value, str) and _SURROGATE.search(value):
        raise WireError(400, "Unsupported JSON body: a lone UTF-16 surrogate, which UTF-8 cannot carry")
    return value


def _check_tree(value: Any, raw: bytes) -> None:
    """400 for nesting deeper than :data:`MAX_JSON_DEPTH` or a lone surrogate (iterative: no recursion).

    Linear, and cheap for big flat bodies: the depth walk runs only when the body has more brackets
    than the depth limit and visits containers only; strings are searched for surrogates only when
    the raw body could hold one.
    """
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH:  # (an upper bound of the depth)
        level, depth = [value], 0
        while level:  # level by level, containers only
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise WireError(400, f"JSON body nested deeper than {MAX_JSON_DEPTH} levels")
            below: list[Any] = []
            keep = below.append
            for item in level:
                for child in item.values() if type(item) is dict else item:
                    if type(child) is dict or type(child) is list:
                        keep(child)
            level = below
    if (b"\\u" in raw and _ESCAPED_SURROGATE.search(raw)) or (b"\xed" in raw and _RAW_SURROGATE.search(raw)):
        where = _lone_surrogate(value)
        if where is not None:
            raise WireError(
                400,
                f"Unsupported JSON body: the string at {where} holds a lone UTF-16 surrogate "
                "(\\ud800-\\udfff), which UTF-8 cannot carry",
            )


def _lone_surrogate(value: Any) -> str | None:
    """Where in ``value`` a string (or a key) holds a surrogate code point, else None.

    (``json`` joins a valid escaped pair into one code point, so any surrogate left is a lone one.)
    """
    stack: list[tuple[Any, str]] = [(value, "$")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return where
        elif isinstance(item, dict):
            for key, child in item.items():
                stack.append((key, f"{where} (a key)"))
                stack.append((child, f"{where}.{key[:40]}"))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))
    return None


async def read_object(request: Request, state: BackendState, *, allow_form: bool = False) -> dict[str, Any]:
    raw = await read_body(request, state.max_body, state.body_timeout)
    if allow_form and "application/x-www-form-urlencoded" in request.headers.get("content-type", ""):
        return dict(parse_qsl(raw.decode("utf-8", errors="replace")))
    if not raw.strip():
        raise WireError(400, 'Empty request body: send a JSON object such as {"data": "..."}')
    body = parse_json(raw)
    if not isinstance(body, dict):
        raise WireError(400, f"The JSON body must be an object, got {type(body).__name__}")
    return body


def base_url(request: Request, state: BackendState) -> str:
    """Where clients reach this server: the configured public URL, else the address the connection
    reached. Never the ``Host`` header, which the client chooses."""
    if state.public_url:
        return state.public_url.rstrip("/")
    server = request.scope.get("server") or ("127.0.0.1", None)
    host = f"[{server[0]}]" if ":" in server[0] else server[0]
    port = f":{server[1]}" if server[1] is not None else ""
    return f"{request.scope.get('scheme', 'http')}://{host}{port}"


def prepare_inputs(spec: ModelSpec, body: dict[str, Any], uploads: UploadStore) -> dict[str, Any]:
    """Check a run's body against the model's schema; return the inputs with defaults filled in.

    ``null`` values are ignored (the SDK sends unset options as null); ``data`` fills the model's
    primary input; unknown keys, wrong types and missing required inputs raise a 490 WireError.
    """
    params = spec.params
    names = set(params)  # (not ``key in params``: ModelParameters raises ParameterError for unknown keys)
    primary = spec.primary
    if primary is None:
        found = params.primary_input()
        primary = found.name if found is not None else None
    inputs: dict[str, Any] = {}
    for key, value in body.items():
        if value is None or key == "options":
            continue
        name = key
        if key not in names:
            if key == "data" and primary is not None:
                if primary in body and body[primary] is not None:
                    continue  # the explicit parameter wins over data
                name = primary
            elif key in spec.extra_inputs:
                inputs[key] = value
                continue
            else:
                valid = ", ".join(params) or "none"
                raise WireError(
                    VALIDATION_STATUS,
                    f"Unknown parameter '{key}' for model '{spec.id}'; valid parameters: {valid}",
                    parameter=key,
                )
        parameter = params[name]
        upload = uploads.resolve(value)
        if upload is None and uploads.is_link(value):
            raise WireError(
                VALIDATION_STATUS,
                f"The file behind '{name}' is unknown or expired (files are kept {uploads.ttl:g} s); "
                "upload it again",
                parameter=name,
            )
        if upload is not None:
            value = upload.read_text() if parameter.data_type in ("text", "label") else upload.local_path
        try:
            inputs[name] = parameter.check(value)
        except ValueError as exc:
            raise WireError(
                VALIDATION_STATUS, f"Invalid input for model '{spec.id}': {exc}", parameter=name
            ) from None
    for parameter in params.values():
        if parameter.name in inputs:
            continue
        if parameter.default is not None:
            inputs[parameter.name] = parameter.default
        elif parameter.required:
            hint = " (send it as 'data')" if parameter.name == primary else ""
            raise WireError(
                VALIDATION_STATUS,
                f"Missing required parameter '{parameter.name}' for model '{spec.id}'{hint}",
                parameter=parameter.name,
            )
    return inputs


def _held_wait(request: Request) -> float:
    match = re.search(r"\bwait\s*=\s*([0-9]+(?:\.[0-9]+)?)", request.headers.get("prefer", ""))
    return min(float(match.group(1)), MAX_HELD_POLL) if match else 0.0


def _sse(payload: Any) -> bytes:
    text = payload.encode() if isinstance(payload, str) else json_bytes(payload, compact=False)
    return b"data: " + text + b"\n\n"


# -- endpoints (Starlette style: module-level functions reading ``request.app.state``) ---------------
def backend(request: Request) -> BackendState:
    """The state of the app serving ``request``."""
    return request.app.state.backend  # type: ignore[no-any-return]


def spec_or_404(state: BackendState, model_id: str) -> ModelSpec:
    spec = state.catalog.get(model_id)
    if spec is None:
        raise WireError(404, f"Model '{model_id}' not found; list the models with POST /sdk/models/paginate")
    return spec


def job_or_404(state: BackendState, job_id: str) -> Job:
    job = state.jobs.get(job_id)
    if job is None:
        why = state.jobs.forgotten(job_id)
        if why is not None:
            raise WireError(
                410, f"Run '{job_id}' finished but its result is no longer kept: {why}; run it again"
            )
        raise WireError(404, f"Run '{job_id}' not found (unknown, or finished long ago)")
    return job


def file_url(base: str, uploads: UploadStore, upload: Upload) -> str:
    """The signed URL of a stored file (an upload, or a model's output)."""
    return f"{base}/files/{upload.id}?{uploads.query(upload)}"


def file_sink(request: Request, state: BackendState) -> FileSink:
    """Where a run's output files go: the upload store, served back by signed ``/files`` URLs."""
    base = base_url(request, state)

    def save(data: bytes, name: str, content_type: str) -> str:
        return file_url(base, state.uploads, state.uploads.add(name, content_type, data))

    return save


def poll_url(request: Request, state: BackendState, job: Job) -> str:
    return f"{base_url(request, state)}/api/v1/data/{job.id}"


async def execute(request: Request, *, synchronous: bool) -> Response:
    state = backend(request)
    spec = spec_or_404(state, request.path_params["model_id"])
    body = await read_object(request, state)
    options = body.get("options")
    stream = bool(isinstance(options, dict) and options.get("stream"))
    inputs = prepare_inputs(spec, body, state.uploads)
    try:
        job = state.jobs.submit(spec, inputs, stream=stream, files=file_sink(request, state))
    except ServerBusy as exc:
        raise WireError(429, f"Too many runs: {exc}", headers={"Retry-After": "1"}) from None
    url = poll_url(request, state, job)
    if stream and synchronous:
        return StreamingResponse(
            stream_events(state, job),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "X-Aix-Poll-Url": url},
        )
    if synchronous:
        wait = spec.sync_wait if spec.sync_wait is not None else state.sync_wait
        if await state.jobs.wait(job, wait):
            return WireJSON(job.reply())
    return WireJSON({"status": "IN_PROGRESS", "data": url, "completed": False, "requestId": job.id})


async def stream_events(state: BackendState, job: Job) -> AsyncIterator[bytes]:
    """The server-sent events of a streamed run: its chunks, then ``[DONE]`` or a FAILED event."""
    try:
        if job.spec.streaming:
            async for chunk in job.chunks_stream():
                yield _sse({"data": chunk})
        else:
            await job.finished.wait()
            if job.state is JobState.SUCCEEDED:
                result = job.result
                yield _sse({"data": result if isinstance(result, str) else json.dumps(result)})
        if job.state is JobState.SUCCEEDED:
            yield _sse("[DONE]")
        else:
            reply = job.reply()
            yield _sse(
                {"status": "FAILED", "completed": True, "error_message": reply.get("error_message", "")}
            )
    finally:
        if not job.terminal:  # the client went away: stop the model's work
            state.jobs.cancel(job)


async def run_async(request: Request) -> Response:
    return await execute(request, synchronous=False)


async def run_sync(request: Request) -> Response:
    return await execute(request, synchronous=True)


async def poll(request: Request) -> Response:
    state = backend(request)
    job = job_or_404(state, request.path_params["job_id"])
    wait = _held_wait(request)
    headers = {}
    if wait > 0:
        headers["Preference-Applied"] = f"wait={wait:g}"
        await state.jobs.wait(job, wait)
    return WireJSON(job.reply(), headers=headers)


async def cancel(request: Request) -> Response:
    state = backend(request)
    job = job_or_404(state, request.path_params["job_id"])
    cancelled = state.jobs.cancel(job)
    return WireJSON({**job.reply(), "cancelled": cancelled})


async def get_model(request: Request) -> Response:
    return WireJSON(spec_or_404(backend(request), request.path_params["model_id"]).to_wire())


async def get_by_name(request: Request) -> Response:
    name = request.path_params["name"]
    spec = backend(request).catalog.by_name(name)
    if spec is None:
        raise WireError(404, f"No model named '{name}'")
    return WireJSON(spec.to_wire())


async def get_models(request: Request) -> Response:
    catalog = backend(request).catalog
    ids = [i for i in request.query_params.get("ids", "").split(",") if i]
    if not ids:
        raise WireError(
            400, "Give the models to fetch as ?ids=a,b (or list them with POST /sdk/models/paginate)"
        )
    items = [spec.to_wire() for i in ids if (spec := catalog.get(i)) is not None]
    return WireJSON({"items": items, "total": len(items)})


async def paginate(request: Request) -> Response:
    state = backend(request)
    body = await read_object(request, state)
    query = body.get("q") or ""
    functions = body.get("functions") or []
    page_number, page_size = body.get("pageNumber", 0), body.get("pageSize", 20)
    if not isinstance(query, str):
        raise WireError(400, "'q' must be a string")
    if isinstance(functions, str):
        functions = [functions]
    if not isinstance(functions, list):
        raise WireError(400, "'functions' must be a list of function slugs")
    for name, value, low in (("pageNumber", page_number, 0), ("pageSize", page_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise WireError(400, f"'{name}' must be an integer >= {low}, got {value!r}")
    page_size = min(page_size, 100)
    slugs = [f.get("id", "") if isinstance(f, dict) else str(f) for f in functions]
    found = state.catalog.search(
        query, slugs, io_filter=_io_filter(body.get("ioFilter")), sort=_sort(body.get("sort"))
    )
    page = found[page_number * page_size : (page_number + 1) * page_size]
    return WireJSON(
        {
            "items": [spec.to_wire() for spec in page],
            "total": len(found),
            "pageNumber": page_number,
            "pageSize": page_size,
            "pageTotal": -(-len(found) // page_size),
        }
    )


def _io_filter(value: Any) -> list[tuple[str, str]]:
    """The paginate body's ``ioFilter``: ``[{"code": "language" | "dialect" | "sourcelanguage" |
    "targetlanguage", "value": text}]`` as ``(code, value)`` pairs."""
    codes = [*LANGUAGE_CODES, "dialect"]
    if value is None:
        return []
    if not isinstance(value, list):
        raise WireError(400, "'ioFilter' must be a list of {code, value} objects")
    pairs = []
    for entry in value:
        code = entry.get("code") if isinstance(entry, dict) else None
        text = entry.get("value") if isinstance(entry, dict) else None
        if code not in codes or not isinstance(text, str):
            raise WireError(
                400, f"'ioFilter' entries are {{code, value}} with code one of {codes}, got {entry!r}"
            )
        pairs.append((code, text))
    return pairs


def _sort(value: Any) -> list[tuple[str, int]]:
    """The paginate body's ``sort``: ``[{"field": createdAt | normalizedPrice | totalSubscribed | name,
    "dir": 1 | -1}]`` as ``(field, dir)`` pairs."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise WireError(400, "'sort' must be a list of {field, dir} objects")
    keys = []
    for entry in value:
        field = entry.get("field") if isinstance(entry, dict) else None
        direction = entry.get("dir", 1) if isinstance(entry, dict) else None
        if field not in SORT_KEYS or direction not in (1, -1) or isinstance(direction, bool):
            raise WireError(
                400,
                f"'sort' entries are {{field, dir}} with field one of {list(SORT_KEYS)} and dir 1 or -1, "
                f"got {entry!r}",
            )
        keys.append((field, direction))
    return keys


async def delete_model(request: Request) -> Response:
    model_id = request.path_params["model_id"]
    try:
        backend(request).catalog.remove(model_id)
    except CatalogError as exc:
        raise WireError(exc.status, str(exc)) from None
    return WireJSON({"id": model_id, "deleted": True})


async def finetune_logs(request: Request) -> Response:
    spec = spec_or_404(backend(request), request.path_params["model_id"])
    raise WireError(404, f"Model '{spec.id}' is not a fine-tuned model, so it has no fine-tune logs")


async def temp_url(request: Request) -> Response:
    state = backend(request)
    body = await read_object(request, state, allow_form=True)
    try:
        upload = state.uploads.create(
            str(body.get("originalName") or "file"), str(body.get("contentType") or "")
        )
    except UploadError as exc:
        raise WireError(400, str(exc)) from None
    url = file_url(base_url(request, state), state.uploads, upload)
    return WireJSON({"key": upload.key, "uploadUrl": url, "downloadUrl": url})


def signed_upload(request: Request, state: BackendState) -> Upload:
    query = request.query_params
    try:
        return state.uploads.check(
            request.path_params["upload_id"], query.get("exp", ""), query.get("sig", "")
        )
    except UploadError as exc:
        raise WireError(403, f"{exc}; ask POST /sdk/file/upload/temp-url for a new one") from None


async def put_file(request: Request) -> Response:
    state = backend(request)
    upload = signed_upload(request, state)
    if upload.complete and state.uploads.repeats(
        upload, await read_body(request, state.max_upload, state.body_timeout)
    ):
        return WireJSON({"key": upload.key, "size": upload.size})  # a retry of the same upload
    try:
        state.uploads.begin(upload)
    except UploadError as exc:
        raise WireError(409, f"{exc}; ask POST /sdk/file/upload/temp-url for a new one") from None
    try:
        data = await read_body(request, state.max_upload, state.body_timeout)
    except BaseException:
        state.uploads.abort(upload)
        raise
    state.uploads.store(upload, data)
    return WireJSON({"key": upload.key, "size": upload.size})


#: headers of a served file: a download, never rendered or sniffed into something active
FILE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "private, no-store",
}


async def get_file(request: Request) -> Response:
    upload = signed_upload(request, backend(request))
    if not upload.complete:
        raise WireError(404, "Nothing was uploaded to this URL yet")
    return FileResponse(
        upload.path,
        media_type=served_type(upload.content_type),
        filename=upload.name,
        content_disposition_type="attachment",
        headers=FILE_HEADERS,
    )


async def health(request: Request) -> Response:
    state = backend(request)
    return WireJSON({"status": "ok", "models": len(state.catalog), "pending": state.jobs.pending})


async def on_wire_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WireError)
    return json_error(exc.status, exc.message, headers=exc.headers, **exc.extra)


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {
        404: f"No such endpoint: {request.method} {request.url.path}",
        405: f"Method {request.method} not allowed on {request.url.path}",
    }
    return json_error(exc.status_code, messages.get(exc.status_code, str(exc.detail)), headers=exc.headers)


ROUTES = [
    Route("/api/v1/execute/{model_id:path}", run_async, methods=["POST"]),
    Route("/api/v2/execute/{model_id:path}", run_sync, methods=["POST"]),
    Route("/api/v1/data/{job_id}", poll, methods=["GET"]),
    Route("/api/v1/data/{job_id}", cancel, methods=["DELETE"]),
    Route("/sdk/models/paginate", paginate, methods=["POST"]),
    Route("/sdk/models/by-name/{name:path}", get_by_name, methods=["GET"]),
    Route("/sdk/models", get_models, methods=["GET"]),
    Route("/sdk/models/{model_id:path}", get_model, methods=["GET"]),
    Route("/sdk/models/{model_id:path}", delete_model, methods=["DELETE"]),
    Route("/sdk/utilities/{model_id:path}", delete_model, methods=["DELETE"]),  # the SDK's UtilityModel
    Route("/sdk/finetune/{model_id:path}/ml-logs", finetune_logs, methods=["GET"]),
    Route("/sdk/file/upload/temp-url", temp_url, methods=["POST"]),
    Route("/files/{upload_id}", put_file, methods=["PUT"]),
    Route("/files/{upload_id}", get_file, methods=["GET"]),
    Route("/health", health, methods=["GET"]),
]


# -- the app ------------------------------------------------------------------------------------------
def create_app(
    catalog: Catalog,
    *,
    token: str | None,
    jobs: JobStore | None = None,
    sync_wait: float = 2.0,
    max_body: int = 10 * 1024 * 1024,
    public_url: str | None = None,
) -> Starlette:
    """Build the ASGI app serving ``catalog``; ``token`` None disables authentication."""
    app = Starlette(
        routes=ROUTES,
        exception_handlers={WireError: on_wire_error, HTTPException: on_http_error},
    )
    app.state.backend = BackendState(
        catalog=catalog,
        token=token,
        jobs=jobs or JobStore(),
        sync_wait=sync_wait,
        max_body=max_body,
        public_url=public_url,
    )
    app.add_middleware(CatchAll)
    app.add_middleware(TokenAuth, token=token)
    return app
