"""Differential test: the same calls through the official SDK 0.2.48 and through aix_jupyter.

``diff_probes.py`` runs once in the SDK's own venv (the one the conformance test builds) and once
with aix_jupyter, both pointed at the same real wire server on loopback; every observation of the
two reports must be equal, except those listed in ``EXPECTED``: the places where the project differs
from the SDK on purpose, each with its reason (mostly the SDK defects of PROTOCOL.md). An entry
that no longer differs fails too, so the table stays true.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.core.wireserver import Reply, WireServer, default_metadata
from tests.sdk_venv import run_script, sdk_python

pytestmark = [pytest.mark.sdk, pytest.mark.slow]

PROBES = Path(__file__).with_name("diff_probes.py")
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "diff-token-0123456789"
JOB_URL = re.compile(r"(/api/v1/data/)[0-9a-f-]+")

# Why we differ on purpose (PROTOCOL.md numbers the SDK's defects).
SUPPLIER = (
    "the supplier is kept as given (text or dict); the SDK maps it onto its Supplier enum and turns a dict "
    "that is not exactly one of its entries into Supplier.AIXPLAIN, so a model by 'Acme' shows 'by aixplain' "
    "(and the default 'aiXplain' prints as 'aixplain')"
)
NO_PARAMS = (
    "defect 4: without parameters the SDK's model_params is None and to_dict() raises AttributeError; "
    "ours is an empty ModelParameters and to_dict() works"
)
TO_DICT = (
    "defect 4: to_dict() has the SDK's keys in its order, then what the SDK's form loses (version, "
    "is_subscribed, cost, created_at, supports_streaming, function_type) and each parameter's schema "
    "extensions (minValue, ...), so from_dict() gives the model back; the supplier as given (see SUPPLIER)"
)
FROM_DICT = (
    "defect 4: from_dict() restores status, function_type, cost, ... and the parameters' set values, "
    "which the SDK's drops"
)
FROM_DICT_NO_FUNCTION = (
    "defect 4: the SDK's from_dict() raises ValueError (Function(None)) without 'function'"
)
ASSET_TEXT = (
    "status and function_type given as text are read case-insensitively into the enums; the SDK keeps the "
    "text as given and silently turns 'DRAFT' into ONBOARDED"
)
FUNCTION_TEXT = (
    "a function given as text becomes the Function enum (equal to the text); the SDK keeps the text"
)
LLM_KEY = (
    "the SDK's LLM(api_key=None) keeps None as its key; ours reads the configured key when it is used "
    "(as Model does, see KEY_AT_USE)"
)
LLM_FUNCTION = (
    "LLM(function=<not text generation>) raises a one-line AixError; the SDK's uses assert, which "
    "python -O removes"
)
LLM_MUTATES = (
    "the SDK's LLM.run writes its arguments (context, prompt, history, max_tokens, ..., data) into the "
    "caller's parameters dict; ours sends the same body and leaves the dict as it was"
)
LLM_CLASS_FORMAT = (
    "response_format=<pydantic class>: the SDK's LLM.run raises TypeError (it cannot serialise the class); "
    "ours sends the class's JSON schema (model_json_schema(), as the SDK's agents send expected_output)"
)
FACTORY_INFO = (
    "the SDK's factory passes its own constructor arguments (code, parameters, inputs, temperature, "
    "attributes) to Model, where they land in additional_info"
)
FUNCTION_IO = (
    "the SDK fills input_params/output_params from its built-in table of functions (the function's generic "
    "inputs, not the model's); ours leaves them None: the model's own inputs are model_params"
)
LIST_ITEMS = "list() also returns the models under 'items', the wire's name (the magic reads it)"
RESPONSE_STATUS = (
    "ModelResponse.status is always a ResponseStatus (text parsed case-insensitively, unknown or empty text "
    "is FAILED); the SDK keeps any text, so its ModelResponse(status='success').status != SUCCESS, and "
    "its LLM class returns the wire's text as status"
)
RESPONSE_EQ = "ModelResponse compares by content (the SDK's by identity), so equal responses are =="
STREAM_DONE = "the final SUCCESS after [DONE] says completed=True; the SDK's says completed=False"
STREAM_BLANKS = (
    "defect 8: the SDK's run_stream yields an empty chunk for every blank line of the event stream, and a "
    "second SUCCESS chunk at the end of it"
)
STREAM_ERROR = (
    "an error event ends the stream with a FAILED response that carries the error; the SDK's yields an "
    "empty chunk for it, goes on and ends SUCCESS"
)
ERROR_CODE = "defect 3: a reply that carries error_code makes the SDK's run() raise TypeError"
POLL_URL = (
    "defect 6: a 2xx reply without status reads as IN_PROGRESS with data as the poll URL; 'plain' is no URL "
    "on the configured host, so ours fails at once (the run is over: completed=True) instead of polling it"
)
STREAM_NO_DONE = (
    "defect 8: a stream that ends before [DONE] ends with a FAILED response; the SDK's just stops, "
    "IN_PROGRESS, as if it were complete"
)
FINETUNE_FRACTIONAL = (
    "defect 7: with fractional epochs the SDK's check_finetune_status fails inside (int(epoch) never equals "
    "the target epoch), logs, and returns None"
)
FUNCTION_TYPE_STR = (
    "FunctionType is a str enum like the others (the SDK's is a plain Enum): it equals its wire value"
)
UNKNOWN_PARAMETER = (
    "an unknown parameter raises UnknownParameterError: an AttributeError as in the SDK, and a "
    "ParameterError (a ValueError) that names the valid parameters"
)
KEY_AT_USE = (
    "the API key is read when a request is made (the SDK binds the key it found at import as the default, "
    "so the key shows in help(Model) and a key set later is not seen)"
)
LIST_IDS_ERRORS = (
    "model_ids with a filter or a sort, with more ids than page_size, or empty: a one-line ParameterError "
    "(a ValueError) that says what to change; the SDK's are bare assert statements (AssertionError)"
)
LIST_DROPPED_FILTER = (
    "a filter the SDK would drop silently is an error (ParameterError): a target language without "
    "function=TRANSLATION (its body carries no target filter) and a second source language (its body "
    "carries the first only), so a search never answers unfiltered models as if filtered"
)
LIST_KWARGS = (
    "list() has the SDK's parameters, in its order, but no **kwargs: a misspelt filter (sort=..., "
    "language=...) is a TypeError instead of being ignored"
)
SORT_BY_NAME = "SortBy.NAME ('name'): sorting by name, which the SDK's SortBy lacks (the magic's --sort name)"
DETAILS_DEFAULT = (
    "each response gets a new {} as details (the SDK's default is one dict that every response shares, so "
    "changing one response's details changes the others')"
)
FINETUNE_UNKNOWN = (
    "a status this version does not know stays text (as when it comes in a reply), so to_dict()/from_dict() "
    "round-trip; the SDK's from_dict raises ValueError"
)
VALIDATED = (
    "setting a parameter is checked against its schema; the SDK accepts anything, the server rejects it later"
)

#: (probe pattern, observation key pattern) -> why we differ there on purpose (fnmatch patterns).
EXPECTED: dict[tuple[str, str], str] = {
    ("enum FunctionType", "* str / format / is str"): FUNCTION_TYPE_STR,
    ("enum SortBy", "NAME *"): SORT_BY_NAME,
    ("Model defaults", "attr supplier"): SUPPLIER,
    ("Model defaults", "repr"): SUPPLIER,
    ("Model defaults", "model_params.to_dict()"): NO_PARAMS,
    ("Model defaults", "to_dict()"): NO_PARAMS,
    ("signatures", "Model.__init__(api_key)"): KEY_AT_USE,
    ("signatures", "ModelFactory.list(kwargs)"): LIST_KWARGS,
    ("signatures", "ModelResponse.__init__(details)"): DETAILS_DEFAULT,
    ("ModelResponse item access", "default details shared"): DETAILS_DEFAULT,
    ("FinetuneStatus", "from_dict of an unknown status"): FINETUNE_UNKNOWN,
    ("Model.to_dict without parameters", "*"): NO_PARAMS,
    ("Model with positional arguments", "model_params.to_dict()"): NO_PARAMS,
    ("Model with positional arguments", "to_dict()"): NO_PARAMS,
    ("Model supplier *", "*"): SUPPLIER,
    ("Model with every argument", "attr supplier"): SUPPLIER,
    ("Model with every argument", "repr"): SUPPLIER,
    ("Model with every argument", "to_dict()"): TO_DICT,
    ("Model status as text", "DRAFT"): ASSET_TEXT,
    ("Model status as text", "function_type text"): ASSET_TEXT,
    ("Model function as text", "function"): FUNCTION_TEXT,
    ("Model.from_dict(to_dict())", "attr supplier"): SUPPLIER,
    ("Model.from_dict(to_dict())", "repr"): SUPPLIER,
    ("Model.from_dict(to_dict())", "to_dict()"): TO_DICT,
    ("Model.from_dict(to_dict())", "attr *"): FROM_DICT,
    ("Model.from_dict(to_dict())", "model_params.to_dict()"): FROM_DICT,
    ("Model.from_dict minimal", "attr supplier"): SUPPLIER,
    ("Model.from_dict minimal", "repr"): SUPPLIER,
    ("Model.from_dict minimal", "model_params.to_dict()"): NO_PARAMS,
    ("Model.from_dict minimal", "to_dict()"): NO_PARAMS,
    ("Model.from_dict without function", "*"): FROM_DICT_NO_FUNCTION,
    ("ModelFactory.get *", "attr additional_info"): FACTORY_INFO,
    ("ModelFactory.get *", "attr input_params"): FUNCTION_IO,
    ("ModelFactory.get *", "attr output_params"): FUNCTION_IO,
    ("ModelFactory.get *", "attr supplier"): SUPPLIER,
    ("ModelFactory.get *", "repr"): SUPPLIER,
    ("ModelFactory.get *", "to_dict()"): f"{TO_DICT}; {FACTORY_INFO}; {FUNCTION_IO}",
    ("ModelFactory.list", "keys"): LIST_ITEMS,
    ("ModelFactory.list", "result *"): SUPPLIER,
    ("ModelFactory.list arguments", "model_ids *"): LIST_IDS_ERRORS,
    ("ModelFactory.list arguments", "target without translation*"): LIST_DROPPED_FILTER,
    ("ModelFactory.list arguments", "two source languages*"): LIST_DROPPED_FILTER,
    ("ModelFactory.list requests", "diff-list target without translation"): LIST_DROPPED_FILTER,
    ("ModelFactory.list requests", "diff-list two source languages"): LIST_DROPPED_FILTER,
    ("ModelParameters", "getattr unknown"): UNKNOWN_PARAMETER,
    ("ModelParameters", "setattr unknown"): UNKNOWN_PARAMETER,
    ("ModelParameters setattr outside the schema", "*"): VALIDATED,
    ("ModelResponse empty status", "*"): RESPONSE_STATUS,
    ("ModelResponse status as text", "*"): RESPONSE_STATUS,
    ("ModelResponse status lower-case text", "*"): RESPONSE_STATUS,
    ("ModelResponse item access", "after sets / attr status"): RESPONSE_STATUS,
    ("ModelResponse item access", "after sets / to_dict()"): RESPONSE_STATUS,
    ("ModelResponse item access", "== same fields"): RESPONSE_EQ,
    ("ModelResponseStreamer no DONE", "*"): STREAM_NO_DONE,
    ("ModelResponseStreamer error event", "*"): STREAM_ERROR,
    ("ModelResponseStreamer *", "chunks"): STREAM_DONE,
    ("check_finetune_status fractional", "*"): FINETUNE_FRACTIONAL,
    ("run diff-error-code", "*"): ERROR_CODE,
    ("run diff-no-status", "*"): POLL_URL,
    ("run echo", "* / attr status"): RESPONSE_STATUS,
    ("run echo", "* / to_dict()"): RESPONSE_STATUS,
    ("run_async + poll echo", "started / attr status"): RESPONSE_STATUS,
    ("run_async + poll echo", "started / to_dict()"): RESPONSE_STATUS,
    ("run_stream echo", "chunks"): STREAM_BLANKS,
    ("LLM constructed", "api_key is the configured key"): LLM_KEY,
    ("LLM constructed", "attr supplier"): SUPPLIER,
    ("LLM constructed", "repr"): SUPPLIER,
    ("LLM constructed", "model_params.to_dict()"): NO_PARAMS,
    ("LLM constructed", "to_dict()"): NO_PARAMS,
    ("LLM constructed", "not text generation"): LLM_FUNCTION,
    ("LLM run*", "*attr status"): RESPONSE_STATUS,
    ("LLM run*", "*to_dict()"): RESPONSE_STATUS,
    ("LLM run parameters", "parameters after"): LLM_MUTATES,
    ("LLM run response_format class", "run"): LLM_CLASS_FORMAT,
    ("LLM wire", "/api/v2/execute/diff/llm 'c' / *"): LLM_CLASS_FORMAT,
}


#: a parameters schema in the SDK's {name: entry} form: the wire's entries, extensions and odd ones
PARAMS: dict[str, dict[str, Any]] = {
    **{p["name"]: p for p in default_metadata("params")["params"]},
    "mode": {
        "name": "mode",
        "required": False,
        "isFixed": False,
        "dataType": "label",
        "availableOptions": [{"value": "fast", "label": "Fast"}, {"value": "slow"}],
        "multipleValues": False,
    },
    "tags": {"name": "tags", "dataType": "text", "multipleValues": True, "values": [{"value": "a"}]},
    "bare": {},
    "nulls": {"name": "nulls", "required": None, "isFixed": None, "multipleValues": None, "dataType": None},
}


def _models() -> dict[str, dict[str, Any]]:
    plain = default_metadata(
        "diff/sentiment",
        name="Sentiment",
        function={"id": "sentiment-analysis", "name": "Sentiment Analysis"},
        supplier={"id": 1, "name": "aiXplain", "code": "aixplain"},
        supportsStreaming=False,
        params=[
            {"name": "text", "required": True, "dataType": "text", "values": [], "defaultValues": []},
            {
                "name": "threshold",
                "required": False,
                "dataType": "number",
                "defaultValues": [{"value": 0.05}],
                "values": [],
                "availableOptions": [],
            },
            {
                "name": "mode",
                "required": False,
                "isFixed": False,
                "dataType": "label",
                "values": [],
                "defaultValues": [],
                "availableOptions": [{"value": "fast", "label": "Fast"}, {"value": "slow", "label": "Slow"}],
            },
        ],
    )
    llm = default_metadata("diff/llm", name="Tiny LLM")
    fractional = default_metadata("fractional", function={"id": "translation", "name": "Translation"})
    return {"diff/sentiment": plain, "diff/llm": llm, "fractional": fractional}


#: model id -> the reply its run gets (queued twice: the SDK's run takes one, ours the other)
SCRIPTED: dict[str, Reply] = {
    "diff-unauthorized": Reply(401, json={"error": "the key is not valid"}),
    "diff-extra": Reply(
        json={
            "status": "SUCCESS",
            "completed": True,
            "data": {"label": "POSITIVE"},
            "details": [{"score": 0.9}],
            "usedCredits": 0.25,
            "runTime": 1.5,
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            "asset": {"assetId": "a1"},
            "requestId": "r-9",
        }
    ),
    "diff-supplier-error": Reply(json={"completed": True, "error": "failed", "supplierError": "upstream"}),
    "diff-error-code": Reply(
        json={"status": "FAILED", "completed": True, "error_code": "E42", "error_message": "refused"}
    ),
    "diff-no-status": Reply(json={"completed": True, "data": "plain"}),
}

#: fine-tune logs (the SDK puts no %2F in this URL, so these model ids have no "/")
FINETUNE_LOGS = {
    "echo": {
        "finetuneStatus": "in_progress",
        "modelStatus": "draft",
        "logs": [
            {"epoch": 1, "trainLoss": 0.9, "evalLoss": None},
            {"epoch": 1, "trainLoss": None, "evalLoss": 0.8},
            {"epoch": 2, "trainLoss": 0.5, "evalLoss": 0.6},
        ],
    },
    "fractional": {
        "finetuneStatus": "completed",
        "modelStatus": "onboarded",
        "logs": [{"epoch": 0.5, "trainLoss": 1.2, "evalLoss": 1.1}, {"epoch": 1.5, "trainLoss": 0.7}],
    },
}


def _list_requests(server: WireServer, start: int) -> dict[str, Any]:
    """The model-list requests the server received since ``start``: each search's body under its
    query ("diff-list <label>"), the fetches of model ids in order (path and query string)."""
    out: dict[str, Any] = {}
    fetches = 0
    for rec in server.requests[start:]:
        body = rec.json() if rec.method == "POST" else None
        if rec.path == "/sdk/models/paginate" and str(body.get("q", "")).startswith("diff-list "):
            out[body["q"]] = {"dict": body, "keys": list(body)}
        elif rec.path == "/sdk/models" and rec.method == "GET":
            fetches += 1
            out[f"GET /sdk/models #{fetches}"] = rec.query
    return out


def _wire(server: WireServer, since: int) -> dict[str, Any]:
    """What one side's LLM runs sent (requests ``since`` on), each by its path and input (every probe
    sends a different one): its body and content type."""
    sent = [r for r in server.requests[since:] if r.method == "POST" and "/execute/diff/llm" in r.path]
    return {
        f"{r.path} {(r.json() or {}).get('data')!r}": {
            "body": r.json(),
            "type": r.headers.get("content-type"),
        }
        for r in sent
    }


def _report(
    python: str | Path, side: str, server: WireServer, workdir: Path, pythonpath: str
) -> dict[str, Any]:
    since = len(server.requests)
    last_line = run_script(
        python,
        PROBES,
        side,
        base_url=server.url,
        token=TOKEN,
        workdir=workdir,
        timeout=300,
        pythonpath=pythonpath,
        LOG_LEVEL="ERROR",
        DIFF_PARAMS=json.dumps(PARAMS),
        DIFF_MODEL_IDS="diff/sentiment,diff/llm",
        DIFF_FINETUNE_IDS="echo,fractional",
        DIFF_SCRIPTED_IDS=",".join(SCRIPTED),
    )
    report = json.loads(JOB_URL.sub(r"\1<job>", last_line.replace(server.url, "<server>")))
    report["ModelFactory.list requests"] = _list_requests(server, since)
    report["LLM wire"] = _wire(server, since)
    return report


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any]]:
    python = sdk_python()
    with WireServer() as server:
        server.models.update(_models())
        server.finetune_logs.update(FINETUNE_LOGS)
        server.ids_page_size = 2  # model ids come back in pages (the SDK fetches the next ones)
        for model_id, reply in SCRIPTED.items():
            server.script(f"POST /api/v2/execute/{model_id}", reply, reply)
        sdk = _report(python, "sdk", server, tmp_path_factory.mktemp("sdk"), "")
        ours = _report(sys.executable, "ours", server, tmp_path_factory.mktemp("ours"), str(ROOT))
    return sdk, ours


def _expected(probe: str, key: str) -> str | None:
    """Why ``probe``/``key`` differs on purpose: the first entry of EXPECTED that matches, else None."""
    for (probe_pattern, key_pattern), why in EXPECTED.items():
        if fnmatch.fnmatchcase(probe, probe_pattern) and fnmatch.fnmatchcase(key, key_pattern):
            return why
    return None


VALUE_FORMS = {"dict", "enum", "raises", "datetime", "object"}  # the forms of diff_probes.norm


def _flat(seen: Any, prefix: str = "") -> dict[str, Any]:
    """Observations by key; a nested group of observations (e.g. one response) is flattened."""
    if not isinstance(seen, dict) or VALUE_FORMS & seen.keys():
        return {prefix: seen}
    out: dict[str, Any] = {}
    for key, value in seen.items():
        out.update(_flat(value, f"{prefix} / {key}" if prefix else key))
    return out


def _compatible_parameter(sdk: Any, ours: Any) -> bool:
    """A parameter of ours that SDK code cannot tell apart: an added keyword-only parameter, or one the
    SDK requires that ours makes optional (same place, same kind)."""
    if sdk == "<absent>":
        return isinstance(ours, list) and ours[1] == "KEYWORD_ONLY"
    return isinstance(sdk, list) and isinstance(ours, list) and sdk[:2] == ours[:2] and sdk[2] == "<required>"


def differences(sdk: dict[str, Any], ours: dict[str, Any]) -> list[tuple[str, str, Any, Any]]:
    out = []
    for probe in sorted(set(sdk) | set(ours)):
        a, b = _flat(sdk.get(probe, {"missing": True})), _flat(ours.get(probe, {"missing": True}))
        for key in sorted(set(a) | set(b)):
            seen_sdk, seen_ours = a.get(key, "<absent>"), b.get(key, "<absent>")
            if seen_sdk == seen_ours or (
                probe == "signatures" and _compatible_parameter(seen_sdk, seen_ours)
            ):
                continue
            out.append((probe, key, seen_sdk, seen_ours))
    return out


def test_same_answers_as_the_sdk(reports):
    sdk, ours = reports
    assert len(sdk) == len(ours) and len(sdk) > 30, sorted(set(sdk) ^ set(ours))
    unexpected = [d for d in differences(sdk, ours) if _expected(d[0], d[1]) is None]
    shown = "\n".join(
        f"{p} / {k}:\n  sdk:  {json.dumps(a)[:600]}\n  ours: {json.dumps(b)[:600]}"
        for p, k, a, b in unexpected
    )
    assert not unexpected, f"{len(unexpected)} unintended divergences from the SDK:\n{shown}"


def test_every_expected_divergence_still_diverges(reports, artifacts_dir):
    sdk, ours = reports
    found = {(p, k) for p, k, _, _ in differences(sdk, ours)}
    by_reason: dict[str, list[str]] = {}
    for p, k in sorted(found):
        by_reason.setdefault(_expected(p, k) or "UNEXPECTED", []).append(f"{p} / {k}")
    (artifacts_dir / "sdk-divergences.txt").write_text(
        "".join(
            f"{why}\n" + "".join(f"    {place}\n" for place in places) for why, places in by_reason.items()
        )
    )
    stale = [
        entry
        for entry in EXPECTED
        if not any(fnmatch.fnmatchcase(p, entry[0]) and fnmatch.fnmatchcase(k, entry[1]) for p, k in found)
    ]
    assert not stale, f"these expected divergences are gone; remove them from EXPECTED: {stale}"
