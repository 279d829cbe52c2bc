"""A ChatWidget in a notebook run as a live frontend runs it, saved, then rendered by ``nbconvert --to html``.

As in ``test_saved_notebook.py``: nbclient runs a real kernel told it is watched (``AIX_FRONTEND=live``)
and applies each ``update_display_data`` to the output with that display id, as JupyterLab does. Where
widgets are not rendered, the widget's output shows the transcript: every turn, once.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from tests.widgets.saved import html_body, run_live_and_save

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

CELLS = [
    "from aix_jupyter import ChatWidget, register_model\n\n"
    "@register_model(id='local/echoer', function='text-generation')\n"
    "def echoer(data: str, history: list[dict] | None = None, temperature: float = 0.0,\n"
    "           max_tokens: int = 128, top_p: float = 1.0):\n"
    '    """Answers with the message, in bold, and how many messages came before it."""\n'
    '    yield f"**{data}** after {len(history or [])} messages"\n',
    "chat = ChatWidget('local/echoer')\nchat",
    "chat.send('first question').status.value",
    "chat.send('second question').status.value",
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_live_and_save(CELLS, tmp_path_factory.mktemp("saved-chat"))


@pytest.mark.slow
def test_the_widget_output_carries_the_transcript_and_the_sends_add_no_copy(saved: Path) -> None:
    nb = nbformat.read(saved, as_version=4)
    assert not [o for cell in nb.cells for o in cell.outputs if o.output_type == "error"]
    (widget,) = nb.cells[1].outputs
    assert WIDGET_VIEW in widget["data"]
    transcript = widget["data"]["text/markdown"]
    assert "> first question" in transcript and "> **second question** after 2 messages" in transcript
    assert "(2 turns)" in transcript and widget["data"]["text/plain"] == transcript
    # the cells that sent show their own value only: the reply is in the transcript, not repeated
    assert [o["data"]["text/plain"] for o in nb.cells[3].outputs] == ["'SUCCESS'"]


@pytest.mark.slow
def test_nbconvert_html_shows_the_transcript_once(saved: Path) -> None:
    body = html_body(saved)
    assert WIDGET_VIEW not in body
    # each reply once, rendered (the questions also appear in the cells' code)
    assert body.count("<strong>first question</strong> after 0 messages") == 1
    assert body.count("<strong>second question</strong> after 2 messages") == 1
