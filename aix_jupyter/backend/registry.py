"""Serve your own Python functions as models: ``@register_model``.

::

    from typing import Annotated, Literal
    from pydantic import Field
    from aix_jupyter import register_model

    @register_model
    def shout(text: str, times: Annotated[int, Field(ge=1, le=5)] = 1,
              style: Literal["upper", "title"] = "upper") -> str:
        '''Repeat the text loudly.

        Args:
            text: what to shout.
            times: how many times.
        '''
        return " ".join([text.upper() if style == "upper" else text.title()] * times)

    # now served as "local/shout" by the embedded backend: Model("local/shout").run("hi")

* The signature becomes the model's ``params`` schema: ``str`` text, ``bool`` boolean, ``int``/``float``
  numbers (bounds from ``Annotated[..., Field(ge=, le=)]`` or ``annotated_types``), ``Literal``/``Enum``
  options, ``list[...]`` several values, ``dict`` JSON; a default makes a parameter optional; the
  docstring gives the description (and ``Args:`` the parameters' help). The first parameter is the
  one the wire's ``data`` fills.
* Plain, ``async``, generator and async-generator functions work; generators stream their chunks.
* Progress: declare a parameter named ``progress`` and call ``progress(done, total)`` (or
  ``progress(fraction)``, with an optional ``eta=`` in seconds); or call
  :func:`report_progress` from anywhere in the run. Polls show it as ``progress``/``eta``. Both raise
  :class:`JobCancelled` once the run is cancelled, so a loop that reports progress stops.
  A parameter annotated :class:`JobContext` receives the whole run context instead.
* Registered models appear in the catalog at once (the embedded backend runs in this process) and
  can be deleted (``DELETE /sdk/models/{id}``, or :func:`unregister_model`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import re
import threading
import types
import typing
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Literal, TypeVar, overload

from aix_jupyter.backend.catalog import Catalog, CatalogError, ModelSpec, param
from aix_jupyter.backend.jobs import JobCancelled, JobContext, current_job, report_progress
from aix_jupyter.core.errors import AixError
from aix_jupyter.core.parameters import ModelParameters, Parameter

__all__ = [
    "JobCancelled",
    "JobContext",
    "RegistrationError",
    "current_job",
    "default_catalog",
    "model_spec_from_function",
    "register_model",
    "report_progress",
    "unregister_model",
]

F = TypeVar("F", bound=Callable[..., Any])
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
PROGRESS_PARAM = "progress"


class RegistrationError(AixError, ValueError):
    """A function that cannot be served as a model (unsupported signature, clashing id)."""


_catalog: Catalog | None = None
_catalog_lock = threading.Lock()


def default_catalog() -> Catalog:
    """The process-wide catalog: the built-in models plus every registered function."""
    global _catalog
    with _catalog_lock:
        if _catalog is None:
            from aix_jupyter.backend.models import builtin_specs

            _catalog = Catalog(builtin_specs())
        return _catalog


# -- docstrings -----------------------------------------------------------------------------------------
_SECTION = re.compile(
    r"^\s*(Args|Arguments|Parameters|Params|Returns|Yields|Raises|Examples?|Notes?)\s*:?\s*$"
)


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(description, {parameter: help}) from a Google-style docstring."""
    text = inspect.cleandoc(doc or "")
    description: list[str] = []
    helps: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    for line in text.splitlines():
        match = _SECTION.match(line)
        if match:
            section, current = match.group(1).lower(), None
            continue
        if section is None:
            description.append(line)
        elif section in ("args", "arguments", "parameters", "params"):
            item = re.match(r"^\s*\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", line)
            if item and (line[: len(line) - len(line.lstrip())].count(" ") <= 4):
                current = item.group(1)
                helps[current] = item.group(2).strip()
            elif current and line.strip():
                helps[current] = f"{helps[current]} {line.strip()}".strip()
    paragraph = " ".join(" ".join(description).split())
    return paragraph, helps


# -- annotations -> schema --------------------------------------------------------------------------------
def _bounds(metadata: list[Any]) -> tuple[float | None, float | None, float | None, str | None, Any]:
    """(minimum, maximum, step, description, default) from ``Annotated`` metadata / a pydantic FieldInfo."""
    lo = hi = step = None
    description: str | None = None
    default: Any = inspect.Parameter.empty
    items = list(metadata)
    while items:
        item = items.pop(0)
        if isinstance(item, str):
            description = item
            continue
        # pydantic FieldInfo: its own constraints live in .metadata, plus description/default
        if type(item).__name__ == "FieldInfo":
            items = list(getattr(item, "metadata", [])) + items
            description = getattr(item, "description", None) or description
            field_default = getattr(item, "default", inspect.Parameter.empty)
            if type(field_default).__name__ != "PydanticUndefinedType" and field_default is not Ellipsis:
                default = field_default
            continue
        for attr, kind in (("ge", "lo"), ("gt", "lo"), ("le", "hi"), ("lt", "hi"), ("multiple_of", "step")):
            value = getattr(item, attr, None)
            if isinstance(value, int | float) and not isinstance(value, bool):
                if kind == "lo":
                    lo = float(value) if lo is None else max(lo, float(value))
                elif kind == "hi":
                    hi = float(value) if hi is None else min(hi, float(value))
                else:
                    step = float(value)
    return lo, hi, step, description, default


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) < len(typing.get_args(annotation)) and len(args) == 1:
            return args[0], True
    return annotation, False


