"""The one seam in front of the transport where the response cache and cassettes apply.

A run asks "is this request key known?" before any I/O, and keeps its final response after:

* **replay** (a cassette opened with ``set_replay`` / ``AIX_REPLAY``): every run and metadata request
  is answered from the cassette, with no network and no key; one that is not in it raises
  ``ReplayMiss`` naming the model and the start of the input;
* **cache** (``set_cache`` / ``AIX_CACHE``, or ``Model(cache=...)`` / ``run(cache=...)``): a hit is
  the stored SUCCESS response, a miss goes to the server and its SUCCESS is stored;
* **record** (``set_record`` / ``AIX_RECORD``): every run's final response, a stream's chunks with
  their timing, and every metadata reply are appended to the cassette.

``run``, ``run_async`` + ``poll``/``sync_poll``, ``run_stream`` and ``map`` (through the run flow
a ``Model`` builds) all pass here, sync and async alike: the seam wraps the flows, so the drivers
do not know it exists. An answer from a store is marked (``recall_of``): the request key, where it
came from, and the credits it saved (``marks``, re-exported here); the session observers count it
as spent 0.

A ``run_async`` answered from a store returns IN_PROGRESS with a handle ``aix-recall:<key>`` as its
poll URL, so the usual ``sync_poll(response.url)`` that follows gets the recorded response.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aix_jupyter.core.enums import ResponseStatus
from aix_jupyter.core.errors import AixError, ConfigurationError, ReplayMiss
from aix_jupyter.core.marks import RecallMark as RecallMark
from aix_jupyter.core.marks import Source, _mark
from aix_jupyter.core.marks import carry as carry
from aix_jupyter.core.marks import recall_of as recall_of
from aix_jupyter.core.marks import spent_credits as spent_credits
from aix_jupyter.core.requestkey import Recorded, RequestKey, endpoint_origin, meta_key
from aix_jupyter.core.response import ModelResponse
from aix_jupyter.core.secrets import scrub_deep, scrub_text

if TYPE_CHECKING:
    from aix_jupyter.core.cache import ResponseCache
    from aix_jupyter.core.cassette import Cassette
    from aix_jupyter.core.config import Endpoints
    from aix_jupyter.core.flows import Emitter, Flow
    from aix_jupyter.core.wire import Call

RECALL_SCHEME = "aix-recall:"
HELD_LIMIT = 10_000  # handles of run_async answers kept for their poll
PENDING_LIMIT = 10_000  # jobs started by run_async whose end is to be kept

# ---------------------------------------------------------------------------------------------
# settings: set in this process (the magics), else read from the environment at use time

_UNSET: Any = object()
_lock = threading.Lock()
_settings: dict[str, Any] = {"cache": _UNSET, "record": _UNSET, "replay": _UNSET}
_opened: dict[tuple[str, str], Any] = {}  # (kind, resolved path) -> the object opened for it
OFF_WORDS = frozenset({"", "0", "off", "false", "no", "none"})
ON_WORDS = frozenset({"1", "on", "true", "yes"})  # AIX_CACHE=1: the default file


def _env_path(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip().lower() in OFF_WORDS:
        return None
    return value.strip()


def _open(kind: str, path: str | os.PathLike[str], make: Callable[[Path], Any]) -> Any:
    resolved = Path(path).expanduser().resolve()
    with _lock:
        found = _opened.get((kind, str(resolved)))
        if found is None:
            found = _opened[(kind, str(resolved))] = make(resolved)
        return found


def open_cache(path: str | os.PathLike[str] | None = None) -> ResponseCache:
    """The ``ResponseCache`` of ``path`` (the default path when None), one object per file."""
    from aix_jupyter.core.cache import ResponseCache, default_cache_path

    return _open("cache", path if path is not None else default_cache_path(), ResponseCache)  # type: ignore[no-any-return]


def set_cache(cache: str | os.PathLike[str] | ResponseCache | bool | None) -> ResponseCache | None:
    """Turn the response cache on for this process (a path, a ``ResponseCache``, or True for the
    default path) or off (None or False, whatever ``AIX_CACHE`` says); returns the cache now in use."""
    from aix_jupyter.core.cache import ResponseCache

    if cache is None or cache is False:
        _settings["cache"] = None
    elif cache is True:
        _settings["cache"] = open_cache()
    elif isinstance(cache, ResponseCache):
        _settings["cache"] = cache
    elif isinstance(cache, str | os.PathLike):
        _settings["cache"] = open_cache(cache)
    else:
        raise ConfigurationError(
            f"cache must be a path, a ResponseCache, True or False, got {type(cache).__name__}"
        )
    return current_cache()


def current_cache() -> ResponseCache | None:
    """The cache runs use by default: the one set here, else ``AIX_CACHE`` (a path), else None."""
    return _current(  # type: ignore[no-any-return]
        "cache", "AIX_CACHE", lambda path: open_cache(None if path.lower() in ON_WORDS else path)
    )


def set_record(path: str | os.PathLike[str] | None, *, append: bool = False) -> Cassette | None:
    """Record every run to the cassette ``path`` (a new file unless ``append``); None stops."""
    from aix_jupyter.core.cassette import Cassette

    if path is None:
        _settings["record"] = None
        return None
    replaying = current_replay()
    if replaying is not None and replaying.path.resolve() == Path(path).expanduser().resolve():
        raise ConfigurationError(
            f"{replaying.path} is being replayed; stop replaying first (%aix replay off)"
        )
    cassette = Cassette(path, "record", append=append)  # (a new file: after the check, never before)
    _settings["record"] = cassette
    return cassette


def _current(kind: str, variable: str, make: Callable[[str], Any]) -> Any:
    """What was set here for ``kind`` (None: off), else ``make(path)`` of the environment's ``variable``."""
    chosen = _settings[kind]
    if chosen is not _UNSET:
        return chosen
    path = _env_path(variable)
    return None if path is None else make(path)


