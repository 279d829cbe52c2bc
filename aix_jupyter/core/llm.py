"""``LLM``: the SDK's model class for text generation (``ModelFactory.get`` returns one for such models).

``LLM.run(data, context=None, prompt=None, history=None, temperature=None, max_tokens=128, top_p=None,
...)`` sends what the SDK 0.2.48's ``LLM.run`` sends for the same arguments -- the same keys, values
and endpoints (run: v2, run_async: v1, stream: v2 with ``options.stream``) -- and keeps every extra
of ``Model.run`` (``on_event``, ``cancel``, ``max_wait``, ``cache``). Unlike the SDK it never changes
the caller's ``parameters`` or ``data`` dicts, and its ``response_format`` may be a pydantic class
(``core.structured``: the answer is checked and parsed into ``ModelResponse.parsed``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Protocol

from aix_jupyter.core.enums import Function, FunctionType, ResponseStatus
from aix_jupyter.core.errors import AixError
from aix_jupyter.core.events import EventHook
from aix_jupyter.core.hooks import late
from aix_jupyter.core.model import Model
from aix_jupyter.core.plans import Plan, async_api, sync_api
from aix_jupyter.core.polling import DEFAULT_MAX_WAIT
from aix_jupyter.core.protocol import RunRequest, run_request
from aix_jupyter.core.response import ModelResponse
from aix_jupyter.core.streaming import ModelResponseStreamer
from aix_jupyter.core.structured import ResponseFormat

#: the LLM's own request keys, sent even when the model's parameters do not list them (as the SDK)
LLM_KEYS = frozenset(
    {"context", "prompt", "history", "temperature", "max_tokens", "top_p", "response_format"}
)


def default_temperature(model_params: Any) -> float | None:
    """The SDK's ``LLM.temperature`` from a model's parameters: the default of ``temperature``."""
    entries = model_params if isinstance(model_params, list) else []
    for entry in entries:
        if isinstance(entry, Mapping) and entry.get("name") == "temperature":
            defaults = entry.get("defaultValues") or []
            if defaults and isinstance(defaults[0], Mapping):
                try:
                    return float(defaults[0]["value"])
                except (KeyError, TypeError, ValueError):
                    return None
    return None


class Chat(Protocol):
    """What ``LLM.chat`` returns: a ``conversation.Conversation``, typed here by its public API (the
    conversation module is above this one: it fetches a model id with ``ModelFactory.get``)."""

    system: str | None
    parameters: dict[str, Any]
    max_turns: int | None

    @property
    def model(self) -> LLM: ...

    @property
    def model_id(self) -> str: ...

    @property
    def history(self) -> list[dict[str, str]]: ...

    @property
    def turns(self) -> int: ...

    def reset(self) -> None: ...

    def undo(self) -> list[dict[str, str]]: ...

    def size(self) -> tuple[int, int]: ...

    def send(self, text: str, **parameters: Any) -> ModelResponse: ...

    async def asend(self, text: str, **parameters: Any) -> ModelResponse: ...

    def stream(self, text: str, **parameters: Any) -> ModelResponseStreamer: ...

    async def astream(self, text: str, **parameters: Any) -> ModelResponseStreamer: ...

    def to_dict(self) -> dict[str, Any]: ...


class LLM(Model):
    """A text-generation model with the SDK's LLM arguments (``ModelFactory.get`` returns one)."""

    def __init__(
        self,
        id: str,
        name: str = "",
        description: str = "",
        api_key: str | None = None,
        supplier: Any = "aiXplain",
        version: str | None = None,
        function: Function | str | None = None,
        is_subscribed: bool = False,
        cost: dict[str, Any] | None = None,
        temperature: float | None = None,
        function_type: FunctionType | str | None = FunctionType.AI,
        **additional_info: Any,
    ) -> None:
        """As ``Model(...)``, plus ``temperature``: the default of every run (None: the model's own).

        The SDK's positional order (``temperature`` after ``cost``); ``Model``'s other arguments
        (``created_at``, ``model_params``, ``supports_streaming``, ``url``, ``cache``, ...) by keyword.
        """
        parsed = Function.parse(function) if function is not None else Function.TEXT_GENERATION
        if parsed != Function.TEXT_GENERATION:
            raise AixError(
                f"LLM: only text-generation models are LLMs, got function {str(parsed)!r} for {id!r}; "
                "use Model for other models"
            )
        super().__init__(
            id,
            name,
            description,
            api_key,
            supplier,
            version,
            Function.TEXT_GENERATION,
            is_subscribed,
            cost,
            function_type=function_type,
            **additional_info,
        )
        self.temperature = temperature

    # -- SDK basics -----------------------------------------------------------------------------
    def to_dict(self, *, include_api_key: bool = False) -> dict[str, Any]:
        """``Model.to_dict`` and, when set, the LLM's ``temperature`` (``from_dict`` reads it)."""
        out = super().to_dict(include_api_key=include_api_key)
        if self.temperature is not None:
            out["temperature"] = self.temperature
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LLM:
        """The inverse of ``to_dict``."""
        model = super().from_dict(data)
        assert isinstance(model, LLM)
        model.temperature = data.get("temperature")
        return model

    def chat(
        self,
        system: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        *,
        max_turns: int | None = None,
    ) -> Chat:
        """A new ``Conversation`` with this model (``system``: its system message)."""
        chat: Chat = late("conversation")(self, system, parameters, max_turns=max_turns)
        return chat

    # -- building blocks ------------------------------------------------------------------------
    def _request(self, data: Any, parameters: Mapping[str, Any] | None, stream: bool = False) -> RunRequest:
        """A run's request: the LLM's own keys are sent even if the model's parameters omit them."""
        return run_request(self.model_params, data, parameters, stream, unchecked=LLM_KEYS)

    def _llm_request(
        self,
        data: Any,
        parameters: Mapping[str, Any] | None,
        context: str | None,
        prompt: str | None,
        history: list[dict[str, Any]] | None,
        temperature: float | None,
        max_tokens: int,
        top_p: float | None,
        response_format: ResponseFormat | None,
    ) -> tuple[Any, dict[str, Any]]:
        """The SDK's merge of an LLM run's arguments: ``(data, parameters)`` to send, new objects.

        The caller's ``parameters`` win, then the keys of a dict ``data``, then the arguments (each set
        only where neither has it: the SDK's ``setdefault``); ``temperature`` (None: this LLM's
        ``temperature``) and ``top_p`` only when not None, the others always (None is sent as null,
        as the SDK sends it).
        """
        if temperature is None:
            temperature = self.temperature
        merged = dict(parameters or {})
        given: Mapping[str, Any] = {}
        if isinstance(data, Mapping):
            given = data
            if "data" not in data:  # the SDK sends data.get("data", "")
                data = {"data": "", **data}
        arguments: dict[str, Any] = {"context": context, "prompt": prompt, "history": history}
        if temperature is not None:
            arguments["temperature"] = temperature
        arguments["max_tokens"] = max_tokens
        if top_p is not None:
            arguments["top_p"] = top_p
        arguments["response_format"] = None if response_format is None else response_format.wire
        for key, value in arguments.items():
            if key not in merged and key not in given:
                merged[key] = value
        return data, merged

    # -- operations (each public method and its async twin from one plan, as Model's) ------------
    def _run(  # type: ignore[override]
        self,
        data: Any,
        context: str | None = None,
        prompt: str | None = None,
        history: list[dict[str, Any]] | None = None,
        temperature: float | None = None,
        max_tokens: int = 128,
        top_p: float | None = None,
        name: str = "model_process",
        timeout: float = 300,
        parameters: Mapping[str, Any] | None = None,
        wait_time: float = 0.5,
        stream: bool = False,
        response_format: Any = None,
        *,
        on_event: EventHook | None = None,
        cancel: threading.Event | None = None,
        max_wait: float = DEFAULT_MAX_WAIT,
        cache: Any = None,
    ) -> Plan[ModelResponse | ModelResponseStreamer]:
        """Generate text for ``data`` (the user's message) and wait for it (the SDK's ``LLM.run``).

        ``context``: the system message; ``prompt``: a prefix of the message; ``history``: earlier
        turns, OpenAI's ``[{"role": "user"|"assistant", "content": ...}, ...]``; ``temperature``
        (None: the model's ``temperature``, then the server's), ``max_tokens``, ``top_p``.
        ``response_format``: a string, a JSON-schema dict or a pydantic class -- the answer is then
        checked: a valid one carries its object in ``response.parsed``, another is FAILED
        (``core.structured``). Everything else is ``Model.run``'s (``stream=True`` returns a
        ``ModelResponseStreamer``; ``on_event``, ``cancel``, ``max_wait``, ``cache``).
        """
        fmt = ResponseFormat.of(response_format)
        data, merged = self._llm_request(
            data, parameters, context, prompt, history, temperature, max_tokens, top_p, fmt
        )
        if stream:
            plan = self._run_stream(
                data,
                merged,
                timeout=timeout,
                on_event=on_event,
                cancel=cancel,
                max_wait=max_wait,
                cache=cache,
            )
            return _checked_stream(plan, fmt)  # type: ignore[return-value]
        check = fmt.check if fmt is not None and fmt.json else None
        flow, ep = self._run_flow(
            data, merged, timeout, wait_time, max_wait, on_event, session="run", cache=cache, check=check
        )
        return Plan(flow, ep, cancel)

    run = sync_api(_run)  # type: ignore[arg-type,assignment]
    arun = async_api(_run, "arun")  # type: ignore[arg-type,assignment]

    def _run_async(  # type: ignore[override]
        self,
        data: Any,
        context: str | None = None,
        prompt: str | None = None,
        history: list[dict[str, Any]] | None = None,
        temperature: float | None = None,
        max_tokens: int = 128,
        top_p: float | None = None,
        name: str = "model_process",
        parameters: Mapping[str, Any] | None = None,
        response_format: Any = None,
        *,
        on_event: EventHook | None = None,
        cache: Any = None,
    ) -> Plan[ModelResponse]:
        """Start a generation and return at once (the SDK's ``LLM.run_async``): IN_PROGRESS with the
        poll URL in ``url`` (follow it with ``poll`` / ``sync_poll``), or FAILED. The arguments are
        ``run``'s; the answer a poll gets is not checked against ``response_format``."""
        fmt = ResponseFormat.of(response_format)
        data, merged = self._llm_request(
            data, parameters, context, prompt, history, temperature, max_tokens, top_p, fmt
        )
        return Model._run_async(self, data, name, merged, on_event=on_event, cache=cache)

    run_async = sync_api(_run_async)  # type: ignore[arg-type,assignment]
    arun_async = async_api(_run_async, "arun_async")  # type: ignore[arg-type,assignment]


def _checked_stream(
    plan: Plan[ModelResponseStreamer], fmt: ResponseFormat | None
) -> Plan[ModelResponseStreamer]:
    """``plan`` (a stream's) whose streamer checks its whole text against ``fmt`` when it ends."""
    if fmt is None or not fmt.json:
        return plan
    finish = plan.finish
    assert finish is not None

    def checked(outcome: Any, transport: Any) -> ModelResponseStreamer:
        streamer = finish(outcome, transport)

        def watch(final: ModelResponse | None) -> ModelResponse | None:
            if final is None or final.status is not ResponseStatus.SUCCESS:
                return final
            return fmt.check_text(final, streamer.text)

        streamer.watch(watch)
        return streamer

    return Plan(plan.flow, plan.endpoints, plan.cancel, checked)
