"""What the client core lets the code above it plug in: the default backend, and the core's own
upper layers that a lower one calls back (``late``).

When no API key or URL is configured, ``config.resolve_endpoints`` asks the provider registered
here for a server. The core ships none: the package's top level registers its embedded backend
(``aix_jupyter/__init__.py``), so the core itself never imports, or names, the code that serves.
This module is stdlib-only and tiny: registering costs nothing at ``import aix_jupyter``.

Late bindings. A few methods of the core's lower layers are served by its upper ones:
``ModelResponse.save`` / ``asave`` by ``media.download`` / ``adownload`` (above the transports),
``LLM.chat`` by ``conversation.Conversation`` (above ``ModelFactory``). Importing those from below
would make an import circle, so the lower method calls what is bound here under its name. The
package's top level binds them, each imported when first called (``aix_jupyter/__init__.py``, which
runs before any module of the core).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aix_jupyter.core.errors import ConfigurationError

DefaultBackend = Callable[[], tuple[str, str]]
"""Starts (or finds) the default server when nothing is configured; returns ``(base_url, token)``."""

_default_backend: DefaultBackend | None = None


def set_default_backend(provider: DefaultBackend | None) -> DefaultBackend | None:
    """Register what serves runs when no API key or URL is configured (None: nothing); return the
    provider registered before.

    ``provider()`` is called on each such operation (under a lock, so it need not be thread-safe)
    and returns ``(base_url, token)``: runs go to ``base_url`` with ``token`` as the API key. It may
    raise ConfigurationError to say why no server is available.
    """
    global _default_backend
    if provider is not None and not callable(provider):
        raise ConfigurationError(
            f"set_default_backend: the provider must be callable or None, got {type(provider).__name__}"
        )
    previous, _default_backend = _default_backend, provider
    return previous


def default_backend() -> DefaultBackend | None:
    """The provider registered with ``set_default_backend``, or None."""
    return _default_backend


_late: dict[str, Callable[..., Any]] = {}


def bind_late(name: str, target: Callable[..., Any]) -> None:
    """Bind ``name`` (``download``, ``adownload``, ``conversation``) to what serves it (see above)."""
    if not callable(target):
        raise ConfigurationError(
            f"bind_late: {name} must be bound to a callable, got {type(target).__name__}"
        )
    _late[name] = target


def late(name: str) -> Callable[..., Any]:
    """What ``bind_late`` bound ``name`` to; ConfigurationError when nothing did."""
    try:
        return _late[name]
    except KeyError:
        raise ConfigurationError(
            f"{name} is not available: nothing bound it (it is bound when aix_jupyter is imported)"
        ) from None


__all__ = ["DefaultBackend", "bind_late", "default_backend", "late", "set_default_backend"]
