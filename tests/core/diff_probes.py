"""The same calls, made through the official aiXplain SDK or through aix_jupyter; prints one JSON report.

``python diff_probes.py sdk`` (in the SDK's own venv) or ``python diff_probes.py ours``. Every probe
is written once against a namespace of the public objects both libraries have (``api.Model``,
``api.ModelResponse``, ...), so both sides run exactly the same code on the same fixtures; each
observation is normalised into plain JSON (enums keep their class, name and value; exceptions are
recorded by the built-in exception classes they are instances of, so the two libraries' own error
classes compare). ``test_differential.py`` compares the two reports.

Environment (set by the test): MODELS_RUN_URL, BACKEND_URL, TEAM_API_KEY (a loopback server) and
the fixtures, DIFF_PARAMS (a parameters schema as JSON) and DIFF_*_IDS (model ids on the server).
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import enum
import inspect
import json
import logging
import os
import sys
import types
from collections.abc import Callable
from typing import Any

REPORT: dict[str, Any] = {}
BUILTIN_ERRORS = tuple(
    c for c in vars(builtins).values() if isinstance(c, type) and issubclass(c, BaseException)
)


def params() -> dict[str, dict[str, Any]]:
    """A new copy of the parameters fixture (the SDK's ``{name: entry}`` form, from the test)."""
    return json.loads(os.environ["DIFF_PARAMS"])


def norm(value: Any) -> Any:
    """A JSON form of ``value`` that keeps what users can tell apart (types of enums, None, ...)."""
    if isinstance(value, enum.Enum):
        return {"enum": type(value).__name__, "name": value.name, "value": norm(value.value)}
    if value is None or isinstance(value, bool | int | float) or type(value) is str:
        return value
    if isinstance(value, dict):
        return {"dict": {str(k): norm(v) for k, v in value.items()}, "keys": [str(k) for k in value]}
    if isinstance(value, list | tuple):
        return [norm(v) for v in value]
    if isinstance(value, dt.datetime):
        return {"datetime": value.isoformat()}
    return {"object": type(value).__name__}


def raised(exc: BaseException) -> dict[str, Any]:
    return {
        "raises": sorted(c.__name__ for c in BUILTIN_ERRORS if isinstance(exc, c) and c is not BaseException)
    }


def probe(name: str) -> Callable[[Callable[[Any], dict[str, Any]]], None]:
    """Run the probe at once; record each of its observations, or what it raised."""

    def run(fn: Callable[[Any], dict[str, Any]]) -> None:
        try:
            seen = fn(API)
        except Exception as exc:  # recorded, compared like any observation
            REPORT[name] = raised(exc)
            return
        REPORT[name] = {k: v for k, v in seen.items()}

    return run


def attempt(fn: Callable[[], Any]) -> Any:
    """``norm(fn())``, or what it raised."""
    try:
        return norm(fn())
    except Exception as exc:
        return raised(exc)


#: the public methods whose signatures are compared
SIGNATURES = {
    "Model": (
        "__init__",
        "run",
        "run_async",
        "run_stream",
        "poll",
        "sync_poll",
        "check_finetune_status",
        "delete",
        "to_dict",
        "from_dict",
        "get_parameters",
        "add_additional_info_for_benchmark",
    ),
    "ModelResponse": ("__init__", "get", "to_dict"),
    "ModelParameters": ("__init__", "get_parameter", "to_dict", "to_list"),
    "FinetuneStatus": ("__init__", "to_dict", "to_json", "from_dict", "from_json"),
    "ModelResponseStreamer": ("__init__",),
    "ModelFactory": ("get", "list"),
    "LLM": ("__init__", "run", "run_async"),
}

MODEL_ATTRS = (
    "id",
    "name",
    "description",
    "supplier",
    "version",
    "function",
    "is_subscribed",
    "cost",
    "created_at",
    "input_params",
    "output_params",
    "supports_streaming",
    "status",
    "function_type",
    "additional_info",
    "url",
    "backend_url",
)


def model_view(model: Any) -> dict[str, Any]:
    out = {f"attr {a}": attempt(lambda a=a: getattr(model, a)) for a in MODEL_ATTRS}
    out["class"] = type(model).__name__
    out["attr temperature"] = attempt(lambda: getattr(model, "temperature", "<no attribute>"))
    out["api_key is the configured key"] = model.api_key == os.environ["TEAM_API_KEY"]
    out["repr"] = repr(model)
    out["get_parameters() is None"] = model.get_parameters() is None
    out["model_params.to_dict()"] = attempt(lambda: model.model_params.to_dict())
    out["to_dict()"] = attempt(model.to_dict)
    return out


def response_view(r: Any) -> dict[str, Any]:
    fields = [*r.to_dict(), "additional_fields"]  # the fields, then the additional fields, by name
    out = {f"attr {f}": attempt(lambda f=f: getattr(r, f)) for f in fields}
    out["to_dict()"] = attempt(r.to_dict)
    out["repr"] = repr(r)
    return out


def main() -> None:
    logging.getLogger().setLevel(logging.ERROR)
    side = sys.argv[1]
    global API
    API = load(side)

    # -- signatures of what both have ------------------------------------------------------------
    @probe("signatures")
    def _(api: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for owner, names in SIGNATURES.items():
            cls = getattr(api, owner)
            for name in names:
                try:
                    params = list(inspect.signature(getattr(cls, name)).parameters.values())
                except Exception as exc:
                    out[f"{owner}.{name}"] = raised(exc)
                    continue
                params = [p for p in params if p.name not in ("self", "cls")]
                for i, p in enumerate(params):
                    positional = p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                    default = "<required>" if p.default is p.empty else norm(p.default)
                    out[f"{owner}.{name}({p.name})"] = [i if positional else None, p.kind.name, default]
        return out

    # -- enums ----------------------------------------------------------------------------------
    for enum_name in (
        "ResponseStatus",
        "AssetStatus",
        "FunctionType",
        "Function",
        "SortBy",
        "SortOrder",
        "Language",
    ):

        @probe(f"enum {enum_name}")
        def _(api: Any, enum_name: str = enum_name) -> dict[str, Any]:
            cls = getattr(api, enum_name)
            out: dict[str, Any] = {}
            for member in cls:
                out[f"{member.name} value"] = norm(member.value)
                out[f"{member.name} str / format / is str"] = [
                    str(member),
                    f"{member}",
                    isinstance(member, str),
                ]
            out["call with a value"] = attempt(lambda: cls(next(iter(cls)).value))
            out["call with an unknown value"] = attempt(lambda: cls("no-such-value"))
            return out

    # -- ModelParameters / Parameter --------------------------------------------------------------
    @probe("ModelParameters")
    def _(api: Any) -> dict[str, Any]:
        schema = api.ModelParameters(params())
        out: dict[str, Any] = {
            "to_dict()": norm(schema.to_dict()),
            "to_list()": norm(schema.to_list()),
            "str()": str(schema),
            "parameters keys": list(schema.parameters),
            "getattr temperature": attempt(lambda: schema.temperature),
            "getattr unknown": attempt(lambda: schema.nope),
            "hasattr unknown": hasattr(schema, "nope"),
            "get_parameter unknown": attempt(lambda: schema.get_parameter("nope")),
        }
        for name in params():
            p = schema.get_parameter(name)
            out[f"Parameter {name} repr"] = repr(p)
            for field in (f.name for f in dataclasses.fields(api.SdkParameterFields)):
                out[f"Parameter {name}.{field}"] = attempt(lambda p=p, field=field: getattr(p, field))
        schema.temperature = 1.5
        schema.mode = "slow"
        schema.tags = ["x", "y"]
        out["after setattr: to_list()"] = norm(schema.to_list())
        out["after setattr: str()"] = str(schema)
        out["after setattr: getattr"] = norm(schema.temperature)
        out["after setattr: Parameter.value"] = norm(schema.get_parameter("temperature").value)
        out["setattr unknown"] = attempt(lambda: setattr(schema, "nope", 1))
        schema.temperature = None
        out["after setting None: to_list()"] = norm(schema.to_list())
        out["empty: str()"] = str(api.ModelParameters({}))
        out["empty: to_dict()"] = norm(api.ModelParameters({}).to_dict())
        return out

    @probe("ModelParameters setattr outside the schema")
    def _(api: Any) -> dict[str, Any]:
        schema = api.ModelParameters(params())
        return {
            "option not offered": attempt(lambda: setattr(schema, "mode", "medium")),
            "text for a number": attempt(lambda: setattr(schema, "temperature", "hot")),
        }

    # -- ModelResponse ----------------------------------------------------------------------------
    responses = {
        "defaults": lambda api: api.ModelResponse(status=api.ResponseStatus.SUCCESS),
        "full": lambda api: api.ModelResponse(
            status=api.ResponseStatus.SUCCESS,
            data="hello",
            details={"k": [1, 2]},
            completed=True,
            used_credits=0.5,
            run_time=1.25,
            usage={"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
            url="http://127.0.0.1:1/poll/1",
            asset={"assetId": "a"},
            requestId="r-1",
            extra={"x": 1},
        ),
        "error + supplierError": lambda api: api.ModelResponse(
            status=api.ResponseStatus.FAILED, completed=True, error="boom", supplierError="upstream"
        ),
        "error only": lambda api: api.ModelResponse(status=api.ResponseStatus.FAILED, error="boom"),
        "status as text": lambda api: api.ModelResponse(status="SUCCESS", data="x"),
        "status lower-case text": lambda api: api.ModelResponse(status="success"),
        "data not text": lambda api: api.ModelResponse(status=api.ResponseStatus.SUCCESS, data={"a": 1}),
        "details None": lambda api: api.ModelResponse(status=api.ResponseStatus.SUCCESS, details=None),
        "error_code": lambda api: api.ModelResponse(status=api.ResponseStatus.FAILED, error_code="E1"),
        "empty status": lambda api: api.ModelResponse(status=""),
        "quote in data": lambda api: api.ModelResponse(status=api.ResponseStatus.SUCCESS, data="it's"),
    }
    for label, make in responses.items():

        @probe(f"ModelResponse {label}")
        def _(api: Any, make: Callable[[Any], Any] = make) -> dict[str, Any]:
            return response_view(make(api))

    @probe("ModelResponse item access")
    def _(api: Any) -> dict[str, Any]:
        r = responses["full"](api)
        out = {
            f"r[{k!r}]": attempt(lambda k=k: r[k])
            for k in ("data", "usedCredits", "runTime", "requestId", "additional_fields", "nope", "status")
        }
        out.update(
            {f"{k!r} in r": attempt(lambda k=k: k in r) for k in ("data", "runTime", "requestId", "nope")}
        )
        out["get nope"] = attempt(lambda: r.get("nope", 7))
        out["set data"] = attempt(lambda: r.__setitem__("data", "changed"))
        out["set runTime"] = attempt(lambda: r.__setitem__("runTime", 9.0))
        out["set requestId"] = attempt(lambda: r.__setitem__("requestId", "r-2"))
        out["set nope"] = attempt(lambda: r.__setitem__("nope", 1))
        out["set status text"] = attempt(lambda: r.__setitem__("status", "FAILED"))
        out["after sets"] = response_view(r)
        out["== same fields"] = attempt(lambda: responses["defaults"](api) == responses["defaults"](api))
        first, second = responses["defaults"](api), responses["defaults"](api)
        out["default details shared"] = first.details is second.details
        return out

    # -- FinetuneStatus ---------------------------------------------------------------------------
    @probe("FinetuneStatus")
    def _(api: Any) -> dict[str, Any]:
        fs = api.FinetuneStatus(api.AssetStatus.IN_PROGRESS, api.AssetStatus.DRAFT, 1.0, 0.5, None)
        bare = api.FinetuneStatus(status=api.AssetStatus.COMPLETED, model_status=api.AssetStatus.ONBOARDED)
        return {
            "fields": norm([fs.status, fs.model_status, fs.epoch, fs.training_loss, fs.validation_loss]),
            "defaults": norm([bare.epoch, bare.training_loss, bare.validation_loss]),
            "repr": repr(fs),
            "to_dict()": attempt(fs.to_dict),
            "to_json()": attempt(fs.to_json),
            "from_dict(to_dict())": attempt(lambda: repr(api.FinetuneStatus.from_dict(fs.to_dict()))),
            "from_json(to_json())": attempt(lambda: repr(api.FinetuneStatus.from_json(fs.to_json()))),
            "from_dict of text": attempt(
                lambda: repr(
                    api.FinetuneStatus.from_dict({"status": "completed", "model_status": "onboarded"})
                )
            ),
            "from_dict without status": attempt(
                lambda: api.FinetuneStatus.from_dict({"model_status": "draft"})
            ),
            "from_dict without status, infer_missing": attempt(
                lambda: repr(api.FinetuneStatus.from_dict({"model_status": "draft"}, infer_missing=True))
            ),
            "from_dict of an unknown status": attempt(
                lambda: repr(api.FinetuneStatus.from_dict({"status": "weird", "model_status": "draft"}))
            ),
            "to_dict(encode_json=True)": attempt(lambda: fs.to_dict(encode_json=True)),
            "==": fs
            == api.FinetuneStatus(api.AssetStatus.IN_PROGRESS, api.AssetStatus.DRAFT, 1.0, 0.5, None),
        }

    # -- ModelResponseStreamer --------------------------------------------------------------------
    streams = {
        "text chunks then DONE": ['data: {"data": "Hel"}', 'data: {"data": "lo"}', "data: [DONE]"],
        "dict chunks": ['data: {"data": {"text": "a"}}', 'data: {"data": {"output": "b"}}', "data: [DONE]"],
        "not JSON": ["data: plain words", "data: [DONE]"],
        "no DONE": ['data: {"data": "x"}'],
        "error event": [
            'data: {"data": "a"}',
            'data: {"error": "boom"}',
            'data: {"data": "b"}',
            "data: [DONE]",
        ],
        "FAILED status event": ['data: {"data": "a", "status": "FAILED"}', "data: [DONE]"],
    }
    for label, lines in streams.items():

        @probe(f"ModelResponseStreamer {label}")
        def _(api: Any, lines: list[str] = lines) -> dict[str, Any]:
            streamer = api.ModelResponseStreamer(iter(lines))
            out: dict[str, Any] = {
                "status before": norm(streamer.status),
                "iter is self": iter(streamer) is streamer,
            }
            chunks = []
            for chunk in streamer:
                chunks.append([norm(chunk.status), norm(chunk.data), chunk.completed])
            out["chunks"] = chunks
            out["status after"] = norm(streamer.status)
            out["next after the end"] = attempt(lambda: next(streamer))
            return out

    # -- Model ------------------------------------------------------------------------------------
    @probe("Model defaults")
    def _(api: Any) -> dict[str, Any]:
        return model_view(api.Model("m1"))

    def full_model(api: Any) -> Any:
        return api.Model(
            "m/2",
            name="Full",
            description="d",
            supplier={"id": 1, "name": "OpenAI", "code": "openai"},
            version="v2",
            function=api.Function.TRANSLATION,
            is_subscribed=True,
            cost={"price": 1},
            created_at=dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC),
            input_params={"text": {"name": "text"}},
            output_params={"data": {"name": "data"}},
            model_params=params(),
            supports_streaming=True,
            status=api.AssetStatus.DRAFT,
            function_type=api.FunctionType.UTILITY,
            extra_field=[1, 2],
            empty_extra=None,
        )

    @probe("Model with positional arguments")
    def _(api: Any) -> dict[str, Any]:
        m = api.Model(
            "m/p", "Pos", "desc", "key-p", "Acme", "v3", api.Function.TRANSLATION, True, {"price": 2}
        )
        return model_view(m) | {"api_key": m.api_key == "key-p"}

    @probe("Model with every argument")
    def _(api: Any) -> dict[str, Any]:
        return model_view(full_model(api))

    suppliers = {
        "text": "Acme",
        "known name": "OpenAI",
        "dict unknown": {"id": 9, "name": "Acme", "code": "acme"},
        "dict without name": {"id": 9},
    }
    for label, supplier in suppliers.items():

        @probe(f"Model supplier {label}")
        def _(api: Any, supplier: Any = supplier) -> dict[str, Any]:
            m = api.Model("m3", name="N", supplier=json.loads(json.dumps(supplier)))
            return {"repr": repr(m), "supplier": norm(m.supplier)}

    @probe("Model status as text")
    def _(api: Any) -> dict[str, Any]:
        return {s: norm(api.Model("m4", status=s).status) for s in ("draft", "DRAFT", "no-such-status")} | {
            "function_type text": norm(api.Model("m4", function_type="utility").function_type)
        }

    @probe("Model function as text")
    def _(api: Any) -> dict[str, Any]:
        return {"function": norm(api.Model("m4", function="translation").function)}

    @probe("Model.from_dict(to_dict())")
    def _(api: Any) -> dict[str, Any]:
        m = full_model(api)
        m.model_params.temperature = 1.5
        return model_view(api.Model.from_dict(m.to_dict()))

    @probe("Model.from_dict minimal")
    def _(api: Any) -> dict[str, Any]:
        return model_view(api.Model.from_dict({"id": "x", "function": "translation"}))

    @probe("Model.from_dict without function")
    def _(api: Any) -> dict[str, Any]:
        return model_view(api.Model.from_dict({"id": "x"}))

    @probe("Model.to_dict without parameters")
    def _(api: Any) -> dict[str, Any]:
        return {"to_dict()": norm(api.Model("bare").to_dict())}

    @probe("Model.get_parameters")
    def _(api: Any) -> dict[str, Any]:
        m = api.Model("m5", model_params=params())
        got = m.get_parameters()
        return {
            "str()": str(got),
            "to_dict()": norm(got.to_dict()),
            "same object": got is m.model_params,
        }

    @probe("Model.add_additional_info_for_benchmark")
    def _(api: Any) -> dict[str, Any]:
        m = api.Model("m6")
        m.add_additional_info_for_benchmark("Shown", {"k": 1})
        return {"additional_info": norm(m.additional_info)}

    # -- ModelFactory against the server ------------------------------------------------------------
    for model_id in os.environ["DIFF_MODEL_IDS"].split(","):

        @probe(f"ModelFactory.get {model_id}")
        def _(api: Any, model_id: str = model_id) -> dict[str, Any]:
            return model_view(api.ModelFactory.get(model_id))

    @probe("ModelFactory.list")
    def _(api: Any) -> dict[str, Any]:
        listing = api.ModelFactory.list(query="", page_number=0, page_size=10)
        out: dict[str, Any] = {"keys": sorted(listing)}
        out.update({k: norm(listing[k]) for k in sorted(listing) if k not in ("results", "items")})
        for m in listing["results"]:
            out[f"result {m.id}"] = {"class": type(m).__name__, "repr": repr(m), "status": norm(m.status)}
        return out

    # the list's filters: each case searches "diff-list <label>" (the test compares the bodies the
    # server received under that query) or fetches model ids (the test compares those requests)
    def list_cases(api: Any) -> dict[str, Callable[[], Any]]:
        lang, order, by, fn = api.Language, api.SortOrder, api.SortBy, api.Function
        ids = os.environ["DIFF_MODEL_IDS"].split(",")

        def case(label: str, *args: Any, **kwargs: Any) -> tuple[str, Callable[[], Any]]:
            return label, lambda: api.ModelFactory.list(f"diff-list {label}", *args, **kwargs)

        return dict(
            [
                case("sort by creation date", sort_by=by.CREATION_DATE),
                case("sort by price, descending", sort_by=by.PRICE, sort_order=order.DESCENDING),
                case("sort by popularity, ascending", sort_by=by.POPULARITY, sort_order=order.ASCENDING),
                case("sort order alone", sort_order=order.DESCENDING),
                case("source language", source_languages=lang.ENGLISH),
                case("source dialect", source_languages=lang.ENGLISH_UNITED_STATES),
                case("source list of one", source_languages=[lang.FRENCH_CANADA]),
                case(
                    "translation pair",
                    function=fn.TRANSLATION,
                    source_languages=lang.ENGLISH_UNITED_STATES,
                    target_languages=[lang.FRENCH],
                ),
                case("translation target", function=fn.TRANSLATION, target_languages=lang.GERMAN),
                case(
                    "everything",
                    function=fn.TRANSLATION,
                    source_languages=lang.SPANISH_MEXICO,
                    target_languages=lang.ENGLISH,
                    is_finetunable=True,
                    sort_by=by.CREATION_DATE,
                    sort_order=order.DESCENDING,
                    page_number=1,
                    page_size=5,
                ),
                case("positional", fn.TRANSLATION, None, lang.ARABIC_EGYPT, lang.ENGLISH, False),
                case("target without translation", target_languages=lang.FRENCH),
                case("two source languages", source_languages=[lang.ENGLISH, lang.FRENCH]),
                ("model_ids", lambda: api.ModelFactory.list(model_ids=ids)),
                ("model_ids paged", lambda: api.ModelFactory.list(model_ids=[*ids, "fractional"])),
                (
                    "model_ids with a filter",
                    lambda: api.ModelFactory.list(model_ids=ids, function=fn.TRANSLATION),
                ),
                ("model_ids with a sort", lambda: api.ModelFactory.list(model_ids=ids, sort_by=by.PRICE)),
                ("model_ids beyond page_size", lambda: api.ModelFactory.list(model_ids=ids, page_size=1)),
                ("model_ids empty", lambda: api.ModelFactory.list(model_ids=[])),
            ]
        )

    @probe("ModelFactory.list arguments")
    def _(api: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for label, call in list_cases(api).items():
            try:
                listing = call()
            except Exception as exc:
                out[label] = raised(exc)
                continue
            out[label] = {k: norm(listing[k]) for k in ("total", "page_total", "page_number")}
            out[label]["ids"] = [m.id for m in listing["results"]]
        return out

    # -- runs against the server (the same replies for both; see SCRIPTED in the test) -----------
    for model_id in os.environ["DIFF_SCRIPTED_IDS"].split(","):

        @probe(f"run {model_id}")
        def _(api: Any, model_id: str = model_id) -> dict[str, Any]:
            return response_view(api.Model(model_id).run("hello"))

    @probe("run echo")
    def _(api: Any) -> dict[str, Any]:
        model = api.ModelFactory.get("echo")
        return {
            "text": response_view(model.run("hello there")),
            "dict with parameters": response_view(model.run({"data": "hi"}, parameters={"temperature": 0.5})),
        }

    @probe("run_async + poll echo")
    def _(api: Any) -> dict[str, Any]:
        model = api.ModelFactory.get("echo")
        started = model.run_async("slow one")
        out = {"started": response_view(started)}
        out["sync_poll"] = response_view(model.sync_poll(started.url, wait_time=0.2, timeout=30))
        out["poll after the end"] = response_view(model.poll(started.url))
        return out

    @probe("run_stream echo")
    def _(api: Any) -> dict[str, Any]:
        streamer = api.ModelFactory.get("echo").run_stream("one two three")
        chunks = [[norm(c.status), norm(c.data)] for c in streamer]
        return {"class": type(streamer).__name__, "chunks": chunks, "status after": norm(streamer.status)}

    # -- LLM: what its runs send is compared on the server (test_differential records the bodies) --
    history = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]

    @probe("LLM constructed")
    def _(api: Any) -> dict[str, Any]:
        llm = api.LLM("diff/llm", "Tiny", function=api.Function.TEXT_GENERATION, temperature=0.25)
        return model_view(llm) | {
            "not text generation": attempt(lambda: api.LLM("x", "X", function="translation"))
        }

    @probe("LLM run defaults")
    def _(api: Any) -> dict[str, Any]:
        return response_view(api.ModelFactory.get("diff/llm").run("hello"))

    @probe("LLM run every argument")
    def _(api: Any) -> dict[str, Any]:
        llm = api.ModelFactory.get("diff/llm")
        r = llm.run(
            "next",
            context="Be brief.",
            prompt="Answer:",
            history=history,
            temperature=0.1,
            max_tokens=20,
            top_p=0.5,
        )
        return response_view(r)

    @probe("LLM run parameters")
    def _(api: Any) -> dict[str, Any]:
        llm = api.ModelFactory.get("diff/llm")
        given = {"temperature": 0.3}
        r = llm.run("p", temperature=0.9, parameters=given)
        return {"response": response_view(r), "parameters after": norm(given)}

    @probe("LLM run dict data")
    def _(api: Any) -> dict[str, Any]:
        llm = api.ModelFactory.get("diff/llm")
        data = {"data": "d", "max_tokens": 5, "context": "from data"}
        r = llm.run(data, context="argument", parameters={"top_p": 0.2})
        return {"response": response_view(r), "data after": norm(data)}

    @probe("LLM run response_format")
    def _(api: Any) -> dict[str, Any]:
        llm = api.ModelFactory.get("diff/llm")
        schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
        wrapped = {"type": "json_schema", "json_schema": {"name": "A", "schema": schema}}
        for i, fmt in enumerate(("json", schema, wrapped)):
            llm.run(f"format {i}", response_format=fmt)
        return {"schema after": norm(schema)}

    @probe("LLM run response_format class")
    def _(api: Any) -> dict[str, Any]:
        import pydantic

        class Answer(pydantic.BaseModel):
            a: int

        return {
            "run": attempt(lambda: api.ModelFactory.get("diff/llm").run("c", response_format=Answer).data)
        }

    @probe("LLM run stream")
    def _(api: Any) -> dict[str, Any]:
        streamer = api.ModelFactory.get("diff/llm").run("one two", history=history, stream=True)
        return {"class": type(streamer).__name__, "text": "".join(str(c.data) for c in streamer)}

    @probe("LLM run_async")
    def _(api: Any) -> dict[str, Any]:
        llm = api.ModelFactory.get("diff/llm")
        started = llm.run_async("later", context="sys", history=history, max_tokens=7)
        return {"started": response_view(started)}

    def finetune(status: Any) -> Any:
        return None if status is None else {**vars(status), "repr": repr(status)}

    for model_id in os.environ["DIFF_FINETUNE_IDS"].split(","):

        @probe(f"check_finetune_status {model_id}")
        def _(api: Any, model_id: str = model_id) -> dict[str, Any]:
            m = api.ModelFactory.get(model_id)
            return {
                "last": attempt(lambda: finetune(m.check_finetune_status())),
                "after epoch 1": attempt(lambda: finetune(m.check_finetune_status(after_epoch=1))),
            }

    print(json.dumps(REPORT, sort_keys=True))


API: Any = None


def load(side: str) -> Any:
    """The public objects both libraries have, under one set of names."""
    if side == "sdk":
        from aixplain.base.parameters import Parameter
        from aixplain.enums import (
            AssetStatus,
            Function,
            FunctionType,
            Language,
            ResponseStatus,
            SortBy,
            SortOrder,
        )
        from aixplain.factories import ModelFactory
        from aixplain.modules.finetune.status import FinetuneStatus
        from aixplain.modules.model import Model
        from aixplain.modules.model.llm_model import LLM
        from aixplain.modules.model.model_parameters import ModelParameters
        from aixplain.modules.model.model_response_streamer import ModelResponseStreamer
        from aixplain.modules.model.response import ModelResponse
    else:
        from aix_jupyter import (
            LLM,
            AssetStatus,
            FinetuneStatus,
            Function,
            FunctionType,
            Language,
            Model,
            ModelFactory,
            ModelParameters,
            ModelResponse,
            ModelResponseStreamer,
            Parameter,
            ResponseStatus,
            SortBy,
            SortOrder,
        )

    Parameter = _sdk_fields_of(Parameter)  # the SDK's field names, the attributes compared
    return types.SimpleNamespace(
        AssetStatus=AssetStatus,
        FinetuneStatus=FinetuneStatus,
        Function=Function,
        FunctionType=FunctionType,
        LLM=LLM,
        Language=Language,
        Model=Model,
        ModelFactory=ModelFactory,
        ModelParameters=ModelParameters,
        ModelResponse=ModelResponse,
        ModelResponseStreamer=ModelResponseStreamer,
        ResponseStatus=ResponseStatus,
        SdkParameterFields=Parameter,
        SortBy=SortBy,
        SortOrder=SortOrder,
    )


@dataclasses.dataclass
class _SdkParameterFields:
    """The SDK's ``Parameter`` dataclass fields (0.2.48), the attributes compared on both sides."""

    name: str
    required: bool
    value: Any = None
    is_fixed: bool = False
    values: Any = None
    default_values: Any = None
    available_options: Any = None
    data_type: Any = None
    data_sub_type: Any = None
    multiple_values: bool = False


def _sdk_fields_of(cls: Any) -> Any:
    if dataclasses.is_dataclass(cls):  # the SDK: check the list above is still its list
        names = [f.name for f in dataclasses.fields(cls)]
        expected = [f.name for f in dataclasses.fields(_SdkParameterFields)]
        assert names == expected, f"the SDK's Parameter fields changed: {names}"
    return _SdkParameterFields


if __name__ == "__main__":
    main()
