"""``LLM`` and ``Conversation`` on the real embedded SmolLM2 (llama.cpp): history conditions the answer,
structured output is valid JSON of the schema, a context overflow is reported with the history's size.

Few and short: greedy decoding (temperature 0), small ``max_tokens``.
"""

from __future__ import annotations

import enum

import pytest
from pydantic import BaseModel, Field

from aix_jupyter import LLM, ModelFactory, ResponseStatus

pytestmark = pytest.mark.llm

MODEL = "local/smollm2-135m"


class Mood(enum.StrEnum):
    happy = "happy"
    sad = "sad"
    neutral = "neutral"


class Review(BaseModel):
    mood: Mood
    stars: int = Field(ge=1, le=5)
    summary: str


@pytest.fixture(scope="module")
def llm() -> LLM:
    got = ModelFactory.get(MODEL)
    assert isinstance(got, LLM)
    return got


def test_a_conversation_conditions_on_its_history(llm: LLM):
    chat = llm.chat(parameters={"temperature": 0, "max_tokens": 24})
    assert chat.send("My name is Ada. Please remember it.").ok
    answer = chat.send("What is my name?")
    assert answer.ok and "Ada" in answer.data
    alone = llm.run("What is my name?", temperature=0, max_tokens=24)
    assert alone.ok and "Ada" not in alone.data  # the name came from the history, not the question
    assert chat.turns == 2


def test_structured_output_is_valid_json_of_the_schema(llm: LLM):
    for text in ("I love this film! Great acting.", "Terrible and boring, I left early."):
        r = llm.run(
            f"Review: {text}\nClassify the review.", temperature=0, max_tokens=96, response_format=Review
        )
        assert r.status is ResponseStatus.SUCCESS, r.error_message
        assert isinstance(r.parsed, Review) and 1 <= r.parsed.stars <= 5
        assert Review.model_validate_json(r.data) == r.parsed
    schema = {"type": "object", "properties": {"answer": {"type": "string", "enum": ["yes", "no"]}}}
    r = llm.run("Is the sky blue?", temperature=0, max_tokens=24, response_format=schema)
    assert r.ok and r.parsed in ({"answer": "yes"}, {"answer": "no"})


def test_a_streamed_structured_turn(llm: LLM):
    chat = llm.chat("Answer in JSON.", {"temperature": 0, "max_tokens": 96, "response_format": Review})
    streamer = chat.stream("Review: a fine, pleasant film.")
    chunks = list(streamer)
    assert chunks[-1].status is ResponseStatus.SUCCESS and isinstance(chunks[-1].parsed, Review)
    assert Review.model_validate_json(chat.history[-1]["content"]) == chunks[-1].parsed


def test_a_context_overflow_says_how_to_trim_the_history(llm: LLM):
    chat = llm.chat(parameters={"temperature": 0, "max_tokens": 8})
    chat.send("Hello")
    r = chat.send("word " * 2100)
    assert r.status is ResponseStatus.FAILED
    assert "context overflow" in r.error_message and "2048 tokens" in r.error_message
    assert "history is 1 turn" in r.error_message and "undo()" in r.error_message
    assert chat.turns == 1
