"""``%aix`` / ``%%aix`` in a real IPython shell against the real embedded backend (no mocks)."""

from __future__ import annotations

import _thread
import contextlib
import itertools
import re
import sys
import threading

import pytest

from aix_jupyter.core.enums import ResponseStatus
from aix_jupyter.core.errors import AixError, ParameterError, RunCancelled
from aix_jupyter.core.response import ModelResponse
from aix_jupyter.magics.errors import MagicUsageError, RunFailed

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def main_thread_in(function: str) -> bool:
    """True while the main thread runs ``function`` (anywhere on its stack)."""
    frame = sys._current_frames().get(threading.main_thread().ident)
    while frame is not None and frame.f_code.co_name != function:
        frame = frame.f_back
    return frame is not None


@contextlib.contextmanager
def ctrl_c_when(seen: threading.Event, *, waiting_in: str | None = None):
    """Press Ctrl-C (``interrupt_main``) from another thread as soon as ``seen`` is set (and, with
    ``waiting_in``, the main thread waits in that function): at a known point of the run, not after
    a guessed delay."""
    done = threading.Event()

    def press() -> None:
        while not done.is_set():
            if seen.wait(0.05) and (waiting_in is None or main_thread_in(waiting_in)):
                _thread.interrupt_main()
                return

    helper = threading.Thread(target=press, daemon=True)
    helper.start()
    try:
        yield
    finally:
        done.set()
        helper.join()


def on_run_event(monkeypatch, magics, kind: str) -> threading.Event:
    """An event set when the magic's next run reports a ``kind`` event (submitted, polled...)."""
    seen = threading.Event()
    original = magics._hook

    def hook(model_id, progress):
        inner = original(model_id, progress)

        def on_event(event):
            inner(event)
            if event.kind == kind:
                seen.set()

        return on_event

    monkeypatch.setattr(magics, "_hook", hook)
    return seen


def error_text(out) -> str:
    return ANSI.sub("", out.stdout + out.stderr).strip()


def assert_short_error(out, kind: type[BaseException], *fragments: str) -> None:
    """The cell raised ``kind``, rendered as one line naming the culprit, and displayed nothing else."""
    assert isinstance(out.error, kind), out.error
    text = error_text(out)
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("[aix]")]
    assert len(lines) == 1, text
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert out.outputs == []  # no error string as output


def shown(ip, out) -> dict:
    """The MIME bundle the cell showed: its display output, else its formatted result."""
    if out.outputs:
        return out.outputs[0].data
    return ip.display_formatter.format(out.result)[0]


@pytest.fixture
def magics(ip):
    return ip.magics_manager.registry["AixMagics"]


# -- run -----------------------------------------------------------------------------------------
def test_run_returns_the_response_and_displays_it_with_provenance(cell, ip):
    out = cell("%aix run local/sentiment-vader I love this library, it is wonderful")
    assert out.error is None
    response = out.result
    assert isinstance(response, ModelResponse) and response.status is ResponseStatus.SUCCESS
    assert response.data == "POSITIVE"
    assert ip.user_ns["_"] is response
    assert len(out.outputs) == 1
    bundle, meta = shown(ip, out), out.outputs[0].metadata
    assert bundle["text/plain"] == "POSITIVE" and bundle["text/markdown"] == "POSITIVE"
    prov = meta["aix_jupyter"]
    assert prov["model_id"] == "local/sentiment-vader" and prov["parameters"] == {}
    assert prov["status"] == "SUCCESS" and prov["model_version"] and prov["wall_time"] >= 0
    assert "[aix] local/sentiment-vader finished" in out.stderr  # the text progress line


def test_parameters_are_validated_and_sent(cell):
    default = cell("%aix run local/sentiment-vader I like it").result
    strict = cell("%aix run local/sentiment-vader --threshold 0.9 I like it")
    assert (default.data, strict.result.data) == ("POSITIVE", "NEUTRAL")
    assert strict.outputs[0].metadata["aix_jupyter"]["parameters"] == {"threshold": 0.9}


