"""Inside a real IPython kernel: interactive frontends vs headless executors (progress and ModelWidget).

Interactive frontends (JupyterLab, Notebook 7, VS Code) send ``allow_stdin: true``; nbclient (so
nbconvert and papermill) and nbval send ``false``. The same cell shows a widget in the first case and
writes the text line to stderr in the second.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

ROOT = Path(__file__).resolve().parents[2]

CELL = """
from aix_jupyter.core.events import RunEvent
from aix_jupyter.progress import resolve_mode
from aix_jupyter.widgets.progress import make_progress
p = make_progress("local/m")
p(RunEvent("submitted", "local/m", 0.0))
p(RunEvent("polled", "local/m", 0.2, polls=1))
p(RunEvent("finished", "local/m", 0.25, polls=2))
p.close()
print(resolve_mode())
"""


@pytest.fixture(scope="module")
def kernel():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("AIX_FRONTEND", None)
    km, kc = start_new_kernel(kernel_name="python3", env=env)
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(kc, code, *, allow_stdin):
    msgs = []
    reply = kc.execute_interactive(
        code, allow_stdin=allow_stdin, output_hook=msgs.append, stdin_hook=lambda m: None, timeout=60
    )
    assert reply["content"]["status"] == "ok", reply["content"]
    return msgs


def streams(msgs, name):
    return "".join(
        m["content"]["text"] for m in msgs if m["msg_type"] == "stream" and m["content"]["name"] == name
    )


@pytest.mark.slow
def test_headless_executor_gets_the_text_line(kernel):
    msgs = run(kernel, CELL, allow_stdin=False)
    assert streams(msgs, "stderr") == "[aix] local/m finished (2 polls, 0.25 s)\n"
    assert streams(msgs, "stdout") == "text\n"
    assert not [m for m in msgs if m["msg_type"] in ("display_data", "update_display_data")]


@pytest.mark.slow
def test_interactive_frontend_gets_the_widget(kernel):
    msgs = run(kernel, CELL, allow_stdin=True)
    assert streams(msgs, "stdout") == "widget\n"
    assert streams(msgs, "stderr") == ""
    shown = [m for m in msgs if m["msg_type"] == "display_data"]
    assert len(shown) == 1
    data = shown[0]["content"]["data"]
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["text/plain"] == "[aix] local/m waiting"
    # when the run ends, the fallback text of that display becomes the final line (for saved notebooks)
    updates = [m for m in msgs if m["msg_type"] == "update_display_data"]
    assert updates[-1]["content"]["data"]["text/plain"] == "[aix] local/m finished (2 polls, 0.25 s)"
    assert updates[-1]["content"]["transient"]["display_id"] == shown[0]["content"]["transient"]["display_id"]


@pytest.mark.slow
def test_environment_override_in_the_kernel(kernel):
    msgs = run(kernel, "import os; os.environ['AIX_FRONTEND'] = 'headless'\n" + CELL, allow_stdin=True)
    try:
        assert streams(msgs, "stdout") == "text\n"
        assert "[aix] local/m finished (2 polls, 0.25 s)\n" in streams(msgs, "stderr")
    finally:
        run(kernel, "import os; os.environ.pop('AIX_FRONTEND', None)", allow_stdin=True)


WIDGET_CELL = 'from aix_jupyter import ModelWidget\nw = ModelWidget("local/sentiment-vader")\nw'
RUN_CELL = 'w.run(data="What a lovely, wonderful day!")'


def displays(msgs, kind="display_data"):
    return [m["content"] for m in msgs if m["msg_type"] == kind]


@pytest.mark.slow
def test_model_widget_headless_shows_the_text_line_and_the_plain_result(kernel):
    run(kernel, "%load_ext aix_jupyter", allow_stdin=False)
    shown = run(kernel, WIDGET_CELL, allow_stdin=False)
    (widget,) = displays(shown)  # the widget alone: no placeholder output
    assert widget["data"]["text/plain"] == "ModelWidget(model='local/sentiment-vader')"  # what nbval compares
    assert "application/vnd.jupyter.widget-view+json" in widget["data"]
    ran = run(kernel, RUN_CELL, allow_stdin=False)
    assert streams(ran, "stderr").startswith("[aix] local/sentiment-vader finished (")
    assert streams(ran, "stderr").count("\n") == 1
    # the plain result, once, as an ordinary output of this cell (the returned response adds none)
    assert [d["data"]["text/plain"] for d in displays(ran)] == ["POSITIVE"]
    assert displays(ran)[0]["metadata"]["aix_jupyter"]["model_id"] == "local/sentiment-vader"
    assert not displays(ran, "update_display_data") and not displays(ran, "execute_result")


@pytest.mark.slow
def test_model_widget_live_carries_the_result_as_the_fallback_of_its_own_output(kernel):
    shown = run(kernel, WIDGET_CELL, allow_stdin=True)
    (widget,) = displays(shown)  # one output: the widget view, its repr as the fallback
    view = widget["data"]["application/vnd.jupyter.widget-view+json"]
    ran = run(kernel, RUN_CELL, allow_stdin=True)
    assert streams(ran, "stderr") == ""  # the widget's own bar shows the progress
    (update,) = displays(ran, "update_display_data")
    assert update["transient"]["display_id"] == widget["transient"]["display_id"]
    # the same widget view (a live frontend renders it, so the result shows once, inside it) with the
    # result as the fallback every other viewer of the saved notebook shows
    assert update["data"]["application/vnd.jupyter.widget-view+json"] == view
    assert update["data"]["text/plain"] == "POSITIVE" and update["data"]["text/markdown"] == "POSITIVE"
    assert update["metadata"]["aix_jupyter"]["model_id"] == "local/sentiment-vader"
    assert not displays(ran) and not displays(ran, "execute_result")
    # shown again later, the widget's output keeps the latest result as its fallback
    again = run(kernel, "w", allow_stdin=True)
    assert displays(again)[0]["data"]["text/plain"] == "POSITIVE"
    # cleared, the widget's outputs show its repr again
    cleared = run(kernel, "w.clear()", allow_stdin=True)
    texts = [u["data"]["text/plain"] for u in displays(cleared, "update_display_data")]
    assert texts == ["ModelWidget(model='local/sentiment-vader')"]


@pytest.mark.slow
def test_background_run_reports_in_the_cell_that_waits_never_in_an_unrelated_one(kernel):
    run(kernel, WIDGET_CELL, allow_stdin=False)
    started = run(kernel, 'f = w.run(wait=False, data="I hate rainy mondays.")', allow_stdin=False)
    unrelated = run(kernel, "import time\ntime.sleep(1.5)\nprint(w.running)", allow_stdin=False)
    waited = run(kernel, "w.wait().data", allow_stdin=False)
    for msgs in (started, unrelated):
        assert streams(msgs, "stderr") == "" and not displays(msgs)
    assert streams(unrelated, "stdout") == "False\n"  # it had ended, silently, in the background
    assert streams(waited, "stderr").startswith("[aix] local/sentiment-vader finished (")
    assert [d["data"]["text/plain"] for d in displays(waited)] == ["NEGATIVE"]
    assert displays(waited, "execute_result")[0]["data"]["text/plain"] == "'NEGATIVE'"
    again = run(kernel, "w.wait().data", allow_stdin=False)
    assert streams(again, "stderr") == "" and not displays(again)  # reported once


@pytest.mark.slow
def test_model_widget_live_cancelled_run_reads_cancelled_in_its_fallback(kernel):
    shown = run(kernel, 'wc = ModelWidget("local/countdown")\nwc', allow_stdin=True)
    (widget,) = displays(shown)
    code = "import time\nf = wc.run(wait=False, seconds=60)\ntime.sleep(1.0)\nwc.cancel()\n"
    code += "wc.wait().status.value"
    ran = run(kernel, code, allow_stdin=True)
    (update,) = displays(ran, "update_display_data")
    assert update["transient"]["display_id"] == widget["transient"]["display_id"]
    assert update["data"]["text/plain"].startswith("[aix] local/countdown cancelled (")
    assert "FAILED" not in update["data"]["text/plain"]
    assert displays(ran, "execute_result")[0]["data"]["text/plain"] == "'FAILED'"  # the SDK's status
