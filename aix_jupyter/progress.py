"""Run progress without ipywidgets: the consumer of run events and its text front end (``tqdm.std``).

A ``RunProgress`` is passed as ``on_event=`` to any run of the client core and ``close()``-d when the
run is over (or used as a context manager). It follows the run lifecycle (``submitted``, ``polled``,
``chunk``, ``finished``, ``failed``, ``cancelled``) and knows the elapsed time, the number of polls
(or streamed chunks), the server's progress and ETA when a poll reply carries them, and the final
state. Its front ends only draw that state:

* :class:`TextProgress` (here): a text line on ``sys.stderr``;
* ``aix_jupyter.widgets.progress.WidgetProgress``: an ipywidgets bar (``tqdm.notebook``);
* ``aix_jupyter.widgets.progress.make_progress`` picks one of them (``tqdm.auto``): the bar in a
  ``live`` frontend, the text line everywhere else (see :mod:`aix_jupyter.frontend`).

The text line (the format notebooks under nbval see)::

    [aix] local/sentiment-vader finished (2 polls, 0.41 s)
    [aix] local/smollm2-135m finished (57 chunks, 1.20 s)
    [aix] local/slow-count cancelled (4 polls, 2.02 s)
    [aix] local/echo failed (1 poll, 0.05 s): <the server's message>
    [aix] local/sentiment-vader cached (credits 0, saved 0.05)
    [aix] local/sentiment-vader replayed (credits 0, saved 0.05)

A run answered by the response cache says ``cached``, one answered by a cassette being replayed
``replayed``, with the credits it spent (none) and those it saved (what the stored run cost).

In a ``headless`` frontend (or on a stream that is not a terminal outside a live frontend) only that
final line is written, once, ending with a newline. In a terminal or a ``live`` frontend the line is
redrawn in place with ``\\r`` while the run goes on (``running 45% ETA 3 s (4 polls, 2.10 s)``).
The counts and the time in brackets vary between runs: an nbval sanitize section normalises them
with the regex ``\\(\\d+ (?:polls?|chunks?), \\d+\\.\\d\\d s\\)`` (:data:`SANITIZE_REGEX`); the line of an
answer from a store has no varying part.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Literal

from aix_jupyter import frontend
from aix_jupyter.core.errors import ConfigurationError

if TYPE_CHECKING:
    from aix_jupyter.core.events import RunEvent

Mode = Literal["auto", "widget", "text"]
ProgressState = Literal["waiting", "running", "finished", "failed", "cancelled"]
MODES = ("auto", "widget", "text")
SANITIZE_REGEX = r"\(\d+ (?:polls?|chunks?), \d+\.\d\d s\)"
"""Matches the varying part of a text progress line (for nbval sanitize files)."""

FINAL_STATES: frozenset[str] = frozenset({"finished", "failed", "cancelled"})


# -- which front end ------------------------------------------------------------------------------
def resolve_mode(mode: Mode | str = "auto") -> Literal["widget", "text"]:
    """``widget`` or ``text``: the argument if explicit, else a widget bar in a ``live`` frontend.

    The frontend is :func:`aix_jupyter.frontend.current` (``$AIX_FRONTEND`` overrides its guess).
    """
    chosen = (mode or "auto").strip().lower()
    if chosen not in MODES:
        raise ConfigurationError(f"progress mode must be one of auto, widget, text; got {mode!r}")
    if chosen == "auto":
        return "widget" if frontend.renders_widgets() else "text"
    return "widget" if chosen == "widget" else "text"


# -- the core: state from events, formatting, rate limiting -----------------------------------------
def _fraction(value: Any) -> float | None:
    """A poll's progress as 0..1: a float, a percentage, or ``{"done": d, "total": t}``."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, dict):
        done, total = value.get("done"), value.get("total")
        if isinstance(done, int | float) and isinstance(total, int | float) and total > 0:
            return max(0.0, min(1.0, float(done) / float(total)))
        return None
    if isinstance(value, int | float):
        number = float(value)
        if number != number:  # NaN
            return None
        if 1.0 < number <= 100.0:
            number /= 100.0
        return max(0.0, min(1.0, number))
    return None


def _stored(response: Any) -> tuple[str | None, float]:
    """``("cached" | "replayed" | None, credits saved)`` of a response (see ``core.recall``)."""
    from aix_jupyter.display import recall_mark  # (a run has ended: the display is loaded by now)

    mark = recall_mark(response)
    if mark is None or not mark.source:
        return None, 0.0
    return mark.word, float(mark.saved)


