"""Configuration read at use time, and the one seam (resolve_endpoints) that decides where runs go."""

from __future__ import annotations

import sys

import pytest

from aix_jupyter import Model
from aix_jupyter.core import config
from aix_jupyter.core.config import (
    PLATFORM_BACKEND_URL,
    PLATFORM_RUN_URL,
    describe_config,
    resolve_endpoints,
    set_api_key,
)
from aix_jupyter.core.errors import ConfigurationError
from tests.core.conftest import KEY


@pytest.fixture(autouse=True)
def _no_session_key():
    set_api_key(None)
    yield
    set_api_key(None)


@pytest.fixture
def fake_embedded(server):
    """A default backend (as the package registers the embedded one) that points at the wire server."""
    calls = []

    def ensure_running():
        calls.append(1)
        return server.url + "/", "tok-EMBEDDED"

    previous = config.set_default_backend(ensure_running)
    yield calls
    config.set_default_backend(previous)


@pytest.fixture
def no_default_backend():
    previous = config.set_default_backend(None)
    yield
    config.set_default_backend(previous)


def test_key_read_at_use_time(monkeypatch):
    assert config.configured_api_key() == (None, None)
    monkeypatch.setenv("TEAM_API_KEY", KEY)
    assert config.configured_api_key() == (KEY, "TEAM_API_KEY")
    monkeypatch.delenv("TEAM_API_KEY")
    monkeypatch.setenv("AIXPLAIN_API_KEY", "k2")
    assert config.configured_api_key() == ("k2", "AIXPLAIN_API_KEY")
    monkeypatch.setenv("TEAM_API_KEY", "k2")
    assert config.configured_api_key()[0] == "k2"  # both set and equal is fine


def test_conflicting_keys_are_an_error(monkeypatch):
    monkeypatch.setenv("TEAM_API_KEY", KEY)
    monkeypatch.setenv("AIXPLAIN_API_KEY", "other")
    with pytest.raises(ConfigurationError, match="TEAM_API_KEY and AIXPLAIN_API_KEY") as info:
        resolve_endpoints()
    assert KEY not in str(info.value)


def test_key_selects_the_platform(monkeypatch):
    monkeypatch.setenv("TEAM_API_KEY", KEY)
    ep = resolve_endpoints()
    assert (ep.run_url, ep.backend_url, ep.api_key, ep.embedded) == (
        PLATFORM_RUN_URL,
        PLATFORM_BACKEND_URL,
        KEY,
        False,
    )
    assert ep.run_v2_url == "https://models.aixplain.com/api/v2/execute"
    assert KEY not in repr(ep)


def test_env_urls(monkeypatch):
    monkeypatch.setenv("MODELS_RUN_URL", "http://run.local:1/api/v1/execute/")
    ep = resolve_endpoints()
    assert ep.run_url == "http://run.local:1/api/v1/execute" and ep.backend_url == PLATFORM_BACKEND_URL
    monkeypatch.setenv("BACKEND_URL", "http://back.local:2")
    assert resolve_endpoints().backend_url == "http://back.local:2"
    monkeypatch.setenv("AIX_BACKEND_URL", "http://aix.local:3")
    ep = resolve_endpoints()
    assert (ep.run_url, ep.backend_url) == ("http://aix.local:3/api/v1/execute", "http://aix.local:3")


def test_explicit_urls_win(monkeypatch):
    monkeypatch.setenv("AIX_BACKEND_URL", "http://aix.local:3")
    ep = resolve_endpoints(url="http://mine:9/api/v1/execute")
    assert ep.run_url == "http://mine:9/api/v1/execute" and ep.source == "explicit"
    ep = resolve_endpoints(backend_url="http://b:1")
    assert ep.backend_url == "http://b:1"


@pytest.mark.parametrize("bad", ["ftp://x", "not a url", "http://"])
def test_bad_urls_are_named(monkeypatch, bad):
    monkeypatch.setenv("AIX_BACKEND_URL", bad)
    with pytest.raises(ConfigurationError, match="AIX_BACKEND_URL"):
        resolve_endpoints()


def test_no_key_no_url_uses_the_embedded_backend(fake_embedded, server):
    ep = resolve_endpoints()
    assert ep.embedded and ep.run_url == server.url + "/api/v1/execute" and ep.api_key == "tok-EMBEDDED"
    response = Model("echo").run("via seam")
    assert response.data == "echo: via seam"
    assert server.seen("POST")[0].headers["x-api-key"] == "tok-EMBEDDED"
    assert len(fake_embedded) == 2


def test_embedded_backend_unavailable_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "aix_jupyter.backend.embedded", None)  # import fails
    with pytest.raises(ConfigurationError, match="embedded backend is unavailable") as info:
        resolve_endpoints()
    assert "\n" not in str(info.value) and "TEAM_API_KEY" in str(info.value)


def test_the_core_alone_knows_no_server(no_default_backend):
    with pytest.raises(ConfigurationError) as info:
        resolve_endpoints()
    assert str(info.value) == (
        "no API key or URL is configured and no default backend is registered; "
        "set TEAM_API_KEY, or AIX_BACKEND_URL to an aiXplain-wire server"
    )
    info = describe_config()  # says so too, without raising
    assert info["mode"] == "none" and "no default backend registered" in info["note"]


def test_the_default_backend_hook(no_default_backend, server):
    assert config.default_backend() is None
    provider = lambda: (server.url, "tok")  # noqa: E731
    assert config.set_default_backend(provider) is None
    assert config.default_backend() is provider
    ep = resolve_endpoints()
    assert (ep.run_url, ep.api_key, ep.embedded) == (server.url + "/api/v1/execute", "tok", True)
    with pytest.raises(ConfigurationError, match="the provider must be callable or None, got str"):
        config.set_default_backend("aix_jupyter.backend.embedded")  # type: ignore[arg-type]
    assert config.default_backend() is provider


def test_set_api_key_wins_and_is_never_shown(monkeypatch):
    monkeypatch.setenv("TEAM_API_KEY", "env-key")
    set_api_key(KEY)
    assert resolve_endpoints().api_key == KEY
    info = describe_config()
    assert info["api_key_set"] and info["api_key_source"] == "set_api_key" and info["mode"] == "platform"
    assert KEY not in repr(info)
    with pytest.raises(ConfigurationError):
        set_api_key("  ")


def test_describe_config_starts_nothing(fake_embedded):
    info = describe_config()
    assert info["mode"] == "embedded" and not info["api_key_set"]
    assert fake_embedded == []


def test_model_reads_configuration_when_used(monkeypatch, server):
    m = Model("echo")
    monkeypatch.setenv("AIX_BACKEND_URL", server.url)
    assert m.run("late config").data == "echo: late config"
    monkeypatch.setenv("TEAM_API_KEY", KEY)
    assert m.api_key == KEY
    m.run("with key")
    assert server.seen("POST")[-1].headers["x-api-key"] == KEY


def test_may_receive_key_compares_origins():
    ep = config.Endpoints("https://run.example/api/v1/execute", "https://api.example", KEY)
    assert ep.may_receive_key("https://run.example/api/v1/data/1")
    assert ep.may_receive_key("https://run.example:443/x")
    assert ep.may_receive_key("https://api.example/sdk")
    assert not ep.may_receive_key("http://run.example/api/v1/data/1")  # scheme downgrade
    assert not ep.may_receive_key("https://run.example:8443/x")
    assert not ep.may_receive_key("https://evil.example/x")
