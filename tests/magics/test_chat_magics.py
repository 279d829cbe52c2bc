"""``%aix chat`` and the ``-f``/``--schema`` options, in an IPython shell, against the embedded backend.

``local/test-chat-parrot`` is a text-generation model served by the embedded backend: it answers with
the message, how many earlier messages the server received with it and the first of them, so every
answer shows what the server saw. The local LLM answers a follow-up once.
"""

from __future__ import annotations

import time

import pytest

from aix_jupyter.backend.registry import register_model, unregister_model
from aix_jupyter.core.conversation import Conversation
from aix_jupyter.core.enums import ResponseStatus
from aix_jupyter.magics.errors import MagicUsageError, RunFailed

PARROT = "local/test-chat-parrot"
FENCED = "local/test-fenced"


@pytest.fixture(scope="module", autouse=True)
def models():
    def parrot(
        data: str,
        history: list[dict] | None = None,
        count: int = 2,
        temperature: float = 0.0,
        max_tokens: int = 128,
        top_p: float = 1.0,
    ):
        """Repeats the message; says how many earlier messages it got, and the first."""
        earlier = history or []
        yield f"{data} ({len(earlier)} earlier; first: {earlier[0]['content'] if earlier else '-'})"
        for i in range(count):
            time.sleep(0.001)
            yield f" w{i}"

    def fenced(text: str, kind: str = "code") -> str:
        """Fixed answers in the shapes the output formats take apart."""
        return {
            "code": "Here you are:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nEnjoy.",
            "json": 'Sure:\n```json\n{"name": "Ada", "age": 36}\n```',
            "prose": "No JSON here.",
            "html": "<b>bold</b> move",
        }[kind]

    register_model(parrot, id=PARROT, function="text-generation")
    register_model(fenced, id=FENCED)
    yield
    unregister_model(PARROT)
    unregister_model(FENCED)


def magics(ip):
    return next(c for c in ip.configurables if type(c).__name__ == "AixMagics")


def test_two_turns_share_one_conversation_and_the_server_gets_the_history(ip, cell):
    first = cell(f"%aix chat {PARROT} I live in Paris.")
    assert first.error is None and first.result.data == "I live in Paris. (0 earlier; first: -) w0 w1"
    assert first.stdout.startswith("I live in Paris. (0 earlier; first: -) w0 w1\n")  # terminal: the chunks
    second = cell(f"%aix chat {PARROT} -o answer Which city?")
    assert second.result.data == "Which city? (2 earlier; first: I live in Paris.) w0 w1"
    assert ip.user_ns["answer"] is second.result
    conv = magics(ip).conversations[(PARROT, "default")]
    assert isinstance(conv, Conversation) and conv.turns == 2
    assert [m["content"] for m in conv.history][::2] == ["I live in Paris.", "Which city?"]


def test_cell_body_sessions_system_history_and_reset(ip, cell):
    body = cell(f"%%aix chat {PARROT} --session s2 --count 0\nHello\nthere")
    assert body.result.data == "Hello\nthere (0 earlier; first: -)"
    again = cell(f"%aix chat {PARROT} --session s2 --count 0 More")
    assert again.result.data == "More (2 earlier; first: Hello\nthere)"
    other = cell(f"%aix chat {PARROT} --count 0 Apart")  # the default session knows nothing of s2
    assert other.result.data == "Apart (0 earlier; first: -)"
    history = cell(f"%aix chat {PARROT} --session s2 --history")
    assert isinstance(history.result, Conversation) and history.result.turns == 2
    assert "> More" in history.result._repr_markdown_()
    reset = cell(f"%aix chat {PARROT} --session s2 --reset")
    assert reset.result is None and reset.stdout == (
        f"{PARROT} (session s2): conversation reset (4 messages forgotten)\n"
    )
    assert magics(ip).conversations[(PARROT, "s2")].history == []
    cell(f'%aix chat {PARROT} --session s3 --system "Be terse." --reset')
    assert magics(ip).conversations[(PARROT, "s3")].system == "Be terse."


