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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

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
