"""Run progress: one consumer of run events, two front ends (a widget bar, a text line).

``make_progress(model_id)`` returns a ``RunProgress``: pass it as ``on_event=`` to any run of the
client core and ``close()`` it when the run is over (or use it as a context manager). It follows the
run lifecycle (``submitted``, ``polled``, ``chunk``, ``finished``, ``failed``, ``cancelled``) and shows
the elapsed time, the number of polls (or streamed chunks), the server's progress and ETA when a poll
reply carries them (an indeterminate state when not), and a final state coloured for success, failure
or cancellation.

Which front end, like ``tqdm.auto``:

* ``widget``: an ipywidgets bar, in a kernel whose frontend renders widgets (JupyterLab, Notebook 7,
  VS Code).
* ``text``: a text line on ``sys.stderr`` everywhere else: terminal IPython, plain Python, and kernels
  driven by a headless executor (``jupyter nbconvert --execute``, nbclient, papermill, nbval).

A kernel cannot see its frontend, so "auto" uses two facts a kernel does know: it is an ipykernel
(not terminal IPython) with ipywidgets importable, and the request being executed allows stdin.
Interactive frontends send ``allow_stdin: true`` with every execute request; headless executors
(nbclient, and so nbconvert and papermill; nbval) send ``false`` because nobody can answer ``input()``.
The environment variable ``AIX_PROGRESS=widget|text|auto`` overrides the guess (e.g. for Voila,
which executes headless but renders widgets), and so does ``make_progress(..., mode=...)``.

The text line (the format notebooks under nbval see)::

    [aix] local/sentiment-vader finished (2 polls, 0.41 s)
    [aix] local/smollm2-135m finished (57 chunks, 1.20 s)
    [aix] local/slow-count cancelled (4 polls, 2.02 s)
    [aix] local/echo failed (1 poll, 0.05 s): <the server's message>

Headless (stderr is not a terminal and no interactive frontend is attached), only that final line is
written, once, ending with a newline. In a terminal, or in a live frontend with ``AIX_PROGRESS=text``,
the line is redrawn in place with ``\\r`` while the run goes on (``running 45% ETA 3 s (4 polls,
2.10 s)``). The counts and the time in brackets vary between runs: an nbval sanitize section
normalises them with the regex ``\\(\\d+ (?:polls?|chunks?), \\d+\\.\\d\\d s\\)``.
"""

from __future__ import annotations

import functools
import html
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, Literal

from aix_jupyter.core.errors import ConfigurationError

if TYPE_CHECKING:
    from aix_jupyter.core.events import RunEvent

Mode = Literal["auto", "widget", "text"]
ProgressState = Literal["waiting", "running", "finished", "failed", "cancelled"]
ENV_VAR = "AIX_PROGRESS"
MODES = ("auto", "widget", "text")
SANITIZE_REGEX = r"\(\d+ (?:polls?|chunks?), \d+\.\d\d s\)"
"""Matches the varying part of a text progress line (for nbval sanitize files)."""

FINAL_STATES: frozenset[str] = frozenset({"finished", "failed", "cancelled"})
BAR_STYLES = {"finished": "success", "failed": "danger", "cancelled": "warning"}


# -- which front end ------------------------------------------------------------------------------
def _kernel() -> Any:
    """The running ipykernel, or None (terminal IPython, plain Python). Never imports IPython."""
    ipython_mod = sys.modules.get("IPython")
    if ipython_mod is None:
        return None
    try:
        shell = ipython_mod.get_ipython()
    except Exception:  # pragma: no cover - IPython half torn down
        return None
    return getattr(shell, "kernel", None) if shell is not None else None


def headless_execution() -> bool:
    """True when the request being executed comes from a headless executor (``allow_stdin`` false)."""
    kernel = _kernel()
    if kernel is None:
        return False
    try:
        parent = kernel.get_parent() or {}
    except Exception:  # pragma: no cover - very old ipykernel
        return False
    header = parent.get("header") or {}
    content = parent.get("content") or {}
    return header.get("msg_type") == "execute_request" and content.get("allow_stdin") is False


def live_widget_frontend() -> bool:
    """Best guess whether widgets displayed now will be rendered live (see the module docstring)."""
    if _kernel() is None:
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:  # pragma: no cover - ipywidgets is a dependency
        return False
    return not headless_execution()