def plural(count: int, word: str) -> str:
    """``1 poll``, ``2 polls``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def format_duration(value: float) -> str:
    """``0.42 s``, ``3.1 s``, ``12 s``, ``2 min 05 s``: a duration as the progress displays show it."""
    if value < 60:
        return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s" if value >= 1 else f"{value:.2f} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds:02d} s"


class RunProgress:
    """State of one run, fed by ``RunEvent`` objects; front ends override ``_render``.

    Callable as an ``on_event`` hook, thread-safe, reusable (``reset()``) and a context manager.
    Non-final updates are rate limited to one every ``min_interval`` seconds; a ticker thread calls
    :meth:`tick` every ``tick_interval`` seconds while the run is going (``None``: no thread, the
    caller ticks). ``clock`` (default ``time.monotonic``) is where every time it uses comes from.
    """

    min_interval: float = 0.25
    tick_interval: float | None = 0.5

    def __init__(self, model_id: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.model_id = model_id
        self.clock = clock
        self._lock = threading.RLock()
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self._closed = False
        self._listeners: list[Callable[[RunEvent], None]] = []
        self._init_state()

    def _init_state(self) -> None:
        self.state: ProgressState = "waiting"
        self.polls = 0
        self.chunks = 0
        self.progress: float | None = None
        self.eta: float | None = None
        self.message = ""
        self.poll_url: str | None = None
        self.recalled: str | None = None  # "cached" / "replayed": a store answered, not the server
        self.saved = 0.0  # credits the stored answer saved
        self._elapsed = 0.0
        self._eta_at = 0.0  # elapsed time when the server reported ``eta``
        self._t0: float | None = None  # monotonic time at elapsed 0, while running
        self._last_render = 0.0

    # -- state ---------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """True once the run reached a final state (finished, failed or cancelled)."""
        return self.state in FINAL_STATES

    @property
    def elapsed(self) -> float:
        """Seconds since the run started: the latest event's, counting on between events while it runs."""
        with self._lock:
            if self._t0 is not None and not self.done:
                return max(self._elapsed, self.clock() - self._t0)
            return self._elapsed

    def reset(self) -> None:
        """Forget the previous run (the widget reuses one bar for each of its runs)."""
        self._stop_ticker()
        with self._lock:
            self._init_state()
            self._closed = False
        self._render(final=False)

    def start(self) -> None:
        """Mark the run as started before its first event arrives (the clock starts now)."""
        with self._lock:
            if self.state == "waiting":
                self.state = "running"
                self._t0 = self.clock()
        self._render(final=False)
        self._start_ticker()

    def __call__(self, event: RunEvent) -> None:
        with self._lock:
            if self.done:
                return  # a late event after the final one changes nothing
            self._elapsed = max(self._elapsed, float(event.elapsed or 0.0))
            if self._t0 is None or self.state == "waiting":
                self._t0 = self.clock() - self._elapsed
            self.state = "running"
            self.polls = max(self.polls, int(event.polls or 0))
            if event.poll_url:
                self.poll_url = event.poll_url
            kind = event.kind
            if kind == "polled":
                fraction = _fraction(event.progress)
                if fraction is not None:
                    self.progress = fraction
                self.eta = float(event.eta) if isinstance(event.eta, int | float) else None
                self._eta_at = self._elapsed
            elif kind == "chunk":
                self.chunks += 1
            elif kind in FINAL_STATES:
                self.state = kind  # type: ignore[assignment]
                self.message = event.message or ""
                if kind == "failed" and not self.message and event.response is not None:
                    self.message = str(getattr(event.response, "error_message", "") or "")
                if kind == "finished":
                    self.progress = 1.0
                    self.recalled, self.saved = _stored(event.response)
                self.eta = None
            final = self.done
            due = final or kind == "submitted" or self.clock() - self._last_render >= self.min_interval
        for listener in list(self._listeners):
            listener(event)
        if final:
            self._stop_ticker()
        if due:
            self._render(final=final)
        if not final:
            self._start_ticker()

    def add_listener(self, listener: Callable[[RunEvent], None]) -> None:
        """Also pass every event to ``listener`` (after the state is updated)."""
        self._listeners.append(listener)

    def close(self) -> None:
        """Stop the ticker and draw the last state (call it when the run is over, however it ended)."""
        self._stop_ticker()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self.state == "running":
                self._elapsed = self.elapsed
                self._t0 = None
        self._render(final=True)

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- formatting ----------------------------------------------------------------------------
    def counts(self) -> str:
        """``3 polls`` (or ``57 chunks`` for a streamed run; ``credits 0, saved 0.05`` for an answer
        from a store)."""
        if self.recalled and self.state == "finished":
            return f"credits 0, saved {self.saved:.4g}"
        return plural(self.chunks, "chunk") if self.chunks else plural(self.polls, "poll")

    def status(self) -> str:
        """The state in words: ``running 45% ETA 3 s``, ``finished``, ``cached``, ``failed``..."""
        if self.state == "finished" and self.recalled:
            return self.recalled
        if self.state != "running":
            return self.state
        if self._closed:
            return "stopped"  # closed while running: the caller gave up (e.g. KeyboardInterrupt)
        text = "running"
        if self.progress is not None:
            text += f" {self.progress:.0%}"
        if self.eta is not None:  # counts down between polls
            text += f" ETA {format_duration(max(0.0, self.eta - (self.elapsed - self._eta_at)))}"
        return text

    def line(self) -> str:
        """The text progress line (see the module docstring for its format)."""
        with self._lock:
            state = self.status()
            if self.recalled and self.state == "finished":
                return f"[aix] {self.model_id} {state} ({self.counts()})"
            text = f"[aix] {self.model_id} {state} ({self.counts()}, {self.elapsed:.2f} s)"
            if self.state in ("failed", "cancelled") and self.message:
                text += ": " + " ".join(self.message.split())
            return text

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.model_id} {self.state}>"

    # -- ticker ----------------------------------------------------------------------------------
    def _start_ticker(self) -> None:
        if not self.tick_interval or self._ticker is not None:
            return
        self._stop.clear()
        self._ticker = threading.Thread(target=self._tick, name=f"aix-progress-{self.model_id}", daemon=True)
        self._ticker.start()

    def _stop_ticker(self) -> None:
        self._stop.set()
        ticker, self._ticker = self._ticker, None
        if ticker is not None and ticker is not threading.current_thread():
            ticker.join(timeout=2)

    def _tick(self) -> None:
        interval = self.tick_interval
        assert interval
        while not self._stop.wait(interval):
            if not self.tick(interval):
                return

    def tick(self, interval: float | None = None) -> bool:
        """Redraw the elapsed time unless an event drew it within ``interval`` (default
        ``tick_interval``) seconds; False once the run is over (the ticker thread then stops)."""
        if self.done or self._closed:
            return False
        interval = interval if interval is not None else (self.tick_interval or 0.0)
        with self._lock:
            recent = self.clock() - self._last_render < interval * 0.8
        if not recent:  # events drew it lately: no extra frontend message needed
            self._render(final=False)
        return True

    def _render(self, *, final: bool) -> None:
        with self._lock:
            self._last_render = self.clock()


