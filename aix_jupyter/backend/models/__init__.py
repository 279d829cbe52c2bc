"""Built-in models: real, offline, their data shipped inside PyPI wheels.

Heavy libraries are imported at a model's first run, never at server start. A model whose Python extra
is not installed stays listed; its run fails with a one-line install hint (:func:`unavailable` lists
them). The translation model, whose engine is a Debian package, is listed only where it is installed.
"""

from __future__ import annotations

from aix_jupyter.backend.catalog import ModelSpec


def builtin_specs() -> list[ModelSpec]:
    """Fresh specs of every built-in model (in catalog order)."""
    from aix_jupyter.backend.models.apertium import apertium_spec
    from aix_jupyter.backend.models.demo import countdown_spec, typewriter_spec
    from aix_jupyter.backend.models.e5 import e5_spec
    from aix_jupyter.backend.models.nlp import keywords_spec, langid_spec, sentiment_spec
    from aix_jupyter.backend.models.ocr import ocr_spec
    from aix_jupyter.backend.models.piper import piper_spec
    from aix_jupyter.backend.models.smollm2 import smollm2_spec
    from aix_jupyter.backend.models.whisper import whisper_spec

    return [
        sentiment_spec(),
        langid_spec(),
        keywords_spec(),
        smollm2_spec(),
        whisper_spec(),
        piper_spec(),
        ocr_spec(),
        e5_spec(),
        apertium_spec(),
        countdown_spec(),
        typewriter_spec(),
    ]


def unavailable() -> dict[str, str]:
    """The built-in models that are not installed here, each with the command that installs it."""
    from aix_jupyter.backend.models import apertium, e5, ocr, piper, smollm2, whisper

    engines = (smollm2, whisper, piper, ocr, e5, apertium)
    return {engine.MODEL_ID: engine.INSTALL_HINT for engine in engines if not engine.available()}
