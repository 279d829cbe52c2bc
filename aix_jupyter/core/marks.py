"""What the cache/cassette seam marks a response with: its request key, where it came from, and
the credits a stored answer saved (``RecallMark``); read with ``recall_of``.

Below everything that reports a run's end (the events' session observers, the streamer, a batch's
counts), which reads the marks without needing the stores (``recall``) that set them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from aix_jupyter.core.response import ModelResponse

Source = Literal["cache", "cassette"]
STORED_WORDS: dict[str, str] = {"cache": "cached", "cassette": "replayed"}


@dataclass(frozen=True, slots=True)
class RecallMark:
    """What the seam knows of a response: its request key, where it came from (None: the server),
    and the credits a stored answer saved (its recorded credits)."""

    key: str
    source: Source | None = None
    saved: float = 0.0

    @property
    def word(self) -> str | None:
        """How a display says where the answer came from: ``cached``, ``replayed``, None (the server)."""
        return None if self.source is None else STORED_WORDS[self.source]


def recall_of(response: Any) -> RecallMark | None:
    """The ``RecallMark`` of a response that passed the seam, else None."""
    return getattr(response, "_recall", None)


def _mark(response: ModelResponse, key: str, source: Source | None, saved: float = 0.0) -> ModelResponse:
    response._recall = RecallMark(key, source, saved)  # type: ignore[attr-defined]
    return response


def carry(response: ModelResponse, mark: RecallMark | None) -> ModelResponse:
    """``response`` marked with ``mark`` (a response made from another one, e.g. a stream's whole text)."""
    if mark is not None:
        response._recall = mark  # type: ignore[attr-defined]
    return response


def spent_credits(response: Any) -> float:
    """The credits a response cost: 0 for an answer from the cache or a cassette."""
    mark = recall_of(response)
    if mark is not None and mark.source is not None:
        return 0.0
    try:
        return float(getattr(response, "used_credits", 0) or 0)
    except (TypeError, ValueError):
        return 0.0
