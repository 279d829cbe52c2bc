"""Enumerations of the aiXplain wire (string values, exactly as sent and received)."""

from __future__ import annotations

from enum import Enum


class _StrEnum(str, Enum):  # noqa: UP042 - StrEnum changes format(); keep str + Enum
    def __str__(self) -> str:
        return str(self.value)


class ResponseStatus(_StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


class AssetStatus(_StrEnum):
    DRAFT = "draft"
    HIDDEN = "hidden"
    SCHEDULED = "scheduled"
    ONBOARDING = "onboarding"
    ONBOARDED = "onboarded"
    PENDING = "pending"
    FAILED = "failed"
    TRAINING = "training"
    REJECTED = "rejected"
    ENABLING = "enabling"
    DELETING = "deleting"
    DISABLED = "disabled"
    DELETED = "deleted"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELING = "canceling"
    CANCELED = "canceled"
    DEPRECATED_DRAFT = "deprecated_draft"


class FunctionType(_StrEnum):
    AI = "ai"
    SEGMENTOR = "segmentor"
    RECONSTRUCTOR = "reconstructor"
    UTILITY = "utility"
    METRIC = "metric"
    SEARCH = "search"
    CONNECTOR = "connector"
    CONNECTION = "connection"
    MCP_CONNECTION = "mcpconnection"
    MCPSERVER = "mcpserver"


class Function(_StrEnum):
    """Model functions (slugs). Unknown slugs met on the wire are kept as plain strings."""

    TEXT_GENERATION = "text-generation"
    TRANSLATION = "translation"
    SENTIMENT_ANALYSIS = "sentiment-analysis"
    LANGUAGE_IDENTIFICATION = "language-identification"
    SPEECH_RECOGNITION = "speech-recognition"
    SPEECH_SYNTHESIS = "speech-synthesis"
    TEXT_EMBEDDING = "text-embedding"
    KEYWORD_EXTRACTION = "keyword-extraction"
    SUMMARIZATION = "summarization"
    TEXT_CLASSIFICATION = "text-classification"
    IMAGE_GENERATION = "image-generation"
    UTILITIES = "utilities"

    @classmethod
    def parse(cls, value: object) -> Function | str | None:
        """Map a wire value (slug, ``{"id": slug}`` dict, enum or None) to a Function, else the string."""
        if value is None or isinstance(value, Function):
            return value
        if isinstance(value, dict):
            value = value.get("id") or value.get("name")
            if value is None:
                return None
        text = str(value)
        try:
            return cls(text)
        except ValueError:
            return text
