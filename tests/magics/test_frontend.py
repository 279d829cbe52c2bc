"""One answer to "which frontend runs this cell?", driven by one environment variable."""

from __future__ import annotations

import io

import pytest

from aix_jupyter import display, frontend
from aix_jupyter.core.errors import ConfigurationError
from aix_jupyter.progress import TextProgress, resolve_mode


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    for name in ("AIX_FRONTEND", "AIX_PROGRESS", "AIX_JUPYTER_FRONTEND"):
        monkeypatch.delenv(name, raising=False)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_plain_python_is_a_terminal():
    assert frontend.kernel() is None
    assert frontend.current() == "terminal"
    assert not frontend.renders_widgets()


@pytest.mark.parametrize(
    ("kind", "progress", "stream", "redraws_on_tty"),
    [
        ("live", "widget", "live", True),
        ("headless", "text", "headless", False),
        ("terminal", "text", "terminal", True),
    ],
)
def test_every_display_follows_the_one_variable(monkeypatch, kind, progress, stream, redraws_on_tty):
    monkeypatch.setenv("AIX_FRONTEND", f" {kind.upper()} ")
    assert frontend.current() == kind
    assert resolve_mode() == progress
    assert display.StreamView("m").mode == stream
    assert TextProgress("m", stream=_Tty()).live is redraws_on_tty
    assert TextProgress("m", stream=io.StringIO()).live is (kind == "live")


def test_auto_means_guess(monkeypatch):
    monkeypatch.setenv("AIX_FRONTEND", "auto")
    assert frontend.forced() is None and frontend.current() == "terminal"


def test_a_bad_value_is_one_line_naming_the_variable(monkeypatch):
    monkeypatch.setenv("AIX_FRONTEND", "jupyter")
    with pytest.raises(ConfigurationError) as info:
        frontend.current()
    assert str(info.value) == "AIX_FRONTEND must be one of auto, live, headless, terminal; got 'jupyter'"


@pytest.mark.parametrize("old", ["AIX_PROGRESS", "AIX_JUPYTER_FRONTEND"])
def test_the_retired_variables_are_not_silently_ignored(monkeypatch, old):
    monkeypatch.setenv(old, "text")
    with pytest.raises(ConfigurationError, match=f"^{old} is no longer read; unset it and set AIX_FRONTEND="):
        frontend.current()
