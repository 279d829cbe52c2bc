"""The aiXplain wire, as pure functions: payload building and reply mapping (no I/O here).

The sync and async paths of ``Model`` both call these; only the I/O around them differs.
Every function returns new objects and never mutates its arguments.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, TypeGuard
from urllib.parse import quote

from aix_jupyter.core import mediatypes
from aix_jupyter.core.enums import AssetStatus, Function, FunctionType, ResponseStatus
from aix_jupyter.core.errors import ParameterError
from aix_jupyter.core.response import ModelResponse

GENERIC_FAILURE = "Model Run: An error occurred while processing your request."
NO_RESPONSE = "No response from the service."
MAX_MESSAGE = 500
WIRE_KEYS = frozenset({"options"})  # request keys of the wire itself, not model parameters

# ---------------------------------------------------------------------------------------------
# Raw replies (what the transport hands to the mapping functions)


REDACTED = "***"


@functools.lru_cache(maxsize=16)
def secret_byte_forms(secret: str) -> tuple[bytes, ...]:
    """The byte forms under which ``secret`` can appear in a reply (raw, and as JSON would escape it)."""
    raw = secret.encode("utf-8")
    escaped = json.dumps(secret)[1:-1].encode("ascii")
    return (raw,) if escaped == raw else (raw, escaped)


def scrub_bytes(data: bytes, secret: str | None) -> bytes:
    """``data`` with every occurrence of ``secret`` replaced by ``***``."""
    if secret:
        for form in secret_byte_forms(secret):
            if form in data:
                data = data.replace(form, REDACTED.encode())
    return data


def scrub_value(value: Any, secret: str | None) -> Any:
    """A decoded JSON value with ``secret`` replaced by ``***`` in every string (keys too), iteratively."""
    if not secret:
        return value
    return map_strings(value, lambda text: text.replace(secret, REDACTED) if secret in text else text)


def map_strings(value: Any, clean: Callable[[str], str]) -> Any:
    """``value`` (decoded JSON) with every string, keys too, replaced by ``clean(string)``: in place, and
    iteratively (any depth); a string ``value`` gives a new one."""
    if isinstance(value, str):
        return clean(value)
    if not isinstance(value, dict | list):
        return value
    root: list[Any] = [value]
    stack: list[Any] = [root]
    while stack:
        node = stack.pop()
        items = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        for key, item in items:
            if isinstance(item, str):
                cleaned = clean(item)
                if cleaned is not item:
                    node[key] = cleaned
            elif isinstance(item, dict | list):
                stack.append(item)
            if isinstance(key, str) and (new_key := clean(key)) != key:
                node[new_key] = node.pop(key)
    return root[0]


@dataclass(frozen=True)
class RawReply:
    """One HTTP answer: status code, lower-cased headers, body bytes.

    Built with the API key as ``secret``, the reply holds no trace of it: the key is replaced by
    ``***`` in the body and the headers here, and in every string the body decodes to (``json``),
    so nothing mapped from a reply -- response fields, messages, events -- can carry it.
    """

    status_code: int
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes = b""
    elapsed: float = 0.0
    secret: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.secret:
            object.__setattr__(self, "content", scrub_bytes(self.content, self.secret))
            headers = {k: v.replace(self.secret, REDACTED) for k, v in self.headers.items()}
            object.__setattr__(self, "headers", headers)

    def json(self) -> Any:
        """The decoded JSON body, or raise ValueError (also for JSON nested too deeply to decode)."""
        try:
            value = json.loads(self.content)
        except RecursionError:
            raise ValueError(TOO_DEEP) from None
        if self.secret and b"\\" in self.content:  # an escape may spell the key in other bytes
            value = scrub_value(value, self.secret)
        return value

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


TOO_DEEP = "JSON nested too deeply to decode"


# ---------------------------------------------------------------------------------------------
# Payload building


def plain(value: Any, where: str = "data") -> Any:
    """A deep, JSON-ready copy of ``value``: enums become their ``.value``, tuples become lists.

    Anything JSON cannot carry raises a one-line ParameterError naming ``where``.
    """
    if isinstance(value, Enum):
        return plain(value.value, where)
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ParameterError(
                f"{where}: {value} cannot be sent as JSON; pass a finite number", parameter=where
            )
        return value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ParameterError(f"{where}: keys must be strings, got {key!r}", parameter=where)
            out[key] = plain(item, f"{where}.{key}" if where != "parameters" else key)
        return out
    if isinstance(value, list | tuple):
        return [plain(item, where) for item in value]
    raise ParameterError(
        f"{where}: a {type(value).__name__} cannot be sent as JSON; pass text, numbers, lists or dicts",
        parameter=where,
    )


def build_payload(
    data: Any, parameters: Mapping[str, Any] | None = None, stream: bool = False
) -> dict[str, Any]:
    """The request body for ``data`` and ``parameters`` (PROTOCOL.md "Request body").

    * a dict ``data`` is the body; ``parameters`` are merged over its keys (parameters win);
    * a string that parses as a JSON object is the body; any other JSON value ``v`` becomes
      ``{"data": v}`` (numbers and booleans are sent as the caller's text);
    * any other string, or any other value, becomes ``{"data": data}``;
    * ``stream`` adds ``"options": {"stream": true}`` (merged with any options given).
    """
    params = plain(dict(parameters or {}), "parameters")
    if isinstance(data, Mapping):
        body = plain(data, "data")
    elif isinstance(data, str):
        body = _body_from_text(data)
    else:
        body = {"data": plain(data, "data")}
    if stream:
        options: dict[str, Any] = {}
        for source in (body.get("options"), params.get("options")):
            if isinstance(source, dict):
                options.update(source)
        body.update(params)
        body["options"] = {**options, "stream": True}
    else:
        body.update(params)
    return body


_JSON_STARTS = frozenset('{["-0123456789tfnNI')  # what a JSON text (as json.loads reads it) starts with


def _body_from_text(text: str) -> dict[str, Any]:
    if text.lstrip()[:1] not in _JSON_STARTS:  # plain text: no parse (a failed one costs an exception)
        return {"data": text}
    try:
        value = json.loads(text)
    except ValueError:
        return {"data": text}
    if isinstance(value, dict):
        return value
    if isinstance(value, bool | int | float):
        return {"data": text}
    return {"data": value}


def validate_parameters(
    schema: Any, data: Any, parameters: Mapping[str, Any] | None, unchecked: Collection[str] = ()
) -> dict[str, Any]:
    """Check ``parameters`` against a ``ModelParameters`` schema; return the checked values.

    Keys of a dict ``data`` that the schema names count as given (and are type-checked);
    other keys of ``data`` are the caller's business. Values set on the schema (``params.x = 1``)
    are sent unless ``parameters`` overrides them. Names in ``unchecked`` that the schema does not
    define are sent as given (an LLM's own arguments: ``context``, ``history``, ...).
    """
    if schema is None or len(schema) == 0:
        return dict(parameters or {})
    wire = WIRE_KEYS.union(k for k in unchecked if k not in schema) if unchecked else WIRE_KEYS
    given = {k: v for k, v in (parameters or {}).items() if k not in wire}
    from_data = {k: v for k, v in data.items() if k in schema} if isinstance(data, Mapping) else {}
    data_given = not isinstance(data, Mapping) or data.get("data") is not None
    checked = schema.validate_request({**from_data, **given}, data_given=data_given)
    # values set on the schema, checked again (``parameters["x"].value = v`` does not check, as in the SDK)
    out = {
        p["name"]: schema[p["name"]].check(p["value"]) for p in schema.to_list() if p["name"] not in from_data
    }
    out.update({k: checked[k] for k in given})
    out.update({k: v for k, v in (parameters or {}).items() if k in wire})
    return out


@dataclass(frozen=True)
class RunRequest:
    """A run's request, checked and built before anything is sent: its body, and the local media it
    holds (``mediatypes.LocalMedia``; the body holds their refs until their uploaded links replace them)."""

    body: dict[str, Any]
    files: tuple[mediatypes.LocalMedia, ...] = ()

    def body_with(self, links: Mapping[str, str]) -> dict[str, Any]:
        """The body with each media ref replaced by its uploaded link."""
        if not links:
            return self.body
        return {k: mediatypes.with_links(v, links) for k, v in self.body.items()}


def run_request(
    schema: Any,
    data: Any,
    parameters: Mapping[str, Any] | None,
    stream: bool = False,
    unchecked: Collection[str] = (),
) -> RunRequest:
    """THE request builder of a run: media inputs read and checked (``mediatypes.prepare``: paths, bytes,
    media objects, URLs), parameters checked against ``schema`` (``validate_parameters``; ``unchecked``:
    its names that the schema does not define are sent as given), the body built (``build_payload``:
    anything JSON cannot carry raises here, so nothing is sent on bad input)."""
    prepared = mediatypes.prepare(
        schema, data, parameters, WIRE_KEYS.union(unchecked) if unchecked else WIRE_KEYS
    )
    checked = validate_parameters(schema, prepared.data, prepared.parameters, unchecked)
    return RunRequest(build_payload(prepared.data, checked, stream), prepared.files)


# ---------------------------------------------------------------------------------------------
# Reply mapping


# The SDK's messages for non-2xx statuses: exact codes, then the 460-499 families by their tens.
_HTTP_MESSAGES: dict[int, str] = {
    400: "Bad request: Please verify the request payload and ensure it is correct.",
    401: "Unauthorized API key: Please verify the spelling of the API key and its current validity.",
    402: "Payment required: Please ensure you have enough credits to run this asset.",
    403: "Forbidden access: Please verify the API key and its current validity.",
    404: "Resource not found: Please verify the spelling of the resource and its current availability.",
    429: "Rate limit exceeded: Please try again later.",
    500: "Internal server error: Please try again later.",
    503: "Service unavailable: Please try again later.",
    504: "Gateway timeout: Please try again later.",
}
_HTTP_FAMILY_MESSAGES: dict[int, str] = {
    46: "Subscription-related error: Please ensure that your subscription is active and has not expired.",
    47: "Billing-related error: Please ensure you have enough credits to run this asset.",
    48: "Supplier-related error: Please ensure that the selected supplier provides the asset you are "
    "trying to access.",
    49: "Validation-related error: Please verify the request payload and ensure it is correct.",
}


def http_error_message(status_code: int, details: Any = None) -> str:
    """The SDK's message for a non-2xx status, followed by `` Details: ...`` when known."""
    text = _HTTP_MESSAGES.get(status_code)
    if text is None and 460 <= status_code < 500:
        text = _HTTP_FAMILY_MESSAGES[status_code // 10]
    if text is None:
        text = f"Unspecified Client/Server Error (Status {status_code})"
    if details not in (None, "", {}, []):
        text += f" Details: {details}"
    return one_line(text)


def one_line(text: Any) -> str:
    """Collapse whitespace to one line and bound the length."""
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_MESSAGE else line[: MAX_MESSAGE - 3] + "..."


def error_details(reply: RawReply) -> Any:
    try:
        body = reply.json()
    except ValueError:
        return reply.content.decode("utf-8", "replace").strip()[:200] or None
    if isinstance(body, dict):
        for key in ("error", "error_message", "message", "detail"):
            if body.get(key):
                return body[key]
    return body


def failed(message: str, *, completed: bool = True, **extra: Any) -> ModelResponse:
    return ModelResponse(
        status=ResponseStatus.FAILED,
        completed=completed,
        error_message=one_line(message or GENERIC_FAILURE),
        **extra,
    )


def http_failure(reply: RawReply, **extra: Any) -> ModelResponse:
    return failed(http_error_message(reply.status_code, error_details(reply)), **extra)


def _decode(reply: RawReply) -> dict[str, Any] | ModelResponse:
    """The JSON object of a 2xx reply, or the FAILED response that says why there is none."""
    try:
        body = reply.json()
    except ValueError as exc:
        if str(exc) == TOO_DEEP:
            return failed(f"The server answered HTTP {reply.status_code} with {TOO_DEEP}.")
        kind = reply.header("content-type") or "no content type"
        return failed(f"The server answered HTTP {reply.status_code} with a body that is not JSON ({kind}).")
    if not isinstance(body, dict):
        return failed(f"The server answered with JSON {type(body).__name__}, expected an object.")
    return body


def _parse_status(value: Any) -> ResponseStatus | None:
    if isinstance(value, ResponseStatus):
        return value
    if isinstance(value, str):
        try:
            return ResponseStatus(value.strip().upper())
        except ValueError:
            return None
    return None


def _has_error_code(body: Mapping[str, Any]) -> bool:
    return body.get("error_code") not in (None, "", 0)


def response_from_body(body: Mapping[str, Any], status: ResponseStatus, **overrides: Any) -> ModelResponse:
    """A ModelResponse from a reply body; wire keys become fields, unknown keys additional fields."""
    rest = dict(body)
    rest.pop("status", None)
    kwargs: dict[str, Any] = {
        "data": rest.pop("data", ""),
        "details": rest.pop("details", {}),
        "completed": bool(rest.pop("completed", False)),
        "error_message": rest.pop("error_message", "") or "",
        "used_credits": rest.pop("usedCredits", rest.pop("used_credits", 0.0)) or 0.0,
        "run_time": rest.pop("runTime", rest.pop("run_time", 0.0)) or 0.0,
        "usage": rest.pop("usage", None),
        "url": rest.pop("url", None),
        "error_code": rest.pop("error_code", None),
        "asset": rest.pop("asset", None),
    }
    kwargs.update(overrides)
    response = ModelResponse(status=status, **kwargs, **{k: v for k, v in rest.items() if k not in kwargs})
    if response.status is ResponseStatus.FAILED:
        response.error_message = one_line(response.error_message or GENERIC_FAILURE)
    return response


def _reply_body(reply: RawReply) -> dict[str, Any] | ModelResponse:
    """The JSON object of a reply, or the FAILED response it already is (HTTP error, not a JSON
    object, an ``error_code``)."""
    if not 200 <= reply.status_code < 300:
        return http_failure(reply)
    body = _decode(reply)
    if isinstance(body, ModelResponse):
        return body
    if _has_error_code(body):
        return response_from_body(body, ResponseStatus.FAILED, completed=True)
    return body


def map_run_reply(reply: RawReply) -> ModelResponse:
    """The reply to a run POST (v1 or v2) as a ModelResponse.

    IN_PROGRESS (with ``url`` = the poll URL), SUCCESS, or FAILED with a one-line message.
    A 2xx reply without ``status`` is IN_PROGRESS with ``data`` as the poll URL; IN_PROGRESS
    without a poll URL, an unknown status, and a reply carrying ``error_code`` are FAILED.
    """
    body = _reply_body(reply)
    if isinstance(body, ModelResponse):
        return body
    raw = body.get("status", ResponseStatus.IN_PROGRESS.value)
    status = _parse_status(raw)
    if status is None:
        return failed(f"The server answered with an unknown status {raw!r}.", **_extras(body))
    if status is ResponseStatus.IN_PROGRESS:
        poll_url = body.get("data")
        if isinstance(poll_url, str) and any(ord(c) < 33 or ord(c) == 127 for c in poll_url):
            return failed(
                f"The server gave a poll URL with white space or control characters: {poll_url[:80]!r}."
            )
        if isinstance(poll_url, str) and poll_url.startswith(("http://", "https://")):
            extra = {k: v for k, v in body.items() if k not in ("status", "data", "completed", "url")}
            return ModelResponse(status=status, completed=False, url=poll_url, **extra)
        return failed(GENERIC_FAILURE)
    completed = body.get("completed", True)
    response = response_from_body(body, status, completed=bool(completed))
    return response


def _extras(body: Mapping[str, Any]) -> dict[str, Any]:
    keep = {}
    for key in ("requestId", "error_code"):
        if key in body:
            keep[key] = body[key]
    return keep


def map_poll_reply(reply: RawReply) -> ModelResponse:
    """The reply to one poll GET as a ModelResponse.

    ``completed`` true gives SUCCESS unless ``error_message`` / ``supplierError`` / ``error``
    is present (FAILED); a valid ``status`` in the body wins; ``error_code`` makes it FAILED.
    A body with neither ``completed`` nor a valid status, or with an unknown status, is FAILED
    (completed), so a poll loop ends instead of hanging.
    """
    body = _reply_body(reply)
    if isinstance(body, ModelResponse):
        return body
    raw = body.get("status")
    status = _parse_status(raw)
    if raw is not None and status is None:
        return failed(f"The server answered with an unknown status {raw!r}.", **_extras(body))
    completed = body.get("completed")
    if status is None:
        if completed is None:
            return failed("The server's poll reply has neither 'completed' nor 'status'.")
        if completed:
            bad = body.get("error_message") or body.get("supplierError") or body.get("error")
            status = ResponseStatus.FAILED if bad else ResponseStatus.SUCCESS
        else:
            status = ResponseStatus.IN_PROGRESS
    if status is ResponseStatus.IN_PROGRESS:
        return response_from_body(body, status, completed=False)
    return response_from_body(body, status, completed=True)


def poll_progress(body: Mapping[str, Any] | ModelResponse) -> tuple[float | None, float | None]:
    """(progress 0..1, eta seconds) from a poll reply, when the server reports them.

    ``progress`` may be a fraction, a percentage (1 < p <= 100), or ``{"done": d, "total": t}``.
    """
    get = body.get
    raw = get("progress")
    progress: float | None = None
    if isinstance(raw, Mapping):
        done, total = raw.get("done"), raw.get("total")
        if _number(done) and _number(total) and total > 0:
            progress = done / total
    elif _number(raw):
        progress = raw / 100.0 if 1.0 < raw <= 100.0 else raw
    if progress is not None:
        progress = min(1.0, max(0.0, float(progress)))
    eta = get("eta")
    return progress, (max(0.0, float(eta)) if _number(eta) else None)


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        import time

        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


# ---------------------------------------------------------------------------------------------
# Model metadata


def model_path(model_id: str) -> str:
    """``sdk/models/{id}`` with a ``/`` in the id sent as ``%2F``."""
    return "sdk/models/" + quote(model_id, safe="")


def model_kwargs_from_metadata(meta: Mapping[str, Any]) -> dict[str, Any]:
    """``Model`` constructor keywords from a ``GET /sdk/models/{id}`` reply."""
    if not isinstance(meta, Mapping) or not meta.get("id"):
        raise ValueError("model metadata without an 'id'")
    version = meta.get("version")
    if isinstance(version, Mapping):
        version = version.get("id") or version.get("name")
    created = meta.get("createdAt") or meta.get("created_at")
    created_at = None
    if isinstance(created, str) and created:
        try:
            created_at = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            created_at = None
    function_type = meta.get("functionType") or FunctionType.AI.value
    with contextlib.suppress(ValueError):
        function_type = FunctionType(str(function_type).lower())
    status = meta.get("status") or AssetStatus.ONBOARDED.value
    with contextlib.suppress(ValueError):
        status = AssetStatus(str(status).lower())
    known = {
        "id",
        "name",
        "description",
        "supplier",
        "function",
        "pricing",
        "version",
        "supportsStreaming",
        "functionType",
        "createdAt",
        "created_at",
        "status",
        "subscription",
        "params",
        "api_key",
    }
    extra = {k: copy.deepcopy(v) for k, v in meta.items() if k not in known and k.isidentifier()}
    for name in ("url", "backend_url", "model_params", "input_params", "output_params"):
        extra.pop(name, None)
    return {
        "id": str(meta["id"]),
        "name": meta.get("name") or "",
        "description": meta.get("description") or "",
        "supplier": copy.deepcopy(meta.get("supplier") or "aiXplain"),
        "version": version,
        "function": Function.parse(meta.get("function")),
        "is_subscribed": "subscription" in meta and meta.get("subscription") is not None,
        "cost": copy.deepcopy(meta.get("pricing")),
        "created_at": created_at,
        "model_params": copy.deepcopy(meta.get("params") or []),
        "supports_streaming": bool(meta.get("supportsStreaming", False)),
        "status": status,
        "function_type": function_type,
        **extra,
    }
