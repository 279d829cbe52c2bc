"""The request key: one stable digest of a model call, for the response cache and for cassettes.

The key of a run is the SHA-256 of the canonical JSON of

* ``origin``: the run endpoint's origin and path (``https://models.aixplain.com:443/api/v1/execute``;
  ``embedded`` for the embedded backend, whose port changes with every kernel);
* ``model``: the model id, and ``version`` when it is known;
* ``body``: the request as it would be sent -- the input and the parameters after validation -- with
  the defaults of the parameters not given filled in (so ``run(x)`` and ``run(x, p=<default>)``
  share a key), a local file as the digest of its content (not its path), and without the wire's
  ``options.stream`` (a streamed run and a plain run of the same call share a key).

Canonical JSON: keys sorted, no spaces, floats in their shortest round-trip form and whole floats
as integers (``1.0`` and ``1`` are the same number on the wire), text as UTF-8. Never the API key,
never a header. ``Recorded`` is what a cache or a cassette keeps under a key.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aix_jupyter.core.config import origin as url_origin
from aix_jupyter.core.response import ModelResponse

if TYPE_CHECKING:
    from aix_jupyter.core.config import Endpoints
    from aix_jupyter.core.protocol import RunRequest

EMBEDDED_ORIGIN = "embedded"
PREVIEW = 80  # characters of the input kept beside a key, for people (ReplayMiss, a cassette line)


def _canon(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value
    if isinstance(value, Mapping):
        return {str(k): _canon(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canon(v) for v in value]
    return str(value)


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value`` (sorted keys, compact, whole floats as integers)."""
    return json.dumps(_canon(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def endpoint_origin(url: str, embedded: bool = False) -> str:
    """``scheme://host:port/path`` of a run (or backend) URL, normalised; ``embedded`` for that backend."""
    if embedded:
        return EMBEDDED_ORIGIN
    scheme, host, port = url_origin(url)
    path = url.split("://", 1)[-1].partition("/")[2].split("?", 1)[0].rstrip("/")
    return f"{scheme}://{host}:{port}/{path}" if path else f"{scheme}://{host}:{port}"


def preview(value: Any, limit: int = PREVIEW) -> str:
    """The start of an input, on one line, for people."""
    if isinstance(value, Mapping):
        value = value.get("data", value) if len(value) > 0 else value
    text = value if isinstance(value, str) else canonical_json(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class RequestKey:
    """The key of one model call (``digest``) and the readable parts it was made of.

    ``origin`` is kept so that a store can tell which server the call was meant for; ``input``
    is the start of the input and ``body`` the canonical request (both for people and for
    ``ReplayMiss``; neither ever holds a key: they are what the caller sent).
    """

    digest: str
    model_id: str
    origin: str
    version: str | None = None
    input: str = ""
    body: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def with_origin(self, origin: str) -> RequestKey:
        """The same call meant for another server (its digest recomputed)."""
        return run_key(origin, self.model_id, self.version, self.body, self.input)

    def __str__(self) -> str:
        return self.digest


def run_key(
    origin: str, model_id: str, version: str | None, body: Mapping[str, Any], input: str
) -> RequestKey:
    """The ``RequestKey`` of a call from its parts (``body``: the canonical request)."""
    parts = {"origin": origin, "model": model_id, "version": version, "body": body}
    return RequestKey(digest(parts), model_id, origin, version, input, dict(body))


def key_body(request: RunRequest, schema: Any = None) -> dict[str, Any]:
    """The part of ``request`` a key covers: the body without ``options.stream``, local media by their
    content's digest, the defaults of the schema's parameters that were not given."""
    body = dict(request.body_with({m.ref: m.digest for m in request.files}))  # a copy: the request is kept
    options = body.pop("options", None)
    if isinstance(options, Mapping):
        options = {k: v for k, v in options.items() if k != "stream"}  # a stream is the same call
    if options:
        body["options"] = options
    if schema is not None:
        for name in schema:
            if name not in body:
                default = schema[name].default
                if default is not None:
                    body[name] = default
    return _canon(body)


def request_key(
    ep: Endpoints, model_id: str, version: str | None, request: RunRequest, schema: Any = None
) -> RequestKey:
    """THE key of a run of ``model_id`` with ``request`` on the run endpoint of ``ep``."""
    body = key_body(request, schema)
    origin = endpoint_origin(ep.run_url, ep.embedded)
    shown = body.get("data", body) if isinstance(body, dict) else body
    return run_key(origin, model_id, version, body, preview(shown))


def meta_key(origin: str, method: str, path: str, body: Any = None) -> str:
    """The key of a metadata request (``GET /sdk/models/x``, the model list) on a backend ``origin``."""
    return digest({"origin": origin, "method": method.upper(), "path": path, "body": body})


@dataclass
class Recorded:
    """What a cache or a cassette keeps for one request key: the final response (``to_dict`` form,
    JSON-ready) and, for a stream, its chunks as ``(seconds since the start, text)``."""

    response: dict[str, Any]
    chunks: list[tuple[float, str]] | None = None
    model_id: str = ""
    input: str = ""

    @classmethod
    def of(
        cls, response: ModelResponse, key: RequestKey, chunks: Iterable[tuple[float, str]] | None = None
    ) -> Recorded:
        data = json.loads(json.dumps(response.to_dict(), default=_jsonable))
        return cls(
            data, None if chunks is None else [(float(t), str(c)) for t, c in chunks], key.model_id, key.input
        )

    @property
    def credits(self) -> float:
        try:
            return float(self.response.get("used_credits") or 0)
        except (TypeError, ValueError):
            return 0.0

    @property
    def ok(self) -> bool:
        return str(self.response.get("status", "")).upper() == "SUCCESS"

    def to_response(self) -> ModelResponse:
        """A fresh ``ModelResponse`` of the recorded one (each call its own object)."""
        data = json.loads(json.dumps(self.response))
        status = data.pop("status", "FAILED")
        return ModelResponse(status, **data)

    def text(self) -> str:
        """A stream's whole text (its chunks joined), else the response's data as text."""
        if self.chunks is not None:
            return "".join(c for _, c in self.chunks)
        data = self.response.get("data")
        return data if isinstance(data, str) else json.dumps(data)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model_id, "input": self.input, "response": self.response}
        if self.chunks is not None:
            out["chunks"] = [[round(t, 4), c] for t, c in self.chunks]
        return out

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Recorded:
        """The inverse of ``to_json``; ValueError when ``value`` is not one."""
        response = value.get("response")
        if not isinstance(response, dict) or "status" not in response:
            raise ValueError("a recorded run needs a 'response' object with a 'status'")
        chunks = value.get("chunks")
        if chunks is not None:
            if not isinstance(chunks, list) or not all(
                isinstance(c, list) and len(c) == 2 and isinstance(c[1], str) for c in chunks
            ):
                raise ValueError("'chunks' must be a list of [seconds, text] pairs")
            chunks = [(float(t), c) for t, c in chunks]
        return cls(response, chunks, str(value.get("model", "")), str(value.get("input", "")))


def _jsonable(value: Any) -> Any:
    if hasattr(value, "value"):  # enums
        return value.value
    return str(value)


__all__ = [
    "EMBEDDED_ORIGIN",
    "Recorded",
    "RequestKey",
    "canonical_json",
    "digest",
    "endpoint_origin",
    "key_body",
    "meta_key",
    "preview",
    "request_key",
    "run_key",
]
