"""Structured output: an LLM run's ``response_format``, on the wire and as a validated answer.

``response_format`` takes what the SDK's ``LLM.run`` takes:

* a string: sent as is; ``"json"`` / ``"json_object"`` ask for any JSON value (parsed), a string that
  is a JSON object is a schema; any other string (``"text"``) is a hint that nothing is checked;
* a JSON-schema dict, bare or OpenAI's ``{"type": "json_schema", "json_schema": {"schema": ...}}``
  (``{"type": "json_object"}`` asks for any JSON, ``{"type": "text"}`` for nothing): sent as is;
* a pydantic model class: sent as its JSON schema (``model_json_schema()``, as the SDK's agents
  send an ``expected_output`` class; the SDK's ``LLM.run`` cannot send a class at all).

The answer of a run with a format is checked when it ends: one that is not valid JSON, or does not
match the schema, is FAILED with its text kept in ``data`` and the first violation in
``error_message`` (never a silent wrong object); a valid one carries the object in
``ModelResponse.parsed`` (an instance of the class, or the parsed JSON). Platform models that ignore
the format are checked all the same.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aix_jupyter.core.enums import ResponseStatus
from aix_jupyter.core.errors import ParameterError
from aix_jupyter.core.marks import carry, recall_of
from aix_jupyter.core.protocol import one_line, plain
from aix_jupyter.core.response import ModelResponse

JSON_WORDS = frozenset({"json", "json_object"})
UNCHANGED_FIELDS = ("used_credits", "run_time", "usage", "url", "error_code", "asset")


def _pydantic_class(value: Any) -> type | None:
    """``value`` when it is a pydantic model class (pydantic imported only if it is loaded)."""
    if not isinstance(value, type):
        return None
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and issubclass(value, pydantic.BaseModel):
        return value
    return None


@dataclass(frozen=True)
class ResponseFormat:
    """A run's ``response_format``: what goes on the wire, and how its answer is checked.

    ``wire``: the value sent; ``schema``: the JSON schema the answer must match (None: any JSON
    when ``json`` is true, else nothing is checked); ``model``: the pydantic class to build.
    """

    wire: Any
    schema: dict[str, Any] | None = None
    json: bool = False
    model: type | None = None

    @classmethod
    def of(cls, value: Any) -> ResponseFormat | None:
        """The format for ``value`` (None for None); a value of no known form raises ParameterError."""
        if value is None or isinstance(value, ResponseFormat):
            return value
        model = _pydantic_class(value)
        if model is not None:
            try:
                schema = model.model_json_schema()  # type: ignore[attr-defined]
            except Exception as exc:  # pydantic cannot describe a field's type
                raise ParameterError(
                    f"response_format: {model.__name__} has no JSON schema ({one_line(exc)})",
                    parameter="response_format",
                ) from None
            return cls(schema, schema, True, model)
        if isinstance(value, str):
            if value.strip().lower() in JSON_WORDS:
                return cls(value, None, True)
            try:
                parsed = json.loads(value)
            except ValueError:
                return cls(value)  # a free-form hint ("text"): sent, nothing to check
            if isinstance(parsed, dict):
                return cls(value, _checked_schema(_schema_of(parsed)), True)
            return cls(value)
        if isinstance(value, Mapping):
            wire = plain(value, "response_format")  # a JSON-ready copy (the caller's dict is never changed)
            kind = wire.get("type")
            if kind == "text" and len(wire) == 1:
                return cls(wire)
            if kind == "json_object":
                return cls(wire, None, True)
            return cls(wire, _checked_schema(_schema_of(wire)), True)
        raise ParameterError(
            f"response_format: expected a string, a JSON-schema dict or a pydantic model class, got "
            f"{type(value).__name__}",
            parameter="response_format",
        )

    def check(self, response: ModelResponse) -> ModelResponse:
        """``response`` with ``parsed`` set, or FAILED (text kept) when its answer does not match."""
        if not self.json or response.status is not ResponseStatus.SUCCESS:
            return response
        return self.check_text(response, response.data)

    def check_text(self, response: ModelResponse, text: Any) -> ModelResponse:
        """``response`` for the answer ``text`` (a stream's whole text): ``parsed`` set, or FAILED."""
        try:
            value = self.parse(text)
        except ValueError as exc:
            return _failed(response, text, str(exc))
        response._parsed = value  # type: ignore[attr-defined]
        return response

    def parse(self, text: Any) -> Any:
        """The validated object of the answer ``text``; ValueError says what is wrong with it."""
        if isinstance(text, str):
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise ValueError(f"the answer is not valid JSON ({exc}): {_preview(text)}") from None
        else:
            value = text  # a server that answers with the object itself
        if self.schema is not None:
            violation = first_violation(self.schema, value)
            if violation is not None:
                raise ValueError(f"the answer does not match the response_format: {violation}")
        if self.model is not None:
            try:
                return self.model.model_validate(value)  # type: ignore[attr-defined]
            except Exception as exc:  # pydantic's ValidationError (beyond the JSON schema)
                raise ValueError(
                    f"the answer does not match {self.model.__name__}: {one_line(exc)}"
                ) from None
        return value


def _schema_of(value: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON schema inside an OpenAI ``{"type": "json_schema", "json_schema": {...}}``, else ``value``."""
    if value.get("type") == "json_schema" and isinstance(value.get("json_schema"), Mapping):
        inner = value["json_schema"]
        schema = inner.get("schema", {})
        if not isinstance(schema, Mapping):
            raise ParameterError(
                "response_format: json_schema.schema must be a JSON-schema object",
                parameter="response_format",
            )
        return dict(schema)
    return dict(value)


def _checked_schema(schema: dict[str, Any]) -> dict[str, Any]:
    import jsonschema

    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ParameterError(
            f"response_format is not a valid JSON schema: {one_line(exc.message)}",
            parameter="response_format",
        ) from None
    return schema


def first_violation(schema: Mapping[str, Any], value: Any) -> str | None:
    """The first place where ``value`` breaks ``schema`` (``where: what``), or None when it matches."""
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return None
    error = errors[0]
    where = "/".join(str(p) for p in error.absolute_path) or "(the whole answer)"
    return one_line(f"{where}: {error.message}")


def _preview(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _failed(response: ModelResponse, text: Any, message: str) -> ModelResponse:
    out = ModelResponse(
        ResponseStatus.FAILED,
        data=text,
        details=response.details,
        completed=True,
        error_message=one_line(message),
        **{name: getattr(response, name) for name in UNCHANGED_FIELDS},
        **response.additional_fields,
    )
    return carry(out, recall_of(response))
