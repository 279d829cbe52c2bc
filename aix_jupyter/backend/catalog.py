"""The model catalog: what the backend serves, as the wire's model metadata describes it.

A ``ModelSpec`` couples a model's metadata (id, name, function slug, ``params`` schema) with the
Python callable that runs it. A ``Catalog`` is a thread-safe registry of specs: the built-in models
plus any function registered with :func:`aix_jupyter.register_model`.

Searching (``Catalog.search``, the paginate route) filters by query, functions and languages and
sorts. A model's languages are its card's ``source_languages`` / ``target_languages`` (codes such as
"en" or "en-US"), else the options (or default) of its parameters named as the wire's filter codes:
``sourcelanguage`` or ``language`` (what it reads), ``targetlanguage`` (what it writes). A language
filter lists only the models that declare that language: a model that declares none is not
constrained in a way the catalog can tell, so it does not answer a language filter (as on the
platform, whose filter matches those parameters). A bare language ("en") covers all its dialects; a
dialect filter ("en" + "United States") matches that dialect or the bare language.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aix_jupyter.core.enums import Language
from aix_jupyter.core.errors import ParameterError
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
    #: the languages the model reads / writes ("en", "en-US"); empty: from its language parameters
    source_languages: tuple[str, ...] = ()
    target_languages: tuple[str, ...] = ()
    #: the price per request (USD), as the wire's ``pricing`` and the price sort show it
    price: float = 0
    #: False keeps it out of searches (a model whose engine is not installed here): still found by
    #: its id, so a run of it answers why it cannot run
    listed: bool = True

    def to_wire(self) -> dict[str, Any]:
        """The model's metadata as ``GET /sdk/models/{id}`` answers it."""
        wire: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "supplier": dict(SUPPLIER),
            "function": {"id": self.function, "name": self.function.replace("-", " ").title()},
            "functionType": self.function_type,
            "pricing": {"price": self.price, "currency": "USD", "unitType": "REQUEST"},
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

    def languages(self, side: str) -> set[tuple[str, str]]:
        """The ``(code, dialect)`` pairs the model declares for ``side`` ("source" or "target")."""
        declared = self.source_languages if side == "source" else self.target_languages
        if not declared:
            names = ("sourcelanguage", "language") if side == "source" else ("targetlanguage",)
            declared = tuple(v for n in names for v in _parameter_values(self.params, n))
        return {_language_pair(code) for code in declared}

    def matches(self, query: str) -> bool:
        q = query.strip().lower()
        return not q or any(
            q in text.lower() for text in (self.id, self.name, self.description, self.function)
        )


def _parameter_values(params: ModelParameters, name: str) -> list[str]:
    """The values a parameter offers (its options, else its preset or default values), as text."""
    entry = params.get_parameter(name)
    if entry is None:
        return []
    values = entry.options or entry.preset or entry.default
    values = values if isinstance(values, list) else [] if values is None else [values]
    return [str(v) for v in values if v is not None]


def _language_pair(code: str) -> tuple[str, str]:
    """``("en", "United States")`` for "en-US"; a code the Language enum lacks stays as given."""
    try:
        value = Language.parse(code).value
    except ParameterError:
        return (code.strip().lower(), "")
    return (value["language"], value["dialect"])


#: the wire's sort fields -> a model's sort key
SORT_KEYS: dict[str, Callable[[ModelSpec], Any]] = {
    "name": lambda s: (s.name.lower(), s.id),
    "createdAt": lambda s: s.created_at,
    "normalizedPrice": lambda s: s.price,
    "totalSubscribed": lambda s: 0,  # local models have no subscriptions: they keep the catalog order
}
#: the wire's language filter codes -> the side of a model they look at
LANGUAGE_CODES = {"language": "source", "sourcelanguage": "source", "targetlanguage": "target"}


def matches_languages(spec: ModelSpec, io_filter: Iterable[tuple[str, str]]) -> bool:
    """Whether ``spec`` declares the languages of the wire's ``ioFilter`` ``(code, value)`` pairs
    (``dialect`` narrows the ``language`` entry's; see the module's docstring)."""
    pairs = list(io_filter)
    dialect = next((v for c, v in pairs if c == "dialect"), "")
    for code, value in pairs:
        if code == "dialect":
            continue
        declared = spec.languages(LANGUAGE_CODES[code])
        language = value.strip().lower()
        wanted = {(language, dialect), (language, "")} if code == "language" and dialect else None
        if wanted is not None and not declared & wanted:
            return False
        if wanted is None and not any(lang == language for lang, _ in declared):
            return False
    return True


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

    def search(
        self,
        query: str = "",
        functions: Iterable[str] | None = None,
        *,
        io_filter: Iterable[tuple[str, str]] = (),
        sort: Iterable[tuple[str, int]] = (),
    ) -> list[ModelSpec]:
        """The models that match ``query``, one of ``functions`` and the ``io_filter`` languages
        (``(code, value)`` pairs: see ``LANGUAGE_CODES``), sorted by ``sort`` (``(field, 1 | -1)``
        pairs of ``SORT_KEYS``, the first the main one); unsorted: the catalog's order."""
        wanted = {str(f).lower() for f in functions or ()}
        io_filter = list(io_filter)
        with self._lock:
            specs = list(self._specs.values())
        found = [
            s
            for s in specs
            if s.listed
            and s.matches(query)
            and (not wanted or s.function.lower() in wanted)
            and (not io_filter or matches_languages(s, io_filter))
        ]
        for field_name, direction in reversed(list(sort)):  # stable sorts: the last key first
            found.sort(key=SORT_KEYS[field_name], reverse=direction < 0)
        return found

    def __iter__(self) -> Iterator[ModelSpec]:
        with self._lock:
            return iter(list(self._specs.values()))

    def __len__(self) -> int:
        with self._lock:
            return len(self._specs)

    def __contains__(self, model_id: object) -> bool:
        with self._lock:
            return model_id in self._specs
