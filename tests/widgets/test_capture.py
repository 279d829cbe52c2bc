"""MediaCapture's kernel side: chunks reassembled, the size limit, bad messages, the value handed to the
form (and Run held while it is on its way), and nothing of the configuration in the widget state.

The messages are those ``capture.js`` sends, delivered through the widget's real comm handler; what
the kernel answers is recorded on a comm (``RecordingComm``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import comm
import ipywidgets as w
import pytest

from aix_jupyter import ModelWidget
from aix_jupyter.core.errors import ParameterError
from aix_jupyter.core.model import Model
from aix_jupyter.core.parameters import ModelParameters
from aix_jupyter.widgets.capture import CHUNK_SIZE, DEFAULT_MAX_BYTES, ChunkAssembler, MediaCapture
from aix_jupyter.widgets.form import ParameterForm
from tests.widgets.capture_messages import begin, chunks, deliver, message

KEY = "sk-capture-secret-0123456789abcdef"


class RecordingComm(comm.DummyComm):
    sent: list[dict] = []

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        RecordingComm.sent.append(data or {})


@pytest.fixture
def sent(monkeypatch):
    RecordingComm.sent = []
    monkeypatch.setattr(comm, "create_comm", lambda *a, **kw: RecordingComm(*a, **kw))
    return RecordingComm.sent


def replies(sent: list[dict]) -> list[dict]:
    """The kernel's custom messages to the browser (acks, done, errors)."""
    return [d["content"] for d in sent if d.get("method") == "custom"]


@pytest.fixture
def capture(sent):
    widget = MediaCapture("audio", max_bytes=2 * 2**20, label="parameter 'audio'")
    received: list[Path] = []
    widget.on_file(received.append)
    widget.received = received
    yield widget
    widget.close()


def test_chunks_are_reassembled_into_a_temporary_file(capture, sent):
    data = os.urandom(4 * CHUNK_SIZE + 5)  # five chunks, the last one 5 bytes
    deliver(capture, data, name="clip.wav", mime="audio/wav")
    (path,) = capture.received
    assert path.name == "clip.wav" and path.parent.name.startswith("aix-upload-")
    assert path.read_bytes() == data
    answers = replies(sent)
    assert [a["index"] for a in answers if a["type"] == "ack"] == [0, 1, 2, 3, 4]
    assert answers[-1] == {"type": "done", "id": "t1", "name": "clip.wav", "size": len(data)}
    assert not capture.receiving and capture.error == ""
    capture.close()
    assert not path.exists()  # the widget's files go with it


@pytest.mark.parametrize("size", [1, CHUNK_SIZE, 2 * CHUNK_SIZE])
def test_sizes_at_chunk_boundaries(capture, size):
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    deliver(capture, data, name="a.wav", mime="audio/wav")
    assert capture.received[-1].read_bytes() == data


def test_over_the_limit_is_refused_with_one_line_and_nothing_is_kept(capture, sent):
    begin(capture, bytes(2 * 2**20 + 1), name="long.wav", mime="audio/wav")
    assert capture.error == (
        "parameter 'audio': long.wav is 2.0 MB, over the 2.0 MB limit; nothing was received"
    )
    assert "\n" not in capture.error and not capture.receiving
    assert replies(sent)[-1] == {"type": "error", "id": "t1", "message": capture.error}
    chunks(capture, bytes(CHUNK_SIZE))  # chunks that come anyway are refused, not stored
    assert capture.received == [] and capture.assembler.current is None


def test_the_limit_reaches_the_browser_from_model_widget():
    schema = ModelParameters([{"name": "audio", "dataType": "audio", "required": True}])
    widget = ModelWidget(Model("local/ears", model_params=schema), max_media_mb=1.5)
    try:
        capture = widget.form.controls["audio"].capture
        assert capture.get_state()["max_bytes"] == int(1.5 * 2**20)
        assert (
            ModelWidget(Model("local/ears", model_params=schema)).form.controls["audio"].capture.max_bytes
            == DEFAULT_MAX_BYTES
        )
    finally:
        widget.close()
    for bad in (0, -1, float("nan"), "25", True):
        with pytest.raises(ParameterError, match="max_media_mb must be a positive number"):
            ModelWidget(Model("local/ears", model_params=schema), max_media_mb=bad)


BAD = [
    ("not an object", ["begin"], "a message that is not an object was ignored"),
    ({"type": "launch", "id": "t1"}, [], "unknown message type 'launch'"),
    ({"type": "chunk", "id": "t1", "index": 0}, [b"x"], "a chunk message for no transfer under way"),
    ({"type": "end", "id": "t1"}, [], "a end message for no transfer under way"),
    ({"type": "begin", "id": "", "name": "a.wav", "size": 3, "chunks": 1}, [], "a transfer without an id"),
    ({"type": "begin", "id": "t1", "name": "a.wav", "size": -3, "chunks": 1}, [], "a.wav has no valid size"),
    ({"type": "begin", "id": "t1", "name": "a.wav", "size": "3", "chunks": 1}, [], "has no valid size ('3')"),
    ({"type": "begin", "id": "t1", "name": "a.wav", "size": 3, "chunks": 2}, [], "2 chunks announced for 3"),
    (
        {"type": "begin", "id": "t1", "name": "notes.txt", "mime": "text/plain", "size": 3, "chunks": 1},
        [],
        "notes.txt is not a audio file (text/plain)",
    ),
]


