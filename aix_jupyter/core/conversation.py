"""``Conversation``: a chat with an ``LLM`` that keeps its history (no Jupyter here).

Each turn is one ``LLM.run`` with ``context=system`` and the history so far (the SDK's OpenAI-format
list of ``{"role", "content"}``), so every guarantee of a run holds for a turn: ``cancel``, Ctrl-C,
``timeout``, the cache and cassettes (a turn's request key includes its history), the session's usage
ledger, secrets. A turn enters the history only when its answer succeeded: a failed, cancelled,
timed-out or interrupted turn leaves it as it was, and says so. One turn at a time per conversation.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Mapping
from typing import Any

from aix_jupyter.core.enums import ResponseStatus
from aix_jupyter.core.errors import AixError, ParameterError
from aix_jupyter.core.llm import LLM, Chat
from aix_jupyter.core.model import Model
from aix_jupyter.core.protocol import MAX_MESSAGE, one_line
from aix_jupyter.core.response import ModelResponse
from aix_jupyter.core.streaming import ModelResponseStreamer
from aix_jupyter.core.streaming import _as_text as _text  # an answer as the history's text (None: empty)

UNCHANGED = "the conversation's history is unchanged"
#: keywords of a turn that go to ``LLM.run`` itself; any other keyword is a model parameter
RUN_KEYWORDS = frozenset(
    {
        "prompt",
        "temperature",
        "max_tokens",
        "top_p",
        "name",
        "timeout",
        "wait_time",
        "response_format",
        "on_event",
        "cancel",
        "max_wait",
        "cache",
    }
)
#: what the conversation itself sets on each run
OWN_KEYWORDS = frozenset({"data", "context", "history", "stream", "parameters"})
#: words of servers' context-overflow errors (the embedded LLM's says "context overflow")
OVERFLOW_WORDS = (
    "context overflow",
    "contextoverflow",
    "exceed the context",
    "exceeds the context",
    "context length",
    "context_length_exceeded",
    "maximum context",
    "prompt is too long",
)


class ConversationBusy(AixError):
    """A turn was started while another turn of the same conversation was still running."""


def _llm(model_or_id: Any) -> LLM | str:
    if isinstance(model_or_id, LLM) or (isinstance(model_or_id, str) and model_or_id):
        return model_or_id
    if isinstance(model_or_id, Model):
        raise AixError(
            f"Conversation: {model_or_id.id!r} is a Model of function {str(model_or_id.function)!r}, not an "
            "LLM; pass a text-generation model (ModelFactory.get returns an LLM for one) or its id"
        )
    raise AixError(f"Conversation: expected an LLM or a model id, got {type(model_or_id).__name__}")


def _message(entry: Any, where: str) -> dict[str, str]:
    if (
        not isinstance(entry, Mapping)
        or entry.get("role") not in ("user", "assistant")
        or not isinstance(entry.get("content"), str)
    ):
        raise ParameterError(
            f"{where}: each message must be {{'role': 'user' or 'assistant', 'content': text}}, "
            f"got {entry!r}",
            parameter="history",
        )
    return {"role": entry["role"], "content": entry["content"]}


class Conversation:
    """A chat with ``model_or_id`` (an ``LLM`` or a model id, fetched on first use).

    ``system``: the system message (sent as ``context``); ``parameters``: defaults of every turn
    (``LLM.run`` keywords such as ``temperature``/``max_tokens``, or model parameters);
    ``max_turns``: keep only the last N exchanges in the history (None: all).
    """

    def __init__(
        self,
        model_or_id: LLM | str,
        system: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        *,
        max_turns: int | None = None,
    ) -> None:
        self._model: LLM | str = _llm(model_or_id)
        if system is not None and not isinstance(system, str):
            raise ParameterError(f"Conversation: system must be text, got {type(system).__name__}")
        self.system = system
        self.parameters: dict[str, Any] = dict(parameters or {})
        self._split(self.parameters, "Conversation parameters")  # fail now, not at the first turn
        if max_turns is not None and (not isinstance(max_turns, int) or max_turns < 1):
            raise ParameterError(
                f"Conversation: max_turns must be a positive integer or None, got {max_turns!r}"
            )
        self.max_turns = max_turns
        self._history: list[dict[str, str]] = []
        self._busy = threading.Lock()

    # -- the model ------------------------------------------------------------------------------
    @property
    def model(self) -> LLM:
        """The conversation's ``LLM`` (a model id is fetched with ``ModelFactory.get`` on first use)."""
        if isinstance(self._model, str):
            from aix_jupyter.core.factory import ModelFactory

            self._model = _llm(ModelFactory.get(self._model))  # type: ignore[assignment]
        assert isinstance(self._model, LLM)
        return self._model

    @property
    def model_id(self) -> str:
        return self._model if isinstance(self._model, str) else self._model.id

    # -- the history ----------------------------------------------------------------------------
    @property
    def history(self) -> list[dict[str, str]]:
        """The exchanges so far, OpenAI's ``[{"role", "content"}, ...]`` (a copy)."""
        return [dict(m) for m in self._history]

    @property
    def turns(self) -> int:
        """The number of exchanges (a user's message and the model's answer) in the history."""
        return len(self._history) // 2

    def reset(self) -> None:
        """Forget every exchange (the system message and parameters stay)."""
        self._history = []

    def undo(self) -> list[dict[str, str]]:
        """Drop the last exchange and return it (raises AixError when the history is empty)."""
        if not self._history:
            raise AixError("Conversation.undo: there is no exchange to undo (the history is empty)")
        last, self._history = self._history[-2:], self._history[:-2]
        return last

    def _trim(self) -> None:
        if self.max_turns is not None and self.turns > self.max_turns:
            self._history = self._history[-2 * self.max_turns :]

    def size(self) -> tuple[int, int]:
        """``(turns, characters)`` of the history (what a prompt grows with)."""
        return self.turns, sum(len(m["content"]) for m in self._history)

    # -- turns: one LLM.run each; send/asend and stream/astream share the steps below ------------
    def _split(self, parameters: Mapping[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(run keywords, model parameters)`` of a turn's parameters."""
        run: dict[str, Any] = {}
        model: dict[str, Any] = {}
        for key, value in parameters.items():
            if key in RUN_KEYWORDS:
                run[key] = value
            elif key in OWN_KEYWORDS:
                raise ParameterError(
                    f"{where}: {key} is set by the conversation (the system message, the history and the "
                    "message); change the history with reset() / undo()",
                    parameter=key,
                )
            else:
                model[key] = value
        return run, model

    def _begin(self, text: str, parameters: Mapping[str, Any], stream: bool) -> dict[str, Any]:
        """Take the conversation (one turn at a time) and make the ``LLM.run`` keywords of a turn."""
        if not isinstance(text, str):
            raise ParameterError(f"Conversation: the message must be text, got {type(text).__name__}")
        run, model = self._split({**self.parameters, **parameters}, "Conversation.send")
        if not self._busy.acquire(blocking=False):
            raise ConversationBusy(
                "Conversation: a turn is already running; one turn at a time per conversation (wait for "
                "it, finish or close its stream, or start another Conversation)"
            )
        return {
            **run,
            "data": text,
            "context": self.system,
            "history": self._history,  # copied into the request as it is built (nothing changes it meanwhile)
            "parameters": model or None,
            "stream": stream,
        }

    def _end(self, text: str, response: ModelResponse | None, answer: Any = None) -> ModelResponse | None:
        """Release the conversation; a SUCCESS enters the history, anything else says it did not."""
        try:
            if response is None:
                return None
            if response.status is ResponseStatus.SUCCESS:
                content = response.data if answer is None else answer
                self._history.append({"role": "user", "content": text})
                self._history.append({"role": "assistant", "content": _text(content)})
                self._trim()
                return response
            response.error_message = self._failure_message(response.error_message)
            return response
        finally:
            self._busy.release()

    def _failure_message(self, message: str) -> str:
        note = UNCHANGED
        if any(word in message.lower() for word in OVERFLOW_WORDS):
            turns, chars = self.size()
            note += (
                f"; the history is {turns} turn{'s' if turns != 1 else ''} ({chars} characters): drop the "
                "last exchanges with undo(), start over with reset(), or keep fewer with "
                "Conversation(..., max_turns=N)"
            )
        message = one_line(message) if message else "the turn failed"
        room = MAX_MESSAGE - len(note) - 3  # the note is kept whole: the server's message is cut first
        if len(message) > room:
            message = message[: room - 3] + "..."
        return f"{message} ({note})"

    def _abandon(self, exc: BaseException) -> None:
        """A turn that raised (bad input, Ctrl-C, task cancelled): release, note that nothing changed."""
        self._busy.release()
        exc.add_note(f"Conversation: {UNCHANGED}")

    def _settle(self, text: str, result: Any) -> Any:
        """What a turn's run gave: a response (settled now), or a stream (settled when it ends)."""
        if isinstance(result, ModelResponseStreamer):

            def watch(final: ModelResponse | None) -> ModelResponse | None:
                return self._end(text, final, result.text)

            result.watch(watch)
            return result
        return self._end(text, result)

    def _turn(self, text: str, parameters: Mapping[str, Any], stream: bool) -> Any:
        kwargs = self._begin(text, parameters, stream)
        try:
            result = self.model.run(**kwargs)
        except BaseException as exc:
            self._abandon(exc)
            raise
        return self._settle(text, result)

    async def _aturn(self, text: str, parameters: Mapping[str, Any], stream: bool) -> Any:
        kwargs = self._begin(text, parameters, stream)
        try:
            result = await self.model.arun(**kwargs)
        except BaseException as exc:
            self._abandon(exc)
            raise
        return self._settle(text, result)

    def send(self, text: str, **parameters: Any) -> ModelResponse:
        """Send ``text`` and wait for the answer (a ``ModelResponse``); ``parameters`` are this
        turn's (``LLM.run`` keywords such as ``max_tokens``, ``timeout``, ``cancel``,
        ``response_format``, or model parameters), over the conversation's."""
        return self._turn(text, parameters, stream=False)

    async def asend(self, text: str, **parameters: Any) -> ModelResponse:
        """The async twin of ``send``."""
        return await self._aturn(text, parameters, stream=False)

    def stream(self, text: str, **parameters: Any) -> ModelResponseStreamer:
        """Send ``text`` and stream the answer (a ``ModelResponseStreamer``, as ``Model.run_stream``'s);
        the turn enters the history when the stream ends with SUCCESS. The conversation takes no
        other turn until the stream ends or is closed."""
        return self._turn(text, parameters, stream=True)

    async def astream(self, text: str, **parameters: Any) -> ModelResponseStreamer:
        """The async twin of ``stream`` (iterate it with ``async for``)."""
        return await self._aturn(text, parameters, stream=True)

    # -- saving ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``from_dict`` reads it); the model without its API key."""
        model = self._model if isinstance(self._model, str) else self._model.to_dict()
        return {
            "model": model,
            "system": self.system,
            "parameters": dict(self.parameters),
            "max_turns": self.max_turns,
            "history": self.history,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Conversation:
        """The inverse of ``to_dict``."""
        if not isinstance(data, Mapping) or "model" not in data:
            raise ParameterError("Conversation.from_dict: expected a dict with a 'model' (from to_dict())")
        model = data["model"]
        llm = LLM.from_dict(model) if isinstance(model, Mapping) else model
        out = cls(llm, data.get("system"), data.get("parameters"), max_turns=data.get("max_turns"))
        history = data.get("history") or []
        if not isinstance(history, list) or len(history) % 2:
            raise ParameterError(
                "Conversation.from_dict: history must be a list of user/assistant message pairs",
                parameter="history",
            )
        out._history = [_message(m, "Conversation.from_dict") for m in history]
        out._trim()
        return out

    # -- display --------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Conversation(model={self.model_id!r}, turns={self.turns})"

    def _messages(self) -> list[tuple[str, str]]:
        out = [("system", self.system)] if self.system else []
        return out + [(m["role"], m["content"]) for m in self._history]

    def _repr_markdown_(self) -> str:
        lines = [f"**Conversation with `{self.model_id}`** ({self.turns} turns)"]
        for role, content in self._messages():
            text = html.escape(content, quote=False)  # Markdown renders raw HTML: the text is shown, not run
            quoted = "\n".join(f"> {line}" if line else ">" for line in text.splitlines() or [""])
            lines.append(f"**{role.capitalize()}:**\n\n{quoted}")
        return "\n\n".join(lines) + "\n"

    def _repr_html_(self) -> str:
        rows = [
            f'<div class="aix-turn aix-{role}"><b>{role.capitalize()}:</b> '
            f'<span style="white-space: pre-wrap">{html.escape(content)}</span></div>'
            for role, content in self._messages()
        ]
        title = f"Conversation with <code>{html.escape(self.model_id)}</code>"
        head = f"<div><b>{title}</b> ({self.turns} turns)</div>"
        return f'<div class="aix-conversation">{head}{"".join(rows)}</div>'


def _is_a_chat(conversation: Conversation) -> Chat:
    return conversation  # (for type checkers: a Conversation is what ``LLM.chat`` promises)
