"""Backend fixtures: real uvicorn servers on loopback, real models, a real HTTP client."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from aix_jupyter.backend.app import create_app
from aix_jupyter.backend.catalog import Catalog
from aix_jupyter.backend.jobs import JobContext, JobStore
from aix_jupyter.backend.models import builtin_specs
from aix_jupyter.backend.registry import register_model
from aix_jupyter.backend.server import BackendServer

TOKEN = "test-token-0123456789"

#: set by the "forever" streaming model when its generator is closed (stream disconnect test)
CLOSED = threading.Event()


def make_catalog() -> Catalog:
    catalog = Catalog(builtin_specs())

    @register_model(id="test/fail", catalog=catalog)
    def fail(text: str) -> str:
        raise ZeroDivisionError("the model divided by zero")

    @register_model(id="test/tokens", catalog=catalog, function="text-generation")
    def tokens(text: str, count: int = 5):
        """Streams one word per chunk."""
        for i in range(count):
            yield f"{text}{i} "

    @register_model(id="test/forever", catalog=catalog)
    def forever(text: str, ctx: JobContext):
        try:
            i = 0
            while True:
                yield f"{i} "
                i += 1
                ctx.sleep(0.05)
        finally:
            CLOSED.set()

    @register_model(id="test/busy", catalog=catalog, concurrency=1)
    def busy(seconds: float = 1.0) -> int:
        """Pure-Python CPU work (holds the GIL as much as Python code can)."""
        end, n = time.monotonic() + seconds, 0
        while time.monotonic() < end:
            n += 1
        return n

    @register_model(id="test/sleepy", catalog=catalog, concurrency=1, sync_wait=0.1)
    def sleepy(seconds: float, progress) -> str:
        steps = 10
        for i in range(steps):
            progress(i, steps)
            time.sleep(seconds / steps)
        return "rested"

    @register_model(id="test/big", catalog=catalog, concurrency=4)
    def big(size: int) -> str:
        """A result of ``size`` characters (memory bounds)."""
        return "x" * size

    @register_model(id="test/surrogate", catalog=catalog, function="text-generation")
    def surrogate(text: str):
        """Streams text that UTF-8 cannot encode (a lone surrogate), as a broken tokenizer might."""
        yield text
        yield "\ud800"
        yield "!"

    return catalog


def start_server(**options) -> BackendServer:
    job_options = ("max_pending", "ttl", "max_kept_bytes")
    jobs = JobStore(**{k: options.pop(k) for k in job_options if k in options})
    app = create_app(make_catalog(), token=TOKEN, jobs=jobs, **options)
    return BackendServer(app, token=TOKEN).start()


@pytest.fixture(scope="module")
def server() -> Iterator[BackendServer]:
    srv = start_server(sync_wait=1.0)
    yield srv
    srv.stop()


@pytest.fixture
def client(server: BackendServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers={"x-api-key": TOKEN}, timeout=30) as c:
        yield c


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
