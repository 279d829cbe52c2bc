"""ModelWidget driven from Python against the embedded backend's real models (no mocks).

Every comm message the widgets would send to a frontend is recorded (``RecordingComm``), which is
how the stream view's coalescing is checked.
"""

from __future__ import annotations

import json
import threading
import time

import comm
import pytest

from aix_jupyter import ModelWidget
from aix_jupyter.backend.registry import register_model, unregister_model
from aix_jupyter.core.enums import ResponseStatus
from aix_jupyter.core.errors import AixError, ParameterError

WORDS = 1000


class RecordingComm(comm.DummyComm):
    sent: list[tuple[float, str, dict]] = []

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        RecordingComm.sent.append((time.monotonic(), self.comm_id, data or {}))


@pytest.fixture
def comms(monkeypatch):
    RecordingComm.sent = []
    monkeypatch.setattr(comm, "create_comm", lambda *a, **kw: RecordingComm(*a, **kw))
    return RecordingComm.sent


@pytest.fixture(scope="module")
def words_model():
    def words(text: str, count: int = WORDS, delay: float = 0.002):
        """Streams numbered words, fast."""
        for i in range(count):
            time.sleep(delay)
            yield f"{text}{i} "

    register_model(words, id="local/test-words")
    yield "local/test-words"
    unregister_model("local/test-words")


