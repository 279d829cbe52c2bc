"""``ChatWidget``: a conversation with a text-generation model, as a chat in the notebook.

::

    from aix_jupyter import ChatWidget
    chat = ChatWidget("local/smollm2-135m", system="You are terse.", temperature=0)
    chat                                   # transcript, input box (Enter sends), Send / Stop / New chat
    chat.send("Name a colour.")            # the same from Python: returns the ModelResponse
    chat.conversation.history              # the core's Conversation underneath

* The transcript: one Markdown turn per message. A reply streams into its turn append-only
  (:class:`~aix_jupyter.widgets.stream_text.StreamText`: each repaint sends only the new text, at most
  ``stream_interval`` apart) and is rendered as Markdown in place when it ends.
* The input box (:class:`ChatInput`, an anywidget): Enter sends, Shift+Enter starts a new line; the
  keys never reach the notebook's own shortcuts.
* **Send**, **Stop** (cancels the job on the server: the turn is not kept), **New chat** (forgets the
  turns, keeps the settings).
* **Settings**, collapsed: the system prompt and the model's parameters, the controls of
  :class:`~aix_jupyter.widgets.form.ParameterForm` built from the model's schema (without the message,
  the history and a ``system_prompt`` parameter: the conversation sets those; its system prompt box).
* Turns run in a background thread and reach the browser only through widget traits, never through
  ``print``/``display`` from the thread. The widget's own output also carries the transcript as
  ``text/plain`` and ``text/markdown`` (updated by display id after each turn in a live frontend), which
  is what a saved notebook shows where widgets are not rendered.
"""

from __future__ import annotations

import html
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anywidget
import ipywidgets as w
import traitlets
from IPython import get_ipython
from IPython.display import publish_display_data

from aix_jupyter import frontend
from aix_jupyter.core.enums import ResponseStatus
from aix_jupyter.core.errors import AixError
from aix_jupyter.core.parameters import ModelParameters
from aix_jupyter.core.response import ModelResponse
from aix_jupyter.display import Bundle, Provenance, mark_shown, redact, remember
from aix_jupyter.widgets.form import ParameterForm
from aix_jupyter.widgets.model_widget import _Coalescer, close_tree
from aix_jupyter.widgets.progress import WidgetProgress
from aix_jupyter.widgets.stream_text import StreamText

if TYPE_CHECKING:
    from aix_jupyter.core.conversation import Conversation

SYSTEM_PARAMETERS = ("system_prompt",)  # a schema's system prompt: the conversation's box sets it

_INPUT_ESM = r"""
function render({ model, el }) {
  el.classList.add("aix-chat-input");
  const box = document.createElement("textarea");
  box.rows = 2;
  box.placeholder = model.get("placeholder");
  box.value = model.get("value");
  el.append(box);
  const grow = () => { box.rows = Math.max(2, Math.min(12, box.value.split("\n").length)); };
  box.addEventListener("input", () => { model.set("value", box.value); model.save_changes(); grow(); });
  // Enter (with any modifier) is handled before the page's own shortcuts see it: Notebook 7 reads keys
  // in the capture phase on the document (Shift+Enter would run the cell), so listen on the window,
  // which comes first, and mark the event handled (its shortcut registry skips handled events).
  const onKey = (event) => {
    if (event.target !== box || event.key !== "Enter" || event.isComposing) return;
    event.preventDefault();
    event.stopPropagation();
    if (event.shiftKey) {  // a new line, where the cursor is
      box.setRangeText("\n", box.selectionStart, box.selectionEnd, "end");
      box.dispatchEvent(new Event("input", { bubbles: true }));
    } else if (!event.ctrlKey && !event.altKey && !event.metaKey) {
      model.set("value", box.value);
      model.save_changes();
      model.send({ submit: box.value });
    }
  };
  window.addEventListener("keydown", onKey, true);
  box.addEventListener("keydown", (event) => event.stopPropagation());  // other keys: the box's own
  const sync = () => { if (box.value !== model.get("value")) { box.value = model.get("value"); grow(); } };
  model.on("change:value", sync);
  grow();
  return () => {
    window.removeEventListener("keydown", onKey, true);
    model.off("change:value", sync);
  };
}
export default { render };
"""

