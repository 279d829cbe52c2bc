"""Cassettes: a notebook's model runs recorded once as JSON lines, replayed offline with no key.

Format (version 1), one JSON object a line, readable and diffable in a pull request:

    {"aix_cassette": 1, "aix_jupyter": "0.1.0", "created": "2026-12-07T10:00:00+00:00"}
    {"kind": "run", "key": "<sha256>", "origin": "...", "model": "...", "version": "1.0",
     "input": "<start of the input>", "request": {...}, "response": {...}, "chunks": [[0.012, "Hel"], ...]}
    {"kind": "meta", "key": "<sha256>", "origin": "...", "request": "GET /sdk/models/x", "body": null,
     "reply": {...}}

``run`` lines hold a run's final response (``ModelResponse.to_dict``) under its request key
(``core.requestkey``); a stream's line also holds its chunks with their time since the start.
``meta`` lines hold the replies to metadata requests (a model's card, the model list), so that
``ModelFactory.get``, ``%aix info`` and a ``ModelWidget`` work in replay too. The key, the
request's headers and anything spelling the API key never reach the file: lines are scrubbed of it
before they are written, and every line is checked once more as bytes.

When a key appears twice, the later line wins (a re-recorded run); the same answer to the same
request is written once.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from aix_jupyter.core.errors import AixError
from aix_jupyter.core.requestkey import EMBEDDED_ORIGIN, Recorded, RequestKey, canonical_json, digest
from aix_jupyter.core.secrets import scrub_deep, scrub_text

FORMAT = 1
Mode = Literal["record", "replay"]


class CassetteError(AixError):
    """A cassette file that cannot be read or written (its path and line say where)."""


class Cassette:
    """One cassette file, opened to record (append lines) or to replay (read them all, once).

    ``speed`` (replay) scales the pauses between a stream's chunks: 1 is the recorded pace,
    2 twice as fast, 0 no pause at all.
    """

    def __init__(
        self, path: str | os.PathLike[str], mode: Mode, *, append: bool = False, speed: float = 1.0
    ) -> None:
        if mode not in ("record", "replay"):
            raise CassetteError(f"cassette mode must be 'record' or 'replay', got {mode!r}")
        if isinstance(speed, bool) or not isinstance(speed, int | float) or speed < 0:
            raise CassetteError(f"replay speed must be a number >= 0 (0: no pauses), got {speed!r}")
        self.path = Path(path).expanduser()
        self.mode = mode
        self.speed = float(speed)
        self._lock = threading.Lock()
        self.runs: dict[str, dict[str, Any]] = {}
        self.meta: dict[str, dict[str, Any]] = {}
        self.origins: set[str] = set()
        self.recorded = 0  # lines written by this object
        self._written: dict[str, str] = {}  # key -> digest of the line written for it (no repeats)
        self.replayed = 0  # answers given by this object
        if mode == "replay":
            self._load()
        else:
            self._start(append)

    def __repr__(self) -> str:
        return f"Cassette({str(self.path)!r}, mode={self.mode!r})"

    # -- reading --------------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CassetteError(
                f"no cassette at {self.path}; record one first with %aix record {self.path}"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CassetteError(f"cannot read the cassette {self.path}: {exc}") from None
        lines = text.splitlines()
        if not lines:
            raise CassetteError(f"the cassette {self.path} is empty; record it again with %aix record")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as exc:
                raise CassetteError(f"{self.path}, line {number}: not JSON ({exc})") from None
            if not isinstance(item, dict):
                raise CassetteError(f"{self.path}, line {number}: a JSON object was expected")
            if number == 1 or "aix_cassette" in item:  # (processes appending at once may each write one)
                self._check_header(item)
                continue
            kind = item.get("kind")
            if kind not in ("run", "meta") or not isinstance(item.get("key"), str):
                raise CassetteError(f"{self.path}, line {number}: neither a run nor a meta line with a key")
            if kind == "run":
                try:
                    Recorded.from_json(item)
                except ValueError as exc:
                    raise CassetteError(f"{self.path}, line {number}: {exc}") from None
            (self.runs if kind == "run" else self.meta)[item["key"]] = item
            if isinstance(item.get("origin"), str):
                self.origins.add(item["origin"])

    def _check_header(self, item: Mapping[str, Any]) -> None:
        version = item.get("aix_cassette")
        if version is None:
            raise CassetteError(f"{self.path} is not an aix cassette (its first line has no 'aix_cassette')")
        if version != FORMAT:
            raise CassetteError(
                f"{self.path} is a version {version} cassette; this aix_jupyter reads version {FORMAT}"
            )

    def _fallback(self, origin: str) -> list[str]:
        """Other origins to try: where nothing is configured (the embedded backend stands in), the
        cassette's own servers answer, as they would with the configuration it was recorded with."""
        if origin != EMBEDDED_ORIGIN:
            return []
        return sorted(o for o in self.origins if o != origin)

    def find_run(self, key: RequestKey) -> Recorded | None:
        """The recorded run of ``key`` (also under the cassette's servers when nothing is configured)."""
        item = self.runs.get(key.digest)
        if item is None:
            for other in self._fallback(key.origin):
                item = self.runs.get(key.with_origin(other).digest)
                if item is not None:
                    break
        if item is None:
            return None
        self.replayed += 1
        return Recorded.from_json(item)

    def find_meta(self, origin: str, key_for: Any) -> Any:
        """The recorded reply of a metadata request (``key_for(origin)`` gives its key), or KeyError."""
        for candidate in [origin, *self._fallback(origin)]:
            item = self.meta.get(key_for(candidate))
            if item is not None:
                self.replayed += 1
                return json.loads(json.dumps(item.get("reply")))
        raise KeyError(origin)

    # -- writing --------------------------------------------------------------------------------
    def _start(self, append: bool) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if append and self.path.exists() and self.path.stat().st_size > 0:
                with self.path.open(encoding="utf-8") as handle:
                    first = handle.readline()
                try:
                    header = json.loads(first)
                except ValueError:
                    header = {}
                self._check_header(header if isinstance(header, dict) else {})
                return
            header = {
                "aix_cassette": FORMAT,
                "aix_jupyter": _version(),
                "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
            }
            flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
            self._write(json.dumps(header) + "\n", flags)
        except OSError as exc:
            raise CassetteError(f"cannot write the cassette {self.path}: {exc}") from None

    def _write(self, text: str, flags: int) -> None:
        """``text`` written by one ``write`` call: appended lines of processes that record to the same
        cassette (``AIX_RECORD`` under nbval, papermill) do not interleave."""
        data = text.encode("utf-8")
        fd = os.open(self.path, flags, 0o644)
        try:
            while data:
                data = data[os.write(fd, data) :]
        finally:
            os.close(fd)

    def _append(self, line: dict[str, Any], secret: str | None) -> None:
        text = json.dumps(scrub_deep(line, secret), ensure_ascii=False, sort_keys=False)
        text = scrub_text(text, secret)  # once more, as the bytes that go to the file
        seen = digest(text)
        with self._lock:
            if self._written.get(line["key"]) == seen:  # the same answer again: one line is enough
                return
            self._written[line["key"]] = seen
            try:
                self._write(text + "\n", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            except OSError as exc:
                raise CassetteError(f"cannot write the cassette {self.path}: {exc}") from None
            self.recorded += 1

    def record_run(self, key: RequestKey, recorded: Recorded, secret: str | None) -> None:
        """Append a run's final response (and a stream's chunks) under ``key``."""
        line: dict[str, Any] = {
            "kind": "run",
            "key": key.digest,
            "origin": key.origin,
            "model": key.model_id,
            "version": key.version,
            "input": key.input,
            "request": json.loads(canonical_json(key.body)),
        }
        line.update({k: v for k, v in recorded.to_json().items() if k not in ("model", "input")})
        self._append(line, secret)

    def record_meta(
        self, key: str, origin: str, method: str, path: str, body: Any, reply: Any, secret: str | None
    ) -> None:
        """Append the reply to a metadata request."""
        line = {
            "kind": "meta",
            "key": key,
            "origin": origin,
            "request": f"{method.upper()} {path}",
            "body": body,
            "reply": reply,
        }
        self._append(line, secret)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("aix-jupyter")
    except Exception:
        return "unknown"


__all__ = ["FORMAT", "Cassette", "CassetteError"]
