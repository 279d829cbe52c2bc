"""``%aix chat`` / ``%%aix chat``: conversations with a text-generation model (``core.conversation``).

Imported on first use of the subcommand, not at ``%load_ext``: ``args.parse_command`` parses its line
like a run's (``RunArgs("chat", ...)``), the magic hands it to ``handle``. The kernel keeps one
``Conversation`` per (model, session) in ``AixMagics.conversations``; a turn streams through the
magic's own stream display (``AixMagics._stream`` / ``display.StreamView``), or waits with the
progress bar when it cannot stream (a model that does not stream, ``--schema``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aix_jupyter.magics import args as ma
from aix_jupyter.magics import inputs as mi
from aix_jupyter.magics.errors import MagicUsageError

if TYPE_CHECKING:
    from aix_jupyter.core.conversation import Conversation
    from aix_jupyter.magics.magic import AixMagics

DEFAULT_SESSION = "default"

CHAT_DETAILS = """\
A conversation keeps its turns: each message is sent with the earlier ones (and the system prompt),
so a follow-up can refer to what was said. The kernel keeps one conversation per model and
--session NAME (default 'default').
  %aix chat MODEL [--system TEXT] [--session NAME] [--param value ...] TEXT
  %%aix chat MODEL ...               the cell body is the message
  %aix chat MODEL --history          the transcript so far
  %aix chat MODEL --reset            forget the turns (the system prompt stays)
  %aix chat MODEL [--param value ...]  a ChatWidget on the same conversation (its settings preset)
--system TEXT sets the conversation's system prompt (also on one that exists). The reply streams
(models that stream) and ends as one Markdown output; -o VAR keeps the ModelResponse; -f FORMAT
shows it as text, markdown, json, html or code (code: a new cell below holds the answer's code);
--schema VAR (a pydantic class or a JSON-schema dict) asks for structured output and shows the parsed
object. AixMagics.default_model applies when MODEL is left out."""


def conversation(magics: AixMagics, model: Any, session: str, system: str | None) -> Conversation:
    """The kernel's conversation with ``model`` in ``session`` (made on first use); ``system`` (when
    given) becomes its system prompt."""
    from aix_jupyter.core.conversation import Conversation

    key = (model.id, session)
    conv = magics.conversations.get(key)
    if conv is None:
        conv = Conversation(model, system=system)
        magics.conversations[key] = conv
    elif system is not None and system != conv.system:
        conv.system = system
    return conv


def handle(magics: AixMagics, args: ma.RunArgs, cell: str | None) -> Any:
    """Run one ``%aix chat`` command: a turn, ``--reset``, ``--history`` or the widget."""
    from aix_jupyter.magics.magic import _take_cell

    model_id = mi.interpolate(args.model_id, magics._ns)
    model = magics._get_model(model_id)
    opts = ma.parse_run_options(
        args.rest,
        model.model_params,
        command="chat",
        model_id=model.id,
        interpolate_value=lambda s: mi.interpolate(s, magics._ns),
    )
    if opts.help:
        return magics._info(model_id, model=model)
    _take_cell(opts, cell, "message")
    session = opts.session or DEFAULT_SESSION
    conv = conversation(magics, model, session, opts.system)
    where = model.id if session == DEFAULT_SESSION else f"{model.id} (session {session})"
    if opts.reset or opts.history:
        if opts.input_text and opts.input_text.strip():
            flag = "--reset" if opts.reset else "--history"
            raise MagicUsageError(f"chat {flag} takes no message, got {opts.input_text!r}")
        if opts.reset:
            turns = len(conv.history)
            conv.reset()
            print(f"{where}: conversation reset ({turns} messages forgotten)")
            return None
        return conv
    text = mi.interpolate(opts.input_text, magics._ns).strip() if opts.input_text else ""
    if not text:
        from aix_jupyter.widgets.chat import ChatWidget

        return ChatWidget(conv, timeout=magics.timeout, **opts.parameters)  # --param values preset
    return _turn(magics, conv, model, text, opts)


def _turn(magics: AixMagics, conv: Conversation, model: Any, text: str, opts: ma.RunOptions) -> Any:
    """Send one message: streamed when the model streams (and no ``--schema``), else waited for."""
    from aix_jupyter.magics.magic import run_provenance

    provenance = run_provenance(model, opts)
    response_format = magics.response_format(opts, model)

    def send(data: str, *, parameters: dict[str, Any], **kwargs: Any) -> Any:
        if response_format is not None:
            kwargs["response_format"] = response_format
        return conv.send(data, **parameters, **kwargs)

    def stream(data: str, *, parameters: dict[str, Any], **kwargs: Any) -> Any:
        return conv.stream(data, **parameters, **kwargs)

    if response_format is None and getattr(model, "supports_streaming", False):
        response = magics._stream(model, text, opts, provenance, open_stream=stream)
    else:
        response = magics._wait(model, text, opts, provenance, run=send)
    return magics.deliver(response, opts, model.id)
