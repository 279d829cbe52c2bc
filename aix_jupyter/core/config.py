"""Configuration, read at use time, and the one seam that decides where requests go.

Environment (read on every call, never frozen at import):

    TEAM_API_KEY / AIXPLAIN_API_KEY   the API key (both set and different -> ConfigurationError)
    MODELS_RUN_URL                    base of the run endpoint (``.../api/v1/execute``)
    BACKEND_URL                       base of the platform API (metadata, delete, fine-tune, upload)
    AIX_BACKEND_URL                   one base URL of an aiXplain-wire server (e.g. ``aix serve``):
                                      run URL = base + "/api/v1/execute", backend URL = base
    AIX_TRUSTED_HOSTS                 extra ``host[:port]`` entries (comma separated) that may
                                      receive the API key on polls

``resolve_endpoints`` is the seam. In order:

1. explicit ``url=`` / ``backend_url=`` (per ``Model``) win;
2. else ``AIX_BACKEND_URL``, else ``MODELS_RUN_URL`` / ``BACKEND_URL``;
3. else, when an API key is configured, the hosted platform defaults;
4. else the default backend: the provider registered with ``set_default_backend`` (in
   ``core.hooks``; the package registers its embedded backend, see ``aix_jupyter/__init__.py``) returns
   ``(base_url, token)``; the token is then used as the API key. With none registered this is
   a ConfigurationError: the core itself knows no server.

The API key is only ever sent to the origins (scheme, host, port) of the run and backend URLs
that the endpoints resolved to; see ``Endpoints.may_receive_key``.
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aix_jupyter.core.errors import ConfigurationError
from aix_jupyter.core.hooks import DefaultBackend as DefaultBackend  # re-exported: config is the seam
from aix_jupyter.core.hooks import default_backend
from aix_jupyter.core.hooks import set_default_backend as set_default_backend

PLATFORM_RUN_URL = "https://models.aixplain.com/api/v1/execute"
PLATFORM_BACKEND_URL = "https://platform-api.aixplain.com"
RUN_PATH = "/api/v1/execute"
NOT_STARTED = "http://default-backend.invalid"  # the default backend, not started (nothing is sent)

_session_key: str | None = None
_lock = threading.Lock()


def set_api_key(key: str | None) -> None:
    """Set (or with None, clear) the API key for this process only (``%aix login``).

    It wins over the environment variables and is never written anywhere.
    """
    global _session_key
    if key is not None:
        key = key.strip()
        if not key:
            raise ConfigurationError("set_api_key: the API key is empty; pass a non-empty key or None")
    _session_key = key


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def configured_api_key() -> tuple[str | None, str | None]:
    """Return ``(key, source)`` where source names where the key came from (never the key)."""
    if _session_key:
        return _session_key, "set_api_key"
    team, aix = _env("TEAM_API_KEY"), _env("AIXPLAIN_API_KEY")
    if team and aix and team != aix:
        raise ConfigurationError(
            "TEAM_API_KEY and AIXPLAIN_API_KEY are both set and differ; unset one of them"
        )
    if team:
        return team, "TEAM_API_KEY"
    if aix:
        return aix, "AIXPLAIN_API_KEY"
    return None, None


@functools.lru_cache(maxsize=256)  # a URL from the environment is checked on every run
def _check_url(url: str, what: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(f"{what} must be an http(s) URL such as http://127.0.0.1:8000, got {url!r}")
    return url


@functools.lru_cache(maxsize=512)
def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, with the default port filled in."""
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if scheme == "https" else 80
    return scheme, host, port


def _trusted_from_env() -> tuple[str, ...]:
    return _trusted_hosts(_env("AIX_TRUSTED_HOSTS") or "")


@functools.lru_cache(maxsize=16)
def _trusted_hosts(raw: str) -> tuple[str, ...]:
    return tuple(h.strip().lower() for h in raw.split(",") if h.strip())


@dataclass(frozen=True)
class Endpoints:
    """Where requests go, and with which key. Its repr never shows the key."""

    run_url: str
    backend_url: str
    api_key: str | None = field(default=None, repr=False)
    embedded: bool = False
    source: str = "explicit"
    trusted_hosts: tuple[str, ...] = ()

    @property
    def run_v2_url(self) -> str:
        return self.run_url.replace("api/v1/execute", "api/v2/execute")

    def may_receive_key(self, url: str) -> bool:
        """True when ``url`` is on the origin of the run or backend URL (or a trusted host)."""
        target = origin(url)
        if target in (origin(self.run_url), origin(self.backend_url)):
            return True
        _, host, port = target
        return host in self.trusted_hosts or f"{host}:{port}" in self.trusted_hosts

    def __repr__(self) -> str:
        key = "set" if self.api_key else "none"
        return (
            f"Endpoints(run_url={self.run_url!r}, backend_url={self.backend_url!r}, api_key={key}, "
            f"embedded={self.embedded}, source={self.source!r})"
        )


