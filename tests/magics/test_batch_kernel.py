"""``%aix map`` / ``compare`` / ``usage`` inside a real ipykernel, as a headless executor and a live
frontend see them: one progress display per batch, the summary as the cell's result."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_kernel import kernel_with_aix, of, run  # the same helpers as the other real-kernel tests

ROOT = Path(__file__).resolve().parents[2]
VADER = "local/sentiment-vader"
SETUP = (
    "import pandas as pd\n"
    "df = pd.DataFrame({'text': ['I love it, wonderful', 'An awful, terrible day', 'What a great idea']})"
)


@pytest.fixture(scope="module")
def kernel():
    yield from kernel_with_aix(SETUP)


def stderr(msgs):
    return "".join(m["content"]["text"] for m in of(msgs, "stream") if m["content"]["name"] == "stderr")


@pytest.mark.slow
def test_headless_map_writes_one_line_and_shows_the_summary_table(kernel):
    _, kc = kernel
    _, msgs = run(kc, f"%aix map {VADER} --column text --into mood -o res df", allow_stdin=False)
    assert re.fullmatch(
        rf"\[aix\] {VADER} finished: 3/3 done, 0 failed · 0 credits \(\d+\.\d\d s\)\n", stderr(msgs)
    )
    assert not of(msgs, "display_data", "update_display_data")
    (result,) = of(msgs, "execute_result")
    data = result["content"]["data"]
    assert "<table" in data["text/html"] and "NEGATIVE" in data["text/plain"]
    assert "3 items, 3 succeeded, 0 failed" in data["text/plain"]
    _, msgs = run(kc, "list(df['mood']), res.ok", allow_stdin=False)
    text = of(msgs, "execute_result")[0]["content"]["data"]["text/plain"]
    assert text == "(['POSITIVE', 'NEGATIVE', 'POSITIVE'], True)"


@pytest.mark.slow
def test_live_map_shows_one_widget_bar_whose_fallback_ends_as_the_final_line(kernel):
    _, kc = kernel
    _, msgs = run(kc, f"%aix map {VADER} --column text df", allow_stdin=True)
    shown = of(msgs, "display_data")
    bars = [m for m in shown if "application/vnd.jupyter.widget-view+json" in m["content"]["data"]]
    assert len(bars) == 1, shown  # one bar for the batch, not one per item
    display_id = bars[0]["content"]["transient"]["display_id"]
    updates = [
        m for m in of(msgs, "update_display_data") if m["content"]["transient"]["display_id"] == display_id
    ]
    assert updates, "the bar's text fallback was not replaced by the final line"
    final = updates[-1]["content"]["data"]["text/plain"]
    assert re.fullmatch(rf"\[aix\] {VADER} finished: 3/3 done, 0 failed · 0 credits \(\d+\.\d\d s\)", final)
    assert stderr(msgs) == ""


LEDGER = "get_ipython().magics_manager.registry['AixMagics'].ledger"
COMPARE = (
    "%%aix compare local/sentiment-vader local/langid-langdetect\nThe weather is lovely, we go to the beach"
)


def counts(kc, model_id):
    code = f"u = {LEDGER}.models.get({model_id!r}); (u.batches, u.items) if u else (0, 0)"
    _, msgs = run(kc, code, allow_stdin=False)
    return eval(of(msgs, "execute_result")[0]["content"]["data"]["text/plain"])


@pytest.mark.slow
def test_compare_and_usage_in_a_kernel(kernel):
    _, kc = kernel
    batches, items = counts(kc, VADER)
    _, msgs = run(kc, COMPARE, allow_stdin=False)
    assert stderr(msgs).startswith(f"[aix] {VADER} vs local/langid-langdetect finished: 2/2 done, 0 failed")
    (result,) = of(msgs, "execute_result")
    assert "aix-compare" in result["content"]["data"]["text/html"]
    assert "POSITIVE" in result["content"]["data"]["text/plain"]
    _, msgs = run(kc, "%aix usage", allow_stdin=False)
    text = of(msgs, "execute_result")[0]["content"]["data"]["text/plain"]
    assert re.search(rf"^{VADER}\s+0\s+0\s+{batches + 1}\s+{items + 1}\s+0\s+0$", text, re.M), text
    assert re.search(r"^local/langid-langdetect\s+0\s+0\s+1\s+1\s+0\s+0$", text, re.M), text
