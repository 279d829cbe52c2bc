"""The backend against hostile clients: half-open connections, memory pinning, hostile JSON, upload
abuse, token handling and forged Host headers. Real `aix serve` processes and real servers on
loopback, with the limits set low so that each attack stays small (a few hundred sockets, MBs).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from aix_jupyter.backend.guard import OncePerInterval
from aix_jupyter.backend.jobs import JobStore
from aix_jupyter.backend.uploads import UploadStore

from .conftest import TOKEN, start_server, wait_for
from .test_cli import aix, read_until
from .test_job_store import SPEC
from .test_wire import poll_until_done, run_v1, run_v2, sse_events


# -- helpers ------------------------------------------------------------------------------------------
@contextmanager
def aix_serve(*args: str, fd_limit: int | None = None, env: dict[str, str] | None = None) -> Iterator[dict]:
    """`aix serve` in a subprocess (optionally under ``ulimit -n``); yields its url, pid and output."""
    command = [sys.executable, "-m", "aix_jupyter.backend.cli", "serve", "--port", "0", *args]
    if fd_limit is not None:
        command = ["bash", "-c", f'ulimit -n {fd_limit} && exec "$@"', "aix", *command]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **{k: v for k, v in os.environ.items() if k != "AIX_SERVE_TOKEN"},
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        },
    )
    info = {"proc": proc}
    try:
        text = read_until(proc, "TEAM_API_KEY")
        info["stdout"] = text
        info["url"] = re.search(r"on (http://127\.0\.0\.1:\d+)", text).group(1)
        yield info
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        info["stderr"] = proc.stderr.read()


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def half_open(url: str, count: int) -> list[socket.socket]:
    """``count`` connections that each send the start of a request head and then nothing."""
    host, port = url.removeprefix("http://").split(":")
    socks = []
    for _ in range(count):
        sock = socket.create_connection((host, int(port)), timeout=5)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        socks.append(sock)
    return socks


def closed_by_server(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1024) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


# -- 6. half-open connections ---------------------------------------------------------------------
def test_half_open_connections_are_capped_timed_out_and_logged_once():
    with aix_serve("--token", "tok", "--max-connections", "32", "--header-timeout", "3", fd_limit=256) as srv:
        url, pid = srv["url"], srv["proc"].pid
        idle = open_fds(pid)
        started = time.monotonic()
        attack = half_open(url, 200)  # far more than the cap, and close to the fd limit
        try:
            # over the cap, the connections that waited longest are closed: fds stay bounded
            assert wait_for(lambda: all(closed_by_server(s) for s in attack[:-32]), timeout=2)
            assert open_fds(pid) < idle + 40
            if time.monotonic() - started < 2.5:  # the newest still open: the cap, not the timeout
                assert not any(closed_by_server(s) for s in attack[-5:])
            # the server still answers while the attack is on
            assert httpx.get(f"{url}/health", timeout=5).json()["status"] == "ok"
            # and closes every connection that sent no complete head within the timeout
            assert wait_for(lambda: all(closed_by_server(s) for s in attack), timeout=6)
        finally:
            for sock in attack:
                sock.close()
        # a kept-alive connection that starts a second request head and stalls is closed too
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            first = b""
            while not first.endswith(b"}"):
                first += sock.recv(4096)
            assert b"200 OK" in first
            sock.sendall(b"GET /health HTTP/1.1\r\n")
            assert sock.recv(1024) == b""
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200
    stderr = srv["stderr"]
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("aix backend:")]
    assert 1 <= len(lines) <= 4, stderr  # one line per cause (timeout, eviction), not one per socket
    assert "at the connection limit (32)" in stderr and "within 3 s" in stderr
    assert len(stderr) < 2000


def test_out_of_file_descriptors_logs_one_line_and_recovers():
    with aix_serve(
        "--token", "tok", "--max-connections", "1000", "--header-timeout", "30", fd_limit=128
    ) as srv:
        url = srv["url"]
        attack = []
        try:
            for _ in range(300):  # past the fd limit: accept() fails with EMFILE
                try:
                    attack += half_open(url, 1)
                except OSError:
                    break
            time.sleep(1.5)
        finally:
            for sock in attack:
                sock.close()
        # answers again as soon as the attack stops (asyncio retries accept() after 1 s)
        assert wait_for(lambda: httpx.get(f"{url}/health", timeout=1).status_code == 200, timeout=5)
    stderr = srv["stderr"]
    assert "Traceback" not in stderr and "out of system resource" in stderr
    assert len(stderr.splitlines()) <= 4 and len(stderr) < 2000, stderr[:2000]


def test_a_request_body_that_trickles_in_gets_408():
    server = start_server()
    server.state.body_timeout = 0.5
    try:
        host, port = server.base_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(
                b"POST /api/v2/execute/local/sentiment-vader HTTP/1.1\r\nHost: x\r\n"
                + f"x-api-key: {TOKEN}\r\ncontent-type: application/json\r\n".encode()
                + b'content-length: 100\r\n\r\n{"data": '
            )
            sock.settimeout(5)
            reply = b""
            while b"}" not in reply and (chunk := sock.recv(4096)):
                reply += chunk
        reply = reply.decode()
        assert reply.startswith("HTTP/1.1 408") and "not received within 0.5 s" in reply
    finally:
        server.stop()


@pytest.mark.parametrize("option", ["--header-timeout", "--max-connections", "--max-kept-mb", "--ttl"])
def test_a_limit_that_is_not_above_zero_is_refused(option):
    proc = aix("serve", "--port", "0", option, "0")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and f"argument {option}: must be above 0" in err


def test_log_filter_passes_one_line_per_cause_and_interval():
    now = [0.0]
    records: list[str] = []
    log = logging.getLogger("aix-test-quiet")
    log.propagate = False
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    log.addHandler(handler)
    log.addFilter(OncePerInterval(interval=60, clock=lambda: now[0]))
    for port in range(1000):
        log.warning("accept failed on port %d", port)
    log.warning("another cause")
    log.setLevel(logging.DEBUG)
    log.debug("debug %d", 1)
    log.debug("debug %d", 2)
    now[0] = 61
    log.warning("accept failed on port %d", 5)
    assert records == [
        "accept failed on port 0",
        "another cause",
        "debug 1",
        "debug 2",
        "accept failed on port 5 (and 999 more like this in the last 60 s)",
    ]


# -- 7. finished jobs are bounded by bytes ---------------------------------------------------------
def test_finished_jobs_are_bounded_by_bytes_oldest_first():
    async def main() -> tuple[JobStore, list]:
        store = JobStore(max_kept_bytes=5 * 2**20, ttl=600)
        jobs = []
        for i in range(12):
            job = store.submit(SPEC, {"data": chr(65 + i) * 2**20})  # 1 MiB results
            assert await store.wait(job, 5)
            jobs.append(job)
        store.purge()
        return store, jobs

    store, jobs = asyncio.run(main())
    kept = [job for job in jobs if store.get(job.id) is not None]
    assert kept == jobs[-len(kept) :] and 3 <= len(kept) <= 5
    assert store.kept_bytes <= 5 * 2**20
    assert all(job.inputs == {} for job in jobs)  # a finished job keeps its reply, not its input
    assert "MiB budget" in store.forgotten(jobs[0].id)


def test_evicted_run_polls_410_and_memory_stays_bounded():
    server = start_server(max_kept_bytes=16 * 2**20)
    try:
        with httpx.Client(base_url=server.base_url, headers={"x-api-key": TOKEN}, timeout=30) as c:
            first = run_v1(c, "test/big", {"size": 2**20})
            assert poll_until_done(c, first)["status"] == "SUCCESS"
            before = rss_bytes()
            for _ in range(100):  # 200 MiB of results if all were kept
                url = run_v1(c, "test/big", {"size": 2 * 2**20})
                assert poll_until_done(c, url)["status"] == "SUCCESS"
            growth = rss_bytes() - before
            gone = c.get(first)
        assert gone.status_code == 410
        assert "no longer kept" in gone.json()["error"] and "16 MiB" in gone.json()["error"]
        assert server.state.jobs.kept_bytes <= 16 * 2**20 + 2**20
        assert growth < 80 * 2**20, f"RSS grew {growth / 2**20:.0f} MiB"
    finally:
        server.stop()


# -- 8. valid JSON the server refuses --------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b'{"data": ' + b"[" * 1000 + b"]" * 1000 + b"}", "nested deeper than 100 levels"),
        (b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested deeper than 100 levels"),
        (b'{"data": "x", "threshold": ' + b"7" * 5000 + b"}", "more than 4300 digits"),
        (b'{"data": "x", "threshold": 1e999}', "out of range"),
        (b'{"data": "x", "threshold": NaN}', "NaN is not a JSON number"),
        (b'{"data": "\\ud800"}', "lone UTF-16 surrogate"),
        (b'{"\\udfff": "x"}', "lone UTF-16 surrogate"),
    ],
)
def test_valid_json_the_server_cannot_take_is_400_naming_the_problem(client, raw, problem):
    for path in ("/api/v2/execute/local/sentiment-vader", "/api/v1/execute/local/sentiment-vader"):
        reply = client.post(path, content=raw, headers={"Content-Type": "application/json"})
        assert reply.status_code == 400, reply.text[:300]
        assert problem in reply.json()["error"]


def test_a_reply_with_a_lone_surrogate_is_still_readable_polled_and_streamed(client):
    body = run_v2(client, "test/surrogate", {"data": "a"})  # the model's own output is un-encodable
    assert body["status"] == "SUCCESS" and body["data"] == "a\ud800!"
    url = run_v1(client, "test/surrogate", {"data": "b"})
    for _ in range(3):
        polled = client.get(url, headers={"Prefer": "wait=5"})
        assert polled.status_code == 200 and polled.json()["status"] in ("SUCCESS", "IN_PROGRESS")
    assert poll_until_done(client, url)["data"] == "b\ud800!"
    request = {"data": "c", "options": {"stream": True}}
    with client.stream("POST", "/api/v2/execute/test/surrogate", json=request) as reply:
        events = sse_events(reply)
    assert [json.loads(e)["data"] for e in events[:-1]] == ["c", "\ud800", "!"]
    assert events[-1] == "[DONE]"


# -- 9. uploads ------------------------------------------------------------------------------------
def ticket(base_url: str, content_type: str, name: str = "page.html") -> httpx.Response:
    return httpx.post(
        f"{base_url}/sdk/file/upload/temp-url",
        data={"contentType": content_type, "originalName": name},
        headers={"Authorization": f"token {TOKEN}"},
    )


def test_uploaded_files_are_write_once_and_served_as_inert_downloads(server):
    urls = ticket(server.base_url, "text/html").json()
    page = b"<script>alert(document.cookie)</script>"
    assert httpx.put(urls["uploadUrl"], content=page).status_code == 200
    again = httpx.put(urls["uploadUrl"], content=b"replaced")
    assert again.status_code == 409 and "write-once" in again.json()["error"]
    retry = httpx.put(urls["uploadUrl"], content=page)  # a client retrying the same bytes
    assert retry.status_code == 200
    served = httpx.get(urls["downloadUrl"])
    assert served.content == page
    assert served.headers["content-type"] == "application/octet-stream"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-disposition"] == 'attachment; filename="page.html"'
    plain = ticket(server.base_url, "text/plain; charset=utf-8", "a.txt").json()
    httpx.put(plain["uploadUrl"], content=b"hello")
    assert httpx.get(plain["downloadUrl"]).headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("content_type", ["text/plain\r\nX-Injected: 1", "text/html\n", "a b/c", "<x>"])
def test_a_content_type_that_is_not_a_media_type_is_400(server, content_type):
    reply = ticket(server.base_url, content_type)
    assert reply.status_code == 400 and "not a media type" in reply.json()["error"]
    assert httpx.get(f"{server.base_url}/health").status_code == 200  # the connection was not dropped


def test_signed_file_urls_expire_and_cannot_be_re_signed(client, server):
    now = [1_000_000.0]
    server.state.uploads = UploadStore(ttl=60, clock=lambda: now[0])
    try:
        urls = ticket(server.base_url, "text/plain", "review.txt").json()
        assert httpx.put(urls["uploadUrl"], content=b"What a lovely day").status_code == 200
        assert run_v2(client, "local/sentiment-vader", {"data": urls["downloadUrl"]})["data"] == "POSITIVE"
        stretched = re.sub(r"exp=\d+", "exp=9999999999", urls["downloadUrl"])
        forged = httpx.get(stretched)
        assert forged.status_code == 403 and "bad signature" in forged.json()["error"]
        now[0] += 61
        expired = httpx.get(urls["downloadUrl"])
        assert expired.status_code == 403 and "expired" in expired.json()["error"]
        late = client.post("/api/v2/execute/local/sentiment-vader", json={"data": urls["downloadUrl"]})
        assert late.status_code == 490 and "unknown or expired" in late.json()["error"]
    finally:
        server.state.uploads.close()
        server.state.uploads = UploadStore()


# -- 10. the token -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--token", " padded "], {}, "leading or trailing whitespace"),
        (["--token", "two words"], {}, "contains a space"),
        ([], {"AIX_SERVE_TOKEN": "tok\n"}, "leading or trailing whitespace"),
        (["--token-file", "/nonexistent/token"], {}, "cannot read --token-file"),
        (["--token", "a", "--token-file", "b"], {}, "not allowed with argument"),
    ],
)
def test_a_token_no_client_could_send_is_refused(args, env, message):
    proc = aix("serve", "--port", "0", *args, env=env)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and message in err, err
    assert out == ""


def test_the_token_from_a_file_or_the_environment_stays_off_the_command_line(tmp_path):
    secret_file = tmp_path / "token"
    secret_file.write_text("file-s3cret-token\n")  # the final newline of an editor or echo
    for args, env, secret in (
        (["--token-file", str(secret_file)], {}, "file-s3cret-token"),
        ([], {"AIX_SERVE_TOKEN": "env-s3cret-token"}, "env-s3cret-token"),
    ):
        with aix_serve(*args, env=env) as srv:
            assert secret not in Path(f"/proc/{srv['proc'].pid}/cmdline").read_text()
            assert secret not in srv["stdout"]  # shown as a shell expression that reads it
            assert "AIXPLAIN_API_KEY=" in srv["stdout"]
            reply = httpx.get(f"{srv['url']}/sdk/models/local/countdown", headers={"x-api-key": secret})
            assert reply.status_code == 200
            assert httpx.get(f"{srv['url']}/sdk/models/local/countdown").status_code == 401


# -- 11. URLs from the server's own address ----------------------------------------------------------
def test_poll_and_file_urls_ignore_the_host_header(server):
    forged = {"x-api-key": TOKEN, "Host": "evil.example"}
    run = httpx.post(
        f"{server.base_url}/api/v1/execute/local/countdown", json={"seconds": 0.1}, headers=forged
    )
    assert run.json()["data"].startswith(f"{server.base_url}/api/v1/data/")
    urls = httpx.post(
        f"{server.base_url}/sdk/file/upload/temp-url", json={"contentType": "text/plain"}, headers=forged
    ).json()
    assert urls["uploadUrl"].startswith(f"{server.base_url}/files/")
    assert "evil" not in json.dumps(urls) + run.text


def test_a_configured_public_url_is_used_whatever_the_host_header():
    server = start_server(public_url="https://models.example:8443/aix/")
    try:
        headers = {"x-api-key": TOKEN, "Host": "evil.example", "X-Forwarded-Host": "evil.example"}
        run = httpx.post(
            f"{server.base_url}/api/v1/execute/local/countdown", json={"seconds": 0.1}, headers=headers
        )
        assert run.json()["data"].startswith("https://models.example:8443/aix/api/v1/data/")
    finally:
        server.stop()
    proc = aix("serve", "--port", "0", "--public-url", "http://x\r\ny/")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "--public-url must be" in err
