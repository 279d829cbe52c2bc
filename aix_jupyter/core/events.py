"""The run lifecycle: one event type, one hook.

A run (``Model.run``, ``run_async`` + ``sync_poll``, ``run_stream`` and their async twins) emits
``RunEvent`` objects to an ``on_event`` callback. The magic, the widget and the text progress line
are thin consumers of these events; the core knows nothing of them.

    submitted  the request was sent and accepted (``poll_url`` set when the job is asynchronous)
    polled     one poll answered "still running" (``polls``, and ``progress``/``eta`` when reported)
    chunk      one streamed chunk arrived (``chunk``)
    finished   the run ended with SUCCESS (``response``)
    failed     the run ended with FAILED (``response``, ``message``)
    cancelled  the run was cancelled (``message``)

Session observers (``observe_session``) see every run of the process once, as a ``RunOutcome``,
whoever started it: reported where runs end (``flows.Emitter.settle``, the streamer's end, a
batch's item end), never by the front ends. ``%aix usage`` is one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from aix_jupyter.core.marks import recall_of, spent_credits

if TYPE_CHECKING:
    from aix_jupyter.core.response import ModelResponse

EventKind = Literal["submitted", "polled", "chunk", "finished", "failed", "cancelled"]
TERMINAL_KINDS: frozenset[str] = frozenset({"finished", "failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class RunEvent:
    kind: EventKind
    model_id: str
    elapsed: float  # seconds since the run started
    poll_url: str | None = None
    polls: int = 0  # poll requests answered so far
    progress: float | None = None  # 0..1 when the server reports it
    eta: float | None = None  # seconds left, when the server reports it
    chunk: str | None = None
    response: ModelResponse | None = None
    message: str = ""
    extra: dict[str, Any] | None = None  # other fields the server put in a poll reply

    @property
    def terminal(self) -> bool:
        return self.kind in TERMINAL_KINDS


EventHook = Callable[[RunEvent], None]


# ---------------------------------------------------------------------------------------------
# the session: every run's final outcome, for observers such as a kernel's usage ledger

OutcomeKind = Literal["run", "stream", "item", "batch"]


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How one run ended, as session observers see it.

    ``kind``: ``run`` (``run``, ``run_async``, ``sync_poll``, ``poll`` of an ended job), ``stream``,
    ``item`` (one item of a batch: ``map`` or one model of ``compare``; never also a ``run``) or
    ``batch`` (a batch started; ``status`` is ``STARTED``). A job that goes on (``completed``
    False, ``url`` set: submitted, or given up waiting for) is reported again when a poll sees it end.
    """

    kind: OutcomeKind
    model_id: str
    status: str  # SUCCESS, FAILED, IN_PROGRESS (a job that goes on), STARTED (a batch)
    credits: float = 0.0  # credits spent (0 for an answer from the cache or a cassette)
    url: str | None = None  # the job's poll URL, when it has one
    completed: bool = True
    recalled: str | None = None  # "cache" or "cassette" when a store answered, not the server
    saved: float = 0.0  # credits an answer from a store saved (what the recorded run cost)


SessionObserver = Callable[[RunOutcome], None]
_observers: list[SessionObserver] = []


def observe_session(observer: SessionObserver) -> Callable[[], None]:
    """Call ``observer`` with the ``RunOutcome`` of every run in this process; returns its remover."""
    _observers.append(observer)

    def remove() -> None:
        if observer in _observers:
            _observers.remove(observer)

    return remove


def report_outcome(outcome: RunOutcome) -> None:
    """Hand ``outcome`` to every session observer (one that raises is reported as a warning)."""
    for observer in list(_observers):
        try:
            observer(outcome)
        except Exception as exc:  # a broken observer must not break the run it observes
            import warnings

            warnings.warn(f"session observer {observer!r} failed: {exc}", RuntimeWarning, stacklevel=2)


def report_response(
    kind: OutcomeKind, model_id: str, response: ModelResponse, url: str | None = None
) -> None:
    """Report how a run ended, from its final (or, for a job that goes on, its latest) response."""
    if not _observers:
        return
    status = getattr(response.status, "value", response.status)
    mark = recall_of(response)
    recalled = mark.source if mark is not None else None
    report_outcome(
        RunOutcome(
            kind,
            model_id,
            str(status),
            spent_credits(response),
            url or response.url or None,
            bool(response.completed),
            recalled,
            mark.saved if mark is not None and recalled else 0.0,
        )
    )
