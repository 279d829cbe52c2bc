"""The backend's search: language filters and sorting in the catalog and on the paginate route, and
ModelFactory.list's new arguments answered by a real backend on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from aix_jupyter import Function, Language, ModelFactory, SortBy, SortOrder
from aix_jupyter.backend.app import create_app
from aix_jupyter.backend.catalog import Catalog, ModelSpec, param
from aix_jupyter.backend.models import builtin_specs
from aix_jupyter.backend.server import BackendServer
from aix_jupyter.core.parameters import ModelParameters
from tests.backend.conftest import TOKEN


def spec(model_id: str, name: str, *, day: int, price: float = 0.0, **kwargs) -> ModelSpec:
    params = kwargs.pop("params", [param("data", required=True)])
    return ModelSpec(
        id=model_id,
        name=name,
        function=kwargs.pop("function", "utilities"),
        runner=lambda inputs, ctx: inputs["data"],
        params=ModelParameters(params),
        created_at=datetime(2026, 1, day, tzinfo=UTC),
        price=price,
        **kwargs,
    )


def make_catalog() -> Catalog:
    return Catalog(
        [
            spec(
                "t/en-fr",
                "Beta translator",
                day=3,
                price=2.0,
                function="translation",
                params=[
                    param("data", required=True),
                    param("sourcelanguage", "label", default="en", options=["en", "de"]),
                    param("targetlanguage", "label", default="fr", options=["fr", "fr-CA"]),
                ],
            ),
            spec("t/us-asr", "alpha speech", day=1, price=0.5, source_languages=("en-US",)),
            spec("t/any", "Gamma utility", day=2, price=1.0),  # declares no language
            spec(
                "t/multi",
                "delta keywords",
                day=4,
                params=[param("data", required=True), param("language", "label", options=["fr", "es"])],
            ),
        ]
    )


def ids(catalog: Catalog, **kwargs) -> list[str]:
    return [s.id for s in catalog.search(**kwargs)]


@pytest.mark.parametrize(
    ("io_filter", "expected"),
    [
        ([("language", "en")], ["t/en-fr", "t/us-asr"]),  # bare "en" covers en-US
        ([("language", "en"), ("dialect", "United States")], ["t/en-fr", "t/us-asr"]),  # or the bare one
        ([("language", "en"), ("dialect", "United Kingdom")], ["t/en-fr"]),
        ([("language", "fr")], ["t/multi"]),
        ([("sourcelanguage", "de"), ("targetlanguage", "fr")], ["t/en-fr"]),
        ([("targetlanguage", "de")], []),
        ([("language", "ja")], []),  # a model that declares no language does not answer a filter
    ],
)
def test_language_filters(io_filter, expected):
    assert ids(make_catalog(), io_filter=io_filter) == expected


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ([], ["t/en-fr", "t/us-asr", "t/any", "t/multi"]),  # the catalog's order
        ([("name", 1)], ["t/us-asr", "t/en-fr", "t/multi", "t/any"]),  # case-insensitive
        ([("name", -1)], ["t/any", "t/multi", "t/en-fr", "t/us-asr"]),
        ([("createdAt", 1)], ["t/us-asr", "t/any", "t/en-fr", "t/multi"]),
        ([("createdAt", -1)], ["t/multi", "t/en-fr", "t/any", "t/us-asr"]),
        ([("normalizedPrice", -1)], ["t/en-fr", "t/any", "t/us-asr", "t/multi"]),
        ([("normalizedPrice", 1), ("name", -1)], ["t/multi", "t/us-asr", "t/any", "t/en-fr"]),
        ([("totalSubscribed", -1)], ["t/en-fr", "t/us-asr", "t/any", "t/multi"]),  # all equal
    ],
)
def test_sorting(sort, expected):
    assert ids(make_catalog(), sort=sort) == expected


def test_the_builtin_models_declare_their_languages():
    catalog = Catalog(builtin_specs())
    english = ids(catalog, io_filter=[("language", "en")])
    assert "local/sentiment-vader" in english and "local/keywords-yake" in english
    assert "local/countdown" not in english
    assert "local/sentiment-vader" not in ids(catalog, io_filter=[("language", "fr")])


@pytest.fixture(scope="module")
def backend() -> Iterator[BackendServer]:
    server = BackendServer(create_app(make_catalog(), token=TOKEN), token=TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def configured(monkeypatch, backend):
    monkeypatch.setenv("AIX_BACKEND_URL", backend.base_url)
    monkeypatch.setenv("TEAM_API_KEY", TOKEN)
    return backend


def test_paginate_route_filters_sorts_and_rejects_bad_bodies(backend):
    with httpx.Client(base_url=backend.base_url, headers={"x-api-key": TOKEN}, timeout=30) as client:
        body = {
            "q": "",
            "ioFilter": [{"code": "language", "value": "en"}],
            "sort": [{"dir": -1, "field": "normalizedPrice"}],
        }
        found = client.post("/sdk/models/paginate", json=body).json()
        assert [m["id"] for m in found["items"]] == ["t/en-fr", "t/us-asr"] and found["total"] == 2
        assert found["items"][0]["pricing"]["price"] == 2.0
        for bad, culprit in (
            ({"ioFilter": [{"code": "langue", "value": "en"}]}, "ioFilter"),
            ({"ioFilter": "en"}, "ioFilter"),
            ({"sort": [{"field": "rating", "dir": 1}]}, "sort"),
            ({"sort": [{"field": "name", "dir": 0}]}, "sort"),
        ):
            reply = client.post("/sdk/models/paginate", json=bad)
            assert reply.status_code == 400 and culprit in reply.json()["error"], bad


def test_model_factory_list_against_the_backend(configured):
    found = ModelFactory.list(source_languages="en-US", sort_by=SortBy.NAME, sort_order=SortOrder.DESCENDING)
    assert [m.id for m in found["items"]] == ["t/en-fr", "t/us-asr"]
    translators = ModelFactory.list(
        function=Function.TRANSLATION, source_languages=Language.GERMAN, target_languages="fr"
    )
    assert [m.id for m in translators["items"]] == ["t/en-fr"]
    by_date = ModelFactory.list(sort_by=SortBy.CREATION_DATE, page_size=2, page_number=1)
    assert [m.id for m in by_date["items"]] == ["t/en-fr", "t/multi"] and by_date["total"] == 4
    chosen = ModelFactory.list(model_ids=["t/multi", "t/any"])
    assert [m.id for m in chosen["items"]] == ["t/multi", "t/any"] and chosen["total"] == 2
