"""``%aix cache`` / ``record`` / ``replay`` and ``--no-cache`` in a real IPython shell, against the real
embedded backend (no mocks): parsing, what each command prints, and how an answer from the response
cache or a cassette shows (status line, output metadata, batch table, ``%aix usage``, ``%aix config``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aix_jupyter import display as aix_display
from aix_jupyter.core import recall
from aix_jupyter.core.batch import BatchResult
from aix_jupyter.core.cache import FILE_NAME, ResponseCache
from aix_jupyter.core.cassette import CassetteError
from aix_jupyter.core.errors import ConfigurationError, ReplayMiss
from aix_jupyter.magics import args as ma
from aix_jupyter.magics import stores
from aix_jupyter.magics.complete import completions
from aix_jupyter.magics.errors import MagicUsageError
from aix_jupyter.magics.ledger import COLUMNS

VADER = "local/sentiment-vader"
LANGID = "local/langid-langdetect"
TYPEWRITER = "local/typewriter"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(autouse=True)
def _no_stores(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No cache or cassette from the environment or an earlier test; the default cache in tmp_path."""
    for name in ("AIX_CACHE", "AIX_RECORD", "AIX_REPLAY", "AIX_REPLAY_SPEED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIX_CACHE_DIR", str(tmp_path / "default-cache"))
    recall.reset()
    yield
    recall.reset()


def meta(out: Any) -> dict[str, Any]:
    """The ``aix_jupyter`` provenance metadata of the cell's one display output."""
    assert out.error is None, out.error
    assert len(out.outputs) == 1, out.outputs
    return out.outputs[0].metadata["aix_jupyter"]


def one_line_error(out: Any, kind: type[BaseException], *fragments: str) -> None:
    """The cell raised ``kind``, shown as one line naming the culprit, and displayed nothing."""
    assert isinstance(out.error, kind), out.error
    text = ANSI.sub("", out.stdout + out.stderr).strip()
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("[aix]")]
    assert len(lines) == 1, text
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert out.outputs == []


def priced(cassette: Path, credits: float) -> None:
    """Make every recorded run of ``cassette`` cost ``credits`` (the built-in models cost nothing)."""
    lines = cassette.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines[1:], 1):
        item = json.loads(line)
        if item.get("kind") == "run":
            item["response"]["used_credits"] = credits
            lines[i] = json.dumps(item)
    cassette.write_text("\n".join(lines) + "\n", encoding="utf-8")


# -- parsing -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("cache", stores.CacheArgs("info")),
        ("cache info", stores.CacheArgs("info")),
        ("cache on", stores.CacheArgs("on")),
        ("cache on ~/c.sqlite3 --max-size 500MB", stores.CacheArgs("on", "~/c.sqlite3", 500 << 20)),
        ("cache on --max-size=2GB 'my cache.sqlite3'", stores.CacheArgs("on", "my cache.sqlite3", 2 << 30)),
        ("cache on --max-size 4096", stores.CacheArgs("on", None, 4096)),
        ("cache off", stores.CacheArgs("off")),
        ("cache clear", stores.CacheArgs("clear")),
        ("record runs.jsonl", stores.RecordArgs("runs.jsonl")),
        ("record runs.jsonl --append", stores.RecordArgs("runs.jsonl", append=True)),
        ("record off", stores.RecordArgs(None)),
        ("record 'off'", stores.RecordArgs("off")),  # quoted: a file named off
        ("replay runs.jsonl", stores.ReplayArgs("runs.jsonl")),
        ("replay runs.jsonl --speed 0", stores.ReplayArgs("runs.jsonl", 0.0)),
        ("replay --speed=2.5 runs.jsonl", stores.ReplayArgs("runs.jsonl", 2.5)),
        ("replay off", stores.ReplayArgs(None)),
    ],
)
def test_cache_record_and_replay_parse_into_typed_args(line: str, expected: Any) -> None:
    assert ma.parse_command(line) == expected


