"""Streaming: a fast server-sent-events decoder (sans I/O) and ``ModelResponseStreamer``.

Wire (PROTOCOL.md): each event is ``data: {"data": "<chunk>"}`` and a blank line; the stream ends
with ``data: [DONE]``. A chunk's ``data`` may be a dict, whose ``text`` (else ``output``) is the
text. Unlike the SDK, the decoder follows the SSE rules: only the ``data:`` field prefix is
removed (a ``"data: "`` inside a chunk is kept), blank lines separate events (they are not
chunks), multi-line data is joined with ``\\n``, comments and other fields are ignored, and
CR / CRLF / LF line ends are all accepted. The HTTP status is checked before reading.

The decoder works on whole network reads (``bytes.split``), not line by line, which is what
makes it fast: see ``benchmarks/`` for the comparison with the SDK.
"""

from __future__ import annotations

import collections
import json
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from aix_jupyter.core.enums import ResponseStatus
from aix_jupyter.core.errors import AixError
from aix_jupyter.core.events import EventHook, RunEvent
from aix_jupyter.core.protocol import scrub_bytes, scrub_value
from aix_jupyter.core.response import ModelResponse

DONE = b"[DONE]"
_loads = json.loads


class SSEDecoder:
    """Incremental SSE decoder: ``feed(bytes)`` returns the ``data`` payloads of complete events."""

    __slots__ = ("_buf", "_secret")

    def __init__(self, secret: str | None = None) -> None:
        self._buf = b""
        self._secret = secret

    def feed(self, chunk: bytes) -> list[bytes]:
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            hold = buf.endswith(b"\r")  # a CRLF may be split across two reads
            if hold:
                buf = buf[:-1]
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if hold:
                buf += b"\r"
        parts = buf.split(b"\n\n")
        self._buf = parts.pop()
        out: list[bytes] = []
        append = out.append
        for part in parts:
            if part[:5] == b"data:" and b"\n" not in part:  # the common case: one data line
                append(part[6:] if part[5:6] == b" " else part[5:])
                continue
            payload = _event_data(part)
            if payload is not None:
                append(payload)
        return self._scrubbed(out) if self._secret else out

    def _scrubbed(self, payloads: list[bytes]) -> list[bytes]:
        return [scrub_bytes(p, self._secret) for p in payloads]

    def flush(self) -> list[bytes]:
        """Payload of a final event not followed by a blank line (stream closed early)."""
        rest, self._buf = self._buf.rstrip(b"\r"), b""
        if not rest.strip():
            return []
        payload = _event_data(rest.strip(b"\n"))
        return self._scrubbed([payload]) if payload is not None else []


def _event_data(part: bytes) -> bytes | None:
    lines = []
    for line in part.split(b"\n"):
        if not line or line[:1] == b":":
            continue
        if line[:5] == b"data:":
            lines.append(line[6:] if line[5:6] == b" " else line[5:])
        elif line == b"data":
            lines.append(b"")
    return b"\n".join(lines) if lines else None


# chunk kinds
CHUNK, END, ERROR = 0, 1, 2


def parse_payload(payload: bytes) -> tuple[int, Any]:
    """(CHUNK, text) or (END, None) for ``[DONE]`` or (ERROR, message)."""
    fast = _fast_text(payload)
    if fast is not None:
        return CHUNK, fast
    if payload == DONE:
        return END, None
    try:
        value = _loads(payload.decode("utf-8", "replace"))
    except ValueError:
        return CHUNK, payload.decode("utf-8", "replace")
    if isinstance(value, dict):
        if "data" in value:
            content = value["data"]
            if isinstance(content, dict):
                content = content.get("text", content.get("output", str(content)))
            if content == "[DONE]":
                return END, None
            return CHUNK, content
        error = value.get("error_message") or value.get("error")
        if error or str(value.get("status", "")).upper() == "FAILED":
            return ERROR, " ".join(str(error or "the stream reported a failure").split())
        if "text" in value:
            return CHUNK, value["text"]
        return CHUNK, ""
    if isinstance(value, str):
        return CHUNK, value
    return CHUNK, payload.decode("utf-8", "replace")


_PREFIXES = (b'{"data": "', b'{"data":"')


def _fast_text(payload: bytes) -> str | None:
    """The text of the common ``{"data": "<text without escapes>"}`` event without a JSON parse.

    Exact: a JSON string with no backslash and no quote inside is its own content.
    """
    if payload[-2:] != b'"}':
        return None
    if payload[:10] == b'{"data": "':
        middle = payload[10:-2]
    elif payload[:9] == b'{"data":"':
        middle = payload[9:-2]
    else:
        return None
    if b'"' in middle or b"\\" in middle or middle == b"[DONE]":
        return None
    try:
        return middle.decode("utf-8")
    except UnicodeDecodeError:
        return None


