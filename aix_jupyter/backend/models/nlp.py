"""Classic NLP models: sentiment (vaderSentiment), language identification (langdetect), keywords (yake)."""

from __future__ import annotations

import inspect
import threading
from functools import cache
from typing import Any

from aix_jupyter.backend.catalog import ModelSpec, param
from aix_jupyter.backend.jobs import JobContext
from aix_jupyter.core.parameters import ModelParameters

_lock = threading.Lock()

# -- sentiment ----------------------------------------------------------------------------------------


@cache
def _vader() -> Any:
    with _lock:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        return SentimentIntensityAnalyzer()


def run_sentiment(inputs: dict[str, Any], ctx: JobContext) -> str:
    scores = _vader().polarity_scores(inputs["data"])
    threshold = float(inputs["threshold"])
    compound = scores["compound"]
    label = "POSITIVE" if compound >= threshold else "NEGATIVE" if compound <= -threshold else "NEUTRAL"
    ctx.details.update({k: float(v) for k, v in scores.items()})
    return label


def sentiment_spec() -> ModelSpec:
    return ModelSpec(
        id="local/sentiment-vader",
        name="VADER Sentiment",
        function="sentiment-analysis",
        runner=run_sentiment,
        description="Rule-based English sentiment (vaderSentiment): POSITIVE, NEGATIVE or NEUTRAL; "
        "the compound and pos/neu/neg scores come in details.",
        params=ModelParameters(
            [
                param("data", "text", required=True, description="The text to classify."),
                param(
                    "threshold",
                    "number",
                    default=0.05,
                    minimum=0.0,
                    maximum=1.0,
                    step=0.01,
                    description="Compound scores within ±threshold are NEUTRAL.",
                ),
            ]
        ),
        source_languages=("en",),
        concurrency=4,
    )


# -- language identification --------------------------------------------------------------------------


@cache
def _langdetect_factory() -> Any:
    with _lock:
        from langdetect import detector_factory

        detector_factory.init_factory()
        return detector_factory._factory


def run_langid(inputs: dict[str, Any], ctx: JobContext) -> str:
    detector = _langdetect_factory().create()
    detector.seed = 0  # deterministic, without touching langdetect's global seed
    detector.append(inputs["data"])
    try:
        ranked = detector.get_probabilities()
    except Exception as exc:  # langdetect's LangDetectException: e.g. "No features in text."
        raise ValueError(f"cannot identify the language: {exc}") from None
    top = ranked[: int(inputs["candidates"])]
    ctx.details["languages"] = [{"language": r.lang, "probability": round(float(r.prob), 6)} for r in top]
    return str(ranked[0].lang)


def langid_spec() -> ModelSpec:
    return ModelSpec(
        id="local/langid-langdetect",
        name="langdetect Language Identification",
        function="language-identification",
        runner=run_langid,
        description="Identifies the language of a text among 55 (langdetect, deterministic): an ISO 639-1 "
        "code such as 'en'; the ranked candidates come in details.",
        params=ModelParameters(
            [
                param("data", "text", required=True, description="The text whose language to identify."),
                param(
                    "candidates",
                    "number",
                    default=3,
                    minimum=1,
                    maximum=10,
                    step=1,
                    sub_type="integer",
                    description="How many ranked candidates to report in details.",
                ),
            ]
        ),
        concurrency=4,
    )


# -- keyword extraction -------------------------------------------------------------------------------

YAKE_LANGUAGES = ("en", "pt", "es", "fr", "de", "it", "nl", "ru", "pl", "sv", "da", "fi", "tr", "ar", "zh")


def run_keywords(inputs: dict[str, Any], ctx: JobContext) -> list[str]:
    import yake

    accepted = inspect.signature(yake.KeywordExtractor).parameters
    dedup = "dedup_lim" if "dedup_lim" in accepted else "dedupLim"
    extractor = yake.KeywordExtractor(
        lan=inputs["language"],
        n=int(inputs["ngram_size"]),
        top=int(inputs["max_keywords"]),
        **{dedup: float(inputs["dedup_threshold"])},
    )
    found = extractor.extract_keywords(inputs["data"])
    ctx.details["scores"] = [{"keyword": str(k), "score": float(s)} for k, s in found]
    return [str(k) for k, _ in found]


def keywords_spec() -> ModelSpec:
    return ModelSpec(
        id="local/keywords-yake",
        name="YAKE Keyword Extraction",
        function="keyword-extraction",
        runner=run_keywords,
        description="Unsupervised keyword extraction (yake): the most relevant keywords, best first; "
        "their scores (lower is better) come in details.",
        params=ModelParameters(
            [
                param("data", "text", required=True, description="The text to extract keywords from."),
                param(
                    "language",
                    "label",
                    default="en",
                    options=YAKE_LANGUAGES,
                    description="Language of the text (chooses the stop-word list).",
                ),
                param(
                    "max_keywords",
                    "number",
                    default=10,
                    minimum=1,
                    maximum=100,
                    step=1,
                    sub_type="integer",
                    description="How many keywords to return.",
                ),
                param(
                    "ngram_size",
                    "number",
                    default=3,
                    minimum=1,
                    maximum=6,
                    step=1,
                    sub_type="integer",
                    description="Longest keyword, in words.",
                ),
                param(
                    "dedup_threshold",
                    "number",
                    default=0.9,
                    minimum=0.1,
                    maximum=1.0,
                    step=0.05,
                    description="Similarity above which near-duplicate keywords are dropped.",
                ),
            ]
        ),
        concurrency=2,
    )
