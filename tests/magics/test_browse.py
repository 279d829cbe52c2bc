"""``%aix browse [QUERY] [--function F]``: the ModelBrowser from the magic (embedded backend, real)."""

from __future__ import annotations

import pytest

from aix_jupyter.magics import args as ma
from aix_jupyter.magics.errors import MagicUsageError
from aix_jupyter.widgets import ModelBrowser


def test_parse_browse():
    assert ma.parse_command("browse") == ma.BrowseArgs()
    assert ma.parse_command("browse sentiment analysis") == ma.BrowseArgs("sentiment analysis")
    assert ma.parse_command("browse --function=utilities x") == ma.BrowseArgs("x", "utilities")
    with pytest.raises(MagicUsageError, match="browse: unknown option --page; valid options: --function"):
        ma.parse_command("browse --page 2")
    with pytest.raises(MagicUsageError, match="browse: option --function needs a value"):
        ma.parse_command("browse --function")


def test_browse_returns_a_browser_searched_and_filtered(cell, ip):
    out = cell("b = %aix browse vader")
    assert out.error is None
    browser = ip.user_ns["b"]
    assert isinstance(browser, ModelBrowser) and browser.query == "vader"
    assert [m.id for m in browser.models] == ["local/sentiment-vader"]
    out = cell("b = %aix browse --function utilities")
    assert {m.id for m in ip.user_ns["b"].models} == {"local/countdown", "local/typewriter"}


def test_browse_in_a_terminal_shows_the_first_page_as_a_table(cell):
    out = cell("%aix browse yake")
    assert out.error is None
    (shown,) = [d for d in out.displays if "text/plain" in d]
    assert (
        "local/keywords-yake" in shown["text/plain"]
        and "application/vnd.jupyter.widget-view+json" not in shown
    )


def test_help_lists_browse(cell):
    assert "%aix browse [QUERY]" in cell("%aix help").stdout
    assert cell("%aix help browse").stdout.startswith("usage: %aix browse")
