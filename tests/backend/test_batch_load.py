"""The embedded backend under a batch: concurrency=16 without a 5xx, 429 + Retry-After at the job cap."""

from __future__ import annotations

import httpx
import pytest

from aix_jupyter.core.batch import BatchEvent
from aix_jupyter.core.model import Model
from tests.backend.conftest import TOKEN, start_server

pytestmark = pytest.mark.timeout(120)


def model_on(server, model_id: str) -> Model:
    return Model(model_id, url=f"{server.base_url}/api/v1/execute", api_key=TOKEN)


@pytest.mark.parametrize(
    ("model_id", "inputs"),
    [
        ("local/sentiment-vader", [f"I {'love' if i % 2 else 'hate'} item {i}" for i in range(64)]),
        # 0.7 s each: longer than the model's sync wait, so each run is a job that is polled
        ("local/countdown", [{"data": f"n{i}", "seconds": 0.7} for i in range(32)]),
    ],
    ids=["answered", "polled"],
)
def test_builtin_models_serve_a_batch_at_concurrency_16_without_errors(model_id, inputs):
    events: list[BatchEvent] = []
    with start_server() as server:
        result = model_on(server, model_id).map(inputs, concurrency=16, on_event=events.append)
    assert result.ok, result  # a 5xx would be a FAILED item
    assert not [e for e in events if e.kind == "concurrency"]  # and no 429/503 pushed back
    assert max(e.in_flight for e in events) == 16
    if model_id == "local/countdown":
        assert result.data == [f"n{i}" for i in range(32)]
    else:
        assert set(result.data) <= {"POSITIVE", "NEGATIVE", "NEUTRAL"}


def test_the_job_cap_answers_429_with_retry_after_and_a_batch_rides_it_out():
    with start_server(max_pending=3) as server:
        url = f"{server.base_url}/api/v1/execute/local/countdown"
        headers = {"x-api-key": TOKEN}
        with httpx.Client() as client:
            started = [client.post(url, json={"seconds": 0.5}, headers=headers) for _ in range(3)]
            refused = client.post(url, json={"seconds": 0.5}, headers=headers)
        assert [r.status_code for r in started] == [200, 200, 200]
        assert refused.status_code == 429
        assert float(refused.headers["retry-after"]) > 0
        assert "limit 3" in refused.json()["error"]

        events: list[BatchEvent] = []
        inputs = [{"data": f"n{i}", "seconds": 0.3} for i in range(12)]
        result = model_on(server, "local/countdown").map(inputs, concurrency=8, on_event=events.append)
    assert result.ok, result
    assert result.data == [f"n{i}" for i in range(12)]
    lowered = [e.concurrency for e in events if e.kind == "concurrency"]
    assert lowered and min(lowered) < 8  # the cap pushed back and the batch slowed down


def test_starting_a_started_server_again_does_not_serve_it_from_a_second_loop():
    import threading

    server = start_server()
    try:
        assert server.start() is server
        with server:  # __enter__ starts too
            name = f"aix-backend-{server.port}"
            assert [t.name for t in threading.enumerate()].count(name) == 1
    finally:
        server.stop()
