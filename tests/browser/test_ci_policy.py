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


def _run_browser_test(ci: bool) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIX_CHROMIUM": "/nonexistent/chromium"}
    env.pop("CI", None)
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(HERE / "test_model_widget_browser.py"),
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
