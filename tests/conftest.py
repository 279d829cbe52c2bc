"""Shared test set-up: every test starts with no aiXplain configuration from the environment."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:  # so that `tests.core.wireserver`, `tests.sdk_venv` import from any test folder
    sys.path.insert(0, ROOT)

CONFIG_VARS = ("TEAM_API_KEY", "AIXPLAIN_API_KEY", "MODELS_RUN_URL", "BACKEND_URL", "AIX_BACKEND_URL")
ARTIFACTS = Path(
    os.environ.get("AIX_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts")
)


@pytest.fixture(autouse=True)
def _clean_aix_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CONFIG_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Folder for test artefacts (screenshots, logs) that CI keeps."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
