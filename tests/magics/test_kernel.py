"""The magics inside a real ipykernel, as a headless executor (nbclient, nbval) and a live frontend see them.

Headless executors send ``allow_stdin: false`` and ignore in-place display updates, so there a
stream shows nothing until it ends and then exactly one ``display_data``; an interactive frontend
(``allow_stdin: true``) gets one display updated in place whose last state is that same bundle.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

ROOT = Path(__file__).resolve().parents[2]
STREAM = "%aix stream local/typewriter --delay 0.05 one two three four five six"
LLM_STREAM = "%aix stream local/smollm2-135m --max_tokens 8 --temperature 0 Say hi"


def kernel_with_aix(setup: str = ""):
    """A fresh ipykernel of this environment with the extension loaded (no key, no server URL from
    the environment, so runs go to the embedded backend), then ``setup`` run; shut down after."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TEAM_API_KEY": "", "AIXPLAIN_API_KEY": ""}
    for name in ("AIX_FRONTEND", "AIX_BACKEND_URL", "MODELS_RUN_URL", "BACKEND_URL"):
        env.pop(name, None)
    km, kc = start_new_kernel(kernel_name="python3", env=env)
    try:
        run(kc, "%load_ext aix_jupyter", allow_stdin=False)
        if setup:
            run(kc, setup, allow_stdin=False)
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.fixture(scope="module")
def kernel():
    yield from kernel_with_aix()


def run(kc, code, *, allow_stdin, ok=True):
    msgs: list[dict] = []
    reply = kc.execute_interactive(
        code, allow_stdin=allow_stdin, output_hook=msgs.append, stdin_hook=lambda m: None, timeout=120
    )
    if ok:
        assert reply["content"]["status"] == "ok", reply["content"]
    return reply, msgs


def of(msgs, *kinds):
    return [m for m in msgs if m["msg_type"] in kinds]


def stream_text(msgs, name):
    return "".join(m["content"]["text"] for m in of(msgs, "stream") if m["content"]["name"] == name)


@pytest.mark.slow
def test_run_shows_one_display_with_provenance_and_no_execute_result(kernel):
    _, kc = kernel
    _, msgs = run(kc, "%aix run local/sentiment-vader I love it", allow_stdin=False)
    shown = of(msgs, "display_data")
    assert len(shown) == 1 and not of(msgs, "execute_result", "update_display_data")
    content = shown[0]["content"]
    assert content["data"]["text/plain"] == "POSITIVE"
    assert content["metadata"]["aix_jupyter"]["model_id"] == "local/sentiment-vader"
    assert stream_text(msgs, "stderr").startswith("[aix] local/sentiment-vader finished (")
    _, msgs = run(kc, "_.data", allow_stdin=False)  # the magic's value is the ModelResponse
    assert of(msgs, "execute_result")[0]["content"]["data"]["text/plain"] == "'POSITIVE'"


@pytest.mark.slow
def test_user_error_is_one_line_and_stops_execution(kernel):
    _, kc = kernel
    reply, msgs = run(kc, "%aix run local/sentiment-vader --threshold 5 x", allow_stdin=False, ok=False)
    assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "ParameterError"
    (error,) = of(msgs, "error")
    assert len(error["content"]["traceback"]) == 1 and "threshold" in error["content"]["traceback"][0]
    assert not of(msgs, "display_data", "execute_result")


# Prints POLLED once the magic's run has polled its job and waits for the next poll (the main
# thread is in the core's sleep_until): the signal to interrupt the kernel, at a known point.
SIGNAL_ON_POLL = """
import sys as _sys, threading as _threading, time as _time
m = get_ipython().magics_manager.registry['AixMagics']
_hook = type(m)._hook
_main = _threading.main_thread().ident

def _when_waiting():
    while True:
        frame = _sys._current_frames().get(_main)
        while frame is not None and frame.f_code.co_name != "sleep_until":
            frame = frame.f_back
        if frame is not None:
            print("POLLED", flush=True)
            return
        _time.sleep(0.002)  # checking a condition, not waiting for time to pass

def _signalling_hook(model_id, progress):
    inner = _hook(m, model_id, progress)
    def on_event(event):
        inner(event)
        if event.kind == "polled" and not getattr(m, "_signalled", False):
            m._signalled = True
            _threading.Thread(target=_when_waiting, daemon=True).start()
    return on_event
m._hook = _signalling_hook
"""


@pytest.mark.slow
def test_kernel_interrupt_cancels_the_run(kernel):
    km, kc = kernel
    run(kc, SIGNAL_ON_POLL, allow_stdin=False)
    msgs: list[dict] = []

    def on_output(msg: dict) -> None:  # interrupt once the job runs on the server and was polled
        msgs.append(msg)
        if msg["msg_type"] == "stream" and "POLLED" in msg["content"]["text"]:
            km.interrupt_kernel()

    started = time.monotonic()
    reply = kc.execute_interactive(
        "%aix run local/countdown --seconds 60 never", allow_stdin=False, output_hook=on_output, timeout=120
    )
    run(kc, "del m._hook", allow_stdin=False)
    assert "POLLED" in stream_text(msgs, "stdout")
    assert time.monotonic() - started < 50  # generous: the 60 s job did not run to its end
    assert reply["content"]["ename"] == "RunCancelled"
    (error,) = of(msgs, "error")
    assert len(error["content"]["traceback"]) == 1 and "interrupted" in error["content"]["traceback"][0]
    _, msgs = run(
        kc,
        "m = get_ipython().magics_manager.registry['AixMagics']\n"
        "url = [u for u, i in m.jobs.items() if i == 'local/countdown'][-1]\n"
        "try:\n    %aix poll {url}\nexcept Exception as exc:\n    print(type(exc).__name__, exc)",
        allow_stdin=False,
    )
    assert stream_text(msgs, "stdout").startswith("RunCancelled local/countdown:")


