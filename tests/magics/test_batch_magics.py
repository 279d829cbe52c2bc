"""``%aix map``, ``%aix compare`` and ``%aix usage`` in a real IPython shell against the embedded backend."""

from __future__ import annotations

import _thread
import re
import threading

import pandas as pd
import pytest

from aix_jupyter.core.batch import BatchResult
from aix_jupyter.core.compare import Comparison
from aix_jupyter.core.errors import ParameterError, RunCancelled
from aix_jupyter.magics.errors import MagicUsageError

ANSI = re.compile(r"\x1b\[[0-9;]*m")
VADER = "local/sentiment-vader"
LANGID = "local/langid-langdetect"
TEXTS = ["I love this library, it is wonderful", "This is an awful, terrible day", "What a great idea"]


@pytest.fixture
def magics(ip):
    return ip.magics_manager.registry["AixMagics"]


def one_line_error(out, kind, *words):
    assert isinstance(out.error, kind), out.error
    message = str(out.error)
    assert "\n" not in message
    for word in words:
        assert word in message, message


@pytest.mark.slow
def test_map_over_a_dataframe_column_into_a_new_column(cell, ip):
    ip.user_ns["df"] = pd.DataFrame({"text": TEXTS, "n": [1, 2, 3]})
    out = cell(f"%aix map {VADER} --concurrency 2 --column text --into mood -o res df")
    assert out.error is None, out.error
    result = ip.user_ns["res"]
    assert isinstance(result, BatchResult) and result.ok and len(result) == 3
    assert list(ip.user_ns["df"]["mood"]) == ["POSITIVE", "NEGATIVE", "POSITIVE"] == result.data
    table = out.result
    assert table.result is result
    assert [row[2:4] for row in table.rows] == [
        ["SUCCESS", "POSITIVE"],
        ["SUCCESS", "NEGATIVE"],
        ["SUCCESS", "POSITIVE"],
    ]
    assert table.note.startswith("3 items, 3 succeeded, 0 failed")
    # one progress line for the whole batch (a terminal without a tty: the final line only)
    assert re.fullmatch(
        rf"\[aix\] {VADER} finished: 3/3 done, 0 failed · 0 credits \(\d+\.\d\d s\)\n", out.stderr
    )


@pytest.mark.slow
def test_map_over_a_list_and_a_series_keeps_the_index(cell, ip):
    ip.user_ns["texts"] = TEXTS[:2]
    ip.user_ns["s"] = pd.Series(TEXTS[1:], index=["b", "c"])
    assert cell(f"%aix map {VADER} -o r1 texts").error is None
    assert ip.user_ns["r1"].data == ["POSITIVE", "NEGATIVE"]
    out = cell(f"%aix map {VADER} --threshold 0.5 --no-progress -o r2 s")
    assert out.error is None and out.stderr == ""
    assert ip.user_ns["r2"].input_index == ["b", "c"] and ip.user_ns["r2"].parameters == {"threshold": 0.5}
    assert [row[0] for row in out.result.rows] == ["b", "c"]