class TextProgress(RunProgress):
    """The text line on a stream (stderr by default), like ``tqdm.std``.

    ``live`` (default: a ``live`` frontend renders the kernel's stderr, or a ``terminal`` frontend
    writes to a tty) redraws the line in place with ``\\r``; otherwise only the final line is
    written, once.
    """

    def __init__(
        self,
        model_id: str,
        *,
        stream: IO[str] | None = None,
        live: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if live is None:
            kind = frontend.current()
            isatty = getattr(self.stream, "isatty", None)
            live = kind == "live" or (kind == "terminal" and callable(isatty) and bool(isatty()))
        self.live = live
        self._width = 0
        self._wrote_final = False
        super().__init__(model_id, clock=clock)
        if not live:
            self.tick_interval = None

    def reset(self) -> None:
        """Forget the previous run; the next one writes its own line."""
        self._wrote_final = False
        self._width = 0
        super().reset()

    def _render(self, *, final: bool) -> None:
        super()._render(final=final)
        with self._lock:
            if self._wrote_final or (not final and (not self.live or self.state == "waiting")):
                return
            if final and self.state == "waiting":
                return  # closed before anything happened: nothing to report
            text = self.line()
            if self.live:
                pad = " " * max(0, self._width - len(text))
                self._width = len(text)
                out = "\r" + text + pad + ("\n" if final else "")
            else:
                out = text + "\n"
            if final:
                self._wrote_final = True
            try:
                self.stream.write(out)
                self.stream.flush()
            except ValueError:  # pragma: no cover - stream closed at interpreter exit
                pass


# -- batches: one display per batch (``Model.map``) or per comparison (``compare``) ----------------
BatchState = Literal["waiting", "running", "finished", "stopped"]


class BatchProgress:
    """State of one batch -- or of several run together (``compare``) -- fed by ``BatchEvent`` objects.

    Callable as the batch's ``on_event`` hook; front ends override ``_render``. It keeps the latest
    counts of each model's batch (done / total, failed, in flight, effective concurrency, credits)
    and shows their sums, with the rate and ETA of the whole. Repaints are coalesced: at most one
    every ``min_interval`` seconds (0.12: under 10 a second, whatever the item rate); an event that
    falls inside the interval only marks the display stale, and the next event after it, a
    :meth:`tick` or :meth:`close` draws the latest state. The final repaint (every batch ended, or
    ``close()``) is always drawn, once. ``clock`` is where every time it uses comes from.
    """

    min_interval: float = 0.12  # ≤ 8.3 repaints a second, so the first and last keep it under 10
    tick_interval: float | None = 0.25

    def __init__(self, label: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.clock = clock
        self._lock = threading.RLock()
        self._batches: dict[str, Any] = {}  # model id -> its latest BatchEvent
        self._ended: dict[str, str] = {}  # model id -> the finished event's message ("" or why it stopped)
        self._closed = False
        self._stale = False
        self._last_render = float("-inf")
        self._t0: float | None = None
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self.renders = 0  # repaints drawn so far (what the rate limit bounds)
        self.recalled = 0  # items the cache or a cassette answered (nothing sent for them)
        self.saved_credits = 0.0  # credits those items saved

    # -- state ---------------------------------------------------------------------------------
    def _sum(self, name: str) -> Any:
        return sum(getattr(e, name) for e in self._batches.values())

    @property
    def done(self) -> int:
        """Items ended so far (all batches)."""
        return int(self._sum("done"))

    @property
    def failed(self) -> int:
        """Items that ended FAILED so far."""
        return int(self._sum("failed"))

    @property
    def in_flight(self) -> int:
        """Items holding a slot on the server now."""
        return int(self._sum("in_flight"))

    @property
    def concurrency(self) -> int:
        """The effective concurrency now (summed over the batches)."""
        return int(self._sum("concurrency"))

    @property
    def used_credits(self) -> float:
        """Credits of the items that ended so far."""
        return float(self._sum("used_credits"))

    @property
    def total(self) -> int | None:
        """Number of items, when every batch knows its length (else None)."""
        totals = [e.total for e in self._batches.values()]
        return None if not totals or None in totals else int(sum(totals))

    @property
    def elapsed(self) -> float:
        """Seconds since the batch started, counting on between events while it runs."""
        with self._lock:
            latest = max((e.elapsed for e in self._batches.values()), default=0.0)
            if self._t0 is not None and not self.over:
                return max(latest, self.clock() - self._t0)
            return latest

    @property
    def rate(self) -> float:
        """Items ended per second since the start."""
        elapsed = self.elapsed
        return self.done / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate, when the total is known and something has ended."""
        total, rate = self.total, self.rate
        if total is None or not self.done or rate <= 0:
            return None
        return max(0, total - self.done) / rate

    @property
    def over(self) -> bool:
        """True once every batch seen has finished, or the display was closed."""
        return self._closed or (bool(self._batches) and len(self._ended) == len(self._batches))

    @property
    def state(self) -> BatchState:
        """``waiting``, ``running``, ``finished`` (every batch ended) or ``stopped`` (early)."""
        with self._lock:
            if not self._batches:
                return "waiting"
            if not self.over:
                return "running"
            return "stopped" if self._why_stopped() else "finished"

    @property
    def outcome(self) -> Literal["success", "partial", "failure", "stopped", "none"]:
        """How the batch went: all succeeded, some failed, all failed, stopped early (or nothing yet)."""
        with self._lock:
            state = self.state
            if state == "waiting":
                return "none"
            if state == "stopped":
                return "stopped"
            if self.failed == 0:
                return "success"
            return "failure" if self.failed >= self.done else "partial"

    def _why_stopped(self) -> list[str]:
        """Why the batches ended early ("timeout", ...); "interrupted" when closed before they ended."""
        why = sorted({m for m in self._ended.values() if m})
        if len(self._ended) < len(self._batches) and "interrupted" not in why:
            why.append("interrupted")
        return why

    def __call__(self, event: Any) -> None:
        with self._lock:
            if self._closed:
                return
            if self._t0 is None:
                self._t0 = self.clock() - float(event.elapsed or 0.0)
            self._batches[event.model_id] = event
            if event.kind == "item_finished" and event.message != "reused":
                source, saved = _stored(event.response)
                if source is not None:
                    self.recalled += 1
                    self.saved_credits += saved
            if event.kind == "finished":
                self._ended[event.model_id] = event.message or ""
            final = self.over
            now = self.clock()
            due = final or now - self._last_render >= self.min_interval
            self._stale = not due
        if due:
            self._paint(final=final)
        if final:
            self._stop_ticker()
        else:
            self._start_ticker()

    def tick(self) -> bool:
        """Draw the latest state if an event left it undrawn and the interval allows; False when over."""
        with self._lock:
            if self.over:
                return False
            due = self._stale and self.clock() - self._last_render >= self.min_interval
            if due:
                self._stale = False
        if due:
            self._paint(final=False)
        return True

    def close(self) -> None:
        """Draw the final state (call it when the batch is over, however it ended)."""
        self._stop_ticker()
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._paint(final=True)

    _painted_final = False

    def __enter__(self) -> BatchProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- formatting ----------------------------------------------------------------------------
    def counts(self) -> str:
        """``3/5 done, 1 failed, 2 cached (saved 0.1), 2 in flight (concurrency 8)`` (cached when
        some are, in flight only while running)."""
        with self._lock:
            total = self.total
            text = f"{self.done}/{total} done" if total is not None else f"{self.done} done"
            text += f", {self.failed} failed"
            if self.recalled:
                text += f", {self.recalled} cached (saved {self.saved_credits:.4g})"
            if not self.over:
                text += f", {self.in_flight} in flight (concurrency {self.concurrency})"
            return text

    def status(self) -> str:
        """``running 12.3/s ETA 4 s``, ``finished``, ``stopped (timeout)``..."""
        with self._lock:
            state = self.state
            if state == "running":
                text = f"running {self.rate:.1f}/s"
                eta = self.eta
                if eta is not None:
                    text += f" ETA {format_duration(eta)}"
                return text
            if state == "stopped":
                return f"stopped ({', '.join(self._why_stopped())})"
            return state

    def line(self) -> str:
        """``[aix] local/x batch finished: 5/5 done, 0 failed · 0 credits (0.41 s)``."""
        with self._lock:
            return (
                f"[aix] {self.label} {self.status()}: {self.counts()} · "
                f"{self.used_credits:.4g} credits ({self.elapsed:.2f} s)"
            )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label} {self.state}>"

    # -- drawing ---------------------------------------------------------------------------------
    def _paint(self, *, final: bool) -> None:
        with self._lock:
            if self._painted_final:
                return
            self._last_render = self.clock()
            self._stale = False
            self.renders += 1
            if final:
                self._painted_final = True
            self._render(final=final)

    def _render(self, *, final: bool) -> None:
        """Draw the current state (front ends override; called under the lock, rate limited)."""

    def _start_ticker(self) -> None:
        if not self.tick_interval or self._ticker is not None or self._closed:
            return
        self._stop.clear()
        self._ticker = threading.Thread(target=self._tick, name="aix-batch-progress", daemon=True)
        self._ticker.start()

    def _stop_ticker(self) -> None:
        self._stop.set()
        ticker, self._ticker = self._ticker, None
        if ticker is not None and ticker is not threading.current_thread():
            ticker.join(timeout=2)

    def _tick(self) -> None:
        interval = self.tick_interval
        assert interval
        while not self._stop.wait(interval):
            if not self.tick():
                return


class BatchTextProgress(BatchProgress):
    """The batch's text line on a stream (stderr by default): redrawn in place with ``\\r`` when
    ``live``, else only the final line, once (headless executors, a stream that is not a tty)."""

    def __init__(
        self,
        label: str,
        *,
        stream: IO[str] | None = None,
        live: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if live is None:
            kind = frontend.current()
            isatty = getattr(self.stream, "isatty", None)
            live = kind == "live" or (kind == "terminal" and callable(isatty) and bool(isatty()))
        self.live = live
        self._width = 0
        super().__init__(label, clock=clock)
        if not live:
            self.tick_interval = None

    def _render(self, *, final: bool) -> None:
        if not final and not self.live:
            return
        if final and self.state == "waiting":
            return  # closed before the batch started: nothing to report
        text = self.line()
        if self.live:
            pad = " " * max(0, self._width - len(text))
            self._width = len(text)
            out = "\r" + text + pad + ("\n" if final else "")
        else:
            out = text + "\n"
        try:
            self.stream.write(out)
            self.stream.flush()
        except ValueError:  # pragma: no cover - stream closed at interpreter exit
            pass


__all__ = [
    "FINAL_STATES",
    "SANITIZE_REGEX",
    "BatchProgress",
    "BatchState",
    "BatchTextProgress",
    "Mode",
    "ProgressState",
    "RunProgress",
    "TextProgress",
    "format_duration",
    "plural",
    "resolve_mode",
]
