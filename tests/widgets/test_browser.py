"""ModelBrowser against real backends on loopback: the embedded one, and an ``aix serve``-style server.

The debounce is driven by an explicit fake timer (nothing here sleeps to wait for it). Requests run
in worker threads: the tests ``wait()`` for them before reading what they show (test_browser_worker.py
checks the threads themselves, with a server that answers when told).
"""

from __future__ import annotations

import html
import json
import re
import socket

import ipywidgets as w
import ipywidgets.widgets.widget as widget_module
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from aix_jupyter import ModelBrowser, ModelWidget
from aix_jupyter.backend.app import create_app
from aix_jupyter.backend.registry import default_catalog
from aix_jupyter.backend.server import BackendServer

EMBEDDED_IDS = {
    "local/sentiment-vader",
    "local/langid-langdetect",
    "local/keywords-yake",
    "local/smollm2-135m",
    "local/countdown",
    "local/typewriter",
}


class FakeTimer:
    """A timer that fires only when the test says so (``fire()``); records its delay and cancellation."""

    made: list[FakeTimer] = []

    def __init__(self, delay: float, callback) -> None:
        self.delay, self.callback = delay, callback
        self.started = self.cancelled = False
        FakeTimer.made.append(self)

    def start(self) -> None:
        self.started = True

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        assert self.started and not self.cancelled, "a cancelled or unstarted timer fired"
        self.callback()


class CountingBrowser(ModelBrowser):
    """Counts the listing requests it sends (the real ``ModelFactory.list`` still answers them)."""

    def __init__(self, *args, **kwargs) -> None:
        self.requests: list[dict] = []
        super().__init__(*args, **kwargs)

    def _list(self, **kwargs):
        self.requests.append(kwargs)
        return super()._list(**kwargs)


def ids(browser: ModelBrowser) -> set[str]:
    return {m.id for m in browser.wait(30).models}


def table_texts(browser: ModelBrowser) -> list[list[str]]:
    """The table's rows as shown (header excluded): the opener button's text, then the other cells."""
    head, *rows = browser.wait(30).table.children
    assert re.findall(r">([^<]*)</span>", head.value) == [
        "name",
        "id",
        "supplier",
        "function",
        "streaming",
        "price",
    ]
    return [
        [opener.description, *map(html.unescape, re.findall(r">([^<]*)</span>", rest.value))]
        for opener, rest in zip(rows[::2], rows[1::2], strict=True)
    ]


def test_first_page_lists_the_embedded_catalog_with_every_column():
    b = ModelBrowser(page_size=50).wait(30)
    assert ids(b) >= EMBEDDED_IDS and b.total == len(b.models) and b.page == 0
    rows = {row[1]: row for row in table_texts(b)}
    assert rows["local/sentiment-vader"] == [
        "VADER Sentiment",
        "local/sentiment-vader",
        "aix_jupyter (local)",
        "sentiment-analysis",
        "no",
        "0 USD/request",
    ]
    assert rows["local/smollm2-135m"][4] == "yes"
    assert b.page_label.value == f"page 1 of 1 · {b.total} models"
    assert b.prev_button.disabled and b.next_button.disabled and b.error == ""


def test_function_filter_is_filled_from_the_catalog_and_filters():
    b = ModelBrowser(page_size=50).wait(30)
    slugs = [value for _label, value in b.function_filter.options]
    assert b.function_filter.options[0] == ("all functions", "") and b.function is None
    assert {"sentiment-analysis", "text-generation", "utilities"} <= set(slugs)
    b.function_filter.value = "utilities"  # what choosing it in the dropdown does
    assert ids(b) == {"local/countdown", "local/typewriter"}
    assert ModelBrowser(function="text-generation").wait(30).models[0].id == "local/smollm2-135m"
    b.search(function=None).wait(30)
    assert b.function_filter.label == "all functions" and ids(b) >= EMBEDDED_IDS


def test_paging_walks_every_model_once():
    b = ModelBrowser(page_size=4).wait(30)
    first = ids(b)
    assert len(first) == 4 and b.total >= 6 and not b.next_button.disabled and b.prev_button.disabled
    pages = [first]
    while not b.next_button.disabled:
        b.next_button.click()
        assert b.wait(30).page == len(pages) and b.page_label.value.startswith(f"page {len(pages) + 1} of ")
        assert not b.prev_button.disabled
        pages.append(ids(b))
    seen = set().union(*pages)
    assert sum(map(len, pages)) == len(seen) == b.total and seen >= EMBEDDED_IDS  # each model once
    while not b.prev_button.disabled:
        b.prev_button.click()
        b.wait(30)
    assert ids(b) == first


def test_typing_searches_once_after_the_pause():
    FakeTimer.made = []
    b = CountingBrowser(timer=FakeTimer, page_size=50).wait(30)
    sent = len(b.requests)
    for text in ("s", "se", "sen", "senti"):  # four keys, quickly
        b.search_box.value = text
    assert len(FakeTimer.made) == 4 and all(t.delay == b.debounce for t in FakeTimer.made)
    assert [t.cancelled for t in FakeTimer.made] == [True, True, True, False]
    assert len(b.requests) == sent and ids(b) >= EMBEDDED_IDS  # nothing searched while typing
    FakeTimer.made[-1].fire()  # the pause
    assert len(b.requests) == sent + 1 and b.requests[-1]["query"] == "senti"
    assert ids(b) == {"local/sentiment-vader"}


