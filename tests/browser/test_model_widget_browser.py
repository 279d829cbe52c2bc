"""ModelWidget and ModelBrowser in a real JupyterLab 4 and Notebook 7 in Chromium.

Every test runs in both frontends (the ``lab`` fixture is parametrized). One notebook with four
widgets (sentiment; a fast streaming generator served by the embedded backend through
``register_model``; the slow countdown; a streamed Markdown note), a magic, and a model browser,
then ``%aix map`` batches in a cell the test appends, each result shown once, opened once per frontend
(``notebook`` fixture) and driven by clicks, one step per test so that each fails on its own (the
last step, the saved notebook, checks the cells whose steps passed). Screenshots of each state go
to the test-artifacts folder (``browser-failure-<step>.png`` when a step fails):
``browser-run-finished.png``, ``browser-stream-growing.png``, ``browser-stream-finished.png``,
``browser-long-running.png``, ``browser-cancelled.png``, ``browser-magic-progress.png``,
``browser-stream-markdown.png``, ``browser-model-browser.png``, ``browser-batch-progress.png``
(JupyterLab; Notebook 7's are ``browser-notebook7-*.png``).
The comm messages the browser receives while streaming are counted on the kernel websocket and
written to ``browser-stream-rate.json``.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

CELLS = [
    'from aix_jupyter import ModelWidget\nw = ModelWidget("local/sentiment-vader")\nw',
    # a real streamed model served by the embedded backend: ~200 chunks a second, for about 3 s
    "import time\nfrom aix_jupyter import register_model\n\n"
    "@register_model\n"
    "def words(text: str, count: int = 600, delay: float = 0.005):\n"
    '    """Streams numbered words, fast."""\n'
    "    for i in range(count):\n"
    "        time.sleep(delay)\n"
    '        yield f"{text}{i} "\n\n'
    'ws = ModelWidget("local/words")\nws.set(text="word")\nws',
    'wc = ModelWidget("local/countdown")\nwc.set(seconds=120)\nwc',
    # the magic's progress bar (make_progress in a live frontend: the widget bar)
    "%aix run local/countdown --seconds 1.5 Magic done",  # the kernel config loads %aix
    # streamed Markdown: rendered in place by the stream view once the stream ends
    "@register_model\n"
    "def notes(topic: str):\n"
    '    """Streams a short Markdown note."""\n'
    '    for piece in ["## ", topic, "\\n\\n", "- **first** point\\n", "- `code` & <b>not html</b>\\n"]:\n'
    "        time.sleep(0.05)\n"
    "        yield piece\n\n"
    'wn = ModelWidget("local/notes")\nwn.set(topic="Notes")\nwn',
    # the model browser: search, then open a model's widget below the table
    "from aix_jupyter import ModelBrowser\nmb = ModelBrowser()\nmb",
]


def _notebook(root: Path) -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    (root / "widget.ipynb").write_text(nbformat.writes(nb))
    return "widget.ipynb"


class CommCounter:
    """Counts the comm messages the browser receives from the kernel (one per widget update)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def attach(self, ws) -> None:
        if "/api/kernels/" in ws.url:
            ws.on("framereceived", self._frame)

    def _frame(self, payload) -> None:
        data = payload if isinstance(payload, bytes | bytearray) else str(payload).encode()
        if re.search(rb'"msg_type":\s*"comm_msg"', data[:4096]):
            self.times.append(time.monotonic())

    def between(self, start: float, end: float) -> int:
        return sum(1 for t in self.times if start <= t <= end)


def _bar_width(widget) -> str:
    return widget.locator(".widget-hprogress .progress-bar").first.evaluate("el => el.style.width")


