"""The response cache on real SQLite files: round trips, counters, LRU eviction, and every way the file
can fail (corrupt, unwritable, locked, a bad entry), which must never raise and warn once."""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aix_jupyter.core.cache import (
    DEFAULT_BUSY_TIMEOUT,
    DEFAULT_MAX_BYTES,
    CacheInfo,
    CacheWarning,
    ResponseCache,
    default_cache_path,
)
from aix_jupyter.core.requestkey import Recorded, digest

ROOT = Path(__file__).resolve().parents[2]


def ok(data: Any = "hello", credits: float = 0.5, model: str = "local/echo", input: str = "hi") -> Recorded:
    return Recorded({"status": "SUCCESS", "data": data, "used_credits": credits}, None, model, input)


def json_size(entry: Recorded) -> int:
    """What the cache counts as an entry's size: the bytes of its JSON."""
    return len(json.dumps(entry.to_json(), ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def stored(path: Path) -> dict[str, dict[str, Any]]:
    """The rows of the file, read with a separate connection (so nothing is counted as a hit)."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return {row["key"]: dict(row) for row in conn.execute("SELECT * FROM responses")}
    finally:
        conn.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "responses.sqlite3"


@pytest.fixture
def cache(path: Path) -> Iterator[ResponseCache]:
    with ResponseCache(path) as opened:
        yield opened


@pytest.fixture
def caught() -> Iterator[list[warnings.WarningMessage]]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        yield seen


def cache_warnings(seen: list[warnings.WarningMessage]) -> list[str]:
    """The cache's warnings among ``seen`` (in a full run, a ResourceWarning of an earlier test's
    garbage may be collected during a test: it is not the cache's)."""
    return [str(w.message) for w in seen if issubclass(w.category, CacheWarning)]


# -- round trips and counters ---------------------------------------------------------------------


def test_put_get_round_trip_of_a_response_and_of_a_stream(cache: ResponseCache, caught: list) -> None:
    response = ok({"text": "bonjour", "scores": [0.25, 1.5]}, credits=0.002, input="hello there")
    response.response["usage"] = {"tokens": 3}
    stream = Recorded(
        {"status": "SUCCESS", "data": "one two", "used_credits": 0.01},
        [(0.0, "one"), (0.1234, " two")],
        "local/llm",
        "count",
    )
    cache.put(digest("response"), response)
    cache.put(digest("stream"), stream)

    got = cache.get(digest("response"))
    assert got is not None and got.to_json() == response.to_json()
    assert got.model_id == "local/echo" and got.input == "hello there" and got.credits == 0.002
    assert got.to_response().data == {"text": "bonjour", "scores": [0.25, 1.5]}
    again = cache.get(digest("stream"))
    assert again is not None and again.chunks == [(0.0, "one"), (0.1234, " two")]
    assert again.text() == "one two" and again.to_json() == stream.to_json()
    assert cache.get(digest("response")) is not got  # each get its own object
    assert cache_warnings(caught) == []


def test_the_file_holds_what_to_json_gives_and_the_bookkeeping_columns(
    cache: ResponseCache, path: Path
) -> None:
    entry = ok("x" * 10, credits=2.0, input="y" * 200)
    cache.put("k", entry)
    row = stored(path)["k"]
    assert json.loads(row["value"]) == entry.to_json()
    assert row["size"] == json_size(entry)
    assert row["model_id"] == "local/echo" and row["input"] == "y" * 80  # a preview
    assert row["hits"] == 0 and row["credits"] == 2.0 and row["created"] == row["last_used"] > 0
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        indexes = [r[1] for r in conn.execute("PRAGMA index_list(responses)")]
        assert "responses_last_used" in indexes
    finally:
        conn.close()


def test_put_replaces_and_get_counts_hits_misses_and_credits(cache: ResponseCache, path: Path) -> None:
    cache.put("k", ok("first", credits=1.0))
    cache.put("k", ok("second", credits=0.25))
    assert len(stored(path)) == 1
    assert cache.get("nope") is None
    got = cache.get("k")
    assert got is not None and got.response["data"] == "second"
    assert cache.get("k") is not None
    assert cache.get("other") is None
    info = cache.info()
    assert (info.entries, info.hits, info.misses, info.credits_saved) == (1, 2, 2, 0.5)
    assert info.size_bytes == json_size(ok("second", credits=0.25))
    assert info.max_bytes == DEFAULT_MAX_BYTES and info.path == str(path)
    assert (info.lifetime_hits, info.lifetime_credits_saved) == (2, 0.5)
    assert stored(path)["k"]["hits"] == 2


def test_lifetime_counters_add_up_across_cache_objects_on_one_file(path: Path) -> None:
    with ResponseCache(path) as first:
        first.put("a", ok(credits=1.0))
        first.put("b", ok(credits=0.5))
        first.get("a")
        first.get("b")
    with ResponseCache(path) as second:
        second.get("a")
        second.get("a")
        info = second.info()
    assert (info.hits, info.misses, info.credits_saved) == (2, 0, 2.0)  # this object only
    assert info.lifetime_hits == 4
    assert info.lifetime_credits_saved == pytest.approx(3 * 1.0 + 0.5)
    assert first.info().hits == 2 and first.info().lifetime_hits == 4  # reopened after close


def test_put_refuses_what_is_not_a_success(cache: ResponseCache, path: Path, caught: list) -> None:
    for status in ("FAILED", "IN_PROGRESS", "ERROR"):
        cache.put(status, Recorded({"status": status, "error_message": "boom"}, None, "m", "i"))
    cache.put("nostatus", Recorded({"data": "x"}, None, "m", "i"))
    assert cache.get("FAILED") is None and cache.info().entries == 0
    assert cache_warnings(caught) == []


def test_a_response_that_is_not_json_ready_is_not_stored_with_one_warning(
    cache: ResponseCache, caught: list
) -> None:
    bad = Recorded({"status": "SUCCESS", "data": {1, 2}}, None, "local/set", "x")
    cache.put("a", bad)
    cache.put("b", bad)
    assert cache.info().entries == 0
    messages = cache_warnings(caught)
    assert len(messages) == 1 and "cannot store a response of 'local/set'" in messages[0]


def test_a_key_is_taken_as_text(cache: ResponseCache) -> None:
    class Key:
        def __str__(self) -> str:
            return "abc"

    cache.put(Key(), ok())  # type: ignore[arg-type]
    assert cache.get("abc") is not None and cache.get(Key()) is not None  # type: ignore[arg-type]


# -- size bound -----------------------------------------------------------------------------------


def test_lru_eviction_keeps_what_get_touched(path: Path) -> None:
    entries = {k: ok(f"answer {k} " + "x" * 100) for k in "abcdef"}
    size = json_size(entries["a"])
    assert all(json_size(e) == size for e in entries.values())
    with ResponseCache(path, max_bytes=3 * size + size // 2) as cache:  # room for 3
        for k in "abc":
            cache.put(k, entries[k])
        assert set(stored(path)) == {"a", "b", "c"}
        assert cache.get("a") is not None  # a is now the most recently used
        cache.put("d", entries["d"])
        assert set(stored(path)) == {"a", "c", "d"}  # b: the least recently used
        assert cache.get("c") is not None
        cache.put("e", entries["e"])
        assert set(stored(path)) == {"c", "d", "e"}  # a, used before c and d
        cache.put("d", entries["d"])  # a replacement takes no more room
        assert set(stored(path)) == {"c", "d", "e"}
        info = cache.info()
        assert info.entries == 3 and info.size_bytes == 3 * size <= info.max_bytes
        # the running total kept in the file agrees with the rows
        conn = sqlite3.connect(path)
        try:
            assert conn.execute("SELECT size FROM totals").fetchone()[0] == 3 * size
        finally:
            conn.close()


def test_an_entry_bigger_than_max_bytes_is_not_stored(path: Path, caught: list) -> None:
    with ResponseCache(path, max_bytes=1000) as cache:
        cache.put("small", ok("x"))
        cache.put("big", ok("x" * 2000))
        assert cache.get("big") is None and cache.get("small") is not None  # nothing evicted for it
        assert set(stored(path)) == {"small"}
    assert cache_warnings(caught) == []


def test_clear_returns_the_count(cache: ResponseCache, path: Path) -> None:
    assert cache.clear() == 0
    for i in range(5):
        cache.put(f"k{i}", ok(i))
    assert cache.clear() == 5
    assert cache.info().entries == 0 and cache.info().size_bytes == 0 and cache.get("k1") is None
    assert cache.clear() == 0
    cache.put("again", ok())
    assert set(stored(path)) == {"again"}


def test_clear_gives_the_space_back(cache: ResponseCache, path: Path) -> None:
    def pages() -> int:
        conn = sqlite3.connect(path)
        try:
            return int(conn.execute("PRAGMA page_count").fetchone()[0])
        finally:
            conn.close()

    for i in range(100):
        cache.put(f"k{i}", ok("x" * 4000))
    full = pages()
    assert cache.clear() == 100
    assert pages() < full // 10


# -- lazy opening, repr, default path -------------------------------------------------------------


def test_nothing_is_opened_or_created_before_first_use(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "c.sqlite3"
    cache = ResponseCache(path)
    assert not path.parent.exists()
    info = cache.info()  # reports an empty cache without creating it
    assert (info.entries, info.size_bytes, info.lifetime_hits) == (0, 0, 0)
    assert cache.clear() == 0 and not path.parent.exists()
    assert cache.get("k") is None and path.exists()  # first use: folder and file created
    cache.close()
    cache.close()  # twice is fine


def test_repr_and_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cache = ResponseCache("rel/c.sqlite3", max_bytes=1234)
    assert cache.path == tmp_path / "rel" / "c.sqlite3"  # made absolute when built
    assert repr(cache) == f"ResponseCache({str(tmp_path / 'rel' / 'c.sqlite3')!r}, max_bytes=1234)"
    assert repr(ResponseCache(tmp_path / "x")) == (
        f"ResponseCache({str(tmp_path / 'x')!r}, max_bytes={DEFAULT_MAX_BYTES})"
    )
    assert DEFAULT_MAX_BYTES == 1 << 30 and DEFAULT_BUSY_TIMEOUT == 1.0


def test_default_cache_path_honours_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIX_CACHE_DIR", str(tmp_path / "aix"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_path() == tmp_path / "aix" / "responses.sqlite3"
    monkeypatch.setenv("AIX_CACHE_DIR", "")
    assert default_cache_path() == tmp_path / "xdg" / "aix_jupyter" / "responses.sqlite3"
    monkeypatch.delenv("AIX_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    expected = tmp_path / "home" / ".cache" / "aix_jupyter" / "responses.sqlite3"
    assert default_cache_path() == expected
    assert ResponseCache().path == expected and not expected.parent.exists()


def test_info_rows_are_readable() -> None:
    info = CacheInfo("/c.sqlite3", 1234, 3 * 1024 * 1024 // 2, 1 << 30, 3, 1, 0.25, 10, 1.5)
    rows = dict(info.rows())
    assert rows["file"] == "/c.sqlite3" and rows["entries"] == "1,234"
    assert rows["size"].startswith("1.5 MiB of 1 GiB")
    assert rows["hits / misses (this session)"] == "3 / 1 (75 % hits)"
    assert rows["credits saved (this session)"] == "0.25"
    assert rows["hits (all sessions)"] == "10" and rows["credits saved (all sessions)"] == "1.5"
    assert all(isinstance(label, str) and isinstance(value, str) for label, value in info.rows())


# -- never a crash --------------------------------------------------------------------------------


def test_a_corrupt_file_gives_misses_and_one_warning(tmp_path: Path, caught: list) -> None:
    path = tmp_path / "c.sqlite3"
    garbage = b"this is not a SQLite database\n" * 200
    path.write_bytes(garbage)
    cache = ResponseCache(path, retry_after=0)  # try the file again on every call
    for _ in range(3):
        assert cache.get("k") is None
        cache.put("k", ok())
    assert cache.clear() == 0
    info = cache.info()
    assert (info.entries, info.size_bytes, info.lifetime_hits, info.misses) == (0, 0, 0, 3)
    messages = cache_warnings(caught)
    assert len(messages) == 1, messages
    assert messages[0].startswith(
        f"aix cache {path} is not a readable SQLite database (file is not a database)"
    )
    assert "delete the file or choose another file with %aix cache on PATH" in messages[0]
    assert "\n" not in messages[0]
    assert caught[0].filename == __file__  # stacklevel: the caller's line
    assert path.read_bytes() == garbage  # left as it was


def test_a_file_of_another_program_is_left_alone(tmp_path: Path, caught: list) -> None:
    path = tmp_path / "other.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA application_id = 1234")
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    cache = ResponseCache(path)
    cache.put("k", ok())
    assert cache.get("k") is None
    messages = cache_warnings(caught)
    assert len(messages) == 1 and "is not a response cache this aix_jupyter can use" in messages[0]
    conn = sqlite3.connect(path)
    try:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == ["t"]
    finally:
        conn.close()


def _unusable(path: Path, seen: list[warnings.WarningMessage]) -> str:
    cache = ResponseCache(path, retry_after=0)
    for _ in range(3):
        cache.put("k", ok())
        assert cache.get("k") is None
    assert cache.clear() == 0
    assert cache.info().entries == 0
    messages = cache_warnings(seen)
    assert len(messages) == 1, messages
    assert messages[0].startswith(f"aix cache {path} cannot be opened for writing (")
    return messages[0]


def test_a_path_under_a_file_is_unwritable(tmp_path: Path, caught: list) -> None:
    parent = tmp_path / "a-file"
    parent.write_text("x")
    _unusable(parent / "sub" / "c.sqlite3", caught)  # fails for root too
    assert parent.read_text() == "x"


def test_a_path_that_is_a_directory_is_unwritable(tmp_path: Path, caught: list) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    _unusable(folder, caught)
    assert list(folder.iterdir()) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_a_path_where_nothing_can_be_written_is_unwritable(caught: list) -> None:
    """/proc refuses new files even to root (a read-only folder would not stop root)."""
    _unusable(Path("/proc/aix-cache-test/c.sqlite3"), caught)


def test_a_lock_held_past_the_timeout_gives_up_promptly_then_works(path: Path, caught: list) -> None:
    cache = ResponseCache(path, busy_timeout=0.05, retry_after=60)
    cache.put("before", ok("before"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        start = time.monotonic()
        cache.put("during", ok())
        cache.put("during2", ok())
        assert cache.clear() == 0
        got = cache.get("before")  # WAL: reading is not blocked by a writer; the hit counter is lost
        assert time.monotonic() - start < 5
        assert got is not None and got.response["data"] == "before"
        messages = cache_warnings(caught)
        assert len(messages) == 1, messages
        assert messages[0].startswith(
            f"aix cache {path} stayed locked by another process for more than 0.05 s"
        )
    finally:
        other.execute("ROLLBACK")
        other.close()
    cache.put("after", ok("after"))  # no wait: the lock is gone
    got = cache.get("after")
    assert got is not None and got.response["data"] == "after"
    assert set(stored(path)) == {"before", "after"}
    assert len(cache_warnings(caught)) == 1
    cache.close()


def test_a_lock_taken_before_the_cache_opened_the_file(path: Path, caught: list) -> None:
    path.parent.mkdir(parents=True)
    other = sqlite3.connect(path, isolation_level=None)  # a rollback-journal file: readers are blocked too
    other.execute("BEGIN EXCLUSIVE")
    other.execute("CREATE TABLE t (x)")
    cache = ResponseCache(path, busy_timeout=0.05)
    try:
        start = time.monotonic()
        assert cache.get("k") is None
        cache.put("k", ok())
        assert cache.info().entries == 0
        assert time.monotonic() - start < 5
        assert len(cache_warnings(caught)) == 1
    finally:
        other.execute("ROLLBACK")
        other.close()
    cache.put("k", ok())
    assert cache.get("k") is not None
    cache.close()


def test_a_stored_value_that_no_longer_parses_is_a_miss_and_removed(
    cache: ResponseCache, path: Path, caught: list
) -> None:
    cache.put("bad", ok())
    cache.put("odd", ok())
    cache.put("good", ok())
    conn = sqlite3.connect(path)
    conn.execute("UPDATE responses SET value = 'not json' WHERE key = 'bad'")
    conn.execute("""UPDATE responses SET value = '{"response": {"data": 1}}' WHERE key = 'odd'""")
    conn.commit()
    conn.close()
    assert cache.get("bad") is None
    assert cache.get("odd") is None
    assert cache.get("bad") is None
    assert cache.get("good") is not None
    assert set(stored(path)) == {"good"}
    messages = cache_warnings(caught)
    assert len(messages) == 1 and messages[0].startswith(f"aix cache {path} held an unreadable entry (")
    assert (cache.info().hits, cache.info().misses) == (1, 3)


# -- sharing ----------------------------------------------------------------------------------------


def test_threads_share_one_cache(cache: ResponseCache, caught: list) -> None:
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(100):
                cache.put(f"{n}-{i}", ok(f"{n} {i}"))
                got = cache.get(f"{n}-{i}")
                assert got is not None and got.response["data"] == f"{n} {i}"
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    info = cache.info()
    assert (info.entries, info.hits, info.misses) == (800, 800, 0)
    assert cache_warnings(caught) == []


CHILD = r"""
import json, pathlib, sys, time, warnings
from aix_jupyter.core.cache import ResponseCache
from aix_jupyter.core.requestkey import Recorded

path, name, folder = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    cache = ResponseCache(path)  # opened lazily: both processes open the new file at the same time
    (folder / f"ready-{name}").touch()
    deadline = time.monotonic() + 30
    while not (folder / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.001)
    for i in range(200):
        data = {"status": "SUCCESS", "data": f"{name} {i}", "used_credits": 0.01}
        cache.put(f"{name}-{i}", Recorded(data, None, "local/echo", str(i)))
        cache.get(f"{name}-{i // 2}")
    got = 0
    for i in range(200):
        found = cache.get(f"{name}-{i}")
        got += found is not None and found.response["data"] == f"{name} {i}"
    cache.close()
print(json.dumps({"got": got, "warnings": [str(w.message) for w in caught]}))
"""


def test_two_processes_write_one_file_at_the_same_time(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(path), name, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for name in ("one", "two")
    ]
    try:
        deadline = time.monotonic() + 60
        while not all((tmp_path / f"ready-{n}").exists() for n in ("one", "two")):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.005)
        (tmp_path / "go").touch()
        outputs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
        assert json.loads(out) == {"got": 200, "warnings": []}, err
    rows = stored(path)
    assert len(rows) == 400
    assert {k for k in rows if k.startswith("one-")} == {f"one-{i}" for i in range(200)}
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("SELECT size FROM totals").fetchone()[0] == sum(r["size"] for r in rows.values())
    finally:
        conn.close()


def _in_forked_child(cache: ResponseCache, queue: Any) -> None:
    cache.put("child", ok("from the child"))
    got = cache.get("parent")
    queue.put(got is not None and got.response["data"] == "from the parent")


@pytest.mark.skipif(sys.platform != "linux", reason="fork")
def test_a_forked_child_opens_the_file_again(cache: ResponseCache, caught: list) -> None:
    cache.put("parent", ok("from the parent"))
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child: Callable[..., None] = _in_forked_child
    proc = context.Process(target=child, args=(cache, queue))
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0 and queue.get(timeout=5) is True
    got = cache.get("child")  # the parent's connection still works
    assert got is not None and got.response["data"] == "from the child"
    assert cache_warnings(caught) == []
