"""``compare``: several models on the same inputs, side by side.

Every model runs as its own batch (``core.batch``: back-pressure, timeout, cancel), and all batches
go out together on one event loop, sharing one bound: at most ``concurrency`` jobs in flight across
all the models (shared fairly, ``SharedLimit``); ``concurrency_per_model`` bounds each model too. A
parameter goes to the models whose schema declares it (a model without a schema gets none); a
parameter that no model declares is an error naming it. An input a model cannot take fails in
that model's cell, not the whole call.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from aix_jupyter.core.batch import Batch, BatchHook, _check_numbers, _is_pandas, run_batches
from aix_jupyter.core.batch_result import BatchInterrupted, BatchResult, _never_ran, _short
from aix_jupyter.core.batch_schedule import SharedLimit
from aix_jupyter.core.errors import ParameterError
from aix_jupyter.core.marks import recall_of, spent_credits

if TYPE_CHECKING:
    from aix_jupyter.core.model import Model


def _model_list(models: Any) -> list[Any]:
    """The models as given (Models and ids), checked; ids are fetched by the caller."""
    from aix_jupyter.core.model import Model

    if isinstance(models, str | Model) or not isinstance(models, Iterable):
        models = [models]
    out = list(models)
    if not out:
        raise ParameterError("compare: give at least one model (an id or a Model)", parameter="models")
    for item in out:
        if not (isinstance(item, Model) or (isinstance(item, str) and item)):
            raise ParameterError(
                f"compare: a model is an id or a Model, got {type(item).__name__}", parameter="models"
            )
    return out


def _checked(models: list[Model]) -> list[Model]:
    seen: set[str] = set()
    for model in models:
        if model.id in seen:
            raise ParameterError(f"compare: model {model.id!r} is given twice", parameter="models")
        seen.add(model.id)
    return models


def _inputs(data: Any) -> Any:
    """One input (text, dict) becomes a list of one; lists, Series and other iterables are kept."""
    if isinstance(data, str | bytes | Mapping) or not isinstance(data, Iterable):
        return [data]
    if _is_pandas(data, "Series"):
        return data
    return list(data)


def split_parameters(models: Sequence[Model], parameters: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The parameters each model takes: those its schema declares (wire keys like ``options``: all)."""
    from aix_jupyter.core.protocol import WIRE_KEYS

    given = dict(parameters or {})
    unknown = [n for n in given if n not in WIRE_KEYS and not any(n in m.model_params for m in models)]
    if unknown:
        ids = ", ".join(m.id for m in models)
        raise ParameterError(
            f"compare: parameter '{unknown[0]}' is declared by none of the models ({ids})",
            parameter=unknown[0],
        )
    return [{n: v for n, v in given.items() if n in WIRE_KEYS or n in m.model_params} for m in models]


def _batches(
    models: Sequence[Model],
    data: Any,
    parameters: Mapping[str, Any] | None,
    concurrency: int,
    timeout: float,
    on_event: BatchHook | None,
    cancel: threading.Event | None,
    cache: Any = None,
    per_model: int | None = None,
) -> list[Batch]:
    _check_numbers(concurrency, timeout)
    if per_model is not None and (type(per_model) is not int or per_model < 1):
        raise ParameterError(
            f"concurrency_per_model must be a whole number >= 1 (or None), got {per_model!r}",
            parameter="concurrency_per_model",
        )
    inputs = _inputs(data)
    split = split_parameters(models, parameters)
    shared = SharedLimit(concurrency)
    batches = [
        Batch(
            m,
            inputs,
            p or None,
            concurrency=min(concurrency, per_model or concurrency),
            timeout=timeout,
            on_event=on_event,
            cancel=cancel,
            cache=cache,
            shared=shared,
        )
        for m, p in zip(models, split, strict=True)
    ]  # every batch validates its parameters here, before anything is sent
    return batches