class ModelResponseStreamer:
    """Iterator (and async iterator) of ``ModelResponse`` chunks of one streamed run.

    Each chunk is ``ModelResponse(status=IN_PROGRESS, data=<chunk text>)``; the stream ends with
    one terminal response: SUCCESS (``completed=True``, ``data=""``) after ``[DONE]``, or FAILED
    with a one-line ``error_message`` (HTTP error, stream closed before ``[DONE]``, cancelled).
    ``.status`` follows along; ``.text`` is the whole text so far (all of it once done).

    ``ModelResponseStreamer(lines)`` accepts an iterator of SSE lines, like the SDK's.
    """

    def __init__(
        self,
        iterator: Iterable[str] | None = None,
        *,
        payloads: Iterator[list[bytes]] | None = None,
        apayloads: AsyncIterator[list[bytes]] | None = None,
        on_event: EventHook | None = None,
        model_id: str = "",
        started: float | None = None,
        closer: Callable[[], None] | None = None,
        aclose: Callable[[], Any] | None = None,
        failure: ModelResponse | None = None,
        cancel: threading.Event | None = None,
        secret: str | None = None,
    ) -> None:
        if iterator is not None and payloads is None:
            payloads = _lines_to_payloads(iterator)
        self._payloads = payloads
        self._apayloads = apayloads
        self._pending: collections.deque[bytes] = collections.deque()
        self.status = ResponseStatus.IN_PROGRESS
        self.error_message = ""
        self._parts: list[str] = []
        self._on_event = on_event
        self._model_id = model_id
        self._started = time.monotonic() if started is None else started
        self._closer = closer
        self._aclose = aclose
        self._cancel = cancel
        self._secret = secret
        self._final: ModelResponse | None = failure
        self._finished = False
        # the hot path applies while nothing special can happen between two chunks
        self._plain = failure is None and cancel is None
        self.chunks = 0

    # -- state ----------------------------------------------------------------------------------
    @property
    def text(self) -> str:
        """The text received so far (the whole text once the stream is done)."""
        return "".join(self._parts)

    @property
    def done(self) -> bool:
        return self._finished

    def _emit(self, kind: str, **kw: Any) -> None:
        if self._on_event is not None:
            self._on_event(RunEvent(kind, self._model_id, time.monotonic() - self._started, **kw))  # type: ignore[arg-type]

    def _end(self, response: ModelResponse) -> ModelResponse:
        self._finished = True
        self._plain = False
        self.status = response.status
        self.error_message = response.error_message
        self.close()
        if response.status is ResponseStatus.SUCCESS:
            whole = ModelResponse(status=ResponseStatus.SUCCESS, data=self.text, completed=True)
            self._emit("finished", response=whole)
        elif "cancelled" in response.error_message:
            self._emit("cancelled", message=response.error_message, response=response)
        else:
            self._emit("failed", response=response, message=response.error_message)
        return response

    def _handle(self, payload: bytes) -> ModelResponse:
        value = _fast_text(payload)
        if value is None:
            kind, value = parse_payload(payload)
            value = scrub_value(value, self._secret)  # an escape may spell the key in other bytes
            if kind == END:
                return self._end(ModelResponse(status=ResponseStatus.SUCCESS, data="", completed=True))
            if kind == ERROR:
                failure = ModelResponse(status=ResponseStatus.FAILED, completed=True, error_message=value)
                return self._end(failure)
            if value.__class__ is not str:
                value = _as_text(value)
        self._parts.append(value)
        self.chunks += 1
        if self._on_event is not None:
            self._emit("chunk", chunk=value, polls=self.chunks)
        return ModelResponse.chunk(value)

    def _eof(self) -> ModelResponse:
        return self._end(
            ModelResponse(
                status=ResponseStatus.FAILED,
                completed=True,
                error_message="The stream ended before [DONE]: the server closed the connection early.",
            )
        )

    def _cancelled(self) -> ModelResponse:
        return self._end(
            ModelResponse(status=ResponseStatus.FAILED, completed=True, error_message="Run cancelled.")
        )

    # -- sync iteration -------------------------------------------------------------------------
    def __iter__(self) -> ModelResponseStreamer:
        return self

    def __next__(self) -> ModelResponse:
        pending = self._pending
        if pending and self._plain:  # the hot path: one common {"data": "<text>"} event
            payload = pending.popleft()
            if payload[-2:] == b'"}' and payload[:10] == b'{"data": "':
                middle = payload[10:-2]
                if b'"' not in middle and b"\\" not in middle and middle != b"[DONE]":
                    try:
                        text = middle.decode("utf-8")
                    except UnicodeDecodeError:
                        return self._handle(payload)
                    self._parts.append(text)
                    self.chunks += 1
                    if self._on_event is not None:
                        self._emit("chunk", chunk=text, polls=self.chunks)
                    return ModelResponse.chunk(text)
            return self._handle(payload)
        return self._next_slow()

    def _next_slow(self) -> ModelResponse:
        if self._cancel is not None and self._cancel.is_set() and not self._finished:
            return self._cancelled()
        if self._finished:
            raise StopIteration
        if self._final is not None:
            final, self._final = self._final, None
            return self._end(final)
        pending = self._pending
        while not pending:
            if self._cancel is not None and self._cancel.is_set():
                return self._cancelled()
            if self._payloads is None:
                if self._apayloads is not None:
                    raise AixError("this stream was opened with arun_stream: iterate it with 'async for'")
                return self._eof()
            try:
                batch = next(self._payloads)
            except StopIteration:
                return self._eof()
            except _CancelledRead:
                return self._cancelled()
            except AixError as exc:
                return self._end(
                    ModelResponse(status=ResponseStatus.FAILED, completed=True, error_message=str(exc))
                )
            pending.extend(batch)
        return self._handle(pending.popleft())

    def close(self) -> None:
        closer, self._closer = self._closer, None
        if closer is not None:
            closer()

    def __enter__(self) -> ModelResponseStreamer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- async iteration ------------------------------------------------------------------------
    def __aiter__(self) -> ModelResponseStreamer:
        return self

    async def __anext__(self) -> ModelResponse:
        if self._cancel is not None and self._cancel.is_set() and not self._finished:
            return self._cancelled()
        if self._finished:
            await self.aclose()
            raise StopAsyncIteration
        if self._final is not None:
            final, self._final = self._final, None
            return self._end(final)
        pending = self._pending
        while not pending:
            if self._cancel is not None and self._cancel.is_set():
                return self._cancelled()
            if self._apayloads is None:
                if self._payloads is not None:
                    raise AixError("this stream was opened with run_stream: iterate it with 'for'")
                return self._eof()
            try:
                batch = await self._apayloads.__anext__()
            except StopAsyncIteration:
                return self._eof()
            except _CancelledRead:
                return self._cancelled()
            except AixError as exc:
                return self._end(
                    ModelResponse(status=ResponseStatus.FAILED, completed=True, error_message=str(exc))
                )
            pending.extend(batch)
        return self._handle(pending.popleft())

    async def aclose(self) -> None:
        self.close()
        closer, self._aclose = self._aclose, None
        if closer is not None:
            await closer()

    async def __aenter__(self) -> ModelResponseStreamer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"ModelResponseStreamer(status={self.status}, chunks={self.chunks})"


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


