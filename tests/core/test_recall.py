"""The cache and cassettes at the one seam in front of the transport, through every run path.

A real wire server on loopback counts what reaches it: a hit sends nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import warnings
from pathlib import Path
from urllib.parse import quote

import pytest

from aix_jupyter.core import recall
from aix_jupyter.core.cache import CacheWarning
from aix_jupyter.core.cassette import Cassette, CassetteError
from aix_jupyter.core.enums import ResponseStatus
from aix_jupyter.core.errors import ReplayMiss
from aix_jupyter.core.events import observe_session
from aix_jupyter.core.factory import ModelFactory
from aix_jupyter.core.hooks import set_default_backend
from aix_jupyter.core.model import Model
from tests.core.conftest import KEY, call
from tests.core.wireserver import Reply, WireServer, default_metadata


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch):
    for name in ("AIX_CACHE", "AIX_RECORD", "AIX_REPLAY", "AIX_REPLAY_SPEED"):
        monkeypatch.delenv(name, raising=False)
    recall.reset()
    yield
    recall.reset()


@pytest.fixture
def cache_path(tmp_path) -> Path:
    return tmp_path / "cache" / "responses.sqlite3"


def runs_sent(server: WireServer) -> int:
    return len([r for r in server.requests if r.path.startswith("/api/")])


def run_path(mode: str, model: Model, path: str, data: str, **kw):
    """One call through ``path``: its final response (and the stream's chunks), sync or async."""
    if path == "run":
        return call(mode, model, "run", data, **kw), None
    if path == "run_async+sync_poll":
        started = call(mode, model, "run_async", data, **kw)
        assert started.status is ResponseStatus.IN_PROGRESS and started.url
        return call(mode, model, "sync_poll", started.url), None
    if path == "run_async+poll":
        started = call(mode, model, "run_async", data, **kw)
        for _ in range(200):
            polled = call(mode, model, "poll", started.url)
            if polled.status is not ResponseStatus.IN_PROGRESS:
                return polled, None
        raise AssertionError("the job never ended")
    if path == "run_stream":
        if mode == "sync":
            streamer = model.run_stream(data, **kw)
            chunks = [c.data for c in streamer]
        else:

            async def go():
                streamer = await model.arun_stream(data, **kw)
                return streamer, [c.data async for c in streamer]

            streamer, chunks = asyncio.run(go())
        return streamer, chunks
    if path == "map":
        result = model.map([data], **kw) if mode == "sync" else asyncio.run(model.amap([data], **kw))
        return result[0], None
    raise AssertionError(path)


PATHS = ["run", "run_async+sync_poll", "run_async+poll", "run_stream", "map"]


@pytest.mark.parametrize("path", PATHS)
def test_a_hit_sends_nothing_on_every_run_path(server, model, mode, path, cache_path):
    recall.set_cache(cache_path)
    first, chunks = run_path(mode, model, path, "hello cached world")
    sent = runs_sent(server)
    assert sent >= 1
    assert first.status is ResponseStatus.SUCCESS
    second, chunks2 = run_path(mode, model, path, "hello cached world")
    assert runs_sent(server) == sent, "a hit must send no request"
    assert second.status is ResponseStatus.SUCCESS
    mark = recall.recall_of(second)
    assert mark is not None and mark.source == "cache"
    assert mark.key == recall.recall_of(first).key
    if path == "run_stream":
        assert chunks2 == chunks and second.text == first.text
    else:
        assert second.data == first.data and second.used_credits == first.used_credits
        assert second.run_time == first.run_time  # the original run time and credits
    # a different input is a miss
    run_path(mode, model, path, "another input")
    assert runs_sent(server) > sent


@pytest.mark.parametrize("path", ["run", "run_async+sync_poll", "run_stream", "map"])
def test_cache_false_bypasses_an_enabled_cache(server, model, mode, path, cache_path):
    recall.set_cache(cache_path)
    run_path(mode, model, path, "bypass me")
    sent = runs_sent(server)
    response, _ = run_path(mode, model, path, "bypass me", cache=False)
    assert runs_sent(server) > sent
    mark = recall.recall_of(response)
    assert mark is None or mark.source is None


def test_a_model_s_own_cache_and_a_call_s_choice(server, model, tmp_path):
    own = Model("echo", url=server.run_url, api_key=KEY, cache=tmp_path / "own.sqlite3")
    own.run("x")
    sent = runs_sent(server)
    assert recall.recall_of(own.run("x")).source == "cache"
    assert runs_sent(server) == sent
    own.run("x", cache=False)
    assert runs_sent(server) == sent + 1
    # cache=True with nothing enabled uses the default file (AIX_CACHE_DIR points it here)
    os.environ["AIX_CACHE_DIR"] = str(tmp_path / "default")
    try:
        model.run("y", cache=True)
        assert recall.recall_of(model.run("y", cache=True)).source == "cache"
        assert (tmp_path / "default").is_dir()
        assert recall.recall_of(model.run("y")) is None  # not on for other calls: no store, no mark
    finally:
        del os.environ["AIX_CACHE_DIR"]


def test_aix_cache_in_the_environment_turns_it_on(server, model, tmp_path, monkeypatch):
    monkeypatch.setenv("AIX_CACHE", str(tmp_path / "env.sqlite3"))
    model.run("from env")
    sent = runs_sent(server)
    assert recall.recall_of(model.run("from env")).source == "cache"
    assert runs_sent(server) == sent
    recall.set_cache(None)  # off here wins over the environment
    model.run("from env")
    assert runs_sent(server) == sent + 1


def test_only_success_is_stored(server, model, cache_path):
    recall.set_cache(cache_path)
    server.script(
        "POST /api/v2/execute",
        Reply(json={"status": "FAILED", "completed": True, "error_message": "model exploded"}),
    )
    failed = model.run("fail once")
    assert failed.status is ResponseStatus.FAILED
    server.script("POST /api/v2/execute", Reply(status=500, json={"error": "boom"}))
    assert model.run("fail once").status is ResponseStatus.FAILED
    ok = model.run("fail once")
    assert ok.status is ResponseStatus.SUCCESS and recall.recall_of(ok).source is None
    assert recall.current_cache().info().entries == 1


def test_map_with_the_cache_resumes_for_free(server, model, cache_path):
    recall.set_cache(cache_path)
    items = [f"item {i}" for i in range(10)]
    model.map(items[:6], concurrency=3)
    sent = runs_sent(server)
    result = model.map(items, concurrency=3)
    assert result.ok and len(result) == 10
    assert runs_sent(server) == sent + 4  # only the missing items went out
    assert result.recalled == 6
    assert [r.data for r in result] == [f"echo: {x}" for x in items]
    assert result.used_credits == pytest.approx(0.04) and result.saved_credits == pytest.approx(0.06)


def test_session_observers_count_a_hit_as_spent_nothing(server, model, cache_path):
    recall.set_cache(cache_path)
    seen = []
    remove = observe_session(seen.append)
    try:
        model.run("counted")
        model.run("counted")
    finally:
        remove()
    assert [(o.credits, o.recalled, o.saved) for o in seen] == [(0.01, None, 0.0), (0.0, "cache", 0.01)]


def test_a_broken_cache_warns_once_and_runs_go_to_the_server(server, model, tmp_path):
    bad = tmp_path / "corrupt.sqlite3"
    bad.write_bytes(b"this is not a database at all" * 100)
    recall.set_cache(bad)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            response = model.run("still works")
            assert response.status is ResponseStatus.SUCCESS and response.data == "echo: still works"
    assert runs_sent(server) == 3
    assert len([w for w in caught if issubclass(w.category, CacheWarning)]) == 1


# ---------------------------------------------------------------------------------------------
# cassettes


def test_record_stop_the_server_replay_identical(tmp_path):
    cassette = tmp_path / "nb.jsonl"
    server = WireServer().start()
    server.models["echo"] = default_metadata("echo")
    server.stream_chunks = [f"c{i}" for i in range(60)]
    try:
        recall.set_record(cassette)
        os.environ["AIX_BACKEND_URL"] = server.url
        os.environ["AIXPLAIN_API_KEY"] = KEY
        model = ModelFactory.get("echo")
        listing = ModelFactory.list("Model")
        run = model.run("hi there", parameters={"temperature": 0.2})
        job = model.run_async("a job")
        done = model.sync_poll(job.url)
        streamer = model.run_stream("s")
        recorded_chunks = [c.data for c in streamer]
        batch = model.map(["one", "two", "three"])
        recall.set_record(None)
    finally:
        server.stop()
        os.environ.pop("AIX_BACKEND_URL", None)
        os.environ.pop("AIXPLAIN_API_KEY", None)
    assert len([c for c in recorded_chunks if c]) == 60  # and the final response
    # replay: no server, no key, nothing configured -- and the default backend must not start
    previous = set_default_backend(_no_backend)
    try:
        recall.set_replay(cassette, speed=0)
        again = ModelFactory.get("echo")
        assert again.to_dict() == model.to_dict()
        assert [m.id for m in ModelFactory.list("Model")["items"]] == [m.id for m in listing["items"]]
        replayed = again.run("hi there", parameters={"temperature": 0.2})
        assert replayed.to_dict() == run.to_dict()
        assert recall.recall_of(replayed).source == "cassette"
        job2 = again.run_async("a job")
        assert recall.is_handle(job2.url)
        assert again.sync_poll(job2.url).to_dict() == done.to_dict()
        assert again.cancel_run(job2.url) is False
        streamer2 = again.run_stream("s")
        assert [c.data for c in streamer2] == recorded_chunks
        assert streamer2.status is ResponseStatus.SUCCESS
        batch2 = again.map(["one", "two", "three"])
        assert [r.to_dict() for r in batch2] == [r.to_dict() for r in batch]
        # a run that is not in the cassette: ReplayMiss names the model and the input's start
        with pytest.raises(ReplayMiss) as miss:
            again.run("a question nobody recorded " + "x" * 200)
        message = str(miss.value)
        assert "'echo'" in message and "a question nobody recorded" in message and "\n" not in message
        assert miss.value.model_id == "echo"
        # in a batch, a miss fails that item only
        mixed = again.map(["one", "never recorded", "three"])
        assert [r.status for r in mixed] == [
            ResponseStatus.SUCCESS,
            ResponseStatus.FAILED,
            ResponseStatus.SUCCESS,
        ]
        assert "never recorded" in mixed[1].error_message
        with pytest.raises(ReplayMiss):
            ModelFactory.get("unknown-model")
    finally:
        set_default_backend(previous)


def _no_backend():
    raise AssertionError("replaying must not start the default backend")


def test_replay_of_a_stream_keeps_its_pace_or_compresses_it(tmp_path, server, model):
    server.stream_chunks = ["a", "b", "c", "d"]
    recall.set_record(tmp_path / "s.jsonl")
    server.script(
        "POST /api/v2/execute", Reply(sse=[json.dumps({"data": c}) for c in "abcd"], sse_delay=0.15)
    )
    chunks = [c.data for c in model.run_stream("paced")]
    recall.set_record(None)
    lines = [json.loads(x) for x in (tmp_path / "s.jsonl").read_text().splitlines()[1:]]
    offsets = [t for t, _ in lines[0]["chunks"]]
    assert offsets == sorted(offsets) and offsets[-1] - offsets[0] >= 0.3
    for speed in (0, 1):
        recall.set_replay(tmp_path / "s.jsonl", speed=speed)
        import time

        start = time.monotonic()
        assert [c.data for c in model.run_stream("paced")] == chunks
        took = time.monotonic() - start
        if speed == 0:
            assert took < offsets[-1]  # no pauses
        else:
            assert took >= (offsets[-1] - offsets[0]) * 0.8  # the recorded pace


def test_cassette_lines_are_readable_and_a_re_recorded_run_wins(tmp_path, server, model):
    path = tmp_path / "c.jsonl"
    recall.set_record(path)
    model.run("first")
    recall.set_record(path, append=True)
    server.script("POST /api/v2/execute", Reply(json={"status": "SUCCESS", "completed": True, "data": "new"}))
    model.run("first")
    recall.set_record(None)
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["aix_cassette"] == 1
    runs = [json.loads(x) for x in lines[1:]]
    assert [r["kind"] for r in runs] == ["run", "run"]
    assert (
        runs[0]["input"] == "first" and runs[0]["model"] == "echo" and runs[0]["request"] == {"data": "first"}
    )
    recall.set_replay(path)
    assert model.run("first").data == "new"


def test_bad_cassettes_say_what_is_wrong(tmp_path):
    with pytest.raises(CassetteError, match="no cassette at"):
        recall.set_replay(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"something": 1}\n')
    with pytest.raises(CassetteError, match="not an aix cassette"):
        Cassette(bad, "replay")
    bad.write_text('{"aix_cassette": 1}\n{"kind": "run", "key": "k", "response": {"data": 1}}\n')
    with pytest.raises(CassetteError, match="line 2"):
        Cassette(bad, "replay")
    bad.write_text('{"aix_cassette": 99}\n')
    with pytest.raises(CassetteError, match="version 99"):
        Cassette(bad, "replay")
    with pytest.raises(CassetteError, match="speed"):
        Cassette(bad, "replay", speed=-1)


def test_aix_replay_and_aix_record_in_the_environment(tmp_path, server, model, monkeypatch):
    path = tmp_path / "env.jsonl"
    monkeypatch.setenv("AIX_RECORD", str(path))
    model.run("env record")
    monkeypatch.delenv("AIX_RECORD")
    recall.reset()
    monkeypatch.setenv("AIX_REPLAY", str(path))
    sent = runs_sent(server)
    assert model.run("env record").data == "echo: env record"
    assert runs_sent(server) == sent


# ---------------------------------------------------------------------------------------------
# the key never reaches a file, whatever the server echoes


def _echoing_server() -> WireServer:
    server = WireServer().start()
    echo = {
        "status": "SUCCESS",
        "completed": True,
        "data": f"you sent {KEY}",
        "usedCredits": 0.5,
        "details": {"auth": KEY, KEY: "as a key", "escaped": "\\u0073k-test"},
        "link": f"https://example.com/x?key={quote(KEY, safe='')}",
        "requestId": "r-key",
    }
    server.script("POST /api/v2/execute", Reply(json=echo), Reply(json=echo))
    server.script(
        "POST /api/v2/execute",
        Reply(sse=[json.dumps({"data": f"chunk {KEY}"}), json.dumps({"data": "tail"})]),
    )
    return server


def test_the_key_never_reaches_the_cache_or_the_cassette(tmp_path):
    server = _echoing_server()
    try:
        model = Model("echo", url=server.run_url, api_key=KEY, supports_streaming=True)
        recall.set_cache(tmp_path / "cache.sqlite3")
        recall.set_record(tmp_path / "tape.jsonl")
        model.run("what is my key")
        model.run("what is my key, again", parameters={"key": KEY})
        list(model.run_stream("stream my key"))
        recall.set_record(None)
        recall.current_cache().close()
    finally:
        server.stop()
    forms = [KEY.encode(), quote(KEY, safe="").encode(), json.dumps(KEY)[1:-1].encode()]
    files = [p for p in tmp_path.iterdir() if p.is_file()]
    assert any(p.name.startswith("cache.sqlite3") for p in files) and (tmp_path / "tape.jsonl").exists()
    for path in files:
        content = path.read_bytes()
        for form in forms:
            assert form not in content, f"the key is in {path.name}"
    assert b"***" in (tmp_path / "tape.jsonl").read_bytes()


def test_the_same_answer_to_the_same_request_is_written_once(tmp_path, server, model):
    path = tmp_path / "once.jsonl"
    recall.set_record(path)
    for _ in range(3):
        model.run("again and again")
    other = {"status": "SUCCESS", "completed": True, "data": "other"}
    server.script("POST /api/v2/execute", Reply(json=other))
    model.run("again and again")  # a different answer: a new line (the later one wins on replay)
    recall.set_record(None)
    kinds = [json.loads(x)["kind"] for x in path.read_text().splitlines()[1:]]
    assert kinds == ["run", "run"]
    recall.set_replay(path)
    assert model.run("again and again").data == "other"


_RECORDER = """
import sys
from aix_jupyter.core.model import Model
model = Model("echo")
for i in range(40):
    assert model.run(f"process {sys.argv[1]} run {i} " + "x" * 5000).status.value == "SUCCESS"
"""


def test_kernels_recording_to_one_cassette_from_the_environment_append_whole_lines(tmp_path, server):
    import subprocess
    import sys

    path = tmp_path / "shared.jsonl"
    env = {
        **os.environ,
        "AIX_RECORD": str(path),
        "AIX_BACKEND_URL": server.url,
        "AIXPLAIN_API_KEY": KEY,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    procs = [
        subprocess.Popen([sys.executable, "-c", _RECORDER, str(n)], env=env, stderr=subprocess.PIPE)
        for n in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
    cassette = Cassette(path, "replay")  # every line whole and valid, or this raises
    assert len(cassette.runs) == 120
    assert KEY.encode() not in path.read_bytes()
