"""Shared helpers of the benchmark scripts: interpreters, workers, the loopback wire server, results.

Every benchmark compares sides that may live in different virtual environments (the project's
``.venv`` and ``benchmarks/.venv-compare`` with the official SDK and jupyter-ai). Each side runs in
its own long-lived *worker* process, started from the same script with ``--worker NAME``; the driver
sends it one JSON command per line and reads one JSON reply per line, and interleaves the sides round
by round so that the machine's noise hits all of them alike. Every figure is a ratio of two sides
measured in the same run.

This module uses only the standard library, so that it imports under any interpreter.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
OUR_PY = Path(os.environ.get("AIX_BENCH_PYTHON", ROOT / ".venv" / "bin" / "python"))
CMP_PY = Path(os.environ.get("AIX_BENCH_COMPARE_PYTHON", BENCH / ".venv-compare" / "bin" / "python"))
SETUP_HINT = "run `python3.11 benchmarks/setup_compare.py` first"


def compare_status() -> dict[str, Any]:
    """What benchmarks/setup_compare.py managed to install (empty when it never ran)."""
    path = CMP_PY.parent.parent / "install-status.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def compare_has(group: str) -> bool:
    return CMP_PY.exists() and compare_status().get(group, {}).get("ok") == "yes"


def machine() -> dict[str, Any]:
    """The facts a reader needs to weigh a figure."""
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of values, nearest-rank."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = min(len(s) - 1, max(0, round(q * (len(s) - 1))))
    return s[k]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _command() -> str:
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    return " ".join([".venv/bin/python", str(shown), *sys.argv[1:]])


def save(name: str, result: dict[str, Any]) -> Path:
    """Write results/<name>.json with the machine and the exact command."""
    RESULTS.mkdir(exist_ok=True)
    result = {
        "benchmark": name,
        "command": _command(),
        "machine": machine(),
        **result,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return path


# --------------------------------------------------------------------------------------------- workers
class Worker:
    """One side of a comparison, in its own process: ``python <script> --worker <name> [args]``."""

    def __init__(
        self,
        python: Path,
        script: Path,
        name: str,
        *args: str,
        env: dict[str, str] | None = None,
        unset: tuple[str, ...] = (),
    ):
        self.name = name
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        for key in unset:
            full_env.pop(key, None)
        self.proc = subprocess.Popen(
            [str(python), str(script), "--worker", name, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            text=True,
            env=full_env,
            cwd=str(BENCH),
        )

        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put("")

    def call(self, cmd: str, timeout: float = 600, **kwargs: Any) -> Any:
        """Send one command; wait at most ``timeout`` seconds for its reply."""
        assert self.proc.stdin
        self.proc.stdin.write(json.dumps({"cmd": cmd, **kwargs}) + "\n")
        self.proc.stdin.flush()
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.proc.kill()
            raise TimeoutError(f"worker {self.name}: {cmd} took more than {timeout}s") from None
        if not line:
            raise RuntimeError(f"worker {self.name} died (exit {self.proc.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"worker {self.name}: {reply['error']}")
        return reply["result"]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.proc.stdin:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def workers(
    *specs: tuple[Path, Path, str, tuple[str, ...]], env: dict[str, str] | None = None
) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    try:
        for python, script, name, args in specs:
            started.append(Worker(python, script, name, *args, env=env))
        yield started
    finally:
        for w in started:
            w.close()


def worker_main(handlers: dict[str, Callable[..., Any]]) -> None:
    """Serve JSON commands on stdin; replies go to the real stdout, library prints to stderr."""
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        msg = json.loads(line)
        cmd = msg.pop("cmd")
        try:
            reply: dict[str, Any] = {"result": handlers[cmd](**msg)}
        except Exception as exc:  # reported to the driver, which raises it
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(reply, default=str) + "\n")


def worker_name(argv: list[str]) -> tuple[str, list[str]] | None:
    if len(argv) >= 3 and argv[1] == "--worker":
        return argv[2], argv[3:]
    return None


# ------------------------------------------------------------------------------------------ wire server
@contextlib.contextmanager
def wire_server(python: Path | None = None, lifetime: float = 1800) -> Iterator[str]:
    """Start benchmarks/wireserver.py on a random loopback port; yield its base URL."""
    proc = subprocess.Popen(
        [str(python or sys.executable), str(BENCH / "wireserver.py"), "--lifetime", str(lifetime)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout
        line = proc.stdout.readline().strip()
        if not line.startswith("READY "):
            raise RuntimeError(f"wire server did not start: {line!r}")
        yield line.split(" ", 1)[1]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wire_env(base: str) -> dict[str, str]:
    """Environment pointing both the SDK and our core at a loopback wire server."""
    return {
        "MODELS_RUN_URL": f"{base}/api/v1/execute",
        "BACKEND_URL": base,
        "AIX_BACKEND_URL": base,
        "AIXPLAIN_ALLOW_INSECURE_URLS": "1",
        "TEAM_API_KEY": "bench-key",
        "AIXPLAIN_SUPPRESS_V1_DEPRECATION": "1",
        "LOG_LEVEL": "WARNING",
    }


CONFIG_VARS = ("TEAM_API_KEY", "AIXPLAIN_API_KEY", "MODELS_RUN_URL", "BACKEND_URL", "AIX_BACKEND_URL")


def previous(name: str) -> dict[str, Any]:
    """The last saved results/<name>.json (empty when none), to keep parts a run skipped."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def require(condition: bool, message: str) -> None:
    if not condition:
        sys.exit(message)