def _cassette(mode: str, **options: Any) -> Callable[[str], Cassette]:
    """Opens the environment's cassette of ``mode`` (one object per file); nothing is imported until
    a variable names one (this runs on every run)."""

    def make(path: Path) -> Cassette:
        from aix_jupyter.core.cassette import Cassette

        speed = options.get("speed")
        settings = {**options, "speed": speed()} if callable(speed) else options  # read when opened
        return Cassette(path, mode, **settings)  # type: ignore[arg-type]

    return lambda path: _open(mode, path, make)  # type: ignore[no-any-return]


def current_record() -> Cassette | None:
    """The cassette being recorded: the one set here, else ``AIX_RECORD`` (appended to), else None."""
    # appended to, never replaced: every kernel of a run (nbval, papermill) records to the same file
    return _current("record", "AIX_RECORD", _OPEN_RECORD)  # type: ignore[no-any-return]


def set_replay(path: str | os.PathLike[str] | None, *, speed: float | None = None) -> Cassette | None:
    """Answer every run from the cassette ``path`` (no network, no key); None stops replaying.
    ``speed`` scales the pauses between a stream's chunks (1: as recorded, 0: none)."""
    from aix_jupyter.core.cassette import Cassette

    if path is None:
        _settings["replay"] = None
        return None
    _settings["replay"] = Cassette(path, "replay", speed=_replay_speed() if speed is None else speed)
    return _settings["replay"]  # type: ignore[no-any-return]


def _replay_speed() -> float:
    raw = os.environ.get("AIX_REPLAY_SPEED", "").strip()
    if not raw:
        return 1.0
    try:
        speed = float(raw)
    except ValueError:
        raise ConfigurationError(f"AIX_REPLAY_SPEED must be a number >= 0, got {raw!r}") from None
    if not speed >= 0:
        raise ConfigurationError(f"AIX_REPLAY_SPEED must be a number >= 0, got {raw!r}")
    return speed


_OPEN_RECORD = _cassette("record", append=True)
_OPEN_REPLAY = _cassette("replay", speed=_replay_speed)  # the speed is read when the cassette is opened


def current_replay() -> Cassette | None:
    """The cassette being replayed: the one set here, else ``AIX_REPLAY``, else None."""
    return _current("replay", "AIX_REPLAY", _OPEN_REPLAY)  # type: ignore[no-any-return]


def reset() -> None:
    """Forget what was set in this process: follow the environment again (and close what was opened)."""
    with _lock:
        for (kind, _), opened in _opened.items():
            if kind == "cache":
                opened.close()
        _opened.clear()
    for name in _settings:
        _settings[name] = _UNSET