def wait_until(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_run_fills_response_history_progress_and_result():
    w = ModelWidget("local/sentiment-vader")
    assert repr(w) == "ModelWidget(model='local/sentiment-vader')"
    assert w.run_button.disabled and w.errors == {"data": "missing required parameter 'data'"}
    assert "Stream" not in [b.description for b in w.buttons.children]  # this model does not stream
    w.set(data="What a lovely, wonderful day!")
    assert not w.run_button.disabled
    response = w.run()
    assert response.status is ResponseStatus.SUCCESS and response.data == "POSITIVE"
    assert w.response is response and w.history == [response]
    assert (w.progress.state, w.progress.bar.value, w.progress.bar.bar_style) == ("finished", 1.0, "success")
    (output,) = w.result.outputs
    assert output["data"]["text/plain"] == "POSITIVE"
    assert output["metadata"]["aix_jupyter"]["parameters"] == {"threshold": 0.05}
    assert "SUCCESS" in w.meta.value and "credits 0" in w.meta.value
    assert w.raw.value == ""  # the raw response is sent to the browser only when its section opens
    w.raw_box.selected_index = 0
    assert "&quot;POSITIVE&quot;" in w.raw.value or '"POSITIVE"' in w.raw.value
    assert not w.running and not w.run_button.disabled and w.cancel_button.disabled
    second = w.run(data="This is terrible and I hate it.", threshold=0.1)
    assert second.data == "NEGATIVE" and w.history == [response, second] and w.response is second
    w.clear()
    assert w.result.outputs == () and w.meta.value == "" and w.progress.state == "waiting"
    assert w.history == [response, second]  # clearing the view keeps the history


def test_run_does_not_block_and_one_run_at_a_time():
    w = ModelWidget("local/countdown")
    future = w.run(wait=False, seconds=1.0, data="done")
    assert not future.done() and w.running
    assert w.run_button.disabled and not w.cancel_button.disabled
    with pytest.raises(AixError, match="a run of this widget is in progress"):
        w.run(wait=False)
    # the kernel's thread is free meanwhile: widget state keeps moving while we do other work
    wait_until(lambda: w.progress.state == "running")
    assert future.result(timeout=30).data == "done"
    assert w.wait() is w.response


def test_cancel_stops_the_run_on_the_server():
    w = ModelWidget("local/countdown")
    future = w.run(wait=False, seconds=60)
    wait_until(lambda: w.progress.poll_url is not None)
    started = time.monotonic()
    assert w.cancel() is True
    response = future.result(timeout=15)
    assert time.monotonic() - started < 10
    assert response.status is ResponseStatus.FAILED and "cancelled" in response.error_message.lower()
    assert (w.progress.state, w.progress.bar.bar_style) == ("cancelled", "warning")
    assert w.progress.label.value.startswith("cancelled")
    # the status line reads "cancelled", never FAILED (that stays the SDK's response.status)
    assert ">cancelled</span>" in w.meta.value and "FAILED" not in w.meta.value
    assert w.result.outputs == ()  # no "FAILED: Run cancelled." result
    assert w.cancel() is False  # nothing runs any more
    # the server's job is over too (a poll answers with the cancellation, not "still running")
    polled = w.model.poll(w.progress.poll_url)
    assert polled.status is ResponseStatus.FAILED


def test_failed_run_is_shown_in_red():
    w = ModelWidget("local/countdown")
    response = w.run(seconds=0.1, fail=True)
    assert response.status is ResponseStatus.FAILED
    assert "failed on request" in response.error_message
    assert (w.progress.state, w.progress.bar.bar_style) == ("failed", "danger")
    assert w.result.outputs[0]["data"]["text/plain"].startswith("FAILED: ")
    assert "aix-failed" in w.meta.value


def test_invalid_form_blocks_run_with_the_cores_message():
    w = ModelWidget("local/keywords-yake")
    w.form.controls["data"].input.value = "Jupyter widgets render model parameters as controls."
    assert not w.run_button.disabled
    w.form.controls["max_keywords"].input.value = 5
    with pytest.raises(ParameterError, match="parameter 'language' must be one of"):
        w.set(language="xx")
    response = w.run(max_keywords=3)
    assert len(response.data) == 3


def test_stream_grows_coalesced_append_only_and_ends_with_the_exact_text(comms, words_model, monkeypatch):
    monkeypatch.setenv("AIX_FRONTEND", "live")  # what a person watching JupyterLab gets
    w = ModelWidget(words_model)
    assert "Stream" in [b.description for b in w.buttons.children]
    view_id = w.stream_view.comm.comm_id
    w.set(text="w")
    started = time.monotonic()
    response = w.stream()
    elapsed = time.monotonic() - started
    expected = "".join(f"w{i} " for i in range(WORDS))
    assert response.status is ResponseStatus.SUCCESS
    assert response.data == expected == w.text == w.stream_view.value
    assert w.progress.chunks == WORDS and w.progress.state == "finished"
    run = [(t, cid, data) for t, cid, data in comms if started <= t]
    updates = [(t, data) for t, _, data in run if data.get("method") == "update"]
    view = [(t, data) for t, cid, data in run if cid == view_id]
    paints = [(t, d["content"]["append"]) for t, d in view if d.get("method") == "custom"]
    # append-only: the pieces sent add up to the exact text, and the whole text is never sent again
    assert "".join(piece for _, piece in paints) == expected
    states = [d["state"] for _, d in view if d.get("method") == "update"]
    assert all(len(state.get("value", "")) == 0 for state in states), states
    assert states[-1] == {"markdown": True}  # the end: rendered as Markdown in place, one small message
    assert w.result.outputs == ()  # the text is not repeated below the stream view
    view_bytes = sum(len(json.dumps(d)) for _, d in view)
    assert view_bytes <= len(expected) + 120 * len(view), (view_bytes, len(expected), len(view))
    # repaints: at most one per stream_interval (plus the final one), far fewer than the chunks
    assert 3 <= len(paints) <= elapsed / w.stream_interval + 2
    # every message to the frontend while the text streams (first to last repaint): about 10
    # repaints and 2-3 progress updates a second, however fast the chunks come
    first, last = paints[0][0], paints[-2][0]
    steady = [t for t, _ in updates if first <= t <= last] + [t for t, _ in paints if first <= t <= last]
    rate = len(steady) / max(last - first, 1e-9)
    print(f"\n{len(steady)} messages in {last - first:.2f} s while streaming = {rate:.1f}/s ({WORDS} chunks)")
    print(f"stream view: {view_bytes} bytes for {len(expected)} characters of text")
    assert len(steady) <= (last - first) * 20 + 2
    assert len(updates) + len(paints) <= elapsed * 20 + 25


def test_stream_without_a_live_frontend_syncs_the_whole_text_once(comms, words_model):
    """nbclient saves the widget state it saw in trait updates: it gets the whole text at the end."""
    w = ModelWidget(words_model)
    view_id = w.stream_view.comm.comm_id
    response = w.stream(text="q", count=50, delay=0.0)
    values = [d["state"]["value"] for _, cid, d in comms if cid == view_id and "value" in d.get("state", {})]
    assert values[-1] == response.data == "".join(f"q{i} " for i in range(50))
    assert [v for v in values if v] == [response.data]  # once, at the end


def test_stream_can_be_cancelled(words_model):
    w = ModelWidget(words_model)
    future = w.stream(wait=False, text="x", count=100000, delay=0.001)
    wait_until(lambda: w.progress.chunks > 20)
    w.cancel()
    response = future.result(timeout=15)
    assert response.status is ResponseStatus.FAILED and "cancelled" in response.error_message.lower()
    assert w.progress.state == "cancelled"
    assert w.text.startswith("x0 x1 x2 ") and len(w.text) < len("x0 ") * 100000
    # what arrived stays in view, as plain text; the status line says cancelled
    assert w.stream_view.value == w.text and not w.stream_view.markdown
    assert w.stream_view.layout.display == "" and ">cancelled</span>" in w.meta.value


def test_buttons_follow_the_run_in_flight():
    w = ModelWidget("local/countdown")
    buttons = lambda: tuple(b.disabled for b in (w.run_button, w.cancel_button, w.clear_button))  # noqa: E731
    assert buttons() == (False, True, False)  # idle: Run and Clear, nothing to cancel
    future = w.run(wait=False, seconds=60)
    assert buttons() == (True, False, True)  # in flight: only Cancel
    w.form.controls["seconds"].input.value = 5  # editing the form meanwhile enables nothing
    assert buttons() == (True, False, True)
    wait_until(lambda: w.progress.poll_url is not None)
    w.cancel_button.click()
    assert buttons() == (True, True, True)  # cancel asked: no second cancel, no new run yet
    w.form.controls["seconds"].input.value = 6
    assert buttons() == (True, True, True)
    future.result(timeout=15)
    assert buttons() == (False, True, False)  # over: Run again, nothing to cancel


def test_buttons_drive_the_same_runs():
    w = ModelWidget("local/langid-langdetect")
    w.set(data="Ceci est une phrase écrite en français.")
    done = threading.Event()
    w.progress.add_listener(lambda e: e.terminal and done.set())
    w.run_button.click()  # what a frontend click does
    assert done.wait(20)
    wait_until(lambda: not w.running)
    assert w.response.data == "fr"
    w.clear_button.click()
    assert w.result.outputs == ()


def test_bad_run_click_shows_the_error_instead_of_raising():
    w = ModelWidget("local/sentiment-vader")
    w.run_button.click()  # the form is not valid; a click must not raise into the comm handler
    assert "missing required parameter 'data'" in w.meta.value
    assert w.response is None and not w.running


@pytest.mark.llm
@pytest.mark.slow
def test_stream_the_local_llm():
    w = ModelWidget("local/smollm2-135m")
    response = w.stream(data="Say hello.", max_tokens=12, seed=1, temperature=0)
    assert response.status is ResponseStatus.SUCCESS and response.data and response.data == w.text
    assert w.progress.chunks >= 2


def test_close_releases_every_inner_widget():
    w = ModelWidget("local/sentiment-vader")
    inner = [w.form.controls["data"].input, w.progress.bar, w.result, w.run_button]
    assert all(x.comm is not None for x in inner)
    w.close()
    assert all(x.comm is None for x in inner) and w.comm is None


def test_unknown_model_fails_in_init_and_is_collected_cleanly():
    import gc
    import sys

    unraisable: list[object] = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        with pytest.raises(AixError, match="no-such-model"):
            ModelWidget("local/no-such-model")
        gc.collect()
    finally:
        sys.unraisablehook = old_hook
    assert unraisable == []


def test_a_secret_echoed_in_a_stream_never_reaches_the_stream_view(comms, words_model, monkeypatch):
    from aix_jupyter import display as aix_display

    secret = "sk-widget-secret-0123456789"
    monkeypatch.setattr(aix_display, "_secrets", {secret})
    w = ModelWidget(words_model)
    view_id = w.stream_view.comm.comm_id
    response = w.stream(text=secret, count=3, delay=0.0)
    assert response.data == "".join(f"{secret}{i} " for i in range(3))  # the Python object keeps it
    assert w.stream_view.value == "***0 ***1 ***2 "
    assert all(secret not in repr(data) for _, cid, data in comms if cid == view_id)
