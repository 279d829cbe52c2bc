"""The model catalog: what the backend serves, as the wire's model metadata describes it.

A ``ModelSpec`` couples a model's metadata (id, name, function slug, ``params`` schema) with the
Python callable that runs it. A ``Catalog`` is a thread-safe registry of specs: the built-in models
plus any function registered with :func:`aix_jupyter.register_model`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aix_jupyter.core.parameters import ModelParameters, Parameter

if TYPE_CHECKING:
    from aix_jupyter.backend.jobs import JobContext

#: ``runner(inputs, ctx)`` returns the result, or an iterator of text chunks for a streaming model.
Runner = Callable[[dict[str, Any], "JobContext"], Any]

SUPPLIER = {"id": "aix_jupyter", "name": "aix_jupyter (local)", "code": "aix_jupyter"}


class CatalogError(Exception):
    """A catalog operation that cannot be done (unknown id, protected model)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(eq=False)
class ModelSpec:
    """One model the backend serves."""

    id: str
    name: str
    function: str
    runner: Runner
    params: ModelParameters
    description: str = ""
    streaming: bool = False
    version: str = "1.0"
    function_type: str = "ai"
    #: how many runs of this model may execute at once (others wait in the queue)
    concurrency: int = 2
    #: seconds the synchronous (v2) path waits before answering IN_PROGRESS; None = server default
    sync_wait: float | None = None
    #: request keys accepted besides the schema's parameters (e.g. the SDK's LLM sends ``history``)
    extra_inputs: frozenset[str] = frozenset()
    #: name of the parameter that the wire's ``data`` key fills when the schema has no ``data``
    primary: str | None = None
    builtin: bool = True
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    code: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The model's metadata as ``GET /sdk/models/{id}`` answers it."""
        wire: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "supplier": dict(SUPPLIER),
            "function": {"id": self.function, "name": self.function.replace("-", " ").title()},
            "functionType": self.function_type,
            "pricing": {"price": 0, "currency": "USD", "unitType": "REQUEST"},
            "version": {"id": self.version, "name": self.version},
            "supportsStreaming": self.streaming,
            "createdAt": self.created_at.isoformat().replace("+00:00", "Z"),
            "status": "onboarded",
            "subscription": {"plan": "local"},
            "hosted": True,
            "params": self.params.to_wire(),
            "builtin": self.builtin,
        }
        if self.code is not None:
            wire["code"] = self.code
        return wire

    def matches(self, query: str) -> bool:
        q = query.strip().lower()
        return not q or any(
            q in text.lower() for text in (self.id, self.name, self.description, self.function)
        )


def param(
    name: str,
    data_type: str = "text",
    *,
    required: bool = False,
    default: Any = None,
    options: Iterable[Any] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    step: float | None = None,
    description: str | None = None,
    sub_type: str | None = None,
    multiple: bool = False,
) -> Parameter:
    """Build one ``params`` entry (a small helper for the built-in models and the registry)."""
    data: dict[str, Any] = {
        "name": name,
        "required": required,
        "dataType": data_type,
        "defaultValues": []
        if default is None
        else [{"value": v} for v in (default if multiple else [default])],
        "availableOptions": [{"value": o, "label": str(o)} for o in (options or [])],
        "multipleValues": multiple,
    }
    for key, value in (
        ("minValue", minimum),
        ("maxValue", maximum),
        ("step", step),
        ("description", description),
        ("dataSubType", sub_type),
    ):
        if value is not None:
            data[key] = value
    return Parameter.model_validate(data)


class Catalog:
    """A thread-safe set of models keyed by id (insertion order kept)."""

    def __init__(self, specs: Iterable[ModelSpec] = ()) -> None:
        self._lock = threading.Lock()
        self._specs: dict[str, ModelSpec] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
        with self._lock:
            old = self._specs.get(spec.id)
            if old is not None and (old.builtin or not replace):
                what = "a built-in model" if old.builtin else "already registered"
                raise CatalogError(f"model id '{spec.id}' is {what}; choose another id", status=409)
            self._specs[spec.id] = spec
        return spec

    def remove(self, model_id: str) -> ModelSpec:
        with self._lock:
            spec = self._specs.get(model_id)
            if spec is None:
                raise CatalogError(f"model '{model_id}' not found", status=404)
            if spec.builtin:
                raise CatalogError(f"model '{model_id}' is built in and cannot be deleted", status=403)
            return self._specs.pop(model_id)

    def get(self, model_id: str) -> ModelSpec | None:
        with self._lock:
            return self._specs.get(model_id)

    def by_name(self, name: str) -> ModelSpec | None:
        wanted = name.strip().lower()
        with self._lock:
            specs = list(self._specs.values())
        return next((s for s in specs if s.name.lower() == wanted), None) or next(
            (s for s in specs if s.id.lower() == wanted), None
        )

    def search(self, query: str = "", functions: Iterable[str] | None = None) -> list[ModelSpec]:
        wanted = {str(f).lower() for f in functions or ()}
        with self._lock:
            specs = list(self._specs.values())
        return [s for s in specs if s.matches(query) and (not wanted or s.function.lower() in wanted)]

    def __iter__(self) -> Iterator[ModelSpec]:
        with self._lock:
            return iter(list(self._specs.values()))

    def __len__(self) -> int:
        with self._lock:
            return len(self._specs)

    def __contains__(self, model_id: object) -> bool:
        with self._lock:
            return model_id in self._specs
