"""ModelFactory.get / list and their async twins against the wire server."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from aix_jupyter import AssetStatus, Function, FunctionType, Model, ModelFactory
from aix_jupyter.core.errors import AixError, RequestError
from tests.core.conftest import KEY
from tests.core.wireserver import default_metadata


@pytest.fixture
def configured(monkeypatch, server):
    monkeypatch.setenv("AIX_BACKEND_URL", server.url)
    server.models["openai/gpt-x"] = default_metadata(
        "openai/gpt-x", name="GPT X", subscription={"id": 1}, status="draft"
    )
    return server


def get(mode, **kw):
    return ModelFactory.get(**kw) if mode == "sync" else asyncio.run(ModelFactory.aget(**kw))


def listing(mode, *args, **kw):
    return ModelFactory.list(*args, **kw) if mode == "sync" else asyncio.run(ModelFactory.alist(*args, **kw))


def test_get_by_id_maps_the_metadata(mode, configured):
    m = get(mode, model_id="openai/gpt-x", api_key=KEY)
    assert isinstance(m, Model) and m.id == "openai/gpt-x" and m.name == "GPT X"
    assert m.function is Function.TEXT_GENERATION and m.function_type is FunctionType.AI
    assert m.version == "1.0" and m.cost == {"price": 0.0} and m.is_subscribed
    assert m.status is AssetStatus.DRAFT and m.supports_streaming
    assert m.created_at == datetime.fromisoformat("2024-01-02T03:04:05+00:00")
    assert list(m.model_params) == ["text", "temperature"]
    assert repr(m) == "Model: GPT X by TestSupplier (id=openai/gpt-x)"
    req = configured.seen("GET", "/sdk/models/")[0]
    assert req.path == "/sdk/models/openai/gpt-x"  # recorded unquoted; sent as %2F
    assert req.headers["authorization"] == f"Token {KEY}"
    assert m.run("hi").data == "echo: hi"  # the model runs where it came from


def test_get_by_name(mode, configured):
    assert get(mode, name="GPT X").id == "openai/gpt-x"


def test_get_errors(mode, configured):
    with pytest.raises(RequestError, match="failed to get model 'nope': Resource not found"):
        get(mode, model_id="nope")
    with pytest.raises(AixError, match="exactly one of model_id or name"):
        get(mode)


def test_list(mode, configured):
    result = listing(mode, "gpt", function=Function.TEXT_GENERATION, page_size=5)
    assert [m.id for m in result["items"]] == ["openai/gpt-x"] and result["total"] == 1
    assert result["results"] == result["items"] and result["page_number"] == 0
    body = configured.seen("POST", "/sdk/models/paginate")[0].json()
    assert body == {"q": "gpt", "pageNumber": 0, "pageSize": 5, "functions": ["text-generation"]}


def test_list_bad_paging_is_rejected_before_sending(configured):
    with pytest.raises(AixError, match="page_size"):
        ModelFactory.list(page_size=0)
    assert not configured.requests
