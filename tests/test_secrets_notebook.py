"""The API key echoed back by a server reaches no display output, widget state or log of the notebook
layer (``%aix run`` / ``%aix stream`` in a real IPython shell, and ``ModelWidget``)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

import aix_jupyter
from aix_jupyter import ModelWidget, load_ipython_extension
from tests.core.conftest import KEY
from tests.core.wireserver import Reply, WireServer

ESCAPED = "".join(f"\\u{ord(c):04x}" for c in KEY)
FIELDS = {
    "status": "SUCCESS",
    "completed": True,
    "data": f"hello {KEY}",
    "details": [KEY],
    "usage": {"prompt": KEY},
    "supplierError": KEY,
    "echo": {"nested": [KEY]},
}
ECHOES = {
    "http error body": lambda: Reply(401, json={"error": f"key {KEY} is invalid"}, headers={"X-Echo": KEY}),
    "200 reply fields": lambda: Reply(json=FIELDS),
    "failed reply": lambda: Reply(json={"status": "FAILED", "error_message": KEY, "error": KEY, "data": KEY}),
    "key as JSON escapes": lambda: Reply(
        body=json.dumps(FIELDS).replace(KEY, ESCAPED).encode(), headers={"Content-Type": "application/json"}
    ),
    "sse events": lambda: Reply(sse=[json.dumps({"data": f"a {KEY} "}), json.dumps({"error": f"no {KEY}"})]),
}


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> Any:
    with WireServer() as server:
        monkeypatch.setenv("AIX_BACKEND_URL", server.url)
        monkeypatch.setenv("TEAM_API_KEY", KEY)
        monkeypatch.delenv("AIX_FRONTEND", raising=False)  # no kernel: the "terminal" frontend
        yield server


@pytest.fixture
def shell() -> Any:
    ip = InteractiveShell.instance()
    ip.config.pop("AixMagics", None)  # settings another test may have left on the shared shell
    load_ipython_extension(ip)
    yield ip
    aix_jupyter.unload_ipython_extension(ip)


def _rendered(ip: Any, source: str) -> list[str]:
    with capture_output(display=True) as cap:
        result = ip.run_cell(source, store_history=True)
    out = [cap.stdout, cap.stderr, repr(result.result), repr(result.error_in_exec)]
    for o in cap.outputs:
        out += [json.dumps(o.data, default=repr), json.dumps(o.metadata, default=repr)]
    if result.result is not None:
        out += [json.dumps(d, default=repr) for d in ip.display_formatter.format(result.result)]
    return out


CASES = [(v, e) for v in ("run", "stream") for e in ECHOES if "sse" not in e or v == "stream"]


@pytest.mark.parametrize(("verb", "echo"), CASES)
def test_magic_outputs_never_show_an_echoed_key(wire, shell, caplog, verb, echo):
    caplog.set_level(logging.DEBUG)
    wire.script("POST /api/v2/execute", ECHOES[echo]())
    shown = _rendered(shell, f"%aix {verb} echo hello there")
    shown += [r.getMessage() for r in caplog.records]
    assert wire.seen("POST", "/api/v2/execute"), ("the run reached the server", shown[:4])
    assert not [t for t in shown if KEY in t]
    assert any("***" in t for t in shown), "the echo was shown, redacted"


def _widget_state(widget: Any) -> list[str]:
    import ipywidgets

    seen, out, todo = set(), [], [widget]
    while todo:
        w = todo.pop()
        if id(w) in seen:
            continue
        seen.add(id(w))
        if isinstance(w, ipywidgets.Widget):
            state = w.get_state()
            out.append(json.dumps(state, default=repr))
            todo += [v for v in vars(w).values() if isinstance(v, ipywidgets.Widget)]
            todo += [c for c in getattr(w, "children", ()) if isinstance(c, ipywidgets.Widget)]
    return out


@pytest.mark.parametrize(("verb", "echo"), CASES)
def test_widget_state_never_holds_an_echoed_key(wire, caplog, verb, echo):
    caplog.set_level(logging.DEBUG)
    widget = ModelWidget("echo")
    wire.script("POST /api/v2/execute", ECHOES[echo]())
    try:
        response: Any = getattr(widget, verb)(text="hello there")
    except Exception as exc:  # an error is a fine outcome; it must not carry the key
        response = exc
    shown = [*_widget_state(widget), repr(response), repr(widget.history), widget.text]
    shown += [r.getMessage() for r in caplog.records]
    assert wire.seen("POST", "/api/v2/execute"), "the run reached the server"
    assert not [t for t in shown if KEY in t]
    assert any("***" in t for t in shown), "the echo was shown, redacted"
