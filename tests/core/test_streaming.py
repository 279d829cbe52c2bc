"""The SSE decoder and ModelResponseStreamer on their own."""

from __future__ import annotations

from aix_jupyter import ModelResponseStreamer, ResponseStatus
from aix_jupyter.core.streaming import SSEDecoder, parse_payload


def test_decoder_rules():
    d = SSEDecoder()
    assert d.feed(b"data: a\n\ndata:b\n\n: comment\n\nevent: x\nid: 1\ndata: c\ndata: d\n\n") == [
        b"a",
        b"b",
        b"c\nd",
    ]
    assert d.feed(b"data: par") == [] and d.feed(b"tial\r") == [] and d.feed(b"\n\r\n") == [b"partial"]
    assert d.feed(b"data: tail") == [] and d.flush() == [b"tail"]


def test_payload_parsing():
    assert parse_payload(b'{"data": "x"}') == (0, "x")
    assert parse_payload(b'{"data": {"text": "t"}}') == (0, "t")
    assert parse_payload(b'{"data": {"output": "o"}}') == (0, "o")
    assert parse_payload(b"[DONE]") == (1, None)
    assert parse_payload(b"not json") == (0, "not json")
    assert parse_payload(b'{"error": "e"}') == (2, "e")


def test_sdk_style_constructor_from_lines():
    lines = iter(['data: {"data": "a"}', "", 'data: {"data": "data: b"}', "", "data: [DONE]", ""])
    streamer = ModelResponseStreamer(lines)
    chunks = list(streamer)
    assert [c.data for c in chunks] == ["a", "data: b", ""]  # no empty chunk per blank line
    assert streamer.status is ResponseStatus.SUCCESS and streamer.text == "adata: b"


def test_sdk_style_lines_need_no_blank_line_between_them():
    lines = iter(['data: {"data": "a"}', 'data: {"data": {"text": "b"}}', "data: plain", "data: [DONE]"])
    streamer = ModelResponseStreamer(lines)
    assert [c.data for c in streamer] == ["a", "b", "plain", ""]  # one chunk a line, as the SDK
    assert streamer.status is ResponseStatus.SUCCESS


def test_events_for_chunks_and_the_end():
    events = []
    lines = iter(['data: {"data": "a"}', "", "data: [DONE]", ""])
    list(ModelResponseStreamer(lines, on_event=events.append, model_id="m"))
    assert [e.kind for e in events] == ["chunk", "finished"]
    assert events[0].chunk == "a" and events[1].response.data == "a"
