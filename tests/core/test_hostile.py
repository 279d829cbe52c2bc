"""The client against a hostile server: bounded time, bounded memory, I/O over when a call returns,
and every failure a FAILED response or an AixError -- sync and async. Floods are hundreds of MB at
most, with the caps set lower here than their defaults."""

from __future__ import annotations

import asyncio
import functools
import json
import socket
import time
import zlib
from typing import Any

import pytest

from aix_jupyter import AixError, Model, ModelFactory, ModelResponse, ModelResponseStreamer, ResponseStatus
from aix_jupyter.core import transport
from aix_jupyter.core.streaming import SSEDecoder
from tests.core.conftest import KEY
from tests.core.hostile import BLOCK, Hostile, json_reply, rss_bytes

MB = 1024 * 1024


def _model(server: Hostile) -> Model:
    return Model("m", url=server.run_url, api_key=KEY, supports_streaming=True)


def _finish(result: Any) -> tuple[Any, float]:
    """Iterate a streamer to its end; the final response (or the result itself) and when it came."""
    if isinstance(result, ModelResponseStreamer):
        result = [*result][-1]
    return result, time.monotonic()


async def _afinish(awaitable: Any) -> tuple[Any, float]:
    result = await awaitable
    if isinstance(result, ModelResponseStreamer):
        result = [chunk async for chunk in result][-1]
    return result, time.monotonic()


def run_call(mode: str, target: Any, name: str, *args: Any, **kwargs: Any) -> tuple[Any, float, float]:
    """(final response or exception, seconds taken, when it ended) for the sync or async form."""
    start = time.monotonic()
    try:
        if mode == "sync":
            result, end = _finish(getattr(target, name)(*args, **kwargs))
        else:
            twin = {"sync_poll": "async_poll"}.get(name, "a" + name)
            result, end = asyncio.run(_afinish(getattr(target, twin)(*args, **kwargs)))
    except Exception as exc:
        result, end = exc, time.monotonic()
    return result, end - start, end


def assert_failed(result: Any, *fragments: str) -> None:
    assert isinstance(result, ModelResponse), result
    assert result.status is ResponseStatus.FAILED, result
    for fragment in fragments:
        assert fragment in result.error_message, result.error_message


# -- 1. when a call returns, its I/O is over -----------------------------------------------------
def _endless_body(h: Hostile, conn: Any, request: bytes) -> None:
    h.head(conn, Content_Type="application/json", Content_Length=str(10**12))
    h.flood(conn, pause=0.002)  # ~30 MB/s, forever


@pytest.mark.parametrize("method", ["run", "run_stream"])
def test_the_connection_is_closed_when_a_call_returns(mode, method, monkeypatch):
    monkeypatch.setenv("AIX_MAX_REPLY_BYTES", str(10**12))  # not the cap: the deadline stops it
    with Hostile(_endless_body) as h:
        result, took, ended = run_call(mode, _model(h), method, "x", timeout=1)
        assert_failed(result, "No response from the service")
        assert took <= 1.5
        assert h.hung_up.wait(2), "the client kept the connection open"
        assert h.hung_up_at - ended <= 0.5
        sent = h.sent
        time.sleep(0.3)
        assert h.sent == sent  # nothing more is read


# -- 1b. a reply body has a size cap, and memory stays bounded ---------------------------------
def _flood(total: int, **headers: str) -> Any:
    def behave(h: Hostile, conn: Any, request: bytes) -> None:
        h.head(conn, Content_Type="application/json", Connection="close", **headers)
        h.flood(conn, total)

    return behave