def test_cell_magic_uses_the_body_as_input(cell):
    out = cell("%%aix run local/langid-langdetect\nBonjour tout le monde, comment allez-vous aujourd'hui ?\n")
    assert out.error is None and out.result.data == "fr"


def test_model_first_shorthand_and_out_variable(cell, ip):
    out = cell("%aix local/langid-langdetect -o lang Guten Morgen, wie geht es dir heute")
    assert out.result.data == "de" and ip.user_ns["lang"] is out.result


def test_interpolation_dict_variables_and_files(cell, ip, tmp_path):
    ip.user_ns["mood"] = "hate"
    assert cell("%aix run local/sentiment-vader I {mood} this {{so much}}").result.data == "NEGATIVE"
    ip.user_ns["payload"] = {"data": "I like it", "threshold": 0.9}
    assert cell("%aix run local/sentiment-vader payload").result.data == "NEUTRAL"
    review = tmp_path / "review.txt"
    review.write_text("What a fantastic, delightful film!", encoding="utf-8")
    ip.user_ns["path"] = str(review)
    assert cell("%aix run local/sentiment-vader {path}").result.data == "POSITIVE"
    out = cell("%aix run local/sentiment-vader I {nothing}")
    assert_short_error(out, MagicUsageError, "{nothing}", "no variable 'nothing'")


def test_interpolation_sees_local_variables_in_functions(cell, ip):
    out = cell(
        "def lang(text):\n"
        "    sentence = text + ' et voila'\n"
        "    found = %aix run local/langid-langdetect {sentence}\n"
        "    return found\n"
        "result = lang('Bonjour tout le monde, comment allez-vous')"
    )
    assert out.error is None, out.error
    assert ip.user_ns["result"].data == "fr"


def test_json_output_gets_a_json_view(cell, ip):
    out = cell(
        "%aix run local/keywords-yake --max_keywords 3 Jupyter notebooks make interactive computing easy"
    )
    assert out.error is None, out.error
    bundle = shown(ip, out)
    assert "application/json" in bundle and isinstance(out.result.data, list | dict)


# -- errors ----------------------------------------------------------------------------------------
def test_bad_options_give_one_line_errors(cell):
    assert_short_error(
        cell("%aix run local/sentiment-vader --threshold high I like it"),
        ParameterError,
        "threshold",
        "'high'",
    )
    assert_short_error(
        cell("%aix run local/sentiment-vader --threshold 3 x"), ParameterError, "threshold", "<= 1"
    )
    out = cell("%aix run local/sentiment-vader --thresh 0.1 x")
    assert_short_error(out, ParameterError, "--thresh", "--threshold", "-o/--out")
    assert_short_error(cell("%aix run local/sentiment-vader"), ParameterError, "data")
    assert_short_error(cell("%aix frobnicate"), MagicUsageError, "frobnicate", "run")


def test_unknown_model_and_failed_runs_raise(cell):
    out = cell("%aix run local/no-such-model hi")
    assert isinstance(out.error, AixError)
    assert "local/no-such-model" in error_text(out) and len(error_text(out).splitlines()) == 1
    out = cell("%aix run local/countdown --seconds 0 --fail true go")
    assert_short_error(out, RunFailed, "local/countdown", "fail=true")


def test_errors_stop_run_all_and_leave_no_exception_hook(ip, cell):
    assert ip.custom_exceptions == ()
    excepthook = sys.excepthook
    out = cell("%aix run local/sentiment-vader --threshold 9 x\nreached = True")
    assert out.error is not None and "reached" not in ip.user_ns
    assert sys.excepthook is excepthook and ip.custom_exceptions == ()


