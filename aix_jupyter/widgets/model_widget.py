"""``ModelWidget``: a model's parameters as controls; run or stream it inline with a polling progress bar.

::

    from aix_jupyter import ModelWidget
    w = ModelWidget("local/sentiment-vader")
    w                                   # the form, Run / Stream / Cancel / Clear, progress, result
    w.set(data="What a lovely day")     # the same from Python
    response = w.run()                  # runs in the background thread, waits, returns the response
    w.stream(wait=False); w.cancel()    # streams (models that stream), cancels on the server

Runs never block the kernel: each one runs in a daemon thread and reaches the frontend only through
widget traits (the progress bar, the stream view, the result ``Output`` whose ``outputs`` are set
directly), never through ``print`` or ``display`` from the thread, so nothing lands in whatever cell
happens to run at the time. Streamed text is repainted at most ``stream_interval`` times a second
(10 by default) however fast chunks arrive, and the final text is exactly the streamed text.

The result is shown once. In a live frontend it is inside the widget; the widget's own output also
carries the latest result as its fallback (``text/plain``, ``text/markdown``... beside the widget
view, updated in place by display id when a run ends): a frontend that renders the widget does not
show a fallback, and every other viewer of the saved notebook (GitHub, nbviewer, ``nbconvert``
without widget state) shows the result instead of the widget. Outside a live widget frontend
(nbconvert, nbval, terminal IPython; see ``aix_jupyter.frontend``) a run started from Python writes
the text progress line (stderr) and the plain result as ordinary outputs of the cell that waits for
it: ``run()``/``stream()``, or ``wait()`` after ``run(wait=False)``; never from the background
thread, so they cannot land in an unrelated cell. (A ModelWidget nested inside another container
has no output of its own: a run from Python then also writes the result in the cell that waits.)

Streamed text reaches the browser append-only (:class:`~aix_jupyter.widgets.stream_text.StreamText`:
each repaint sends only the text that is new), and the finished text is rendered as Markdown there,
without being sent again. A cancelled run reads "cancelled" (bar, status line, saved fallback)
while ``response.status`` stays what the server said (``FAILED``).
"""

from __future__ import annotations

import html
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

import ipywidgets as w
from IPython import get_ipython
from IPython.display import publish_display_data

from aix_jupyter.core.enums import ResponseStatus
from aix_jupyter.core.errors import AixError, ParameterError
from aix_jupyter.core.events import RunEvent
from aix_jupyter.core.parameters import ModelParameters
from aix_jupyter.core.response import ModelResponse
from aix_jupyter.display import (
    Bundle,
    Provenance,
    credits_text,
    mark_shown,
    publish,
    redact,
    remember,
    response_bundle,
    stored_word,
)
from aix_jupyter.progress import resolve_mode
from aix_jupyter.widgets.form import ParameterForm
from aix_jupyter.widgets.progress import WidgetProgress
from aix_jupyter.widgets.stream_text import StreamText

Origin = Literal["button", "python"]

_STYLE = """<style>
.aix-model-widget { border: 1px solid var(--jp-border-color2, #ddd); border-radius: 4px; padding: 6px 8px; }
.aix-model-widget .aix-result { max-height: 32em; overflow-y: auto; }
.aix-model-widget .aix-meta { color: var(--jp-ui-font-color2, #666); font-size: 12px; }
.aix-model-widget .aix-failed { color: var(--jp-error-color1, #d32f2f); }
.aix-model-widget .aix-cancelled { color: var(--jp-warn-color1, #f57c00); }
</style>"""


@dataclass
class _Job:
    stream: bool
    origin: Origin
    data: Any
    parameters: dict[str, Any]
    cancel: threading.Event = field(default_factory=threading.Event)
    future: Future[Any] = field(default_factory=Future)
    started: float = field(default_factory=time.monotonic)
    text_line: bool = False  # headless: the waiting cell gets the text line and the plain result
    provenance: Any = None
    response: Any = None
    published: bool = False  # the static copy went to the placeholder after the widget
    reported: bool = False  # the waiting cell got its outputs
    finished: bool = False  # set before the buttons are refreshed, then the future resolves


class _Coalescer:
    """Repaints the latest text at most once per ``interval`` seconds, from its own thread."""

    def __init__(self, paint: Callable[[str], None], interval: float) -> None:
        self._paint = paint
        self._interval = interval
        self._text = ""
        self._dirty = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="aix-stream-paint", daemon=True)
        self._thread.start()

    def update(self, text: str) -> None:
        with self._lock:
            self._text, self._dirty = text, True

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                text, dirty, self._dirty = self._text, self._dirty, False
            if dirty:
                self._paint(text)

    def close(self, final: str) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._paint(final)