def replaying() -> bool:
    """True while runs are answered from a cassette (then nothing may start a server)."""
    return current_replay() is not None


# ---------------------------------------------------------------------------------------------
# the stores that apply to one call


def _choose_cache(choice: Any) -> ResponseCache | None:
    if choice is None:
        return current_cache()
    if choice is False:
        return None
    if choice is True:
        return current_cache() or open_cache()
    from aix_jupyter.core.cache import ResponseCache

    if isinstance(choice, ResponseCache):
        return choice
    if isinstance(choice, str | os.PathLike):
        return open_cache(choice)
    raise ConfigurationError(
        f"cache must be None, True, False, a path or a ResponseCache, got {type(choice).__name__}"
    )


@dataclass
class Hit:
    """A stored answer found for a key (what a stream flow returns instead of opening a stream)."""

    recorded: Recorded
    source: Source
    key: RequestKey
    speed: float = 0.0  # a stream's pace: the cassette's speed, 0 (no pauses) for the cache


@dataclass
class Recall:
    """The stores that apply to one call, and the key to scrub from what they keep."""

    cache: ResponseCache | None = None
    record: Cassette | None = None
    replay: Cassette | None = None
    secret: str | None = None

    # -- lookup and keeping ---------------------------------------------------------------------
    def lookup(self, key: RequestKey) -> Hit | None:
        """A stored answer for ``key``; ReplayMiss while replaying a cassette that has none."""
        if self.replay is not None:
            recorded = self.replay.find_run(key)
            if recorded is None:
                where = self.replay.path
                raise ReplayMiss(
                    f"no run of {key.model_id!r} with input {key.input!r} in the cassette {where}; "
                    f"record it again (%aix record {where}) or stop replaying (%aix replay off)",
                    model_id=key.model_id,
                    input=key.input,
                )
            return Hit(recorded, "cassette", key, self.replay.speed)
        if self.cache is not None:
            recorded = self.cache.get(key.digest)
            if recorded is not None and recorded.ok:
                if self.record is not None:  # a recording stays complete when the cache answers
                    self._record(key, recorded)
                return Hit(recorded, "cache", key)
        return None

    def keep(
        self, key: RequestKey, response: ModelResponse, chunks: list[tuple[float, str]] | None = None
    ) -> None:
        """Keep the final ``response`` of a call that went to the server (SUCCESS in the cache; every
        answer of the server in the cassette: not a cancel, a timeout or a lost connection)."""
        if self.replay is not None or response.status is ResponseStatus.IN_PROGRESS:
            return
        if self.cache is None and self.record is None:
            return
        ok = response.status is ResponseStatus.SUCCESS
        if not ok and not self._server_answer(response):
            return
        clean = scrub_deep(response.to_dict(), self.secret)
        if chunks is not None:
            texts = [scrub_text(c, self.secret) for _, c in chunks]
            if self.secret and scrub_text("".join(texts), self.secret) != "".join(texts):
                chunks = [(chunks[0][0] if chunks else 0.0, scrub_text("".join(texts), self.secret))]
            else:
                chunks = [(t, c) for (t, _), c in zip(chunks, texts, strict=True)]
        recorded = Recorded(clean, chunks, key.model_id, scrub_text(key.input, self.secret))
        if ok and self.cache is not None:
            self.cache.put(key.digest, recorded)
        if self.record is not None:
            self._record(key, recorded)

    @staticmethod
    def _server_answer(response: ModelResponse) -> bool:
        from aix_jupyter.core.flows import CANCELLED_MESSAGE
        from aix_jupyter.core.protocol import NO_RESPONSE

        message = response.error_message or ""
        return bool(response.completed) and CANCELLED_MESSAGE not in message and NO_RESPONSE not in message

    def _record(self, key: RequestKey, recorded: Recorded) -> None:
        from aix_jupyter.core.cassette import CassetteError

        assert self.record is not None
        try:
            self.record.record_run(key, recorded, self.secret)
        except CassetteError as exc:  # the run itself is fine: it is not lost for a file
            warnings.warn(f"{exc}; this run is not recorded", RuntimeWarning, stacklevel=4)

    def answer(self, hit: Hit) -> ModelResponse:
        """The response of a hit: a fresh copy, marked with its key, source and saved credits."""
        return _mark(hit.recorded.to_response(), hit.key.digest, hit.source, hit.recorded.credits)

    # -- flows: each wraps the flow that would go to the server ----------------------------------
    def run_flow(self, key: RequestKey, flow: Flow, emit: Emitter, *, poll: bool = True) -> Flow:
        """``flow`` (a run's) behind the stores: a hit ends the run at once, a miss is kept after."""
        hit = self.lookup(key)
        if hit is not None:
            flow.close()
            response = self.answer(hit)
            if not poll and response.status is ResponseStatus.SUCCESS:
                handle = _hold(hit)
                emit("submitted", poll_url=handle)
                pending = _mark(
                    ModelResponse(ResponseStatus.IN_PROGRESS, data=handle, url=handle),
                    key.digest,
                    hit.source,
                    hit.recorded.credits,
                )
                return emit.settle(pending, handle)
            emit("submitted")
            return emit.settle(response) if not poll else emit.end(response)
        response = yield from flow
        if not poll and response.status is ResponseStatus.IN_PROGRESS and response.url:
            _remember_pending(response.url, key, self)
        else:
            self.keep(key, response)
        return _mark(response, key.digest, None)

    def stream_flow(self, key: RequestKey, flow: Flow) -> Flow:
        """``flow`` (a stream's) behind the stores: a ``Hit`` instead of a stream when one is stored."""
        hit = self.lookup(key)
        if hit is not None:
            flow.close()
            return hit
        return (yield from flow)

    def recorder(self, key: RequestKey) -> Callable[[list[tuple[float, str]]], None] | None:
        """What a stream calls with its chunks when it ends with SUCCESS (None: nothing to keep)."""
        if self.replay is not None or (self.cache is None and self.record is None):
            return None

        def keep(chunks: list[tuple[float, str]]) -> None:
            text = "".join(c for _, c in chunks)
            final = ModelResponse(ResponseStatus.SUCCESS, data=text, completed=True)
            self.keep(key, final, chunks)

        return keep

    def meta_flow(self, ep: Endpoints, call: Call, flow: Flow) -> Flow:
        """``flow`` (a metadata request's JSON) recorded to, or replayed from, the cassette."""
        origin = endpoint_origin(ep.backend_url, ep.embedded)
        path = call.url[len(ep.backend_url) :] if call.url.startswith(ep.backend_url) else call.url
        body = call.json_body

        def key_for(candidate: str) -> str:
            return meta_key(candidate, call.method, path, body)

        if self.replay is not None:
            flow.close()
            try:
                return self.replay.find_meta(origin, key_for)
            except KeyError:
                raise ReplayMiss(
                    f"no reply to {call.method} {path} in the cassette {self.replay.path}; record it again "
                    f"(%aix record {self.replay.path}) or stop replaying (%aix replay off)"
                ) from None
        reply = yield from flow
        if self.record is not None:
            from aix_jupyter.core.cassette import CassetteError

            try:
                self.record.record_meta(key_for(origin), origin, call.method, path, body, reply, self.secret)
            except CassetteError as exc:
                warnings.warn(f"{exc}; this reply is not recorded", RuntimeWarning, stacklevel=3)
        return reply


