"""ChatWidget driven from Python against the embedded backend's real models (no mocks).

``local/test-parrot`` is a text-generation model served by the embedded backend (``register_model``):
it streams the message back and says how many earlier messages the server received with it, and the
first of them, so what the server saw is in every answer. One test talks to the local LLM.
"""

from __future__ import annotations

import time

import comm
import pytest

from aix_jupyter import ChatWidget
from aix_jupyter.backend.registry import register_model, unregister_model
from aix_jupyter.core.conversation import Conversation
from aix_jupyter.core.enums import ResponseStatus
from aix_jupyter.core.errors import AixError, ParameterError
from aix_jupyter.widgets.stream_text import StreamText

PARROT = "local/test-parrot"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PRODUCED: list[str] = []  # every chunk the served model produced (the server's side of a Stop)


class RecordingComm(comm.DummyComm):
    sent: list[tuple[str, dict]] = []

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        RecordingComm.sent.append((self.comm_id, data or {}))


@pytest.fixture
def comms(monkeypatch):
    RecordingComm.sent = []
    monkeypatch.setattr(comm, "create_comm", lambda *a, **kw: RecordingComm(*a, **kw))
    return RecordingComm.sent


@pytest.fixture(scope="module", autouse=True)
def parrot():
    def parrot(
        data: str,
        history: list[dict] | None = None,
        count: int = 3,
        delay: float = 0.0,
        temperature: float = 0.0,
        max_tokens: int = 128,
        top_p: float = 1.0,
    ):
        """Repeats the message; says how many earlier messages it got, and the first."""
        earlier = history or []
        first = earlier[0]["content"] if earlier else "-"
        yield f"**{data}** ({len(earlier)} earlier; first: {first})"
        for i in range(count):
            time.sleep(delay)
            PRODUCED.append(data)
            yield f" w{i}"

    register_model(parrot, id=PARROT, function="text-generation")
    yield PARROT
    unregister_model(PARROT)


def wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def _turn_texts(chat: ChatWidget) -> list[tuple[str, str]]:
    out = []
    for turn in chat.transcript.children:
        role = "user" if "aix-turn-user" in turn._dom_classes else "assistant"
        view = turn.children[1]
        assert isinstance(view, StreamText)
        out.append((role, view.value))
    return out


def test_layout_settings_from_the_schema_and_repr():
    chat = ChatWidget(PARROT, system="Be terse.", count=2, delay=0.0)
    assert repr(chat) == "ChatWidget(model='local/test-parrot', turns=0)"
    assert isinstance(chat.conversation, Conversation) and chat.conversation.system == "Be terse."
    # the message and the history are the conversation's: not in the form
    assert list(chat.form.controls) == ["count", "delay", "temperature", "max_tokens", "top_p"]
    assert chat.form.controls["count"].input.value == 2
    assert chat.system_box.value == "Be terse."
    assert chat.settings.selected_index is None  # collapsed
    assert [b.description for b in chat.buttons.children] == ["Send", "Stop", "New chat"]
    assert chat.send_button.disabled is False and chat.stop_button.disabled is True
    chat.system_box.value = "Be kind."
    assert chat.conversation.system == "Be kind."
    with pytest.raises(ParameterError, match="unknown parameter 'colour'"):
        ChatWidget(PARROT, colour="red")


def test_two_turns_the_server_gets_the_history(comms):
    chat = ChatWidget(PARROT)
    first = chat.send("I live in Paris.")
    assert first.status is ResponseStatus.SUCCESS
    assert first.data == "**I live in Paris.** (0 earlier; first: -) w0 w1 w2"
    second = chat.send("Which city?")
    assert second.data == "**Which city?** (2 earlier; first: I live in Paris.) w0 w1 w2"
    assert chat.history == [
        {"role": "user", "content": "I live in Paris."},
        {"role": "assistant", "content": first.data},
        {"role": "user", "content": "Which city?"},
        {"role": "assistant", "content": second.data},
    ]
    assert _turn_texts(chat) == [
        ("user", "I live in Paris."),
        ("assistant", first.data),
        ("user", "Which city?"),
        ("assistant", second.data),
    ]
    assert all(turn.children[1].markdown for turn in chat.transcript.children)  # rendered as Markdown
    assert "4 messages" in chat.meta.value and chat.response is second
    assert chat.send_button.disabled is False and chat.stop_button.disabled is True


