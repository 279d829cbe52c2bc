"""@register_model: signatures become schemas; plain, async and generator functions are served."""

from __future__ import annotations

import asyncio
import enum
from typing import Annotated, Literal

import annotated_types
import httpx
import pytest
from pydantic import Field

import aix_jupyter
from aix_jupyter.backend.catalog import Catalog
from aix_jupyter.backend.jobs import JobContext, report_progress
from aix_jupyter.backend.models import builtin_specs
from aix_jupyter.backend.registry import (
    RegistrationError,
    model_spec_from_function,
    parse_docstring,
    register_model,
    unregister_model,
)
from aix_jupyter.core.errors import AixError


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


def wire(func, **kwargs) -> dict[str, dict]:
    spec = model_spec_from_function(func, **kwargs)
    return {p["name"]: p for p in spec.params.to_wire()}


def test_register_model_is_exported_lazily():
    assert aix_jupyter.register_model is register_model


def test_signature_becomes_the_params_schema():
    def summarise(
        text: str,
        ratio: Annotated[float, Field(ge=0.1, le=0.9, description="How much to keep.")] = 0.5,
        sentences: Annotated[int, annotated_types.Interval(ge=1, le=10)] = 3,
        style: Literal["bullets", "prose"] = "prose",
        colour: Colour = Colour.RED,
        shout: bool = False,
        tags: list[str] | None = None,
        extra: dict | None = None,
    ) -> str:
        """Summarise a text.

        Longer explanation that continues here.

        Args:
            text: The text to summarise.
            style (str): Bullets or prose,
                as you like.
        """
        return text

    params = wire(summarise)
    assert list(params) == ["text", "ratio", "sentences", "style", "colour", "shout", "tags", "extra"]
    assert params["text"] == {
        **params["text"],
        "dataType": "text",
        "required": True,
        "description": "The text to summarise.",
    }
    assert params["ratio"]["dataType"] == "number" and params["ratio"]["required"] is False
    assert (params["ratio"]["minValue"], params["ratio"]["maxValue"]) == (0.1, 0.9)
    assert params["ratio"]["defaultValues"] == [{"value": 0.5}]
    assert params["ratio"]["description"] == "How much to keep."
    assert params["sentences"]["dataSubType"] == "integer" and params["sentences"]["maxValue"] == 10
    assert [o["value"] for o in params["style"]["availableOptions"]] == ["bullets", "prose"]
    assert params["style"]["description"] == "Bullets or prose, as you like."
    assert [o["value"] for o in params["colour"]["availableOptions"]] == ["red", "blue"]
    assert params["colour"]["defaultValues"] == [{"value": "red"}]
    assert params["shout"]["dataType"] == "boolean" and params["shout"]["defaultValues"] == [{"value": False}]
    assert params["tags"]["multipleValues"] is True and params["tags"]["required"] is False
    assert params["extra"]["dataType"] == "json"
    spec = model_spec_from_function(summarise)
    assert spec.id == "local/summarise" and spec.primary == "text" and spec.function == "utilities"
    assert spec.description == "Summarise a text. Longer explanation that continues here."
    assert spec.streaming is False and spec.builtin is False


def test_field_as_default_and_injected_parameters_stay_out_of_the_schema():
    def count(n: int = Field(5, ge=1, le=100), progress=None, ctx: JobContext | None = None) -> int:
        return n

    params = wire(count)
    assert list(params) == ["n"]
    assert params["n"]["defaultValues"] == [{"value": 5}] and params["n"]["minValue"] == 1


def test_generators_stream_and_options_are_applied():
    def words(text: str):
        yield from text.split()

    async def awords(text: str):
        for w in text.split():
            yield w

    assert model_spec_from_function(words).streaming is True
    assert model_spec_from_function(awords).streaming is True
    spec = model_spec_from_function(
        words, id="me/words", name="Words", function="text-generation", concurrency=3, sync_wait=0.1
    )
    assert (spec.id, spec.name, spec.function, spec.concurrency, spec.sync_wait) == (
        "me/words",
        "Words",
        "text-generation",
        3,
        0.1,
    )
    assert spec.to_wire()["supportsStreaming"] is True


def star_args(*args: str) -> str:
    return ""


def star_kwargs(text: str, **kw: str) -> str:
    return ""


def no_input() -> str:
    return ""


def no_input_but_text(text: str) -> str:
    return text


@pytest.mark.parametrize(
    ("func", "message"),
    [(star_args, r"star_args\(args\): \*args"), (star_kwargs, r"\*\*kwargs"), (no_input, "takes no input")],
)
def test_unsupported_signatures_raise_one_line_errors(func, message):
    with pytest.raises(RegistrationError, match=message) as info:
        model_spec_from_function(func)
    assert isinstance(info.value, AixError) and "\n" not in str(info.value)