def test_default_model_and_the_widget_on_the_same_conversation(ip, cell):
    ip.run_line_magic("config", f"AixMagics.default_model = '{PARROT}'")
    try:
        cell("%aix chat --count 0 Hi")
        shown = cell("%aix chat --count 5")
        from aix_jupyter.widgets.chat import ChatWidget

        assert isinstance(shown.result, ChatWidget)
        assert shown.result.conversation is magics(ip).conversations[(PARROT, "default")]
        assert len(shown.result.transcript.children) == 2  # the turn the magic had
        assert shown.result.form.controls["count"].input.value == 5  # the options preset its settings
    finally:
        ip.run_line_magic("config", "AixMagics.default_model = ''")


def test_usage_errors_are_one_line(cell):
    bad = cell(f"%aix chat {PARROT} --history Extra words")
    assert isinstance(bad.error, MagicUsageError) and "takes no message" in str(bad.error)
    twice = cell(f"%%aix chat {PARROT} On the line\nand the body")
    assert isinstance(twice.error, MagicUsageError) and "message given twice" in str(twice.error)
    not_llm = cell("%aix chat local/sentiment-vader Hi")
    assert "not an LLM" in str(not_llm.error)
    unknown = cell(f"%aix chat {PARROT} --colour red Hi")
    assert "unknown option --colour" in str(unknown.error)


def test_format_code_puts_the_code_in_a_new_cell(ip, cell):
    ip.rl_next_input = None
    out = cell(f"%aix run {FENCED} -f code x")
    assert out.error is None and ip.rl_next_input == "def add(a, b):\n    return a + b"
    shown = out.displays[-1]
    assert shown["text/markdown"] == "```python\ndef add(a, b):\n    return a + b\n```"


def test_format_json_html_text(cell):
    js = cell(f"%aix run {FENCED} -f json --kind json x").displays[-1]
    assert js["application/json"] == {"name": "Ada", "age": 36}
    html = cell(f"%aix run {FENCED} -f html --kind html x").displays[-1]
    assert html["text/html"] == "<b>bold</b> move"
    text = cell(f"%aix run {FENCED} -f text --kind html x").displays[-1]
    assert set(text) == {"text/plain"}
    prose = cell(f"%aix run {FENCED} -f json -o kept --kind prose x")
    assert isinstance(prose.error, RunFailed)
    assert str(prose.error) == (
        f"{FENCED}: -f json: the answer is not JSON (Expecting value at line 1): 'No JSON here.'; "
        "the response is in kept"
    )


def test_format_of_a_chat_turn(ip, cell):
    out = cell(f"%aix chat {PARROT} --session fmt --count 0 -f text Plain")
    assert out.result.data == "Plain (0 earlier; first: -)"


def test_schema_needs_a_class_or_dict_and_an_llm(ip, cell):
    ip.user_ns["not_a_schema"] = 42
    bad = cell(f"%aix run {PARROT} --schema not_a_schema x")
    assert isinstance(bad.error, MagicUsageError) and "holds a int" in str(bad.error)
    missing = cell(f"%aix run {PARROT} --schema nowhere x")
    assert "no variable 'nowhere'" in str(missing.error)
    ip.user_ns["shape"] = {"type": "object"}
    not_llm = cell(f"%aix run {FENCED} --schema shape x")
    assert "is not a text-generation model" in str(not_llm.error)


def test_the_local_llm_answers_a_follow_up(ip, cell):
    llm = "local/smollm2-135m"
    first = cell(
        f"%aix chat {llm} --session follow --temperature 0 --max_tokens 12 My favourite fruit is mango."
    )
    assert first.error is None and first.result.status is ResponseStatus.SUCCESS
    second = cell(
        f"%aix chat {llm} --session follow --temperature 0 --max_tokens 12 What is my favourite fruit?"
    )
    assert "mango" in second.result.data.lower()
    assert magics(ip).conversations[(llm, "follow")].turns == 2