def resolve_mode(mode: Mode | str = "auto") -> Literal["widget", "text"]:
    """``widget`` or ``text``: the argument if explicit, else ``$AIX_PROGRESS``, else the guess."""
    chosen = (mode or "auto").strip().lower()
    if chosen not in MODES:
        raise ConfigurationError(f"progress mode must be one of auto, widget, text; got {mode!r}")
    if chosen == "auto":
        env = os.environ.get(ENV_VAR, "").strip().lower() or "auto"
        if env not in MODES:
            raise ConfigurationError(
                f"{ENV_VAR} must be one of auto, widget, text; got {os.environ.get(ENV_VAR)!r}"
            )
        chosen = env
    if chosen == "auto":
        return "widget" if live_widget_frontend() else "text"
    return "widget" if chosen == "widget" else "text"


def make_progress(model_id: str, *, mode: Mode | str = "auto", display: bool = True) -> RunProgress:
    """A progress consumer for one run of ``model_id`` (pass it as ``on_event=``; ``close()`` it after).

    ``mode`` "widget" shows an ipywidgets bar (``display=False`` leaves displaying it to the caller,
    through ``.widget``), "text" a text line on stderr, "auto" picks as ``tqdm.auto`` does (see the
    module docstring; ``$AIX_PROGRESS`` overrides it).
    """
    if resolve_mode(mode) == "widget":
        return WidgetProgress(model_id, display=display)
    return TextProgress(model_id)


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


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _seconds(value: float) -> str:
    if value < 60:
        return f"{value:.0f} s" if value >= 10 else f"{value:.1f} s" if value >= 1 else f"{value:.2f} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds:02d} s"


class RunProgress:
    """State of one run, fed by ``RunEvent`` objects; front ends override ``_render``.

    Callable as an ``on_event`` hook, thread-safe, reusable (``reset()``) and a context manager.
    Non-final updates are rate limited to one every ``min_interval`` seconds; a ticker thread redraws
    the elapsed time every ``tick_interval`` seconds while the run is going.
    """

    min_interval: float = 0.25
    tick_interval: float | None = 0.5

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
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
        self._elapsed = 0.0
        self._eta_at = 0.0  # elapsed time when the server reported ``eta``
        self._t0: float | None = None  # monotonic time at elapsed 0, while running
        self._last_render = 0.0

    # -- state ---------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def elapsed(self) -> float:
        with self._lock:
            if self._t0 is not None and not self.done:
                return max(self._elapsed, time.monotonic() - self._t0)
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
                self._t0 = time.monotonic()
        self._render(final=False)
        self._start_ticker()

    def __call__(self, event: RunEvent) -> None:
        with self._lock:
            if self.done:
                return  # a late event after the final one changes nothing
            self._elapsed = max(self._elapsed, float(event.elapsed or 0.0))
            if self._t0 is None or self.state == "waiting":
                self._t0 = time.monotonic() - self._elapsed
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
                self.eta = None
            final = self.done
            due = final or kind == "submitted" or time.monotonic() - self._last_render >= self.min_interval
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
        """``3 polls`` (or ``57 chunks`` for a streamed run)."""
        return _plural(self.chunks, "chunk") if self.chunks else _plural(self.polls, "poll")

    def status(self) -> str:
        """The state in words: ``running 45% ETA 3 s``, ``finished``, ``failed``..."""
        if self.state != "running":
            return self.state
        if self._closed:
            return "stopped"  # closed while running: the caller gave up (e.g. KeyboardInterrupt)
        text = "running"
        if self.progress is not None:
            text += f" {self.progress:.0%}"
        if self.eta is not None:  # counts down between polls
            text += f" ETA {_seconds(max(0.0, self.eta - (self.elapsed - self._eta_at)))}"
        return text

    def line(self) -> str:
        """The text progress line (see the module docstring for its format)."""
        with self._lock:
            state = self.status()
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
        assert self.tick_interval
        while not self._stop.wait(self.tick_interval):
            if self.done or self._closed:
                return
            with self._lock:
                recent = time.monotonic() - self._last_render < self.tick_interval * 0.8
            if not recent:  # events drew it lately: no extra frontend message needed
                self._render(final=False)

    def _render(self, *, final: bool) -> None:
        with self._lock:
            self._last_render = time.monotonic()