@pytest.mark.parametrize(
    ("line", "fragments"),
    [
        ("cache start", ["'start'", "on, off, clear or info"]),
        ("cache on a.sqlite3 b.sqlite3", ["'b.sqlite3'"]),
        ("cache off now", ["cache off", "'now'"]),
        ("cache clear --max-size 1GB", ["cache clear", "--max-size"]),
        ("cache on --max-size", ["--max-size needs a value"]),
        ("cache on --max-size lots", ["--max-size", "'lots'", "500MB"]),
        ("cache on --max-size 0", ["--max-size", "at least 1 byte"]),
        ("cache on --max-size 1MB --max-size 2MB", ["--max-size given twice"]),
        ("cache on --size 1MB", ["unknown option --size", "--max-size"]),
        ("record", ["record", "PATH", "off"]),
        ("record a.jsonl b.jsonl", ["'b.jsonl'"]),
        ("record off --append", ["record off", "--append"]),
        ("record a.jsonl --append=yes", ["--append", "takes no value"]),
        ("record a.jsonl --speed 2", ["unknown option --speed", "--append"]),
        ("replay", ["replay", "PATH", "off"]),
        ("replay a.jsonl --speed -1", ["--speed", ">= 0", "'-1'"]),
        ("replay a.jsonl --speed fast", ["--speed", "'fast'"]),
        ("replay a.jsonl --speed nan", ["--speed", "'nan'"]),
        ("replay off --speed 0", ["replay off", "--speed"]),
    ],
)
def test_bad_cache_record_and_replay_lines_are_one_line_usage_errors(line: str, fragments: list[str]) -> None:
    with pytest.raises(MagicUsageError) as caught:
        ma.parse_command(line)
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(
    ("text", "size"),
    [("500MB", 500 << 20), ("2GB", 2 << 30), ("1.5GiB", 3 << 29), ("64k", 64 << 10), ("1048576", 1 << 20)],
)
def test_sizes_count_1024s(text: str, size: int) -> None:
    assert stores.parse_size(text) == size
    assert stores.size_text(1 << 30) == "1 GiB" and stores.size_text(500 << 20) == "500 MiB"


def test_no_cache_is_an_option_of_run_stream_async_map_and_compare_only() -> None:
    for command in ("run", "stream", "async", "map", "compare"):
        assert "--no-cache" in ma.COMMAND_FLAGS[command]
        opts = ma.parse_run_options("--no-cache -- hello", {}, command=command)
        assert opts.no_cache and opts.input_text == "hello"
    assert not ma.parse_run_options("hello", {}).no_cache
    assert "--no-cache" not in ma.COMMAND_FLAGS["poll"]
    with pytest.raises(MagicUsageError, match="--no-cache takes no value"):
        ma.parse_run_options("--no-cache=1 hello", {})


def test_help_and_completion_know_the_new_subcommands() -> None:
    for topic in ("cache", "record", "replay"):
        assert topic in ma.SUBCOMMANDS and ma.help_text(topic).startswith(f"usage: %aix {topic}")
    assert "--max-size" in ma.help_text("cache") and "--no-cache" in ma.usage()

    def complete(line: str) -> list[str]:
        return completions(line, model_ids=lambda: [VADER], parameter_names=lambda model: {})[1]

    assert complete("%aix ca") == ["cache", "cancel"] and complete("%aix rep") == ["replay"]
    assert complete("%aix cache ") == ["on", "off", "clear", "info"]
    assert complete("%aix cache o") == ["off", "on"]
    assert complete("%aix cache on --m") == ["--max-size"]
    assert complete("%aix cache on --max-size ") == []
    assert complete("%aix record run.jsonl --") == ["--append"]
    assert complete("%aix record ") == []  # a PATH: left to IPython's file completion
    assert complete("%aix replay run.jsonl --s") == ["--speed"]
    assert complete(f"%aix run {VADER} --no-c") == ["--no-cache"]
    assert complete(f"%aix compare {VADER} {LANGID} --no-c") == ["--no-cache"]


def test_help_cache_in_the_shell(cell) -> None:
    out = cell("%aix help cache")
    assert out.error is None and out.stdout.startswith("usage: %aix cache")
    assert "%aix cache clear" in out.stdout


