"""``ModelFactory``: fetch model metadata (``get``) and search models (``list``), sync and async."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from aix_jupyter.core import flows, recall
from aix_jupyter.core.config import Endpoints, resolve_endpoints
from aix_jupyter.core.enums import Function, Language, SortBy, SortOrder, member_of
from aix_jupyter.core.errors import AixError, ParameterError, RequestError
from aix_jupyter.core.llm import LLM, default_temperature
from aix_jupyter.core.model import Model
from aix_jupyter.core.plans import Plan, async_api, sync_api
from aix_jupyter.core.protocol import model_kwargs_from_metadata, model_path
from aix_jupyter.core.wire import Call


def _get_call(ep: Endpoints, model_id: str | None, name: str | None) -> tuple[Call, str]:
    if bool(model_id) == bool(name):
        raise AixError("ModelFactory.get: pass exactly one of model_id or name")
    if model_id:
        return Call("GET", f"{ep.backend_url}/{model_path(model_id)}", auth="backend", what="model"), (
            f"Model GET Error: failed to get model '{model_id}'"
        )
    assert name is not None
    url = f"{ep.backend_url}/sdk/models/by-name/{quote(name, safe='')}"
    return Call(
        "GET", url, auth="backend", what="model"
    ), f"Model GET by Name Error: failed to get model {name!r}"


def _model(meta: Any, api_key: str | None) -> Model:
    """A ``Model``, or an ``LLM`` (with the SDK's default ``temperature``) for a text-generation model."""
    try:
        kwargs = model_kwargs_from_metadata(meta)
    except ValueError as exc:
        raise RequestError(f"the server's model metadata is unusable: {exc}") from None
    if kwargs["function"] == Function.TEXT_GENERATION:
        return LLM(api_key=api_key, temperature=default_temperature(kwargs["model_params"]), **kwargs)
    return Model(api_key=api_key, **kwargs)


def _list_call(
    ep: Endpoints, query: str, page_number: int, page_size: int, filters: Mapping[str, Any]
) -> Call:
    body = {"q": query or "", "pageNumber": page_number, "pageSize": page_size, **filters}  # the SDK's order
    return Call(
        "POST", f"{ep.backend_url}/sdk/models/paginate", json_body=body, auth="backend", what="model list"
    )


def _check_page(page_number: Any, page_size: Any) -> None:
    if isinstance(page_number, bool) or not isinstance(page_number, int) or page_number < 0:
        raise ParameterError(f"ModelFactory.list: page_number must be an integer >= 0, got {page_number!r}")
    if isinstance(page_size, bool) or not isinstance(page_size, int) or not 1 <= page_size <= 100:
        raise ParameterError(
            f"ModelFactory.list: page_size must be an integer from 1 to 100, got {page_size!r}"
        )


def _one_language(value: Any, what: str) -> Language:
    """The language a ``*_languages`` argument filters by: the server's filter takes one (the SDK
    sends the first of a list and drops the others; here more than one is an error)."""
    languages = list(value) if isinstance(value, list | tuple) else [value]
    if len(languages) != 1:
        raise ParameterError(
            f"ModelFactory.list: {what} filters by one language (the server's filter takes one), "
            f"got {len(languages)}: {value!r}"
        )
    try:
        return Language.parse(languages[0])
    except ParameterError as exc:
        raise ParameterError(f"ModelFactory.list: {what}: {exc}") from None


def _filters(
    function: Any,
    suppliers: Any,
    source_languages: Any,
    target_languages: Any,
    is_finetunable: bool | None,
    ownership: Any,
    sort_by: Any,
    sort_order: Any,
) -> dict[str, Any]:
    """The paginate body's filters, as the SDK 0.2.48 builds them (keys in its order)."""
    body: dict[str, Any] = {}
    if is_finetunable is not None:
        body["isFineTunable"] = is_finetunable
    function_id = None if function is None else str(getattr(function, "value", function))
    if function_id is not None:
        body["functions"] = [function_id]
    if suppliers is not None:
        body["suppliers"] = suppliers
    if ownership is not None:
        body["ownership"] = ownership
    translation = function_id == "translation"
    io_filter: list[dict[str, str]] = []
    if source_languages is not None:
        source = _one_language(source_languages, "source_languages").value
        if translation:
            io_filter.append({"code": "sourcelanguage", "value": source["language"]})
        else:
            io_filter.append({"code": "language", "value": source["language"]})
            if source["dialect"]:
                io_filter.append({"code": "dialect", "value": source["dialect"]})
    if target_languages is not None:
        target = _one_language(target_languages, "target_languages").value
        if not translation:  # the SDK drops it silently: its server filters translations' targets only
            raise ParameterError(
                "ModelFactory.list: target_languages filters translation models only; "
                "pass function=Function.TRANSLATION too"
            )
        io_filter.append({"code": "targetlanguage", "value": target["language"]})
    order = member_of(SortOrder, sort_order, "ModelFactory.list: sort_order")  # checked even unused
    if sort_by is not None:
        by = member_of(SortBy, sort_by, "ModelFactory.list: sort_by")
        body["sort"] = [{"dir": order.value, "field": by.value}]
    if io_filter:
        body["ioFilter"] = io_filter
    return body


def _ids_flow(ep: Endpoints, stores: recall.Recall | None, model_ids: Sequence[str]) -> flows.Flow:
    """``GET /sdk/models?ids=a,b`` and, when the reply is paged (it has ``pageTotal``: the models in
    it), the next pages until ``total`` are fetched or a page is empty, as the SDK fetches them;
    returns ``{"items": [...], "total": len(model_ids)}``."""
    ids = ",".join(quote(str(i), safe="/:@-._~") for i in model_ids)
    items: list[Any] = []
    page_number, fetched, total = 0, 0, 0
    while True:
        url = f"{ep.backend_url}/sdk/models?ids={ids}" + (f"&pageNumber={page_number}" if page_number else "")
        call = Call("GET", url, auth="backend", what="models")
        flow = flows.json_flow(call, "Model GET Error")
        if stores is not None:
            flow = stores.meta_flow(ep, call, flow)
        body = yield from flow
        if not isinstance(body, Mapping) or not isinstance(body.get("items"), list):
            raise RequestError("Model GET Error: the server's reply has no 'items' list")
        items += body["items"]
        if page_number == 0:
            if "pageTotal" not in body:
                break
            fetched, total = _count(body.get("pageTotal")), _count(body.get("total"))
        else:
            if not body["items"]:
                break
            fetched += len(body["items"])
            if fetched >= total or page_number >= len(model_ids):  # (no endless paging)
                break
        page_number += 1
    return {"items": items, "total": len(model_ids)}


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"Model GET Error: the server's page counts are not integers: {value!r}")
    return value


