"""Real Jupyter servers (JupyterLab 4 and Notebook 7) and Debian's Chromium driven by Playwright.

The ``lab`` fixture is parametrized over the two frontends: every browser test runs once in each
(``FRONTENDS``). Browsers are never downloaded (no ``playwright install``).

In CI (``CI=true``) a missing Chromium or Playwright fails the browser tests instead of skipping them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
LAB_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
    "@jupyterlab/notebook-extension:tracker": {"autoStartDefaultKernel": True},
}


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"browser test cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("AIX_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        _unavailable("Chromium is not installed (make system, or apt-get install chromium)")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# frontend -> (jupyter subcommand, the app class its options belong to, where a notebook opens)
FRONTENDS: dict[str, tuple[str, str, str]] = {
    "jupyterlab": ("lab", "LabApp", "lab/tree"),
    "notebook7": ("notebook", "JupyterNotebookApp", "notebooks"),
}


class Lab:
    """A running Jupyter server: JupyterLab 4 or Notebook 7 (``frontend``)."""

    def __init__(self, url: str, token: str, root: Path, log: Path, frontend: str = "jupyterlab") -> None:
        self.url, self.token, self.root, self.log, self.frontend = url, token, root, log, frontend

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/{FRONTENDS[self.frontend][2]}/{name}?token={self.token}"

    def artifact(self, name: str) -> str:
        """An artefact's file name for this frontend (JupyterLab's keep their historical names)."""
        return (
            name
            if self.frontend == "jupyterlab"
            else name.replace("browser-", f"browser-{self.frontend}-", 1)
        )


@pytest.fixture(scope="module", params=list(FRONTENDS))
def lab(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, artifacts_dir: Path
) -> Iterator[Lab]:
    frontend = request.param
    subcommand, app, _path = FRONTENDS[frontend]
    jupyter = Path(sys.executable).with_name("jupyter")
    if not jupyter.exists():
        _unavailable(f"{jupyter} not found (make install)")
    if frontend == "notebook7":
        try:
            import notebook
        except ImportError:
            _unavailable("the notebook package (>=7) is not installed (pip install 'notebook>=7')")
        if int(notebook.__version__.split(".")[0]) < 7:
            _unavailable(f"notebook {notebook.__version__} is installed; the browser tests need >= 7")
    base = tmp_path_factory.mktemp(frontend)
    root, settings = base / "root", base / "settings"
    root.mkdir()
    settings.mkdir()
    (settings / "overrides.json").write_text(json.dumps(LAB_OVERRIDES))
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "IPYTHONDIR": str(base / "ipython"),
    }
    for name in ("TEAM_API_KEY", "AIXPLAIN_API_KEY", "MODELS_RUN_URL", "BACKEND_URL", "AIX_BACKEND_URL"):
        env.pop(name, None)
    env.pop("AIX_FRONTEND", None)
    log = artifacts_dir / f"browser-{frontend}.log"
    cmd = [
        str(jupyter),
        subcommand,
        "--no-browser",
        "--allow-root",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        f"--{app}.app_settings_dir={settings}",
        f"--{app}.expose_app_in_browser=True",
        "--ServerApp.open_browser=False",
    ]
    if frontend == "jupyterlab":
        cmd.append("--LabApp.news_url=")
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"jupyter {subcommand} exited with {proc.returncode}; see {log}")
                try:
                    with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as reply:
                        if reply.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter {subcommand} did not answer /api/status within 60 s; see {log}")
                time.sleep(0.3)
            yield Lab(url, token, root, log, frontend)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install playwright)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