def _kind(annotation: Any, where: str) -> tuple[str, str | None, list[Any] | None, bool]:
    """(dataType, dataSubType, options, multipleValues) for one annotation."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return "text", None, None, False
    annotation, _ = _strip_optional(annotation)
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _kind(typing.get_args(annotation)[0], where)
    if origin is Literal:
        return "label", None, list(typing.get_args(annotation)), False
    if origin in (list, tuple, set, frozenset, typing.List, typing.Sequence) or annotation in (list, tuple):  # noqa: UP006
        args = typing.get_args(annotation)
        item = args[0] if args else str
        data_type, sub_type, item_options, multiple = _kind(item, where)
        if multiple:
            raise RegistrationError(f"{where}: nested lists are not supported; use dict for JSON values")
        return data_type, sub_type, item_options, True
    if isinstance(annotation, type):
        if issubclass(annotation, bool):
            return "boolean", None, None, False
        if issubclass(annotation, enum.Enum):
            return "label", None, [m.value for m in annotation], False
        if issubclass(annotation, int):
            return "number", "integer", None, False
        if issubclass(annotation, float):
            return "number", None, None, False
        if issubclass(annotation, str):
            return "text", None, None, False
        if issubclass(annotation, dict):
            return "json", None, None, False
    if origin is dict:
        return "json", None, None, False
    raise RegistrationError(
        f"{where}: unsupported type {annotation!r}; use str, int, float, bool, Literal[...], an Enum, "
        "list[...] or dict (bounds via Annotated[int, Field(ge=..., le=...)])"
    )


def _schema_param(name: str, annotation: Any, default: Any, help_text: str | None, where: str) -> Parameter:
    metadata: list[Any] = []
    base = annotation
    base, optional = _strip_optional(base)
    if typing.get_origin(base) is typing.Annotated:
        args = typing.get_args(base)
        base, metadata = args[0], list(args[1:])
        base, optional_inner = _strip_optional(base)
        optional = optional or optional_inner
    if type(default).__name__ == "FieldInfo":  # x: int = Field(3, ge=1)
        metadata.append(default)
        default = inspect.Parameter.empty
    lo, hi, step, description, field_default = _bounds(metadata)
    if default is inspect.Parameter.empty:
        default = field_default
    data_type, sub_type, options, multiple = _kind(base, where)
    if isinstance(default, enum.Enum):
        default = default.value
    has_default = default is not inspect.Parameter.empty
    if data_type == "number" and sub_type == "integer" and step is None:
        step = 1.0
    return param(
        name,
        data_type,
        required=not has_default and not optional,
        default=default if has_default else None,
        options=options,
        minimum=lo,
        maximum=hi,
        step=step,
        description=description or help_text,
        sub_type=sub_type,
        multiple=multiple,
    )


def _drive_async_gen(agen: AsyncIterator[Any]) -> Iterator[Any]:
    """Iterate an async generator from a worker thread, on its own loop (closing closes the generator)."""
    loop = asyncio.new_event_loop()
    try:
        while True:
            try:
                yield loop.run_until_complete(agen.__anext__())
            except StopAsyncIteration:
                return
    finally:
        try:
            loop.run_until_complete(agen.aclose())  # type: ignore[attr-defined]
        finally:
            loop.close()


def model_spec_from_function(
    func: Callable[..., Any],
    *,
    id: str | None = None,
    name: str | None = None,
    function: str = "utilities",
    description: str | None = None,
    concurrency: int = 1,
    sync_wait: float | None = None,
) -> ModelSpec:
    """The :class:`ModelSpec` that serves ``func`` (see the module docstring for the rules)."""
    if not callable(func):
        raise RegistrationError(f"register_model expects a function, got {type(func).__name__}")
    func_name = getattr(func, "__name__", type(func).__name__)
    try:
        signature = inspect.signature(func)
        hints = typing.get_type_hints(func, include_extras=True)
    except (TypeError, ValueError, NameError) as exc:
        raise RegistrationError(f"cannot read the signature of {func_name}: {exc}") from None
    doc_description, helps = parse_docstring(func.__doc__)
    schema: list[Parameter] = []
    inject_progress = False
    inject_context: str | None = None
    for pname, p in signature.parameters.items():
        where = f"{func_name}({pname})"
        annotation = hints.get(pname, p.annotation)
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise RegistrationError(f"{where}: *args/**kwargs cannot become model parameters; name each one")
        if p.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise RegistrationError(f"{where}: positional-only parameters are not supported")
        if _strip_optional(annotation)[0] is JobContext:
            inject_context = pname
            continue
        if pname == PROGRESS_PARAM:
            inject_progress = True
            continue
        schema.append(_schema_param(pname, annotation, p.default, helps.get(pname), where))
    if not schema:
        raise RegistrationError(
            f"{func_name} takes no input; give it at least one parameter (the model's data)"
        )
    names = [p.name for p in schema]
    model_id = id or f"local/{func_name.replace('_', '-')}"
    if not _ID_RE.match(model_id) or "//" in model_id:
        raise RegistrationError(
            f"invalid model id {model_id!r}: pass id='owner/name' (letters, digits, '.', '_', '-', '/')"
        )
    is_async_gen = inspect.isasyncgenfunction(func)
    is_coroutine = inspect.iscoroutinefunction(func)
    streaming = is_async_gen or inspect.isgeneratorfunction(func)

    # parameters typed ``X | None`` without a default: an unset value is passed as None
    unset_none = [n for n in names if signature.parameters[n].default is inspect.Parameter.empty]

    def runner(inputs: dict[str, Any], ctx: JobContext) -> Any:
        kwargs = {n: inputs[n] for n in names if n in inputs}
        for n in unset_none:
            kwargs.setdefault(n, None)
        if inject_progress:
            kwargs[PROGRESS_PARAM] = ctx.progress
        if inject_context is not None:
            kwargs[inject_context] = ctx
        if is_async_gen:
            return _drive_async_gen(func(**kwargs))
        if is_coroutine:
            return asyncio.run(func(**kwargs))
        return func(**kwargs)

    module = getattr(func, "__module__", None) or "__main__"
    return ModelSpec(
        id=model_id,
        name=name or func_name,
        function=function,
        function_type="utility" if function == "utilities" else "ai",
        runner=runner,
        params=ModelParameters(schema),
        description=description or doc_description or f"The Python function {func_name}, served as a model.",
        streaming=streaming,
        concurrency=max(int(concurrency), 1),
        sync_wait=sync_wait,
        primary=names[0],
        builtin=False,
        code=f"python:{module}.{getattr(func, '__qualname__', func_name)}",
    )


@overload
def register_model(func: F, /) -> F: ...
@overload
def register_model(
    func: None = None,
    /,
    *,
    id: str | None = None,
    name: str | None = None,
    function: str = "utilities",
    description: str | None = None,
    concurrency: int = 1,
    sync_wait: float | None = None,
    catalog: Catalog | None = None,
) -> Callable[[F], F]: ...
def register_model(
    func: Callable[..., Any] | None = None,
    /,
    *,
    id: str | None = None,
    name: str | None = None,
    function: str = "utilities",
    description: str | None = None,
    concurrency: int = 1,
    sync_wait: float | None = None,
    catalog: Catalog | None = None,
) -> Any:
    """Serve a Python function as a model (decorator; usable bare or with options).

    ``id`` defaults to ``local/<function-name>``; ``function`` is the wire's function slug (e.g.
    ``"text-generation"``); ``concurrency`` bounds simultaneous runs; ``sync_wait`` is how long a
    synchronous run waits before answering with a poll URL. Registering the same id again replaces
    the earlier function (re-running a notebook cell works). The function is returned unchanged,
    with ``aix_model_id`` set on it.
    """

    def decorate(f: F) -> F:
        spec = model_spec_from_function(
            f,
            id=id,
            name=name,
            function=function,
            description=description,
            concurrency=concurrency,
            sync_wait=sync_wait,
        )
        try:
            (catalog or default_catalog()).add(spec, replace=True)
        except CatalogError as exc:
            raise RegistrationError(str(exc)) from None
        with contextlib.suppress(AttributeError):  # a builtin or a callable object with __slots__
            f.aix_model_id = spec.id  # type: ignore[attr-defined]
        return f

    if func is not None:
        return decorate(func)  # type: ignore[arg-type]
    return decorate


def unregister_model(model: str | Callable[..., Any], *, catalog: Catalog | None = None) -> None:
    """Remove a registered model (by id, or by the decorated function)."""
    model_id = model if isinstance(model, str) else getattr(model, "aix_model_id", None)
    if not model_id:
        raise RegistrationError(f"{model!r} is not a registered model")
    try:
        (catalog or default_catalog()).remove(model_id)
    except CatalogError as exc:
        raise RegistrationError(str(exc)) from None
