"""The parameter schema: the wire's ``params`` list parsed into pydantic models.

This is the single description of a model's inputs. It drives validation before a request is
sent, the widget's controls, the magic's option parsing and completion, and help text.

Wire form of one entry (PROTOCOL.md)::

    {"name", "required", "isFixed", "values": [{"value", "label"}], "defaultValues": [...],
     "availableOptions": [{"value", "label"}], "dataType", "dataSubType", "multipleValues"}

plus optional extensions this project reads and writes (ignored by other clients):
``description``, ``minValue``, ``maxValue``, ``step``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aix_jupyter.core.errors import ParameterError

NUMBER_TYPES = frozenset({"number", "integer", "float"})
MEDIA_TYPES = frozenset({"audio", "image", "video", "file"})
TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})


class ParameterOption(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    value: Any
    label: str | None = None


def _unwrap(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


class Parameter(BaseModel):
    """One entry of a model's ``params`` schema."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, validate_assignment=True)

    name: str
    required: bool | None = False
    is_fixed: bool = Field(False, alias="isFixed")
    values: list[ParameterOption] = Field(default_factory=list)
    default_values: list[Any] = Field(default_factory=list, alias="defaultValues")
    available_options: list[ParameterOption] = Field(default_factory=list, alias="availableOptions")
    data_type: str = Field("text", alias="dataType")
    data_sub_type: str | None = Field(None, alias="dataSubType")
    multiple_values: bool = Field(False, alias="multipleValues")
    description: str | None = None
    min_value: float | None = Field(None, alias="minValue")
    max_value: float | None = Field(None, alias="maxValue")
    step: float | None = None

    # -- values ---------------------------------------------------------------------------------
    @property
    def default(self) -> Any:
        """The default value (a list when the parameter takes several), or None."""
        defaults = [_unwrap(v.get("value") if isinstance(v, dict) else v) for v in self.default_values]
        if not defaults:
            return None
        return defaults if self.multiple_values else defaults[0]

    @property
    def value(self) -> Any:
        """The value set on this parameter, else its default."""
        if self.values:
            vals = [o.value for o in self.values]
            return vals if self.multiple_values else vals[0]
        return self.default

    @property
    def is_set(self) -> bool:
        return bool(self.values)

    @property
    def is_number(self) -> bool:
        return self.data_type in NUMBER_TYPES

    @property
    def is_integer(self) -> bool:
        return self.data_type == "integer" or (self.is_number and self.data_sub_type in ("integer", "int"))

    @property
    def options(self) -> list[Any]:
        return [o.value for o in self.available_options]

    def set(self, value: Any) -> None:
        """Validate and set the value (``None`` unsets it)."""
        if value is None:
            self.values = []
            return
        checked = self.check(value)
        items = checked if isinstance(checked, list) else [checked]
        self.values = [ParameterOption(value=v) for v in items]

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
        """``name: value or Not set (Required) [Fixed] [dataType]`` (the SDK's text form)."""
        shown = "Not set" if self.value is None else repr(self.value)
        text = f"{self.name}: {shown}"
        if self.required:
            text += " (Required)"
        if self.is_fixed:
            text += " [Fixed]"
        return text + f" [{self.data_type}]"

    def help(self) -> str:
        """One line of help generated from the schema (used by the magic and the widget)."""
        parts = [self.data_type + (f"/{self.data_sub_type}" if self.data_sub_type else "")]
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
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


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

    ``params.temperature`` / ``params["temperature"]`` read a parameter; ``params.temperature = 0.2``
    sets its value (validated); an undefined name is an error naming the valid ones.
    """

    __slots__ = ("_params",)
    _params: dict[str, Parameter]

    def __init__(self, params: Mapping[str, Any] | list[Any] | None = None) -> None:
        parsed: dict[str, Parameter] = {}
        if isinstance(params, Mapping):
            items: list[Any] = [
                p if isinstance(p, Parameter) else {"name": name, **dict(p)} for name, p in params.items()
            ]
        else:
            items = list(params or [])
        for item in items:
            param = item if isinstance(item, Parameter) else Parameter.model_validate(item)
            parsed[param.name] = param
        object.__setattr__(self, "_params", parsed)

    @classmethod
    def from_wire(cls, params: list[dict[str, Any]] | None) -> ModelParameters:
        return cls(params or [])

    def to_wire(self) -> list[dict[str, Any]]:
        return [p.to_wire() for p in self._params.values()]

    # Mapping
    def __getitem__(self, name: str) -> Parameter:
        try:
            return self._params[name]
        except KeyError:
            raise self._unknown(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._params

    def get(self, name: str, default: Any = None) -> Any:
        return self._params.get(name, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __getattr__(self, name: str) -> Parameter:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self._params[name]
        except KeyError:
            raise self._unknown(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name].set(value)

    def __setitem__(self, name: str, value: Any) -> None:
        self[name].set(value)

    def _unknown(self, name: str) -> ParameterError:
        valid = ", ".join(self._params) or "none"
        return ParameterError(f"unknown parameter '{name}'; valid parameters: {valid}", parameter=name)

    def __str__(self) -> str:
        if not self._params:
            return "No parameters defined"
        return "Parameters:\n" + "\n".join("  " + p.describe() for p in self._params.values())

    def __repr__(self) -> str:
        return f"ModelParameters({', '.join(self._params)})"

    def to_dict(self) -> dict[str, Any]:
        """Current values of the parameters that are set (what the SDK's ``to_dict`` gives)."""
        return {name: p.value for name, p in self._params.items() if p.is_set}

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
        for param in self._params.values():
            if not param.required or param.name in checked or param.value is not None:
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
            if name in self._params:
                return self._params[name]
        for param in self._params.values():
            if param.required and (param.data_type in MEDIA_TYPES or param.data_type == "text"):
                return param
        return None
