"""Each SDK method of Model, sync and async, against the loopback wire server."""

from __future__ import annotations

import asyncio
import copy
import json
from datetime import UTC, datetime

import pytest

from aix_jupyter import (
    AssetStatus,
    FinetuneStatus,
    Function,
    FunctionType,
    Model,
    ModelResponse,
    ResponseStatus,
)
from aix_jupyter.core.errors import AixError, ParameterError, RequestError
from tests.core.conftest import KEY, call
from tests.core.wireserver import default_metadata


def stream_all(mode, model, data, **kw):
    if mode == "sync":
        streamer = model.run_stream(data, **kw)
        return streamer, list(streamer)

    async def go():
        streamer = await model.arun_stream(data, **kw)
        return streamer, [c async for c in streamer]

    return asyncio.run(go())


# -- run ------------------------------------------------------------------------------------------
def test_run_sync_reply(mode, server, model):
    response = call(mode, model, "run", "hello")
    assert isinstance(response, ModelResponse)
    assert response.status is ResponseStatus.SUCCESS
    assert response.data == "echo: hello"
    assert response.completed is True
    assert response["usedCredits"] == 0.01 and response.used_credits == 0.01
    post = server.seen("POST")[0]
    assert post.path == "/api/v2/execute/echo"  # run uses the v2 URL
    assert post.headers["x-api-key"] == KEY
    assert post.headers["content-type"] == "application/json"
    assert post.json() == {"data": "hello"}


def test_run_polls_a_job_started_by_v2(mode, server, model):
    server.job_seconds = 0.3
    response = call(mode, model, "run", "slow", wait_time=0.2)
    assert response.status is ResponseStatus.SUCCESS and response.data == "echo: slow"
    assert response.usage == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    assert server.seen("GET", "/api/v1/data/")


def test_run_with_stream_true_returns_streamer(server, model):
    streamer = model.run("a b", stream=True)
    assert [c.data for c in streamer] == ["a ", "b ", ""]
    assert streamer.status is ResponseStatus.SUCCESS


def test_run_async_returns_poll_url(mode, server, model):
    response = call(mode, model, "run_async", "x", parameters={"temperature": 0.1})
    assert response.status is ResponseStatus.IN_PROGRESS
    assert response.url.startswith(server.url + "/api/v1/data/")
    post = server.seen("POST")[0]
    assert post.path == "/api/v1/execute/echo"  # run_async uses the v1 URL as is
    assert post.json() == {"data": "x", "temperature": 0.1}


def test_poll_once_and_sync_poll(mode, server, model):
    server.job_seconds = 0.4
    started = model.run_async("p")
    first = call(mode, model, "poll", started.url)
    assert first.status is ResponseStatus.IN_PROGRESS and first.completed is False
    final = call(mode, model, "sync_poll", started.url, wait_time=0.2, timeout=10)
    assert final.status is ResponseStatus.SUCCESS and final.data == "echo: p"
    assert all(r.headers["x-api-key"] == KEY for r in server.seen("GET", "/api/v1/data/"))


def test_cancel_run_sends_delete(mode, server, model):
    server.job_seconds = 30
    started = model.run_async("long")
    assert call(mode, model, "cancel_run", started.url) is True
    assert server.seen("DELETE", "/api/v1/data/")
    assert call(mode, model, "cancel_run", started.url) is False  # already cancelled
    final = model.poll(started.url)
    assert final.status is ResponseStatus.FAILED


def test_run_stream_chunks_and_text(mode, server, model):
    streamer, chunks = stream_all(mode, model, "one two three")
    assert [c.data for c in chunks[:-1]] == ["one ", "two ", "three "]
    assert all(c.status is ResponseStatus.IN_PROGRESS for c in chunks[:-1])
    assert chunks[-1].status is ResponseStatus.SUCCESS and chunks[-1].completed
    assert streamer.status is ResponseStatus.SUCCESS
    assert streamer.text == "one two three "
    body = server.seen("POST")[0].json()
    assert body["options"] == {"stream": True}
    assert server.seen("POST")[0].path == "/api/v2/execute/echo"


def test_run_stream_refuses_model_without_streaming(server):
    m = Model("echo", url=server.run_url)
    with pytest.raises(AixError, match="does not support streaming"):
        m.run_stream("x")
    assert not server.requests


# -- metadata operations --------------------------------------------------------------------------
def test_delete(mode, server):
    server.models["mine"] = default_metadata("mine")
    m = Model("mine", url=server.run_url, api_key=KEY)
    assert call(mode, m, "delete") is None
    req = server.seen("DELETE")[0]
    assert req.path == "/sdk/models/mine"
    assert req.headers["authorization"] == f"Token {KEY}"
    with pytest.raises(RequestError, match="Model Deletion Error"):
        call(mode, m, "delete")  # now 404: only 200 is success


