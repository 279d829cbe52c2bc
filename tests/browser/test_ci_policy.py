"""Without Chromium the browser test fails in CI rather than skip (it must not pass vacuously).

On a workstation it skips with the same reason (conftest ``_unavailable``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _run_browser_test(
    ci: bool, test: str = "test_model_widget_browser.py", **env_vars: str
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIX_CHROMIUM": "/nonexistent/chromium", **env_vars}
    env.pop("CI", None)
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(HERE / test),
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=HERE.parent.parent,
        timeout=120,
    )


@pytest.mark.slow
def test_missing_chromium_fails_in_ci():
    ci = _run_browser_test(ci=True)
    assert ci.returncode == 1, ci.stdout
    assert "browser test cannot run in CI: Chromium is not installed" in ci.stdout


@pytest.mark.slow
def test_missing_media_models_skip_on_a_workstation_and_fail_in_ci(tmp_path: Path):
    """The capture test needs the media models: without Whisper it skips, or in CI fails, saying so."""
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['faster_whisper'] = None\n")
    path = os.pathsep.join([str(tmp_path), str(HERE.parent.parent), os.environ.get("PYTHONPATH", "")])
    env = {"AIX_CHROMIUM": "/usr/bin/true", "PYTHONPATH": path}  # (no browser starts: it stops before)
    local = _run_browser_test(ci=False, test="test_capture_browser.py", **env)
    assert local.returncode == 0 and " skipped" in local.stdout and " passed" not in local.stdout, (
        local.stdout
    )
    ci = _run_browser_test(ci=True, test="test_capture_browser.py", **env)
    assert ci.returncode == 1, ci.stdout
    assert "browser test cannot run in CI: media models missing: pip install 'aix-jupyter[asr]'" in ci.stdout
