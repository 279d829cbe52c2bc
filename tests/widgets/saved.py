"""A notebook run as a live frontend runs it, saved, and rendered by ``jupyter nbconvert --to html``.

nbclient executes the cells in a real kernel told it is watched (``AIX_FRONTEND=live``, as in
JupyterLab) and, like JupyterLab, applies each ``update_display_data`` to the output with that
display id, so the saved file holds what JupyterLab would save (without widget state, its default).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
SERVER_SETTINGS = ("TEAM_API_KEY", "AIXPLAIN_API_KEY", "MODELS_RUN_URL", "BACKEND_URL", "AIX_BACKEND_URL")


def run_live_and_save(cells: list[str], folder: Path) -> Path:
    """The notebook of ``cells`` executed as a live frontend would (embedded backend: no key or
    server URL from the environment), saved to ``folder``; its path."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    env_backup = dict(os.environ)
    os.environ.update({"PYTHONPATH": str(ROOT), "AIX_FRONTEND": "live"})
    for name in SERVER_SETTINGS:
        os.environ.pop(name, None)
    try:
        NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=False).execute()
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    path = folder / "saved.ipynb"
    nbformat.write(nb, path)
    return path


def html_body(saved: Path) -> str:
    """The ``<body>`` of ``jupyter nbconvert --to html`` of the saved notebook."""
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", str(saved)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    page = saved.with_suffix(".html").read_text()
    return page[page.index("<body") :]
