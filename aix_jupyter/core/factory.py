"""``ModelFactory``: fetch model metadata (``get``) and search models (``list``), sync and async."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from aix_jupyter.core import flows, recall
from aix_jupyter.core.config import Endpoints, resolve_endpoints
from aix_jupyter.core.enums import Function
from aix_jupyter.core.errors import AixError, RequestError
from aix_jupyter.core.flows import Plan, async_api, sync_api
from aix_jupyter.core.llm import LLM, default_temperature
from aix_jupyter.core.model import Model
from aix_jupyter.core.protocol import model_kwargs_from_metadata, model_path
from aix_jupyter.core.transport import Call


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
    ep: Endpoints, query: str, function: Any, page_number: int, page_size: int, filters: Mapping[str, Any]
) -> Call:
    if not isinstance(page_number, int) or page_number < 0:
        raise AixError(f"ModelFactory.list: page_number must be an integer >= 0, got {page_number!r}")
    if not isinstance(page_size, int) or not 1 <= page_size <= 100:
        raise AixError(f"ModelFactory.list: page_size must be an integer from 1 to 100, got {page_size!r}")
    body: dict[str, Any] = {"q": query or "", "pageNumber": page_number, "pageSize": page_size}
    if function is not None:
        body["functions"] = [str(getattr(function, "value", function))]
    for key, value in filters.items():
        if value is not None:
            body[key] = value
    return Call(
        "POST", f"{ep.backend_url}/sdk/models/paginate", json_body=body, auth="backend", what="model list"
    )


def _listing(body: Any, page_number: int, api_key: str | None) -> dict[str, Any]:
    if not isinstance(body, Mapping) or not isinstance(body.get("items"), list):
        raise RequestError("Listing Models Error: the server's reply has no 'items' list")
    models = [_model(item, api_key) for item in body["items"]]
    total = body.get("total", len(models))
    return {
        "items": models,
        "results": models,
        "total": total,
        "page_total": len(models),
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
    *,
    page_number: int = 0,
    page_size: int = 20,
    suppliers: Sequence[Any] | None = None,
    ownership: Sequence[Any] | None = None,
    is_finetunable: bool | None = None,
    api_key: str | None = None,
) -> Plan[dict[str, Any]]:
    """Search models: ``{"items": [Model], "total": int, "page_total": int, "page_number": int}``
    (and ``results``, the SDK's other name for ``items``)."""
    stores, ep = _stores(api_key)
    filters = {"suppliers": suppliers, "ownership": ownership, "isFineTunable": is_finetunable}
    call = _list_call(ep, query, function, page_number, page_size, filters)
    flow = flows.json_flow(call, "Listing Models Error")
    if stores is not None:
        flow = stores.meta_flow(ep, call, flow)
    return Plan(flow, ep, finish=lambda body, _: _listing(body, page_number, api_key))


class ModelFactory:
    """``ModelFactory.get(model_id)`` / ``get(name=...)``, ``ModelFactory.list(...)``, ``aget``/``alist``."""

    get = classmethod(sync_api(_get))
    aget = classmethod(async_api(_get, "aget"))
    list = classmethod(sync_api(_list))
    alist = classmethod(async_api(_list, "alist"))