# -- async / poll / cancel ----------------------------------------------------------------------
def test_async_then_poll(cell, ip):
    out = cell("h = %aix async local/countdown --seconds 0.3 Done")
    assert out.error is None
    handle = ip.user_ns["h"]
    assert handle.status is ResponseStatus.IN_PROGRESS and handle.url.startswith("http://127.0.0.1:")
    once = cell("%aix poll h")
    assert once.error is None and once.result.status in (ResponseStatus.IN_PROGRESS, ResponseStatus.SUCCESS)
    waited = cell("%aix poll h --wait -o final")
    assert waited.error is None and waited.result.data == "Done" and ip.user_ns["final"] is waited.result
    assert waited.outputs[-1].metadata["aix_jupyter"]["model_id"] == "local/countdown"
    again = cell(f"%aix poll {handle.url} --wait")  # a plain URL works too
    assert again.result.data == "Done"


def test_async_handle_displays_its_poll_url(cell, ip):
    out = cell("%aix async local/countdown --seconds 5 x")
    assert out.result.url in shown(ip, out)["text/plain"]
    cell(f"%aix cancel {out.result.url}")


def test_cancel_a_running_job(cell, ip):
    cell("job = %aix async local/countdown --seconds 30 never")
    out = cell("%aix cancel job")
    assert out.error is None and "local/countdown: run cancelled" in out.stdout
    assert_short_error(cell("%aix poll job --wait"), RunCancelled, "local/countdown", "ancel")
    assert "nothing to cancel" in cell("%aix cancel job").stdout


def test_ctrl_c_cancels_the_run_on_the_server(cell, magics, monkeypatch):
    polled = on_run_event(monkeypatch, magics, "polled")  # the job runs on the server and was polled once
    with ctrl_c_when(polled, waiting_in="sleep_until"):  # ... and the run waits for the next poll
        out = cell("%aix run local/countdown --seconds 30 never")
    assert polled.is_set()
    assert_short_error(out, RunCancelled, "local/countdown", "interrupted")
    urls = [u for u, m in magics.jobs.items() if m == "local/countdown"]
    assert urls, "the run's poll URL was not seen"
    poll = cell(f"%aix poll {urls[-1]}")  # the server says the job was cancelled
    assert isinstance(poll.error, RunCancelled), poll.error


# -- stream ---------------------------------------------------------------------------------------
@pytest.mark.llm
@pytest.mark.slow
def test_stream_prints_chunks_then_returns_the_whole_text(cell):
    out = cell("%aix stream local/smollm2-135m --max_tokens 12 --temperature 0 Say hello")
    assert out.error is None, out.error
    response = out.result
    assert isinstance(response, ModelResponse) and response.data
    assert out.stdout.startswith(response.data + "\n")  # terminal: the chunks were the output
    assert out.outputs == []  # ... and the returned response adds nothing in this cell


@pytest.mark.llm
@pytest.mark.slow
def test_stream_live_updates_one_output_and_ends_static(cell, monkeypatch):
    monkeypatch.setenv("AIX_FRONTEND", "live")
    out = cell("%aix run local/smollm2-135m --stream --max_tokens 12 --temperature 0 Say hello")
    assert out.error is None, out.error
    assert len({o.transient["display_id"] for o in out.outputs}) == 1
    assert out.outputs[0].update is False and all(o.update for o in out.outputs[1:])
    final = out.outputs[-1]
    assert final.data["text/plain"] == out.result.data
    assert final.metadata["aix_jupyter"]["streamed"] is True
    assert final.metadata["aix_jupyter"]["model_id"] == "local/smollm2-135m"


def test_stream_of_a_deterministic_model_in_a_terminal(cell):
    out = cell("%aix stream local/typewriter --delay 0 one two  three")
    assert out.error is None, out.error
    assert out.result.data == "one two  three"
    assert out.stdout.startswith("one two  three\n") and out.outputs == []


