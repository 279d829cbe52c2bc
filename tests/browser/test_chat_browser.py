"""ChatWidget on the local LLM in a real JupyterLab 4 and Notebook 7 in Chromium.

Every test runs in both frontends (the ``lab`` fixture is parametrized). One notebook: a cell that
records, in the kernel, the messages the embedded backend builds each LLM prompt from (the server's
side of the conversation), and a ``ChatWidget`` on ``local/smollm2-135m`` at temperature 0. The steps,
one test each: Enter sends and Shift+Enter adds a line; two turns where the second question needs the
first answer (the server got the first exchange with the second message, and the answer uses it);
Stop during a long reply; New chat; the saved notebook's fallback; ``%aix chat`` and its widget. Screenshots:
``browser-chat-two-turns.png``, ``browser-chat-settings.png``, ``browser-chat-stopped.png``,
``browser-chat-new-chat.png``, ``browser-chat-magic.png`` (Notebook 7's are ``browser-notebook7-chat-*.png``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from tests.browser.test_model_widget_browser import Notebook, _cell, _run_new_cell

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

SPY = (
    "import json\n"
    "import aix_jupyter.backend.models.smollm2 as smollm2\n\n"
    "seen = []  # the messages the server built each prompt from\n"
    "_build = smollm2.build_messages\n\n"
    "def _spy(*args, **kwargs):\n"
    "    messages = _build(*args, **kwargs)\n"
    "    seen.append(messages)\n"
    "    return messages\n\n"
    "smollm2.build_messages = _spy"
)
CELLS = [
    SPY,
    "from aix_jupyter import ChatWidget\n"
    'cw = ChatWidget("local/smollm2-135m", temperature=0, max_tokens=32)\ncw',
]
FIRST = "Name one planet."
SECOND = "Tell me more about it."  # "it": the planet the first answer named


def _notebook(root: Path) -> str:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in CELLS]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    (root / "chat.ipynb").write_text(nbformat.writes(nb))
    return "chat.ipynb"


class _NoCounter:
    def between(self, start: float, end: float) -> int:
        return 0


@pytest.fixture(scope="module")
def page(browser, lab) -> Iterator[Any]:
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(90_000)
    try:
        yield page
    finally:
        page.close()


@pytest.fixture(scope="module")
def chat(page, lab, artifacts_dir: Path) -> Notebook:
    """The notebook open with its cells run, once the chat widget is shown."""
    nb = Notebook(page, _notebook(lab.root), _NoCounter(), artifacts_dir, lab)  # type: ignore[arg-type]
    with nb.step("chat-open"):
        page.goto(lab.notebook_url(nb.name))
        page.wait_for_function(
            "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
            " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
            " return !!k && k.status === 'idle'; }"
        )
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        nb.widgets = page.locator(".aix-chat")
        nb.widgets.first.locator(".aix-chat-input textarea").wait_for(timeout=90_000)
    return nb


def _kernel_json(page, expression: str) -> Any:
    """Evaluate ``expression`` in the kernel (a cell the test appends) and return its JSON value."""
    cell = _cell(page, _run_new_cell(page, f"print('@@' + json.dumps({expression}))"))
    out = cell.locator(".jp-OutputArea-output").filter(has_text="@@").first
    out.wait_for(timeout=60_000)
    return json.loads(out.inner_text().strip()[2:])


def _turns(widget) -> int:
    return widget.locator(".aix-turn").count()


def _wait_meta(page, widget, pattern: str, timeout: float = 180_000) -> str:
    meta = widget.locator(".aix-meta").last
    page.wait_for_function(
        "([el, p]) => new RegExp(p).test(el.textContent)",
        arg=[meta.element_handle(), pattern],
        timeout=timeout,
    )
    return meta.inner_text()


def _set_max_tokens(page, widget, value: int) -> None:
    """Type ``value`` into the max_tokens slider's readout in the settings panel."""
    readout = widget.locator(".aix-param-max_tokens .widget-readout")
    readout.wait_for()
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(str(value))
    page.keyboard.press("Enter")
    page.wait_for_function(f"el => el.textContent.trim() === '{value}'", arg=readout.element_handle())


def _send(page, widget, text: str) -> None:
    box = widget.locator(".aix-chat-input textarea")
    box.click()
    box.fill(text)
    box.press("Enter")


def test_enter_sends_and_shift_enter_adds_a_line(chat: Notebook) -> None:
    page, widget = chat.page, chat.widgets.first
    with chat.step("chat-keys"):
        box = widget.locator(".aix-chat-input textarea")
        box.click()
        box.press_sequentially("one")
        box.press("Shift+Enter")
        box.press_sequentially("two")
        assert box.input_value() == "one\ntwo"
        time.sleep(0.5)  # a turn (or a notebook shortcut: a cell run) would have started by now
        assert _turns(widget) == 0
        assert page.locator(".jp-Notebook .jp-Cell").count() == len(CELLS)  # Shift+Enter ran no cell
        box.fill("")