@dataclass
class Notebook:
    """The open notebook page and what the steps share."""

    page: Any
    name: str
    counter: CommCounter
    artifacts: Path
    lab: Any = None
    widgets: Any = None
    passed: set[str] = field(default_factory=set)

    def shot(self, name: str) -> str:
        """Where the screenshot ``name`` goes (one name per frontend)."""
        return str(self.artifacts / self.lab.artifact(name))

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Run one step: a screenshot if it fails, recorded as passed if it does not."""
        try:
            yield
        except BaseException:
            self.page.screenshot(path=self.shot(f"browser-failure-{name}.png"), full_page=True)
            raise
        self.passed.add(name)


@pytest.fixture(scope="module")
def page(browser, lab) -> Iterator[Any]:
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(90_000)  # a loaded 2-core machine can be slow; nothing here waits on purpose
    try:
        yield page
    finally:
        page.close()


@pytest.fixture(scope="module")
def notebook(page, lab, artifacts_dir: Path) -> Notebook:
    """The notebook opened in JupyterLab with every cell run, once its four widgets are shown."""
    counter = CommCounter()
    page.on("websocket", counter.attach)
    nb = Notebook(page, _notebook(lab.root), counter, artifacts_dir, lab)
    with nb.step("open"):
        page.goto(lab.notebook_url(nb.name))
        # the same in both frontends: the notebook panel's kernel, started and idle
        page.wait_for_function(
            "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
            " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
            " return !!k && k.status === 'idle'; }"
        )
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        nb.widgets = page.locator(".aix-model-widget")
        nb.widgets.nth(3).wait_for(timeout=90_000)
        page.locator(".aix-model-browser").wait_for(timeout=90_000)
    return nb


def _cell(page, index: int):
    return page.locator(".jp-Notebook .jp-Cell").nth(index)


def _count_text(cell, text: str) -> int:
    """How many times ``text`` is shown in a cell's outputs (what a person reads: hidden parts and the
    widget's header, which describes the model, excluded)."""
    return cell.locator(".jp-Cell-outputArea").evaluate(
        "(el, t) => { const n = (s) => s.split(t).length - 1; let c = n(el.innerText);"
        " el.querySelectorAll('.aix-header').forEach((h) => { c -= n(h.innerText); }); return c; }",
        text,
    )


def test_run_fills_the_bar_and_shows_the_result_once(notebook: Notebook) -> None:
    """Set a parameter, Run: the bar reaches 100 % (green), the result appears, once."""
    page, sentiment = notebook.page, notebook.widgets.nth(0)
    with notebook.step("run"):
        run = sentiment.locator("button.aix-run")
        assert run.is_disabled()  # the required text is empty: Run waits for a valid form
        assert "missing required parameter 'data'" in sentiment.locator(".aix-error").first.inner_text()
        sentiment.locator("textarea").fill("What a wonderful, lovely day!")
        page.wait_for_function("el => !el.disabled", arg=run.element_handle())
        assert sentiment.locator(".aix-error").first.inner_text() == ""
        run.click()
        bar = sentiment.locator(".widget-hprogress .progress-bar").first
        page.wait_for_function(
            "el => el.classList.contains('progress-bar-success')", arg=bar.element_handle(), timeout=90_000
        )
        assert _bar_width(sentiment) == "100%"
        sentiment.locator(".aix-result").get_by_text("POSITIVE").wait_for()
        assert "finished" in sentiment.locator(".aix-progress-label").inner_text()
        # once: the widget's output carries the result as its fallback, which Lab does not show
        cell0 = _cell(page, 0)
        outputs = cell0.locator(".jp-Cell-outputArea > .jp-OutputArea-child")
        assert outputs.count() == 1 and outputs.nth(0).locator(".aix-model-widget").count() == 1
        time.sleep(1.0)  # a copy written after the result would have arrived by now
        assert outputs.count() == 1 and _count_text(cell0, "POSITIVE") == 1
        sentiment.scroll_into_view_if_needed()
        page.screenshot(path=notebook.shot("browser-run-finished.png"), full_page=False)


