"""The session ledger behind ``%aix usage``: what the magics ran in this kernel, per model.

Each single run (``%aix run``, ``%%aix run``, ``%aix async``), each stream and each batch (``%aix
map``, every model of ``%aix compare``) is counted once, with its items, failures and credits. A
job submitted with ``%aix async`` counts as a run when submitted; its credits are added once, when
``%aix poll`` sees it end.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

RunKind = Literal["run", "stream", "async", "poll"]


@dataclass
class ModelUsage:
    """What one model ran in this kernel."""

    model_id: str
    runs: int = 0  # single runs (async submissions included)
    streams: int = 0
    batches: int = 0
    items: int = 0  # inputs sent: one per run or stream, one per batch item that was run
    failures: int = 0
    credits: float = 0.0


def _failed(response: Any) -> bool:
    return str(getattr(response.status, "value", response.status)) == "FAILED"


class Ledger:
    """Counts per model, in the order models were first used."""

    def __init__(self) -> None:
        self.models: dict[str, ModelUsage] = {}
        self._settled: set[str] = set()  # poll URLs whose end was counted

    def _entry(self, model_id: str) -> ModelUsage:
        return self.models.setdefault(model_id, ModelUsage(model_id))

    def record_run(self, model_id: str, kind: RunKind, response: Any) -> None:
        """One single run, stream, async submission, or the end of an async job seen by a poll."""
        entry = self._entry(model_id)
        if kind == "poll":
            url = getattr(response, "url", None) or ""
            if not getattr(response, "completed", False) or (url and url in self._settled):
                return
            self._settled.add(url)
        else:
            entry.items += 1
            if kind == "stream":
                entry.streams += 1
            else:
                entry.runs += 1
        if _failed(response):
            entry.failures += 1
        entry.credits += float(getattr(response, "used_credits", 0) or 0)

    def record_batch(self, model_id: str, responses: Iterable[Any]) -> None:
        """One batch: every response that was run counts as an item (those never sent do not)."""
        from aix_jupyter.core.batch import _never_ran

        entry = self._entry(model_id)
        entry.batches += 1
        for response in responses:
            if _never_ran(response):
                continue
            entry.items += 1
            entry.failures += _failed(response)
            entry.credits += float(getattr(response, "used_credits", 0) or 0)

    def rows(self) -> list[list[Any]]:
        """``[model, runs, streams, batches, items, failures, credits]`` per model."""
        return [
            [u.model_id, u.runs, u.streams, u.batches, u.items, u.failures, f"{u.credits:.4g}"]
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
            total.credits += u.credits
        return total


__all__ = ["Ledger", "ModelUsage", "RunKind"]