_INPUT_CSS = """
.aix-chat-input { width: 100%; }
.aix-chat-input textarea { width: 100%; box-sizing: border-box; resize: vertical; padding: 4px 6px;
  font-family: var(--jp-ui-font-family, sans-serif); font-size: var(--jp-content-font-size1, 14px);
  color: var(--jp-ui-font-color0, #000); background: var(--jp-layout-color0, #fff);
  border: 1px solid var(--jp-border-color1, #bbb); border-radius: 3px; }
"""

_STYLE = """<style>
.aix-chat { border: 1px solid var(--jp-border-color2, #ddd); border-radius: 4px; padding: 6px 8px; }
.aix-chat .aix-chat-transcript { max-height: 36em; overflow-y: auto; }
.aix-chat .aix-turn { border-radius: 6px; padding: 2px 8px; margin: 3px 0; }
.aix-chat .aix-turn-user { background: var(--jp-layout-color2, #eef); margin-left: 15%; }
.aix-chat .aix-turn-assistant { background: var(--jp-layout-color1, #fafafa);
  border: 1px solid var(--jp-border-color3, #eee); margin-right: 15%; }
.aix-chat .aix-role { color: var(--jp-ui-font-color2, #666); font-size: 11px; }
.aix-chat .aix-meta { color: var(--jp-ui-font-color2, #666); font-size: 12px; }
.aix-chat .aix-failed { color: var(--jp-error-color1, #d32f2f); }
.aix-chat .aix-cancelled { color: var(--jp-warn-color1, #f57c00); }
</style>"""


class ChatInput(anywidget.AnyWidget):
    """A text box where Enter sends (a ``{"submit": text}`` message) and Shift+Enter adds a line."""

    _esm = _INPUT_ESM
    _css = _INPUT_CSS
    value = traitlets.Unicode("").tag(sync=True)
    placeholder = traitlets.Unicode("Message (Enter sends, Shift+Enter: new line)").tag(sync=True)


@dataclass
class _Turn:
    text: str
    parameters: dict[str, Any]
    cancel: threading.Event = field(default_factory=threading.Event)
    future: Future[Any] = field(default_factory=Future)
    started: float = field(default_factory=time.monotonic)
    finished: bool = False