def test_stream_live_shows_each_step_then_the_static_output(cell, magics, monkeypatch):
    from aix_jupyter import display

    monkeypatch.setattr(display, "_MIN_UPDATE_INTERVAL", 0.0)
    monkeypatch.setenv("AIX_FRONTEND", "live")
    out = cell("%%aix run local/typewriter --stream --delay 0.01 -o typed\nalpha beta gamma")
    assert out.error is None, out.error
    texts = [o.data["text/plain"] for o in out.outputs]
    live, final = texts[1:-1], texts[-1]  # after the placeholder: each chunk in place, then the output
    assert final == "alpha beta gamma" and live[-1] == final
    # one step a chunk, each growing the last: alpha, alpha beta, alpha beta gamma -- or, when the
    # stream holds back an end that could start the key (a random token), other cuts of the same text
    assert len(live) >= 3 and all(b.startswith(a) and b != a for a, b in itertools.pairwise(live))
    assert out.outputs[-1].metadata["aix_jupyter"]["parameters"] == {"delay": 0.01}
    assert out.result is cell("typed").result


def test_ctrl_c_stops_a_stream(cell, monkeypatch):
    from aix_jupyter import display

    second_chunk = threading.Event()
    chunk = display.StreamView.chunk

    def counting_chunk(view, text):
        chunk(view, text)
        # two words or more: a chunk may bring more than one when the stream holds back an end that
        # could start the key (a random token: " b" ends in its first character one time in 64)
        if len(view.text.split()) >= 2:
            second_chunk.set()

    monkeypatch.setattr(display.StreamView, "chunk", counting_chunk)
    with ctrl_c_when(second_chunk):
        out = cell("%aix stream local/typewriter --delay 0.5 a b c d e f g h i j")
    assert isinstance(out.error, RunCancelled), out.error
    assert "local/typewriter: interrupted" in error_text(out)
    assert out.stdout.startswith("a b")  # what had arrived stays
    assert "j" not in out.stdout.split()  # ... and the stream stopped there


def test_stream_on_a_model_that_does_not_stream(cell):
    assert_short_error(cell("%aix stream local/sentiment-vader hi"), MagicUsageError, "does not stream")


# -- models / info / config / login / help ---------------------------------------------------------
def test_models_table(cell, ip):
    out = cell("%aix models")
    assert out.error is None
    text = shown(ip, out)["text/plain"]
    assert text.splitlines()[0].split() == ["id", "name", "function", "streaming", "supplier", "price"]
    for model_id in ("local/sentiment-vader", "local/langid-langdetect", "local/keywords-yake"):
        assert model_id in text
    assert "<table" in shown(ip, out)["text/html"]
    only = shown(ip, cell("%aix models --function sentiment-analysis"))["text/plain"]
    assert "local/sentiment-vader" in only and "local/langid-langdetect" not in only
    assert [m.id for m in cell("%aix models vader").result.models] == ["local/sentiment-vader"]
    assert "1 model\n" in shown(ip, cell("%aix models vader"))["text/plain"] + "\n"


def test_info_card_lists_the_parameters_from_the_schema(cell, ip):
    out = cell("%aix info local/countdown")
    text = shown(ip, out)["text/plain"]
    assert "Parameters:" in text
    assert "--seconds (number; range [0, 3600]; default 3.0): How long the run takes." in text
    assert "--fail (boolean; default False)" in text
    assert shown(ip, cell("%aix run local/countdown --help"))["text/plain"] == text


def test_config_never_shows_the_key(cell, ip, monkeypatch):
    out = cell("%aix config")
    text = shown(ip, out)["text/plain"]
    assert re.search(r"^mode +embedded$", text, re.M) and re.search(r"^api_key_set +False$", text, re.M)
    cell("%aix run local/sentiment-vader ok")  # the embedded backend is now running: config shows where
    text = shown(ip, cell("%aix config"))["text/plain"]
    assert re.search(r"^run_url +http://127\.0\.0\.1:\d+/api/v1/execute$", text, re.M)
    monkeypatch.setenv("TEAM_API_KEY", "sk-secret-value-123")
    out = cell("%aix config")
    text = shown(ip, out)["text/plain"] + shown(ip, out)["text/html"]
    assert "platform" in text and "True" in text and "sk-secret-value-123" not in text


