"""display.py: the MIME bundle of a response, its provenance metadata, secrets, the display hook, streams."""

from __future__ import annotations

import json

import pytest

from aix_jupyter import display as d
from aix_jupyter.core.enums import ResponseStatus
from aix_jupyter.core.response import ModelResponse

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def ok(data, **kw) -> ModelResponse:
    return ModelResponse(ResponseStatus.SUCCESS, data=data, completed=True, **kw)


def test_text_gives_plain_and_markdown_with_provenance():
    r = ok("**Bonjour**", run_time=0.42, used_credits=0.05, usage={"total_tokens": 7})
    prov = d.Provenance("local/x", "1.0", {"temperature": 0.2}, wall_time=0.5)
    data, meta = d.response_bundle(r, prov)
    assert data == {"text/plain": "**Bonjour**", "text/markdown": "**Bonjour**"}
    assert meta["aix_jupyter"] == {
        "model_id": "local/x",
        "model_version": "1.0",
        "parameters": {"temperature": 0.2},
        "status": "SUCCESS",
        "run_time": 0.42,
        "used_credits": 0.05,
        "usage": {"total_tokens": 7},
        "wall_time": 0.5,
    }
    json.dumps(meta)  # a notebook can store it


def test_remembered_provenance_is_used():
    r = ok("hi")
    d.remember(r, d.Provenance("local/y", parameters={"a": 1}))
    assert d.response_bundle(r)[1]["aix_jupyter"]["model_id"] == "local/y"
    assert d.provenance_of(ok("other")) is None


def test_dicts_and_lists_get_a_json_view():
    class NumpyLike:
        def item(self):
            return 0.5

    data, meta = d.response_bundle(ok({"label": "POSITIVE", "score": NumpyLike(), "tags": ("a", "b")}))
    assert data["application/json"] == {"label": "POSITIVE", "score": 0.5, "tags": ["a", "b"]}
    assert json.loads(data["text/plain"]) == data["application/json"]
    assert "text/markdown" not in data
    assert meta["application/json"]["expanded"] is True
    data, _ = d.response_bundle(ok([["kw", 0.1]]))
    assert data["application/json"] == [["kw", 0.1]]
    data, _ = d.response_bundle(ok({"token": "hello", "id": 7}))  # output fields are the model's business
    assert data["application/json"] == {"token": "hello", "id": 7}


@pytest.mark.parametrize(
    ("value", "key", "fragment"),
    [
        ("https://example.org/cat.png?x=1", "text/html", '<img src="https://example.org/cat.png?x=1"'),
        (
            "http://127.0.0.1:9/out/speech.wav",
            "text/html",
            '<audio controls src="http://127.0.0.1:9/out/speech.wav"',
        ),
        ("https://example.org/clip.mp4", "text/html", "<video controls"),
        (f"data:image/png;base64,{PNG}", "image/png", PNG),
        (
            "data:audio/wav;base64,UklGRg==",
            "text/html",
            '<audio controls src="data:audio/wav;base64,UklGRg=="',
        ),
    ],
)
def test_media_outputs(value, key, fragment):
    data, _ = d.response_bundle(ok(value))
    assert fragment in data[key]
    assert "text/plain" in data and "text/markdown" not in data


def test_plain_urls_and_sentences_stay_text():
    for text in ("https://example.org/page", "see cat.png for details"):
        data, _ = d.response_bundle(ok(text))
        assert data["text/markdown"] == text and "text/html" not in data


def test_failed_and_in_progress_responses():
    failed = ModelResponse(ResponseStatus.FAILED, error_message="boom", completed=True)
    assert d.response_bundle(failed)[0] == {"text/plain": "FAILED: boom"}
    running = ModelResponse(ResponseStatus.IN_PROGRESS, url="http://127.0.0.1:1/api/v1/data/j1")
    d.remember(running, d.Provenance("local/countdown"))
    text = d.response_bundle(running)[0]["text/plain"]
    assert "local/countdown" in text and "http://127.0.0.1:1/api/v1/data/j1" in text


def test_secrets_never_reach_the_bundle_or_metadata(monkeypatch):
    monkeypatch.setenv("TEAM_API_KEY", "sk-live-1234567890")
    d.register_secret("my-registered-secret")
    r = ok("key sk-live-1234567890 and my-registered-secret", usage={"token": "sk-live-1234567890"})
    prov = d.Provenance("m", parameters={"api_key": "whatever", "Authorization": "Token x", "top_k": 3})
    data, meta = d.response_bundle(r, prov)
    dumped = json.dumps([data, meta])
    assert "sk-live-1234567890" not in dumped and "my-registered-secret" not in dumped
    assert "whatever" not in dumped and "Token x" not in dumped
    assert meta["aix_jupyter"]["parameters"] == {"api_key": "***", "Authorization": "***", "top_k": 3}


