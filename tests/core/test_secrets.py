"""The API key on every path: every public I/O method, sync and async, against a server that echoes
the key back in every place a reply has. The key must reach no response, exception, event or log.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from dataclasses import dataclass
from typing import Any

import pytest

from aix_jupyter import FinetuneStatus, Model, ModelFactory, ModelResponse, ModelResponseStreamer
from tests.core.conftest import KEY
from tests.core.wireserver import Reply, WireServer, default_metadata

ESCAPED = "".join(f"\\u{ord(c):04x}" for c in KEY)  # the key as JSON escapes: other bytes, same text


def _failed_run(key: str) -> dict[str, Any]:
    return {
        "status": "FAILED",
        "completed": True,
        "error_message": f"the key {key} is not valid",
        "supplierError": key,
        "error": key,
        "data": key,
        "echo": {"nested": [key]},
    }


def _success_run(key: str) -> dict[str, Any]:
    return {
        "status": "SUCCESS",
        "completed": True,
        "data": {"echo": key},
        "details": [key],
        "usage": {"prompt": key},
        "supplierError": key,
        "requestId": key,
        key: "a key named after the key",
    }


def _meta(key: str) -> dict[str, Any]:
    return default_metadata("echo", name=key, description=key, echo=key)


SHAPED = {  # what a 200 reply of each route looks like, carrying the key everywhere it can
    "run": _failed_run,
    "poll": _failed_run,
    "stream": _failed_run,
    "meta": _meta,
    "list": lambda key: {"items": [_meta(key)], "total": 1, "echo": key},
    "finetune": lambda key: {
        "finetuneStatus": key,
        "modelStatus": key,
        "logs": [{"epoch": 1, "trainLoss": key, "evalLoss": 0.5}],
    },
    "delete": lambda key: {"deleted": key},
    "cancel": lambda key: {"cancelled": True, "echo": key},
}


@dataclass
class Method:
    name: str
    route: str  # "METHOD /path-prefix" of the request that the echo answers
    shape: str

    def __call__(self, mode: str, server: WireServer, model: Model, events: list[Any]) -> Any:
        poll_url = server.poll_url("job1")
        calls = {
            "run": lambda m: m("run", "x", timeout=10, on_event=events.append),
            "run_async": lambda m: m("run_async", "x", on_event=events.append),
            "poll": lambda m: m("poll", poll_url),
            "sync_poll": lambda m: m("sync_poll", poll_url, timeout=10, on_event=events.append),
            "run_stream": lambda m: m("run_stream", "x", on_event=events.append),
            "run(stream=True)": lambda m: m("run", "x", stream=True, on_event=events.append),
            "cancel_run": lambda m: m("cancel_run", poll_url),
            "delete": lambda m: m("delete"),
            "check_finetune_status": lambda m: m("check_finetune_status"),
        }
        if self.name.startswith("ModelFactory."):
            target: Any = ModelFactory
            what = self.name.split(".")[1]
            invoke = (lambda m: m("get", "echo")) if what == "get" else (lambda m: m("list", "echo"))
        else:
            target, invoke = model, calls[self.name]

        def method(name: str, *args: Any, **kwargs: Any) -> Any:
            if mode == "sync":
                return getattr(target, name)(*args, **kwargs)
            twin = {"sync_poll": "async_poll"}.get(name, "a" + name)
            return asyncio.run(_collected(getattr(target, twin)(*args, **kwargs)))

        result = invoke(method)
        if isinstance(result, ModelResponseStreamer):
            return [*result, result]
        return result


async def _collected(awaitable: Any) -> Any:
    result = await awaitable
    if isinstance(result, ModelResponseStreamer):
        return [*[chunk async for chunk in result], result]
    return result


METHODS = [
    Method("run", "POST /api/v2/execute", "run"),
    Method("run_async", "POST /api/v1/execute", "run"),
    Method("poll", "GET /api/v1/data/", "poll"),
    Method("sync_poll", "GET /api/v1/data/", "poll"),
    Method("run_stream", "POST /api/v2/execute", "stream"),
    Method("run(stream=True)", "POST /api/v2/execute", "stream"),
    Method("cancel_run", "DELETE /api/v1/data/", "cancel"),
    Method("delete", "DELETE /sdk/models/", "delete"),
    Method("check_finetune_status", "GET /sdk/finetune/", "finetune"),
    Method("ModelFactory.get", "GET /sdk/models/", "meta"),
    Method("ModelFactory.list", "POST /sdk/models/paginate", "list"),
]


def _echo(kind: str, method: Method, server: WireServer) -> None:
    """Script ``server`` to echo the key back the way ``kind`` says."""
    shape = SHAPED[method.shape]
    if kind == "http error body":
        body = {"error": f"key {KEY} is invalid", "supplierError": KEY, "detail": [KEY]}
        server.script(method.route, Reply(401, json=body, headers={"X-Echo": KEY}))
    elif kind == "http error text":
        headers = {"Content-Type": f"text/html; key={KEY}"}
        server.script(method.route, Reply(500, body=f"<p>bad key {KEY}</p>".encode(), headers=headers))
    elif kind == "200 reply fields":
        server.script(method.route, Reply(json=shape(KEY), headers={"X-Echo": KEY}))
    elif kind == "200 reply, key as JSON escapes":
        body = json.dumps(shape("@KEY@")).replace("@KEY@", ESCAPED).encode()
        server.script(method.route, Reply(body=body, headers={"Content-Type": "application/json"}))
    elif kind == "200 success fields":
        server.script(method.route, Reply(json=_success_run(KEY)))
    elif kind == "non-JSON 200":
        server.script(method.route, Reply(body=KEY.encode(), headers={"Content-Type": f"text/{KEY}"}))
    elif kind == "sse error event":
        error = {"error": f"bad {KEY}", "supplierError": KEY}
        events = [json.dumps({"data": f"a {KEY} "}), json.dumps(error)]
        server.script(method.route, Reply(sse=events, close_early=True))
    elif kind == "sse chunks":
        chunks = [json.dumps({"data": KEY}), '{"data": {"text": "' + ESCAPED + '"}}', f"plain {KEY}"]
        server.script(method.route, Reply(sse=chunks))
    elif kind == "poll reply payload":
        poll = server.poll_url("job1")
        if method.route.startswith("POST"):
            server.script(method.route, Reply(json={"status": "IN_PROGRESS", "data": poll, "echo": KEY}))
        running = {"completed": False, "progress": 0.5, "note": KEY, "eta": 1}
        done = {"completed": True, "status": "SUCCESS", "data": KEY, "supplierError": KEY, "x": [KEY]}
        server.script("GET /api/v1/data/", Reply(json=running), Reply(json=done))
    else:  # pragma: no cover
        raise AssertionError(kind)


COMMON_KINDS = ["http error body", "http error text", "200 reply fields", "200 reply, key as JSON escapes"]
KINDS = {
    "run": [*COMMON_KINDS, "200 success fields", "non-JSON 200", "poll reply payload"],
    "run_async": [*COMMON_KINDS, "non-JSON 200"],
    "poll": [*COMMON_KINDS, "200 success fields", "non-JSON 200", "poll reply payload"],
    "sync_poll": [*COMMON_KINDS, "200 success fields", "non-JSON 200", "poll reply payload"],
    "run_stream": [*COMMON_KINDS, "sse error event", "sse chunks", "non-JSON 200", "poll reply payload"],
    "run(stream=True)": [*COMMON_KINDS, "sse error event", "sse chunks", "poll reply payload"],
}
CASES = [
    pytest.param(method, kind, id=f"{method.name}-{kind}")
    for method in METHODS
    for kind in KINDS.get(method.name, COMMON_KINDS)
]


def texts(value: Any, seen: set[int] | None = None) -> list[str]:
    """Every rendering of ``value`` a user can meet: repr, str, to_dict, fields, nested values."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return []
    seen.add(id(value))
    out = [repr(value), str(value)]
    if isinstance(value, ModelResponse):
        out += texts(value.to_dict(), seen)
    elif isinstance(value, Model):
        out += texts(value.to_dict(), seen)
        out += texts({k: v for k, v in vars(value).items() if k != "_api_key"}, seen)
    elif isinstance(value, ModelResponseStreamer):
        out += [value.text, value.error_message]
    elif isinstance(value, FinetuneStatus):
        out += texts(value.to_dict(), seen)
    elif isinstance(value, BaseException):
        out += texts(list(value.args), seen)
    elif isinstance(value, dict):
        for k, v in value.items():
            out += texts(k, seen) + texts(v, seen)
    elif isinstance(value, list | tuple):
        for item in value:
            out += texts(item, seen)
    elif hasattr(value, "__dataclass_fields__"):
        out += texts(vars(value) if hasattr(value, "__dict__") else repr(value), seen)
    return out


