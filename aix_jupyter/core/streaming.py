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
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from aix_jupyter.core.enums import ResponseStatus
from aix_jupyter.core.errors import AixError
from aix_jupyter.core.events import EventHook, RunEvent, report_response
from aix_jupyter.core.marks import carry
from aix_jupyter.core.protocol import (
    NO_RESPONSE,
    REDACTED,
    one_line,
    scrub_bytes,
    scrub_value,
    secret_byte_forms,
)
from aix_jupyter.core.response import ModelResponse

DONE = b"[DONE]"
_loads = json.loads


class SSEDecoder:
    """Incremental SSE decoder: ``feed(bytes)`` returns the ``data`` payloads of complete events.

    Linear in what it is fed: each read is searched once, and an unfinished event is kept in a
    growing ``bytearray``; an event longer than ``max_event`` bytes fails the stream with an
    AixError that says so. With ``secret``, the payloads have it replaced by ``***``.
    """

    __slots__ = ("_buf", "_cr", "_forms", "_secret", "max_event")

    def __init__(self, secret: str | None = None, *, max_event: int | None = None) -> None:
        self._buf = bytearray()
        self._cr = False  # the last read ended with CR: the next may start with its LF
        self._secret = secret
        self._forms = secret_byte_forms(secret) if secret else ()
        self.max_event = max_event

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._cr:
            chunk, self._cr = b"\r" + chunk, False
        if b"\r" in chunk:
            if chunk.endswith(b"\r"):
                chunk, self._cr = chunk[:-1], True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        buf = self._buf
        if buf:
            start = len(buf) - 1  # a separator may straddle the two reads
            buf += chunk
            end = buf.rfind(b"\n\n", start)
            if end < 0:
                return self._check()
            region = bytes(buf[:end])
            parts = region.split(b"\n\n")
            del buf[: end + 2]
            self._check()
        else:
            region = chunk
            parts = chunk.split(b"\n\n")  # one pass over this read only
            rest = parts.pop()
            if rest:  # the start of the next event
                buf += rest
                self._check()
        out: list[bytes] = []
        append = out.append
        for part in parts:
            if part[:5] == b"data:" and b"\n" not in part:  # the common case: one data line
                append(part[6:] if part[5:6] == b" " else part[5:])
                continue
            payload = _event_data(part)
            if payload is not None:
                append(payload)
        # a payload that holds a form of the key is within ``region`` (the key has no blank line)
        if self._forms and any(form in region for form in self._forms):
            return self._scrubbed(out)
        return out

    def _check(self) -> list[bytes]:
        if self.max_event is not None and len(self._buf) > self.max_event:
            size = len(self._buf)
            self._buf = bytearray()
            raise AixError(
                f"the stream sent an event (or line) longer than {self.max_event} bytes ({size} so far "
                "without an end); raise AIX_MAX_EVENT_BYTES if this is expected"
            )
        return []

    def _scrubbed(self, payloads: list[bytes]) -> list[bytes]:
        return [scrub_bytes(p, self._secret) for p in payloads]

    def flush(self) -> list[bytes]:
        """Payload of a final event not followed by a blank line (stream closed early)."""
        rest, self._buf, self._cr = bytes(self._buf), bytearray(), False
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
    except (ValueError, RecursionError):  # not JSON (or nested too deeply to decode): plain text
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
    with a one-line ``error_message`` (HTTP error, stream closed before ``[DONE]``, timed out,
    cancelled). ``.status`` follows along; ``.text`` is the whole text so far (all of it once done).

    ``ModelResponseStreamer(lines)`` accepts an iterator of SSE lines, like the SDK's. A stream from
    ``run_stream`` is read with ``for``, one from ``arun_stream`` with ``async for``; both end
    their connection when they end, on ``close()`` / ``aclose()``, or at the run's deadline.

    With ``secret`` (the API key), no chunk carries the key, even one the server spells out across
    several events: the end of a chunk's text that could be the start of the key (at most
    ``len(key) - 1`` characters) is held back until the next chunk, or the end, shows whether it
    is (``_release``). The key becomes ``***`` wherever it is whole; the chunks, put together, are
    the whole text with the key replaced (``.text``), and none ends with a start of the key that the
    next one completes.
    """

    def __init__(
        self,
        iterator: Iterable[str] | None = None,
        *,
        payloads: Iterator[list[bytes]] | AsyncIterator[list[bytes]] | None = None,
        on_event: EventHook | None = None,
        model_id: str = "",
        started: float | None = None,
        failure: ModelResponse | None = None,
        cancel: threading.Event | None = None,
        secret: str | None = None,
        timeout: float | None = None,
        session: bool = False,
        recorder: Callable[[list[tuple[float, str]]], None] | None = None,
        recall: Any = None,
    ) -> None:
        if iterator is not None and payloads is None:
            payloads = _lines_to_payloads(iterator)
        self._payloads = payloads
        self._is_async = payloads is not None and hasattr(payloads, "__anext__")
        self._pending: collections.deque[bytes] = collections.deque()
        self.status = ResponseStatus.IN_PROGRESS
        self.error_message = ""
        self._parts: list[str] = []
        self._on_event = on_event
        self._model_id = model_id
        self._started = time.monotonic() if started is None else started
        self._cancel = cancel
        self._secret = secret or None
        self._first, self._tail = (secret[0], 1 - len(secret)) if secret else ("", 0)  # for the hot path
        self._held = ""  # the carry-over window: text that may be the start of the key (``_release``)
        self._after: ModelResponse | None = None  # the end, once the held text is released before it
        self._timeout = timeout
        self._session = session  # report the end to the session observers (a run_stream's streamer)
        self._final: ModelResponse | None = failure
        self._finished = False
        # keeping the stream (cache, cassette): each chunk's time since the start, for its replay
        self._recorder = recorder
        self._times: list[float] | None = [] if recorder is not None else None
        self._recall = recall  # the RecallMark of this stream's request (core.marks.recall_of), or None
        # the hot path applies while nothing special can happen between two chunks
        self._plain = failure is None and cancel is None and recorder is None
        self.chunks = 0
        self._watchers: list[Callable[[ModelResponse | None], ModelResponse | None]] = []

    @classmethod
    def of(cls, outcome: Any, **kw: Any) -> ModelResponseStreamer:
        """The stream of a run that did not stream: its whole result as one chunk, or its failure."""
        if outcome.status is ResponseStatus.SUCCESS:
            streamer = cls(**kw)
            streamer._pending.extend(_whole(outcome))
            return streamer
        return cls(failure=outcome, **kw)

    # -- state ----------------------------------------------------------------------------------
    @property
    def text(self) -> str:
        """The text received so far (the whole text once the stream is done)."""
        text = "".join(self._parts)
        return text.replace(self._secret, REDACTED) if self._secret and self._secret in text else text

    @property
    def recall(self) -> Any:
        """The ``RecallMark`` of this stream (its request key; where a stored stream came from), or None."""
        return self._recall

    @property
    def done(self) -> bool:
        return self._finished

    def _emit(self, kind: str, **kw: Any) -> None:
        if self._on_event is not None:
            self._on_event(RunEvent(kind, self._model_id, time.monotonic() - self._started, **kw))  # type: ignore[arg-type]

    def watch(self, watcher: Callable[[ModelResponse | None], ModelResponse | None]) -> None:
        """Call ``watcher`` once when this stream ends: with its final response (before anyone sees
        it; a response returned replaces it), or with None when it is closed or interrupted first."""
        self._watchers.append(watcher)

    def _notify(self, response: ModelResponse | None) -> ModelResponse | None:
        watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            response = watcher(response) or response
        return response

    def _release(self, text: str) -> str | None:
        """What of the text so far may be given out now (the key, where whole, replaced by ``***``);
        None when all of ``text`` is held back. What is kept back (``_held``) is the longest end
        of the text, after the last whole key, that is the start of the key; the next chunk
        decides about it (or the end: ``[DONE]`` next releases everything)."""
        key = self._secret
        assert key is not None
        if not self._held and key not in text and self._first not in text[self._tail :]:
            return text  # nothing of the key in it, nor a start of it at its end
        whole = self._held + text if self._held else text
        size = len(key)
        after = 0  # where the text after the last whole key starts (str.replace's matches)
        if key in whole:
            at = whole.find(key)
            while at >= 0:
                after = at + size
                at = whole.find(key, after)
        cut = len(whole)
        if not (self._pending and self._pending[0] == DONE):
            first = key[0]
            at = whole.find(first, max(after, cut - size + 1))
            while at >= 0 and not key.startswith(whole[at:]):
                at = whole.find(first, at + 1)
            if at >= 0:
                cut = at
        self._held = whole[cut:]
        out = whole[:cut] if cut < len(whole) else whole
        if after:
            out = out.replace(key, REDACTED)
        return out if out or not text else None

    def _chunk(self, text: str, counted: bool = True) -> ModelResponse:
        """A chunk given out; ``counted``: it is a server event's (``chunks`` counts the server's
        text events, so the carry-over window, which may hold one back, never changes the count)."""
        self._parts.append(text)
        if self._times is not None:
            self._times.append(time.monotonic() - self._started)
        if counted:
            self.chunks += 1
        if self._on_event is not None:
            self._emit("chunk", chunk=text, polls=self.chunks)
        return ModelResponse.chunk(text)

    def _end(self, response: ModelResponse) -> ModelResponse:
        if self._held:  # the carry-over window's text, given out before the end
            text, self._held = self._held, ""
            self._after, self._plain = response, False
            return self._chunk(text, counted=False)
        self._finished = True
        self._plain = False
        if self._watchers:
            response = self._notify(response) or response
        self.status = response.status
        self.error_message = response.error_message
        self.close()
        carry(response, self._recall)
        if self._session:
            report_response("stream", self._model_id, response)
        if response.status is ResponseStatus.SUCCESS:
            if self._recorder is not None and self._times is not None:
                self._keep()
            whole = carry(
                ModelResponse(status=ResponseStatus.SUCCESS, data=self.text, completed=True), self._recall
            )
            self._emit("finished", response=whole)
        elif "cancelled" in response.error_message:
            self._emit("cancelled", message=response.error_message, response=response)
        else:
            self._emit("failed", response=response, message=response.error_message)
        return response

    def _keep(self) -> None:
        """Hand the chunks and their times to the recorder (a failing store warns, never breaks)."""
        assert self._recorder is not None and self._times is not None
        try:
            self._recorder(list(zip(self._times, self._parts, strict=True)))
        except Exception as exc:
            import warnings

            warnings.warn(f"this stream could not be kept: {exc}", RuntimeWarning, stacklevel=4)

    def _fail(self, message: str, completed: bool = True) -> ModelResponse:
        failure = ModelResponse(status=ResponseStatus.FAILED, completed=completed, error_message=message)
        return self._end(failure)

    def _handle(self, payload: bytes) -> ModelResponse | None:
        """The response of one payload; None when its text is all held back (``_release``)."""
        value = _fast_text(payload)
        if value is None:
            kind, value = parse_payload(payload)
            value = scrub_value(value, self._secret)  # an escape may spell the key in other bytes
            if kind == END:
                return self._end(ModelResponse(status=ResponseStatus.SUCCESS, data="", completed=True))
            if kind == ERROR:
                return self._fail(value)
            if value.__class__ is not str:
                value = _as_text(value)
        if self._secret is not None:
            value = self._release(value)
            if value is None:
                self.chunks += 1  # the server's event, held back whole
                return None
        return self._chunk(value)

    def _ready(self) -> ModelResponse | None:
        """The next response when it is due without reading (``STOP`` once done), else None."""
        if self._finished:
            return STOP
        if self._after is not None:
            after, self._after = self._after, None
            return self._end(after)
        if self._cancel is not None and self._cancel.is_set():
            return self._fail(CANCELLED)
        if self._final is not None:
            final, self._final = self._final, None
            return self._end(final)
        while self._pending:
            response = self._handle(self._pending.popleft())
            if response is not None:
                return response
        if self._payloads is None:
            return self._fail(EARLY_EOF)
        return None

    def _read_failed(self, exc: BaseException) -> ModelResponse:
        """The terminal response for what reading the next batch raised (or re-raise it)."""
        from aix_jupyter.core.wire import Cancelled, DeadlineExceeded

        if isinstance(exc, StopIteration | StopAsyncIteration):
            return self._fail(EARLY_EOF)
        if isinstance(exc, Cancelled):
            return self._fail(CANCELLED)
        if isinstance(exc, DeadlineExceeded):
            return self._fail(f"{NO_RESPONSE} (the stream did not end within {self._timeout:g} s)", False)
        if isinstance(exc, AixError):
            return self._fail(one_line(str(exc)))
        self._finished, self._plain = True, False
        self.close()
        raise exc

    def _wrong_iteration(self, sync: bool) -> None:
        if self._payloads is not None and self._is_async == sync:
            opened, loop = ("arun_stream", "'async for'") if sync else ("run_stream", "'for'")
            raise AixError(f"this stream was opened with {opened}: iterate it with {loop}")

    # -- sync iteration -------------------------------------------------------------------------
    def __iter__(self) -> ModelResponseStreamer:
        return self

    def __next__(self) -> ModelResponse:
        pending = self._pending
        key = self._secret
        while pending and self._plain:  # the hot path: one common {"data": "<text>"} event
            payload = pending.popleft()
            if payload[-2:] == b'"}' and payload[:10] == b'{"data": "':
                middle = payload[10:-2]
                if b'"' not in middle and b"\\" not in middle and middle != b"[DONE]":
                    try:
                        text: str | None = middle.decode("utf-8")
                    except UnicodeDecodeError:
                        text = None
                    if text is not None:
                        # the carry-over window (``_release``'s first test, inlined: the hot path)
                        if key is not None and (
                            self._held or key in text or self._first in text[self._tail :]
                        ):
                            text = self._release(text)
                            if text is None:
                                self.chunks += 1  # the server's event, held back whole
                                continue
                        self._parts.append(text)
                        self.chunks += 1
                        if self._on_event is not None:
                            self._emit("chunk", chunk=text, polls=self.chunks)
                        return ModelResponse.chunk(text)
            response = self._handle(payload)
            if response is not None:
                return response
        self._wrong_iteration(sync=True)
        while (ready := self._ready()) is None:
            try:
                self._pending.extend(next(self._payloads))  # type: ignore[arg-type]
            except BaseException as exc:
                return self._read_failed(exc)
        if ready is STOP:
            raise StopIteration
        return ready

    def close(self) -> None:
        """End the stream now: its connection is closed (a sync stream's; see ``aclose``)."""
        source = self._payloads
        if source is not None and not self._is_async:
            self._payloads = None
            close = getattr(source, "close", None)
            if close is not None:
                close()
        if self._watchers:  # closed (or interrupted) before its end
            self._notify(None)

    def __enter__(self) -> ModelResponseStreamer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- async iteration ------------------------------------------------------------------------
    def __aiter__(self) -> ModelResponseStreamer:
        return self

    async def __anext__(self) -> ModelResponse:
        self._wrong_iteration(sync=False)
        while (ready := self._ready()) is None:
            try:
                self._pending.extend(await self._payloads.__anext__())  # type: ignore[union-attr]
            except BaseException as exc:
                return self._read_failed(exc)
        if ready is STOP:
            await self.aclose()
            raise StopAsyncIteration
        return ready

    async def aclose(self) -> None:
        """End the stream now and close its connection (either kind of stream)."""
        source = self._payloads
        if source is not None and self._is_async:
            self._payloads = None
            await source.aclose()  # type: ignore[union-attr]
        self.close()

    async def __aenter__(self) -> ModelResponseStreamer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"ModelResponseStreamer(status={self.status}, chunks={self.chunks})"


STOP: Any = ModelResponse.chunk("")  # the marker _ready returns once the stream is done
CANCELLED = "Run cancelled."
EARLY_EOF = "The stream ended before [DONE]: the server closed the connection early."


def _whole(result: ModelResponse) -> list[bytes]:
    """A finished non-streamed result as stream payloads (one chunk, then the end)."""
    return [json.dumps({"data": result.data}, default=str).encode(), b"[DONE]"]


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def _lines_to_payloads(lines: Iterable[str | bytes]) -> Iterator[list[bytes]]:
    """Batches of event payloads from SSE lines given one at a time (the SDK's form of input).

    As the SDK, each line is one event (the lines need no blank line between them); unlike it, a
    blank line is no chunk.
    """
    raw = ((line if isinstance(line, bytes) else line.encode("utf-8")) + b"\n\n" for line in lines)
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