class ChatWidget(w.VBox):
    """A chat with a text-generation model over a ``Conversation`` (``.conversation``).

    ``model_or_id``: a model id, a ``Model``, or a ``Conversation`` to show (``%aix chat MODEL``
    passes the kernel's). ``system``: the system prompt. ``parameters``: the model's parameters
    (``temperature=0``, ``max_tokens=64``...), set in the settings panel's controls.
    """

    stream_interval: float = 0.1  # seconds between repaints of a streamed reply (<= 10 messages/s)

    def __init__(
        self,
        model_or_id: Any,
        system: str | None = None,
        *,
        timeout: float = 300,
        api_key: str | None = None,
        **parameters: Any,
    ) -> None:
        from aix_jupyter.core.conversation import OWN_KEYWORDS, Conversation

        if isinstance(model_or_id, Conversation):
            conv = model_or_id
            if system is not None:
                conv.system = system
        else:
            if isinstance(model_or_id, str):
                from aix_jupyter.core.factory import ModelFactory

                model_or_id = ModelFactory.get(model_or_id, api_key=api_key)
            conv = Conversation(model_or_id, system=system)
        self.conversation: Conversation = conv
        self.model = conv.model
        self.timeout = timeout
        self.response: Any = None
        self._turn: _Turn | None = None
        self._lock = threading.Lock()
        self._display_id = f"aix-chat-{uuid.uuid4().hex}"
        self._displayed = False

        schema = self.model.model_params if isinstance(self.model.model_params, ModelParameters) else None
        primary = schema.primary_input() if schema is not None else None
        self.primary = primary.name if primary is not None else "data"
        skip = {self.primary, *SYSTEM_PARAMETERS, *OWN_KEYWORDS}  # what the conversation itself sets
        kept = [p for name, p in (schema or {}).items() if name not in skip]
        self.form = ParameterForm(ModelParameters(kept))
        self.form.observe(self._refresh)
        self.system_box = w.Textarea(
            value=conv.system or "",
            description="system",
            placeholder="(the model's default system prompt)",
            style={"description_width": "130px"},
            layout=w.Layout(width="100%"),
        )
        self.system_box.add_class("aix-chat-system")
        self.system_box.observe(self._system_changed, names="value")
        self.settings = w.Accordion(
            children=[w.VBox([self.system_box, self.form.widget], layout=w.Layout(width="100%"))],
            selected_index=None,
        )
        self.settings.set_title(0, "Settings")
        self.settings.add_class("aix-chat-settings")

        self.header = w.HTML(value=_STYLE + self._header_html())
        self.transcript = w.VBox([], layout=w.Layout(width="100%"))
        self.transcript.add_class("aix-chat-transcript")
        self.input = ChatInput(layout=w.Layout(width="100%"))
        self.input.on_msg(self._input_message)
        self.send_button = w.Button(description="Send", button_style="primary", icon="paper-plane")
        self.stop_button = w.Button(description="Stop", button_style="warning", icon="stop", disabled=True)
        self.new_button = w.Button(description="New chat", icon="plus")
        self.send_button.on_click(lambda _b: self._submit(self.input.value))
        self.stop_button.on_click(lambda _b: self.stop())
        self.new_button.on_click(lambda _b: self.new_chat())
        for button, css in ((self.send_button, "send"), (self.stop_button, "stop"), (self.new_button, "new")):
            button.add_class(f"aix-chat-{css}")
        self.buttons = w.HBox([self.send_button, self.stop_button, self.new_button])
        self.progress = WidgetProgress(self.model.id, display=False, show_model=False)
        self.meta = w.HTML(value="")
        self.meta.add_class("aix-meta")
        super().__init__(
            children=[
                self.header,
                self.transcript,
                self.input,
                self.buttons,
                self.progress.widget,
                self.meta,
                self.settings,
            ],
            layout=w.Layout(width="100%"),
        )
        self.add_class("aix-chat")
        if parameters:
            self.form.set(**parameters)
        for message in conv.history:  # a conversation that already has turns shows them
            self._add_turn(message["role"], str(message["content"]), final=True)
        self._refresh()

    # -- presentation ---------------------------------------------------------------------------
    def _header_html(self) -> str:
        model = self.model
        name = html.escape(str(model.name or model.id))
        return f'<div class="aix-header"><b>{name}</b> · <code>{html.escape(model.id)}</code> · chat</div>'

    def __repr__(self) -> str:
        return f"ChatWidget(model={self.model.id!r}, turns={len(self.conversation.history)})"

    def transcript_bundle(self) -> Bundle:
        """The transcript as ``text/plain`` and ``text/markdown`` (secrets redacted)."""
        markdown = self.conversation._repr_markdown_() or ""
        return redact({"text/plain": markdown or repr(self), "text/markdown": markdown or repr(self)})

    def _ipython_display_(self) -> None:
        """The widget view plus the transcript, for viewers without widgets (addressable by display id)."""
        publish_display_data(self._display_bundle(), {}, transient={"display_id": self._display_id})
        self._displayed = True

    def _display_bundle(self) -> Bundle:
        view: Bundle = dict(self._repr_mimebundle_())
        key = "application/vnd.jupyter.widget-view+json"
        return {**self.transcript_bundle(), **({key: view[key]} if key in view else {})}

    def _update_display(self) -> None:
        """After a turn, in a live frontend: the output's fallback follows the transcript."""
        if not self._displayed or get_ipython() is None or frontend.current() != "live":
            return
        publish_display_data(
            self._display_bundle(), {}, transient={"display_id": self._display_id}, update=True
        )

    def _add_turn(self, role: str, text: str, *, final: bool) -> StreamText:
        view = StreamText(value=redact(text), markdown=final, layout=w.Layout(width="100%"))
        who = "you" if role == "user" else html.escape(role)
        label = w.HTML(value=f'<span class="aix-role">{who}</span>')
        turn = w.VBox([label, view], layout=w.Layout(width="auto"))
        turn.add_class("aix-turn")
        turn.add_class(f"aix-turn-{role}")
        self.transcript.children = (*self.transcript.children, turn)
        return view

    # -- state ----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while a reply is being generated."""
        turn = self._turn
        return turn is not None and not turn.finished

    @property
    def history(self) -> list[dict[str, Any]]:
        """The conversation's messages (``{"role", "content"}``), oldest first."""
        return list(self.conversation.history)

    def set(self, **values: Any) -> ChatWidget:
        """Set parameters from Python (``temperature=0``), checked by the schema."""
        self.form.set(**values)
        return self

    def _system_changed(self, change: dict[str, Any]) -> None:
        self.conversation.system = change["new"] or None

    def _refresh(self) -> None:
        running = self.running
        self.send_button.disabled = running or not self.form.valid
        turn = self._turn
        self.stop_button.disabled = not running or (turn is not None and turn.cancel.is_set())
        self.new_button.disabled = running
        self.send_button.tooltip = "; ".join(self.form.errors.values()) or "Send the message (Enter)"

    # -- sending --------------------------------------------------------------------------------
    def send(self, text: str, *, wait: bool = True) -> Any:
        """Send ``text`` and return the reply's ``ModelResponse`` (a ``Future`` with ``wait=False``)."""
        turn = self._start(text)
        return turn.future if not wait else self._wait(turn)

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the reply in progress and return it (the last reply when none is)."""
        turn = self._turn
        return self.response if turn is None else self._wait(turn, timeout)

    def _wait(self, turn: _Turn, timeout: float | None = None) -> Any:
        response = turn.future.result(timeout)
        if self._displayed and frontend.current() == "live":
            mark_shown(response)  # in the transcript: ``chat.send(...)`` as a last line adds no copy
        return response

    def stop(self) -> bool:
        """Stop the reply in progress (the job is cancelled on the server); False when none runs."""
        turn = self._turn
        if turn is None or turn.finished:
            return False
        turn.cancel.set()
        self.stop_button.disabled = True
        return True

    def new_chat(self) -> None:
        """Forget the turns (the conversation's ``reset()``) and empty the transcript; settings stay."""
        if self.running:
            raise AixError("a reply is being generated: stop() it or wait() for it first")
        self.conversation.reset()
        old = list(self.transcript.children)
        self.transcript.children = ()
        for child in old:
            close_tree(child)
        self.meta.value = ""
        self.progress.reset()
        self.response = None
        self._update_display()

    def _input_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and isinstance(content.get("submit"), str):
            self._submit(content["submit"])

    def _submit(self, text: str) -> None:
        """From the box (Enter or Send): start a turn, or say why not where the user looks."""
        if not text.strip():
            return
        try:
            self._start(text)
        except AixError as exc:
            self.meta.value = f'<span class="aix-failed">{html.escape(str(exc), quote=False)}</span>'
            return
        self.input.value = ""

    def _start(self, text: str) -> _Turn:
        if not text.strip():
            raise AixError("the message is empty; type something to send")
        with self._lock:
            if self.running:
                raise AixError("a reply is being generated: wait for it or Stop it first")
            self.form.validate()
            parameters = self.form.values()  # raises the first ParameterError
            turn = _Turn(text=text, parameters=parameters)
            self._turn = turn
        self.meta.value = ""
        self._add_turn("user", text, final=True)
        view = self._add_turn("assistant", "", final=False)
        self.progress.reset()
        self.progress.start()
        self._refresh()
        threading.Thread(target=self._work, args=(turn, view), name="aix-chat", daemon=True).start()
        return turn

    def _work(self, turn: _Turn, view: StreamText) -> None:
        error: BaseException | None = None
        response: Any = None
        painter = _Coalescer(lambda text: view.show(redact(text)), self.stream_interval)  # what it echoes
        text = ""
        try:
            if getattr(self.model, "supports_streaming", False):
                streamer = self.conversation.stream(turn.text, **self._run_options(turn), **turn.parameters)
                try:
                    for item in streamer:
                        if item.status is ResponseStatus.IN_PROGRESS:
                            painter.update(streamer.text)
                finally:
                    streamer.close()
                text = streamer.text or ""
                if streamer.status is ResponseStatus.SUCCESS:
                    response = ModelResponse(
                        status=ResponseStatus.SUCCESS,
                        data=text,
                        completed=True,
                        run_time=round(time.monotonic() - turn.started, 4),
                    )
                else:
                    response = ModelResponse(
                        status=ResponseStatus.FAILED, completed=True, error_message=streamer.error_message
                    )
            else:
                response = self.conversation.send(turn.text, **self._run_options(turn), **turn.parameters)
                text = response.data if isinstance(response.data, str) else str(response.data or "")
        except BaseException as exc:
            error = exc
        finally:
            painter.close(text)
        self._end(turn, view, response, error)

    def _run_options(self, turn: _Turn) -> dict[str, Any]:
        return {"cancel": turn.cancel, "on_event": self.progress, "timeout": self.timeout}

    def _end(self, turn: _Turn, view: StreamText, response: Any, error: BaseException | None) -> None:
        ok = error is None and response is not None and response.status is ResponseStatus.SUCCESS
        cancelled = not ok and turn.cancel.is_set()
        if frontend.current() != "live":
            view.sync()  # a headless executor saves the widget state it saw in trait updates
        view.markdown = True
        if ok:
            remember(
                response,
                Provenance(
                    model_id=self.model.id,
                    version=getattr(self.model, "version", None),
                    parameters=dict(turn.parameters),
                    wall_time=round(time.monotonic() - turn.started, 4),
                    streamed=bool(getattr(self.model, "supports_streaming", False)),
                ),
            )
            self.response = response
            self.meta.value = self._meta_html(response, turn)
        else:
            if cancelled:
                message = "stopped: the reply was cancelled and is not part of the conversation"
                css = "aix-cancelled"
            else:
                message = str(error) if error is not None else str(getattr(response, "error_message", ""))
                message = f"failed: {message or 'the model failed without a message'}"
                css = "aix-failed"
            self.meta.value = f'<span class="{css}">{html.escape(redact(message), quote=False)}</span>'
            if not view.value:
                view.show("*(no reply)*")
        turn.finished = True
        self.progress.close()
        self._refresh()
        self._update_display()
        if error is not None:
            turn.future.set_exception(error)
        else:
            turn.future.set_result(response)

    def _meta_html(self, response: Any, turn: _Turn) -> str:
        parts = [str(getattr(response.status, "value", response.status))]
        run_time = getattr(response, "run_time", None)
        if isinstance(run_time, int | float) and run_time:
            parts.append(f"{run_time:.2f} s")
        parts.append(f"{len(self.conversation.history)} messages")
        return " · ".join(html.escape(p) for p in parts)

    def close(self) -> None:
        """Stop a reply in progress and close this widget and every widget inside it."""
        if "progress" in self.__dict__:
            self.stop()
            self.progress.close()
            for child in list(self.children):
                close_tree(child)
        super().close()


__all__ = ["ChatInput", "ChatWidget"]
