"""The response cache: the final SUCCESS response of a model call, kept under its request key.

One SQLite file (``default_cache_path()`` unless told otherwise) holds one row per request key: the
JSON of ``Recorded.to_json()`` (nothing else: the callers scrub secrets before), beside a few
columns for people and for the bookkeeping (model, start of the input, when it was stored and last
used, its size, how many times it was hit, the credits it cost). Re-running a notebook answers the
calls it already made from the file, at no cost.

* **Shared.** The file is opened in WAL mode with ``synchronous=NORMAL`` and a busy timeout, so
  several kernels (processes) can use it at once: readers never wait for a writer, a writer waits
  at most ``busy_timeout`` seconds for another, nothing is fsync'ed per hit.
* **Bounded.** ``put`` evicts the least recently used entries until the stored JSON is at most
  ``max_bytes`` (an entry bigger than that alone is not stored).
* **Never in the way.** The file is opened lazily, on first use. A file that is not a database, a
  folder that cannot be written, a lock held longer than the busy timeout or a stored value that no
  longer parses make the operation give up (a miss, nothing stored) with ONE ``CacheWarning`` per
  cache object and kind of problem; the run goes to the server as if there were no cache. After a
  problem the file is left alone for ``retry_after`` seconds (a lock: the cache stops waiting for
  it meanwhile), so a batch does not pay the same price for every item.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import sqlite3
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from aix_jupyter.core.requestkey import Recorded

DEFAULT_MAX_BYTES = 1 << 30  # 1 GiB of stored JSON
DEFAULT_BUSY_TIMEOUT = 1.0  # seconds a write waits for another process's write
DEFAULT_RETRY_AFTER = 10.0  # seconds the file is left alone (or not waited for) after a problem
FILE_NAME = "responses.sqlite3"
SCHEMA_VERSION = 1  # PRAGMA user_version
APPLICATION_ID = 0x61697863  # PRAGMA application_id: "aixc"
INPUT_PREVIEW = 80  # characters of the input kept in the ``input`` column
WHAT_TO_DO = "choose another file with %aix cache on PATH"

_SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS responses (
    key       TEXT PRIMARY KEY NOT NULL,
    model_id  TEXT NOT NULL DEFAULT '',
    input     TEXT NOT NULL DEFAULT '',
    created   REAL NOT NULL,
    last_used REAL NOT NULL,
    size      INTEGER NOT NULL,
    hits      INTEGER NOT NULL DEFAULT 0,
    credits   REAL NOT NULL DEFAULT 0,
    value     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS responses_last_used ON responses (last_used);
CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY CHECK (id = 1), size INTEGER NOT NULL);
INSERT OR IGNORE INTO totals (id, size) VALUES (1, (SELECT COALESCE(SUM(size), 0) FROM responses));
CREATE TRIGGER IF NOT EXISTS responses_added AFTER INSERT ON responses
    BEGIN UPDATE totals SET size = size + NEW.size WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS responses_removed AFTER DELETE ON responses
    BEGIN UPDATE totals SET size = size - OLD.size WHERE id = 1; END;
CREATE TRIGGER IF NOT EXISTS responses_resized AFTER UPDATE OF size ON responses
    BEGIN UPDATE totals SET size = size - OLD.size + NEW.size WHERE id = 1; END;
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""
_UPSERT = """
INSERT INTO responses (key, model_id, input, created, last_used, size, hits, credits, value)
VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)
ON CONFLICT (key) DO UPDATE SET
    model_id = excluded.model_id, input = excluded.input, created = excluded.created,
    last_used = excluded.last_used, size = excluded.size, credits = excluded.credits, value = excluded.value