def test_two_turns_the_second_needs_the_first(chat: Notebook) -> None:
    """Two turns: the server got the first exchange with the second message, and the answer uses it."""
    page, widget = chat.page, chat.widgets.first
    with chat.step("chat-turns"):
        _send(page, widget, FIRST)
        widget.locator(".aix-turn-assistant .aix-markdown").first.wait_for(timeout=180_000)
        _wait_meta(page, widget, "2 messages")
        assert widget.locator(".aix-chat-input textarea").input_value() == ""  # sent: the box is empty
        _send(page, widget, SECOND)
        _wait_meta(page, widget, "4 messages")
        assert _turns(widget) == 4
        answers = widget.locator(".aix-turn-assistant .aix-markdown")
        first_answer, second_answer = answers.nth(0).inner_text(), answers.nth(1).inner_text()
        state = _kernel_json(page, '{"seen": seen, "history": cw.conversation.history}')
        history = state["history"]
        assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
        assert history[0]["content"] == FIRST and history[2]["content"] == SECOND
        # the server's side: the second prompt was built from the first exchange, then the question
        second_request = [m for m in state["seen"][-1] if m["role"] != "system"]
        assert second_request == [
            {"role": "user", "content": FIRST},
            {"role": "assistant", "content": history[1]["content"]},
            {"role": "user", "content": SECOND},
        ]
        assert [m for m in state["seen"][0] if m["role"] != "system"] == [{"role": "user", "content": FIRST}]
        assert " ".join(first_answer.split())[:40] == " ".join(history[1]["content"].split())[:40]
        named = re.search(r"Kepler-\d+", history[1]["content"])  # the planet the first answer named
        assert named and named.group(0) in second_answer, (first_answer, second_answer)
        widget.scroll_into_view_if_needed()
        widget.screenshot(path=chat.shot("browser-chat-two-turns.png"))


def test_stop_cancels_a_long_reply(chat: Notebook) -> None:
    """Settings: max_tokens raised; a long reply is stopped while it streams and is not kept."""
    page, widget = chat.page, chat.widgets.first
    with chat.step("chat-stop"):
        widget.locator(
            ".aix-chat-settings .jupyter-widget-Collapse-header, .aix-chat-settings .p-Collapse-header, "
            ".aix-chat-settings .lm-Collapse-header"
        ).first.click()
        _set_max_tokens(page, widget, 1024)
        widget.screenshot(path=chat.shot("browser-chat-settings.png"))
        before = _turns(widget)
        _send(page, widget, "Write a very long story about a dragon and a knight.")
        stop = widget.locator("button.aix-chat-stop")
        page.wait_for_function("el => !el.disabled", arg=stop.element_handle())
        reply = widget.locator(".aix-turn-assistant").last
        page.wait_for_function("el => el.innerText.trim().length > 20", arg=reply.element_handle())
        stop.click()
        _wait_meta(page, widget, "stopped", timeout=60_000)
        partial = reply.inner_text()
        time.sleep(1.0)
        assert reply.inner_text() == partial  # nothing arrives after Stop
        assert stop.is_disabled() and widget.locator("button.aix-chat-send").is_enabled()
        assert _turns(widget) == before + 2
        state = _kernel_json(page, '{"history": len(cw.conversation.history), "running": cw.running}')
        assert state == {"history": 4, "running": False}  # the stopped turn is not part of the conversation
        _set_max_tokens(page, widget, 32)
        widget.scroll_into_view_if_needed()
        widget.screenshot(path=chat.shot("browser-chat-stopped.png"))


def test_new_chat_forgets_the_turns(chat: Notebook) -> None:
    page, widget = chat.page, chat.widgets.first
    with chat.step("chat-new"):
        widget.locator("button.aix-chat-new").click()
        page.wait_for_function(
            "el => el.querySelectorAll('.aix-turn').length === 0", arg=widget.element_handle()
        )
        _send(page, widget, SECOND)
        _wait_meta(page, widget, "2 messages")
        state = _kernel_json(page, '{"seen": seen[-1], "history": len(cw.conversation.history)}')
        assert state["history"] == 2
        assert [m for m in state["seen"] if m["role"] != "system"] == [{"role": "user", "content": SECOND}]
        widget.screenshot(path=chat.shot("browser-chat-new-chat.png"))


def test_saved_notebook_shows_the_transcript(chat: Notebook, lab) -> None:
    if "chat-new" not in chat.passed:
        pytest.skip("the new-chat step failed: the transcript to find is unknown")
    with chat.step("chat-save"):
        chat.page.evaluate("async () => { await window.jupyterapp.commands.execute('docmanager:save'); }")
        saved = nbformat.read(lab.root / chat.name, as_version=4)
        outputs = [
            o
            for o in saved.cells[1].outputs
            if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
        ]
        assert len(outputs) == 1
        fallback = outputs[0]["data"]["text/markdown"]
        assert SECOND in fallback and FIRST not in fallback  # the transcript after New chat and one turn


def test_the_magic_streams_into_one_markdown_output_then_shows_its_widget(chat: Notebook) -> None:
    """``%aix chat``: the reply ends as one rendered Markdown output; ``%aix chat MODEL`` alone shows a
    ChatWidget holding that conversation's turn."""
    page = chat.page
    with chat.step("chat-magic"):
        line = "%aix chat local/smollm2-135m --session magic --temperature 0 --max_tokens 16 Name one planet."
        cell = _cell(page, _run_new_cell(page, line))
        rendered = cell.locator(".jp-OutputArea-output.jp-RenderedMarkdown")
        rendered.wait_for(timeout=120_000)
        page.wait_for_function(
            "el => /Kepler/.test(el.innerText)", arg=rendered.element_handle(), timeout=120_000
        )
        time.sleep(0.5)  # a second output would have arrived by now
        assert cell.locator(".jp-OutputArea-output").count() == 1
        assert "waiting for the first chunk" not in cell.inner_text()
        widget_cell = _cell(page, _run_new_cell(page, "%aix chat local/smollm2-135m --session magic"))
        widget = widget_cell.locator(".aix-chat")
        widget.wait_for(timeout=60_000)
        assert widget.locator(".aix-turn").count() == 2
        assert "Name one planet." in widget.locator(".aix-turn-user").first.inner_text()
        widget_cell.scroll_into_view_if_needed()
        page.screenshot(path=chat.shot("browser-chat-magic.png"))
