"""Half-open connections (slowloris) against a server under ``ulimit -n``: is it still answering, does it
close them, how much does it write to stderr? The figures of README.md's "Threat model and limits".

    .venv/bin/python benchmarks/attack_half_open.py [--fd-limit 1024] [--connections 1100] [--hold 12]
        [-- EXTRA aix serve OPTIONS]                       # `aix serve --port 0 --token tok ...`
    .venv/bin/python benchmarks/attack_half_open.py --port 18001 -- hypercorn -b 127.0.0.1:18001 app:app

The server runs in its own process (``bash -c 'ulimit -n N; exec ...'``); the attack opens the
connections, each sending the first line of a request head and then nothing, holds them, probes
``GET /health`` every 2 s (2 s timeout), then checks which the server closed and closes the rest.
Bounded: a few thousand sockets, ``--hold`` seconds.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time

import httpx


def health(url: str) -> str:
    started = time.monotonic()
    try:
        reply = httpx.get(f"{url}/health", timeout=2.0)
        return f"{reply.status_code} in {time.monotonic() - started:.2f} s"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__} after {time.monotonic() - started:.2f} s"


def start(args: argparse.Namespace, stderr_path: str) -> tuple[subprocess.Popen[str], str]:
    if args.port:  # any server command
        command, url = shlex.join(args.extra), f"http://127.0.0.1:{args.port}"
    else:
        aix = [sys.executable, "-m", "aix_jupyter.backend.cli", "serve", "--port", "0", "--token", "tok"]
        command, url = shlex.join(aix + args.extra), ""
    proc = subprocess.Popen(
        ["bash", "-c", f"ulimit -n {args.fd_limit} && exec {command}"],
        stdout=subprocess.PIPE,
        stderr=open(stderr_path, "wb"),  # noqa: SIM115 - the child owns it
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    if not url:
        assert proc.stdout is not None
        for line in proc.stdout:
            found = re.search(r"on (http://\S+)", line)
            if found:
                url = found.group(1)
                break
    deadline = time.monotonic() + 30
    while not health(url).startswith("200") and time.monotonic() < deadline:
        time.sleep(0.1)
    return proc, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd-limit", type=int, default=1024)
    parser.add_argument("--connections", type=int, default=1100)
    parser.add_argument("--hold", type=float, default=12.0)
    parser.add_argument("--port", type=int, default=0, help="the port of a non-aix server command")
    parser.add_argument("extra", nargs="*", help="aix serve options, or (with --port) a server command")
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile(suffix=".stderr", delete=False) as handle:
        stderr_path = handle.name
    proc, url = start(args, stderr_path)
    host, port = url.removeprefix("http://").split(":")
    try:
        print("before:", health(url))
        socks = []
        for _ in range(args.connections):
            sock = socket.socket()
            sock.settimeout(2)
            try:
                sock.connect((host, int(port)))
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
                socks.append(sock)
            except OSError:
                sock.close()
        print(f"opened {len(socks)} half-open connections")
        end = time.monotonic() + args.hold
        while time.monotonic() < end:
            print(f"  during: /health {health(url)}; stderr {os.path.getsize(stderr_path)} bytes")
            time.sleep(2)
        still_open = 0
        for sock in socks:
            sock.setblocking(False)
            try:
                still_open += sock.recv(1, socket.MSG_PEEK) != b""
            except BlockingIOError:
                still_open += 1
            except OSError:
                pass
            sock.close()
        print(f"still open after {args.hold:g} s: {still_open}")
        print("after the attack:", health(url))
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"stderr: {os.path.getsize(stderr_path)} bytes; first lines:")
    with open(stderr_path, errors="replace") as err:
        print("".join(err.readlines()[:4]))
    os.unlink(stderr_path)


if __name__ == "__main__":
    main()
