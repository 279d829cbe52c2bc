"""The input of a run: ``{name}`` interpolation, dict variables, files, poll targets; and the input
transformer that keeps a question mark ending a ``%aix`` line as text.

Stdlib only (imported by the first ``%aix`` command).
"""

from __future__ import annotations

import json
import os
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aix_jupyter.magics.args import IDENTIFIER
from aix_jupyter.magics.errors import MagicUsageError


class _Namespace(Mapping[str, Any]):
    def __init__(self, namespace: Mapping[str, Any]) -> None:
        self._ns = namespace

    def __getitem__(self, key: str) -> Any:
        try:
            return self._ns[key]
        except KeyError:
            raise MagicUsageError(
                f"{{{key}}}: no variable {key!r} in the notebook; define it, or write {{{{ }}}} for braces"
            ) from None

    def __iter__(self) -> Any:
        return iter(self._ns)

    def __len__(self) -> int:
        return len(self._ns)


def interpolate(text: str, namespace: Mapping[str, Any]) -> str:
    """Replace ``{name}`` (and ``{name.attr}``, ``{name[0]}``, ``{name:fmt}``) from ``namespace``."""
    if "{" not in text and "}" not in text:
        return text
    try:
        return string.Formatter().vformat(text, (), _Namespace(namespace))
    except MagicUsageError:
        raise
    except (ValueError, IndexError, AttributeError, KeyError, TypeError) as exc:
        raise MagicUsageError(
            f"cannot fill in {{...}} in {_short(text)}: {exc}; write {{{{ and }}}} for literal braces"
        ) from None


def _short(text: str, limit: int = 60) -> str:
    text = text.strip().replace("\n", " ")
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


@dataclass
class RunInput:
    """What to send as ``data``: text, a dict (a variable holding one, or JSON), or a file path."""

    data: Any
    kind: Literal["text", "dict", "file", "media", "none"]
    source: str = ""


def resolve_input(raw: str | None, namespace: Mapping[str, Any]) -> RunInput:
    """What the run's input is: nothing, a variable's dict (the request itself), a variable's media (bytes,
    a path object, an IPython Audio/Image, a PIL image: ``VAR`` or ``{VAR}``), an existing file, or text."""
    if raw is None or not raw.strip():
        return RunInput(None, "none")
    stripped = raw.strip()
    if IDENTIFIER.match(stripped) and stripped in namespace and isinstance(namespace[stripped], Mapping):
        return RunInput(dict(namespace[stripped]), "dict", stripped)
    name = stripped[1:-1].strip() if stripped[:1] == "{" and stripped[-1:] == "}" else stripped
    if IDENTIFIER.match(name) and name in namespace and _is_media(namespace[name]):
        return RunInput(namespace[name], "media", name)  # bytes, a Path, an Audio/Image, a PIL image
    if stripped[:1] in "{[":
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return RunInput(value, "dict", "json")
    text = interpolate(raw, namespace)
    candidate = text.strip()
    if candidate and "\n" not in candidate and len(candidate) < 4096:
        path = os.path.expanduser(candidate)
        if os.path.isfile(path):
            return RunInput(path, "file", candidate)
    return RunInput(text, "text")


def _is_media(value: Any) -> bool:
    from aix_jupyter.core.mediatypes import is_media_object

    return is_media_object(value)


def resolve_target(target: str, namespace: Mapping[str, Any]) -> tuple[str, Any]:
    """``(poll URL, handle or None)`` from a URL or a variable holding a response/URL."""
    if IDENTIFIER.match(target):
        if target not in namespace:
            raise MagicUsageError(
                f"no variable {target!r} in the notebook; give a poll URL or a handle variable"
            )
        value = namespace[target]
        url = value if isinstance(value, str) else getattr(value, "url", None)
        if not url and isinstance(value, Mapping):
            url = value.get("url")
        if not isinstance(url, str) or not url:
            raise MagicUsageError(
                f"variable {target!r} holds no poll URL ({type(value).__name__}); "
                "use the handle that %aix async returned"
            )
        return url, value if not isinstance(value, str) else None
    if not target.startswith(("http://", "https://")):
        raise MagicUsageError(f"{target!r} is neither an http(s) poll URL nor a variable name")
    return target, None


# -- a question mark ending a ``%aix`` line is text, not IPython's help -------------------------------
_AIX_LINE = re.compile(r"^(?P<indent>[ \t]*)(?P<assign>[A-Za-z_]\w*\s*=\s*)?%aix(?P<args>[ \t].*)$")


def keep_question_marks(lines: list[str]) -> list[str]:
    """``%aix run MODEL How are you?`` would be IPython's ``obj?`` help; make it a plain magic call."""
    if not lines or lines[0].lstrip().startswith("%%"):
        return lines  # a cell magic's body is its own business
    out = []
    for line in lines:
        body = line.rstrip("\r\n")
        match = _AIX_LINE.match(body) if body.rstrip().endswith("?") else None
        if match is None:
            out.append(line)
            continue
        args = match.group("args").strip()
        call = f"get_ipython().run_line_magic('aix', {args!r})"
        out.append(f"{match.group('indent')}{match.group('assign') or ''}{call}{line[len(body) :] or ''}")
    return out


# -- the SOURCE of ``%aix map``: a list, Series or DataFrame held by a notebook variable -----------------
def _pandas_kind(value: Any) -> str | None:
    cls = type(value)
    if cls.__module__.split(".", 1)[0] == "pandas" and cls.__name__ in ("DataFrame", "Series"):
        return cls.__name__
    return None


def batch_source(
    name: str, namespace: Mapping[str, Any], *, column: str | None = None, into: str | None = None
) -> tuple[Any, Any]:
    """``(inputs, frame)`` for ``%aix map``: the inputs to map over, and the DataFrame (or None).

    ``name`` is a variable holding a list/tuple, a pandas Series or a DataFrame; ``column`` picks
    the DataFrame's input column (needed unless it has exactly one); ``into`` (a DataFrame only)
    names the new column the outputs go to. Anything else is a one-line error naming the culprit.
    """
    if not name:
        raise MagicUsageError("map: give SOURCE, a variable holding a list, Series or DataFrame")
    if not IDENTIFIER.match(name):
        raise MagicUsageError(
            f"map: SOURCE must be a variable name (list, Series or DataFrame), got {name!r}"
        )
    if name not in namespace:
        raise MagicUsageError(
            f"map: no variable {name!r} in the notebook; SOURCE: a list, Series or DataFrame"
        )
    value = namespace[name]
    kind = _pandas_kind(value)
    if kind != "DataFrame":
        for option, given in (("--column", column), ("--into", into)):
            if given is not None:
                raise MagicUsageError(
                    f"map: {option} needs a DataFrame, but {name!r} is a {type(value).__name__}"
                )
        if kind == "Series" or isinstance(value, list | tuple):
            return value, None
        raise MagicUsageError(
            f"map: {name!r} is a {type(value).__name__}; SOURCE must be a list, Series or DataFrame"
        )
    columns = [str(c) for c in value.columns]
    if column is None:
        if len(columns) != 1:
            raise MagicUsageError(
                f"map: {name!r} has {len(columns)} columns; pick the input with --column "
                f"({', '.join(columns) or 'none'})"
            )
        column = columns[0]
    if column not in value.columns:
        raise MagicUsageError(f"map: {name!r} has no column {column!r}; its columns: {', '.join(columns)}")
    if into is not None and into == column:
        raise MagicUsageError(f"map: --into {into!r} is the input column; name a new column for the outputs")
    return value[column], value
