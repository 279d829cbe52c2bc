"""A notebook run as a live frontend runs it, saved, then rendered by ``jupyter nbconvert --to html``.

nbclient executes the notebook in a real kernel told it is watched (``AIX_FRONTEND=live``, as in
JupyterLab) and, like JupyterLab, applies each ``update_display_data`` to the output with that
display id, so the saved file holds what JupyterLab would save. Without widget state (JupyterLab's
default) nbconvert has no widget JS to run and shows each widget output's fallback instead: there
the answers must appear, each once, and a cancelled run must read "cancelled".
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from tests.widgets.saved import html_body, run_live_and_save

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

CELLS = [
    "import time\nfrom aix_jupyter import ModelWidget, register_model\n\n"
    "@register_model\n"
    "def shouty(text: str, count: int = 40, delay: float = 0.002):\n"
    '    """Streams Markdown: a heading, then numbered words."""\n'
    '    yield "## Answer\\n\\n"\n'
    "    for i in range(count):\n"
    "        time.sleep(delay)\n"
    '        yield f"**{text}{i}** "\n',
    'w = ModelWidget("local/sentiment-vader")\nw',
    'w.run(data="What a lovely, wonderful day!").data',
    'ws = ModelWidget("local/shouty")\nws',
    'ws.stream(text="word").status.value',
    'wc = ModelWidget("local/countdown")\nwc',
    "f = wc.run(wait=False, seconds=60)\ntime.sleep(1.0)\nwc.cancel()\nwc.wait().status.value",
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_live_and_save(CELLS, tmp_path_factory.mktemp("saved"))


def _fallbacks(cell: nbformat.NotebookNode) -> list[str]:
    return [o["data"]["text/plain"] for o in cell.outputs if WIDGET_VIEW in o.get("data", {})]


@pytest.mark.slow
def test_each_widget_output_carries_its_latest_result_and_nothing_else_repeats_it(saved: Path) -> None:
    nb = nbformat.read(saved, as_version=4)
    for cell in nb.cells:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, errors
    assert _fallbacks(nb.cells[1]) == ["POSITIVE"]
    assert len(nb.cells[1].outputs) == 1  # the widget alone: no placeholder, no static copy beside it
    # the cell that ran it shows only its own value ('POSITIVE'), no copy of the result
    assert [o.output_type for o in nb.cells[2].outputs] == ["execute_result"]
    words = "".join(f"**word{i}** " for i in range(40))
    assert _fallbacks(nb.cells[3]) == ["## Answer\n\n" + words]
    (cancelled,) = _fallbacks(nb.cells[5])
    assert cancelled.startswith("[aix] local/countdown cancelled (") and "FAILED" not in cancelled


@pytest.mark.slow
def test_nbconvert_html_without_widget_js_shows_each_answer_once(saved: Path) -> None:
    body = html_body(saved)
    assert "application/vnd.jupyter.widget-view+json" not in body  # no widget to render: the fallback
    # the streamed Markdown, rendered: a heading and bold words, each word once
    assert re.search(r"<h2[^>]*>Answer", body), "the streamed answer's heading is not rendered"
    assert body.count("<strong>word7</strong>") == 1
    assert body.count(">POSITIVE<") == 1  # the widget's fallback, rendered (the run cell shows the repr)
    assert "local/countdown cancelled (" in body and "FAILED: Run cancelled." not in body
