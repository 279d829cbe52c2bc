"""``Model``: the SDK's Model API over the aiXplain wire, sync and async.

Every I/O method has an async twin named with an ``a`` prefix (``arun``, ``arun_async``,
``apoll``, ``arun_stream``, ``acancel_run``, ``adelete``, ``acheck_finetune_status``) and
``async_poll`` for ``sync_poll``. Both are made from one plan method (``_run`` gives ``run`` and
``arun``): a run's input passes once, downward -- the plan method, the pure request builder
(``protocol.run_request``), one flow (``flows``), one driver. Only the drivers differ.
See ``transport`` for deadlines, retries and where the API key may go, and ``polling``
for the poll schedule.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aix_jupyter.core import flows, protocol, recall
from aix_jupyter.core.config import Endpoints, configured_api_key, resolve_endpoints
from aix_jupyter.core.enums import AssetStatus, Function, FunctionType, ResponseStatus
from aix_jupyter.core.errors import AixError, RequestError
from aix_jupyter.core.events import EventHook, OutcomeKind, report_response
from aix_jupyter.core.finetune import FinetuneStatus, finetune_status_from_logs
from aix_jupyter.core.parameters import ModelParameters
from aix_jupyter.core.plans import Plan, async_api, sync_api
from aix_jupyter.core.polling import DEFAULT_MAX_WAIT, PollSchedule
from aix_jupyter.core.requestkey import request_key
from aix_jupyter.core.response import ModelResponse
from aix_jupyter.core.streaming import ModelResponseStreamer
from aix_jupyter.core.transport import Transport
from aix_jupyter.core.wire import Call, Opened

if TYPE_CHECKING:
    from typing import Unpack

    from aix_jupyter.core.batch_result import BatchOptions, BatchResult


_UNSET: Any = object()


def _enum(cls: Any, value: Any, default: Any) -> Any:
    if value is None:
        return default
    if isinstance(value, cls):
        return value
    try:
        return cls(str(value).lower())
    except ValueError:
        return default


def _params(value: Any) -> ModelParameters:
    if value is None:
        return ModelParameters()
    if isinstance(value, ModelParameters):
        return ModelParameters([p.model_copy(deep=True) for p in value.values()])
    if isinstance(value, Mapping):  # the SDK's {name: entry} form (its to_dict() carries "value")
        return ModelParameters({k: e if isinstance(e, Mapping) else {"value": e} for k, e in value.items()})
    return ModelParameters(list(value))


class Model:
    """A model that runs over the aiXplain wire (hosted platform, ``aix serve``, or embedded)."""

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
        created_at: datetime | None = None,
        input_params: dict[str, Any] | None = None,
        output_params: dict[str, Any] | None = None,
        model_params: Any = None,
        supports_streaming: bool = False,
        status: AssetStatus | str | None = AssetStatus.ONBOARDED,
        function_type: FunctionType | str | None = FunctionType.AI,
        *,
        url: str | None = None,
        backend_url: str | None = None,
        cache: Any = None,
        **additional_info: Any,
    ) -> None:
        if not isinstance(id, str) or not id:
            raise AixError(f"Model: id must be a non-empty string, got {id!r}")
        self.id = id
        self.name = name
        self.description = description
        self._api_key = api_key
        self.supplier = supplier
        self.version = version
        self.function = Function.parse(function)
        self.is_subscribed = is_subscribed
        self.cost = cost
        self.created_at = created_at
        self.input_params = input_params
        self.output_params = output_params
        self.model_params = _params(model_params)
        self.supports_streaming = supports_streaming
        self.status = _enum(AssetStatus, status, AssetStatus.ONBOARDED)
        self.function_type = _enum(FunctionType, function_type, FunctionType.AI)
        self._url = url
        self._backend_url = backend_url
        #: this model's response cache: None follows ``%aix cache`` / ``AIX_CACHE``; False bypasses it;
        #: True uses it (or the default file); a path or a ``ResponseCache`` names one (``core.recall``)
        self.cache = cache
        self.additional_info = additional_info

    # -- configuration --------------------------------------------------------------------------
    @property
    def api_key(self) -> str | None:
        """The key this model uses: its own, else the configured one (never shown in repr/to_dict)."""
        return self._api_key if self._api_key is not None else configured_api_key()[0]

    @api_key.setter
    def api_key(self, value: str | None) -> None:
        self._api_key = value

    def endpoints(self, *, start_default: bool = True) -> Endpoints:
        """Where this model's requests go (resolved now, from its URLs and the environment).

        ``start_default=False`` does not start the default backend if it would be chosen.
        """
        return resolve_endpoints(
            api_key=self._api_key, url=self._url, backend_url=self._backend_url, start_default=start_default
        )

    def _stores(self, cache: Any) -> tuple[recall.Recall | None, Endpoints]:
        """The cache and cassettes that apply to one call (``cache``: the call's choice, else the
        model's), and the endpoints (the default backend is not started while replaying)."""
        return recall.bind(recall.active(self.cache if cache is None else cache), self.endpoints)

    @property
    def url(self) -> str:
        """Base of the run endpoint (``.../api/v1/execute``)."""
        return self._url or self.endpoints().run_url

    @url.setter
    def url(self, value: str | None) -> None:
        self._url = value

    @property
    def backend_url(self) -> str:
        """Base of the platform API (metadata, delete, fine-tune, upload)."""
        return self._backend_url or self.endpoints().backend_url

    @backend_url.setter
    def backend_url(self, value: str | None) -> None:
        self._backend_url = value

    # -- SDK basics -----------------------------------------------------------------------------
    def __repr__(self) -> str:
        supplier = self.supplier
        if isinstance(supplier, Mapping):
            supplier = supplier.get("name", supplier)
        return f"Model: {self.name} by {supplier} (id={self.id})"

    def get_parameters(self) -> ModelParameters | None:
        """The model's parameters (``ModelParameters``), or None when it has none (as the SDK)."""
        return self.model_params if len(self.model_params) else None

    def add_additional_info_for_benchmark(self, display_name: str, configuration: dict[str, Any]) -> None:
        """Record a display name and configuration for benchmarks (as the SDK's method does)."""
        self.additional_info["displayName"] = display_name
        self.additional_info["configuration"] = configuration

    def to_dict(self, *, include_api_key: bool = False) -> dict[str, Any]:
        """The SDK's dict (its keys first, in its order), then what its form loses; ``from_dict`` reads it.

        JSON-ready; the API key only if asked. Each parameter carries this project's extensions
        (``minValue``, ...) besides the SDK's description, so validation survives a round trip.
        """
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "supplier": copy.deepcopy(self.supplier),
            "additional_info": {
                k: copy.deepcopy(v) for k, v in self.additional_info.items() if v not in (None, [], {})
            },
            "input_params": copy.deepcopy(self.input_params),
            "output_params": copy.deepcopy(self.output_params),
            "model_params": {
                p.name: copy.deepcopy({**p.to_dict(), **p.extensions()}) for p in self.model_params.values()
            },
            "function": self.function,
            "status": self.status,
            "version": self.version,
            "is_subscribed": self.is_subscribed,
            "cost": copy.deepcopy(self.cost),
            "created_at": self.created_at.isoformat()
            if isinstance(self.created_at, datetime)
            else self.created_at,
            "supports_streaming": self.supports_streaming,
            "function_type": self.function_type,
        }
        if self._url:
            out["url"] = self._url
        if self._backend_url:
            out["backend_url"] = self._backend_url
        if include_api_key and self._api_key:
            out["api_key"] = self._api_key
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Model:
        """The inverse of ``to_dict`` (also reads the SDK's ``to_dict`` form)."""
        created = data.get("created_at")
        if isinstance(created, str) and created:
            created = datetime.fromisoformat(created.replace("Z", "+00:00"))
        return cls(
            id=data.get("id", ""),
            name=data.get("name", ""),
            description=data.get("description", ""),
            api_key=data.get("api_key"),
            supplier=copy.deepcopy(data.get("supplier", "aiXplain")),
            version=data.get("version", "1.0"),  # the SDK's default here (the constructor's is None)
            function=data.get("function"),
            is_subscribed=data.get("is_subscribed", False),
            cost=copy.deepcopy(data.get("cost")),
            created_at=created or None,
            input_params=copy.deepcopy(data.get("input_params")),
            output_params=copy.deepcopy(data.get("output_params")),
            model_params=copy.deepcopy(data.get("model_params")),
            supports_streaming=data.get("supports_streaming", False),
            status=data.get("status", AssetStatus.ONBOARDED),
            function_type=data.get("function_type", FunctionType.AI),
            url=data.get("url"),
            backend_url=data.get("backend_url"),
            **copy.deepcopy(dict(data.get("additional_info") or {})),
        )

    # -- building blocks ------------------------------------------------------------------------
    def _run_url(self, ep: Endpoints, v2: bool) -> str:
        base = ep.run_v2_url if v2 else ep.run_url
        return f"{base}/{self.id}"

    def _checked_poll_url(self, poll_url: str) -> Endpoints:
        """The endpoints, once ``poll_url`` is known to be safe to send the key to."""
        ep = self.endpoints()
        Transport(ep).check_url(poll_url)
        return ep

    def _request(
        self, data: Any, parameters: Mapping[str, Any] | None, stream: bool = False
    ) -> protocol.RunRequest:
        """A run's request, checked against this model's parameters (``protocol.run_request``)."""
        return protocol.run_request(self.model_params, data, parameters, stream)

    def _check_streaming(self) -> None:
        if not self.supports_streaming:
            raise AixError(
                f"model '{self.name or self.id}' ({self.id}) does not support streaming; run it without "
                "stream=True, or set model.supports_streaming = True if the server streams it"
            )

    # -- operations: each public method and its async twin are made from one plan --------------
    # (plans.sync_api / plans.async_api): the plan checks the input, then describes the I/O.

    def _run(
        self,
        data: Any,
        name: str = "model_process",
        timeout: float = 300,
        parameters: Mapping[str, Any] | None = None,
        wait_time: float = 0.5,
        stream: bool = False,
        *,
        on_event: EventHook | None = None,
        cancel: threading.Event | None = None,
        max_wait: float = DEFAULT_MAX_WAIT,
        cache: Any = None,
    ) -> Plan[ModelResponse | ModelResponseStreamer]:
        """Run the model on ``data`` and wait for the result (the SDK's ``Model.run``).

        Returns a ``ModelResponse`` -- SUCCESS, or FAILED with a one-line ``error_message`` -- within
        ``timeout`` + 0.5 s, whatever the server does (on a timeout ``response.url`` resumes the job
        with ``sync_poll``). ``parameters`` are checked against the model's schema before anything
        is sent (ParameterError); a string naming a local file is uploaded first. A job that goes on
        is polled from ``wait_time`` s, the wait growing to at most ``max_wait`` s. ``on_event``
        receives the run's ``RunEvent``s; setting ``cancel`` (from any thread) cancels the run, also
        on the server. ``stream=True`` returns a ``ModelResponseStreamer`` instead (``run_stream``).
        ``cache``: None follows the model's choice (``Model(cache=...)``), else ``%aix cache`` /
        ``AIX_CACHE``; False bypasses the cache; True uses it; a path names a cache file. A hit sends
        nothing and is marked (``core.recall.recall_of``); while a cassette is replayed, it answers.
        """
        if stream:
            return self._run_stream(  # type: ignore[return-value]
                data,
                parameters,
                timeout=timeout,
                on_event=on_event,
                cancel=cancel,
                max_wait=max_wait,
                cache=cache,
            )
        flow, ep = self._run_flow(
            data, parameters, timeout, wait_time, max_wait, on_event, session="run", cache=cache
        )
        return Plan(flow, ep, cancel)

    run = sync_api(_run)
    arun = async_api(_run, "arun")

    def _run_flow(
        self,
        data: Any,
        parameters: Mapping[str, Any] | None,
        timeout: float,
        wait_time: float,
        max_wait: float,
        on_event: EventHook | None,
        start: float | None = None,
        *,
        session: OutcomeKind | None = None,
        cache: Any = None,
        check: Callable[[ModelResponse], ModelResponse] | None = None,
    ) -> tuple[flows.Flow, Endpoints]:
        """The flow of one ``run`` and its endpoints (``run``, and the batch scheduler: ``session=None``,
        the batch reports its items itself); the input is checked now.

        The run's clock starts here (``start``, the caller's "now", is kept for its signature).
        ``check`` makes the run's final response of the server's (``flows.Emitter``).
        """
        start = time.monotonic()
        PollSchedule(wait_time, timeout, max_wait)  # validates the numbers before anything is sent
        request = self._request(data, parameters)
        stores, ep = self._stores(cache)
        emit = flows.Emitter(on_event, self.id, start, session=session, check=check)
        url = self._run_url(ep, True)
        flow = flows.run_flow(
            url, request, ep.backend_url, timeout=timeout, wait_time=wait_time, max_wait=max_wait, emit=emit
        )
        if stores is not None:
            key = request_key(ep, self.id, self.version, request, self.model_params)
            flow = stores.run_flow(key, flow, emit)
        return flow, ep

    # -- batch: one scheduler over the run flows, in core/batch.py (map and amap only delegate) --
    def map(
        self,
        inputs: Iterable[Any],
        parameters: Mapping[str, Any] | None = None,
        **options: Unpack[BatchOptions],
    ) -> BatchResult:
        """Run every input, at most ``concurrency`` jobs at once; a ``BatchResult`` in input order.

        Options (keywords): ``concurrency`` (8), ``timeout`` (300 s) bounds the whole batch,
        ``on_event`` receives ``BatchEvent``s, ``cancel`` stops it early (the partial result is
        returned), ``resume`` reuses the successes of an earlier ``BatchResult``, ``cache`` is
        ``run``'s (with the cache on, an interrupted batch resumes for free). Ctrl-C raises
        ``BatchInterrupted`` with ``.results``. Works inside a running event loop (a notebook).
        """
        from aix_jupyter.core.batch import Batch, run_batches

        return run_batches([Batch(self, inputs, parameters, **options)])[0]

    async def amap(
        self,
        inputs: Iterable[Any],
        parameters: Mapping[str, Any] | None = None,
        **options: Unpack[BatchOptions],
    ) -> BatchResult:
        """The async twin of ``map`` (task cancellation cancels the jobs in flight, then re-raises)."""
        from aix_jupyter.core.batch import Batch

        return await Batch(self, inputs, parameters, **options).run()

    def _run_async(
        self,
        data: Any,
        name: str = "model_process",
        parameters: Mapping[str, Any] | None = None,
        *,
        on_event: EventHook | None = None,
        cache: Any = None,
    ) -> Plan[ModelResponse]:
        """Start a job and return at once (the SDK's ``run_async``).

        The response is IN_PROGRESS with ``url`` = the poll URL (follow it with ``poll`` or
        ``sync_poll``), or FAILED with a one-line ``error_message``. ``cache`` is ``run``'s: a
        stored answer gives a handle (``aix-recall:<key>``) that ``poll``/``sync_poll`` answer at once.
        """
        request = self._request(data, parameters)
        stores, ep = self._stores(cache)
        emit = flows.Emitter(on_event, self.id, session="run")
        flow = flows.run_flow(
            self._run_url(ep, False),
            request,
            ep.backend_url,
            timeout=0,
            wait_time=0.5,
            max_wait=DEFAULT_MAX_WAIT,
            emit=emit,
            poll=False,
        )
        if stores is not None:
            key = request_key(ep, self.id, self.version, request, self.model_params)
            flow = stores.run_flow(key, flow, emit, poll=False)
        return Plan(flow, ep)

    run_async = sync_api(_run_async)
    arun_async = async_api(_run_async, "arun_async")

    def _poll(self, poll_url: str, name: str = "model_process") -> Plan[ModelResponse]:
        """Poll a job once: IN_PROGRESS while it runs, then its final response.

        ``poll_url`` must be on the run or backend host (else UnsafePollURLError: the key stays home).
        """

        def finish(response: ModelResponse, _: Any) -> ModelResponse:
            if response.status is not ResponseStatus.IN_PROGRESS:  # the job's end, seen by this poll
                recall.settle_pending(poll_url, response)
                report_response("run", self.id, response, poll_url)
            return response

        if recall.is_handle(poll_url):
            return Plan(recall.held_flow(poll_url, None), None, finish=finish)
        return Plan(flows.poll_once_flow(poll_url), self._checked_poll_url(poll_url), finish=finish)

    poll = sync_api(_poll)
    apoll = async_api(_poll, "apoll")

    def _sync_poll(
        self,
        poll_url: str,
        name: str = "model_process",
        wait_time: float = 0.5,
        timeout: float = 300,
        *,
        on_event: EventHook | None = None,
        cancel: threading.Event | None = None,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> Plan[ModelResponse]:
        """Poll a job until it ends; returns within ``timeout`` + 0.5 s (FAILED, resumable, if not done).

        The poll schedule, events and cancellation are those of ``run``.
        """
        schedule = PollSchedule(wait_time, timeout, max_wait, start=time.monotonic())
        emit = flows.Emitter(on_event, self.id, schedule.start, session="run")
        if recall.is_handle(poll_url):
            return Plan(recall.held_flow(poll_url, emit), None, cancel)
        ep = self._checked_poll_url(poll_url)
        flow = recall.after_poll(poll_url, flows.poll_flow(poll_url, schedule, emit, timeout))
        return Plan(flow, ep, cancel)

    sync_poll = sync_api(_sync_poll)
    async_poll = async_api(_sync_poll, "async_poll")

    def _cancel_run(self, poll_url: str) -> Plan[bool]:
        """Ask the server to cancel a job (``DELETE <poll url>``); True when it says it did."""
        if recall.is_handle(poll_url):  # an answer from a store: nothing runs, nothing to cancel
            recall.held_response(poll_url)
            return Plan(flows.value_flow(False), None)
        flow = flows.cancel_flow(poll_url, budget=None)
        return Plan(flow, self._checked_poll_url(poll_url), finish=lambda done, _: bool(done))

    cancel_run = sync_api(_cancel_run)
    acancel_run = async_api(_cancel_run, "acancel_run")

    def _run_stream(
        self,
        data: Any,
        parameters: Mapping[str, Any] | None = None,
        *,
        timeout: float = 300,
        on_event: EventHook | None = None,
        cancel: threading.Event | None = None,
        max_wait: float = DEFAULT_MAX_WAIT,
        cache: Any = None,
    ) -> Plan[ModelResponseStreamer]:
        """Run with a streamed reply: a ``ModelResponseStreamer`` of the chunks as they come.

        The stream ends within ``timeout`` + 0.5 s of the call (FAILED, "did not end within", if the
        server is slower), and ends its connection when it ends. A server that answers without
        streaming gives one chunk of the whole text (a job it starts is polled). ``cancel`` ends
        the stream; ``on_event`` receives a ``chunk`` event per chunk. ``cache`` is ``run``'s: a
        stored stream is replayed chunk by chunk (a cassette's at its recorded pace, the cache's at once).
        """
        self._check_streaming()
        request = self._request(data, parameters, stream=True)
        stores, ep = self._stores(cache)
        emit = flows.Emitter(on_event, self.id)
        url = self._run_url(ep, True)
        flow = flows.stream_flow(url, request, ep.backend_url, timeout=timeout, max_wait=max_wait, emit=emit)
        key = None
        if stores is not None:
            key = request_key(ep, self.id, self.version, request, self.model_params)
            flow = stores.stream_flow(key, flow)
        deadline = emit.start + timeout
        common: dict[str, Any] = {
            "on_event": on_event,
            "model_id": self.id,
            "started": emit.start,
            "cancel": cancel,
            "secret": ep.api_key,
            "timeout": timeout,
            "session": True,
        }

        def finish(outcome: Any, transport: Any) -> ModelResponseStreamer:
            if isinstance(outcome, recall.Hit):
                emit("submitted")
                payloads: Any = (
                    recall.areplay_payloads(outcome)
                    if getattr(transport, "is_async", False)
                    else recall.replay_payloads(outcome, cancel)
                )
                mark = recall.RecallMark(outcome.key.digest, outcome.source, outcome.recorded.credits)
                return ModelResponseStreamer(payloads=payloads, recall=mark, **common)
            mine = recall.RecallMark(key.digest) if key is not None else None
            if isinstance(outcome, Opened):
                keep = stores.recorder(key) if stores is not None and key is not None else None
                payloads = transport.events(outcome, deadline, cancel)
                return ModelResponseStreamer(payloads=payloads, recorder=keep, recall=mine, **common)
            if stores is not None and key is not None:
                stores.keep(key, outcome)
            return ModelResponseStreamer.of(outcome, recall=mine, **common)

        return Plan(flow, ep, cancel, finish)

    run_stream = sync_api(_run_stream)
    arun_stream = async_api(_run_stream, "arun_stream")

    def _delete(self) -> Plan[None]:
        """Delete this model on the server; raises RequestError unless it answers HTTP 200."""
        ep = self.endpoints()
        url = f"{ep.backend_url}/{protocol.model_path(self.id)}"
        flow = flows.status_flow(Call("DELETE", url, auth="backend", what="delete"))
        return Plan(flow, ep, finish=lambda reply, _: _check_deleted(reply))

    delete = sync_api(_delete)
    adelete = async_api(_delete, "adelete")

    def _check_finetune_status(self, after_epoch: float | None = None) -> Plan[FinetuneStatus]:
        """The ``FinetuneStatus`` of this model's fine-tune job: the first epoch after
        ``after_epoch`` (the last epoch when None); raises RequestError when it cannot be had."""
        ep = self.endpoints()
        url = f"{ep.backend_url}/sdk/finetune/{quote(self.id, safe='')}/ml-logs"
        flow = flows.json_flow(
            Call("GET", url, auth="backend", what="fine-tune status"), "Check FineTune status"
        )
        return Plan(flow, ep, finish=lambda body, _: finetune_status_from_logs(body, after_epoch))

    check_finetune_status = sync_api(_check_finetune_status)
    acheck_finetune_status = async_api(_check_finetune_status, "acheck_finetune_status")


def _check_deleted(reply: Any) -> None:
    if reply.status_code != 200:
        raise RequestError(
            "Model Deletion Error: Make sure the model exists and you are the owner "
            f"(HTTP {reply.status_code})."
        )