def test_stream_grows_then_ends_with_every_chunk(notebook: Notebook) -> None:
    """Stream: the text grows while the run goes on, then ends exactly; updates are coalesced."""
    llm = notebook.widgets.nth(1)
    with notebook.step("stream"):
        llm.scroll_into_view_if_needed()
        stream_view = llm.locator(".aix-stream-view")
        started = time.monotonic()
        llm.locator("button.aix-stream").click()
        lengths: list[int] = []
        shot = False
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # sampling the page (what a person sees), not a wait
            label = llm.locator(".aix-progress-label").inner_text()
            if label.startswith(("finished", "failed", "cancelled")):
                break
            length = len(stream_view.inner_text()) if stream_view.is_visible() else 0
            if length and (not lengths or length != lengths[-1]):
                lengths.append(length)
            if len(lengths) >= 3 and not shot:
                llm.screenshot(path=notebook.shot("browser-stream-growing.png"))
                shot = True
            time.sleep(0.05)
        ended = time.monotonic()
        assert llm.locator(".aix-progress-label").inner_text().startswith("finished"), lengths
        assert shot and lengths == sorted(lengths) and len(set(lengths)) >= 3, lengths
        # the exact text, every chunk, rendered in place as Markdown (one paragraph here), shown once
        markdown = llm.locator(".aix-stream-view .aix-markdown p")
        markdown.wait_for()
        assert markdown.inner_text().strip() == " ".join(f"word{i}" for i in range(600))
        assert not llm.locator(".aix-stream-view pre").is_visible()
        time.sleep(1.0)
        cell1 = _cell(notebook.page, 1)
        assert _count_text(cell1, "word599") == 1 and _count_text(cell1, "word0 ") == 1
        assert cell1.locator(".jp-Cell-outputArea > .jp-OutputArea-child").count() == 1
        llm.screenshot(path=notebook.shot("browser-stream-finished.png"))
        messages = notebook.counter.between(started, ended)
        rate = {"comm_messages": messages, "seconds": round(ended - started, 2)}
        rate["per_second"] = round(messages / max(ended - started, 1e-9), 1)
        Path(notebook.shot("browser-stream-rate.json")).write_text(json.dumps(rate))
        assert rate["per_second"] <= 25, (
            rate
        )  # coalesced: ~10 text repaints + a few progress updates a second


def test_cancel_turns_the_bar_orange_and_reads_cancelled(notebook: Notebook) -> None:
    """A long run, cancelled: Cancel only while it runs, the bar orange, "cancelled" (never FAILED)."""
    page, countdown = notebook.page, notebook.widgets.nth(2)
    with notebook.step("cancel"):
        countdown.scroll_into_view_if_needed()
        run, cancel = countdown.locator("button.aix-run"), countdown.locator("button.aix-cancel")
        assert run.is_enabled() and cancel.is_disabled()  # nothing in flight: nothing to cancel
        run.click()
        label = countdown.locator(".aix-progress-label")
        page.wait_for_function("el => /^running/.test(el.textContent)", arg=label.element_handle())
        page.wait_for_function("el => /[1-9]\\d* polls?/.test(el.textContent)", arg=label.element_handle())
        page.screenshot(path=notebook.shot("browser-long-running.png"))
        assert cancel.is_enabled() and run.is_disabled()  # in flight: Cancel, and no second Run
        assert countdown.locator("button.aix-clear").is_disabled()
        cancel.click()
        page.wait_for_function(
            "el => /^cancelled/.test(el.textContent)", arg=label.element_handle(), timeout=30_000
        )
        bar = countdown.locator(".widget-hprogress .progress-bar").first
        assert "progress-bar-warning" in (bar.get_attribute("class") or "")
        page.wait_for_function("el => !el.disabled", arg=run.element_handle())
        assert cancel.is_disabled()
        meta = countdown.locator(".aix-meta .aix-cancelled")
        meta.wait_for()
        assert meta.inner_text() == "cancelled"
        assert _count_text(_cell(page, 2), "FAILED") == 0
        page.screenshot(path=notebook.shot("browser-cancelled.png"))


def test_the_magic_shows_its_own_progress_bar(notebook: Notebook) -> None:
    """The magic's progress bar, displayed on its own, ended green at 100 %."""
    page = notebook.page
    with notebook.step("magic"):
        magic = page.locator(".jp-Notebook .jp-Cell").nth(3)
        magic.scroll_into_view_if_needed()
        magic_bar = magic.locator(".aix-progress .widget-hprogress .progress-bar").first
        page.wait_for_function(
            "el => el.classList.contains('progress-bar-success')", arg=magic_bar.element_handle()
        )
        assert magic_bar.evaluate("el => el.style.width") == "100%"
        assert magic.locator(".aix-progress-label").inner_text().startswith("finished")
        magic.get_by_text("Magic done").first.wait_for()
        magic.screenshot(path=notebook.shot("browser-magic-progress.png"))