def _check_ids(model_ids: Any, page_size: int, others: Mapping[str, Any]) -> list[str]:
    """``model_ids`` as a list, when given alone (as in the SDK, it excludes the other filters)."""
    if isinstance(model_ids, str) or not isinstance(model_ids, Sequence) or not model_ids:
        raise ParameterError(
            f"ModelFactory.list: model_ids must be a non-empty list of ids, got {model_ids!r}"
        )
    given = [name for name, value in others.items() if value not in (None, "")]
    if given:
        raise ParameterError(
            f"ModelFactory.list: model_ids cannot be combined with {', '.join(given)}; "
            "pass either model_ids or the filters"
        )
    if len(model_ids) > page_size:
        raise ParameterError(
            f"ModelFactory.list: {len(model_ids)} model_ids do not fit in page_size={page_size}; "
            "raise page_size or pass fewer ids"
        )
    return [str(i) for i in model_ids]


def _listing(body: Any, page_number: int, page_size: int, api_key: str | None) -> dict[str, Any]:
    if not isinstance(body, Mapping) or not isinstance(body.get("items"), list):
        raise RequestError("Listing Models Error: the server's reply has no 'items' list")
    models = [_model(item, api_key) for item in body["items"]]
    total = body.get("total", len(models))
    return {
        "items": models,
        "results": models,
        "total": total,
        "page_total": min(page_size, len(models)),
        "page_number": page_number,
    }