@pytest.mark.slow
@pytest.mark.parametrize("line", [STREAM, pytest.param(LLM_STREAM, marks=pytest.mark.llm)])
def test_headless_stream_ends_with_exactly_one_static_output(kernel, line):
    _, kc = kernel
    _, msgs = run(kc, line, allow_stdin=False)
    shown = of(msgs, "display_data")
    assert len(shown) == 1 and not of(msgs, "update_display_data", "execute_result", "clear_output")
    assert stream_text(msgs, "stdout") == ""
    final = shown[0]["content"]
    assert final["data"]["text/plain"].strip() and final["metadata"]["aix_jupyter"]["streamed"] is True


@pytest.mark.slow
def test_live_stream_updates_one_output_and_its_last_state_is_the_static_output(kernel):
    _, kc = kernel
    _, headless = run(kc, STREAM, allow_stdin=False)
    _, msgs = run(kc, STREAM, allow_stdin=True)
    first, *rest = of(msgs, "display_data", "update_display_data")
    assert (
        first["msg_type"] == "display_data"
        and rest
        and all(m["msg_type"] == "update_display_data" for m in rest)
    )
    display_id = first["content"]["transient"]["display_id"]
    assert all(m["content"]["transient"]["display_id"] == display_id for m in rest)
    assert not of(msgs, "execute_result", "clear_output")
    last = rest[-1]["content"]
    static = of(headless, "display_data")[0]["content"]
    # what a saved notebook keeps from the live run is what a headless run (nbval) produces
    assert last["data"] == static["data"]
    assert last["metadata"]["aix_jupyter"]["model_id"] == static["metadata"]["aix_jupyter"]["model_id"]


@pytest.mark.slow
def test_login_reads_the_key_through_the_frontend_and_never_echoes_it(kernel):
    _, kc = kernel
    secret = "sk-kernel-login-9876543210"
    reply, msgs = run(kc, "%aix login", allow_stdin=False, ok=False)  # headless: nobody to ask
    assert reply["content"]["ename"] == "ConfigurationError"
    assert "TEAM_API_KEY" in of(msgs, "error")[0]["content"]["traceback"][0]
    prompts: list[dict] = []

    def answer(msg):
        prompts.append(msg["content"])
        kc.input(secret)

    msgs = []
    reply = kc.execute_interactive(
        "%aix login\nprint(repr(get_ipython().run_line_magic('aix', 'config').config['api_key_source']))",
        allow_stdin=True,
        output_hook=msgs.append,
        stdin_hook=answer,
        timeout=60,
    )
    try:
        assert reply["content"]["status"] == "ok", reply["content"]
        assert prompts and prompts[0]["password"] is True  # typed without echo
        assert "'set_api_key'" in stream_text(msgs, "stdout")
        assert secret not in str(msgs)
        _, shown = run(kc, "%aix config", allow_stdin=False)
        assert secret not in str(shown) and "set_api_key" in str(shown)
    finally:
        run(kc, "from aix_jupyter.core.config import set_api_key; set_api_key(None)", allow_stdin=False)


CHAT = "%aix chat local/smollm2-135m --session {session} --max_tokens 12 --temperature 0 {text}"


@pytest.mark.slow
@pytest.mark.llm
def test_chat_headless_one_static_markdown_output_per_turn_and_the_follow_up_has_the_history(kernel):
    _, kc = kernel
    for text in ("My favourite fruit is mango.", "What is my favourite fruit?"):
        _, msgs = run(kc, CHAT.format(session="headless", text=text), allow_stdin=False)
        shown = of(msgs, "display_data")
        assert len(shown) == 1 and not of(msgs, "update_display_data", "execute_result", "clear_output")
        final = shown[0]["content"]
        assert final["data"]["text/markdown"].strip() and final["metadata"]["aix_jupyter"]["streamed"] is True
    assert "mango" in final["data"]["text/plain"].lower()
    _, msgs = run(
        kc,
        "_c = get_ipython().find_magic('aix').__self__.conversations[('local/smollm2-135m', 'headless')]\n"
        "print(_c.turns, _c.history[0]['content'])",
        allow_stdin=False,
    )
    assert stream_text(msgs, "stdout") == "2 My favourite fruit is mango.\n"


@pytest.mark.slow
@pytest.mark.llm
def test_chat_live_streams_into_one_output_and_f_code_sets_the_next_input(kernel):
    _, kc = kernel
    _, msgs = run(kc, CHAT.format(session="live", text="Say hi"), allow_stdin=True)
    first, *rest = of(msgs, "display_data", "update_display_data")
    assert first["msg_type"] == "display_data" and rest
    assert {m["content"]["transient"]["display_id"] for m in rest} == {
        first["content"]["transient"]["display_id"]
    }
    assert rest[-1]["content"]["data"]["text/markdown"].strip()  # the final state: the Markdown answer
    reply, _ = run(
        kc,
        "%aix run local/smollm2-135m -f code --temperature 0 --max_tokens 40 "
        "Write a Python function that adds two numbers.",
        allow_stdin=False,
    )
    payload = [p for p in reply["content"]["payload"] if p["source"] == "set_next_input"]
    assert len(payload) == 1 and payload[0]["replace"] is False
    assert "def " in payload[0]["text"] and "```" not in payload[0]["text"]