def test_streamed_markdown_is_rendered_in_place(notebook: Notebook) -> None:
    """A streamed Markdown answer ends rendered (heading, list, bold, code), its HTML escaped, once."""
    page, notes = notebook.page, notebook.widgets.nth(3)
    with notebook.step("markdown"):
        notes.scroll_into_view_if_needed()
        notes.locator("button.aix-stream").click()
        rendered = notes.locator(".aix-stream-view .aix-markdown")
        rendered.locator("h2").wait_for()
        assert rendered.locator("h2").inner_text() == "Notes"
        items = rendered.locator("ul > li")
        assert items.count() == 2
        assert items.nth(0).locator("strong").inner_text() == "first"
        assert items.nth(1).locator("code").inner_text() == "code"
        assert items.nth(1).inner_text() == "code & <b>not html</b>"  # the model's HTML shown, not run
        assert rendered.locator("b").count() == 0
        assert _count_text(_cell(page, 4), "first point") == 1
        notes.screenshot(path=notebook.shot("browser-stream-markdown.png"))


def test_model_browser_searches_and_opens_a_widget(notebook: Notebook) -> None:
    """Type a query: the table narrows once typing pauses; choose the row: its widget opens and runs."""
    page = notebook.page
    with notebook.step("model-browser"):
        mb = page.locator(".aix-model-browser")
        mb.scroll_into_view_if_needed()
        openers = mb.locator("button.aix-browse-open")
        page.wait_for_function(
            "el => el.querySelectorAll('button.aix-browse-open').length >= 6", arg=mb.element_handle()
        )
        function = mb.locator(".aix-browse-function select")
        assert "sentiment-analysis" in function.evaluate("el => [...el.options].map(o => o.textContent)")
        chosen = function.evaluate("el => el.options[el.selectedIndex].textContent")
        assert chosen.replace("\u00a0", " ") == "all functions"  # ipywidgets shows spaces as nbsp
        mb.locator(".aix-browse-search input").press_sequentially("vader", delay=30)
        page.wait_for_function(
            "el => el.querySelectorAll('button.aix-browse-open').length === 1", arg=mb.element_handle()
        )
        assert openers.nth(0).inner_text().strip() == "VADER Sentiment"
        cells = mb.locator(".aix-browse-cells:not(.aix-browse-head) .aix-browse-cell")
        assert [cells.nth(i).inner_text() for i in range(cells.count())] == [
            "local/sentiment-vader",
            "aix_jupyter (local)",
            "sentiment-analysis",
            "no",
            "0 USD/request",
        ]
        assert mb.locator(".aix-browse-page").inner_text().startswith("page 1 of 1")
        openers.nth(0).click()
        opened = mb.locator(".aix-browse-detail .aix-model-widget")
        opened.wait_for()
        assert mb.locator(".aix-browse-run-line input").input_value() == "%aix run local/sentiment-vader "
        opened.locator("textarea").fill("What a wonderful, lovely day!")
        run = opened.locator("button.aix-run")
        page.wait_for_function("el => !el.disabled", arg=run.element_handle())
        run.click()
        opened.locator(".aix-result").get_by_text("POSITIVE").wait_for()
        mb.scroll_into_view_if_needed()
        mb.screenshot(path=notebook.shot("browser-model-browser.png"))


# three batches of the slow countdown, run by the test in a cell it appends: one that succeeds (watched
# while it runs), one with a failing item in four, one where every item fails
BATCH_CELL = (
    'ok = [f"item {i}" for i in range(40)]\n'
    'some_fail = [{"data": f"item {i}", "fail": i % 4 == 3} for i in range(16)]\n'
    'all_fail = ["a", "b", "c"]\n'
    "%aix map local/countdown --seconds 0.3 --concurrency 4 -o ok_batch ok\n"
    "%aix map local/countdown --seconds 0.2 --concurrency 4 -o some_batch some_fail\n"
    "%aix map local/countdown --seconds 0.1 --fail true -o failed_batch all_fail\n"
    "len(ok_batch), len(some_batch), len(failed_batch)"
)


def _run_new_cell(page, source: str) -> int:
    """Append a code cell holding ``source`` to the open notebook and run it; its index."""
    index = page.evaluate(
        "(src) => { const nb = window.jupyterapp.shell.currentWidget.content;"
        " const n = nb.model.cells.length;"
        " nb.model.sharedModel.insertCell(n, {cell_type: 'code', source: src});"
        " nb.activeCellIndex = n; return n; }",
        source,
    )
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-cell'); }")
    return int(index)


def _batch_sample(bar) -> tuple[int, str, str]:
    """``(done, fill width, label)`` of a batch bar, read from the page."""
    width, label = bar.evaluate(
        "el => [el.querySelector('.aix-fill').style.width,"
        " el.querySelector('.aix-progress-label').textContent]"
    )
    found = re.search(r"(\d+)/\d+ done", label)
    return (int(found.group(1)) if found else -1), width, label