"""
_FIND = "SELECT value FROM responses WHERE key = ?"
_HIT = "UPDATE responses SET last_used = ?, hits = hits + 1 WHERE key = ?"
_TOTALS = (
    "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(hits), 0), TOTAL(hits * credits) FROM responses"
)

_T = TypeVar("_T")

# primary SQLite result codes (``sqlite3.Error.sqlite_errorcode & 0xFF``)
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 3, 5, 6, 8
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 10, 11, 13, 14, 26

# connections a forked child inherited: never used, never closed (closing one there could disturb the
# parent's locks), only kept from the garbage collector, which would close them
_INHERITED: list[sqlite3.Connection] = []


class CacheWarning(UserWarning):
    """The response cache could not be used for an operation; the run went to the server uncached."""


class _ForeignFile(sqlite3.DatabaseError):
    """A SQLite file that is not a response cache this version can read."""


def default_cache_path() -> pathlib.Path:
    """``$AIX_CACHE_DIR/responses.sqlite3``, else ``$XDG_CACHE_HOME/aix_jupyter/responses.sqlite3``,
    else ``~/.cache/aix_jupyter/responses.sqlite3`` (an empty variable counts as unset)."""
    folder = os.environ.get("AIX_CACHE_DIR", "").strip()
    if folder:
        return pathlib.Path(folder).expanduser() / FILE_NAME
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = pathlib.Path(xdg).expanduser() if xdg else pathlib.Path.home() / ".cache"
    return base / "aix_jupyter" / FILE_NAME


def size_text(n: int) -> str:
    """``512 B``, ``1.5 KiB``, ``12.3 MiB``, ``1 GiB``."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.3g} {unit}"


@dataclass(frozen=True)
class CacheInfo:
    """What ``ResponseCache.info`` reports: the file, what it holds, and what it saved.

    ``hits``, ``misses`` and ``credits_saved`` count this cache object (this process);
    ``lifetime_hits`` and ``lifetime_credits_saved`` add the hit counters of the entries in the file
    (every process that used it; an evicted or cleared entry takes its counter with it).
    """

    path: str
    entries: int
    size_bytes: int
    max_bytes: int
    hits: int
    misses: int
    credits_saved: float
    lifetime_hits: int
    lifetime_credits_saved: float

    def rows(self) -> list[tuple[str, str]]:
        """Human-readable ``(label, value)`` pairs, for a two-column table."""
        lookups = self.hits + self.misses
        rate = f" ({100 * self.hits / lookups:.0f} % hits)" if lookups else ""
        share = 100 * self.size_bytes / self.max_bytes if self.max_bytes > 0 else 0.0
        return [
            ("file", self.path),
            ("entries", f"{self.entries:,}"),
            ("size", f"{size_text(self.size_bytes)} of {size_text(self.max_bytes)} ({share:.3g} %)"),
            ("hits / misses (this session)", f"{self.hits:,} / {self.misses:,}{rate}"),
            ("credits saved (this session)", f"{self.credits_saved:.4g}"),
            ("hits (all sessions)", f"{self.lifetime_hits:,}"),
            ("credits saved (all sessions)", f"{self.lifetime_credits_saved:.4g}"),
        ]


