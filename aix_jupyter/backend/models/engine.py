"""What the offline media models share: lazy loading, availability, and their media inputs.

Each engine (Whisper, Piper, RapidOCR, e5, Apertium) lives in a module of its own behind an extra of
its own; its heavy imports happen inside the loader, on the first run, once per process. A missing
extra never breaks the backend: the model stays listed, ``available()`` is False, and its run fails
with :class:`ModelUnavailable`, a one-line message that says how to install it.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

from aix_jupyter.backend.uploads import StoredPath

T = TypeVar("T")


class ModelUnavailable(RuntimeError):
    """A built-in model's runtime or weights are not installed (the message says how to install them)."""


def installed(*modules: str) -> bool:
    """True when every named top-level module can be imported (checked without importing it)."""
    return all(importlib.util.find_spec(name) is not None for name in modules)


def require(modules: tuple[str, ...], what: str, hint: str) -> None:
    """Raise :class:`ModelUnavailable` naming ``what`` and the install ``hint`` if a module is missing."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise ModelUnavailable(f"{what} is not installed (no module {', '.join(missing)}): {hint}")


def described(description: str, ready: bool, hint: str) -> str:
    """A model's description; where its engine is not installed, led by how to install it."""
    return description if ready else f"Not installed here ({hint}). {description}"


class Lazy(Generic[T]):
    """A value built by ``load()`` on first use, once per process, whichever thread asks first."""

    def __init__(self, load: Callable[[], T]) -> None:
        self._load = load
        self._lock = threading.Lock()
        self._value: T | None = None

    @property
    def loaded(self) -> bool:
        return self._value is not None

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._load()
                value = self._value
        return value


def media_path(value: object, parameter: str) -> Path:
    """The local file behind a media input (audio, image) of a run.

    Accepted: a file uploaded to this backend (the wire's upload link or a link to its own ``/files``,
    which the app resolves to the stored file before the run), or a :class:`~pathlib.Path` handed over
    in-process. Anything else (a URL of another host, a path typed into a request) is refused: the
    models never fetch from the network, and a request cannot make the server read its other files.
    """
    if isinstance(value, StoredPath | Path):
        path = Path(value)
        if not path.is_file():
            raise ValueError(f"parameter '{parameter}': the file is gone (expired?); upload it again")
        return path
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    if isinstance(value, str) and "://" in value:
        raise ValueError(
            f"parameter '{parameter}': {shown} is not a file of this server; send the file itself "
            "(a local path given as data is uploaded first): local models never fetch from the network"
        )
    raise ValueError(
        f"parameter '{parameter}' needs a file uploaded to this server (pass a local file path as data "
        f"and the client uploads it); got {shown}"
    )
