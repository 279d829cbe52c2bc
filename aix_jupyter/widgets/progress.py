"""Run progress as an ipywidgets bar (``tqdm.notebook``), and the choice between bar and text line
(``tqdm.auto``).

``make_progress(model_id)`` returns a :class:`~aix_jupyter.progress.RunProgress`: a
:class:`WidgetProgress` in a ``live`` frontend, a :class:`~aix_jupyter.progress.TextProgress`
everywhere else (see :mod:`aix_jupyter.frontend`; ``mode=`` chooses explicitly). ipywidgets is
imported only when a bar is made, so the text line never loads it.
"""

from __future__ import annotations

import functools
import html
import time
from collections.abc import Callable
from typing import Any

from IPython.display import display as ipython_display
from IPython.display import update_display

from aix_jupyter.progress import (
    FINAL_STATES,
    BatchProgress,
    BatchTextProgress,
    Mode,
    RunProgress,
    TextProgress,
    format_duration,
    resolve_mode,
)

BAR_STYLES = {"finished": "success", "failed": "danger", "cancelled": "warning"}


def make_progress(model_id: str, *, mode: Mode | str = "auto", display: bool = True) -> RunProgress:
    """A progress consumer for one run of ``model_id`` (pass it as ``on_event=``; ``close()`` it after).

    ``mode`` "widget" shows an ipywidgets bar (``display=False`` leaves displaying it to the caller,
    through ``.widget``), "text" a text line on stderr, "auto" the bar in a ``live`` frontend and the
    line elsewhere (``$AIX_FRONTEND`` overrides the guess).
    """
    if resolve_mode(mode) == "widget":
        return WidgetProgress(model_id, display=display)
    return TextProgress(model_id)


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

    def __init__(
        self,
        model_id: str,
        *,
        display: bool = True,
        show_model: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
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
        super().__init__(model_id, clock=clock)
        self._render(final=False)
        if display:
            self.display()

    def display(self) -> None:
        """Show the bar as an output of the current cell (addressable: its fallback text is updated)."""
        handle = ipython_display(self.widget, display_id=True)
        self._display_id = getattr(handle, "display_id", None)

    def label_text(self) -> str:
        """The text beside the bar (also in the DOM: what the browser test reads)."""
        with self._lock:
            if self.state == "waiting":
                return "ready"
            text = f"{self.status()} · {self.counts()} · {format_duration(self.elapsed)}"
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
        _set_fallback_text(self.widget, self._display_id, self.line())


def _set_fallback_text(widget: Any, display_id: str | None, text: str) -> None:
    """Replace the text/plain fallback of the widget's display ``display_id`` by ``text``."""
    bundle: dict[str, Any] = {"text/plain": text}
    model_id = getattr(widget, "model_id", None)
    if model_id:
        bundle["application/vnd.jupyter.widget-view+json"] = {
            "version_major": 2,
            "version_minor": 0,
            "model_id": model_id,
        }
    update_display(bundle, raw=True, display_id=display_id)


@functools.cache
def _progress_box_class() -> type:
    import ipywidgets as w

    class ProgressBox(w.HBox):
        """The bar's container; its text/plain repr is the progress line (deterministic before a run)."""

        def __init__(self, progress: RunProgress | BatchProgress, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._aix_progress = progress

        def __repr__(self) -> str:
            progress = self._aix_progress
            if progress.state == "waiting":
                name = progress.model_id if isinstance(progress, RunProgress) else progress.label
                return f"[aix] {name} waiting"
            return progress.line()

    return ProgressBox


def make_batch_progress(label: str, *, mode: Mode | str = "auto", display: bool = True) -> BatchProgress:
    """One progress consumer for a whole batch (or comparison): pass it as ``on_event=``, ``close()`` it.

    ``mode`` as for :func:`make_progress`: a :class:`BatchWidgetProgress` bar in a ``live`` frontend,
    a :class:`~aix_jupyter.progress.BatchTextProgress` line everywhere else.
    """
    if resolve_mode(mode) == "widget":
        return BatchWidgetProgress(label, display=display)
    return BatchTextProgress(label)


BATCH_STYLES = {"success": "success", "partial": "warning", "stopped": "warning", "failure": "danger"}
_BATCH_STYLE = """<style>
.aix-batch { display: flex; align-items: center; gap: 8px; }
.aix-batch .aix-bar { display: inline-block; width: 240px; height: 14px; overflow: hidden;
  background: var(--jp-layout-color3, #e0e0e0); border-radius: 2px; }
.aix-batch .aix-fill { display: block; height: 100%; background: var(--jp-brand-color1, #1976d2); }
.aix-batch .aix-indeterminate .aix-fill { width: 30% !important;
  animation: aix-slide 1.3s ease-in-out infinite alternate; }
.aix-batch.aix-success .aix-fill { background: var(--jp-success-color1, #388e3c); }
.aix-batch.aix-warning .aix-fill { background: var(--jp-warn-color1, #f57c00); }
.aix-batch.aix-danger .aix-fill { background: var(--jp-error-color1, #d32f2f); }
</style>"""


class BatchWidgetProgress(BatchProgress):
    """A bar for a whole batch: ``label [=====     ] running 12.3/s ETA 4 s · 40/100 done, ...``.

    The bar shows done / total (it slides while the total is unknown). At the end it shows the
    final counts and is coloured by outcome (``bar_style``): green "success" (all succeeded),
    orange "warning" (some failed, or stopped early), red "danger" (all failed). Its text/plain
    fallback becomes the final text line, so a saved notebook viewed without a kernel still says
    how the batch went. Bar and text are one HTML widget, so a repaint is one comm message, and
    repaints are rate limited by :class:`~aix_jupyter.progress.BatchProgress` (≤ 10 a second).
    """

    def __init__(
        self,
        label: str,
        *,
        display: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import ipywidgets as w

        super().__init__(label, clock=clock)
        self.value = 0.0  # the bar's fill, 0..1
        self.bar_style = ""  # "info" while running, then by outcome (BATCH_STYLES)
        self.html = w.HTML(value=self._markup(indeterminate=False))  # sent with the widget, not after
        children: list[Any] = [
            w.HTML(value=_STYLE + _BATCH_STYLE, layout=w.Layout(width="0px", margin="0")),
            self.html,
        ]
        self.widget = _progress_box_class()(self, children=children, layout=w.Layout(align_items="center"))
        self.widget.add_class("aix-progress")
        self._display_id: str | None = None
        if display:
            handle = ipython_display(self.widget, display_id=True)
            self._display_id = getattr(handle, "display_id", None)

    def label_text(self) -> str:
        """The text beside the bar ("not started" when closed before the batch began, e.g. on an error)."""
        with self._lock:
            if self.state == "waiting":
                return "not started" if self._closed else "ready"
            return (
                f"{self.status()} · {self.counts()} · {self.used_credits:.4g} credits · "
                f"{format_duration(self.elapsed)}"
            )

    def _markup(self, *, indeterminate: bool) -> str:
        style = f" aix-{self.bar_style}" if self.bar_style else ""
        bar = "aix-bar aix-indeterminate" if indeterminate else "aix-bar"
        return (
            f"<div class='aix-batch{style}'><code>{html.escape(self.label)}</code>"
            f"<span class='{bar}'><span class='aix-fill' style='width:{self.value:.1%}'></span></span>"
            f"<span class='aix-progress-label'>{html.escape(self.label_text())}</span></div>"
        )

    def _render(self, *, final: bool) -> None:
        total, done, over = self.total, self.done, self.over
        if over:
            started = self.state != "waiting"
            self.value, self.bar_style = (1.0 if started else 0.0), BATCH_STYLES.get(self.outcome, "")
        else:
            self.value, self.bar_style = ((done / total) if total else 0.0), "info"
        self.html.value = self._markup(indeterminate=not over and not total)  # one comm message
        if final and self._display_id:
            _set_fallback_text(self.widget, self._display_id, self.line())


__all__ = [
    "BAR_STYLES",
    "BATCH_STYLES",
    "BatchWidgetProgress",
    "WidgetProgress",
    "make_batch_progress",
    "make_progress",
]