NO_SERVER_HINT = "set TEAM_API_KEY, or AIX_BACKEND_URL to an aiXplain-wire server"


def _default() -> tuple[str, str]:
    provider = default_backend()
    if provider is None:
        raise ConfigurationError(
            f"no API key or URL is configured and no default backend is registered; {NO_SERVER_HINT}"
        )
    base_url, token = provider()
    return _check_url(str(base_url), "the default backend's URL"), str(token)


def resolve_endpoints(
    api_key: str | None = None,
    url: str | None = None,
    backend_url: str | None = None,
    *,
    start_default: bool = True,
) -> Endpoints:
    """THE seam: decide the run URL, the backend URL and the key for one operation.

    ``start_default=False`` (replaying a cassette: nothing is sent) never starts the default backend:
    where it would be chosen, the endpoints name ``NOT_STARTED`` instead.
    """
    key, _ = configured_api_key() if api_key is None else (api_key, "argument")
    trusted = _trusted_from_env()
    if url or backend_url:
        run = _check_url(url, "url") if url else None
        back = _check_url(backend_url, "backend_url") if backend_url else None
        if run is None:
            run = _env_run_url() or (back + RUN_PATH if back else PLATFORM_RUN_URL)  # type: ignore[operator]
        if back is None:
            back = _env_backend_url() or (
                run[: -len(RUN_PATH)] if run.endswith(RUN_PATH) else PLATFORM_BACKEND_URL
            )
        return Endpoints(run, back, key, False, "explicit", trusted)
    base = _env("AIX_BACKEND_URL")
    if base:
        base = _check_url(base, "AIX_BACKEND_URL")
        return Endpoints(base + RUN_PATH, base, key, False, "AIX_BACKEND_URL", trusted)
    env_run, env_back = _env_run_url(), _env_backend_url()
    if env_run or env_back:
        return Endpoints(
            env_run or PLATFORM_RUN_URL, env_back or PLATFORM_BACKEND_URL, key, False, "environment", trusted
        )
    if key:
        return Endpoints(PLATFORM_RUN_URL, PLATFORM_BACKEND_URL, key, False, "platform", trusted)
    if not start_default:
        return Endpoints(NOT_STARTED + RUN_PATH, NOT_STARTED, None, True, "embedded", trusted)
    with _lock:
        base_url, token = _default()
    return Endpoints(base_url + RUN_PATH, base_url, token, True, "embedded", trusted)


def _env_run_url() -> str | None:
    value = _env("MODELS_RUN_URL")
    return _check_url(value, "MODELS_RUN_URL") if value else None


def _env_backend_url() -> str | None:
    value = _env("BACKEND_URL")
    return _check_url(value, "BACKEND_URL") if value else None


def describe_config() -> dict[str, Any]:
    """Where runs go and whether a key is set -- never the key itself. Starts nothing."""
    key, key_source = configured_api_key()
    info: dict[str, Any] = {"api_key_set": key is not None, "api_key_source": key_source}
    base = _env("AIX_BACKEND_URL")
    env_run, env_back = _env_run_url(), _env_backend_url()
    if base:
        base = _check_url(base, "AIX_BACKEND_URL")
        info.update(mode="AIX_BACKEND_URL", run_url=base + RUN_PATH, backend_url=base)
    elif env_run or env_back:
        info.update(
            mode="environment",
            run_url=env_run or PLATFORM_RUN_URL,
            backend_url=env_back or PLATFORM_BACKEND_URL,
        )
    elif key:
        info.update(mode="platform", run_url=PLATFORM_RUN_URL, backend_url=PLATFORM_BACKEND_URL)
    elif default_backend() is not None:
        info.update(mode="embedded", run_url=None, backend_url=None)
        info["note"] = "no key or URL configured: runs go to the embedded backend (started on first use)"
    else:
        info.update(mode="none", run_url=None, backend_url=None)
        info["note"] = f"no key or URL configured and no default backend registered: {NO_SERVER_HINT}"
    info["trusted_hosts"] = list(_trusted_from_env())
    return info