class _CancelledRead(Exception):
    """Raised by a payload source when the caller's cancel event was set."""


def _lines_to_payloads(lines: Iterable[str | bytes]) -> Iterator[list[bytes]]:
    """Batches of event payloads from SSE lines given one at a time (the SDK's form of input)."""
    raw = ((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n" for line in lines)
    return decode_stream(raw)


def decode_stream(raw_chunks: Iterable[bytes]) -> Iterator[list[bytes]]:
    """Batches of event payloads from an iterable of raw network reads."""
    decoder = SSEDecoder()
    for raw in raw_chunks:
        out = decoder.feed(raw)
        if out:
            yield out
    rest = decoder.flush()
    if rest:
        yield rest


async def adecode_stream(raw_chunks: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    decoder = SSEDecoder()
    async for raw in raw_chunks:
        out = decoder.feed(raw)
        if out:
            yield out
    rest = decoder.flush()
    if rest:
        yield rest


_EOF = object()


def pumped(
    source: Iterator[list[bytes]], cancel: threading.Event, on_abandon: Callable[[], None]
) -> Iterator[list[bytes]]:
    """Read ``source`` in a daemon thread so that a ``cancel`` set elsewhere ends the wait at once."""
    box: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def pump() -> None:
        try:
            for batch in source:
                box.put(batch)
                if cancel.is_set():
                    break
        except BaseException as exc:  # handed to the consumer, who re-raises it
            box.put(exc)
        finally:
            box.put(_EOF)

    threading.Thread(target=pump, name="aix-stream", daemon=True).start()
    while True:
        try:
            item = box.get(timeout=0.05)
        except queue.Empty:
            if cancel.is_set():
                on_abandon()
                raise _CancelledRead() from None
            continue
        if item is _EOF:
            return
        if isinstance(item, BaseException):
            raise item
        yield item
