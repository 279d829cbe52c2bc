"""Plans: a public operation ready to run, and the sync and async methods made from one.

A ``Plan`` is one public operation ready to run (its flow, its endpoints, what to make of the
flow's result); the public sync and async methods of ``Model`` and ``ModelFactory`` are both made
from one plan method (``sync_api`` / ``async_api``), run by the blocking or the asyncio I/O driver.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar

from aix_jupyter.core.async_transport import AsyncTransport
from aix_jupyter.core.flows import Flow, drive_async, drive_sync
from aix_jupyter.core.sync_transport import SyncTransport

if TYPE_CHECKING:
    from aix_jupyter.core.config import Endpoints

R = TypeVar("R")
P = ParamSpec("P")
S = TypeVar("S")


@dataclass
class Plan(Generic[R]):
    """One public operation ready to run.

    ``flow`` does the work against ``endpoints`` (None: a flow that asks for no I/O, such as an
    answer the cache holds); ``finish(result, transport)`` (when given) makes
    what the caller gets of the flow's result -- with the transport that ran it, so that a
    stream is read by the same kind of I/O that opened it.
    """

    flow: Flow
    endpoints: Endpoints | None
    cancel: threading.Event | None = None
    finish: Callable[[Any, Any], R] | None = None


def run_sync(plan: Plan[R]) -> R:
    """Run ``plan`` with blocking I/O."""
    transport = None if plan.endpoints is None else SyncTransport(plan.endpoints)
    result = drive_sync(plan.flow, transport, plan.cancel)
    return result if plan.finish is None else plan.finish(result, transport)


async def run_async(plan: Plan[R]) -> R:
    """Run ``plan`` with asyncio I/O (its requests share one client)."""
    transport = None if plan.endpoints is None else AsyncTransport(plan.endpoints)
    try:
        result = await drive_async(plan.flow, transport, plan.cancel)
    finally:
        if transport is not None:
            await transport.aclose()
    return result if plan.finish is None else plan.finish(result, transport)


def _public(method: Any, planner: Any, name: str, doc: str) -> Any:
    method.__name__ = name
    owner = planner.__qualname__.rpartition(".")[0]
    method.__qualname__ = f"{owner}.{name}" if owner else name
    method.__doc__ = doc
    signature = inspect.signature(planner)
    returns = signature.return_annotation
    if isinstance(returns, str) and returns.startswith("Plan[") and returns.endswith("]"):
        returns = returns[5:-1]
    method.__signature__ = signature.replace(return_annotation=returns)
    return method


def sync_api(planner: Callable[Concatenate[S, P], Plan[R]]) -> Callable[Concatenate[S, P], R]:
    """The blocking public method made from ``planner`` (``_run`` gives ``run``), which makes the plan."""

    @functools.wraps(planner)
    def method(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
        return run_sync(planner(self, *args, **kwargs))

    return _public(method, planner, planner.__name__.lstrip("_"), planner.__doc__ or "")


def async_api(
    planner: Callable[Concatenate[S, P], Plan[R]], name: str
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """The async twin ``name`` of the public method ``sync_api(planner)``, made from the same plan."""

    @functools.wraps(planner)
    async def method(self: S, *args: P.args, **kwargs: P.kwargs) -> R:
        return await run_async(planner(self, *args, **kwargs))

    sync_name = planner.__name__.lstrip("_")
    doc = f"The async twin of ``{sync_name}``: the same arguments, awaited.\n\n" + inspect.cleandoc(
        planner.__doc__ or ""
    )
    return _public(method, planner, name, doc)