def test_batch_progress_advances_and_ends_coloured_by_outcome(notebook: Notebook) -> None:
    """``%aix map``: the batch bar advances with the done count, then ends green (all succeeded),
    orange (some failed) or red (all failed)."""
    page = notebook.page
    with notebook.step("batch"):
        cell = _cell(page, _run_new_cell(page, BATCH_CELL))
        bars = cell.locator(".aix-batch")
        first = bars.first
        first.wait_for()
        cell.scroll_into_view_if_needed()  # the cell, not the bar: each repaint replaces the bar's node
        samples: list[tuple[int, str, str]] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # sampling the page (what a person sees), not a wait
            done, width, label = _batch_sample(first)
            if label.startswith("finished") or "aix-success" in (first.get_attribute("class") or ""):
                break
            if 0 < done < 40 and (not samples or done != samples[-1][0]):
                samples.append((done, width, label))
            time.sleep(0.05)
        assert len(samples) >= 2, samples
        assert [s[0] for s in samples] == sorted({s[0] for s in samples}), samples  # it only grows
        for done, width, label in samples:
            assert abs(float(width.rstrip("%")) - done / 40 * 100) < 0.1, (done, width)  # the done share
            assert label.startswith("running") and "in flight (concurrency 4)" in label, label
        expected = [
            ("aix-success", "finished", "40/40 done, 0 failed"),
            ("aix-warning", "finished", "16/16 done, 4 failed"),
            ("aix-danger", "finished", "3/3 done, 3 failed"),
        ]
        colours = []
        for i, (style, state, counts) in enumerate(expected):
            # each repaint replaces the bar's HTML: wait through a locator, not a node
            cell.locator(f".aix-batch.{style}").wait_for()
            bar = bars.nth(i)
            assert style in (bar.get_attribute("class") or ""), (i, style)
            _done, width, label = _batch_sample(bar)
            assert float(width.rstrip("%")) == 100, (i, width)
            assert label.startswith(state) and counts in label, (i, label)
            colours.append(bar.locator(".aix-fill").evaluate("el => getComputedStyle(el).backgroundColor"))
        assert len(set(colours)) == 3, colours  # three outcomes, three colours
        cell.locator(".jp-OutputArea-output").last.get_by_text("(40, 16, 3)").wait_for()
        outputs = cell.locator(".jp-Cell-outputArea")
        outputs.scroll_into_view_if_needed()
        outputs.screenshot(path=notebook.shot("browser-batch-progress.png"))


def _fallbacks(cell) -> list[str]:
    """The text/plain beside each widget view (what viewers without the widget show), and no other output."""
    assert all("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in cell.outputs)
    return [o["data"]["text/plain"] for o in cell.outputs]


def test_saved_notebook_keeps_each_result_as_its_widgets_fallback(notebook: Notebook, lab) -> None:
    """Saved, the notebook keeps each result (and the magic's final line) for kernel-less viewers."""
    expected = {
        "run": (0, ["POSITIVE"]),
        "stream": (1, [" ".join(f"word{i}" for i in range(600)) + " "]),
        "cancel": (2, ["[aix] local/countdown cancelled ("]),
    }
    checkable = [step for step in [*expected, "magic"] if step in notebook.passed]
    if not checkable:
        pytest.skip("no earlier step passed: nothing to find in the saved notebook")
    with notebook.step("save"):
        notebook.page.evaluate("async () => { await window.jupyterapp.commands.execute('docmanager:save'); }")
        saved = nbformat.read(lab.root / notebook.name, as_version=4)
        for step in checkable:
            if step == "magic":
                # the progress display's text fallback became the final line when the run ended
                progress_outputs = [
                    o["data"]["text/plain"]
                    for o in saved.cells[3].outputs
                    if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
                ]
                assert progress_outputs, saved.cells[3].outputs
                assert progress_outputs[0].startswith("[aix] local/countdown finished ("), progress_outputs
            else:
                index, outputs = expected[step]
                got = _fallbacks(saved.cells[index])
                if step == "cancel":
                    got = [text[: len(outputs[0])] for text in got]
                assert got == outputs, step
    missing = sorted({*expected, "magic"} - notebook.passed)
    if missing:
        pytest.skip(f"checked {checkable}; steps {missing} failed, so their outputs were not checked")
