"""compare(): several models on the same inputs, against the loopback batch server."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import aix_jupyter
from aix_jupyter import Comparison, Model, compare
from aix_jupyter.core.errors import ParameterError
from tests.core.batchserver import BatchServer
from tests.core.wireserver import default_metadata

pytestmark = pytest.mark.timeout(60)

TEXT_ONLY = [{"name": "text", "required": True, "dataType": "text"}]
NEEDS_LANGUAGE = [*TEXT_ONLY, {"name": "language", "required": True, "dataType": "text"}]


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> Iterator[BatchServer]:
    with BatchServer(latency=0.05) as server:
        monkeypatch.setenv("AIX_BACKEND_URL", server.url)
        server.models["plain"] = default_metadata("plain", params=TEXT_ONLY)
        server.models["strict"] = default_metadata("strict", params=NEEDS_LANGUAGE)
        yield server


def run(mode: str, *args: Any, **kw: Any) -> Comparison:
    if mode == "sync":
        return compare(*args, **kw)
    return asyncio.run(aix_jupyter.acompare(*args, **kw))


def posts_to(server: BatchServer, model_id: str) -> list[Any]:
    return [r.json() for r in server.seen("POST", f"/api/v2/execute/{model_id}")]


def test_a_parameter_goes_only_to_the_models_that_declare_it(mode: str, configured: BatchServer):
    result = run(mode, ["echo", "plain"], ["hi", "yo"], {"temperature": 0.2})
    assert result.model_ids == ["echo", "plain"] and result.ok
    assert result.responses["echo"].data == ["echo: hi", "echo: yo"]
    assert result.responses["plain"].data == ["echo: hi", "echo: yo"]
    assert all(body["temperature"] == 0.2 for body in posts_to(configured, "echo"))
    assert all("temperature" not in body for body in posts_to(configured, "plain"))


def test_a_parameter_no_model_declares_is_an_error_naming_it(configured: BatchServer):
    with pytest.raises(ParameterError, match="parameter 'top_k' is declared by none of the models"):
        compare(["echo", "plain"], "hi", {"top_k": 3})
    assert configured.seen("POST") == []


def test_a_model_that_cannot_take_the_input_fails_in_its_own_cell(mode: str, configured: BatchServer):
    result = run(mode, ["echo", "strict"], "hello")
    assert result.responses["echo"].ok
    strict = result.responses["strict"]
    assert strict.failed == [0] and "missing required parameter 'language'" in strict[0].error_message
    assert posts_to(configured, "strict") == []
    assert "missing required parameter" in repr(result)
    assert "color:#b00020" in result._repr_html_()


def test_models_may_be_given_as_models_and_run_at_the_same_time(configured: BatchServer):
    configured.latency = 0.3
    models = [Model(name, url=configured.run_url) for name in ("a", "b", "c")]
    result = compare(models, ["x", "y"], concurrency=6)
    assert result.ok
    assert configured.max_open == 6  # both inputs of all three models at once


def test_to_pandas_has_a_row_per_input_and_a_column_per_model(configured: BatchServer):
    pytest.importorskip("pandas")
    result = compare(["echo", "strict"], ["hi", "yo"])
    frame = result.to_pandas()
    assert list(frame.columns) == ["echo", "strict"] and list(frame.index) == ["hi", "yo"]
    assert frame.loc["yo", "echo"] == "echo: yo" and frame.loc["yo", "strict"] is None
    assert list(result.to_pandas("status")["strict"]) == ["FAILED", "FAILED"]
    with pytest.raises(ParameterError, match="field must be one of"):
        result.to_pandas("colour")


def test_a_series_input_keeps_its_index(configured: BatchServer):
    pd = pytest.importorskip("pandas")
    result = compare(["echo", "plain"], pd.Series(["a", "b"], index=[10, 20]))
    assert list(result.to_pandas().index) == [10, 20]


def test_to_pandas_without_pandas_says_so(monkeypatch: pytest.MonkeyPatch, configured: BatchServer):
    result = compare(["echo"], "hi")
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        result.to_pandas()


@pytest.mark.parametrize(
    ("models", "message"), [([], "at least one model"), (["echo", "echo"], "given twice"), ([3], "got int")]
)
def test_bad_model_lists_are_refused(configured: BatchServer, models: Any, message: str):
    with pytest.raises(ParameterError, match=message):
        compare(models, "hi")


# -- concurrency: a bound across all the models (and one per model, by name) ------------------------


@pytest.fixture
def three_slow(monkeypatch: pytest.MonkeyPatch) -> Iterator[BatchServer]:
    """Three models whose runs take 0.15 s; the server counts the runs in flight, in all and per model."""
    with BatchServer(latency=0.15) as server:
        monkeypatch.setenv("AIX_BACKEND_URL", server.url)
        for model_id in ("plain", "second"):
            server.models[model_id] = default_metadata(model_id, params=TEXT_ONLY)
        yield server


MODELS = ["echo", "plain", "second"]


def test_concurrency_bounds_the_jobs_in_flight_across_all_the_models(mode: str, three_slow: BatchServer):
    inputs = [f"x{i}" for i in range(8)]
    result = run(mode, MODELS, inputs, concurrency=4)
    assert result.ok and all(result.responses[m].data == [f"echo: {x}" for x in inputs] for m in MODELS)
    assert three_slow.max_open == 4  # reached, never exceeded (per model it alone would allow 12)
    # shared fairly: every model is under way before any model's inputs have all been sent
    order = [r.path.rsplit("/", 1)[1] for r in three_slow.seen("POST", "/api/v2/execute/")]
    assert set(order[:6]) == set(MODELS), order


def test_concurrency_per_model_bounds_each_model_as_well(mode: str, three_slow: BatchServer):
    inputs = [f"x{i}" for i in range(6)]
    result = run(mode, MODELS, inputs, concurrency=100, concurrency_per_model=2)
    assert result.ok
    assert all(three_slow.max_open_by_model[m] == 2 for m in MODELS), three_slow.max_open_by_model
    assert three_slow.max_open <= 6
    result = run(mode, MODELS, inputs, concurrency=3, concurrency_per_model=2)
    assert result.ok and three_slow.max_open <= 6


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency_per_model": 0}, "concurrency_per_model"),
        ({"concurrency_per_model": 1.5}, "concurrency_per_model"),
    ],
)
def test_bad_concurrencies_name_the_option(three_slow: BatchServer, options: dict[str, Any], name: str):
    with pytest.raises(ParameterError) as info:
        compare(MODELS, "hi", **options)
    assert str(info.value).startswith(f"{name} must be a whole number >= 1") and info.value.parameter == name
    assert three_slow.seen("POST") == []
