"""Widget streaming: messages sent to the frontend per second, and kernel CPU, at 1 000 chunks/s.

    .venv/bin/python benchmarks/bench_widget.py [--quick]

A real IPython kernel (ipykernel, started with jupyter_client from the project venv) points at the
plain wire server (benchmarks/wireserver.py, its own process), whose model ``sse-<n>-1000`` streams
<n> chunks paced at 1 000 chunks/s. In the kernel:
* widget: ``w = ModelWidget("sse-<n>-1000"); display(w); w.stream(text="hi")`` (waits for the end);
  the driver counts the ``comm_msg`` messages on the IOPub channel between the request and the
  reply (what a frontend would receive), and checks that ``w.text`` holds all <n> chunks;
* plain: the same stream consumed by ``model.run_stream("hi")`` with no widget, as the baseline for
  kernel CPU.
Kernel CPU is the kernel process's user+system time (from /proc) over the wall time of each run.
Rounds alternate the two.

    .venv/bin/python benchmarks/bench_widget.py --bytes [--chunks 20000] [--label after]

measures instead the bytes one streamed run puts on IOPub, against the size of the text itself: the
widget streams <chunks> chunks (``tok<i> ``) at 1 000 chunks/s, and the driver adds up the JSON
content of every IOPub message of the run (comm messages, i.e. widget updates, and display
messages, i.e. the saved fallback), each kind on its own. The same script measures an older
checkout when its ``PYTHONPATH`` points there (``--label before``).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import time
from pathlib import Path
from typing import Any

from common import OUR_PY, median, save, wire_env, wire_server

RATE = 1000


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _execute(kc: Any, code: str, timeout: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run code; return the execute_reply and every IOPub message of this request, in order."""
    msg_id = kc.execute(code)
    iopub: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    idle = False
    while not idle:
        if time.monotonic() > deadline:
            raise TimeoutError(f"kernel did not finish {code[:60]!r} within {timeout} s")
        try:
            msg = kc.get_iopub_msg(timeout=1)
        except queue.Empty:
            continue
        if msg["parent_header"].get("msg_id") != msg_id and msg["msg_type"] != "comm_msg":
            continue
        msg["_t"] = time.monotonic()
        iopub.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            idle = msg["parent_header"].get("msg_id") == msg_id
    reply = kc.get_shell_msg(timeout=timeout)
    if reply["content"]["status"] != "ok":
        raise RuntimeError(f"kernel error: {reply['content'].get('evalue')}")
    errors = [m for m in iopub if m["msg_type"] == "error"]
    if errors:
        raise RuntimeError(f"kernel error: {errors[0]['content'].get('evalue')}")
    return reply, iopub


def _content_bytes(messages: list[dict[str, Any]]) -> int:
    return sum(len(json.dumps(m["content"], ensure_ascii=False).encode()) for m in messages)