def bind(stores: Recall | None, resolve: Callable[..., Endpoints]) -> tuple[Recall | None, Endpoints]:
    """``stores`` and the endpoints of their call, from ``resolve(start_default=...)``: the default
    backend is not started while a cassette answers; the stores learn the key to scrub."""
    ep = resolve(start_default=stores is None or stores.replay is None)
    if stores is not None:
        stores.secret = ep.api_key
    return stores, ep


def active(cache: Any = None, secret: str | None = None) -> Recall | None:
    """The stores that apply to a call (``cache``: the call's choice, see ``Model.run``), or None."""
    replay = current_replay()
    if replay is not None:
        return Recall(replay=replay)
    chosen = _choose_cache(cache)
    record = current_record()
    if chosen is None and record is None:
        return None
    return Recall(chosen, record, None, secret)


def active_cassettes(secret: str | None = None) -> Recall | None:
    """The cassettes that apply to a metadata request (the cache keeps runs only), or None."""
    replay = current_replay()
    if replay is not None:
        return Recall(replay=replay)
    record = current_record()
    return None if record is None else Recall(record=record, secret=secret)


# ---------------------------------------------------------------------------------------------
# run_async handles and jobs, for the poll that follows

_held: OrderedDict[str, Hit] = OrderedDict()
_pending: OrderedDict[str, tuple[RequestKey, Recall]] = OrderedDict()


