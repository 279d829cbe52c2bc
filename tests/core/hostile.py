"""A hostile HTTP server on loopback (stdlib sockets): it answers every request with raw bytes of
its choosing -- endless bodies, floods, lines that never end, silence -- and records when the client
hung up, so tests can check that the client's I/O is over when a call returns.

    with Hostile(behaviour) as server:        # behaviour(sock, request) writes whatever it likes
        model = Model("m", url=server.run_url, api_key=KEY)

``behaviour`` runs in the connection's thread; ``server.hung_up`` is set (with the time in
``server.hung_up_at``) when a write to the client fails, i.e. the client closed the connection.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

BLOCK = b"x" * 65536


class Hostile:
    def __init__(self, behaviour: Callable[[Hostile, socket.socket, bytes], None]) -> None:
        self.behaviour = behaviour
        self.hung_up = threading.Event()
        self.hung_up_at = 0.0
        self.sent = 0
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.1)
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    @property
    def run_url(self) -> str:
        return self.url + "/api/v1/execute"

    def __enter__(self) -> Hostile:
        thread = threading.Thread(target=self._accept, daemon=True, name="hostile")
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._sock.close()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            request = _read_request(conn)
            if request is None:
                return
            self.requests.append(request)
            try:
                self.behaviour(self, conn, request)
                self.wait_stop(conn)
            except OSError:
                self.hang_up()

    def hang_up(self) -> None:
        if not self.hung_up.is_set():
            self.hung_up_at = time.monotonic()
            self.hung_up.set()

    # -- helpers for behaviours ----------------------------------------------------------------
    def send(self, conn: socket.socket, data: bytes) -> None:
        conn.sendall(data)
        self.sent += len(data)

    def head(self, conn: socket.socket, status: str = "200 OK", **headers: str) -> None:
        lines = [f"HTTP/1.1 {status}"] + [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
        self.send(conn, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def flood(self, conn: socket.socket, total: float = float("inf"), pause: float = 0.0) -> None:
        """Send BLOCKs until ``total`` bytes, the client hangs up, or the server stops."""
        sent = 0
        while sent < total and not self._stop.is_set():
            self.send(conn, BLOCK)
            sent += len(BLOCK)
            if pause:
                time.sleep(pause)

    def wait_stop(self, conn: socket.socket) -> None:
        """Send nothing more; return when the client hangs up (recorded) or the server stops."""
        conn.settimeout(0.05)
        while not self._stop.is_set():
            try:
                if not conn.recv(65536):
                    break
            except TimeoutError:
                continue
        else:
            return
        self.hang_up()


def _read_request(conn: socket.socket) -> bytes | None:
    conn.settimeout(5)
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        conn.settimeout(None)
        return head + b"\r\n\r\n" + body
    return None


def rss_bytes() -> int:
    """This process's resident set size, from /proc/self/status."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def json_reply(
    hostile: Hostile, conn: socket.socket, body: bytes, status: str = "200 OK", **headers: Any
) -> None:
    """Answer with the JSON ``body``."""
    hostile.head(conn, status, Content_Type="application/json", Content_Length=str(len(body)), **headers)
    hostile.send(conn, body)