def _stores(api_key: str | None) -> tuple[recall.Recall | None, Endpoints]:
    """The cassettes that apply to a metadata request (replayed: nothing is sent, nothing started)."""
    return recall.bind(recall.active_cassettes(), functools.partial(resolve_endpoints, api_key=api_key))


# the plans of ModelFactory's methods (each gives a classmethod and its async twin)


def _get(
    cls: type[ModelFactory],
    model_id: str | None = None,
    name: str | None = None,
    api_key: str | None = None,
    use_cache: bool = False,
) -> Plan[Model]:
    """The model ``model_id`` (or called ``name``), fetched from the server each time.

    Raises RequestError when the server has no such model or answers something unusable.
    ``use_cache`` is accepted as the SDK's and changes nothing: there is no model cache here.
    """
    stores, ep = _stores(api_key)
    call, what = _get_call(ep, model_id, name)
    flow = flows.json_flow(call, what)
    if stores is not None:
        flow = stores.meta_flow(ep, call, flow)
    return Plan(flow, ep, finish=lambda meta, _: _model(meta, api_key))


def _list(
    cls: type[ModelFactory],
    query: str = "",
    function: Any = None,
    suppliers: Sequence[Any] | None = None,
    source_languages: Language | str | Sequence[Language | str] | None = None,
    target_languages: Language | str | Sequence[Language | str] | None = None,
    is_finetunable: bool | None = None,
    ownership: Sequence[Any] | None = None,
    sort_by: SortBy | None = None,
    sort_order: SortOrder = SortOrder.ASCENDING,
    page_number: int = 0,
    page_size: int = 20,
    model_ids: Sequence[str] | None = None,
    api_key: str | None = None,
) -> Plan[dict[str, Any]]:
    """Search models: ``{"items": [Model], "total": int, "page_total": int, "page_number": int}``
    (and ``results``, the SDK's other name for ``items``); the SDK 0.2.48's arguments, in its order.

    ``source_languages`` / ``target_languages``: one ``Language`` or code ("en", "en-US"; the server
    filters by one); a target language filters translation models (``function=Function.TRANSLATION``).
    ``sort_by``: a ``SortBy``, in ``sort_order``. ``model_ids``: fetch these models instead of
    searching (no other filter with it; at most ``page_size`` ids). Bad arguments raise ParameterError.
    """
    _check_page(page_number, page_size)
    stores, ep = _stores(api_key)
    if model_ids is not None:
        others = {
            "query": query,
            "function": function,
            "suppliers": suppliers,
            "source_languages": source_languages,
            "target_languages": target_languages,
            "is_finetunable": is_finetunable,
            "ownership": ownership,
            "sort_by": sort_by,
        }
        flow = _ids_flow(ep, stores, _check_ids(model_ids, page_size, others))
    else:
        filters = _filters(
            function,
            suppliers,
            source_languages,
            target_languages,
            is_finetunable,
            ownership,
            sort_by,
            sort_order,
        )
        call = _list_call(ep, query, page_number, page_size, filters)
        flow = flows.json_flow(call, "Listing Models Error")
        if stores is not None:
            flow = stores.meta_flow(ep, call, flow)
    return Plan(flow, ep, finish=lambda body, _: _listing(body, page_number, page_size, api_key))


class ModelFactory:
    """``ModelFactory.get(model_id)`` / ``get(name=...)``, ``ModelFactory.list(...)``, ``aget``/``alist``."""

    get = classmethod(sync_api(_get))
    aget = classmethod(async_api(_get, "aget"))
    list = classmethod(sync_api(_list))
    alist = classmethod(async_api(_list, "alist"))
