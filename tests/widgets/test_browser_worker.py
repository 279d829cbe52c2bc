"""ModelBrowser's requests run in worker threads, never in the kernel's; a late answer is dropped.

A real wire server on loopback holds chosen requests until the test releases them (a deliberately
slow server): the browser must stay usable meanwhile, and what it shows must be the newest search's
answer, whatever order the answers come in. Nothing sleeps: the tests wait on events with generous
bounds.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from aix_jupyter import ModelBrowser, SortBy, SortOrder
from tests.core.wireserver import Reply, WireServer, default_metadata

KEY = "worker-test-key-0123456789"
BOUND = 20.0  # seconds: generous; the held requests are released long before


class Held:
    """A paginate / model answer that waits for ``release()`` when its query (or model id) is held."""

    def __init__(self, server: WireServer, *held: str, fail: bool = False) -> None:
        self.server, self.held, self.fail = server, set(held), fail
        self.gate = threading.Event()
        self.arrived = threading.Event()  # a held request reached the server

    def release(self) -> None:
        self.gate.set()

    def listing(self, rec: Any) -> dict[str, Any]:
        query = (rec.json() or {}).get("q", "")
        if query in self.held:
            self.arrived.set()
            assert self.gate.wait(BOUND)
            if self.fail:
                return {"unusable": True}  # the client's "no 'items' list" error
        items = [m for m in self.server.models.values() if query.lower() in m["name"].lower()]
        return {"items": items, "total": len(items)}

    def model(self, rec: Any) -> dict[str, Any]:
        model_id = rec.path.removeprefix("/sdk/models/")
        if model_id in self.held:
            self.arrived.set()
            assert self.gate.wait(BOUND)
        return self.server.models[model_id]


@pytest.fixture
def server(monkeypatch):
    with WireServer() as srv:
        srv.models = {
            f"acme/{word}": default_metadata(f"acme/{word}", name=f"{word.title()} model")
            for word in ("old", "new", "other")
        }
        srv.held = []  # type: ignore[attr-defined]
        monkeypatch.setenv("AIX_BACKEND_URL", srv.url)
        yield srv
        for held in srv.held:  # type: ignore[attr-defined]  # a failed test may leave one held
            held.release()


def hold(server: WireServer, *held: str, fail: bool = False) -> Held:
    h = Held(server, *held, fail=fail)
    server.held.append(h)  # type: ignore[attr-defined]
    server.script("POST /sdk/models/paginate", *[Reply(call=h.listing) for _ in range(20)])
    server.script("GET /sdk/models/", *[Reply(call=h.model) for _ in range(20)])
    return h


class ThreadRecordingBrowser(ModelBrowser):
    """Records the thread each listing request runs in."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.threads: list[threading.Thread] = []
        super().__init__(*args, **kwargs)

    def _list(self, **kwargs: Any) -> dict[str, Any]:
        self.threads.append(threading.current_thread())
        return super()._list(**kwargs)


def until(predicate: Any) -> bool:
    end = time.monotonic() + BOUND
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def ids(browser: ModelBrowser) -> list[str]:
    return [m.id for m in browser.models]


def test_a_held_first_page_does_not_hold_the_kernel(server):
    held = hold(server, "")  # the first page (and the function filter's fill) wait for the server
    b = ThreadRecordingBrowser(api_key=KEY)
    assert held.arrived.wait(BOUND)  # the request is out, unanswered ...
    assert b.loading and b.models == [] and b.page_label.value == "searching…"  # ... and we are back
    assert "searching…" in b.as_table().note
    held.release()
    b.wait(BOUND)
    assert not b.loading and ids(b) == ["acme/old", "acme/new", "acme/other"]
    assert (
        b.threads and threading.main_thread() not in b.threads and threading.current_thread() not in b.threads
    )


