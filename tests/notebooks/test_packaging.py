"""`pip install .` from a clean clone: the wheel ships the kernel config, the console script and py.typed,
and a plain install pulls in no test or development tools.

A clean clone (``git clone`` of this repository) is built, so these test the committed tree exactly as a
fresh machine sees it; uncommitted changes are not part of it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Distributions only the test/dev/lab extras may bring in.
TOOLS = {
    "pytest",
    "pytest-timeout",
    "hypothesis",
    "nbval",
    "playwright",
    "jupyterlab",
    "ruff",
    "mypy",
    "xllamacpp",
    "ipykernel",
    "notebook",
    "jupyter-server",
}

pytestmark = pytest.mark.slow


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (REPO / ".git").exists():
        pytest.fail(f"{REPO} is not a git checkout: these tests build a clean clone of it")
    work = tmp_path_factory.mktemp("pkg")
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", "--no-local", str(REPO), str(clone)], check=True)
    out = work / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(clone)],
        check=True,
        timeout=300,
    )
    (whl,) = out.glob("aix_jupyter-*.whl")
    return whl


def test_wheel_contents(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        version = wheel.name.split("-")[1]
        data = f"aix_jupyter-{version}.data/data/etc/ipython/ipython_kernel_config.json"
        assert data in names, sorted(n for n in names if ".data/" in n)
        config = json.loads(zf.read(data))
        assert config == {"InteractiveShellApp": {"extra_extensions": ["aix_jupyter"]}}
        assert "aix_jupyter/py.typed" in names
        assert "aix_jupyter/widgets/capture.js" in names  # MediaCapture's front end (package data)
        dist_info = f"aix_jupyter-{version}.dist-info"
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
        metadata = Parser().parsestr(zf.read(f"{dist_info}/METADATA").decode())
    assert re.search(r"^aix = aix_jupyter\.", entry_points, re.M), entry_points
    import aix_jupyter

    assert metadata["Version"] == version == aix_jupyter.__version__
    unconditional = {
        _norm(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0])
        for req in metadata.get_all("Requires-Dist") or []
        if "extra ==" not in req
    }
    assert unconditional, "no runtime dependencies at all?"
    assert not unconditional & TOOLS, unconditional & TOOLS
    extras = set(metadata.get_all("Provides-Extra") or [])
    assert {"llm", "test", "dev"} <= extras, extras


def test_plain_install_into_a_new_venv(wheel: Path, tmp_path: Path):
    """A plain install resolves (from the package registry / pip cache), imports, and brings no test tools."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], check=True, env=env, timeout=600)
    listing = subprocess.run(
        [str(py), "-m", "pip", "list", "--format=json"], check=True, env=env, capture_output=True, text=True
    ).stdout
    installed = {_norm(d["name"]) for d in json.loads(listing)}
    assert "aix-jupyter" in installed
    assert not installed & TOOLS, installed & TOOLS
    assert (venv / "etc" / "ipython" / "ipython_kernel_config.json").is_file()
    assert (venv / "bin" / "aix").is_file()
    subprocess.run(
        [str(py), "-c", "import aix_jupyter, aix_jupyter.core.model, aix_jupyter.magics"], check=True, env=env
    )
