"""A ChatWidget in a notebook run as a live frontend runs it, saved, then rendered by ``nbconvert --to html``.

As in ``test_saved_notebook.py``: nbclient runs a real kernel told it is watched (``AIX_FRONTEND=live``)
and applies each ``update_display_data`` to the output with that display id, as JupyterLab does. Where
widgets are not rendered, the widget's output shows the transcript: every turn, once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
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
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    env_backup = dict(os.environ)
    os.environ.update({"PYTHONPATH": str(ROOT), "AIX_FRONTEND": "live"})
    for name in ("TEAM_API_KEY", "AIXPLAIN_API_KEY", "MODELS_RUN_URL", "BACKEND_URL", "AIX_BACKEND_URL"):
        os.environ.pop(name, None)
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=False).execute()
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    path = tmp_path_factory.mktemp("saved-chat") / "saved.ipynb"
    nbformat.write(nb, path)
    return path


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
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(saved)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    body = saved.with_suffix(".html").read_text()
    body = body[body.index("<body") :]
    assert WIDGET_VIEW not in body
    # each reply once, rendered (the questions also appear in the cells' code)
    assert body.count("<strong>first question</strong> after 0 messages") == 1
    assert body.count("<strong>second question</strong> after 2 messages") == 1