def test_a_late_answer_to_an_older_search_is_dropped(server):
    held = hold(server, "old")
    b = ModelBrowser(api_key=KEY).wait(BOUND)
    b.search("old")  # held by the server
    assert held.arrived.wait(BOUND)
    b.search("new")  # answered at once, while "old" is still out
    assert until(lambda: not b.loading) and ids(b) == ["acme/new"]
    held.release()  # now the older answer arrives, late
    b.wait(BOUND)
    assert ids(b) == ["acme/new"] and b.query == "new" and b.total == 1 and not b.loading
    opener = b.table.children[1]
    assert opener.description == "New model"  # the table too shows the newest search


def test_an_error_of_an_older_search_is_dropped_too(server):
    held = hold(server, "old", fail=True)
    b = ModelBrowser(api_key=KEY).wait(BOUND)
    b.search("old")  # held, then answered with an unusable reply
    assert held.arrived.wait(BOUND)
    b.search("new")
    assert until(lambda: not b.loading) and ids(b) == ["acme/new"]
    held.release()
    b.wait(BOUND)
    assert b.error == "" and b.error_line.value == "" and ids(b) == ["acme/new"]
    b.search("old")  # the same failure, when it is the newest search, shows
    held.release()
    b.wait(BOUND)
    assert "no 'items' list" in b.error and "\n" not in b.error and not b.loading


def test_choosing_a_model_fetches_it_off_the_kernel_thread_and_the_last_choice_wins(server):
    held = hold(server, "acme/old")
    b = ModelBrowser(api_key=KEY).wait(BOUND)
    b.select("acme/old")  # held by the server
    assert held.arrived.wait(BOUND) and b.model_widget is None
    b.select("acme/new")
    assert until(lambda: b.selected == "acme/new")
    held.release()
    b.wait(BOUND)
    assert b.selected == "acme/new" and b.model_widget.model.id == "acme/new"
    assert b.run_line.value == "%aix run acme/new "


def test_the_filters_and_sort_reach_the_request(server):
    b = ModelBrowser(
        source_languages="en-US", sort_by=SortBy.CREATION_DATE, sort_order=SortOrder.DESCENDING, api_key=KEY
    ).wait(BOUND)
    assert (b.source_language, b.sort, b.source_filter.value) == ("en-US", "-created", "en-US")
    body = server.seen("POST", "/sdk/models/paginate")[-1].json()
    assert body["sort"] == [{"dir": -1, "field": "createdAt"}]
    assert body["ioFilter"] == [
        {"code": "language", "value": "en"},
        {"code": "dialect", "value": "United States"},
    ]
    b.sort_choice.value = "name"  # choosing a sort searches at once
    b.wait(BOUND)
    assert server.seen("POST", "/sdk/models/paginate")[-1].json()["sort"] == [{"dir": 1, "field": "name"}]


def test_a_bad_language_typed_is_one_inline_line(server):
    b = ModelBrowser(api_key=KEY).wait(BOUND)
    b.source_filter.value = "xx"
    b.search().wait(BOUND)
    assert "unknown language 'xx'" in b.error and "\n" not in b.error
    with pytest.raises(ValueError, match="ModelBrowser: sort_by must be one of SortBy"):
        ModelBrowser(sort_by="rating")


def test_typing_while_a_worker_fills_the_filter_still_searches(server, monkeypatch):
    """A worker's quiet change of the function filter does not silence the user's typing meanwhile."""
    timers: list[Any] = []

    class Timer:
        def __init__(self, delay: float, callback: Any) -> None:
            timers.append(callback)

        def start(self) -> None:
            pass

        def cancel(self) -> None:
            pass

    inside, go_on = threading.Event(), threading.Event()
    original = ModelBrowser._function_options

    def options(slugs: list[str]) -> list[tuple[str, str]]:
        if threading.current_thread() is not threading.main_thread():
            inside.set()  # the worker is inside its quiet change of the filter
            assert go_on.wait(BOUND)
        return original(slugs)

    monkeypatch.setattr(ModelBrowser, "_function_options", staticmethod(options))
    try:
        b = ModelBrowser(api_key=KEY, timer=Timer)
        assert inside.wait(BOUND)
        b.search_box.value = "new"  # the user types meanwhile
        assert len(timers) == 1  # a search is scheduled
    finally:
        go_on.set()
    b.wait(BOUND)