def test_response_view_include_exclude_and_repr():
    view = d.ResponseView(ok("hello"), d.Provenance("m"))
    data, meta = view._repr_mimebundle_(include=["text/plain"])
    assert data == {"text/plain": "hello"} and meta["aix_jupyter"]["model_id"] == "m"
    assert "text/plain" not in view._repr_mimebundle_(exclude=["text/plain"])[0]
    assert repr(view) == "hello"


def test_display_hook_shows_a_response_as_one_display_output(ip, cell):
    ip.user_ns["r"] = ok({"label": "NEUTRAL"})
    d.remember(ip.user_ns["r"], d.Provenance("local/sentiment-vader"))
    out = cell("r")
    assert out.error is None and out.result is ip.user_ns["r"]
    assert len(out.outputs) == 1
    assert out.outputs[0].data["application/json"] == {"label": "NEUTRAL"}
    assert out.outputs[0].metadata["aix_jupyter"]["model_id"] == "local/sentiment-vader"
    assert ip.user_ns["_"] is ip.user_ns["r"]  # the value is still the result
    ip.run_line_magic("unload_ext", "aix_jupyter")
    try:
        plain = cell("r")
        assert plain.outputs == [] or "application/json" not in plain.outputs[0].data
    finally:
        ip.run_line_magic("load_ext", "aix_jupyter")


def test_stream_view_live_updates_one_output_and_ends_with_the_bundle(ip, cell, monkeypatch):
    monkeypatch.setattr(d, "_MIN_UPDATE_INTERVAL", 0.0)
    ip.user_ns["d"] = d
    ip.user_ns["final"] = ok("Hello world")
    out = cell(
        "v = d.StreamView('local/llm', mode='live')\n"
        "v.start()\n"
        "for piece in ['Hello', ' world']:\n"
        "    v.chunk(piece)\n"
        "v.finish(final, d.Provenance('local/llm', streamed=True))\n"
        "final"
    )
    assert out.error is None
    ids = {o.transient["display_id"] for o in out.outputs}
    assert len(ids) == 1  # one output, updated in place
    assert [o.update for o in out.outputs] == [False, True, True, True]
    assert [o.data["text/plain"] for o in out.outputs[1:3]] == ["Hello", "Hello world"]
    last = out.outputs[-1]
    assert last.data == {"text/plain": "Hello world", "text/markdown": "Hello world"}
    assert last.metadata["aix_jupyter"]["streamed"] is True
    # the response returned by the cell adds no second output
    assert cell("final").outputs[0].data["text/plain"] == "Hello world"  # ...but a later cell shows it


def test_stream_view_terminal_writes_chunks_and_headless_shows_only_the_end():
    written: list[str] = []
    view = d.StreamView("m", mode="terminal", write=written.append)
    view.start()
    view.chunk("a")
    view.chunk("b")
    view.finish(ok("ab"))
    assert written == ["a", "b", "\n"]
    quiet = d.StreamView("m", mode="headless", write=written.append)
    quiet.start()
    quiet.chunk("zzz")
    quiet.finish(ok("zzz"))
    assert written == ["a", "b", "\n"] and quiet.text == "zzz"


def test_stream_view_follows_the_frontend(ip, monkeypatch):
    assert d.StreamView("m").mode == "terminal"  # no kernel
    monkeypatch.setenv("AIX_FRONTEND", "headless")
    assert d.StreamView("m").mode == "headless"


def test_table_and_card_render_text_and_html():
    table = d.Table(["id", "name"], [["local/a", "<A>"], ["local/bb", None]], note="2 models")
    bundle = table._repr_mimebundle_()
    assert bundle["text/plain"].splitlines() == [
        "id        name",
        "--------  ----",
        "local/a   <A>",
        "local/bb",
        "2 models",
    ]
    assert "<td>&lt;A&gt;</td>" in bundle["text/html"]
    card = d.Card("Model", [("id", "local/a")], [("Parameters", ["--x (number)"])])
    text = card._repr_mimebundle_()["text/plain"]
    assert text.splitlines()[:3] == ["Model", "=====", "id  local/a"] and "  --x (number)" in text


def test_markdown_keeps_line_breaks_outside_code_fences():
    text = "Roses are red\nViolets are blue\n\nNew paragraph\n```\ncode line\nmore code\n```\nend"
    data, _ = d.response_bundle(ok(text))
    assert data["text/plain"] == text
    assert data["text/markdown"] == (
        "Roses are red  \nViolets are blue\n\nNew paragraph  \n```\ncode line\nmore code\n```\nend"
    )


def test_running_poll_reply_says_running_with_progress():
    r = ModelResponse(ResponseStatus.IN_PROGRESS, completed=False, progress=0.4, eta=3.2)
    data, _ = d.response_bundle(r, d.Provenance("local/countdown"))
    assert data["text/plain"] == "local/countdown: running (40% done, about 3 s left)"
    started = ModelResponse(ResponseStatus.IN_PROGRESS, data="http://h/p/1", url="http://h/p/1")
    assert d.response_bundle(started, d.Provenance("local/x"))[0]["text/plain"] == (
        "local/x: running; poll URL http://h/p/1"
    )
