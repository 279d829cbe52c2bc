"""What a batch gives back: its events (``BatchEvent``, with the counts a progress display needs) and
its result (``BatchResult``, ``BatchInterrupted``).

A ``BatchResult`` knows its model only as a ``Rerunnable`` (``core.model.Model`` is one), which is
what ``retry_failed`` needs of it.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypedDict, Unpack, overload

from aix_jupyter.core.enums import ResponseStatus
from aix_jupyter.core.errors import AixError
from aix_jupyter.core.events import RunEvent
from aix_jupyter.core.marks import recall_of, spent_credits
from aix_jupyter.core.protocol import failed
from aix_jupyter.core.response import ModelResponse

BatchEventKind = Literal["started", "run", "item_finished", "item_failed", "concurrency", "finished"]
StopReason = Literal["cancelled", "timeout", "interrupted"]
FIRST_ERRORS = 3  # errors shown in a summary
MEDIA_ROWS = 20  # media outputs a BatchResult shows playable (when the notebook layer renders media)


class BatchOptions(TypedDict, total=False):
    """The keyword options of ``Model.map`` / ``amap``."""

    concurrency: int
    timeout: float
    on_event: Callable[[BatchEvent], None] | None
    cancel: threading.Event | None
    resume: BatchResult | None
    cache: Any


class Rerunnable(Protocol):
    """What a ``BatchResult`` uses of its model: its id, and ``map``/``amap`` to run items again."""

    id: str

    def map(
        self,
        inputs: Iterable[Any],
        parameters: Mapping[str, Any] | None = None,
        **options: Unpack[BatchOptions],
    ) -> BatchResult: ...

    async def amap(
        self,
        inputs: Iterable[Any],
        parameters: Mapping[str, Any] | None = None,
        **options: Unpack[BatchOptions],
    ) -> BatchResult: ...


@dataclass(frozen=True, slots=True)
class BatchEvent:
    """One event of a batch, with a snapshot of its counts (see the module docstring for kinds)."""

    kind: BatchEventKind
    model_id: str
    index: int | None  # the item's position in the input (None for batch-wide events)
    done: int  # items that ended (reused ones included)
    failed: int  # items that ended FAILED
    total: int | None  # number of items, when the input has a length
    in_flight: int  # items holding a slot now
    concurrency: int  # the effective concurrency now
    used_credits: float  # credits of the items that ended so far
    elapsed: float  # seconds since the batch started
    run: RunEvent | None = None
    response: ModelResponse | None = None
    message: str = ""

    @property
    def rate(self) -> float:
        """Items ended per second since the batch started (0 before the first)."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate, when the total is known and something has ended."""
        if self.total is None or not self.done or self.elapsed <= 0:
            return None
        return max(0, self.total - self.done) / self.rate


