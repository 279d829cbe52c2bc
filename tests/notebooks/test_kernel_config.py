"""The extension is on in every new IPython kernel of an environment the package is installed in.

How it works: the package installs ``jupyter-config/ipython/ipython_kernel_config.json`` as a data file
into ``<sys.prefix>/etc/ipython/``. ipykernel's ``IPKernelApp`` is an IPython application: it loads
``ipython_config`` and ``ipython_kernel_config`` (``.py`` and ``.json``) from the profile directory,
then ``<sys.prefix>/etc/ipython``, then ``/usr/local/etc/ipython`` and ``/etc/ipython`` -- it does not
read ``<sys.prefix>/etc/jupyter`` and traitlets knows no ``*.d`` directories for these files. The file
sets ``InteractiveShellApp.extra_extensions`` (not ``extensions``) so that a user's own
``c.InteractiveShellApp.extensions = [...]`` in their profile (which has higher priority and replaces a
list rather than merging it) does not switch ``aix_jupyter`` off.

These tests start real kernels with jupyter_client, with an empty IPython directory so that the
machine's own profile does not interfere.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import start_new_kernel

REPO = Path(__file__).resolve().parents[2]
CONFIG_FILE = "ipython_kernel_config.json"
CONFIG_VARS = ("TEAM_API_KEY", "AIXPLAIN_API_KEY", "MODELS_RUN_URL", "BACKEND_URL", "AIX_BACKEND_URL")


def _kernel_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    env["IPYTHONDIR"] = str(tmp_path / "ipython")
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "jupyter-config")
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "jupyter-runtime")
    return env


def _run_in_fresh_kernel(
    cells: list[str], env: dict[str, str], extra_arguments: list[str] | None = None
) -> dict[str, Any]:
    """Start a new kernel (the ``python3`` kernel of this environment), run ``cells`` in turn, stop it.

    Returns the status of each reply, the text of all outputs and any errors.
    """
    km, kc = start_new_kernel(
        kernel_name="python3", startup_timeout=60, env=env, extra_arguments=extra_arguments or []
    )
    texts: list[str] = []
    errors: list[str] = []

    def on_output(msg: dict[str, Any]) -> None:
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            texts.append(content["text"])
        elif kind in ("display_data", "execute_result"):
            texts.append(content["data"].get("text/plain", ""))
        elif kind == "error":
            errors.append(f"{content['ename']}: {content['evalue']}")

    statuses: list[str] = []
    try:
        for code in cells:
            reply = kc.execute_interactive(code, timeout=120, output_hook=on_output)
            statuses.append(reply["content"]["status"])
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return {"status": statuses, "text": "".join(texts), "errors": errors}


def test_installed_config_file_is_the_repository_one():
    installed = Path(sys.prefix, "etc", "ipython", CONFIG_FILE)
    assert installed.is_file(), f"{installed} is missing: reinstall the package (pip install -e .)"
    shipped = json.loads((REPO / "jupyter-config" / "ipython" / CONFIG_FILE).read_text())
    assert json.loads(installed.read_text()) == shipped
    assert shipped["InteractiveShellApp"]["extra_extensions"] == ["aix_jupyter"]


@pytest.mark.slow
def test_fresh_kernel_runs_aix_at_once(tmp_path):
    check = (
        "import sys\n"
        "print('PREFIX', sys.prefix)\n"
        "print('LOADED', 'aix_jupyter' in get_ipython().extension_manager.loaded)\n"
    )
    result = _run_in_fresh_kernel(["%aix config", check], _kernel_env(tmp_path))
    assert result["errors"] == [], result
    assert result["status"] == ["ok", "ok"]
    assert f"PREFIX {sys.prefix}" in result["text"]  # the kernel is this environment's
    assert "LOADED True" in result["text"]
    # %aix config says where runs go: no key is set, so to the embedded backend
    assert "embedded" in result["text"].lower(), result["text"]


@pytest.mark.slow
def test_user_extensions_list_does_not_switch_it_off(tmp_path):
    env = _kernel_env(tmp_path)
    profile = Path(env["IPYTHONDIR"], "profile_default")
    profile.mkdir(parents=True)
    # The profile has a higher priority than <prefix>/etc/ipython and its list replaces a lower one.
    (profile / "ipython_kernel_config.py").write_text("c.InteractiveShellApp.extensions = ['autoreload']\n")
    result = _run_in_fresh_kernel(
        ["print('LOADED', sorted(get_ipython().extension_manager.loaded))"],
        env,
    )
    assert result["errors"] == [], result
    assert "'aix_jupyter'" in result["text"], result["text"]
    assert "autoreload'" in result["text"], result["text"]  # the user's own extension is loaded as well


@pytest.mark.slow
def test_control_without_the_setting_there_is_no_aix_magic(tmp_path):
    """Control: overriding exactly the installed setting removes the magic, so the file is what loads it."""
    result = _run_in_fresh_kernel(
        ["%aix config"], _kernel_env(tmp_path), extra_arguments=["--InteractiveShellApp.extra_extensions=[]"]
    )
    assert result["status"] == ["error"]
    assert "Line magic function `%aix` not found" in result["text"], result