def test_login_keeps_the_key_for_this_kernel_only(cell, ip, monkeypatch):
    import getpass

    from aix_jupyter.core import config

    monkeypatch.setattr(getpass, "getpass", lambda prompt="": "  sk-typed-key-456  ")
    try:
        out = cell("%aix login")
        assert out.error is None and "kernel only" in out.stdout
        assert "sk-typed-key-456" not in out.stdout
        assert config.configured_api_key() == ("sk-typed-key-456", "set_api_key")
        card = shown(ip, cell("%aix config"))
        assert "set_api_key" in card["text/plain"]
        assert "sk-typed-key-456" not in str(card)
    finally:
        config.set_api_key(None)


def test_help_lists_every_subcommand(cell):
    out = cell("%aix help")
    for sub in ("run", "stream", "async", "poll", "cancel", "models", "info", "widget", "config", "login"):
        assert f"%aix {sub}" in out.stdout
    assert cell("%aix help poll").stdout.strip().startswith("usage: %aix poll")


def test_widget_subcommand(cell, ip):
    from aix_jupyter.widgets import ModelWidget

    out = cell("w = %aix widget local/sentiment-vader")
    assert out.error is None
    widget = ip.user_ns["w"]
    assert isinstance(widget, ModelWidget) and widget.model.id == "local/sentiment-vader"
    assert repr(widget) == "ModelWidget(model='local/sentiment-vader')"
    shown = cell("w")
    assert any("application/vnd.jupyter.widget-view+json" in d for d in shown.displays)
    assert isinstance(cell("%aix widget local/nope").error, AixError)


# -- configuration -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_traitlets_configuration(cell, magics):
    cell("%config AixMagics.default_model = 'local/sentiment-vader'")
    assert magics.default_model == "local/sentiment-vader"
    assert cell("%aix run I hate rainy mondays").result.data == "NEGATIVE"
    assert cell("%aix I love sunny days").result.data == "POSITIVE"
    cell("%config AixMagics.timeout = 1.0")
    out = cell("%aix run local/countdown --seconds 2 late")
    assert_short_error(out, RunFailed, "local/countdown", "within 1 s", "--timeout", "%aix poll http://")
    url = re.search(r"%aix poll (\S+) --wait", error_text(out)).group(1)
    assert cell(f"%aix poll {url} --wait --timeout 30").result.data == "late"  # resumes the same job
    cell("%config AixMagics.poll_cap = 0.25")
    assert magics.poll_cap == 0.25
    assert cell("%aix run local/countdown --seconds 0.6 --timeout 10 ok").result.data == "ok"


# -- completion --------------------------------------------------------------------------------------
def complete(ip, line: str) -> list[str]:
    from IPython.core.completer import provisionalcompleter

    with provisionalcompleter():
        return [c.text for c in ip.Completer.completions(line, len(line))]


def test_tab_completion(ip):
    assert {"run", "stream", "models"} <= set(complete(ip, "%aix "))
    assert complete(ip, "%aix str") == ["stream"]
    assert complete(ip, "%%aix run local/lang") == ["local/langid-langdetect"]
    assert "local/sentiment-vader" in complete(ip, "%aix run local/sen")
    assert complete(ip, "%aix run local/sentiment-vader --thr") == ["--threshold"]
    assert "--seconds" in complete(ip, "%aix run local/countdown --")
    assert complete(ip, "%aix poll x --w") == ["--wait"]
    assert complete(ip, "%aix run local/keywords-yake --language f") == ["fi", "fr"]
    assert complete(ip, "%aix local/countdown --fail ") == ["false", "true"]


# -- a question mark at the end of the line is text ---------------------------------------------------
def test_question_mark_ending_the_input_is_sent_not_taken_for_help(cell, ip):
    out = cell("answer = %aix run local/langid-langdetect Wie geht es dir heute?")
    assert out.error is None and ip.user_ns["answer"].data == "de"
    help_out = cell("%aix?")  # IPython's own help on the magic still works
    assert "%aix run MODEL" in help_out.stdout
    body = cell("%%aix run local/langid-langdetect\nComment allez-vous?")
    assert body.result.data == "fr"
