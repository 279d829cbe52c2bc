"""The official aixplain SDK (0.2.48, unmodified, in its own venv) against the backend.

The venv is built once and cached outside the repository (``AIX_SDK_VENV`` or
``~/.cache/aix_jupyter/sdk-venv-<version>``); the SDK runs in a subprocess against a real backend on
loopback, exactly as a user would point it at ``aix serve``.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aix_jupyter.backend.models import smollm2
from aix_jupyter.backend.registry import register_model

from .conftest import TOKEN

pytestmark = [pytest.mark.sdk, pytest.mark.slow]

SDK_VERSION = "0.2.48"
SCRIPT = Path(__file__).with_name("sdk_script.py")


def sdk_python() -> Path:
    """The Python of a venv with the official SDK (created on first use, then reused)."""
    default = Path.home() / ".cache" / "aix_jupyter" / f"sdk-venv-{SDK_VERSION}"
    venv = Path(os.environ.get("AIX_SDK_VENV", default))
    python = venv / "bin" / "python"
    marker = venv / ".aix-complete"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time
        if not marker.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", f"aixplain=={SDK_VERSION}"],
                check=True,
                timeout=900,
            )
            marker.touch()
    return python


@pytest.fixture(scope="module")
def sdk_report(server, tmp_path_factory) -> dict:
    python = sdk_python()

    @register_model(id="test/temporary-sdk", catalog=server.state.catalog)
    def temporary(text: str) -> str:
        return text

    workdir = tmp_path_factory.mktemp("sdk")  # the SDK writes a .cache folder into its working directory
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TEAM_API_KEY", "AIXPLAIN_API_KEY", "MODELS_RUN_URL", "BACKEND_URL", "PYTHONPATH")
    }
    env.update(
        MODELS_RUN_URL=f"{server.base_url}/api/v1/execute",
        BACKEND_URL=server.base_url,
        TEAM_API_KEY=TOKEN,
        AIXPLAIN_ALLOW_INSECURE_URLS="1",
        AIXPLAIN_UPLOAD_HOST_ALLOWLIST="127.0.0.1",
        AIXPLAIN_SUPPRESS_V1_DEPRECATION="1",
        LOG_LEVEL="WARNING",
        AIX_SDK_WITH_LLM="1" if smollm2.available() else "0",
    )
    proc = subprocess.run(
        [str(python), str(SCRIPT)], cwd=workdir, env=env, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    summary = {name: ("ok" if r["ok"] else r["error"]) for name, r in report.items()}
    print("SDK conformance:", json.dumps(summary, indent=1))
    return report


CHECKS = [
    "ModelFactory.get",
    "run",
    "run with parameters",
    "run_async + sync_poll",
    "poll progress",
    "run on a slow model (v2 IN_PROGRESS, then polled)",
    "run of a failing model",
    "invalid parameter",
    "run with a local file (upload pair)",
    "ModelFactory.list",
    "check_finetune_status",
    "delete",
    "wrong API key",
]
LLM_CHECKS = ["LLM run", "run_stream", "LLM run_async + sync_poll"]


@pytest.mark.parametrize("name", CHECKS)
def test_official_sdk(sdk_report, name):
    result = sdk_report[name]
    assert result["ok"], f"{result['error']}\n{result.get('trace', '')}"


@pytest.mark.llm
@pytest.mark.parametrize("name", LLM_CHECKS)
def test_official_sdk_llm(sdk_report, name):
    assert smollm2.available(), "the SmolLM2 model is not installed"
    result = sdk_report[name]
    assert result["ok"], f"{result['error']}\n{result.get('trace', '')}"