class TextProgress(RunProgress):
    """The text line on a stream (stderr by default), like ``tqdm.std``.

    ``live`` (default: the stream is a terminal, or a live frontend renders the kernel's stderr)
    redraws the line in place with ``\\r``; otherwise only the final line is written, once.
    """

    def __init__(self, model_id: str, *, stream: IO[str] | None = None, live: bool | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if live is None:
            isatty = getattr(self.stream, "isatty", None)
            tty = bool(isatty()) if callable(isatty) else False
            live = tty or (_kernel() is not None and not headless_execution())
        self.live = live
        self._width = 0
        self._wrote_final = False
        super().__init__(model_id)
        if not live:
            self.tick_interval = None

    def reset(self) -> None:
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


# -- the widget front end --------------------------------------------------------------------------
_STYLE = """<style>
.aix-progress .aix-indeterminate .progress-bar {
  width: 30% !important; animation: aix-slide 1.3s ease-in-out infinite alternate;
  background-color: var(--jp-brand-color1, #1976d2);
}
@keyframes aix-slide { from { margin-left: 0%; } to { margin-left: 70%; } }
.aix-progress .aix-progress-label { font-family: var(--jp-code-font-family, monospace);
  font-size: var(--jp-code-font-size, 12px); white-space: nowrap; }
</style>"""


class WidgetProgress(RunProgress):
    """An ipywidgets bar: ``[model] [=====     ] running 45% · 3 polls · 1.2 s``.

    ``.widget`` is the ipywidgets box (the ModelWidget embeds it). The bar's value is the server's
    progress (0..1); without one it slides back and forth (indeterminate). At the end it fills up and
    turns green (finished), red (failed) or orange (cancelled). With ``display=True`` the bar is shown
    at once, and its text/plain fallback is replaced by the final text line when the run ends, so a
    saved notebook viewed without a kernel still says how the run went.
    """

    min_interval = 0.3  # with the ticker: at most ~3 label updates a second, however fast events come
    tick_interval = 0.5

    def __init__(self, model_id: str, *, display: bool = True, show_model: bool = True) -> None:
        import ipywidgets as w

        self.bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout=w.Layout(width="240px"))
        self.label = w.HTML(value="")
        self.label.add_class("aix-progress-label")
        children: list[Any] = [w.HTML(value=_STYLE, layout=w.Layout(width="0px", margin="0"))]
        if show_model:
            children.append(w.HTML(value=f"<code>{html.escape(model_id)}</code>"))
        children += [self.bar, self.label]
        self.widget = _progress_box_class()(self, children=children, layout=w.Layout(align_items="center"))
        self.widget.add_class("aix-progress")
        self._display_id: str | None = None
        super().__init__(model_id)
        self._render(final=False)
        if display:
            self.display()

    def display(self) -> None:
        from IPython.display import display

        handle = display(self.widget, display_id=True)
        self._display_id = getattr(handle, "display_id", None)

    def label_text(self) -> str:
        """The text beside the bar (also in the DOM: what the browser test reads)."""
        with self._lock:
            if self.state == "waiting":
                return "ready"
            text = f"{self.status()} · {self.counts()} · {_seconds(self.elapsed)}"
            if self.state in ("failed", "cancelled") and self.message:
                text += f" · {' '.join(self.message.split())}"
            return text

    def _render(self, *, final: bool) -> None:
        super()._render(final=final)
        with self._lock:  # one render at a time: the ticker and the run's thread both draw
            state = self.state
            progress = self.progress
            label = self.label_text()
            indeterminate = state == "running" and progress is None and not self._closed
            if state in FINAL_STATES:
                value, style = 1.0, BAR_STYLES[state]
            else:
                value, style = (progress or 0.0), ("info" if state == "running" else "")
            # one comm message per widget and update: hold_sync batches the trait changes
            with self.bar.hold_sync():
                self.bar.value = value
                self.bar.bar_style = style
                if indeterminate:
                    self.bar.add_class("aix-indeterminate")
                else:
                    self.bar.remove_class("aix-indeterminate")
            self.label.value = html.escape(label)
        if final and self._display_id and state in FINAL_STATES:
            self._update_static_text()

    def _update_static_text(self) -> None:
        """Replace the display's text/plain fallback by the final line (kept in the saved notebook)."""
        from IPython.display import update_display

        bundle: dict[str, Any] = {"text/plain": self.line()}
        model_id = getattr(self.widget, "model_id", None)
        if model_id:
            bundle["application/vnd.jupyter.widget-view+json"] = {
                "version_major": 2,
                "version_minor": 0,
                "model_id": model_id,
            }
        update_display(bundle, raw=True, display_id=self._display_id)


@functools.cache
def _progress_box_class() -> type:
    import ipywidgets as w

    class ProgressBox(w.HBox):
        """The bar's container; its text/plain repr is the progress line (deterministic before a run)."""

        def __init__(self, progress: RunProgress, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._aix_progress = progress

        def __repr__(self) -> str:
            progress = self._aix_progress
            if progress.state == "waiting":
                return f"[aix] {progress.model_id} waiting"
            return progress.line()

    return ProgressBox


__all__ = [
    "ENV_VAR",
    "SANITIZE_REGEX",
    "RunProgress",
    "TextProgress",
    "WidgetProgress",
    "headless_execution",
    "live_widget_frontend",
    "make_progress",
    "resolve_mode",
]
