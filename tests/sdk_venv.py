"""The official aiXplain SDK in a venv of its own, for the tests that run it side by side with ours.

The venv is built once and cached outside the repository (``AIX_SDK_VENV`` or
``~/.cache/aix_jupyter/sdk-venv-<version>``).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

SDK_VERSION = "0.2.48"


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


def run_script(
    python: str | Path,
    script: str | Path,
    *args: str,
    base_url: str,
    token: str,
    workdir: Path,
    timeout: float,
    pythonpath: str | None = None,
    **env_extra: str,
) -> str:
    """Run ``script`` against the server at ``base_url`` as a user would; return its last line of output.

    Only this configuration reaches the script (none of the caller's aiXplain or aix_jupyter
    settings); ``workdir`` is its working directory (the SDK writes a .cache folder there).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIX", "TEAM_API", "PYTHONPATH"))}
    env.update(
        MODELS_RUN_URL=f"{base_url}/api/v1/execute",
        BACKEND_URL=base_url,
        TEAM_API_KEY=token,
        AIXPLAIN_ALLOW_INSECURE_URLS="1",
        AIXPLAIN_UPLOAD_HOST_ALLOWLIST="127.0.0.1",
        AIXPLAIN_SUPPRESS_V1_DEPRECATION="1",
        LOG_LEVEL="WARNING",
    )
    env.update(env_extra)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    proc = subprocess.run(
        [str(python), str(script), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"{Path(script).name} {' '.join(args)}: {proc.stderr[-3000:]}"
    return proc.stdout.strip().splitlines()[-1]
