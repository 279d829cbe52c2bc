"""ModelFactory.list's language, sort and model_ids arguments (and alist) against the wire server.

The bodies are the SDK 0.2.48's for the same arguments (test_differential.py checks that against the
SDK itself); here: codes as well as ``Language`` members, the errors, and the model-ids fetch.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from aix_jupyter import Function, Language, ModelFactory, ParameterError, SortBy, SortOrder
from tests.core.wireserver import default_metadata


@pytest.fixture
def configured(monkeypatch, server):
    monkeypatch.setenv("AIX_BACKEND_URL", server.url)
    for model_id in ("acme/a", "acme/b", "acme/c"):
        server.models[model_id] = default_metadata(model_id, name=model_id.upper())
    return server


def listing(mode: str, *args: Any, **kw: Any) -> dict[str, Any]:
    return ModelFactory.list(*args, **kw) if mode == "sync" else asyncio.run(ModelFactory.alist(*args, **kw))


def last_body(server) -> dict[str, Any]:
    return server.seen("POST", "/sdk/models/paginate")[-1].json()


@pytest.mark.parametrize(
    ("given", "io_filter"),
    [
        ("en", [{"code": "language", "value": "en"}]),
        (Language.ENGLISH, [{"code": "language", "value": "en"}]),
        ("en-US", [{"code": "language", "value": "en"}, {"code": "dialect", "value": "United States"}]),
        ("fr_ca", [{"code": "language", "value": "fr"}, {"code": "dialect", "value": "Canada"}]),
        (["pt-BR"], [{"code": "language", "value": "pt"}, {"code": "dialect", "value": "Brazil"}]),
    ],
)
def test_a_source_language_as_a_code_or_a_member(mode, configured, given, io_filter):
    listing(mode, "x", source_languages=given)
    assert last_body(configured) == {"q": "x", "pageNumber": 0, "pageSize": 20, "ioFilter": io_filter}


def test_a_translation_pair_and_a_sort(mode, configured):
    listing(
        mode,
        function=Function.TRANSLATION,
        source_languages="en-GB",
        target_languages=Language.FRENCH_CANADA,
        sort_by=SortBy.PRICE,
        sort_order=SortOrder.DESCENDING,
        page_size=5,
    )
    body = last_body(configured)
    assert body == {
        "q": "",
        "pageNumber": 0,
        "pageSize": 5,
        "functions": ["translation"],
        "sort": [{"dir": -1, "field": "normalizedPrice"}],
        "ioFilter": [{"code": "sourcelanguage", "value": "en"}, {"code": "targetlanguage", "value": "fr"}],
    }
    assert list(body) == ["q", "pageNumber", "pageSize", "functions", "sort", "ioFilter"]  # the SDK's order


@pytest.mark.parametrize(
    ("sort_by", "sort_order", "sort"),
    [
        ("name", "descending", [{"dir": -1, "field": "name"}]),
        ("CREATION_DATE", 1, [{"dir": 1, "field": "createdAt"}]),
        ("totalSubscribed", SortOrder.ASCENDING, [{"dir": 1, "field": "totalSubscribed"}]),
    ],
)
def test_sorting_by_a_member_its_name_or_its_value(configured, sort_by, sort_order, sort):
    ModelFactory.list(sort_by=sort_by, sort_order=sort_order)
    assert last_body(configured)["sort"] == sort


def test_model_ids_fetch_those_models(mode, configured):
    found = listing(mode, model_ids=["acme/b", "acme/a"], page_size=2)
    assert [m.id for m in found["items"]] == ["acme/b", "acme/a"]
    assert (found["total"], found["page_total"], found["page_number"]) == (2, 2, 0)
    (req,) = configured.seen("GET", "/sdk/models")
    assert req.query == "ids=acme/b,acme/a" and not configured.seen("POST")


def test_model_ids_in_pages_are_all_fetched(mode, configured):
    configured.ids_page_size = 2
    found = listing(mode, model_ids=["acme/a", "acme/b", "acme/c"])
    assert [m.id for m in found["items"]] == ["acme/a", "acme/b", "acme/c"]
    assert [r.query for r in configured.seen("GET", "/sdk/models")] == [
        "ids=acme/a,acme/b,acme/c",
        "ids=acme/a,acme/b,acme/c&pageNumber=1",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model_ids": ["a"], "function": "translation"}, "model_ids cannot be combined with function"),
        ({"model_ids": ["a"], "query": "x"}, "model_ids cannot be combined with query"),
        ({"model_ids": ["a", "b"], "page_size": 1}, "2 model_ids do not fit in page_size=1"),
        ({"model_ids": []}, "model_ids must be a non-empty list"),
        ({"model_ids": "acme/a"}, "model_ids must be a non-empty list"),
        ({"source_languages": "xx"}, "source_languages: unknown language 'xx'"),
        ({"source_languages": "en-ZZ"}, "unknown language 'en-ZZ'"),
        ({"source_languages": ["en", "fr"]}, "source_languages filters by one language"),
        ({"source_languages": []}, "source_languages filters by one language"),
        ({"target_languages": "fr"}, "target_languages filters translation models only"),
        ({"sort_by": "popular"}, "sort_by must be one of SortBy.CREATION_DATE"),
        ({"sort_by": SortBy.NAME, "sort_order": "up"}, "sort_order must be one of SortOrder.ASCENDING"),
        ({"sort_order": "up"}, "sort_order must be one of SortOrder.ASCENDING"),
        ({"page_number": True}, "page_number must be an integer"),
    ],
)
def test_bad_arguments_fail_in_one_line_before_sending(mode, configured, kwargs, message):
    with pytest.raises(ParameterError, match=message) as info:
        listing(mode, **kwargs)
    assert "\n" not in str(info.value) and str(info.value).startswith("ModelFactory.list: ")
    assert not configured.requests


def test_unknown_keywords_are_an_error(configured):
    with pytest.raises(TypeError, match="sort"):
        ModelFactory.list(sort="name")  # type: ignore[call-arg]


def test_language_enum_is_the_sdks_and_parses_codes():
    assert Language.ENGLISH_UNITED_STATES.value == {"language": "en", "dialect": "United States"}
    assert Language.ARABIC_EGYPT.code == "ar-EG" and Language.CHINESE_MANDARIN.code == "zh"
    assert (
        Language.ARABIC_UNITED_ARAB_EMIRATES.code == "ar-AE" and Language.ENGLISH_SOUTH_AFRICA.code == "en-ZA"
    )
    assert Language.parse("ar-AE") is Language.ARABIC_UNITED_ARAB_EMIRATES  # the table's first and last
    assert Language.parse("af-za") is Language.AFRIKAANS_SOUTH_AFRICA
    assert Language.parse("ar-eg") is Language.ARABIC_EGYPT
    assert Language.parse("chinese_mandarin") is Language.CHINESE_MANDARIN
    assert all(Language.parse(m.code).value["language"] == m.value["language"] for m in Language)
    assert len(Language) == 284 and str(Language.FRENCH) == "Language.FRENCH"
    with pytest.raises(ParameterError, match="unknown language 'zh-TW'"):
        Language.parse("zh-TW")