@pytest.mark.parametrize(
    ("setup", "line", "kind", "words"),
    [
        (
            {"df": pd.DataFrame({"a": ["x"], "b": ["y"]})},
            f"%aix map {VADER} df",
            MagicUsageError,
            ["--column", "a, b"],
        ),
        (
            {"df": pd.DataFrame({"a": ["x"]})},
            f"%aix map {VADER} --column z df",
            MagicUsageError,
            ["'z'", "a"],
        ),
        (
            {"df": pd.DataFrame({"a": ["x"]})},
            f"%aix map {VADER} --into a df",
            MagicUsageError,
            ["--into", "input column"],
        ),
        ({"xs": ["x"]}, f"%aix map {VADER} --into out xs", MagicUsageError, ["--into", "DataFrame", "list"]),
        ({"n": 5}, f"%aix map {VADER} n", MagicUsageError, ["'n'", "int"]),
        ({}, f"%aix map {VADER} missing", MagicUsageError, ["'missing'"]),
        ({}, f"%aix map {VADER}", MagicUsageError, ["SOURCE"]),
        ({"xs": ["x"]}, f"%aix map {VADER} --threshold 5 xs", ParameterError, ["threshold"]),
        ({"xs": ["x"]}, f"%aix map {VADER} --nope 1 xs", ParameterError, ["--nope", "--threshold"]),
        ({"xs": ["x"]}, f"%aix map {VADER} --concurrency 0 xs", MagicUsageError, ["--concurrency"]),
        ({}, f"%aix compare {VADER} -- hi", MagicUsageError, ["two or more"]),
        ({}, f"%aix compare {VADER} {LANGID}", MagicUsageError, ["input"]),
        ({}, f"%aix compare {VADER} {LANGID} --nope 1 -- hi", ParameterError, ["--nope"]),
        ({}, f"%aix compare {VADER} {LANGID} --threshold 7 -- hi", ParameterError, ["threshold"]),
    ],
)
def test_bad_batch_lines_give_one_line_errors(cell, ip, setup, line, kind, words):
    ip.user_ns.update(setup)
    out = cell(line)
    one_line_error(out, kind, *words)
    assert not out.outputs


@pytest.mark.slow
def test_compare_on_the_line_and_in_a_cell(cell, ip):
    text = "The weather is lovely today and we are going to the beach"
    out = cell(f"%aix compare {VADER} {LANGID} --threshold 0.2 -o cmp -- {text}")
    assert out.error is None, out.error
    comparison = out.result
    assert isinstance(comparison, Comparison) and comparison is ip.user_ns["cmp"]
    assert comparison.model_ids == [VADER, LANGID] and comparison.ok
    assert comparison.responses[VADER].data == ["POSITIVE"] and comparison.responses[LANGID].data == ["en"]
    assert comparison.responses[VADER].parameters == {"threshold": 0.2}  # only the model declaring it
    assert comparison.responses[LANGID].parameters == {}
    assert out.stderr.startswith(f"[aix] {VADER} vs {LANGID} finished: 2/2 done, 0 failed")
    out = cell(f"%%aix compare {VADER} {LANGID}\n{text}")
    assert out.error is None, out.error
    assert out.result.inputs == [text + "\n"] and out.result.responses[LANGID].data == ["en"]
    one_line_error(cell(f"%%aix compare {VADER} {LANGID} -- twice\n{text}"), MagicUsageError, "twice")


@pytest.mark.slow
def test_usage_counts_runs_streams_batches_items_and_failures(cell, ip):
    ip.user_ns["xs"] = ["good", {"nope": 1}, "fine"]  # the dict lacks the model's 'data': it fails
    assert cell(f"%aix run {VADER} I love it").error is None
    assert cell("%aix stream local/typewriter --delay 0 one two").error is None
    assert cell(f"%aix map {VADER} -o mixed xs").error is None
    assert ip.user_ns["mixed"].failed == [1]
    assert cell(f"%aix compare {VADER} {LANGID} -- hello world").error is None
    out = cell("%aix usage")
    assert out.error is None
    rows = {row[0]: row[1:] for row in out.result.rows}
    assert rows[VADER] == ["1", "0", "2", "5", "1", "0"]
    assert rows["local/typewriter"] == ["0", "1", "0", "1", "0", "0"]
    assert rows[LANGID] == ["0", "0", "1", "1", "0", "0"]
    assert out.result.note == ("1 run, 1 stream, 3 batches; 7 items, 1 failed; 0 credits in this kernel")


def test_completion_of_map_compare_and_usage(ip):
    from IPython.core.completer import provisionalcompleter

    def complete(line):
        with provisionalcompleter():
            return [c.text for c in ip.Completer.completions(line, len(line))]

    assert complete("%aix ma") == ["map"] and complete("%aix us") == ["usage"]
    assert complete("%aix comp") == ["compare"]
    assert complete(f"%aix map {VADER} --con") == ["--concurrency"]
    assert {"--column", "--into", "--threshold"} <= set(complete(f"%aix map {VADER} --"))
    assert complete(f"%aix compare {VADER} local/lang") == [LANGID]
    assert {"--threshold", "--concurrency", "--"} <= set(complete(f"%aix compare {VADER} {LANGID} --"))


