"""The session ledger behind ``%aix usage``: what ran in this kernel, per model.

The ledger observes the core's session outcomes (``core.events.observe_session``), so it counts
every run of the kernel whatever started it: the magics, the Python API, a ``ModelWidget``. Each
single run (``run``, ``run_async``, ``%aix run``/``async``), each stream and each batch (``map``,
every model of ``compare``) is counted once, with its items, failures and credits. A job that goes
on (submitted with ``run_async``, or given up waiting for) counts as a run when it leaves; its
failure and credits are added once, when a poll sees it end.

An answer from the response cache or a cassette being replayed (``RunOutcome.recalled``) counts as
``cached``, with the credits it ``saved``; ``credits`` are the credits spent (none for it).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aix_jupyter.core.events import RunOutcome


@dataclass
class ModelUsage:
    """What one model ran in this kernel."""

    model_id: str
    runs: int = 0  # single runs (async submissions included)
    streams: int = 0
    batches: int = 0
    items: int = 0  # inputs sent: one per run or stream, one per batch item that was run
    failures: int = 0
    cached: int = 0  # answers from the response cache or a cassette (nothing sent for them)
    credits: float = 0.0  # spent
    saved: float = 0.0  # credits the cached answers saved (what the stored runs cost)


COLUMNS: tuple[str, ...] = (
    "model",
    "runs",
    "streams",
    "batches",
    "items",
    "failed",
    "cached",
    "credits",
    "saved",
)
STORE_COLUMNS: tuple[str, ...] = ("cached", "saved")  # shown once something was answered from a store


class Ledger:
    """Counts per model, in the order models were first used (``record`` is its session observer)."""

    def __init__(self) -> None:
        self.models: dict[str, ModelUsage] = {}
        self._pending: dict[str, str] = {}  # poll URL -> model id: jobs counted, whose end is not seen yet
        self._settled: set[str] = set()  # poll URLs whose end was counted
        self._lock = threading.Lock()  # a sync batch reports from its own thread

    def _entry(self, model_id: str) -> ModelUsage:
        return self.models.setdefault(model_id, ModelUsage(model_id))

    def record(self, outcome: RunOutcome) -> None:
        """Count one outcome: a run, stream or batch item that ended, a job that goes on, a batch."""
        with self._lock:
            if outcome.kind == "batch":
                self._entry(outcome.model_id).batches += 1
                return
            url = outcome.url if outcome.kind == "run" else None
            if url in self._settled:
                return  # the end of this job was counted (polled again)
            if url is not None and url in self._pending:
                if not outcome.completed:
                    return
                entry = self._entry(self._pending.pop(url))  # the model that started it
            else:
                entry = self._entry(outcome.model_id)
                entry.items += 1
                if outcome.kind == "stream":
                    entry.streams += 1
                elif outcome.kind == "run":
                    entry.runs += 1
                if url is not None and not outcome.completed:
                    self._pending[url] = outcome.model_id  # its failure and credits come with its end
                    return
            if url is not None:
                self._settled.add(url)
            entry.failures += outcome.status == "FAILED"
            entry.credits += outcome.credits
            if outcome.recalled:
                entry.cached += 1
                entry.saved += outcome.saved

    def rows(self) -> list[list[Any]]:
        """``[model, runs, streams, batches, items, failures, cached, credits, saved]`` per model
        (:data:`COLUMNS`)."""
        return [
            [
                u.model_id,
                u.runs,
                u.streams,
                u.batches,
                u.items,
                u.failures,
                u.cached,
                f"{u.credits:.4g}",
                f"{u.saved:.4g}",
            ]
            for u in self.models.values()
        ]

    def totals(self) -> ModelUsage:
        """The sums over every model."""
        total = ModelUsage("total")
        for u in self.models.values():
            total.runs += u.runs
            total.streams += u.streams
            total.batches += u.batches
            total.items += u.items
            total.failures += u.failures
            total.cached += u.cached
            total.credits += u.credits
            total.saved += u.saved
        return total


__all__ = ["COLUMNS", "STORE_COLUMNS", "Ledger", "ModelUsage"]