@pytest.mark.parametrize(("method", "kind"), CASES)
def test_an_echoed_key_reaches_no_response_error_event_or_log(mode, method, kind, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    with WireServer() as server:
        monkeypatch.setenv("AIX_BACKEND_URL", server.url)
        monkeypatch.setenv("TEAM_API_KEY", KEY)
        model = Model("echo", url=server.run_url, api_key=KEY, supports_streaming=True)
        _echo(kind, method, server)
        events: list[Any] = []
        try:
            result: Any = method(mode, server, model, events)
        except Exception as exc:  # an error is a fine answer; it must not carry the key either
            result = exc
        assert server.requests, "the call reached the server"
        assert all(r.headers.get("x-api-key") == KEY for r in server.requests)  # the key was sent
    shown = texts(result) + [t for e in events for t in texts(e)]
    shown += [r.getMessage() for r in caplog.records] + [r.exc_text or "" for r in caplog.records]
    leaks = [t for t in shown if KEY in t]
    assert not leaks, leaks[:3]
    if method.shape not in ("delete", "cancel"):  # these answer a bool / nothing: no echo to show
        assert any("***" in t for t in shown), "the echo reached the caller, redacted"


# -- a key spelt out across several stream events ---------------------------------------------------
def _escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


def _stream(mode: str, model: Model, events: list[Any]) -> tuple[list[ModelResponse], ModelResponseStreamer]:
    if mode == "sync":
        streamer = model.run_stream("x", on_event=events.append)
        return list(streamer), streamer

    async def go() -> tuple[list[ModelResponse], ModelResponseStreamer]:
        streamer = await model.arun_stream("x", on_event=events.append)
        return [chunk async for chunk in streamer], streamer

    return asyncio.run(go())


SPLITS = {2: [0, 9, len(KEY)], 3: [0, 3, 16, len(KEY)]}


@pytest.mark.parametrize("paced", [False, True], ids=["one read", "one read per event"])
@pytest.mark.parametrize("escaped", [False, True], ids=["plain", "JSON-escaped"])
@pytest.mark.parametrize("parts", [2, 3])
def test_a_key_split_across_stream_events_reaches_no_chunk(mode, parts, escaped, paced):
    """The server spells the key out across 2 or 3 events: no chunk (nor chunk event) holds the key or
    ends with a start of it that the next completes, and the chunks put together are the scrubbed text."""
    cuts = SPLITS[parts]
    pieces = [KEY[a:b] for a, b in itertools.pairwise(cuts)]
    texts_sent = ["before s", "k " + pieces[0], *pieces[1:-1], pieces[-1] + " after ", "s", "k-" + KEY]
    whole = "".join(texts_sent)
    spell = _escaped if escaped else (lambda t: t)
    with WireServer() as server:
        model = Model("echo", url=server.run_url, api_key=KEY, supports_streaming=True)
        sse = ['{"data": "' + spell(t) + '"}' for t in texts_sent]
        server.script("POST /api/v2/execute", Reply(sse=sse, sse_delay=0.02 if paced else 0.0))
        events: list[Any] = []
        chunks, streamer = _stream(mode, model, events)
    assert chunks[-1].status.value == "SUCCESS"
    given = [c.data for c in chunks[:-1]]
    assert all(KEY not in c for c in given), given
    assert "".join(given) == whole.replace(KEY, "***") == streamer.text
    assert [e.chunk for e in events if e.kind == "chunk"] == given
    assert not any(KEY in t for e in events for t in texts(e))
    assert streamer.chunks == len(texts_sent)  # the server's events, whatever the window held back


def test_the_carry_over_window_on_any_split_of_the_text():
    """Every way of cutting a text that holds the key (twice, and starts of it) into events: the chunks
    never hold the key and always put together the scrubbed text (the streamer alone, no server)."""
    import random

    rng = random.Random(7)
    whole = f"a s sk- {KEY}{KEY[:5]} s{KEY}sk-test {KEY[:-1]}"
    for _ in range(300):
        cuts = sorted(rng.sample(range(1, len(whole)), rng.randint(1, 12)))
        pieces = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)]
        batches = [[json.dumps({"data": p}).encode()] for p in pieces] + [[b"[DONE]"]]
        streamer = ModelResponseStreamer(payloads=iter(batches), secret=KEY)
        given = [c.data for c in streamer][:-1]
        assert all(KEY not in c for c in given), (pieces, given)
        assert "".join(given) == whole.replace(KEY, "***") == streamer.text, (pieces, given)
        assert streamer.chunks == len(pieces), (pieces, given)