def test_check_finetune_status(mode, server):
    server.finetune_logs["ft"] = {
        "finetuneStatus": "in_progress",
        "modelStatus": "training",
        "logs": [
            {"epoch": 1, "trainLoss": 0.9, "evalLoss": None},
            {"epoch": 1, "trainLoss": None, "evalLoss": 0.8},
            {"epoch": 1.5, "trainLoss": 0.7, "evalLoss": 0.6},
            {"epoch": 2, "trainLoss": 0.5, "evalLoss": None},
        ],
    }
    m = Model("ft", url=server.run_url, api_key=KEY)
    last = call(mode, m, "check_finetune_status")
    assert isinstance(last, FinetuneStatus)
    assert last.status is AssetStatus.IN_PROGRESS and last.model_status is AssetStatus.TRAINING
    assert (last.epoch, last.training_loss, last.validation_loss) == (2.0, 0.5, None)
    first = call(mode, m, "check_finetune_status", after_epoch=0)
    assert (first.epoch, first.training_loss, first.validation_loss) == (1.0, 0.9, 0.8)  # merged
    fractional = call(mode, m, "check_finetune_status", after_epoch=1)
    assert fractional.epoch == 1.5 and fractional.training_loss == 0.7
    assert call(mode, m, "check_finetune_status", after_epoch=5).epoch is None
    with pytest.raises(RequestError, match="Resource not found"):
        call(mode, Model("nope", url=server.run_url), "check_finetune_status")  # raises, not None


def test_finetune_status_json_round_trip():
    status = FinetuneStatus(AssetStatus.COMPLETED, AssetStatus.ONBOARDED, 3.0, 0.1, 0.2)
    assert json.loads(status.to_json()) == {
        "status": "completed",
        "model_status": "onboarded",
        "epoch": 3.0,
        "training_loss": 0.1,
        "validation_loss": 0.2,
    }
    assert FinetuneStatus.from_json(status.to_json()) == status == FinetuneStatus.from_dict(status.to_dict())
    assert FinetuneStatus.from_dict({"status": "draft", "model_status": "x"}).model_status == "x"
    with pytest.raises(KeyError):
        FinetuneStatus.from_dict({"model_status": "draft"})
    assert FinetuneStatus.from_dict({"model_status": "draft"}, infer_missing=True).status is None


# -- pure SDK methods -----------------------------------------------------------------------------
def test_repr():
    assert repr(Model("m1", name="Echo")) == "Model: Echo by aiXplain (id=m1)"
    assert repr(Model("m1", name="E", supplier={"name": "OpenAI", "id": 3})) == "Model: E by OpenAI (id=m1)"
    assert KEY not in repr(Model("m1", api_key=KEY))


def test_get_parameters():
    assert Model("m").get_parameters() is None
    m = Model("m", model_params=default_metadata("m")["params"])
    params = m.get_parameters()
    assert list(params) == ["text", "temperature"]
    assert params.temperature is None  # as the SDK: a value is what was set, defaults stay defaults
    assert params["temperature"].default == 0.7 and params["temperature"].current == 0.7


def test_add_additional_info_for_benchmark():
    m = Model("m")
    m.add_additional_info_for_benchmark("Shown", {"k": 1})
    assert m.additional_info == {"displayName": "Shown", "configuration": {"k": 1}}


def test_to_dict_from_dict_round_trip_is_lossless():
    m = Model(
        "m/1",
        name="N",
        description="d",
        api_key=KEY,
        supplier={"id": 1, "name": "S"},
        version="v2",
        function=Function.TRANSLATION,
        is_subscribed=True,
        cost={"price": 1},
        created_at=datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
        model_params=default_metadata("m")["params"],
        supports_streaming=True,
        status=AssetStatus.DRAFT,
        function_type=FunctionType.UTILITY,
        url="http://127.0.0.1:9/api/v1/execute",
        extra_field=[1, 2],
    )
    m.model_params.temperature = 1.5
    d = m.to_dict()
    assert KEY not in json.dumps(d)  # JSON-ready, and no key unless asked
    back = Model.from_dict(copy.deepcopy(d))
    assert back.to_dict() == d
    assert back.status is AssetStatus.DRAFT
    assert back.model_params.temperature == 1.5
    assert back.function is Function.TRANSLATION and back.function_type is FunctionType.UTILITY
    assert back.created_at == m.created_at
    assert back.additional_info == {"extra_field": [1, 2]}
    assert m.to_dict(include_api_key=True)["api_key"] == KEY
    assert Model.from_dict(m.to_dict(include_api_key=True))._api_key == KEY


def test_to_dict_from_dict_without_parameters_or_function():
    m = Model("bare")
    d = m.to_dict()
    assert d["model_params"] == {} and d["function"] is None
    back = Model.from_dict(d)
    assert back.function is None and back.get_parameters() is None
    assert Model.from_dict({"id": "x"}).status is AssetStatus.ONBOARDED


