"""`aix serve`: the standalone server, as a real subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import httpx


def read_until(proc: subprocess.Popen, marker: str, timeout: float = 60) -> str:
    """Lines of the process's stdout up to the one containing ``marker`` (never blocks past ``timeout``)."""
    lines: list[str] = []
    found = threading.Event()

    def pump() -> None:
        for line in proc.stdout:
            lines.append(line)
            if marker in line:
                found.set()
                return

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not found.is_set() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert found.is_set(), f"no {marker!r} in output: {''.join(lines)!r}"
    return "".join(lines)


def aix(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.Popen:
    """``aix ARGS`` in a subprocess; ``env`` adds to this process's environment (less its AIX_SERVE_TOKEN)."""
    inherited = {k: v for k, v in os.environ.items() if k != "AIX_SERVE_TOKEN"}
    return subprocess.Popen(
        [sys.executable, "-m", "aix_jupyter.backend.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**inherited, "PYTHONUNBUFFERED": "1", **(env or {})},
        **kwargs,
    )


def test_serve_prints_url_and_environment_and_serves():
    proc = aix("serve", "--port", "0", "--token", "s3cret-token")
    try:
        text = read_until(proc, "TEAM_API_KEY")
        url = re.search(r"serving \d+ models on (http://127\.0\.0\.1:\d+)", text).group(1)
        assert f"export AIX_BACKEND_URL={url}" in text
        assert "export AIXPLAIN_API_KEY=s3cret-token" in text
        assert f"MODELS_RUN_URL={url}/api/v1/execute BACKEND_URL={url}" in text
        reply = httpx.post(
            f"{url}/api/v2/execute/local/sentiment-vader",
            json={"data": "I like it"},
            headers={"x-api-key": "s3cret-token"},
            timeout=30,
        )
        assert reply.json()["data"] == "POSITIVE"
        assert httpx.get(f"{url}/sdk/models/local/countdown").status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
    assert proc.returncode in (0, -signal.SIGINT)  # uvicorn re-raises the Ctrl-C it handled
    assert "Traceback" not in proc.stderr.read()


def test_serve_without_token_on_loopback_makes_one():
    proc = aix("serve", "--port", "0")
    try:
        text = read_until(proc, "AIXPLAIN_API_KEY")
        token = re.search(r"AIXPLAIN_API_KEY=(\S+)", text).group(1)
        assert len(token) >= 24
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)


def test_serve_refuses_a_public_host_without_token():
    proc = aix("serve", "--host", "0.0.0.0", "--port", "0")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert "without a token" in err and "--token" in err
    assert out == ""


MODELS_FILE = '''
from aix_jupyter import register_model


@register_model(id="team/shout")
def shout(text: str, times: int = 1) -> str:
    """Shout the text."""
    return " ".join([text.upper()] * times)
'''


def test_serve_also_serves_functions_from_a_models_file(tmp_path):
    models = tmp_path / "my_models.py"
    models.write_text(MODELS_FILE)
    proc = aix("serve", "--port", "0", "--token", "tok-models", "--models", str(models))
    try:
        text = read_until(proc, "TEAM_API_KEY")
        url = re.search(r"on (http://127\.0\.0\.1:\d+)", text).group(1)
        reply = httpx.post(
            f"{url}/api/v2/execute/team/shout",
            json={"data": "hey", "times": 2},
            headers={"x-api-key": "tok-models"},
            timeout=30,
        )
        assert reply.json()["data"] == "HEY HEY"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
    broken = aix("serve", "--port", "0", "--models", str(tmp_path / "missing.py"))
    _, err = broken.communicate(timeout=30)
    assert broken.returncode == 1 and "cannot load models" in err and "missing.py" in err