# -- the response cache --------------------------------------------------------------------------
def test_the_same_run_twice_is_cached_the_second_time(cell, ip, tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    out = cell(f"%aix cache on {path}")
    assert out.error is None and out.result is None
    assert out.stdout == f"response cache on: {path} (0 entries, at most 1 GiB)\n"
    first = cell(f"%aix run {VADER} I love this library")
    second = cell(f"%aix run {VADER} I love this library")
    assert first.result.data == second.result.data == "POSITIVE"
    assert "cached" not in meta(first) and meta(first)["request_key"]
    assert meta(second)["cached"] == "cache" and meta(second)["saved_credits"] == 0
    assert meta(second)["request_key"] == meta(first)["request_key"]
    assert meta(second)["used_credits"] == meta(first)["used_credits"]  # the recorded value
    assert re.fullmatch(rf"\[aix\] {VADER} finished \(\d+ polls?, \d+\.\d\d s\)\n", first.stderr)
    assert second.stderr == f"[aix] {VADER} cached (credits 0, saved 0)\n"

    bypass = cell(f"%aix run {VADER} --no-cache I love this library")
    assert "cached" not in meta(bypass) and "finished" in bypass.stderr
    other = cell(f"%aix run {VADER} --threshold 0.9 I love this library")  # another request key
    assert "cached" not in meta(other) and meta(other)["request_key"] != meta(first)["request_key"]

    info = cell("%aix cache info")
    assert info.error is None
    counts = info.result.info
    assert (counts.path, counts.entries, counts.hits, counts.misses) == (str(path), 2, 1, 2)
    rows = dict(info.result.rows)
    assert rows["status"] == "on" and rows["file"] == str(path) and rows["entries"] == "2"
    assert rows["hits / misses (this session)"].startswith("1 / 2")
    assert "of 1 GiB" in rows["size"] and "credits saved (all sessions)" in rows
    assert cell("%aix cache").result.rows == info.result.rows  # alone: info

    cleared = cell("%aix cache clear")
    assert (
        cleared.error is None and cleared.stdout == f"response cache cleared: 2 entries removed from {path}\n"
    )
    assert "cached" not in meta(cell(f"%aix run {VADER} I love this library"))  # gone
    assert meta(cell(f"%aix run {VADER} I love this library"))["cached"] == "cache"

    off = cell("%aix cache off")
    assert off.error is None and off.stdout.startswith("response cache off")
    assert recall.current_cache() is None
    assert "cached" not in meta(cell(f"%aix run {VADER} I love this library"))


def test_cache_on_a_folder_with_a_max_size_and_the_default_file(cell, tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    out = cell(f"%aix cache on {folder} --max-size 2MB")
    assert out.error is None
    cache = recall.current_cache()
    assert isinstance(cache, ResponseCache) and cache.path == folder / FILE_NAME
    assert cache.max_bytes == 2 << 20 and "at most 2 MiB" in out.stdout
    default_file = tmp_path / "default-cache" / FILE_NAME  # $AIX_CACHE_DIR (the fixture's)
    assert cell("%aix cache on").error is None
    assert recall.current_cache().path == default_file and recall.current_cache().max_bytes == 1 << 30
    cell("%aix cache off")
    info = cell("%aix cache info")  # off: the file %aix cache on would use, said to be off
    assert info.error is None and dict(info.result.rows)["status"].startswith("off")
    assert dict(info.result.rows)["file"] == str(default_file)


def test_map_and_compare_with_the_cache_on_then_again(cell, ip, tmp_path: Path) -> None:
    cell(f"%aix cache on {tmp_path / 'c.sqlite3'}")
    ip.user_ns["texts"] = ["I love it", "I hate it", "What a great idea"]
    first = cell(f"%aix map {VADER} -o r1 texts")
    assert first.error is None and ip.user_ns["r1"].recalled == 0
    assert "cached" not in first.result.note and "cached" not in first.stderr
    again = cell(f"%aix map {VADER} -o r2 texts")
    assert again.error is None
    result = ip.user_ns["r2"]
    assert isinstance(result, BatchResult) and result.recalled == 3 and result.data == ip.user_ns["r1"].data
    assert "3 cached (saved 0 credits)" in again.result.note
    assert [row[4] for row in again.result.rows] == ["0 (saved 0)"] * 3  # the credits column
    assert re.fullmatch(
        rf"\[aix\] {VADER} finished: 3/3 done, 0 failed, 3 cached \(saved 0\) · 0 credits \(\d+\.\d\d s\)\n",
        again.stderr,
    )
    bypass = cell(f"%aix map {VADER} --no-cache -o r3 texts")
    assert bypass.error is None and ip.user_ns["r3"].recalled == 0

    line = f"%aix compare {VADER} {LANGID} -o cmp -- hello world"
    assert cell(line).error is None
    out = cell(line)
    assert out.error is None
    assert [r.recalled for r in ip.user_ns["cmp"].responses.values()] == [1, 1]
    assert "2/2 done, 0 failed, 2 cached (saved 0)" in out.stderr
    out = cell(f"%aix compare {VADER} {LANGID} --no-cache -o cmp -- hello world")
    assert out.error is None and "cached" not in out.stderr
    assert [r.recalled for r in ip.user_ns["cmp"].responses.values()] == [0, 0]


def test_a_cached_stream_and_a_cached_async_job(cell, ip, tmp_path: Path) -> None:
    cell(f"%aix cache on {tmp_path / 'c.sqlite3'}")
    line = f"%aix stream {TYPEWRITER} --delay 0 one two three"
    first = cell(line)
    assert first.error is None and first.result.data == "one two three"
    first_meta = aix_display.response_bundle(first.result)[1]["aix_jupyter"]
    assert first_meta["request_key"] and "cached" not in first_meta  # the streamer's mark, carried
    again = cell(line)
    assert again.error is None and again.result.data == "one two three"
    again_meta = aix_display.response_bundle(again.result)[1]["aix_jupyter"]
    assert again_meta["cached"] == "cache" and again_meta["request_key"] == first_meta["request_key"]
    assert again_meta["streamed"] is True

    assert cell(f"%aix run {VADER} I love it").error is None
    job = cell(f"%aix async {VADER} -o job I love it")  # answered from the cache: a handle
    assert job.error is None and recall.is_handle(job.result.url)
    assert "cached, ready to poll" in aix_display.response_bundle(job.result)[0]["text/plain"]
    done = cell("%aix poll job --wait")
    assert done.error is None and done.result.data == "POSITIVE"
    assert done.stderr == f"[aix] {VADER} cached (credits 0, saved 0)\n"
    assert meta(done)["cached"] == "cache"


def test_the_model_widget_says_cached(cell, tmp_path: Path) -> None:
    from aix_jupyter import ModelWidget

    cell(f"%aix cache on {tmp_path / 'c.sqlite3'}")
    widget = ModelWidget(VADER)
    try:
        assert widget.run(data="What a lovely day").data == "POSITIVE"
        assert "cached" not in widget.meta.value
        assert widget.run(data="What a lovely day").data == "POSITIVE"
        assert "cached" in widget.meta.value and "credits 0 (saved 0)" in widget.meta.value
        assert widget.progress.label_text().startswith("cached")
    finally:
        widget.close()


# -- cassettes -----------------------------------------------------------------------------------
def test_record_then_replay_answers_the_same_cells_from_the_cassette(cell, tmp_path: Path) -> None:
    cassette = tmp_path / "runs.jsonl"
    out = cell(f"%aix record {cassette}")
    assert out.error is None and out.stdout == f"recording every run to {cassette} (a new cassette)\n"
    cells = [f"%aix run {VADER} I love this library", f"%aix run {LANGID} Bonjour tout le monde"]
    recorded = [cell(c) for c in cells]
    assert all(o.error is None for o in recorded)
    stopped = cell("%aix record off")
    assert stopped.error is None and stopped.stdout.startswith(f"recording off: {cassette} (")
    assert recall.current_record() is None

    out = cell(f"%aix replay {cassette} --speed 0")
    assert out.error is None
    assert out.stdout == (
        f"replaying {cassette}: 2 runs recorded, streams with no pauses; nothing goes to a server\n"
    )
    replayed = [cell(c) for c in cells]
    for before, after in zip(recorded, replayed, strict=True):
        assert after.result.data == before.result.data
        assert after.outputs[0].data == before.outputs[0].data  # the same output
        assert meta(after)["cached"] == "cassette"
        assert meta(after)["request_key"] == meta(before)["request_key"]
        assert after.stderr.startswith("[aix] ") and " replayed (credits 0, saved 0)" in after.stderr
    one_line_error(cell(f"%aix run {VADER} a sentence never recorded"), ReplayMiss, VADER, "never recorded")
    # recording onto the cassette being replayed is refused, in one line, and leaves the file alone
    one_line_error(cell(f"%aix record {cassette}"), ConfigurationError, str(cassette), "replay off")
    off = cell("%aix replay off")
    assert off.error is None and off.stdout.startswith("replay off: runs go to the server again")
    assert "cached" not in meta(cell(f"%aix run {VADER} a sentence never recorded"))
    assert "2 runs recorded" in cell(f"%aix replay {cassette}").stdout


def test_replayed_credits_show_as_saved_in_the_status_line_the_table_and_usage(
    cell, ip, tmp_path: Path
) -> None:
    cassette = tmp_path / "priced.jsonl"
    ip.user_ns["texts"] = ["good", "bad"]
    cell(f"%aix record {cassette}")
    assert cell(f"%aix run {VADER} I love it").error is None
    assert cell(f"%aix map {VADER} texts").error is None
    cell("%aix record off")
    priced(cassette, 0.05)  # as if each run had cost 0.05 credits

    before = {row[0]: row for row in cell("%aix usage").result.rows}
    assert "cached" not in cell("%aix usage").result.columns  # nothing answered from a store yet
    cell(f"%aix replay {cassette} --speed 0")
    out = cell(f"%aix run {VADER} I love it")
    assert out.stderr == f"[aix] {VADER} replayed (credits 0, saved 0.05)\n"
    assert meta(out)["cached"] == "cassette" and meta(out)["saved_credits"] == 0.05
    assert meta(out)["used_credits"] == 0.05  # the recorded value; nothing was spent
    batch = cell(f"%aix map {VADER} texts")
    assert [row[4] for row in batch.result.rows] == ["0 (saved 0.05)"] * 2
    assert "2 cached (saved 0.1 credits)" in batch.result.note and "· 0 credits" in batch.result.note

    usage = cell("%aix usage").result
    assert usage.columns == list(COLUMNS)
    row = dict(zip(usage.columns, next(r for r in usage.rows if r[0] == VADER), strict=True))
    assert row["cached"] == "3" and row["saved"] == "0.15" and row["credits"] == "0"
    assert int(row["items"]) == int(before[VADER][4]) + 3
    assert ", 3 cached;" in usage.note and "(0.15 saved by the cache and cassettes)" in usage.note


def test_record_append_and_off_when_nothing_is_on(cell, tmp_path: Path) -> None:
    cassette = tmp_path / "runs.jsonl"
    assert cell("%aix record off").stdout == "recording off (nothing was being recorded)\n"
    assert cell("%aix replay off").stdout == "replay off (nothing was being replayed)\n"
    cell(f"%aix record {cassette}")
    cell(f"%aix run {VADER} one")
    cell("%aix record off")
    out = cell(f"%aix record {cassette} --append")
    assert out.error is None and "(appending to the cassette)" in out.stdout
    cell(f"%aix run {VADER} two")
    cell("%aix record off")
    assert cell(f"%aix replay {cassette}").stdout.startswith(f"replaying {cassette}: 2 runs recorded")
    assert recall.current_replay().speed == 1.0  # the recorded pace by default


def test_cassette_errors_and_bad_lines_are_one_line(cell, ip, tmp_path: Path) -> None:
    one_line_error(cell(f"%aix replay {tmp_path / 'missing.jsonl'}"), CassetteError, "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"not": "a cassette"}\n', encoding="utf-8")
    one_line_error(cell(f"%aix replay {bad}"), CassetteError, "bad.jsonl")
    one_line_error(cell("%aix cache begin"), MagicUsageError, "'begin'")
    one_line_error(cell("%aix replay runs.jsonl --speed -2"), MagicUsageError, "--speed", "'-2'")
    one_line_error(cell("%%aix cache on\nbody"), MagicUsageError, "%%aix")
    ip.user_ns["where"] = str(tmp_path / "named.jsonl")
    assert cell("%aix record {where}").error is None  # {name} is filled in, like everywhere
    assert recall.current_record().path == tmp_path / "named.jsonl"


def test_config_shows_the_cache_recording_and_replay_but_never_a_key(
    cell, monkeypatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TEAM_API_KEY", "sk-config-secret-value")
    card = cell("%aix config").result
    assert (card.config["cache"], card.config["record"], card.config["replay"]) == ("off", "off", "off")
    cache, cassette = tmp_path / "c.sqlite3", tmp_path / "runs.jsonl"
    cell(f"%aix cache on {cache} --max-size 500MB")
    cell(f"%aix record {cassette}")
    out = cell("%aix config")
    assert out.error is None
    fields = dict(out.result.fields)
    assert fields["cache"] == f"{cache} (at most 500 MiB)" and fields["record"] == str(cassette)
    assert fields["replay"] == "off"
    assert "sk-config-secret-value" not in repr(out.result)
    cell("%aix record off")
    monkeypatch.delenv("TEAM_API_KEY")
    cell(f"%aix record {cassette}")
    cell(f"%aix run {VADER} hello")
    cell("%aix record off")
    cell(f"%aix replay {cassette} --speed 0")
    assert dict(cell("%aix config").result.fields)["replay"] == f"{cassette} (1 run, speed 0)"