def _failed(message: str) -> ModelResponse:
    return failed(message)


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class BatchResult(Sequence[ModelResponse]):
    """The responses of a batch, in input order (a ``Sequence[ModelResponse]``).

    For an input with a length there is one response per input; for a generator, one per input
    consumed (all of them unless the batch was stopped early). ``stopped`` says why a batch ended
    early ("cancelled", "timeout", "interrupted") or is None; ``input_index`` is the index of a
    pandas Series input (None otherwise).
    """

    def __init__(
        self,
        responses: Sequence[ModelResponse],
        inputs: Sequence[Any],
        *,
        model: Rerunnable | None = None,
        parameters: Mapping[str, Any] | None = None,
        index: Sequence[Any] | None = None,
        wall_time: float = 0.0,
        concurrency: int = 8,
        timeout: float = 300,
        stopped: StopReason | None = None,
        reused: int = 0,
    ) -> None:
        if len(responses) != len(inputs):
            raise AixError(f"BatchResult: {len(responses)} responses for {len(inputs)} inputs")
        self._responses = list(responses)
        self.inputs = list(inputs)
        self.model = model
        self.model_id = model.id if model is not None else ""
        self.parameters = dict(parameters or {})
        self.input_index = None if index is None else list(index)[: len(self._responses)]
        self.wall_time = wall_time
        self.concurrency = concurrency
        self.timeout = timeout
        self.stopped = stopped
        self.reused = reused

    # -- Sequence -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._responses)

    @overload
    def __getitem__(self, i: int) -> ModelResponse: ...

    @overload
    def __getitem__(self, i: slice) -> list[ModelResponse]: ...

    def __getitem__(self, i: int | slice) -> ModelResponse | list[ModelResponse]:
        return self._responses[i]

    def __iter__(self) -> Iterator[ModelResponse]:
        return iter(self._responses)

    # -- summaries ------------------------------------------------------------------------------
    @property
    def ok(self) -> bool:
        """True when every item succeeded (and the batch was not stopped early)."""
        return self.stopped is None and all(r.status is ResponseStatus.SUCCESS for r in self._responses)

    @property
    def failed(self) -> list[int]:
        """Positions of the items that did not succeed."""
        return [i for i, r in enumerate(self._responses) if r.status is not ResponseStatus.SUCCESS]

    @property
    def data(self) -> list[Any]:
        """The outputs in input order, None for the items that did not succeed."""
        return [r.data if r.status is ResponseStatus.SUCCESS else None for r in self._responses]

    @property
    def used_credits(self) -> float:
        """Credits spent (an answer from the cache or a cassette spent none: see ``saved_credits``)."""
        return float(sum(spent_credits(r) for r in self._responses))

    @property
    def recalled(self) -> int:
        """How many items the cache or a cassette answered (nothing sent for them)."""
        return sum(1 for r in self._responses if (m := recall_of(r)) is not None and m.source is not None)

    @property
    def saved_credits(self) -> float:
        """Credits not spent thanks to the cache or a cassette (what the recorded runs cost)."""
        return float(sum(m.saved for r in self._responses if (m := recall_of(r)) is not None and m.source))

    @property
    def errors(self) -> list[tuple[int, str]]:
        """``(position, message)`` of each failed item."""
        return [(i, self._responses[i].error_message) for i in self.failed]

    # -- follow-ups -----------------------------------------------------------------------------
    def _again(self) -> tuple[Rerunnable, dict[str, Any]]:
        if self.model is None:
            raise AixError(
                "retry_failed: this BatchResult has no model to run; use model.map(..., resume=it)"
            )
        inputs: Any = self.inputs
        if self.input_index is not None:
            import pandas  # the index came from a Series, so pandas is there

            inputs = pandas.Series(self.inputs, index=self.input_index, dtype=object)
        options = {"concurrency": self.concurrency, "timeout": self.timeout, "resume": self}
        return self.model, {"inputs": inputs, "parameters": self.parameters or None, **options}

    def retry_failed(self, **options: Any) -> BatchResult:
        """Re-run only the items that did not succeed; a new BatchResult (the successes reused)."""
        model, kwargs = self._again()
        return model.map(**{**kwargs, **options})

    async def aretry_failed(self, **options: Any) -> BatchResult:
        """The async twin of ``retry_failed``."""
        model, kwargs = self._again()
        return await model.amap(**{**kwargs, **options})

    def to_pandas(self) -> Any:
        """A DataFrame: input, status, data, error, credits, run_time (indexed like a Series input)."""
        try:
            import pandas
        except ImportError:
            raise ImportError(
                "to_pandas() needs pandas, which is not installed: pip install pandas"
            ) from None
        rows = {
            "input": self.inputs,
            "status": [str(r.status.value) for r in self._responses],
            "data": self.data,
            "error": [r.error_message or None for r in self._responses],
            "credits": [spent_credits(r) for r in self._responses],
            "run_time": [float(r.run_time or 0) for r in self._responses],
        }
        return pandas.DataFrame(rows, index=self.input_index)

    # -- display --------------------------------------------------------------------------------
    def _counts(self) -> str:
        failed = len(self.failed)
        text = f"{len(self)} items, {len(self) - failed} succeeded, {failed} failed"
        if self.reused:
            text += f" ({self.reused} reused)"
        if self.recalled:
            text += f", {self.recalled} cached (saved {self.saved_credits:.4g} credits)"
        if self.stopped:
            text += f", stopped: {self.stopped}"
        return f"{text} · {self.used_credits:.4g} credits · {self.wall_time:.2f} s"

    def __repr__(self) -> str:
        who = f" of {self.model_id}" if self.model_id else ""
        lines = [f"BatchResult{who}: {self._counts()}"]
        lines += [f"  [{i}] {_short(message, 120)}" for i, message in self.errors[:FIRST_ERRORS]]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return self.html()

    def html(self, media: Callable[[Any], str | None] | None = None, rows: int = MEDIA_ROWS) -> str:
        """The counts and first errors as HTML; ``media(data)`` (the notebook layer's) may give the HTML
        of an output that is media, and then the first ``rows`` media outputs are shown, playable."""
        who = f" of <code>{html.escape(self.model_id)}</code>" if self.model_id else ""
        errors = "".join(
            f"<li>[{i}] {html.escape(_short(message, 160))}</li>" for i, message in self.errors[:FIRST_ERRORS]
        )
        more = f"<ul>{errors}</ul>" if errors else ""
        shown = []
        for i, (data, response) in enumerate(zip(self.inputs, self, strict=False)):
            cell = media(response.data) if media is not None and response.ok else None
            if cell is not None:
                shown.append(f"<tr><td>{i}</td><td>{html.escape(_short(data, 40))}</td><td>{cell}</td></tr>")
                if len(shown) >= rows:
                    break
        table = (
            "<table class='aix-batch-media'><thead><tr><th>#</th><th>input</th><th>output</th></tr></thead>"
            f"<tbody>{''.join(shown)}</tbody></table>"
            if shown
            else ""
        )
        counts = html.escape(self._counts())
        return f"<div class='aix-batch'><b>BatchResult</b>{who}: {counts}{more}{table}</div>"


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a sync ``map``; ``.results`` is the partial ``BatchResult`` (nothing finished lost).

    ``.batches`` holds the partial result of every batch stopped together (``results`` is the first).
    """

    def __init__(self, results: BatchResult, batches: Sequence[BatchResult] | None = None) -> None:
        done = len(results) - sum(1 for r in results if _never_ran(r))
        super().__init__(f"batch interrupted with {done} of {len(results)} items ended; see .results")
        self.results = results
        self.batches: list[BatchResult] = list(batches) if batches is not None else [results]


def _never_ran(response: ModelResponse) -> bool:
    return response.error_message.startswith("Not run:")
