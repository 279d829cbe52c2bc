"""Built-in models: real, offline, their data shipped inside PyPI wheels.

Heavy libraries are imported at a model's first run, never at server start.
"""

from __future__ import annotations

from aix_jupyter.backend.catalog import ModelSpec


def builtin_specs() -> list[ModelSpec]:
    """Fresh specs of every built-in model (in catalog order)."""
    from aix_jupyter.backend.models.demo import countdown_spec, typewriter_spec
    from aix_jupyter.backend.models.nlp import keywords_spec, langid_spec, sentiment_spec
    from aix_jupyter.backend.models.smollm2 import smollm2_spec

    return [
        sentiment_spec(),
        langid_spec(),
        keywords_spec(),
        smollm2_spec(),
        countdown_spec(),
        typewriter_spec(),
    ]
