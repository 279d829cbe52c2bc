"""LLM structured output and conversations: schema-valid answers, grammar cost, per-turn overhead.

    .venv/bin/python benchmarks/bench_llm.py [--quick]

Our side only, in one process. Two parts, each bounded in count and time:

1. **Structured output on the embedded SmolLM2** (``local/smollm2-135m``, started on loopback by the
   client itself). ``LLM.run(review, response_format=Review)`` where ``Review`` is a pydantic class
   with an enum (``mood``), an integer with bounds (``stars``, 1-5) and a string (``summary``); sampled
   (temperature 0.8, a different ``seed`` each run) over 10 different reviews, so the 50 answers
   differ, streamed. Every answer must end SUCCESS with ``parsed`` a ``Review`` (counted: target
   50/50). Beside each, interleaved (the order alternating), the same run without
   ``response_format``; decoding tokens/s = (chunks - 1) / (last chunk - first chunk), one chunk per
   token, so the prompt's evaluation (the same for both) is left out. Median tokens/s with the grammar
   / without (target >= 0.8x).
2. **Per-turn client overhead of a conversation** against ``benchmarks/wireserver.py`` (its own
   process, answers at once). Each round: a 10-turn ``Conversation`` and, interleaved turn by turn,
   a bare ``LLM.run`` of the same message with the same system message and history (the conversation's
   history before that turn), whose order alternates. Per-turn time; conversation / bare run, median
   of the per-round sums (target <= 1.05x).
"""

from __future__ import annotations

import argparse
import enum
import os
import statistics
import time
from typing import Any

from common import CONFIG_VARS, median, previous, save, wire_server

for _var in (*CONFIG_VARS, "AIX_CACHE", "AIX_RECORD", "AIX_REPLAY"):  # the embedded backend, no stores
    os.environ.pop(_var, None)

MODEL = "local/smollm2-135m"
REVIEWS = [
    "I loved this film, the acting was superb.",
    "Terrible plot, I walked out after an hour.",
    "It was fine. Nothing special, nothing awful.",
    "The soundtrack alone is worth the ticket!",
    "Boring, predictable and far too long.",
    "A charming little story with a great cast.",
    "I fell asleep twice. Avoid.",
    "Decent effects, weak dialogue.",
    "One of the best films of the year.",
    "Not my kind of movie, but well made.",
]
PART_BUDGET = 1200.0


def structured_part(runs: int) -> dict[str, Any]:
    from pydantic import BaseModel, Field

    from aix_jupyter import LLM, ModelFactory, ResponseStatus

    class Mood(enum.StrEnum):
        happy = "happy"
        sad = "sad"
        neutral = "neutral"

    class Review(BaseModel):
        mood: Mood
        stars: int = Field(ge=1, le=5)
        summary: str

    llm = ModelFactory.get(MODEL)
    assert isinstance(llm, LLM)
    llm.run("warm up", max_tokens=4)
    valid, failures = 0, []
    rates: dict[str, list[float]] = {"grammar": [], "free": []}
    started = time.monotonic()
    for i in range(runs):
        if time.monotonic() - started > PART_BUDGET:
            break
        text = f"Review: {REVIEWS[i % len(REVIEWS)]}\nClassify the review."
        common: dict[str, Any] = {"temperature": 0.8, "max_tokens": 96, "parameters": {"seed": i}}
        order = ("grammar", "free") if i % 2 == 0 else ("free", "grammar")
        for side in order:
            fmt = Review if side == "grammar" else None
            times: list[float] = []
            final = None
            for chunk in llm.run(text, response_format=fmt, stream=True, **common):
                if chunk.status is ResponseStatus.IN_PROGRESS:
                    times.append(time.perf_counter())  # one chunk per token
                else:
                    final = chunk
            if len(times) > 2:  # decoding only: from the first token to the last
                rates[side].append((len(times) - 1) / (times[-1] - times[0]))
            if side == "grammar":
                if final is not None and final.ok and isinstance(final.parsed, Review):
                    valid += 1
                else:
                    failures.append(getattr(final, "error_message", "no end"))
    done = len(rates["grammar"])
    ratio = median(rates["grammar"]) / median(rates["free"])
    return {
        "runs": done,
        "valid": valid,
        "failures": failures[:5],
        "tokens_per_s_grammar": round(median(rates["grammar"]), 1),
        "tokens_per_s_free": round(median(rates["free"]), 1),
        "ratio": round(ratio, 3),
        "valid_target": f"{done}/{done}",
        "ratio_target": ">= 0.8x",
        "met": valid == done and ratio >= 0.8,
    }


def conversation_part(rounds: int, turns: int = 10) -> dict[str, Any]:
    from aix_jupyter import LLM, Conversation

    with wire_server() as base:
        llm = LLM("echo", "Echo", api_key="bench-key", url=f"{base}/api/v1/execute", supports_streaming=True)
        system = "You are terse."
        for _ in range(20):  # warm up both paths
            llm.run("warm", context=system, history=[])
        chat_sums, bare_sums, chat_turns, bare_turns = [], [], [], []
        for rnd in range(rounds):
            chat = Conversation(llm, system, {"max_tokens": 32})
            chat_total = bare_total = 0.0
            for turn in range(turns):
                text = f"message {rnd}-{turn}: tell me more about the weather today"
                history = chat.history
                first_chat = (rnd + turn) % 2 == 0
                for side in ("chat", "bare") if first_chat else ("bare", "chat"):
                    t0 = time.perf_counter()
                    if side == "chat":
                        r = chat.send(text)
                    else:
                        r = llm.run(text, context=system, history=history, max_tokens=32)
                    elapsed = time.perf_counter() - t0
                    assert r.ok, r.error_message
                    if side == "chat":
                        chat_total += elapsed
                        chat_turns.append(elapsed)
                    else:
                        bare_total += elapsed
                        bare_turns.append(elapsed)
            assert chat.turns == turns
            chat_sums.append(chat_total)
            bare_sums.append(bare_total)
    ratio = median(chat_sums) / median(bare_sums)
    paired = statistics.median(c / b for c, b in zip(chat_sums, bare_sums, strict=True))
    return {
        "rounds": rounds,
        "turns": turns,
        "per_turn_us_conversation": round(median(chat_turns) * 1e6, 1),
        "per_turn_us_bare_run": round(median(bare_turns) * 1e6, 1),
        "ratio": round(ratio, 3),
        "ratio_paired": round(paired, 3),
        "target": "<= 1.05x",
        "met": ratio <= 1.05,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-structured", action="store_true")
    parser.add_argument("--skip-conversation", action="store_true")
    args = parser.parse_args()
    mode = "quick" if args.quick else "full"
    kept = previous("llm")  # a part skipped keeps its last figures
    result: dict[str, Any] = {}
    if args.skip_conversation:
        result["conversation"] = kept.get("conversation")
    else:
        result["conversation"] = {"mode": mode, **conversation_part(10 if args.quick else 40)}
        print("conversation:", result["conversation"])
    if args.skip_structured:
        result["structured"] = kept.get("structured")
    else:
        result["structured"] = {"mode": mode, **structured_part(10 if args.quick else 50)}
        print("structured:", result["structured"])
    save("llm", {k: v for k, v in result.items() if v})


if __name__ == "__main__":
    main()