class Comparison:
    """The results of ``compare``: ``responses[model_id]`` is that model's ``BatchResult``."""

    def __init__(self, responses: Mapping[str, BatchResult]) -> None:
        if not responses:
            raise ParameterError("Comparison: no results", parameter="responses")
        self.responses: dict[str, BatchResult] = dict(responses)
        first = next(iter(self.responses.values()))
        self.inputs: list[Any] = first.inputs
        self.input_index: list[Any] | None = first.input_index

    @property
    def model_ids(self) -> list[str]:
        return list(self.responses)

    @property
    def ok(self) -> bool:
        """True when every model succeeded on every input."""
        return all(r.ok for r in self.responses.values())

    def to_pandas(self, field: str = "data") -> Any:
        """A DataFrame, rows = inputs, columns = models; cells are ``field`` of each response.

        ``field`` is one of "data" (None where the run failed), "status", "error", "credits",
        "run_time".
        """
        try:
            import pandas
        except ImportError:
            raise ImportError(
                "to_pandas() needs pandas, which is not installed: pip install pandas"
            ) from None
        columns = ("data", "status", "error", "credits", "run_time")
        if field not in columns:
            raise ParameterError(
                f"to_pandas: field must be one of {', '.join(columns)}; got {field!r}", parameter="field"
            )
        frames = {model_id: result.to_pandas()[field] for model_id, result in self.responses.items()}
        frame = pandas.DataFrame(frames)
        if self.input_index is None:
            frame.index = pandas.Index([_short(x, 40) for x in self.inputs], name="input")
        return frame

    # -- display --------------------------------------------------------------------------------
    def _cell(self, model_id: str, row: int) -> tuple[str, str]:
        response = self.responses[model_id][row]
        run_time = float(response.run_time or 0)
        mark = recall_of(response)
        if mark is not None and mark.source is not None:  # a stored answer: nothing spent
            meta = f"{response.status.value} · {mark.word} · 0 cr (saved {mark.saved:.4g})"
        else:
            meta = f"{response.status.value} · {run_time:.2f} s · {spent_credits(response):.4g} cr"
        text = _short(response.data, 60) if response.ok else _short(response.error_message, 60)
        return text, meta

    def __repr__(self) -> str:
        lines = [f"Comparison of {', '.join(self.model_ids)} on {len(self.inputs)} input(s)"]
        for row, data in enumerate(self.inputs):
            lines.append(f"  input {_short(data, 60)}")
            for model_id in self.model_ids:
                text, meta = self._cell(model_id, row)
                lines.append(f"    {model_id}: {text}  [{meta}]")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return self.html()

    def html(self, media: Callable[[Any], str | None] | None = None) -> str:
        """The side-by-side table as HTML; ``media(data)`` (the notebook layer's) may give the HTML of
        an output that is media (an ``<audio>`` player, an image), shown in place of its text."""
        head = "".join(f"<th>{html.escape(m)}</th>" for m in self.model_ids)
        rows = []
        for row, data in enumerate(self.inputs):
            cells = []
            for model_id in self.model_ids:
                text, meta = self._cell(model_id, row)
                response = self.responses[model_id][row]
                ok = response.ok
                style = "" if ok else " style='color:#b00020'"
                shown = media(response.data) if ok and media is not None else None
                body = shown if shown is not None else html.escape(text)
                cells.append(f"<td{style}>{body}<br><small>{html.escape(meta)}</small></td>")
            rows.append(f"<tr><th>{html.escape(_short(data, 60))}</th>{''.join(cells)}</tr>")
        return (
            "<table class='aix-compare'><thead><tr><th>input</th>"
            f"{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )


class ComparisonInterrupted(BatchInterrupted):
    """Ctrl-C stopped a sync ``compare``; ``.results`` is the partial ``Comparison``: every model's
    finished results are kept (the inputs a model never ran are FAILED, "Not run: ...")."""

    def __init__(self, comparison: Comparison) -> None:
        results = list(comparison.responses.values())
        KeyboardInterrupt.__init__(self, f"comparison interrupted: {_ended(results)}; see .results")
        self.results: Comparison = comparison  # type: ignore[assignment]
        self.batches = results


def _ended(results: Sequence[BatchResult]) -> str:
    parts = []
    for result in results:
        done = len(result) - sum(1 for r in result if _never_ran(r))
        parts.append(f"{result.model_id}: {done} of {len(result)} items ended")
    return ", ".join(parts)


class CompareOptions(TypedDict, total=False):
    """The keyword options of ``compare`` / ``acompare``."""

    concurrency: int  # jobs in flight at once across all the models (8)
    concurrency_per_model: int | None  # jobs in flight at once per model (None: only the total bounds)
    timeout: float  # bounds the whole comparison (300 s)
    on_event: BatchHook | None  # receives every model's BatchEvents
    cancel: threading.Event | None  # stops it early; the partial results are returned
    cache: Any  # Model.run's ``cache`` (False bypasses an enabled cache)


def _comparison(resolved: list[Model], data: Any, parameters: Any, options: CompareOptions) -> list[Batch]:
    return _batches(
        _checked(resolved),
        data,
        parameters,
        options.get("concurrency", 8),
        options.get("timeout", 300),
        options.get("on_event"),
        options.get("cancel"),
        options.get("cache"),
        options.get("concurrency_per_model"),
    )


def compare(
    models: Any, data: Any, parameters: Mapping[str, Any] | None = None, **options: Unpack[CompareOptions]
) -> Comparison:
    """Run ``data`` (one input or a list) on each of ``models`` (ids or Models), all at once.

    Options (keywords): ``concurrency`` (8: jobs in flight at once across all the models, shared
    fairly), ``concurrency_per_model`` (None: a bound per model as well), ``timeout`` (300 s, the whole
    comparison), ``on_event`` (every model's ``BatchEvent``s), ``cancel`` (a ``threading.Event``),
    ``cache`` (``Model.run``'s).
    Ctrl-C raises ``ComparisonInterrupted`` (a ``BatchInterrupted``) whose ``.results`` is the
    partial ``Comparison``.
    """
    from aix_jupyter.core.factory import ModelFactory

    resolved = [m if not isinstance(m, str) else ModelFactory.get(m) for m in _model_list(models)]
    batches = _comparison(resolved, data, parameters, options)
    try:
        results = run_batches(batches)
    except BatchInterrupted as exc:
        partial = Comparison({m.id: r for m, r in zip(resolved, exc.batches, strict=True)})
        raise ComparisonInterrupted(partial) from None
    return Comparison({m.id: r for m, r in zip(resolved, results, strict=True)})


async def acompare(
    models: Any, data: Any, parameters: Mapping[str, Any] | None = None, **options: Unpack[CompareOptions]
) -> Comparison:
    """The async twin of ``compare``: the same arguments, awaited."""
    import asyncio

    from aix_jupyter.core.factory import ModelFactory

    resolved = [m if not isinstance(m, str) else await ModelFactory.aget(m) for m in _model_list(models)]
    batches = _comparison(resolved, data, parameters, options)
    results = await asyncio.gather(*(b.run() for b in batches))
    return Comparison({m.id: r for m, r in zip(resolved, results, strict=True)})