def test_a_direct_search_replaces_a_pending_one():
    FakeTimer.made = []
    b = CountingBrowser(timer=FakeTimer)
    b.search_box.value = "count"
    b.search("yake")
    assert FakeTimer.made[-1].cancelled and b.query == "yake" and ids(b) == {"local/keywords-yake"}


def test_selecting_a_row_opens_its_widget_and_the_run_line():
    b = ModelBrowser("sentiment").wait(30)
    assert b.run_line.layout.display == "none" and b.detail.children == ()
    opener = next(c for c in b.table.children if isinstance(c, w.Button))
    opener.click()
    assert b.model_widget is None  # fetched in a worker thread
    b.wait(30)
    assert isinstance(b.model_widget, ModelWidget) and b.detail.children == (b.model_widget,)
    assert b.selected == "local/sentiment-vader" and b.model_widget.model.id == "local/sentiment-vader"
    assert b.run_line.value == "%aix run local/sentiment-vader " and b.run_line.layout.display is None
    response = b.model_widget.run(data="What a lovely day")
    assert response.data == "POSITIVE"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_backend_is_one_inline_line(monkeypatch):
    monkeypatch.setenv("AIX_BACKEND_URL", f"http://127.0.0.1:{_closed_port()}")
    b = ModelBrowser().wait(30)  # no exception: the browser shows the error and stays usable
    assert b.error and "\n" not in b.error and "127.0.0.1" in b.error
    assert b.error_line.value.count("<span") == 1 and b.models == []
    monkeypatch.delenv("AIX_BACKEND_URL")
    b.search("vader").wait(30)
    assert b.error == "" and b.error_line.value == "" and ids(b) == {"local/sentiment-vader"}


def test_a_model_that_cannot_be_opened_is_an_inline_error():
    b = ModelBrowser().wait(30)
    assert b.select("local/no-such-model").wait(30) is b
    assert "local/no-such-model" in b.error and "\n" not in b.error and b.model_widget is None


KEY = "sk-BROWSERKEYMARKER-7f3a9c"


@pytest.fixture
def served(monkeypatch):
    """A backend like ``aix serve`` that wants ``KEY`` (the embedded catalog), as AIX_BACKEND_URL."""
    server = BackendServer(create_app(default_catalog(), token=KEY), token=KEY).start()
    monkeypatch.setenv("AIX_BACKEND_URL", server.base_url)
    yield server
    server.stop()


def test_the_key_never_reaches_widget_state(served):
    b = ModelBrowser(api_key=KEY, page_size=3).wait(30)
    assert len(b.models) == 3 and b.error == ""  # the server took the key
    b.next_button.click()
    b.search_box.value = "sentiment"
    b.search().wait(30)
    b.select("local/sentiment-vader").wait(30)
    assert b.model_widget.run(data="lovely").data == "POSITIVE"
    states = [json.dumps(widget.get_state(), default=str) for widget in widget_module._instances.values()]
    assert len(states) > 20
    assert not [s for s in states if "BROWSERKEYMARKER" in s]
    assert "BROWSERKEYMARKER" not in repr(b) + repr(b.as_table())


def test_a_wrong_key_is_an_inline_error(served):
    b = ModelBrowser(api_key="sk-wrong").wait(30)
    assert b.error and "\n" not in b.error and b.models == []


def test_headless_it_renders_the_first_page_as_a_table(monkeypatch):
    monkeypatch.setenv("AIX_FRONTEND", "headless")
    InteractiveShell.instance()
    b = ModelBrowser(page_size=4)
    with capture_output() as captured:
        b._ipython_display_()
    (output,) = captured.outputs
    assert set(output.data) == {"text/plain", "text/html"}
    text = output.data["text/plain"]
    assert text.splitlines()[0].split() == ["name", "id", "supplier", "function", "streaming", "price"]
    assert sum(model_id in text for model_id in EMBEDDED_IDS) == 4
    assert f"page 1 of {-(-b.total // 4)} · {b.total} models" in text and "<table" in output.data["text/html"]


def test_live_it_is_a_widget_with_the_table_as_fallback(monkeypatch):
    monkeypatch.setenv("AIX_FRONTEND", "live")
    InteractiveShell.instance()
    b = ModelBrowser("vader").wait(30)
    with capture_output() as captured:
        b._ipython_display_()
    (output,) = captured.outputs
    assert output.data["application/vnd.jupyter.widget-view+json"]["model_id"] == b.model_id
    assert "local/sentiment-vader" in output.data["text/plain"]


def test_bad_page_size_is_refused():
    with pytest.raises(ValueError, match="page_size must be an integer from 1 to 100, got 0"):
        ModelBrowser(page_size=0)


class OvertakenBrowser(ModelBrowser):
    """A browser whose search for "slow" is overtaken: a newer search runs while its request is out."""

    def _list(self, **kwargs):
        found = super()._list(**kwargs)
        if kwargs["query"] == "slow":
            self.search("vader").wait(30)  # the newer search, answered first
        return found


def test_a_late_answer_to_an_older_search_is_dropped():
    b = OvertakenBrowser().wait(30)
    b.search("slow")
    assert b.wait(30).query == "vader" and ids(b) == {"local/sentiment-vader"}  # not the "slow" result
