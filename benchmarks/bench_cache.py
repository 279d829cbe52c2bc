"""Response cache and cassettes: hit vs miss, a fully cached ``map``, a replayed stream.

    .venv/bin/python benchmarks/bench_cache.py [--quick]

Our side only (the SDK has no cache), in one process, against the embedded backend (started on
loopback by the client itself: no key or URL in the environment). Three parts, each bounded in
count and time:

1. **Hit vs miss.** ``ModelFactory.get("local/sentiment-vader").run(text)`` with the cache on (a SQLite
   file in a temporary folder, ``recall.set_cache``). Round by round: a *miss* (a new input: it goes
   to the server and its SUCCESS is stored), a *hit* (the same input again: answered from the file),
   and, beside them, a *plain* run (another new input, ``cache=False``: no store, only the flag),
   whose place in the round alternates. p50 and p99 of each; hit / miss and miss / plain.
2. **Fully cached ``map``.** Each round: ``model.map(inputs, concurrency=16)`` over 1 000 new inputs
   (the fill: every item a miss, stored), then the same ``map`` again (every item a hit). Every item
   of the second is checked: marked ``cache`` (``recall.recall_of``) and with the fill's data.
   Median items/s of each; target >= 3 000 items/s for the cached one.
3. **Replayed stream.** A registered generator yields 60 distinct chunks, 10 ms apart. Each round:
   one ``run_stream`` recorded to a new cassette (``recall.set_record``), then replayed from it at
   ``speed=1`` and ``speed=0`` (``recall.set_replay``). The chunk texts must be identical (asserted,
   and the cassette must hold 60 chunks); wall time replay / record at speed 1 (expected ~1.0x)
   and the speed-0 replay's time. Medians over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from common import CONFIG_VARS, median, pct, save

for _var in (*CONFIG_VARS, "AIX_CACHE", "AIX_RECORD", "AIX_REPLAY"):  # the embedded backend, no stores
    os.environ.pop(_var, None)

MODEL = "local/sentiment-vader"
STREAM_MODEL = "local/bench-stream60"
CHUNKS = 60
CHUNK_GAP = 0.010  # seconds between two chunks of the streaming model
MAP_ITEMS = 1000
CONCURRENCY = 16
MAP_TARGET = 3000.0  # items/s of a fully cached map
PART_BUDGET = 300.0  # seconds a part may take before it stops early


def _text(kind: str, i: int) -> str:
    """A unique input of about the same length for every side and round."""
    return f"{kind} {i:06d}: the film was surprisingly good, though the ending felt rushed."


def _us(seconds: list[float]) -> dict[str, float]:
    return {
        "p50": round(pct(seconds, 0.5) * 1e6, 1),
        "p99": round(pct(seconds, 0.99) * 1e6, 1),
        "mean": round(sum(seconds) / len(seconds) * 1e6, 1),
    }


# ------------------------------------------------------------------------------------------ part 1
def hit_vs_miss(model: Any, rounds: int) -> dict[str, Any]:
    from aix_jupyter.core import recall

    sides: dict[str, list[float]] = {"miss": [], "hit": [], "plain": []}

    def one(side: str, i: int) -> None:
        if side == "plain":
            text, cache = _text("plain", i), False
        else:
            text, cache = _text("cached", i), None  # None: the cache set for the process
        t0 = time.perf_counter()
        r = model.run(text, cache=cache)
        took = time.perf_counter() - t0
        source = (recall.recall_of(r) or recall.RecallMark("")).source
        assert r.status == "SUCCESS", r
        expected = {"miss": None, "hit": "cache", "plain": None}[side]
        assert source == expected, (side, source)
        if i >= 0:
            sides[side].append(took)

    for i in range(-20, 0):  # warm-up: connection, first-call caches, the SQLite file
        for side in ("miss", "hit", "plain"):
            one(side, i)
    deadline = time.monotonic() + PART_BUDGET
    for i in range(rounds):
        # the miss must come before its hit; the plain run goes first or last, turn about
        order = ("plain", "miss", "hit") if i % 2 == 0 else ("miss", "hit", "plain")
        for side in order:
            one(side, i)
        if time.monotonic() > deadline:
            break
    us = {side: _us(v) for side, v in sides.items()}
    return {
        "rounds": len(sides["hit"]),
        "us": us,
        "ratios": {
            "hit / miss (p50)": round(us["hit"]["p50"] / us["miss"]["p50"], 3),
            "hit / miss (p99)": round(us["hit"]["p99"] / us["miss"]["p99"], 3),
            "miss / plain (p50)": round(us["miss"]["p50"] / us["plain"]["p50"], 3),
            "miss / plain (p99)": round(us["miss"]["p99"] / us["plain"]["p99"], 3),
        },
    }


# ------------------------------------------------------------------------------------------ part 2
def cached_map(model: Any, rounds: int) -> dict[str, Any]:
    from aix_jupyter.core import recall

    fill_rate: list[float] = []
    cached_rate: list[float] = []
    deadline = time.monotonic() + PART_BUDGET
    for r in range(rounds):
        inputs = [_text(f"map{r}", i) for i in range(MAP_ITEMS)]
        t0 = time.perf_counter()
        filled = model.map(inputs, concurrency=CONCURRENCY)
        fill_s = time.perf_counter() - t0
        assert filled.ok and len(filled) == MAP_ITEMS, filled
        assert filled.recalled == 0, f"the fill found {filled.recalled} items already stored"
        t0 = time.perf_counter()
        again = model.map(inputs, concurrency=CONCURRENCY)
        cached_s = time.perf_counter() - t0
        assert again.ok and len(again) == MAP_ITEMS, again
        for i, (a, b) in enumerate(zip(filled, again, strict=True)):
            mark = recall.recall_of(b)
            assert mark is not None and mark.source == "cache", (i, mark)
            assert b.data == a.data, (i, a.data, b.data)
        fill_rate.append(MAP_ITEMS / fill_s)
        cached_rate.append(MAP_ITEMS / cached_s)
        if time.monotonic() > deadline:
            break
    cached, fill = median(cached_rate), median(fill_rate)
    return {
        "rounds": len(cached_rate),
        "items": MAP_ITEMS,
        "concurrency": CONCURRENCY,
        "items_per_s": {"cached": round(cached), "fill (uncached)": round(fill)},
        "min_max_items_per_s": {
            "cached": [round(min(cached_rate)), round(max(cached_rate))],
            "fill (uncached)": [round(min(fill_rate)), round(max(fill_rate))],
        },
        "all_marked_cache_and_equal": True,  # asserted above, item by item
        "ratio cached / uncached": round(cached / fill, 2),
        "target": f">= {MAP_TARGET:.0f} items/s cached",
        "met": cached >= MAP_TARGET,
    }


# ------------------------------------------------------------------------------------------ part 3
def _register_stream_model() -> None:
    from aix_jupyter import register_model

    @register_model(id=STREAM_MODEL, function="text-generation")
    def stream60(text: str):  # type: ignore[no-untyped-def]
        """Sixty distinct chunks, 10 ms apart."""
        for i in range(CHUNKS):
            time.sleep(CHUNK_GAP)
            yield f"<{text}:{i:02d}> "


def _stream_texts(model: Any) -> tuple[list[str], float, Any]:
    t0 = time.perf_counter()
    stream = model.run_stream("go")
    texts = [c.data for c in stream if c.status == "IN_PROGRESS"]
    took = time.perf_counter() - t0
    assert stream.status == "SUCCESS", stream.error_message
    return texts, took, stream


def _cassette_chunks(path: Path) -> int:
    runs = [json.loads(line) for line in path.read_text().splitlines()[1:]]
    runs = [r for r in runs if r.get("kind") == "run" and r.get("model") == STREAM_MODEL]
    assert len(runs) == 1, f"{len(runs)} runs of {STREAM_MODEL} in {path}"
    return len(runs[0]["chunks"])


def replayed_stream(rounds: int, folder: Path) -> dict[str, Any]:
    from aix_jupyter import ModelFactory
    from aix_jupyter.core import recall

    _register_stream_model()
    model = ModelFactory.get(STREAM_MODEL)
    recall.set_cache(None)  # the runs recorded here go to the server
    _stream_texts(model)  # warm-up: the model's first run
    wall: dict[str, list[float]] = {"record": [], "replay speed 1": [], "replay speed 0": []}
    ratios: list[float] = []
    recorded_chunks: list[int] = []
    identical = True
    deadline = time.monotonic() + PART_BUDGET
    for r in range(rounds):
        path = folder / f"stream-{r}.jsonl"
        recall.set_record(path)
        try:
            texts, took, _ = _stream_texts(model)
        finally:
            recall.set_record(None)
        wall["record"].append(took)
        assert len(texts) == CHUNKS and len(set(texts)) == CHUNKS, texts
        recorded_chunks.append(_cassette_chunks(path))
        assert recorded_chunks[-1] == CHUNKS, f"the cassette holds {recorded_chunks[-1]} chunks"
        for speed in (1, 0):
            recall.set_replay(path, speed=speed)
            try:
                again, took, stream = _stream_texts(model)
            finally:
                recall.set_replay(None)
            mark = recall.recall_of(stream)
            assert mark is not None and mark.source == "cassette", mark
            identical = identical and again == texts
            assert again == texts, f"replay at speed {speed} differs: {again[:3]}... vs {texts[:3]}..."
            wall[f"replay speed {speed}"].append(took)
        ratios.append(wall["replay speed 1"][-1] / wall["record"][-1])
        if time.monotonic() > deadline:
            break
    ms = {k: round(median(v) * 1000, 1) for k, v in wall.items()}
    return {
        "rounds": len(ratios),
        "chunks": CHUNKS,
        "chunk_gap_ms": CHUNK_GAP * 1000,
        "cassette_chunks": recorded_chunks,
        "chunks_identical": identical,
        "median_ms": ms,
        "ratios": {
            "replay speed 1 / record (wall)": round(ms["replay speed 1"] / ms["record"], 3),
            "replay speed 1 / record, median of per-round ratios": round(median(ratios), 3),
            "replay speed 0 / record (wall)": round(ms["replay speed 0"] / ms["record"], 4),
        },
    }


# ------------------------------------------------------------------------------------------ driver
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="300 hit/miss rounds, 3 map rounds, 3 stream rounds"
    )
    parser.add_argument("--rounds", type=int, help="hit/miss rounds (2 000; quick 300)")
    parser.add_argument("--map-rounds", type=int, help="map rounds (7; quick 3)")
    parser.add_argument("--stream-rounds", type=int, help="stream rounds (5; quick 3)")
    args = parser.parse_args()
    rounds = args.rounds or (300 if args.quick else 2000)
    map_rounds = args.map_rounds or (3 if args.quick else 7)
    stream_rounds = args.stream_rounds or (3 if args.quick else 5)

    from aix_jupyter import ModelFactory
    from aix_jupyter.core import recall

    started, load_at_start = time.monotonic(), [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="aix-bench-cache-") as tmp:
        folder = Path(tmp)
        recall.set_cache(folder / "responses.sqlite3")
        try:
            model = ModelFactory.get(MODEL)
            hm = hit_vs_miss(model, rounds)
            print(
                f"hit vs miss ({hm['rounds']} rounds): hit p50 {hm['us']['hit']['p50']:.0f} us, "
                f"miss p50 {hm['us']['miss']['p50']:.0f} us, plain p50 {hm['us']['plain']['p50']:.0f} us; "
                f"hit/miss {hm['ratios']['hit / miss (p50)']:.3f}x p50, "
                f"{hm['ratios']['hit / miss (p99)']:.3f}x p99",
                flush=True,
            )
            mp = cached_map(model, map_rounds)
            print(
                f"map of {MAP_ITEMS} ({mp['rounds']} rounds): cached {mp['items_per_s']['cached']} items/s, "
                f"fill {mp['items_per_s']['fill (uncached)']} items/s ({mp['ratio cached / uncached']}x); "
                f"target >= {MAP_TARGET:.0f}: {'met' if mp['met'] else 'NOT met'}",
                flush=True,
            )
            st = replayed_stream(stream_rounds, folder)
            print(
                f"stream of {CHUNKS} chunks ({st['rounds']} rounds): identical {st['chunks_identical']}; "
                f"record {st['median_ms']['record']:.0f} ms, replay speed 1 "
                f"{st['median_ms']['replay speed 1']:.0f} ms "
                f"({st['ratios']['replay speed 1 / record (wall)']:.3f}x), speed 0 "
                f"{st['median_ms']['replay speed 0']:.1f} ms",
                flush=True,
            )
        finally:
            recall.reset()
    result = {
        "mode": "quick" if args.quick else "full",
        "hit_miss": hm,
        "map": mp,
        "stream": st,
        "targets": {
            "cached map": f">= {MAP_TARGET:.0f} items/s",
            "stream replay": "chunks identical (60 in the cassette); replay at speed 1 ~1.0x the record",
        },
        "met": {"cached map": mp["met"], "chunks identical": st["chunks_identical"]},
        "seconds": round(time.monotonic() - started, 1),
        # (common.save reads the machine's "loadavg_at_start" when it writes, i.e. at the end)
        "loadavg_at_start_of_run": load_at_start,
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result, indent=2))
    save("cache", result)


if __name__ == "__main__":
    main()
