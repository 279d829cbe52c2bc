"""``LLM`` against a real wire server on loopback: what it sends, its twins, its factory, its cache key.

(The SDK itself is compared in test_differential.py: same bodies, paths and streaming for the same calls.)
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from aix_jupyter import LLM, Model, ModelFactory, ParameterError, ResponseStatus
from aix_jupyter.core.errors import AixError
from tests.core.conftest import KEY, call
from tests.core.wireserver import Reply, WireServer, default_metadata

HISTORY = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]


def sent(server: WireServer) -> dict[str, Any]:
    return server.seen("POST", "/api/")[-1].json()


def test_factory_returns_an_llm_for_text_generation_only(server: WireServer, monkeypatch):
    monkeypatch.setenv("BACKEND_URL", server.url)
    monkeypatch.setenv("MODELS_RUN_URL", server.run_url)
    monkeypatch.setenv("TEAM_API_KEY", KEY)
    server.models["tr"] = default_metadata("tr", function={"id": "translation", "name": "Translation"})
    got = ModelFactory.get("echo")
    assert type(got) is LLM and got.temperature == 0.7  # the default of its temperature parameter
    assert type(ModelFactory.get("tr")) is Model
    listed = {m.id: type(m) for m in ModelFactory.list()["items"]}
    assert listed == {"echo": LLM, "tr": Model}


def test_run_sends_the_sdk_body_and_changes_nothing_of_the_callers(llm: LLM, server: WireServer, mode: str):
    parameters = {"temperature": 0.3}
    history = [dict(m) for m in HISTORY]
    r = call(
        mode,
        llm,
        "run",
        "next",
        context="Be brief.",
        history=history,
        max_tokens=9,
        top_p=0.5,
        parameters=parameters,
    )
    assert r.status is ResponseStatus.SUCCESS and r.data == "echo: next" and r.parsed is None
    assert sent(server) == {
        "data": "next",
        "temperature": 0.3,  # the caller's parameters win over the argument
        "context": "Be brief.",
        "prompt": None,
        "history": HISTORY,
        "max_tokens": 9,
        "top_p": 0.5,
        "response_format": None,
    }
    assert server.seen("POST")[-1].path == "/api/v2/execute/echo"
    assert parameters == {"temperature": 0.3} and history == HISTORY


def test_the_models_temperature_is_the_default(llm: LLM, server: WireServer):
    llm.run("a")
    assert "temperature" not in sent(server)  # None: the server's own default
    llm.temperature = 0.2
    llm.run("b")
    assert sent(server)["temperature"] == 0.2
    llm.run("c", temperature=0.0)
    assert sent(server)["temperature"] == 0.0


def test_dict_data_keys_win_over_the_arguments(llm: LLM, server: WireServer):
    data = {"data": "d", "max_tokens": 5}
    llm.run(data, max_tokens=50)
    assert sent(server)["max_tokens"] == 5 and data == {"data": "d", "max_tokens": 5}


def test_run_async_starts_a_job_on_the_v1_path(llm: LLM, server: WireServer, mode: str):
    started = call(mode, llm, "run_async", "later", context="sys", history=HISTORY)
    assert started.status is ResponseStatus.IN_PROGRESS and started.url
    assert server.seen("POST")[-1].path == "/api/v1/execute/echo"
    assert sent(server)["history"] == HISTORY and sent(server)["context"] == "sys"
    assert llm.sync_poll(started.url, wait_time=0.1, timeout=10).data == "echo: later"


def test_stream_sends_the_llm_keys_and_streams(llm: LLM, server: WireServer):
    streamer = llm.run("one two", history=HISTORY, stream=True)
    assert "".join(c.data for c in streamer) == "one two "
    body = sent(server)
    assert body["options"] == {"stream": True} and body["history"] == HISTORY and body["max_tokens"] == 128


def test_arun_stream_twin(llm: LLM, server: WireServer):
    async def main() -> str:
        streamer = await llm.arun("a b", stream=True)
        return "".join([c.data async for c in streamer])

    assert asyncio.run(main()) == "a b "


def test_the_schema_still_checks_known_parameters_before_sending(llm: LLM, server: WireServer):
    with pytest.raises(ParameterError, match="temperature"):
        llm.run("x", temperature=5)  # the schema's maximum is 2
    with pytest.raises(ParameterError, match="nope"):
        llm.run("x", parameters={"nope": 1})  # unknown model parameters still fail, as for Model.run
    assert not server.seen("POST")


def test_extras_of_model_run_keep_working(llm: LLM, server: WireServer):
    events: list[str] = []
    r = llm.run("x", on_event=lambda e: events.append(e.kind))
    assert r.ok and events[-1] == "finished"
    cancel = threading.Event()
    cancel.set()
    server.script("POST /api/v2/execute", Reply(delay=2))
    assert "cancelled" in llm.run("y", cancel=cancel).error_message.lower()


def test_the_cache_key_includes_the_history(llm: LLM, server: WireServer, tmp_path):
    cache = tmp_path / "c.sqlite3"
    llm.run("q", history=HISTORY, cache=cache)
    llm.run("q", history=HISTORY, cache=cache)
    assert len(server.seen("POST")) == 1  # the second came from the cache
    llm.run("q", history=[*HISTORY[:1], {"role": "assistant", "content": "Other"}], cache=cache)
    assert len(server.seen("POST")) == 2


def test_constructor_and_round_trip():
    llm = LLM("m", "M", temperature=0.4, supports_streaming=True)
    assert llm.function == "text-generation" and llm.temperature == 0.4
    again = LLM.from_dict(json.loads(json.dumps(llm.to_dict())))
    assert type(again) is LLM and again.temperature == 0.4 and again.supports_streaming
    with pytest.raises(AixError, match="only text-generation"):
        LLM("m", "M", function="translation")


def test_a_bad_response_format_fails_before_sending(llm: LLM, server: WireServer):
    with pytest.raises(ParameterError, match="response_format"):
        llm.run("x", response_format=42)
    with pytest.raises(ParameterError, match="not a valid JSON schema"):
        llm.run("x", response_format={"type": "object", "properties": {"a": {"type": 7}}})
    assert not server.seen("POST")
