"""Structured output against a real wire server on loopback: what travels, what is parsed, what fails."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from pydantic import BaseModel, Field

from aix_jupyter import LLM, Conversation, ResponseStatus, observe_session
from aix_jupyter.core.structured import ResponseFormat
from tests.core.conftest import KEY, call
from tests.core.wireserver import Reply, WireServer

SCHEMA = {
    "type": "object",
    "properties": {"mood": {"type": "string", "enum": ["happy", "sad"]}, "stars": {"type": "integer"}},
    "required": ["mood", "stars"],
}


class Review(BaseModel):
    mood: str
    stars: int = Field(ge=1, le=5)


@pytest.fixture
def llm(server: WireServer) -> LLM:
    return LLM("echo", "Echo", api_key=KEY, url=server.run_url, supports_streaming=True)


def answer(server: WireServer, *texts: str) -> None:
    server.script(
        "POST /api/v2/execute",
        *(Reply(json={"status": "SUCCESS", "completed": True, "data": t, "usedCredits": 0.5}) for t in texts),
    )


def stream_answer(server: WireServer, text: str) -> None:
    server.script(
        "POST /api/v2/execute", Reply(sse=[json.dumps({"data": text[:5]}), json.dumps({"data": text[5:]})])
    )


def sent_format(server: WireServer) -> Any:
    return server.seen("POST", "/api/")[-1].json()["response_format"]


def test_a_schema_answer_is_parsed(llm: LLM, server: WireServer, mode: str):
    answer(server, '{"mood": "happy", "stars": 4}')
    schema = copy.deepcopy(SCHEMA)
    r = call(mode, llm, "run", "x", response_format=schema)
    assert r.status is ResponseStatus.SUCCESS and r.parsed == {"mood": "happy", "stars": 4}
    assert sent_format(server) == SCHEMA and schema == SCHEMA


def test_a_pydantic_class_travels_as_its_schema_and_parses_into_an_instance(llm: LLM, server: WireServer):
    answer(server, '{"mood": "sad", "stars": 2}')
    r = llm.run("x", response_format=Review)
    assert r.parsed == Review(mood="sad", stars=2)
    assert sent_format(server) == Review.model_json_schema()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not json at all", "the answer is not valid JSON"),
        ('{"mood": "happy"', "the answer is not valid JSON"),
        ('{"mood": "angry", "stars": 3}', "mood: 'angry' is not one of ['happy', 'sad']"),
        ('{"mood": "happy"}', "'stars' is a required property"),
    ],
)
def test_an_answer_that_does_not_match_is_failed_with_its_text_kept(
    llm: LLM, server: WireServer, text: str, expected: str
):
    answer(server, text)
    r = llm.run("x", response_format=SCHEMA)
    assert r.status is ResponseStatus.FAILED and r.data == text and r.parsed is None
    assert expected in r.error_message and "\n" not in r.error_message
    assert r.used_credits == 0.5  # what the run cost is kept


def test_pydantic_constraints_beyond_the_schema_still_fail(llm: LLM, server: WireServer):
    answer(server, '{"mood": "happy", "stars": 9}')
    r = llm.run("x", response_format=Review)
    assert r.status is ResponseStatus.FAILED and "stars" in r.error_message


def test_openai_wrapped_json_and_text_forms(llm: LLM, server: WireServer):
    wrapped = {"type": "json_schema", "json_schema": {"name": "R", "schema": SCHEMA}}
    answer(server, '{"mood": "sad", "stars": 1}', "[1, 2]", "free words", '{"mood": "sad", "stars": 1}')
    assert llm.run("a", response_format=wrapped).parsed == {"mood": "sad", "stars": 1}
    assert sent_format(server) == wrapped
    assert llm.run("b", response_format="json").parsed == [1, 2]
    r = llm.run("c", response_format="text")
    assert r.ok and r.parsed is None and sent_format(server) == "text"
    assert llm.run("d", response_format=json.dumps(SCHEMA)).parsed == {"mood": "sad", "stars": 1}


def test_a_stream_is_checked_when_it_ends(llm: LLM, server: WireServer):
    outcomes = []
    remove = observe_session(outcomes.append)
    try:
        stream_answer(server, '{"mood": "happy", "stars": 5}')
        chunks = list(llm.run("x", stream=True, response_format=SCHEMA))
        assert chunks[-1].ok and chunks[-1].parsed == {"mood": "happy", "stars": 5}
        stream_answer(server, '{"mood": "meh", "stars": 5}')
        streamer = llm.run("y", stream=True, response_format=SCHEMA)
        chunks = list(streamer)
        assert chunks[-1].status is ResponseStatus.FAILED and "mood" in chunks[-1].error_message
        assert chunks[-1].data == '{"mood": "meh", "stars": 5}' and streamer.status is ResponseStatus.FAILED
    finally:
        remove()
    assert [o.status for o in outcomes] == ["SUCCESS", "FAILED"]  # the ledger sees the checked end


def test_the_ledger_and_events_see_a_mismatch_as_failed(llm: LLM, server: WireServer):
    outcomes, events = [], []
    remove = observe_session(outcomes.append)
    try:
        answer(server, "nope")
        llm.run("x", response_format=SCHEMA, on_event=lambda e: events.append(e.kind))
    finally:
        remove()
    assert [o.status for o in outcomes] == ["FAILED"] and events[-1] == "failed"


def test_the_cache_keeps_only_matching_answers_and_parses_a_hit(llm: LLM, server: WireServer, tmp_path):
    cache = tmp_path / "c.sqlite3"
    answer(server, "nope", '{"mood": "happy", "stars": 4}')
    assert not llm.run("x", response_format=SCHEMA, cache=cache).ok
    assert llm.run("x", response_format=SCHEMA, cache=cache).ok  # the failure was not kept: sent again
    hit = llm.run("x", response_format=SCHEMA, cache=cache)
    assert len(server.seen("POST")) == 2 and hit.parsed == {"mood": "happy", "stars": 4}


def test_a_conversation_turn_with_a_format(llm: LLM, server: WireServer):
    chat = Conversation(llm, parameters={"response_format": Review})
    answer(server, '{"mood": "happy", "stars": 3}', "garbage")
    assert chat.send("first").parsed == Review(mood="happy", stars=3)
    r = chat.send("second")
    assert r.status is ResponseStatus.FAILED and "history is unchanged" in r.error_message
    assert chat.turns == 1 and chat.history[-1]["content"] == '{"mood": "happy", "stars": 3}'


def test_response_format_of_forms():
    assert ResponseFormat.of(None) is None
    assert ResponseFormat.of("text").json is False
    assert ResponseFormat.of("JSON").json is True and ResponseFormat.of("json").schema is None
    fmt = ResponseFormat.of(Review)
    assert fmt is not None and fmt.model is Review and fmt.wire == Review.model_json_schema()


def test_a_format_that_cannot_travel_fails_before_sending(llm: LLM, server: WireServer):
    from aix_jupyter import ParameterError

    with pytest.raises(ParameterError, match="response_format"):
        llm.run("x", response_format={"type": "object", "default": object()})
    assert not server.seen("POST")
