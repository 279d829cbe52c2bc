"""``Model``: the SDK's Model API over the aiXplain wire, sync and async.

Every I/O method has an async twin named with an ``a`` prefix (``arun``, ``arun_async``,
``apoll``, ``arun_stream``, ``acancel_run``, ``adelete``, ``acheck_finetune_status``) and
``async_poll`` for ``sync_poll``. Both are thin: the protocol lives in ``flows`` (one generator
per operation) and ``protocol`` (pure payload building and reply mapping); only the drivers
differ. See ``transport`` for deadlines, retries and where the API key may go, and ``polling``
for the poll schedule.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aix_jupyter.core.config import Endpoints, configured_api_key, resolve_endpoints
from aix_jupyter.core.enums import AssetStatus, Function, FunctionType, ResponseStatus
from aix_jupyter.core.errors import AixError, RequestError
from aix_jupyter.core.events import EventHook
from aix_jupyter.core.parameters import ModelParameters
from aix_jupyter.core.polling import DEFAULT_MAX_WAIT, PollSchedule
from aix_jupyter.core.response import ModelResponse

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
    if isinstance(value, Mapping):
        entries = []
        for name, entry in value.items():
            entry = dict(entry) if isinstance(entry, Mapping) else {"values": [{"value": entry}]}
            entry.setdefault("name", name)
            sdk_value = entry.pop("value", None)  # the SDK's to_dict() form carries "value"
            if sdk_value is not None and not entry.get("values"):
                items = sdk_value if isinstance(sdk_value, list) else [sdk_value]
                entry["values"] = [{"value": v} for v in items]
            entries.append(entry)
        return ModelParameters(entries)
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
        self.additional_info = additional_info

    # -- configuration --------------------------------------------------------------------------
    @property
    def api_key(self) -> str | None:
        """The key this model uses: its own, else the configured one (never shown in repr/to_dict)."""
        return self._api_key if self._api_key is not None else configured_api_key()[0]

    @api_key.setter
    def api_key(self, value: str | None) -> None:
        self._api_key = value

    def endpoints(self) -> Endpoints:
        """Where this model's requests go (resolved now, from its URLs and the environment)."""
        return resolve_endpoints(api_key=self._api_key, url=self._url, backend_url=self._backend_url)

    @property
    def url(self) -> str:
        """Base of the run endpoint (``.../api/v1/execute``)."""
        return self._url or self.endpoints().run_url

    @url.setter
    def url(self, value: str | None) -> None:
        self._url = value

    @property
    def backend_url(self) -> str:
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
        self.additional_info["displayName"] = display_name
        self.additional_info["configuration"] = configuration

    def to_dict(self, include_api_key: bool = False) -> dict[str, Any]:
        """A JSON-ready dict; ``from_dict`` restores the model from it (the key only if asked)."""
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "supplier": copy.deepcopy(self.supplier),
            "version": self.version,
            "function": None if self.function is None else str(self.function),
            "is_subscribed": self.is_subscribed,
            "cost": copy.deepcopy(self.cost),
            "created_at": self.created_at.isoformat()
            if isinstance(self.created_at, datetime)
            else self.created_at,
            "input_params": copy.deepcopy(self.input_params),
            "output_params": copy.deepcopy(self.output_params),
            "model_params": {p.name: p.to_wire() for p in self.model_params.values()},
            "supports_streaming": self.supports_streaming,
            "function_type": str(self.function_type),
            "status": str(self.status),
            "additional_info": copy.deepcopy(self.additional_info),
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
            version=data.get("version"),
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

    def _body(
        self,
        ep: Endpoints,
        data: Any,
        parameters: Mapping[str, Any] | None,
        stream: bool,
        deadline: float | None,
    ) -> Any:
        """Validate now (nothing is sent on bad input); return the flow that uploads and builds the body."""
        from aix_jupyter.core import flows, protocol

        checked = protocol.validate_parameters(self.model_params, data, parameters)
        protocol.build_payload(data, checked, stream)  # raises on values JSON cannot carry

        def body_flow() -> flows.Flow:
            links = {}
            for path in protocol.local_files(data):
                links[path] = yield from flows.upload_flow(path, ep.backend_url, deadline)
            return protocol.build_payload(protocol.replace_files(data, links), checked, stream)

        return body_flow()

    def _check_poll_url(self, ep: Endpoints, poll_url: str) -> None:
        from aix_jupyter.core.transport import Transport

        Transport(ep).check_url(poll_url)

    def _sync(self, ep: Endpoints) -> Any:
        from aix_jupyter.core.transport import SyncTransport

        return SyncTransport(ep)

    # -- operations: what each one sends, shared by the sync and the async methods ----------
    def _run_flow(
        self,
        data: Any,
        parameters: Mapping[str, Any] | None,
        timeout: float,
        wait_time: float,
        max_wait: float,
        on_event: EventHook | None,
        start: float,
    ) -> tuple[Any, Endpoints]:
        from aix_jupyter.core import flows

        PollSchedule(wait_time, timeout, max_wait)  # validates the numbers before anything is sent
        emit = flows.Emitter(on_event, self.id, start)
        ep = self.endpoints()
        body = self._body(ep, data, parameters, False, emit.start + timeout)
        flow = flows.run_flow(
            self._run_url(ep, True), body, timeout=timeout, wait_time=wait_time, max_wait=max_wait, emit=emit
        )
        return flow, ep

    def _run_async_flow(
        self, data: Any, parameters: Mapping[str, Any] | None, on_event: EventHook | None
    ) -> tuple[Any, Endpoints]:
        from aix_jupyter.core import flows

        emit = flows.Emitter(on_event, self.id)
        ep = self.endpoints()
        body = self._body(ep, data, parameters, False, None)
        flow = flows.run_flow(
            self._run_url(ep, False),
            body,
            timeout=0,
            wait_time=0.5,
            max_wait=DEFAULT_MAX_WAIT,
            emit=emit,
            poll=False,
        )
        return flow, ep

    def _poll_flow(self, poll_url: str) -> tuple[Any, Endpoints]:
        from aix_jupyter.core import flows

        ep = self.endpoints()
        self._check_poll_url(ep, poll_url)
        return flows.poll_once_flow(poll_url), ep

    def _sync_poll_flow(
        self,
        poll_url: str,
        wait_time: float,
        timeout: float,
        max_wait: float,
        on_event: EventHook | None,
        start: float,
    ) -> tuple[Any, Endpoints]:
        from aix_jupyter.core import flows

        schedule = PollSchedule(wait_time, timeout, max_wait, start=start)
        emit = flows.Emitter(on_event, self.id, schedule.start)
        ep = self.endpoints()
        self._check_poll_url(ep, poll_url)
        return flows.poll_flow(poll_url, schedule, emit, timeout), ep

    def _cancel_flow(self, poll_url: str) -> tuple[Any, Endpoints]:
        from aix_jupyter.core import flows

        ep = self.endpoints()
        self._check_poll_url(ep, poll_url)
        return flows.cancel_flow(poll_url, budget=None), ep

    def _delete_flow(self) -> tuple[Any, Endpoints]:
        from aix_jupyter.core import flows, protocol
        from aix_jupyter.core.transport import Call

        ep = self.endpoints()
        call = Call(
            "DELETE", f"{ep.backend_url}/{protocol.model_path(self.id)}", auth="backend", what="delete"
        )
        return flows.status_flow(call), ep

    def _finetune_flow(self) -> tuple[Any, Endpoints]:
        from aix_jupyter.core import flows
        from aix_jupyter.core.transport import Call

        ep = self.endpoints()
        call = Call("GET", _finetune_url(ep, self.id), auth="backend", what="fine-tune status")
        return flows.json_flow(call, "Check FineTune status"), ep

    def _drive(self, plan: tuple[Any, Endpoints], cancel: threading.Event | None = None) -> Any:
        from aix_jupyter.core import flows

        flow, ep = plan
        return flows.drive_sync(flow, self._sync(ep), cancel)

    async def _adrive(
        self,
        plan: tuple[Any, Endpoints],
        cancel: threading.Event | None = None,
        *,
        shared_client_for: str | None = None,
    ) -> Any:
        """Drive ``plan`` with asyncio; flows of several requests share one client for their URL."""
        from aix_jupyter.core import flows
        from aix_jupyter.core.transport import AsyncTransport, async_client

        flow, ep = plan
        if shared_client_for is None:
            return await flows.drive_async(flow, AsyncTransport(ep), cancel)
        async with async_client(shared_client_for) as client:
            return await flows.drive_async(flow, AsyncTransport(ep, client), cancel)

    # -- run ------------------------------------------------------------------------------------
    def run(
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
    ) -> Any:
        """Run and wait (at most ``timeout`` s + 0.5 s); ``stream=True`` returns a streamer."""
        start = time.monotonic()
        if stream:
            return self.run_stream(data, parameters, on_event=on_event, cancel=cancel)
        plan = self._run_flow(data, parameters, timeout, wait_time, max_wait, on_event, start)
        return self._drive(plan, cancel)

    def run_async(
        self,
        data: Any,
        name: str = "model_process",
        parameters: Mapping[str, Any] | None = None,
        *,
        on_event: EventHook | None = None,
    ) -> ModelResponse:
        """Start a job; the response is IN_PROGRESS with ``url`` = the poll URL (or FAILED)."""
        return self._drive(self._run_async_flow(data, parameters, on_event))

    def poll(self, poll_url: str, name: str = "model_process") -> ModelResponse:
        """One poll of ``poll_url``."""
        return self._drive(self._poll_flow(poll_url))

    def sync_poll(
        self,
        poll_url: str,
        name: str = "model_process",
        wait_time: float = 0.5,
        timeout: float = 300,
        *,
        on_event: EventHook | None = None,
        cancel: threading.Event | None = None,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> ModelResponse:
        """Poll until the job ends; returns within ``timeout`` + 0.5 s."""
        start = time.monotonic()
        plan = self._sync_poll_flow(poll_url, wait_time, timeout, max_wait, on_event, start)
        return self._drive(plan, cancel)

    def cancel_run(self, poll_url: str) -> bool:
        """Ask the server to cancel a job (``DELETE <poll url>``); True when it did."""
        return bool(self._drive(self._cancel_flow(poll_url)))

    # -- streaming ------------------------------------------------------------------------------
    def _check_streaming(self) -> None:
        if not self.supports_streaming:
            raise AixError(
                f"model '{self.name or self.id}' ({self.id}) does not support streaming; run it without "
                "stream=True, or set model.supports_streaming = True if the server streams it"
            )

    def run_stream(
        self,
        data: Any,
        parameters: Mapping[str, Any] | None = None,
        *,
        on_event: EventHook | None = None,
        cancel: threading.Event | None = None,
    ) -> Any:
        """Run with a streamed reply: a ``ModelResponseStreamer`` of chunks."""
        from aix_jupyter.core import flows, streaming

        self._check_streaming()
        emit = flows.Emitter(on_event, self.id)
        ep = self.endpoints()
        transport = self._sync(ep)
        body = flows.drive_sync(self._body(ep, data, parameters, True, None), transport, cancel)
        from aix_jupyter.core.transport import Call, Cancelled

        call = Call("POST", self._run_url(ep, True), json_body=body, what="stream")
        try:
            opened = transport.open_stream(call, cancel)
        except Cancelled:
            return streaming.ModelResponseStreamer(
                payloads=iter(()),
                on_event=on_event,
                model_id=self.id,
                started=emit.start,
                cancel=_set_event(),
            )
        except RequestError as exc:
            return self._failed_stream(on_event, emit, str(exc))
        emit("submitted")
        return self._streamer(opened, emit, on_event, cancel, ep, transport)

    def _failed_stream(self, on_event: EventHook | None, emit: Any, message: str) -> Any:
        from aix_jupyter.core import protocol, streaming

        return streaming.ModelResponseStreamer(
            payloads=iter(()),
            on_event=on_event,
            model_id=self.id,
            started=emit.start,
            failure=protocol.failed(message),
        )

    def _streamer(
        self,
        opened: Any,
        emit: Any,
        on_event: EventHook | None,
        cancel: threading.Event | None,
        ep: Endpoints,
        transport: Any,
    ) -> Any:
        from aix_jupyter.core import flows, protocol, streaming

        response, raw = opened
        kind = raw.header("content-type") or ""
        common: dict[str, Any] = {
            "on_event": on_event,
            "model_id": self.id,
            "started": emit.start,
            "cancel": cancel,
            "secret": ep.api_key,
        }
        if not 200 <= raw.status_code < 300:
            content = transport.read_rest(response)
            response.close()
            failure = protocol.http_failure(
                protocol.RawReply(raw.status_code, raw.headers, content, secret=ep.api_key)
            )
            return streaming.ModelResponseStreamer(payloads=iter(()), failure=failure, **common)
        if "text/event-stream" not in kind:
            content = transport.read_rest(response)
            response.close()
            result = protocol.map_run_reply(
                protocol.RawReply(raw.status_code, raw.headers, content, secret=ep.api_key)
            )
            if result.status is ResponseStatus.IN_PROGRESS and result.url:
                self._check_poll_url(ep, result.url)
                schedule = PollSchedule(0.5, 300, DEFAULT_MAX_WAIT)
                quiet = flows.Emitter(None, self.id)
                result = flows.drive_sync(
                    flows.poll_flow(result.url, schedule, quiet, 300), transport, cancel
                )
            return streaming.ModelResponseStreamer(payloads=iter([_whole(result)]), **common)
        source = transport.iter_payloads(response)
        if cancel is not None:
            source = streaming.pumped(source, cancel, response.close)
        return streaming.ModelResponseStreamer(payloads=source, closer=response.close, **common)

    # -- platform operations --------------------------------------------------------------------
    def delete(self) -> None:
        """Delete this model on the server; only HTTP 200 is success."""
        _check_deleted(self._drive(self._delete_flow()))

    def check_finetune_status(self, after_epoch: float | None = None) -> Any:
        """``FinetuneStatus`` of this model's fine-tune job (raises RequestError on failure)."""
        from aix_jupyter.core.finetune import finetune_status_from_logs

        return finetune_status_from_logs(self._drive(self._finetune_flow()), after_epoch)

    # -- async twins ----------------------------------------------------------------------------
    async def arun(
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
    ) -> Any:
        start = time.monotonic()
        if stream:
            return await self.arun_stream(data, parameters, on_event=on_event, cancel=cancel)
        plan = self._run_flow(data, parameters, timeout, wait_time, max_wait, on_event, start)
        return await self._adrive(plan, cancel, shared_client_for=plan[1].run_url)

    async def arun_async(
        self,
        data: Any,
        name: str = "model_process",
        parameters: Mapping[str, Any] | None = None,
        *,
        on_event: EventHook | None = None,
    ) -> ModelResponse:
        return await self._adrive(self._run_async_flow(data, parameters, on_event))

    async def apoll(self, poll_url: str, name: str = "model_process") -> ModelResponse:
        return await self._adrive(self._poll_flow(poll_url))

    async def async_poll(
        self,
        poll_url: str,
        name: str = "model_process",
        wait_time: float = 0.5,
        timeout: float = 300,
        *,
        on_event: EventHook | None = None,
        cancel: threading.Event | None = None,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> ModelResponse:
        """The async twin of ``sync_poll``."""
        start = time.monotonic()
        plan = self._sync_poll_flow(poll_url, wait_time, timeout, max_wait, on_event, start)
        return await self._adrive(plan, cancel, shared_client_for=poll_url)

    async def acancel_run(self, poll_url: str) -> bool:
        return bool(await self._adrive(self._cancel_flow(poll_url)))

    async def arun_stream(
        self,
        data: Any,
        parameters: Mapping[str, Any] | None = None,
        *,
        on_event: EventHook | None = None,
        cancel: threading.Event | None = None,
    ) -> Any:
        """The async twin of ``run_stream``: ``async for chunk in await model.arun_stream(...)``."""
        from aix_jupyter.core import flows, protocol, streaming
        from aix_jupyter.core.transport import AsyncTransport, Call, Cancelled, async_client

        self._check_streaming()
        emit = flows.Emitter(on_event, self.id)
        ep = self.endpoints()
        client = async_client(ep.run_url)
        transport = AsyncTransport(ep, client)
        common: dict[str, Any] = {
            "on_event": on_event,
            "model_id": self.id,
            "started": emit.start,
            "cancel": cancel,
            "secret": ep.api_key,
        }
        try:
            body = await flows.drive_async(self._body(ep, data, parameters, True, None), transport, cancel)
            call = Call("POST", self._run_url(ep, True), json_body=body, what="stream")
            response, raw = await transport.open_stream(call, cancel)
        except Cancelled:
            await client.aclose()
            return streaming.ModelResponseStreamer(payloads=iter(()), **{**common, "cancel": _set_event()})
        except RequestError as exc:
            await client.aclose()
            return streaming.ModelResponseStreamer(
                payloads=iter(()), failure=protocol.failed(str(exc)), **common
            )
        except BaseException:
            await client.aclose()
            raise
        emit("submitted")

        async def close() -> None:
            await response.aclose()
            await client.aclose()

        kind = raw.header("content-type") or ""
        if not 200 <= raw.status_code < 300 or "text/event-stream" not in kind:
            content = await response.aread()
            await close()
            reply = protocol.RawReply(raw.status_code, raw.headers, content, secret=ep.api_key)
            if not 200 <= raw.status_code < 300:
                return streaming.ModelResponseStreamer(
                    payloads=iter(()), failure=protocol.http_failure(reply), **common
                )
            result = protocol.map_run_reply(reply)
            if result.status is ResponseStatus.IN_PROGRESS and result.url:
                result = await self.async_poll(result.url, cancel=cancel)
            return streaming.ModelResponseStreamer(apayloads=_aiter_once(_whole(result)), **common)
        source = transport.aiter_payloads(response)
        return streaming.ModelResponseStreamer(apayloads=source, aclose=close, **common)

    async def adelete(self) -> None:
        _check_deleted(await self._adrive(self._delete_flow()))

    async def acheck_finetune_status(self, after_epoch: float | None = None) -> Any:
        from aix_jupyter.core.finetune import finetune_status_from_logs

        return finetune_status_from_logs(await self._adrive(self._finetune_flow()), after_epoch)


def _finetune_url(ep: Endpoints, model_id: str) -> str:
    from urllib.parse import quote

    return f"{ep.backend_url}/sdk/finetune/{quote(model_id, safe='')}/ml-logs"


def _check_deleted(reply: Any) -> None:
    if reply.status_code != 200:
        raise RequestError(
            "Model Deletion Error: Make sure the model exists and you are the owner "
            f"(HTTP {reply.status_code})."
        )


def _set_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event


def _whole(result: ModelResponse) -> list[bytes]:
    """A finished non-streamed result as stream payloads (one chunk, then the end or the error)."""
    if result.status is ResponseStatus.SUCCESS:
        return [json.dumps({"data": result.data}, default=str).encode(), b"[DONE]"]
    return [
        json.dumps({"error_message": result.error_message or "the run failed", "status": "FAILED"}).encode()
    ]


async def _aiter_once(batch: list[bytes]) -> Any:
    yield batch