@pytest.mark.parametrize(("content", "buffers", "expected"), BAD)
def test_a_bad_message_is_refused_in_one_line_and_the_next_transfer_works(
    capture, content, buffers, expected
):
    message(capture, content, buffers)
    assert expected in capture.error and "\n" not in capture.error
    assert capture.received == [] and not capture.receiving
    deliver(capture, b"RIFF....", name="ok.wav", mime="audio/wav", ident="t2")
    assert capture.received[0].read_bytes() == b"RIFF...." and capture.error == ""


def test_chunks_out_of_order_wrong_size_or_missing_drop_the_transfer(capture):
    data = os.urandom(2 * CHUNK_SIZE + 10)
    begin(capture, data, name="a.wav", mime="audio/wav")
    message(capture, {"type": "chunk", "id": "t1", "index": 1}, [data[CHUNK_SIZE : 2 * CHUNK_SIZE]])
    assert capture.error.endswith("a.wav: chunk 1 arrived, expected chunk 0")
    assert capture.assembler.current is None
    begin(capture, data, name="a.wav", mime="audio/wav")
    message(capture, {"type": "chunk", "id": "t1", "index": 0}, [data[:100]])
    assert capture.error.endswith(f"a.wav: chunk 0 holds 100 bytes, expected {CHUNK_SIZE}")
    begin(capture, data, name="a.wav", mime="audio/wav")
    message(capture, {"type": "chunk", "id": "t1", "index": 0}, [])
    assert capture.error.endswith("a.wav: chunk 0 carries 0 buffers, expected 1")
    begin(capture, data, name="a.wav", mime="audio/wav")
    message(capture, {"type": "chunk", "id": "t1", "index": 0}, [data[:CHUNK_SIZE]])
    message(capture, {"type": "end", "id": "t1"})
    assert capture.error.endswith("a.wav: ended after 1 of 3 chunks; send it again")
    assert capture.received == [] and not capture.receiving
    # a stale chunk of an earlier transfer is refused; the one under way goes on
    begin(capture, data, name="a.wav", mime="audio/wav")
    message(capture, {"type": "chunk", "id": "earlier", "index": 0}, [data[:CHUNK_SIZE]])
    assert "a chunk message for no transfer under way" in capture.error and capture.receiving
    chunks(capture, data)
    message(capture, {"type": "end", "id": "t1"})
    assert capture.received[0].read_bytes() == data and not capture.receiving


def test_a_newer_transfer_replaces_one_under_way_and_abort_drops_it(capture):
    begin(capture, b"old bytes", name="old.wav", mime="audio/wav", ident="old")
    assert capture.receiving
    deliver(capture, b"new bytes", name="new.wav", mime="audio/wav", ident="new")
    assert [p.name for p in capture.received] == ["new.wav"]
    begin(capture, b"xyz", name="x.wav", mime="audio/wav", ident="x")
    message(capture, {"type": "abort", "id": "x"})
    assert not capture.receiving and capture.assembler.current is None


@pytest.mark.parametrize(
    ("sent_name", "kept"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\temp\\clip.wav", "clip.wav"),
        ("", "recording.wav"),
        ("..", "recording.wav"),
        ("a<b>|c.wav", "a_b_c.wav"),
    ],
)
def test_the_browser_s_file_name_is_reduced_to_a_safe_base_name(capture, sent_name, kept):
    deliver(capture, b"RIFF", name=sent_name, mime="audio/wav")
    (path,) = capture.received
    assert path.name == kept and path.parent.name.startswith("aix-upload-")


AUDIO_SCHEMA = [
    {"name": "audio", "dataType": "audio", "required": True},
    {"name": "language", "dataType": "text", "defaultValues": ["en"]},
]


def test_the_file_becomes_the_value_and_run_waits_while_it_arrives(sent, tmp_path):
    widget = ModelWidget(Model("local/ears", model_params=ModelParameters(AUDIO_SCHEMA)))
    try:
        control = widget.form.controls["audio"]
        capture = control.capture
        assert widget.run_button.disabled and "missing required parameter 'audio'" in widget.errors["audio"]
        data = os.urandom(CHUNK_SIZE + 1)
        begin(capture, data, name="take.wav", mime="audio/wav")
        assert widget.run_button.disabled
        assert widget.errors["audio"] == ("parameter 'audio': take.wav is still arriving; wait for it")
        chunks(capture, data)
        assert widget.run_button.disabled and "take.wav is still arriving" in widget.errors["audio"]
        message(capture, {"type": "end", "id": "t1"})
        assert not widget.run_button.disabled and widget.errors == {}
        path = control.input.value
        assert Path(path).read_bytes() == data and control.touched
        assert widget.form.request() == (path, {"language": "en"})
        # a path typed while a file is on its way wins: the transfer is dropped, Run follows the field
        begin(capture, data, name="late.wav", mime="audio/wav", ident="late")
        assert widget.run_button.disabled
        typed = tmp_path / "typed.wav"
        typed.write_bytes(b"RIFF")
        control.input.value = str(typed)
        assert not capture.receiving and not widget.run_button.disabled
        assert replies(sent)[-1]["type"] == "error" and replies(sent)[-1]["id"] == "late"
        chunks(capture, data, ident="late")  # what still comes is refused
        assert control.input.value == str(typed) and widget.form.request()[0] == str(typed)
    finally:
        widget.close()


