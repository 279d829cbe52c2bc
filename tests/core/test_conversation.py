"""``Conversation`` against a real wire server on loopback: history, failures, streams, one turn at a time."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from aix_jupyter import LLM, Conversation, ParameterError, ResponseStatus, observe_session
from aix_jupyter.core.conversation import ConversationBusy
from aix_jupyter.core.errors import AixError
from tests.core.conftest import KEY
from tests.core.wireserver import Reply, WireServer


def last_body(server: WireServer) -> dict:
    return server.seen("POST", "/api/")[-1].json()


def test_each_turn_sends_the_system_message_and_the_history_so_far(llm: LLM, server: WireServer):
    chat = llm.chat("Be brief.", {"max_tokens": 16})
    assert chat.send("one").data == "echo: one"
    first = last_body(server)
    assert first["context"] == "Be brief." and first["history"] == [] and first["max_tokens"] == 16
    chat.send("two", max_tokens=8)
    body = last_body(server)
    assert body["history"] == [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "echo: one"},
    ]
    assert body["max_tokens"] == 8 and body["data"] == "two"
    assert chat.turns == 2 and len(chat.history) == 4


def test_history_is_a_copy_undo_and_reset(llm: LLM):
    chat = Conversation(llm)
    chat.send("a")
    chat.send("b")
    chat.history.clear()
    chat.history[0]["content"] = "changed"
    assert chat.turns == 2 and chat.history[0]["content"] == "a"
    assert chat.undo() == [{"role": "user", "content": "b"}, {"role": "assistant", "content": "echo: b"}]
    assert chat.turns == 1
    chat.reset()
    assert chat.history == [] and chat.turns == 0
    with pytest.raises(AixError, match="no exchange to undo"):
        chat.undo()


def test_max_turns_keeps_the_last_exchanges(llm: LLM, server: WireServer):
    chat = Conversation(llm, max_turns=2)
    for text in ("a", "b", "c"):
        chat.send(text)
    assert [m["content"] for m in chat.history] == ["b", "echo: b", "c", "echo: c"]
    chat.send("d")
    assert [m["content"] for m in last_body(server)["history"]] == ["b", "echo: b", "c", "echo: c"]


def test_an_answer_with_no_data_enters_the_history_as_empty_text(llm: LLM, server: WireServer):
    chat = Conversation(llm)
    server.script("POST /api/v2/execute", Reply(json={"status": "SUCCESS", "completed": True, "data": None}))
    assert chat.send("anything?").status is ResponseStatus.SUCCESS
    assert chat.history[-1] == {"role": "assistant", "content": ""}  # not the word "None"


def test_a_failed_turn_leaves_the_history_and_says_so(llm: LLM, server: WireServer):
    chat = Conversation(llm)
    chat.send("kept")
    server.script("POST /api/v2/execute", Reply(500, json={"error": "boom"}))
    r = chat.send("lost")
    assert r.status is ResponseStatus.FAILED and "history is unchanged" in r.error_message
    assert chat.turns == 1 and chat.history[-1]["content"] == "echo: kept"


def test_a_context_overflow_says_how_long_the_history_is_and_how_to_trim_it(llm: LLM, server: WireServer):
    chat = Conversation(llm)
    chat.send("12345")
    message = (
        "context overflow: the prompt (2100 tokens) + max_tokens (128) exceed the context of 2048 tokens"
    )
    server.script(
        "POST /api/v2/execute", Reply(json={"status": "FAILED", "completed": True, "error_message": message})
    )
    r = chat.send("more")
    assert "1 turn (16 characters)" in r.error_message
    for hint in ("undo()", "reset()", "max_turns="):
        assert hint in r.error_message
    assert chat.turns == 1


def test_cancel_and_timeout_leave_the_history(llm: LLM, server: WireServer):
    chat = Conversation(llm)
    cancel = threading.Event()
    server.script("POST /api/v2/execute", Reply(hang=True), Reply(hang=True))
    threading.Timer(0.2, cancel.set).start()
    r = chat.send("x", cancel=cancel)
    assert "cancelled" in r.error_message.lower() and "history is unchanged" in r.error_message
    r = chat.send("y", timeout=0.3)
    assert r.status is ResponseStatus.FAILED and "history is unchanged" in r.error_message
    assert chat.turns == 0
    assert chat.send("z").ok  # the conversation is free again


def test_ctrl_c_leaves_the_history_and_frees_the_conversation(llm: LLM, server: WireServer):
    chat = Conversation(llm)

    def interrupt(event) -> None:
        if event.kind == "submitted":
            raise KeyboardInterrupt

    server.script(
        "POST /api/v2/execute", Reply(json={"status": "IN_PROGRESS", "data": server.poll_url("nope")})
    )
    with pytest.raises(KeyboardInterrupt) as info:
        chat.send("x", on_event=interrupt)
    assert any("history is unchanged" in note for note in getattr(info.value, "__notes__", []))
    assert chat.turns == 0 and chat.send("y").ok


def test_one_turn_at_a_time(llm: LLM, server: WireServer):
    chat = Conversation(llm)
    server.script(
        "POST /api/v2/execute",
        Reply(delay=0.6, json={"status": "SUCCESS", "completed": True, "data": "late"}),
    )
    first = threading.Thread(target=chat.send, args=("slow",))
    first.start()
    time.sleep(0.2)
    with pytest.raises(ConversationBusy, match="already running"):
        chat.send("second")
    first.join()
    assert chat.turns == 1 and chat.history[0]["content"] == "slow"


def test_a_stream_enters_the_history_when_it_ends(llm: LLM, server: WireServer):
    chat = Conversation(llm, "sys")
    streamer = chat.stream("one two")
    with pytest.raises(ConversationBusy):
        chat.send("meanwhile")
    assert chat.turns == 0
    assert "".join(c.data for c in streamer) == "one two "
    assert chat.history == [
        {"role": "user", "content": "one two"},
        {"role": "assistant", "content": "one two "},
    ]
    assert last_body(server)["options"] == {"stream": True}


def test_a_stream_closed_early_or_failing_leaves_the_history(llm: LLM, server: WireServer):
    chat = Conversation(llm)
    streamer = chat.stream("a b c")
    next(streamer)
    streamer.close()
    assert chat.turns == 0
    server.script("POST /api/v2/execute", Reply(sse=['{"data": "x"}'], close_early=True))
    streamer = chat.stream("broken")
    chunks = list(streamer)
    assert chunks[-1].status is ResponseStatus.FAILED and "history is unchanged" in chunks[-1].error_message
    assert chat.turns == 0 and chat.send("ok").ok


def test_async_twins(llm: LLM, server: WireServer):
    chat = Conversation(llm)

    async def main() -> str:
        await chat.asend("a")
        streamer = await chat.astream("b c")
        return "".join([c.data async for c in streamer])

    assert asyncio.run(main()) == "b c "
    assert [m["content"] for m in chat.history] == ["a", "echo: a", "b c", "b c "]


def test_the_cache_answers_the_same_turn_with_the_same_history(llm: LLM, server: WireServer, tmp_path):
    cache = tmp_path / "c.sqlite3"
    outcomes = []
    remove = observe_session(outcomes.append)
    try:
        for _ in range(2):
            chat = Conversation(llm, "sys", {"cache": cache})
            chat.send("a")
            chat.send("b")
    finally:
        remove()
    assert len(server.seen("POST")) == 2  # the second conversation came from the cache
    assert [o.recalled for o in outcomes] == [None, None, "cache", "cache"]
    different = Conversation(llm, "other system", {"cache": cache})
    different.send("a")
    assert len(server.seen("POST")) == 3


def test_bad_input_is_refused_clearly(llm: LLM):
    with pytest.raises(ParameterError, match="history is set by the conversation"):
        Conversation(llm, parameters={"history": []})
    chat = Conversation(llm)
    with pytest.raises(ParameterError, match="context"):
        chat.send("x", context="no")
    with pytest.raises(ParameterError, match="max_turns"):
        Conversation(llm, max_turns=0)
    with pytest.raises(AixError, match="not an LLM"):
        from aix_jupyter import Model

        Conversation(Model("m", function="translation"))
    assert chat.send("fine").ok  # a refused turn does not hold the conversation


def test_to_dict_from_dict_and_transcripts(llm: LLM):
    chat = Conversation(llm, "Be <nice>", {"max_tokens": 5}, max_turns=3)
    chat.send("<b>bold</b> & co")
    saved = json.loads(json.dumps(chat.to_dict()))
    assert KEY not in json.dumps(saved)
    again = Conversation.from_dict(saved)
    assert again.history == chat.history and again.system == "Be <nice>" and again.max_turns == 3
    assert again.parameters == {"max_tokens": 5} and again.model.id == "echo"
    html = chat._repr_html_()
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in html and "<b>bold</b>" not in html
    markdown = chat._repr_markdown_()
    assert (
        "**User:**" in markdown
        and "> &lt;b&gt;bold&lt;/b&gt; &amp; co" in markdown
        and "**System:**" in markdown
    )
    with pytest.raises(ParameterError, match="pairs"):
        Conversation.from_dict({**saved, "history": saved["history"][:1]})
