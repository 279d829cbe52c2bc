"""Model.map inside a real ipykernel (a thread that already runs an event loop), with a real interrupt."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

jupyter_client = pytest.importorskip("jupyter_client")

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def kc():
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "PYTHONPATH": str(ROOT), "TEAM_API_KEY": "", "AIXPLAIN_API_KEY": ""}
    for name in ("AIX_BACKEND_URL", "MODELS_RUN_URL", "BACKEND_URL"):
        env.pop(name, None)  # the embedded backend, started inside the kernel
    km, client = start_new_kernel(kernel_name="python3", env=env)
    try:
        yield km, client
    finally:
        client.stop_channels()
        km.shutdown_kernel(now=True)


def execute(client, code: str) -> tuple[dict, str]:
    out: list[str] = []

    def hook(msg: dict) -> None:
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            out.append(msg["content"]["text"])

    reply = client.execute_interactive(code, allow_stdin=False, output_hook=hook, timeout=120)
    return reply["content"], "".join(out)


def interrupted(km, client, code: str) -> str:
    """Run ``code``, interrupting the kernel (SIGINT) after 3 s; it must handle that within 10 s."""
    threading.Timer(3.0, km.interrupt_kernel).start()
    started = time.monotonic()
    reply, out = execute(client, code)
    assert time.monotonic() - started < 10
    assert reply["status"] == "ok", reply
    return out


SETUP = """
import asyncio
from aix_jupyter import BatchInterrupted, ModelFactory
asyncio.get_running_loop()  # the kernel's loop runs in this thread
countdown = ModelFactory.get("local/countdown")
"""


def test_map_runs_in_a_cell_and_ctrl_c_keeps_the_finished_results(kc):
    km, client = kc
    reply, _ = execute(client, SETUP)
    assert reply["status"] == "ok", reply
    reply, out = execute(
        client,
        'r = countdown.map([{"data": f"n{i}", "seconds": 0.1} for i in range(6)], concurrency=3)\n'
        "print(r.data, r.ok)",
    )
    assert reply["status"] == "ok", reply
    assert out.strip() == "['n0', 'n1', 'n2', 'n3', 'n4', 'n5'] True"

    code = (
        'fast = [{"data": f"f{i}", "seconds": 0.1} for i in range(4)]\n'
        'slow = [{"data": "s", "seconds": 60}] * 4\n'
        "try:\n"
        "    countdown.map(fast + slow, concurrency=4)\n"
        "except BatchInterrupted as exc:\n"
        "    partial = exc.results\n"
        "    print('interrupted', partial.data[:4], partial.stopped, len(partial))\n"
    )
    out = interrupted(km, client, code)
    assert out.strip() == "interrupted ['f0', 'f1', 'f2', 'f3'] interrupted 8"
    reply, out = execute(
        client,
        "import time\nfrom aix_jupyter.backend import embedded\ntime.sleep(0.5)\n"
        "print(embedded._server.state.jobs.pending)",
    )
    assert out.strip() == "0"  # the slow jobs were cancelled on the server


def test_ctrl_c_in_compare_keeps_every_models_finished_results(kc):
    km, client = kc
    reply, _ = execute(client, SETUP)
    assert reply["status"] == "ok", reply
    code = (
        "from aix_jupyter import ComparisonInterrupted, compare\n"
        "try:\n"
        "    compare([countdown, 'local/sentiment-vader'], ['I love it', 'awful'], {'seconds': 60})\n"
        "except ComparisonInterrupted as exc:\n"
        "    part = exc.results\n"
        "    slow = part.responses['local/countdown']\n"
        "    print(isinstance(exc, BatchInterrupted), part.model_ids)\n"
        "    print(part.responses['local/sentiment-vader'].data, slow.stopped, slow.failed)\n"
    )
    assert interrupted(km, client, code).splitlines() == [
        "True ['local/countdown', 'local/sentiment-vader']",
        "['POSITIVE', 'NEGATIVE'] interrupted [0, 1]",
    ]