def test_each_media_kind_gets_its_controls():
    schema = ModelParameters(
        [{"name": n, "dataType": n} for n in ("audio", "image", "video", "file")]
        + [{"name": "t", "dataType": "text"}]
    )
    form = ParameterForm(schema, max_media_bytes=3 * 2**20)
    states = {name: c.capture.get_state() for name, c in form.controls.items() if c.capture is not None}
    assert {n: (s["kind"], s["accept"], s["max_bytes"]) for n, s in states.items()} == {
        "audio": ("audio", "audio/*", 3 * 2**20),
        "image": ("image", "image/*", 3 * 2**20),
        "video": ("video", "video/*", 3 * 2**20),
        "file": ("file", "", 3 * 2**20),
    }
    assert form.controls["t"].capture is None
    for bad in (0, -5, 2.5, True):
        with pytest.raises(ParameterError, match="max_bytes must be a positive number of bytes"):
            MediaCapture("audio", max_bytes=bad)


def _all_states(root: w.Widget) -> str:
    """Every state of ``root`` and the widgets inside it (children, layouts, styles)."""
    states, stack, seen = [], [root], set()
    while stack:
        widget = stack.pop()
        if id(widget) in seen:
            continue
        seen.add(id(widget))
        states.append(widget.get_state())
        for name in widget.keys:
            value = getattr(widget, name, None)
            values = value if isinstance(value, list | tuple) else [value]
            stack.extend(v for v in values if isinstance(v, w.Widget))
    return json.dumps(states, default=str)


def test_no_key_or_configuration_in_any_widget_state_or_message(sent, monkeypatch):
    monkeypatch.setenv("TEAM_API_KEY", KEY)
    monkeypatch.setenv("AIX_BACKEND_URL", "http://127.0.0.1:9/private-endpoint")
    model = Model("local/ears", model_params=ModelParameters(AUDIO_SCHEMA), api_key=KEY)
    widget = ModelWidget(model)
    try:
        capture = widget.form.controls["audio"].capture
        assert set(capture.keys) >= {"kind", "accept", "max_bytes", "chunk_size", "sample_rate"}
        deliver(capture, b"RIFF0000", name="k.wav", mime="audio/wav")
        begin(capture, bytes(40 * 2**20), name="big.wav", mime="audio/wav")
        everything = _all_states(widget) + json.dumps(sent, default=str)  # (sent: every comm open too)
        assert '"kind": "audio"' in everything
        assert KEY not in everything and "private-endpoint" not in everything
        assert "big.wav is 40.0 MB, over the 25.0 MB limit" in everything  # the check is not vacuous
    finally:
        widget.close()


def test_the_assembler_alone_raises_parameter_errors():
    assembler = ChunkAssembler(max_bytes=10, chunk_size=4, kind="image", label="parameter 'image'")
    with pytest.raises(
        ParameterError,
        match=r"^parameter 'image': big.png is 11 bytes, over the 10 bytes limit; nothing was received$",
    ):
        assembler.begin({"id": "a", "name": "big.png", "mime": "image/png", "size": 11, "chunks": 3})
    assembler.begin({"id": "a", "name": "s.png", "mime": "image/png", "size": 6, "chunks": 2})
    assert assembler.chunk({"id": "a", "index": 0}, [b"abcd"]) == 0
    assert assembler.progress == "s.png is still arriving"
    assembler.chunk({"id": "a", "index": 1}, [bytearray(b"ef")])
    received = assembler.end({"id": "a"})
    assert (received.name, received.mime, received.data) == ("s.png", "image/png", b"abcdef")
    assert assembler.progress == ""


def test_files_left_behind_go_when_the_process_exits(tmp_path):
    """A widget never closed (the kernel shut down): its temporary files go when the process exits."""
    script = (
        "from aix_jupyter.widgets.capture import MediaCapture\n"
        "from tests.widgets.capture_messages import deliver\n"
        "c = MediaCapture('image')\n"
        "c.on_file(print)\n"
        "deliver(c, b'\\x89PNG', name='left.png', mime='image/png')\n"
    )
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=root)
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert path.name == "left.png" and path.parent.name.startswith("aix-upload-")
    assert not path.parent.exists()