def test_from_dict_reads_the_sdk_form():
    sdk_form = {
        "id": "m",
        "name": "n",
        "supplier": "aiXplain",
        "status": AssetStatus.ONBOARDED,
        "function": Function.TEXT_GENERATION,
        "additional_info": {},
        "model_params": {
            "temperature": {
                "name": "temperature",
                "required": False,
                "value": 0.3,
                "values": [],
                "dataType": "number",
            },
        },
    }
    m = Model.from_dict(sdk_form)
    assert m.model_params.temperature == 0.3
    assert m.function is Function.TEXT_GENERATION


def test_url_keyword_is_honoured(server):
    m = Model("echo", url=server.run_url)
    assert m.url == server.run_url
    assert m.backend_url == server.url  # derived from the run URL's base
    assert m.run("x").data == "echo: x"


# -- input handling -------------------------------------------------------------------------------
def test_parameters_validated_before_anything_is_sent(mode, server):
    m = Model("echo", url=server.run_url, model_params=default_metadata("echo")["params"])
    for bad, culprit in (
        ({"temp": 1}, "temp"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": 5}, "temperature"),
    ):
        with pytest.raises(ParameterError, match=culprit) as info:
            call(mode, m, "run", "x", parameters=bad)
        assert "\n" not in str(info.value)
    with pytest.raises(ParameterError, match="missing required parameter 'text'"):
        call(mode, m, "run", {"other": 1})
    assert server.requests == []
    assert call(mode, m, "run", "x", parameters={"temperature": "0.5"}).status is ResponseStatus.SUCCESS
    assert server.seen("POST")[0].json() == {"data": "x", "temperature": 0.5}


def test_values_set_on_the_schema_are_sent(server):
    m = Model("echo", url=server.run_url, model_params=default_metadata("echo")["params"])
    m.model_params.temperature = 0.25
    m.run("x")
    m.run("y", parameters={"temperature": 1})
    assert [r.json() for r in server.seen("POST")] == [
        {"data": "x", "temperature": 0.25},
        {"data": "y", "temperature": 1},
    ]


def test_callers_data_and_parameters_are_not_mutated(mode, server, model):
    data = {"data": "hi", "options": {"a": 1}, "nested": {"x": [1, 2]}}
    params = {"temperature": 0.2, "options": {"b": 2}}
    snapshot = copy.deepcopy((data, params))
    call(mode, model, "run", data, parameters=params)
    call(mode, model, "run_async", data, parameters=params)
    assert (data, params) == snapshot
    assert server.seen("POST")[0].json() == {
        "data": "hi",
        "options": {"b": 2},
        "nested": {"x": [1, 2]},
        "temperature": 0.2,
    }


def test_local_file_is_uploaded_then_sent_as_link(mode, server, model, tmp_path):
    path = tmp_path / "clip.wav"
    path.write_bytes(b"RIFF....WAVEfmt ")
    response = call(mode, model, "run", str(path))
    assert response.status is ResponseStatus.SUCCESS
    temp = server.seen("POST", "/sdk/file/upload/temp-url")[0]
    assert temp.json() == {"contentType": "audio/x-wav", "originalName": "clip.wav"}
    put = server.seen("PUT")[0]
    assert put.body == path.read_bytes()
    assert "x-api-key" not in put.headers and "authorization" not in put.headers  # the PUT carries no key
    run = server.seen("POST", "/api/v2/execute")[0].json()
    assert run["data"].startswith(server.url + "/files/")
    assert list(server.uploads.values()) == [path.read_bytes()]


def test_local_file_in_dict_data_is_uploaded(server, model, tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("hello")
    model.run({"data": str(path), "language": "en"})
    body = server.seen("POST", "/api/v2/execute")[0].json()
    assert body["data"].startswith(server.url + "/files/") and body["language"] == "en"


def test_arun_with_stream_true_returns_an_async_streamer(server, model):
    async def go():
        streamer = await model.arun("a b", stream=True)
        return streamer, [c.data async for c in streamer]

    streamer, data = asyncio.run(go())
    assert data == ["a ", "b ", ""] and streamer.status is ResponseStatus.SUCCESS


def test_wire_options_and_dict_data_pass_validation(server):
    m = Model("echo", url=server.run_url, model_params=default_metadata("echo")["params"])
    m.run({"data": "via data key", "temperature": 1}, parameters={"options": {"trace": True}})
    assert server.seen("POST")[0].json() == {
        "data": "via data key",
        "temperature": 1,
        "options": {"trace": True},
    }
    with pytest.raises(ParameterError, match="temperature"):
        m.run({"data": "x", "temperature": "hot"})  # schema keys inside dict data are checked too


def test_keyboard_interrupt_in_sync_poll_cancels_the_job(server, model):
    import _thread
    import threading

    server.job_seconds = 60
    started = model.run_async("x")
    threading.Timer(0.3, _thread.interrupt_main).start()
    with pytest.raises(KeyboardInterrupt):
        model.sync_poll(started.url)
    assert server.seen("DELETE")[0].path == started.url.split(str(server.port))[1]