@functools.cache
def _bomb() -> bytes:
    """200 MB of JSON, gzipped (about 200 KB), made without holding the 200 MB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: the gzip container
    parts = [packer.compress(b"[")] + [packer.compress(b"0," * 32768) for _ in range(3200)]
    return b"".join([*parts, packer.compress(b"0]"), packer.flush()])


def _gzip_bomb(h: Hostile, conn: Any, request: bytes) -> None:
    json_reply(h, conn, _bomb(), Content_Encoding="gzip")


@pytest.mark.parametrize(
    "behaviour",
    [
        pytest.param(_flood(300 * MB), id="300 MB body"),
        pytest.param(_flood(300 * MB, Content_Length=str(300 * MB)), id="300 MB announced"),
        pytest.param(_gzip_bomb, id="gzip bomb"),
    ],
)
@pytest.mark.parametrize("method", ["run", "run_stream"])
def test_a_reply_over_the_size_cap_fails_with_bounded_memory(mode, method, behaviour, monkeypatch):
    monkeypatch.setenv("AIX_MAX_REPLY_BYTES", str(8 * MB))
    _bomb()
    with Hostile(behaviour) as h:
        before = rss_bytes()
        result, _, _ = run_call(mode, _model(h), method, "x", timeout=30)
        growth = rss_bytes() - before
        assert_failed(result, f"larger than {8 * MB} bytes", "AIX_MAX_REPLY_BYTES")
        assert growth < 80 * MB, growth
        assert h.hung_up.wait(2) and h.sent < 100 * MB  # the client stopped reading


def _sse_flood(h: Hostile, conn: Any, request: bytes) -> None:
    h.head(conn, Content_Type="text/event-stream", Connection="close")
    event = b'data: {"data": "' + b"y" * 4000 + b'"}\n\n'
    while not h.stopping:
        h.send(conn, event * 16)


def test_a_stream_over_the_size_cap_fails_with_bounded_memory(mode, monkeypatch):
    monkeypatch.setenv("AIX_MAX_REPLY_BYTES", str(8 * MB))
    with Hostile(_sse_flood) as h:
        before = rss_bytes()
        result, _, _ = run_call(mode, _model(h), "run_stream", "x", timeout=30)
        assert_failed(result, "the stream", f"larger than {8 * MB} bytes")
        assert rss_bytes() - before < 80 * MB
        assert h.hung_up.wait(2)


# -- 2. every streaming call has a deadline, and silence between chunks is bounded ----------------
def _never_answers(h: Hostile, conn: Any, request: bytes) -> None:
    h.wait_stop(conn)


def _slow_plain_body(h: Hostile, conn: Any, request: bytes) -> None:
    body = json.dumps({"status": "SUCCESS", "data": "z" * 1000}).encode()
    h.head(conn, Content_Type="application/json", Content_Length=str(len(body)))
    for i in range(len(body)):
        if h.stopping:
            return
        h.send(conn, body[i : i + 1])
        time.sleep(0.05)


def _endless_line(h: Hostile, conn: Any, request: bytes) -> None:
    h.head(conn, Content_Type="text/event-stream")
    h.send(conn, b"data: ")
    while not h.stopping:
        h.send(conn, b"x" * 100)
        time.sleep(0.01)


def _endless_events(h: Hostile, conn: Any, request: bytes) -> None:
    h.head(conn, Content_Type="text/event-stream")
    while not h.stopping:
        h.send(conn, b'data: {"data": "tick "}\n\n')
        time.sleep(0.01)


def _one_event_then_silence(h: Hostile, conn: Any, request: bytes) -> None:
    h.head(conn, Content_Type="text/event-stream")
    h.send(conn, b'data: {"data": "first "}\n\n')
    h.wait_stop(conn)


STALLS = [_never_answers, _slow_plain_body, _endless_line, _endless_events, _one_event_then_silence]


@pytest.mark.parametrize("behaviour", STALLS, ids=[b.__name__.strip("_") for b in STALLS])
@pytest.mark.parametrize("method", ["run_stream", "run(stream=True)"])
def test_every_streaming_call_ends_within_its_timeout(mode, method, behaviour):
    with Hostile(behaviour) as h:
        kwargs = {"stream": True} if method == "run(stream=True)" else {}
        result, took, ended = run_call(mode, _model(h), method.split("(")[0], "x", timeout=1, **kwargs)
        assert_failed(result, "No response from the service", "1 s")
        assert took <= 1.5, took
        if behaviour is not _never_answers:
            assert h.hung_up.wait(2) and h.hung_up_at - ended <= 0.5


def test_silence_between_chunks_is_bounded(mode, monkeypatch):
    monkeypatch.setattr(transport, "STREAM_READ_TIMEOUT", 0.5)
    with Hostile(_one_event_then_silence) as h:
        result, took, _ = run_call(mode, _model(h), "run_stream", "x", timeout=60)
        assert_failed(result, "did not answer in time")
        assert took <= 2.0, took


# -- 3. SSE decoding is linear, and an event has a length cap -------------------------------------
def test_sse_decoding_is_linear_on_a_long_line():
    decoder = SSEDecoder()
    start = time.monotonic()
    decoder.feed(b"data: ")
    for _ in range(32 * 16):  # 32 MB without a line end, in 64 KB reads (quadratic: ~14 s)
        assert decoder.feed(BLOCK) == []
    assert decoder.feed(b"\n\n") == [BLOCK * 512]
    assert time.monotonic() - start < 2.0


def _line_flood(h: Hostile, conn: Any, request: bytes) -> None:
    h.head(conn, Content_Type="text/event-stream")
    h.send(conn, b"data: ")
    h.flood(conn, 300 * MB)


def test_an_event_longer_than_the_cap_fails_the_stream_clearly(mode, monkeypatch):
    monkeypatch.setenv("AIX_MAX_EVENT_BYTES", str(1 * MB))
    with Hostile(_line_flood) as h:
        result, took, _ = run_call(mode, _model(h), "run_stream", "x", timeout=30)
        assert_failed(result, f"longer than {1 * MB} bytes", "AIX_MAX_EVENT_BYTES")
        assert took < 20 and h.hung_up.wait(2)


# -- 4. hostile replies: FAILED responses or AixError, never a foreign exception ----------------------
DEEP = b"[" * 100_000 + b"]" * 100_000


def _raw(data: bytes) -> Any:
    def behave(h: Hostile, conn: Any, request: bytes) -> None:
        h.send(conn, data)
        conn.shutdown(socket.SHUT_WR)  # and no more: the client sees the end of the connection

    return behave


def _json(body: bytes, **headers: str) -> Any:
    return lambda h, conn, request: json_reply(h, conn, body, **headers)


def _tab_poll_url(h: Hostile, conn: Any, request: bytes) -> None:
    json_reply(h, conn, json.dumps({"status": "IN_PROGRESS", "data": h.url + "/api/v1/data/a\tb"}).encode())


HOSTILE = {
    "100 000-deep JSON": _json(DEEP),
    "100 000-deep JSON in a field": _json(b'{"status": "SUCCESS", "completed": true, "data": ' + DEEP + b"}"),
    "poll URL with a tab": _tab_poll_url,
    "poll URL with a newline": _json(b'{"status": "IN_PROGRESS", "data": "http://127.0.0.1:1/a\\nb"}'),
    "garbage status line": _raw(b"HTTP/1.1 abc\r\n\r\n"),
    "not HTTP": _raw(b"\x00\x01\x02 hello\r\n\r\n"),
    "short body": _raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{}"),
    "bad chunked encoding": _raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
    "bad gzip": _json(b"not gzip at all", Content_Encoding="gzip"),
    "invalid UTF-8": _json(b'{"status": "SUCCESS", "data": "\xff\xfe"}'),
    "5000-digit integer": _json(b'{"status": "SUCCESS", "completed": true, "data": ' + b"1" * 5000 + b"}"),
    "100 KB header": _raw(b"HTTP/1.1 200 OK\r\nX-Big: " + b"h" * 100_000 + b"\r\n\r\n"),
    "absurd Retry-After": _json(b'{"error": "busy"}', Retry_After="9" * 400),
    "deep JSON event": _raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: %s\n\n" % DEEP),
    "closed at once": _raw(b""),
}
METHODS = ["run", "run_stream", "sync_poll", "ModelFactory.get"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("reply", list(HOSTILE))
def test_a_hostile_reply_gives_a_failed_response_or_an_aix_error(mode, reply, method, monkeypatch):
    with Hostile(HOSTILE[reply]) as h:
        monkeypatch.setenv("AIX_BACKEND_URL", h.url)
        monkeypatch.setenv("TEAM_API_KEY", KEY)
        if method == "ModelFactory.get":
            result, took, _ = run_call(mode, ModelFactory, "get", "m")
        elif method == "sync_poll":
            result, took, _ = run_call(mode, _model(h), "sync_poll", h.url + "/api/v1/data/j", timeout=2)
        else:
            result, took, _ = run_call(mode, _model(h), method, "x", timeout=2)
    assert took <= 2.5
    if isinstance(result, BaseException):
        assert isinstance(result, AixError), repr(result)
        assert "\n" not in str(result) and KEY not in str(result)
    elif isinstance(result, ModelResponse):
        assert result.status is ResponseStatus.FAILED, result
        assert result.error_message and "\n" not in result.error_message
    else:
        assert isinstance(result, Model)  # a metadata reply that parsed, whatever it was


def test_a_poll_url_with_a_tab_is_refused_before_anything_is_sent(mode):
    with Hostile(_raw(b"")) as h:
        result, _, _ = run_call(mode, _model(h), "sync_poll", h.url + "/api/v1/data/a\tb")
        assert isinstance(result, AixError) and "white space or control characters" in str(result)
        assert h.requests == []