def measure_bytes(n: int, label: str) -> None:
    """Bytes on IOPub for one widget stream of ``n`` chunks, by kind, against the text's own size."""
    from jupyter_client.manager import start_new_kernel

    model_id = f"sse-{n}-{RATE}"
    text = "".join(f"tok{i} " for i in range(n))
    with wire_server(OUR_PY) as base:
        env = {**os.environ, **wire_env(base), "PYTHONUNBUFFERED": "1"}
        km, kc = start_new_kernel(kernel_name="python3", env=env, cwd="/tmp")
        try:
            setup = f"from aix_jupyter import ModelWidget\nw = ModelWidget({model_id!r})\ndisplay(w)\n"
            _execute(kc, setup, 60)
            code = f"r = w.stream(text='hi')\nassert r.data == w.text and len(w.text) == {len(text)}\n"
            _, iopub = _execute(kc, code, 60 + 3 * n / RATE)
            where = _execute(kc, "import aix_jupyter; print(aix_jupyter.__file__)", 30)[1]
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    source = "".join(m["content"].get("text", "") for m in where if m["msg_type"] == "stream").strip()
    kinds: dict[str, list[dict[str, Any]]] = {}
    for m in iopub:
        kinds.setdefault(m["msg_type"], []).append(m)
    by_kind = {kind: {"messages": len(ms), "bytes": _content_bytes(ms)} for kind, ms in kinds.items()}
    total = sum(v["bytes"] for v in by_kind.values())
    comm = by_kind.get("comm_msg", {"bytes": 0})["bytes"]
    text_bytes = len(text.encode())
    result = {
        "mode": "bytes",
        "label": label,
        "aix_jupyter": source,
        "chunks": n,
        "paced_chunks_per_second": RATE,
        "text_bytes": text_bytes,
        "iopub_bytes": total,
        "by_message_type": by_kind,
        "ratios": {
            "IOPub bytes / text bytes": round(total / text_bytes, 3),
            "comm (widget) bytes / text bytes": round(comm / text_bytes, 3),
        },
        "target": "bytes <= 2x the text's own size",
        "met": {
            "widget traffic (what the stream sends)": comm <= 2 * text_bytes,
            "all IOPub bytes (with the saved fallback)": total <= 2 * text_bytes,
        },
    }
    print(json.dumps(result, indent=2))
    save(f"widget-bytes-{label}", result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds of 3 000 chunks instead of 4 of 5 000")
    parser.add_argument("--bytes", action="store_true", help="bytes on IOPub for one stream (see above)")
    parser.add_argument("--chunks", type=int, default=20000, help="--bytes: chunks in the stream")
    parser.add_argument("--label", default="after", help="--bytes: name of the measured code")
    args = parser.parse_args()
    if args.bytes:
        measure_bytes(args.chunks, args.label)
        return
    from jupyter_client.manager import start_new_kernel

    rounds, n = (2, 3000) if args.quick else (4, 5000)
    model_id = f"sse-{n}-{RATE}"
    expected_len = len("".join(f"tok{i} " for i in range(n)))
    with wire_server(OUR_PY) as base:
        env = {**os.environ, **wire_env(base), "PYTHONUNBUFFERED": "1"}
        km, kc = start_new_kernel(kernel_name="python3", env=env, cwd="/tmp")
        try:
            pid = km.provisioner.process.pid
            setup = (
                "from aix_jupyter import ModelWidget, ModelFactory\n"
                f"w = ModelWidget({model_id!r})\n"
                "display(w)\n"
                f"m = ModelFactory.get({model_id!r})\n"
            )
            _execute(kc, setup, 60)
            widget_code = (
                "w.clear()\n"
                "r = w.stream(text='hi')\n"
                f"assert len(w.text) == {expected_len}, (len(w.text), str(r.status))\n"
            )
            plain_code = (
                f"n = 0\nfor c in m.run_stream('hi'):\n    n += 1 if c.data else 0\nassert n == {n}, n\n"
            )
            _execute(kc, widget_code.replace(model_id, model_id), 60)  # warm-up
            runs: dict[str, list[dict[str, float]]] = {"widget": [], "plain": []}
            traits: dict[str, int] = {}
            for r in range(rounds):
                order = (("widget", widget_code), ("plain", plain_code))
                for name, code in order if r % 2 == 0 else order[::-1]:
                    cpu0, t0 = _cpu_seconds(pid), time.monotonic()
                    _, iopub = _execute(kc, code, 120)
                    wall, cpu = time.monotonic() - t0, _cpu_seconds(pid) - cpu0
                    comm = [m for m in iopub if m["msg_type"] == "comm_msg"]
                    for m in comm:
                        state = m["content"].get("data", {}).get("state", {})
                        key = ",".join(sorted(state)) or m["content"].get("data", {}).get("method", "?")
                        traits[key] = traits.get(key, 0) + 1
                    runs[name].append(
                        {
                            "wall": wall,
                            "cpu_pct": 100 * cpu / wall,
                            "comm_msgs": len(comm),
                            "iopub_msgs": len(iopub),
                            "comm_bytes": sum(len(json.dumps(m["content"])) for m in comm),
                        }
                    )
                    print(f"round {r + 1} {name}: {runs[name][-1]}", file=sys.stderr)
        finally:
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    wid, plain = runs["widget"], runs["plain"]
    msgs_per_s = median([x["comm_msgs"] / x["wall"] for x in wid])
    chunks_per_s = n / median([x["wall"] for x in wid])
    cpu_w, cpu_p = median([x["cpu_pct"] for x in wid]), median([x["cpu_pct"] for x in plain])
    result = {
        "mode": "quick" if args.quick else "full",
        "rounds": rounds,
        "chunks": n,
        "paced_chunks_per_second": RATE,
        "chunks_per_second": round(chunks_per_s, 1),
        "messages_per_second": round(msgs_per_s, 2),
        "comm_msgs_per_run": median([x["comm_msgs"] for x in wid]),
        "comm_msgs_by_state_keys_all_rounds": traits,
        "comm_kbytes_per_run": round(median([x["comm_bytes"] for x in wid]) / 1024, 1),
        "kernel_cpu_pct": round(cpu_w, 1),
        "kernel_cpu_pct_plain_run_stream": round(cpu_p, 1),
        "ratios": {
            "messages / chunks": round(msgs_per_s / chunks_per_s, 4),
            "kernel CPU widget / plain run_stream": round(cpu_w / cpu_p, 3) if cpu_p else None,
        },
        "target": "<= 20 frontend messages/s while streaming 1 000 chunks/s",
        "met": msgs_per_s <= 20,
    }
    print(json.dumps(result, indent=2))
    save("widget", result)


if __name__ == "__main__":
    main()