class ModelWidget(w.VBox):
    """A model's parameters as controls, Run / Stream / Cancel / Clear, progress, and its results.

    ``model`` is a ``Model`` or a model id (fetched with ``ModelFactory.get``). Media parameters get
    Upload and drag-and-drop, audio ones Record, image ones Camera (``MediaCapture``); a file over
    ``max_media_mb`` megabytes is refused in the browser with a one-line message. Attributes:
    ``response`` (the last ``ModelResponse``), ``history`` (every response of this widget, oldest
    first; ``history[-1] is response``), ``form`` (the controls, by parameter name in
    ``form.controls``), ``progress`` (the ``WidgetProgress``), ``text`` (the streamed text).
    """

    stream_interval: float = 0.1  # seconds between repaints of streamed text (<= 10 messages/s)

    def __init__(
        self,
        model: Any,
        *,
        api_key: str | None = None,
        timeout: float = 300,
        static_copy: bool = True,
        max_media_mb: float = 25,
    ) -> None:
        if (
            not isinstance(max_media_mb, int | float)
            or isinstance(max_media_mb, bool)
            or not 0 < max_media_mb < float("inf")
        ):
            raise ParameterError(f"max_media_mb must be a positive number of megabytes, not {max_media_mb!r}")
        if isinstance(model, str):
            from aix_jupyter.core.factory import ModelFactory

            model = ModelFactory.get(model, api_key=api_key)
        self.model = model
        self.timeout = timeout
        self.static_copy = static_copy
        self.response: Any = None
        self.history: list[Any] = []
        self._job: _Job | None = None
        self._job_lock = threading.Lock()
        self._text = ""
        self._display_id = f"aix-widget-{uuid.uuid4().hex}"
        self._displayed = False  # shown as an output of its own (not only inside a container)
        self._fallback: tuple[Bundle, dict[str, Any]] | None = None  # the latest result, for other viewers

        params = model.model_params if isinstance(model.model_params, ModelParameters) else ModelParameters()
        self.form = ParameterForm(params, max_media_bytes=int(max_media_mb * 2**20))
        self.form.observe(self._refresh_buttons)

        self.header = w.HTML(value=_STYLE + self._header_html())
        self.run_button = w.Button(
            description="Run", button_style="primary", icon="play", tooltip="Run the model"
        )
        self.stream_button = w.Button(
            description="Stream", icon="stream", tooltip="Run with a streamed reply"
        )
        self.cancel_button = w.Button(
            description="Cancel", button_style="warning", icon="stop", disabled=True, tooltip="Cancel the run"
        )
        self.clear_button = w.Button(description="Clear", icon="eraser", tooltip="Clear the result")
        self.run_button.on_click(lambda _b: self._clicked(stream=False))
        self.stream_button.on_click(lambda _b: self._clicked(stream=True))
        self.cancel_button.on_click(lambda _b: self.cancel())
        self.clear_button.on_click(lambda _b: self.clear())
        for button in (self.run_button, self.stream_button, self.cancel_button, self.clear_button):
            button.add_class(f"aix-{button.description.lower()}")
        buttons: list[w.Widget] = [self.run_button]
        if model.supports_streaming:
            buttons.append(self.stream_button)
        buttons += [self.cancel_button, self.clear_button]
        self.buttons = w.HBox(buttons)

        self.progress = WidgetProgress(model.id, display=False, show_model=False)
        self.stream_view = StreamText(layout=w.Layout(display="none", width="100%"))
        self.stream_view.add_class("aix-stream-view")
        self.result = w.Output(layout=w.Layout(width="100%"))
        self.result.add_class("aix-result")
        self.meta = w.HTML(value="")
        self.meta.add_class("aix-meta")
        self.raw = w.HTML(value="")
        self.raw_box = w.Accordion(children=[self.raw], selected_index=None, layout=w.Layout(display="none"))
        self.raw_box.set_title(0, "Raw response")
        # filled when opened: a long answer is not sent to the browser a second time unasked
        self.raw_box.observe(lambda _change: self._fill_raw(), names="selected_index")
        super().__init__(
            children=[
                self.header,
                self.form.widget,
                self.buttons,
                self.progress.widget,
                self.stream_view,
                self.result,
                self.meta,
                self.raw_box,
            ],
            layout=w.Layout(width="100%"),
        )
        self.add_class("aix-model-widget")
        self._refresh_buttons()

    # -- presentation ---------------------------------------------------------------------------
    def _header_html(self) -> str:
        model = self.model
        function = getattr(model, "function", None)
        function = getattr(function, "value", function)
        bits = [f"<b>{html.escape(str(model.name or model.id))}</b>", f"<code>{html.escape(model.id)}</code>"]
        if function:
            bits.append(html.escape(str(function)))
        head = " · ".join(bits)
        if model.description:
            head += f'<div class="aix-meta">{html.escape(str(model.description))}</div>'
        return f'<div class="aix-header">{head}</div>'

    def __repr__(self) -> str:
        return f"ModelWidget(model={self.model.id!r})"

    def _ipython_display_(self) -> None:
        """Show the widget as one output (addressable by display id: its fallback follows the results)."""
        data, metadata = self._display_bundle()
        publish_display_data(data, metadata, transient={"display_id": self._display_id})
        self._displayed = True

    def _display_bundle(self) -> tuple[Bundle, dict[str, Any]]:
        """The widget view plus its fallback: the latest result (live runs), else the repr."""
        view: Bundle = dict(self._repr_mimebundle_())
        if self._fallback is None:
            return view, {}
        data, metadata = self._fallback
        key = "application/vnd.jupyter.widget-view+json"
        return {**data, **({key: view[key]} if key in view else {})}, metadata

    # -- state ----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while a run started by this widget is going."""
        job = self._job
        return job is not None and not job.finished

    @property
    def text(self) -> str:
        """The streamed text of the last streamed run (the whole text once it ended)."""
        return self._text

    @property
    def values(self) -> dict[str, Any]:
        """The form's checked values (raises the core's ParameterError when one is invalid)."""
        return self.form.values()

    @property
    def errors(self) -> dict[str, str]:
        """Inline validation messages by parameter name (empty when the form is valid)."""
        return dict(self.form.errors)

    def set(self, **values: Any) -> ModelWidget:
        """Set controls from Python, e.g. ``w.set(data="hello", threshold=0.1)`` (checked by the schema)."""
        self.form.set(**values)
        return self

    def _refresh_buttons(self) -> None:
        running = self.running
        blocked = running or not self.form.valid
        self.run_button.disabled = blocked
        self.stream_button.disabled = blocked
        job = self._job
        self.cancel_button.disabled = not running or (job is not None and job.cancel.is_set())
        self.clear_button.disabled = running
        why = "; ".join(self.form.errors.values())
        self.run_button.tooltip = why or "Run the model"

    # -- running --------------------------------------------------------------------------------
    def run(self, *, wait: bool = True, **values: Any) -> Any:
        """Run with the form's values (after setting ``values``); returns the ModelResponse.

        ``wait=False`` returns a ``concurrent.futures.Future`` at once instead.
        """
        return self._python_start(False, wait, values)

    def stream(self, *, wait: bool = True, **values: Any) -> Any:
        """Like ``run()`` with a streamed reply (the text grows in the widget)."""
        if not self.model.supports_streaming:
            raise AixError(f"model {self.model.id} does not stream; use run()")
        return self._python_start(True, wait, values)

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the current run and return its response (the last one when nothing runs).

        Outside a live widget frontend, the cell that waits also gets the text progress line and
        the plain result (so they never land in an unrelated cell).
        """
        job = self._job
        if job is None:
            return self.response
        try:
            return job.future.result(timeout)
        finally:
            if job.future.done():
                self._report(job)

    def cancel(self) -> bool:
        """Cancel the current run (the core cancels the job on the server); False when none runs."""
        job = self._job
        if job is None or job.finished:
            return False
        job.cancel.set()
        self.cancel_button.disabled = True
        return True

    def clear(self) -> None:
        """Clear the result, the streamed text and the progress bar (the history stays)."""
        if self.running:
            return
        self._text = ""
        self.stream_view.reset()
        self.stream_view.layout.display = "none"
        self.result.outputs = ()
        self.meta.value = ""
        self.raw.value = ""
        self.raw_box.selected_index = None
        self.raw_box.layout.display = "none"
        self.progress.reset()
        if self._fallback is not None:  # the saved notebook shows the cleared widget's repr again
            self._fallback = None
            self._update_display()

    def _python_start(self, stream: bool, wait: bool, values: dict[str, Any]) -> Any:
        if values:
            self.set(**values)
        text = resolve_mode() == "text"
        job = self._start(stream, "python", text_line=text)
        if not wait:
            return job.future
        try:
            return job.future.result()
        finally:
            if job.future.done():
                self._report(job)

    def _report(self, job: _Job) -> None:
        """In the thread (and so the cell) that waited for ``job``: its text line and plain result."""
        if job.reported or job.origin != "python":
            return
        job.reported = True
        response = job.response if job.future.exception() is None else None
        if job.text_line:
            sys.stderr.write(self.progress.line() + "\n")
            sys.stderr.flush()
        if response is None or not self.static_copy:
            return
        if get_ipython() is None:
            return  # plain Python: no notebook output to write to (the response is returned)
        if job.text_line or not job.published:
            publish(response, job.provenance)
        mark_shown(response)  # ``w.run()`` as a cell's last line adds no second copy

    def _clicked(self, *, stream: bool) -> None:
        try:
            self._start(stream, "button", text_line=False)
        except AixError as exc:  # shown where the user looks; the form already marks the culprit
            self._show_error(str(exc))

    def _start(self, stream: bool, origin: Origin, *, text_line: bool) -> _Job:
        with self._job_lock:
            if self.running:
                raise AixError("a run of this widget is in progress: cancel() it or wait() for it first")
            self.form.validate()
            data, parameters = self.form.request()  # raises the first ParameterError
            job = _Job(stream=stream, origin=origin, data=data, parameters=parameters)
            job.text_line = text_line
            self._job = job
        self._text = ""
        self.stream_view.reset()
        self.stream_view.layout.display = "" if stream else "none"
        self.result.outputs = ()
        self.meta.value = ""
        self.raw.value = ""  # an open "Raw response" section is filled again when the run ends
        self.raw_box.layout.display = "none"
        self.progress.reset()
        self.progress.start()
        self._refresh_buttons()
        threading.Thread(
            target=self._work, args=(job,), name=f"aix-widget-{self.model.id}", daemon=True
        ).start()
        return job

    def _on_event(self, job: _Job) -> Callable[[RunEvent], None]:
        def hook(event: RunEvent) -> None:
            self.progress(event)

        return hook

    def _work(self, job: _Job) -> None:
        hook = self._on_event(job)
        error: BaseException | None = None
        response: Any = None
        try:
            if job.stream:
                response = self._stream(job, hook)
            else:
                response = self.model.run(
                    job.data,
                    parameters=job.parameters,
                    timeout=self.timeout,
                    on_event=hook,
                    cancel=job.cancel,
                )
            job.response = response
            self._show(job, response)
        except BaseException as exc:
            error = exc
            message = str(exc) or type(exc).__name__
            hook(RunEvent("failed", self.model.id, time.monotonic() - job.started, message=message))
            self._show_error(f"{type(exc).__name__}: {message}")
            if self.static_copy:  # the saved fallback must not keep showing an earlier result
                failed = {"text/plain": redact(f"{type(exc).__name__}: {message}")}
                self._publish_static(job, (failed, {}), None)
        job.finished = True
        self._end(job)
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(response)

    def _end(self, job: _Job) -> None:
        self.progress.close()
        self._refresh_buttons()
        self.cancel_button.disabled = True

    def _stream(self, job: _Job, hook: Callable[[RunEvent], None]) -> Any:
        streamer = self.model.run_stream(
            job.data, parameters=job.parameters, on_event=hook, cancel=job.cancel
        )
        painter = _Coalescer(self._paint_stream, self.stream_interval)
        final: Any = None
        try:
            for item in streamer:
                if item.status is ResponseStatus.IN_PROGRESS:
                    painter.update(streamer.text)
                else:
                    final = item
        finally:
            streamer.close()
            painter.close(streamer.text)
        if streamer.status is ResponseStatus.SUCCESS:
            return ModelResponse(
                status=ResponseStatus.SUCCESS,
                data=streamer.text,
                completed=True,
                run_time=round(time.monotonic() - job.started, 4),
            )
        if final is None:
            final = ModelResponse(
                status=ResponseStatus.FAILED, completed=True, error_message=streamer.error_message
            )
        return final

    def _paint_stream(self, text: str) -> None:
        self._text = text
        self.stream_view.show(redact(text))  # only what is new goes to the browser (never a key it echoes)

    # -- results --------------------------------------------------------------------------------
    def _provenance(self, job: _Job) -> Any:
        return Provenance(
            model_id=self.model.id,
            version=getattr(self.model, "version", None),
            parameters=dict(job.parameters),
            wall_time=round(time.monotonic() - job.started, 4),
            streamed=job.stream,
        )

    def _show(self, job: _Job, response: Any) -> None:
        provenance = self._provenance(job)
        remember(response, provenance)
        self.response = response
        self.history.append(response)
        ok = getattr(response, "status", None) is ResponseStatus.SUCCESS
        cancelled = not ok and job.cancel.is_set()
        data, metadata = response_bundle(response, provenance)
        if job.text_line:
            self.stream_view.sync()  # a headless executor saves the widget state it saw in trait updates
        if ok and job.stream:
            self.stream_view.markdown = True  # the streamed text, rendered in place: not sent again
        elif not cancelled:  # a cancelled run has no result: the status line says so
            self.result.outputs = ({"output_type": "display_data", "data": data, "metadata": metadata},)
        if cancelled:
            lines = [self.progress.line()] + ([redact(self._text)] if self._text else [])
            data = {"text/plain": "\n\n".join(lines)}
        self.meta.value = self._meta_html(response, ok, provenance.wall_time, cancelled=cancelled)
        self.raw.value = ""
        self.raw_box.layout.display = ""
        self._fill_raw()
        if self.static_copy:
            self._publish_static(job, (data, metadata), provenance)

    def _fill_raw(self) -> None:
        """Show the last response as JSON in the "Raw response" section, once it is opened."""
        response = self.response
        if self.raw_box.selected_index is None or response is None or self.raw.value:
            return
        raw = redact(_jsonable(response.to_dict()) if hasattr(response, "to_dict") else str(response))
        self.raw.value = (
            f"<pre>{html.escape(json.dumps(raw, indent=2, ensure_ascii=False, default=str))}</pre>"
        )

    def _meta_html(self, response: Any, ok: bool, wall: float | None, *, cancelled: bool = False) -> str:
        status = "cancelled" if cancelled else str(getattr(response, "status", ""))
        css = "aix-cancelled" if cancelled else "" if ok else "aix-failed"
        parts = [f'<span class="{css}">{html.escape(status)}</span>']
        stored = stored_word(response)
        if stored is not None:  # answered by the response cache or a cassette: nothing was spent
            parts.append(stored)
        credits = getattr(response, "used_credits", None)
        run_time = getattr(response, "run_time", None)
        if stored is not None:
            parts.append(f"credits {credits_text(response)}")
        elif isinstance(credits, int | float):
            parts.append(f"credits {credits:g}")
        if isinstance(run_time, int | float) and run_time:
            parts.append(f"run time {run_time:.2f} s")
        if wall is not None:
            parts.append(f"wall {wall:.2f} s")
        return " · ".join(parts)

    def _show_error(self, message: str) -> None:
        text = f'<span class="aix-failed">{html.escape(message, quote=False)}</span>'
        self.meta.value = text

    def _publish_static(self, job: _Job, bundle: tuple[Bundle, dict[str, Any]], provenance: Any) -> None:
        """Make the result the fallback of the widget's own output (addressed by display id, so it is
        never written into whatever cell runs at the time). Headless runs from Python leave the
        result to the cell that waits (``_report``)."""
        job.provenance = provenance
        if job.text_line or not self._displayed or get_ipython() is None:
            return
        self._fallback = bundle
        self._update_display()
        job.published = True

    def _update_display(self) -> None:
        if not self._displayed or get_ipython() is None:
            return
        data, metadata = self._display_bundle()
        publish_display_data(data, metadata, transient={"display_id": self._display_id}, update=True)

    def close(self) -> None:
        """Cancel a run in progress and close this widget and every widget inside it."""
        if "progress" not in self.__dict__:  # __init__ failed (e.g. unknown model id): nothing to stop
            super().close()
            return
        self.cancel()
        self.progress.close()
        for child in list(self.children):
            close_tree(child)
        super().close()


def close_tree(widget: Any) -> None:
    """Close ``widget``, every widget inside it and their layouts."""
    stack = [widget]
    while stack:
        child = stack.pop()
        stack.extend(getattr(child, "children", ()) or ())
        layout = getattr(child, "layout", None)
        child.close()
        if isinstance(layout, w.Widget):
            layout.close()


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