def _hold(hit: Hit) -> str:
    handle = f"{RECALL_SCHEME}{hit.key.digest}"
    with _lock:
        _held[handle] = hit
        _held.move_to_end(handle)
        while len(_held) > HELD_LIMIT:
            _held.popitem(last=False)
    return handle


def _remember_pending(url: str, key: RequestKey, recall: Recall) -> None:
    with _lock:
        _pending[url] = (key, recall)
        while len(_pending) > PENDING_LIMIT:
            _pending.popitem(last=False)


def is_handle(url: Any) -> bool:
    """True for a poll URL that is a handle of an answer from a store (``aix-recall:<key>``)."""
    return isinstance(url, str) and url.startswith(RECALL_SCHEME)


def held_response(handle: str) -> ModelResponse:
    """The response a ``run_async`` answered from a store holds (each call a fresh copy)."""
    with _lock:
        hit = _held.get(handle)
    if hit is None:
        raise AixError(
            f"{handle} is the handle of a stored answer that this process no longer holds "
            "(the kernel restarted?); run the model again"
        )
    return _mark(hit.recorded.to_response(), hit.key.digest, hit.source, hit.recorded.credits)


def held_flow(handle: str, emit: Emitter | None) -> Flow:
    """The poll of a handle: the stored response at once, no I/O."""
    from aix_jupyter.core.flows import value_flow

    response = held_response(handle)
    if emit is not None:
        emit("submitted", poll_url=handle)
        response = emit.end(response, handle)
    return value_flow(response)


def settle_pending(url: str, response: ModelResponse) -> ModelResponse:
    """A poll saw ``response`` for ``url``: a job started by ``run_async`` keeps its end."""
    if response.status is ResponseStatus.IN_PROGRESS:
        return response
    with _lock:
        entry = _pending.pop(url, None)
    if entry is not None:
        key, recall = entry
        recall.keep(key, response)
        _mark(response, key.digest, None)
    return response


def after_poll(url: str, flow: Flow) -> Flow:
    """``flow`` (polls of ``url``) with its final response kept for the run that started the job."""
    response = yield from flow
    return settle_pending(url, response)


# ---------------------------------------------------------------------------------------------
# a stored stream, replayed chunk by chunk


def _chunks_of(hit: Hit) -> list[tuple[float, str]]:
    if hit.recorded.chunks is not None:
        return hit.recorded.chunks
    return [(0.0, hit.recorded.text())]


def _payload(text: str) -> bytes:
    return json.dumps({"data": text}).encode()


def _paced(hit: Hit) -> Iterator[tuple[float, list[bytes]]]:
    """``(seconds to wait first, payloads)`` for each step of a stored stream, paced by ``hit.speed``
    (0: everything at once); each wait is computed when its step is asked for."""
    chunks = _chunks_of(hit)
    if hit.speed <= 0:
        yield 0.0, [*(_payload(c) for _, c in chunks), b"[DONE]"]
        return
    start = time.monotonic()
    for offset, text in chunks:
        yield max(0.0, start + offset / hit.speed - time.monotonic()), [_payload(text)]
    yield 0.0, [b"[DONE]"]


def replay_payloads(hit: Hit, cancel: threading.Event | None = None) -> Iterator[list[bytes]]:
    """The stored chunks as stream payloads, at their recorded pace (``cancel`` cuts a pause short)."""
    for wait, payloads in _paced(hit):
        if wait > 0:
            if cancel is not None:
                cancel.wait(wait)
            else:
                time.sleep(wait)
        yield payloads


async def areplay_payloads(hit: Hit) -> AsyncIterator[list[bytes]]:
    """The async twin of ``replay_payloads``."""
    for wait, payloads in _paced(hit):
        if wait > 0:
            await asyncio.sleep(wait)
        yield payloads


__all__ = [
    "RECALL_SCHEME",
    "Hit",
    "Recall",
    "RecallMark",
    "active",
    "active_cassettes",
    "bind",
    "carry",
    "current_cache",
    "current_record",
    "current_replay",
    "held_response",
    "is_handle",
    "open_cache",
    "recall_of",
    "replaying",
    "reset",
    "set_cache",
    "set_record",
    "set_replay",
    "spent_credits",
]