def test_reply_streams_append_only(comms, monkeypatch):
    monkeypatch.setenv("AIX_FRONTEND", "live")  # what a person watching JupyterLab gets
    chat = ChatWidget(PARROT, count=40, delay=0.01)
    chat.stream_interval = 0.05
    chat.send("go")
    view = chat.transcript.children[-1].children[1]
    mine = [d for cid, d in comms if cid == view.comm.comm_id]
    paints = [d["content"]["append"] for d in mine if d.get("method") == "custom"]
    expected = "**go** (0 earlier; first: -)" + "".join(f" w{i}" for i in range(40))
    assert "".join(paints) == view.value == expected  # append-only: the pieces add up to the text
    assert 2 <= len(paints) < 40  # coalesced: fewer repaints than chunks
    states = [d["state"] for d in mine if d.get("method") == "update"]
    assert all(not state.get("value") for state in states) and states[-1] == {"markdown": True}


def test_enter_in_the_box_sends_and_empties_it():
    chat = ChatWidget(PARROT)
    chat.input.value = "hello"
    chat.input._handle_custom_msg({"submit": "hello"}, [])  # what the box sends on Enter
    assert chat.input.value == ""
    assert chat.wait().data.startswith("**hello** (0 earlier")
    chat.input._handle_custom_msg({"submit": "   "}, [])  # nothing to send: nothing happens
    assert not chat.running and len(chat.history) == 2


def test_stop_cancels_and_keeps_the_history():
    chat = ChatWidget(PARROT)
    chat.send("first")
    chat.set(count=2000, delay=0.01)
    future = chat.send("slow", wait=False)
    view = chat.transcript.children[-1].children[1]
    wait_until(lambda: "w1" in view.value)
    assert chat.running and chat.stop_button.disabled is False and chat.send_button.disabled is True
    with pytest.raises(AixError, match="a reply is being generated"):
        chat.send("meanwhile")
    assert chat.stop() is True
    response = future.result(timeout=30)
    assert response.status is ResponseStatus.FAILED and "cancelled" in response.error_message.lower()
    assert "stopped" in chat.meta.value
    assert len(chat.history) == 2  # the stopped turn is not part of the conversation
    text, produced = view.value, PRODUCED.count("slow")
    time.sleep(0.5)
    assert view.value == text and "w1999" not in text
    assert PRODUCED.count("slow") <= produced + 1 < 2000  # the server stopped generating
    assert chat.stop() is False and not chat.running and chat.send_button.disabled is False


def test_new_chat_forgets_the_turns():
    chat = ChatWidget(PARROT)
    chat.send("one")
    chat.new_chat()
    assert chat.history == [] and chat.transcript.children == () and chat.meta.value == ""
    assert chat.send("two").data.startswith("**two** (0 earlier")


def test_an_existing_conversation_shows_its_turns_and_the_fallback_is_the_transcript():
    conv = Conversation(PARROT)
    assert conv.send("earlier").status is ResponseStatus.SUCCESS
    chat = ChatWidget(conv)
    assert chat.conversation is conv and [r for r, _ in _turn_texts(chat)] == ["user", "assistant"]
    bundle = chat._display_bundle()
    assert WIDGET_VIEW in bundle
    assert "**User:**" in bundle["text/markdown"] and "> earlier" in bundle["text/markdown"]
    assert bundle["text/plain"] == bundle["text/markdown"]


def test_a_model_that_is_not_an_llm_is_refused():
    with pytest.raises(AixError, match="not an LLM"):
        ChatWidget("local/sentiment-vader")


def test_the_local_llm_answers_two_turns():
    chat = ChatWidget("local/smollm2-135m", temperature=0, max_tokens=12)
    first = chat.send("My favourite fruit is mango.")
    second = chat.send("What is my favourite fruit?")
    assert first.status is ResponseStatus.SUCCESS and second.status is ResponseStatus.SUCCESS
    assert len(chat.history) == 4 and chat.history[1]["content"] == first.data
    assert "mango" in second.data.lower()


def test_close_releases_every_inner_widget():
    chat = ChatWidget(PARROT)
    chat.send("one")
    inner = [chat.input, chat.send_button, chat.form.controls["count"].input, *chat.transcript.children]
    chat.close()
    assert chat.comm is None and all(widget.comm is None for widget in inner)


def test_a_secret_echoed_by_the_model_never_reaches_widget_state(comms, monkeypatch):
    from aix_jupyter import display as aix_display

    secret = "sk-chat-secret-0123456789"
    monkeypatch.setattr(aix_display, "_secrets", {secret})
    chat = ChatWidget(PARROT)
    reply = chat.send(f"my key is {secret}")
    assert reply.status is ResponseStatus.SUCCESS and secret in reply.data  # the Python object keeps it
    assert _turn_texts(chat) == [
        ("user", "my key is ***"),
        ("assistant", "**my key is ***** (0 earlier; first: -) w0 w1 w2"),
    ]
    assert comms and all(secret not in repr(data) for _, data in comms)
    assert secret not in repr(chat.transcript_bundle())