def _kind(exc: BaseException) -> str:
    """The kind of a problem, for its message and for warning once per kind."""
    if isinstance(exc, _ForeignFile):
        return "foreign"
    if isinstance(exc, OSError):
        return "unwritable"
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        primary = code & 0xFF
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return "locked"
        if primary in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
            return "corrupt"
        if primary in (_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_CANTOPEN):
            return "unwritable"
        if primary == _SQLITE_FULL:
            return "full"
        if primary == _SQLITE_IOERR:
            return "io"
    text = str(exc).lower()
    if "locked" in text:
        return "locked"
    if "not a database" in text or "malformed" in text:
        return "corrupt"
    if "readonly" in text or "unable to open" in text:
        return "unwritable"
    return "error"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class ResponseCache:
    """A response cache in the SQLite file ``path`` (``default_cache_path()`` when None).

    Nothing is opened (and no folder created) before the first ``get``/``put``; ``info`` and
    ``clear`` on a file that does not exist yet report an empty cache without creating it.
    ``max_bytes`` bounds the stored JSON (least recently used entries go first); ``busy_timeout``
    is how long an operation waits for another process's write before giving up; after a problem
    the file is left alone for ``retry_after`` seconds. Safe to share between threads.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        retry_after: float = DEFAULT_RETRY_AFTER,
    ) -> None:
        chosen = default_cache_path() if path is None else pathlib.Path(path)
        self.path: pathlib.Path = pathlib.Path(os.path.abspath(chosen.expanduser()))
        self.max_bytes = int(max_bytes)
        self.busy_timeout = max(0.0, float(busy_timeout))
        self.retry_after = max(0.0, float(retry_after))
        # One connection (check_same_thread=False) behind one lock, rather than one per thread: an
        # operation holds it for tens of microseconds, so threads hardly ever wait on each other,
        # while a connection per thread would be opened again (PRAGMAs, schema check) by every
        # batch's helper thread, could not be closed by ``close`` from another thread, and would
        # keep file handles until its thread ends.
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._busy_ms = -1  # the busy timeout set on the connection, in ms
        self._calm_until = 0.0  # monotonic: until then, do not wait for locks (one was held too long)
        self._reopen_at = 0.0  # monotonic: do not try to open the file before then
        self._warned: set[str] = set()
        self._pending: list[str] = []  # messages to warn about, once the lock is released
        self._hits = 0
        self._misses = 0
        self._saved = 0.0

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.path)!r}, max_bytes={self.max_bytes})"

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the public operations --------------------------------------------------------------------
    def get(self, key: str) -> Recorded | None:
        """The entry stored under ``key``, else None (also when the cache cannot be read).

        A hit marks the entry as just used and counts one more hit on it (and, in this object, a hit
        and the credits it saved); a miss counts a miss.
        """
        key = str(key)
        self._check_fork()
        with self._lock:
            found: Recorded | None = None
            try:
                found = self._get(key)
            except (sqlite3.Error, OSError) as exc:
                self._trouble(exc)
            if found is None:
                self._misses += 1
            else:
                self._hits += 1
                self._saved += found.credits
        self._warn_pending()
        return found

    def put(self, key: str, entry: Recorded) -> None:
        """Store ``entry`` under ``key`` (replacing what was there), then evict the least recently
        used entries until the stored JSON is at most ``max_bytes``. An entry that is not a SUCCESS,
        or bigger than ``max_bytes`` alone, is not stored; nor is anything when the file cannot be
        written."""
        if not entry.ok:
            return
        key = str(key)
        try:
            value = json.dumps(entry.to_json(), ensure_ascii=False, separators=(",", ":"))
            size = len(value.encode("utf-8"))  # (UnicodeEncodeError, a ValueError, on a lone surrogate)
        except (TypeError, ValueError) as exc:  # not JSON-ready: a caller's bug, not the cache's
            with self._lock:
                self._note(
                    "unstorable",
                    f"aix cache {self.path} cannot store a response of {entry.model_id!r} "
                    f"({_one_line(exc)}); it was not cached",
                )
            self._warn_pending()
            return
        if size > self.max_bytes:
            return
        self._check_fork()
        with self._lock:
            try:
                self._put(key, entry, value, size)
            except (sqlite3.Error, OSError) as exc:
                self._trouble(exc)
        self._warn_pending()

    def clear(self) -> int:
        """Remove every entry; how many there were (0 when the file cannot be written)."""
        self._check_fork()
        removed = 0
        with self._lock:
            try:
                conn = self._connection(create=False)
                if conn is not None:
                    removed = self._retry(lambda: conn.execute("DELETE FROM responses").rowcount)
                    # give the space back to the disk (best effort: the next put reuses it anyway)
                    # (executescript: a plain execute would step it once, and free a single page)
                    with contextlib.suppress(sqlite3.Error):
                        conn.executescript("PRAGMA incremental_vacuum;")
            except (sqlite3.Error, OSError) as exc:
                self._trouble(exc)
        self._warn_pending()
        return max(removed, 0)

    def info(self) -> CacheInfo:
        """The file, what it holds, and what the cache saved (zeros for what cannot be read)."""
        self._check_fork()
        entries = size = lifetime_hits = 0
        lifetime_saved = 0.0
        with self._lock:
            try:
                conn = self._connection(create=False)
                if conn is not None:
                    entries, size, lifetime_hits, lifetime_saved = self._retry(
                        lambda: conn.execute(_TOTALS).fetchone()
                    )
            except (sqlite3.Error, OSError) as exc:
                self._trouble(exc)
            info = CacheInfo(
                str(self.path),
                int(entries),
                int(size),
                self.max_bytes,
                self._hits,
                self._misses,
                self._saved,
                int(lifetime_hits),
                float(lifetime_saved),
            )
        self._warn_pending()
        return info

    def close(self) -> None:
        """Close the file (a later operation opens it again)."""
        self._check_fork()
        with self._lock:
            self._drop()

    # -- under the lock ---------------------------------------------------------------------------
    def _get(self, key: str) -> Recorded | None:
        conn = self._connection()
        if conn is None:
            return None
        # fetchall, not fetchone: the statement must be done, or its read transaction would stay open
        # and the UPDATE below could fail at once on a snapshot another process has moved past
        rows = self._retry(lambda: conn.execute(_FIND, (key,)).fetchall())
        if not rows:
            return None
        try:
            data = json.loads(rows[0][0])
            if not isinstance(data, dict):
                raise ValueError(f"a JSON object was expected, not {type(data).__name__}")
            found = Recorded.from_json(data)
        except (TypeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            self._note(
                "entry",
                f"aix cache {self.path} held an unreadable entry ({_one_line(exc)}); it was removed "
                "and the run goes to the server",
            )
            # best effort: if it fails, the next get finds it unreadable again, and quietly tries again
            with contextlib.suppress(sqlite3.Error):
                conn.execute("DELETE FROM responses WHERE key = ?", (key,))
            return None
        try:
            self._retry(lambda: conn.execute(_HIT, (time.time(), key)))
        except sqlite3.Error as exc:  # the answer is good: only its counters are lost
            self._trouble(exc)
        return found

    def _put(self, key: str, entry: Recorded, value: str, size: int) -> None:
        conn = self._connection()
        if conn is None:
            return
        self._retry(lambda: self._put_once(conn, key, entry, value, size))

    def _put_once(self, conn: sqlite3.Connection, key: str, entry: Recorded, value: str, size: int) -> None:
        now = time.time()
        row = (key, entry.model_id, entry.input[:INPUT_PREVIEW], now, now, size, entry.credits, value)
        conn.execute("BEGIN IMMEDIATE")  # take the write lock now (waiting for it), not halfway through
        try:
            conn.execute(_UPSERT, row)
            (total,) = conn.execute("SELECT size FROM totals WHERE id = 1").fetchone()
            if total > self.max_bytes:
                self._evict(conn, key, total - self.max_bytes)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # (if this fails, _trouble drops the connection, which rolls back)
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _evict(conn: sqlite3.Connection, keep: str, excess: int) -> None:
        """Delete the least recently used entries (never ``keep``) until ``excess`` bytes are gone."""
        victims: list[tuple[str]] = []
        cursor = conn.execute(
            "SELECT key, size FROM responses WHERE key != ? ORDER BY last_used, rowid", (keep,)
        )
        for victim, size in cursor:
            victims.append((victim,))
            excess -= size
            if excess <= 0:
                break
        cursor.close()
        conn.executemany("DELETE FROM responses WHERE key = ?", victims)

    def _connection(self, create: bool = True) -> sqlite3.Connection | None:
        """The open connection, opening the file if need be; None while the file is left alone (or,
        with ``create=False``, when it does not exist)."""
        now = time.monotonic()
        wanted = 0 if now < self._calm_until else round(self.busy_timeout * 1000)
        conn = self._conn
        if conn is None:
            if now < self._reopen_at or (not create and not self.path.exists()):
                return None
            self._busy_ms = wanted
            conn = self._conn = self._retry(self._open)
        if wanted != self._busy_ms:
            conn.execute(f"PRAGMA busy_timeout = {wanted}")
            self._busy_ms = wanted
        return conn

    def _retry(self, operation: Callable[[], _T]) -> _T:
        """``operation()``, tried again while it fails on a lock within the busy timeout.

        SQLite's busy handler already waits up to the timeout for most locks, but not for all: to
        avoid a deadlock, a connection that must upgrade its lock (e.g. two processes turning a new
        file to WAL at once) gets SQLITE_BUSY at once. Those are retried here, so that "locked" only
        ever means "locked for longer than the busy timeout"."""
        budget = self._busy_ms / 1000
        start = time.monotonic()
        pause = 0.001
        while True:
            try:
                return operation()
            except sqlite3.OperationalError as exc:
                if _kind(exc) != "locked" or time.monotonic() - start + pause > budget:
                    raise
            time.sleep(pause)
            pause = min(2 * pause, 0.02)

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        timeout = self._busy_ms / 1000
        conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        try:
            app = conn.execute("PRAGMA application_id").fetchone()[0]
            if app not in (0, APPLICATION_ID):
                raise _ForeignFile(f"application_id {app:#x}, not an aix response cache")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise _ForeignFile(f"schema version {version}; this aix_jupyter reads {SCHEMA_VERSION}")
            if version < SCHEMA_VERSION:  # (only takes on an empty file, and only before the WAL switch)
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # so that clear gives the space back
            # once a file is in WAL mode, it stays so: only a new file needs the (exclusive) switch
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL").fetchall()
            conn.execute("PRAGMA synchronous = NORMAL")
            if version < SCHEMA_VERSION:
                conn.executescript(_SCHEMA)
        except BaseException:
            if conn.in_transaction:  # (closing rolls back too)
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            conn.close()
            raise
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):  # it is gone either way
                conn.close()

    def _trouble(self, exc: sqlite3.Error | OSError) -> None:
        """Give up on this operation: a lock makes the cache stop waiting for locks for a while;
        anything else closes the file, left alone for a while. One warning per kind."""
        kind = _kind(exc)
        now = time.monotonic()
        if kind == "locked":
            self._calm_until = now + self.retry_after
        else:
            self._drop()
            self._reopen_at = now + self.retry_after
        self._note(kind, self._message(kind, exc))

    def _message(self, kind: str, exc: BaseException) -> str:
        where, why = f"aix cache {self.path}", _one_line(exc)
        if kind == "locked":
            return (
                f"{where} stayed locked by another process for more than {self.busy_timeout:g} s ({why}); "
                f"runs may go to the server uncached for the next {self.retry_after:g} s; "
                f"close the program that holds it or {WHAT_TO_DO}"
            )
        if kind == "corrupt":
            return (
                f"{where} is not a readable SQLite database ({why}); runs go to the server uncached; "
                f"delete the file or {WHAT_TO_DO}"
            )
        if kind == "unwritable":
            return (
                f"{where} cannot be opened for writing ({why}); runs go to the server uncached; "
                f"make it writable or {WHAT_TO_DO}"
            )
        if kind == "foreign":
            return (
                f"{where} is not a response cache this aix_jupyter can use ({why}); runs go to the server "
                f"uncached; upgrade aix_jupyter, delete the file or {WHAT_TO_DO}"
            )
        if kind == "full":
            return (
                f"{where} cannot grow: the disk is full ({why}); runs go to the server uncached; "
                f"free some space or {WHAT_TO_DO}"
            )
        return f"{where} failed ({why}); runs go to the server uncached; delete the file or {WHAT_TO_DO}"

    def _note(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            self._pending.append(message)

    # -- outside the lock -------------------------------------------------------------------------
    def _warn_pending(self) -> None:
        """Issue the warnings noted under the lock (stacklevel: the caller of the public method)."""
        if self._pending:
            with self._lock:
                messages, self._pending = self._pending, []
            for message in messages:
                warnings.warn(message, CacheWarning, stacklevel=3)

    def _check_fork(self) -> None:
        """In a forked child, forget the parent's connection (and lock): SQLite connections must not
        cross a fork."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._lock = threading.Lock()
            if self._conn is not None:
                _INHERITED.append(self._conn)
                self._conn = None


__all__ = [
    "DEFAULT_BUSY_TIMEOUT",
    "DEFAULT_MAX_BYTES",
    "CacheInfo",
    "CacheWarning",
    "ResponseCache",
    "default_cache_path",
    "size_text",
]
