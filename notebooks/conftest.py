"""pytest set-up for checking these notebooks with nbval (see README.md, "Tests").

The notebooks' stored outputs come from the embedded backend. An API key or server URL in the
environment would send their runs elsewhere, so the kernels nbval starts get none of them (the
hosted-platform notebook replays its platform cells from its cassette without a key).
"""

from __future__ import annotations

import os

import pytest

CONFIG_VARS = (
    "TEAM_API_KEY",
    "AIXPLAIN_API_KEY",
    "MODELS_RUN_URL",
    "BACKEND_URL",
    "AIX_BACKEND_URL",
    "AIX_FRONTEND",
    "AIX_CACHE",  # a cache, a recording or a replay of the reader's own would change what cells show
    "AIX_RECORD",
    "AIX_REPLAY",
    "AIX_REPLAY_SPEED",
)
_saved: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    for name in CONFIG_VARS:
        if name in os.environ:
            _saved[name] = os.environ.pop(name)


def pytest_unconfigure(config: pytest.Config) -> None:
    os.environ.update(_saved)
    _saved.clear()
