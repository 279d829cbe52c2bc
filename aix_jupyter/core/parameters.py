"""The parameter schema: the wire's ``params`` list parsed into pydantic models.

This is the single description of a model's inputs. It drives validation before a request is
sent, the widget's controls, the magic's option parsing and completion, and help text.

Wire form of one entry (PROTOCOL.md)::

    {"name", "required", "isFixed", "values": [{"value", "label"}], "defaultValues": [...],
     "availableOptions": [{"value", "label"}], "dataType", "dataSubType", "multipleValues"}

plus optional extensions this project reads and writes (ignored by other clients):
``description``, ``minValue``, ``maxValue``, ``step``.

``ModelParameters`` and ``Parameter`` have the public surface of the SDK 0.2.48's (its field names,
``to_dict``, ``to_list``, ``get_parameter``, ``str``, attribute access to values); validation, the
mapping of name to ``Parameter`` and the extensions come on top. tests/core/test_differential.py
runs the same calls through both and lists where they differ on purpose.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aix_jupyter.core.errors import ParameterError, UnknownParameterError

NUMBER_TYPES = frozenset({"number", "integer", "float"})
MEDIA_TYPES = frozenset({"audio", "image", "video", "file"})
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})
#: the keys of one parameter in the SDK's ``ModelParameters.to_dict()``, in its order
SDK_KEYS = (
    "name",
    "required",
    "value",
    "isFixed",
    "values",
    "defaultValues",
    "availableOptions",
    "dataType",
    "dataSubType",
    "multipleValues",
)


def _unwrap(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


class Parameter(BaseModel):
    """One entry of a model's ``params`` schema, with the SDK's field names.

    As the SDK's ``Parameter``: ``value`` is the value the user set (None until then), ``values``
    the server's preset values and ``default_values`` its defaults, both kept as sent. On top:
    ``set()`` (validated), ``current`` (the value a run uses), ``check()`` and ``help()``.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True, validate_assignment=True)

    name: str
    required: bool | None = False
    value: Any = None
    is_fixed: bool | None = Field(False, alias="isFixed")
    values: list[dict[str, Any]] = Field(default_factory=list)
    default_values: list[Any] = Field(default_factory=list, alias="defaultValues")
    available_options: list[dict[str, Any]] = Field(default_factory=list, alias="availableOptions")
    data_type: str | None = Field(None, alias="dataType")
    data_sub_type: str | None = Field(None, alias="dataSubType")
    multiple_values: bool | None = Field(False, alias="multipleValues")
    description: str | None = None
    min_value: float | None = Field(None, alias="minValue")
    max_value: float | None = Field(None, alias="maxValue")
    step: float | None = None

    @field_validator("values", "default_values", "available_options", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return [] if value is None else value

    @field_validator("values", "available_options", mode="before")
    @classmethod
    def _options(cls, value: Any) -> Any:
        """``[{"value", "label"}, ...]`` as sent (a bare value is read as ``{"value": it}``)."""
        if not isinstance(value, list | tuple):
            return value
        return [dict(o) if isinstance(o, Mapping) else {"value": o} for o in value]

    # -- values ---------------------------------------------------------------------------------
    @property
    def default(self) -> Any:
        """The default value (a list when the parameter takes several), or None."""
        defaults = [_unwrap(v.get("value") if isinstance(v, dict) else v) for v in self.default_values]
        if not defaults:
            return None
        return defaults if self.multiple_values else defaults[0]

    @property
    def preset(self) -> Any:
        """The server's preset ``values`` (a list when the parameter takes several), or None."""
        if not self.values:
            return None
        vals = [o.get("value") for o in self.values]
        return vals if self.multiple_values else vals[0]

    @property
    def current(self) -> Any:
        """The value a run uses: the one set, else the preset, else the default (None: none)."""
        if self.value is not None:
            return self.value
        preset = self.preset
        return preset if preset is not None else self.default

    @property
    def is_set(self) -> bool:
        """True once a value is set (``set()``, ``params.x = v`` or ``value=``)."""
        return self.value is not None

    @property
    def is_number(self) -> bool:
        return self.data_type in NUMBER_TYPES

    @property
    def is_integer(self) -> bool:
        return self.data_type == "integer" or (self.is_number and self.data_sub_type in ("integer", "int"))

    @property
    def options(self) -> list[Any]:
        return [o.get("value") for o in self.available_options]

    def set(self, value: Any) -> None:
        """Validate and set the value (``None`` unsets it)."""
        self.value = None if value is None else self.check(value)

    # -- validation -----------------------------------------------------------------------------
    def check(self, value: Any) -> Any:
        """Return ``value`` coerced to this parameter's type, or raise a one-line ParameterError.

        Strings are accepted for numbers and booleans (the magic's options arrive as text).
        """
        value = _unwrap(value)
        if self.multiple_values:
            items = value if isinstance(value, list | tuple | set) else [value]
            return [self._check_one(v) for v in items]
        if isinstance(value, list | tuple) and not (self.data_type == "json"):
            raise self._error(f"takes one value, got a list of {len(value)}")
        return self._check_one(value)

    def _error(self, what: str) -> ParameterError:
        return ParameterError(f"parameter '{self.name}' {what}", parameter=self.name)

    def _check_one(self, value: Any) -> Any:
        value = _unwrap(value)
        kind = self.data_type
        if kind == "boolean":
            value = self._to_bool(value)
        elif self.is_number:
            value = self._to_number(value)
        elif kind in ("text", "label") and not isinstance(value, str | int | float):
            raise self._error(f"expects text, got {type(value).__name__} {_short(value)}")
        if self.available_options:
            options = self.options
            if value not in options and str(value) not in [str(o) for o in options]:
                shown = ", ".join(str(o) for o in options[:12]) + (", ..." if len(options) > 12 else "")
                raise self._error(f"must be one of {shown}; got {_short(value)}")
            value = next((o for o in options if o == value or str(o) == str(value)), value)
        return value

    def _to_bool(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
            return value.strip().lower() in TRUE_WORDS
        raise self._error(f"expects true or false, got {_short(value)}")

    def _to_number(self, value: Any) -> int | float:
        if isinstance(value, bool):
            raise self._error(f"expects a number, got {value}")
        if isinstance(value, str):
            try:
                value = float(value.strip()) if not self.is_integer else _parse_int(value.strip())
            except ValueError:
                raise self._error(
                    f"expects {'an integer' if self.is_integer else 'a number'}, got {_short(value)}"
                ) from None
        if not isinstance(value, int | float) or (isinstance(value, float) and not math.isfinite(value)):
            raise self._error(f"expects a number, got {_short(value)}")
        if self.is_integer:
            if isinstance(value, float) and not value.is_integer():
                raise self._error(f"expects an integer, got {value}")
            value = int(value)
        if self.min_value is not None and value < self.min_value:
            raise self._error(f"must be >= {_num(self.min_value)}, got {_num(value)}")
        if self.max_value is not None and value > self.max_value:
            raise self._error(f"must be <= {_num(self.max_value)}, got {_num(value)}")
        return value

    # -- text -----------------------------------------------------------------------------------
    def describe(self) -> str:
        """``name: value or Not set (Required|Optional) [Fixed] [dataType] Options: [...]`` as the SDK."""
        text = f"{self.name}: {'Not set' if self.value is None else self.value}"
        text += " (Required)" if self.required else " (Optional)"
        if self.is_fixed:
            text += " [Fixed]"
        if self.data_type:
            text += f" [{self.data_type}]"
        if self.available_options:
            text += f" Options: {self.options}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """The SDK's description of one parameter (the entry of ``ModelParameters.to_dict()``)."""
        fields = (
            *(self.name, self.required, self.value, self.is_fixed, self.values, self.default_values),
            *(self.available_options, self.data_type, self.data_sub_type, self.multiple_values),
        )
        return dict(zip(SDK_KEYS, fields, strict=True))

    def extensions(self) -> dict[str, Any]:
        """This project's keys of the wire entry (``description``, ``minValue``, ...), beyond the SDK's."""
        return {k: v for k, v in self.to_wire().items() if k not in SDK_KEYS}

    def __repr__(self) -> str:
        fields = (
            ("name", self.name),
            ("required", self.required),
            ("value", self.value),
            ("is_fixed", self.is_fixed),
            ("values", self.values),
            ("default_values", self.default_values),
            ("available_options", self.available_options),
            ("data_type", self.data_type),
            ("data_sub_type", self.data_sub_type),
            ("multiple_values", self.multiple_values),
        )
        return f"Parameter({', '.join(f'{k}={v!r}' for k, v in fields)})"

    def help(self) -> str:
        """One line of help generated from the schema (used by the magic and the widget)."""
        parts = [(self.data_type or "any") + (f"/{self.data_sub_type}" if self.data_sub_type else "")]
        if self.multiple_values:
            parts.append("several values")
        if self.available_options:
            parts.append("one of " + ", ".join(str(o) for o in self.options))
        if self.min_value is not None or self.max_value is not None:
            lo = "" if self.min_value is None else _num(self.min_value)
            hi = "" if self.max_value is None else _num(self.max_value)
            parts.append(f"range [{lo}, {hi}]")
        if self.default is not None:
            parts.append(f"default {self.default!r}")
        if self.required:
            parts.append("required")
        if self.is_fixed:
            parts.append("fixed")
        head = f"{self.name} ({'; '.join(parts)})"
        return f"{head}: {self.description}" if self.description else head

    def to_wire(self) -> dict[str, Any]:
        """The wire entry (PROTOCOL.md) with this project's extensions; the set ``value`` is not in it."""
        return self.model_dump(by_alias=True, exclude_none=True, exclude={"value"}, mode="json")


def _parse_int(text: str) -> int:
    number = float(text)
    if not number.is_integer():
        raise ValueError(text)
    return int(number)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _short(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    text = repr(text) if isinstance(value, str) else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ModelParameters(Mapping[str, Parameter]):
    """A model's parameters keyed by name, as the SDK's ``ModelParameters``.

    The SDK's surface: ``params.temperature`` reads a parameter's set value (None until set),
    ``params.temperature = 0.2`` sets it (validated here), ``params.parameters`` is the dict of
    ``Parameter`` objects, ``get_parameter(name)``, ``to_dict()`` (every parameter's whole
    description), ``to_list()`` (the set values as ``[{"name", "value"}]``) and ``str()``.
    On top: a read-only mapping of name to ``Parameter`` (``params["temperature"]``), validation
    of a whole request, and the primary input. An undefined name is an error naming the valid ones.
    """

    __slots__ = ("parameters",)
    parameters: dict[str, Parameter]

    def __init__(self, input_params: Mapping[str, Any] | list[Any] | None = None) -> None:
        """``input_params``: the SDK's ``{name: entry}`` dict, or the wire's list of entries."""
        parsed: dict[str, Parameter] = {}
        if isinstance(input_params, Mapping):
            items: list[Any] = [
                p if isinstance(p, Parameter) else {**dict(p), "name": name}
                for name, p in input_params.items()
            ]
        else:
            items = list(input_params or [])
        for item in items:
            param = item if isinstance(item, Parameter) else Parameter.model_validate(item)
            parsed[param.name] = param
        object.__setattr__(self, "parameters", parsed)

    def to_wire(self) -> list[dict[str, Any]]:
        return [p.to_wire() for p in self.parameters.values()]

    # -- the SDK's surface ----------------------------------------------------------------------
    def get_parameter(self, name: str) -> Parameter | None:
        """The parameter called ``name``, or None."""
        return self.parameters.get(name)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Every parameter's whole description, keyed by name (the SDK's form)."""
        return {name: p.to_dict() for name, p in self.parameters.items()}

    def to_list(self) -> list[dict[str, Any]]:
        """The parameters that have a value set, as ``[{"name": ..., "value": ...}]``."""
        return [{"name": p.name, "value": p.value} for p in self.parameters.values() if p.value is not None]

    def __str__(self) -> str:
        if not self.parameters:
            return "No parameters defined"
        return "\n".join(["Parameters:", *("  - " + p.describe() for p in self.parameters.values())])

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self.parameters[name].value
        except KeyError:
            raise self._unknown(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "parameters":
            object.__setattr__(self, name, value)
            return
        self[name].set(value)

    # -- Mapping of name to Parameter -----------------------------------------------------------
    def __getitem__(self, name: str) -> Parameter:
        try:
            return self.parameters[name]
        except KeyError:
            raise self._unknown(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self.parameters

    def get(self, name: str, default: Any = None) -> Any:
        return self.parameters.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.parameters)

    def __len__(self) -> int:
        return len(self.parameters)

    def __setitem__(self, name: str, value: Any) -> None:
        self[name].set(value)

    def _unknown(self, name: str) -> UnknownParameterError:
        valid = ", ".join(self.parameters) or "none"
        return UnknownParameterError(f"unknown parameter '{name}'; valid parameters: {valid}", parameter=name)

    def __repr__(self) -> str:
        return f"ModelParameters({', '.join(self.parameters)})"

    # -- validation of a whole request --------------------------------------------------------
    def validate_request(
        self, parameters: Mapping[str, Any] | None, *, data_given: bool = True
    ) -> dict[str, Any]:
        """Check ``parameters`` against the schema and return the checked values (a new dict).

        Unknown names, wrong types and values outside the options raise a one-line ParameterError
        naming the parameter. A required parameter is satisfied by a value here, a value set on the
        parameter, a default, or (for the primary input) by ``data``.
        """
        checked: dict[str, Any] = {}
        for name, value in (parameters or {}).items():
            checked[name] = self[name].check(value)
        primary = self.primary_input()
        for param in self.parameters.values():
            if not param.required or param.name in checked or param.current is not None:
                continue
            if data_given and primary is not None and param.name == primary.name:
                continue
            raise ParameterError(
                f"missing required parameter '{param.name}' ({param.help()})", parameter=param.name
            )
        return checked

    def primary_input(self) -> Parameter | None:
        """The parameter that ``data`` fills: one named data/text, else the first required media/text one."""
        for name in ("data", "text"):
            if name in self.parameters:
                return self.parameters[name]
        for param in self.parameters.values():
            if param.required and (param.data_type in MEDIA_TYPES or param.data_type == "text"):
                return param
        return None
