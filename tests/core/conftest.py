"""Fixtures of the core tests: a real wire server on loopback and helpers to call sync or async twins."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import pytest

from aix_jupyter.core.llm import LLM
from aix_jupyter.core.model import Model
from tests.core.wireserver import (  # importable: tests/conftest.py puts the checkout on sys.path
    WireServer,
    default_metadata,
)

KEY = "sk-test-SECRET-0123456789"

ASYNC_NAMES = {
    "run": "arun",
    "run_async": "arun_async",
    "poll": "apoll",
    "sync_poll": "async_poll",
    "run_stream": "arun_stream",
    "cancel_run": "acancel_run",
    "delete": "adelete",
    "check_finetune_status": "acheck_finetune_status",
}


@pytest.fixture
def server() -> Iterator[WireServer]:
    with WireServer() as srv:
        yield srv


@pytest.fixture
def model(server: WireServer) -> Model:
    return Model("echo", name="Echo", url=server.run_url, api_key=KEY, supports_streaming=True)


@pytest.fixture
def llm(server: WireServer) -> LLM:
    """The same echo model as an ``LLM``, with the wire server's parameters (an LLM's ``temperature``...)."""
    return LLM(
        "echo",
        "Echo",
        api_key=KEY,
        url=server.run_url,
        model_params=default_metadata("echo")["params"],
        supports_streaming=True,
    )


def collect(streamer: Any) -> list[Any]:
    """All chunks of a sync or async streamer."""
    if hasattr(streamer, "_apayloads") and streamer._apayloads is not None:

        async def gather() -> list[Any]:
            return [chunk async for chunk in streamer]

        return asyncio.run(gather())
    return list(streamer)


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


def call(mode: str, obj: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``obj.name(...)`` (sync) or its async twin (run to completion with asyncio.run)."""
    if mode == "sync":
        return getattr(obj, name)(*args, **kwargs)
    method = getattr(obj, ASYNC_NAMES.get(name, "a" + name))
    result = method(*args, **kwargs)
    assert inspect.iscoroutine(result), f"{method.__name__} is not a coroutine function"
    return asyncio.run(result)