def ctrl_c(cell, magics, monkeypatch, line, ready):
    """Run ``line``; press Ctrl-C (a real SIGINT-like interrupt) once ``ready(events so far)``."""
    seen: list = []
    started = threading.Event()
    original = magics._batch_progress

    def progress(label, enabled):
        inner = original(label, enabled)

        def hook(event):
            inner(event)
            seen.append(event)
            if ready(seen):
                started.set()

        hook.close = inner.close  # type: ignore[attr-defined]
        return hook

    monkeypatch.setattr(magics, "_batch_progress", progress)

    def press():
        if started.wait(60):
            _thread.interrupt_main()

    helper = threading.Thread(target=press, daemon=True)
    helper.start()
    out = cell(line)
    helper.join()
    return out


def polled(events):
    return any(e.kind == "run" and e.run is not None and e.run.kind == "polled" for e in events)


@pytest.mark.slow
def test_ctrl_c_keeps_the_partial_batch_result(cell, ip, magics, monkeypatch):
    ip.user_ns["xs"] = ["a", "b", "c", "d"]
    line = "%aix map local/countdown --seconds 30 --concurrency 2 -o partial xs"
    out = ctrl_c(cell, magics, monkeypatch, line, polled)
    one_line_error(out, RunCancelled, "local/countdown", "interrupted", "partial")
    result = ip.user_ns["partial"]
    assert isinstance(result, BatchResult) and len(result) == 4 and result.stopped == "interrupted"
    assert not result.ok and len(result.failed) == 4


@pytest.mark.slow
def test_ctrl_c_in_compare_keeps_every_models_finished_results(cell, ip, magics, monkeypatch):
    def ready(events):  # the quick model ended, the slow one runs on the server
        return polled(events) and any(e.kind == "item_finished" and e.model_id == VADER for e in events)

    line = f"%aix compare local/countdown {VADER} --seconds 30 -o partial -- I love it"
    out = ctrl_c(cell, magics, monkeypatch, line, ready)
    one_line_error(out, RunCancelled, "interrupted", "partial Comparison is in partial")
    partial = ip.user_ns["partial"]
    assert isinstance(partial, Comparison) and partial.model_ids == ["local/countdown", VADER]
    assert partial.responses[VADER].data == ["POSITIVE"]  # the model that finished keeps its result
    slow = partial.responses["local/countdown"]
    assert slow.stopped == "interrupted" and slow.failed == [0]


def test_compare_takes_a_custom_servers_plain_ids(cell, ip, monkeypatch):
    """Ids without '/' that are not 24-digit hex (any custom server's) are models of compare too."""
    from tests.core.wireserver import WireServer, default_metadata

    with WireServer() as server:
        for model_id in ("shout", "my-model"):
            server.models[model_id] = default_metadata(model_id)
        monkeypatch.setenv("AIX_BACKEND_URL", server.url)
        out = cell("%aix compare shout my-model -o cmp -- hello there")
        assert out.error is None, out.error
        assert out.result.model_ids == ["shout", "my-model"] and out.result.ok
        assert [out.result.responses[m].data for m in ("shout", "my-model")] == [["echo: hello there"]] * 2
        out = cell("%%aix compare shout my-model --temperature 0.1\nfrom the cell")
        assert out.error is None, out.error
        assert out.result.responses["my-model"].data == ["echo: from the cell\n"]
        assert out.result.responses["shout"].parameters == {"temperature": 0.1}
        posted = sorted(r.path for r in server.seen("POST", "/api/v2/execute/"))
    assert posted == ["/api/v2/execute/my-model"] * 2 + ["/api/v2/execute/shout"] * 2
    one_line_error(cell("%aix compare shout -- hi"), MagicUsageError, "two or more MODEL ids")
