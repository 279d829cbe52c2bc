"""``ModelResponse``: the result of a run, a poll or one streamed chunk (SDK-compatible).

Fields, defaults, ``to_dict()`` order and ``repr`` as the SDK 0.2.48: ``status``, ``data=""``,
``details={}``, ``completed=False``, ``error_message=""``, ``used_credits=0.0``, ``run_time=0.0``,
``usage=None``, ``url=None``, ``error_code=None``, ``asset=None``; any other keyword is kept as an
additional field.

``r[key]``, ``r.get(key, default)`` and ``key in r`` look at the fields, then the additional
fields, then the wire aliases ``usedCredits`` / ``runTime``. ``r[key] = v`` works for existing
keys. ``to_dict()`` flattens the additional fields to the top level.

On purpose unlike the SDK (tests/core/test_differential.py lists each): ``status`` is always a
``ResponseStatus`` (text is parsed, unknown text is FAILED), ``==`` compares content (so a response
is not hashable), and ``repr`` cuts values longer than 200 characters.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from aix_jupyter.core.enums import ResponseStatus
from aix_jupyter.core.hooks import late

FIELDS: tuple[str, ...] = (
    "status",
    "data",
    "details",
    "completed",
    "error_message",
    "used_credits",
    "run_time",
    "usage",
    "url",
    "error_code",
    "asset",
)
ALIASES = {"usedCredits": "used_credits", "runTime": "run_time"}
#: the order of the SDK's ``to_dict()``
DICT_FIELDS: tuple[str, ...] = (*FIELDS[:8], "asset", "url", "error_code")


class _NoDetails:
    """The default of ``details``: a new ``{}`` each time (``details=None`` stays None, as in the SDK)."""

    def __repr__(self) -> str:
        return "{}"


_NO_DETAILS: Any = _NoDetails()


def _status(value: Any) -> ResponseStatus:
    if isinstance(value, ResponseStatus):
        return value
    try:
        return ResponseStatus(str(value).upper())
    except ValueError:
        return ResponseStatus.FAILED


_IN_PROGRESS = (
    ResponseStatus.IN_PROGRESS
)  # a module global: an enum member looked up on its class costs ~0.2 us


class ModelResponse:
    """Result of a model run. Plain object (cheap to build: one per streamed chunk)."""

    # ``_recall``: what the cache/cassette seam knows of this response (``core.recall.recall_of``);
    # ``_parsed``: the validated object of a structured answer (``parsed``, set by ``core.structured``)
    __slots__ = (*FIELDS, "_parsed", "_recall", "additional_fields")

    def __init__(
        self,
        status: ResponseStatus | str,
        data: Any = "",
        details: dict[str, Any] | list[Any] | None = _NO_DETAILS,
        completed: bool = False,
        error_message: str = "",
        used_credits: float = 0.0,
        run_time: float = 0.0,
        usage: dict[str, Any] | None = None,
        url: str | None = None,
        error_code: Any = None,
        asset: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.status = _status(status)
        self.data = data
        self.details = {} if details is _NO_DETAILS else details
        self.completed = completed
        if not error_message and kwargs.get("error"):
            error_message = str(kwargs["error"])
            if kwargs.get("supplierError"):
                error_message = f"{error_message} - {kwargs['supplierError']}"
        self.error_message = error_message
        self.used_credits = used_credits
        self.run_time = run_time
        self.usage = usage
        self.url = url
        self.error_code = error_code
        self.asset = asset
        self.additional_fields: dict[str, Any] = kwargs

    @classmethod
    def chunk(cls, text: Any) -> ModelResponse:
        """A streamed chunk: IN_PROGRESS with ``data=text`` (a fast path: one per chunk)."""
        self = cls.__new__(cls)
        self.status = _IN_PROGRESS
        self.data = text
        self.details = {}
        self.completed = False
        self.error_message = ""
        self.used_credits = 0.0
        self.run_time = 0.0
        self.usage = None
        self.url = None
        self.error_code = None
        self.asset = None
        self.additional_fields = {}
        return self

    # -- dict-style access ----------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        if key in FIELDS:
            return getattr(self, key)
        if key == "additional_fields":
            return self.additional_fields
        if key in self.additional_fields:
            return self.additional_fields[key]
        if key in ALIASES:
            return getattr(self, ALIASES[key])
        raise KeyError(f"Key '{key}' not found in ModelResponse.")

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (
            key in FIELDS or key in self.additional_fields or key in ALIASES or key == "additional_fields"
        )

    def __setitem__(self, key: str, value: Any) -> None:
        if key in FIELDS:
            setattr(self, key, _status(value) if key == "status" else value)
        elif key in self.additional_fields:
            self.additional_fields[key] = value
        elif key in ALIASES:
            setattr(self, ALIASES[key], value)
        else:
            raise KeyError(f"Key '{key}' not found in ModelResponse.")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelResponse):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    # -- text -----------------------------------------------------------------------------------
    def __repr__(self) -> str:
        """The SDK's form (text values quoted with ``'...'``, as it writes them); long values are cut."""
        parts = [f"status={self.status}"] if self.status else []
        if self.data:
            parts.append(f"data='{_short(self.data)}'")
        if self.details:
            parts.append(f"details={_short(self.details)}")
        if self.completed:
            parts.append(f"completed={self.completed}")
        if self.error_message:
            parts.append(f"error_message='{_short(self.error_message)}'")
        if self.used_credits:
            parts.append(f"used_credits={self.used_credits}")
        if self.run_time:
            parts.append(f"run_time={self.run_time}")
        if self.usage:
            parts.append(f"usage={_short(self.usage)}")
        if self.asset:
            parts.append(f"asset={_short(self.asset)}")
        if self.url:
            parts.append(f"url='{self.url}'")
        if self.error_code:
            parts.append(f"error_code='{self.error_code}'")
        parts.extend(f"{k}={_short(v, quote=True)}" for k, v in self.additional_fields.items())
        return f"ModelResponse({', '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in DICT_FIELDS}
        out.update(self.additional_fields)
        return out

    @property
    def parsed(self) -> Any:
        """The validated object of a run with a ``response_format`` (an instance of its pydantic class,
        or the parsed JSON for a schema); None without one, or when the answer did not match."""
        return getattr(self, "_parsed", None)

    @property
    def ok(self) -> bool:
        """True for SUCCESS (a convenience; not in the SDK)."""
        return self.status is ResponseStatus.SUCCESS

    def save(self, path: str | os.PathLike[str], *, timeout: float = 300) -> Path:
        """Fetch the output file this response's ``data`` links to and write it to ``path`` (a file, or a
        folder: the URL's file name); the written ``Path``. ``core.media.download``'s deadline, size cap
        and key rules; RequestError when ``data`` is not a file URL or the fetch fails. (``media`` is
        above this module: it is reached through ``hooks.late``.)"""
        return Path(late("download")(self, path, timeout=timeout))

    async def asave(self, path: str | os.PathLike[str], *, timeout: float = 300) -> Path:
        """The async twin of ``save``: the same arguments, awaited."""
        return Path(await late("adownload")(self, path, timeout=timeout))


def _short(value: Any, limit: int = 200, *, quote: bool = False) -> str:
    """``str(value)`` (``repr`` when ``quote``), cut to ``limit`` characters."""
    text = repr(value) if quote else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