def test_unsupported_type_names_the_parameter():
    def f(when: complex) -> str:
        return ""

    with pytest.raises(RegistrationError, match=r"f\(when\): unsupported type"):
        model_spec_from_function(f)
    with pytest.raises(RegistrationError, match="invalid model id"):
        model_spec_from_function(no_input_but_text, id="/bad id")
    with pytest.raises(RegistrationError, match="pass id="):
        model_spec_from_function(lambda x: x)


def test_builtin_ids_cannot_be_taken_and_reregistering_replaces():
    catalog = Catalog(builtin_specs())
    with pytest.raises(RegistrationError, match="built-in"):
        register_model(id="local/countdown", catalog=catalog)(lambda seconds: seconds)

    @register_model(catalog=catalog)
    def echo(text: str) -> str:
        return text

    first = catalog.get("local/echo")
    assert echo("x") == "x" and echo.aix_model_id == "local/echo"

    @register_model(catalog=catalog)
    def echo(text: str, times: int = 2) -> str:
        return text * times

    assert catalog.get("local/echo") is not first
    unregister_model(echo, catalog=catalog)
    assert "local/echo" not in catalog
    with pytest.raises(RegistrationError, match="not found"):
        unregister_model("local/echo", catalog=catalog)


def test_docstring_parser():
    description, helps = parse_docstring("""Do a thing.

    Args:
        a: first
            continued
        b (int): second

    Returns:
        nothing: really
    """)
    assert description == "Do a thing."
    assert helps == {"a": "first continued", "b": "second"}


def test_registered_functions_are_served_plain_async_and_streaming(server, client):
    catalog = server.state.catalog

    @register_model(id="reg/add", catalog=catalog)
    def add(a: int, b: int = 2) -> int:
        return a + b

    @register_model(id="reg/slow-upper", catalog=catalog)
    async def slow_upper(text: str) -> str:
        await asyncio.sleep(0.01)
        return text.upper()

    @register_model(id="reg/spell", catalog=catalog)
    async def spell(text: str):
        for ch in text:
            await asyncio.sleep(0)
            yield ch

    @register_model(id="reg/steps", catalog=catalog, sync_wait=0)
    def steps(n: int, ctx: JobContext) -> str:
        for i in range(n):
            report_progress(i, n)
            ctx.sleep(0.05)
        return f"{n} steps"

    @register_model(id="reg/greet", catalog=catalog)
    def greet(name: str, title: str | None, tags: list[str] | None = None) -> str:
        return " ".join(filter(None, [title, name, *(tags or [])]))

    assert client.post("/api/v2/execute/reg/greet", json={"data": "Ada"}).json()["data"] == "Ada"
    reply = client.post("/api/v2/execute/reg/greet", json={"data": "Ada", "title": "Dr", "tags": ["x", "y"]})
    assert reply.json()["data"] == "Dr Ada x y"
    assert client.post("/api/v2/execute/reg/add", json={"data": 40}).json()["data"] == 42
    assert client.post("/api/v2/execute/reg/add", json={"a": 1, "b": 1}).json()["data"] == 2
    assert client.post("/api/v2/execute/reg/add", json={"data": "1.5"}).status_code == 490
    assert client.post("/api/v2/execute/reg/slow-upper", json={"data": "hi"}).json()["data"] == "HI"
    with client.stream(
        "POST", "/api/v2/execute/reg/spell", json={"data": "abc", "options": {"stream": True}}
    ) as r:
        lines = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert lines == ['data: {"data": "a"}', 'data: {"data": "b"}', 'data: {"data": "c"}', "data: [DONE]"]
    started = client.post("/api/v2/execute/reg/steps", json={"data": 10}).json()
    assert started["status"] == "IN_PROGRESS"  # sync_wait=0: straight to a poll URL
    progress = []
    while not (body := client.get(started["data"]).json())["completed"]:
        progress.append(body.get("progress"))
    assert body["data"] == "10 steps" and any(p and 0 < p < 1 for p in progress)
    meta = httpx.get(f"{server.base_url}/sdk/models/reg/add", headers=client.headers).json()
    assert meta["params"][0]["name"] == "a" and meta["builtin"] is False
    assert meta["code"].startswith("python:")
    for model_id in ("reg/add", "reg/greet", "reg/slow-upper", "reg/spell", "reg/steps"):
        assert client.delete(f"/sdk/models/{model_id}").status_code == 200


def test_register_model_on_the_default_catalog_is_served_by_the_embedded_backend():
    from aix_jupyter.backend import embedded

    @register_model
    def reverse_words(text: str) -> str:
        """Reverse the order of the words."""
        return " ".join(reversed(text.split()))

    try:
        url, token = embedded.ensure_running()
        reply = httpx.post(
            f"{url}/api/v2/execute/local/reverse-words",
            json={"data": "one two three"},
            headers={"x-api-key": token},
        )
        assert reply.json()["data"] == "three two one"
    finally:
        unregister_model(reverse_words)
        embedded.stop()
