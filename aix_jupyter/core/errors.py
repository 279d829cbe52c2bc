"""Exception hierarchy of the client core.

    AixError
    ├── ConfigurationError      bad or conflicting configuration (keys, URLs)
    ├── ParameterError          a parameter or input that fails the model's schema (also a ValueError)
    │   └── UnknownParameterError   a name the schema does not define (also an AttributeError)
    ├── RequestError            the server could not be reached or answered something unusable
    │   └── UnsafePollURLError  a poll URL on a host the API key is not configured for
    ├── RunCancelled            a run was cancelled (KeyboardInterrupt, cancel())
    └── ReplayMiss              a run the cassette being replayed has no recording of

Every message is one line, names the culprit, says what to do, and never contains an API key.
"""

from __future__ import annotations


class AixError(Exception):
    """Base class of every error raised by aix_jupyter."""

    def _render_traceback_(self) -> list[str]:  # IPython: show one line, not a 40-line traceback
        return [f"\x1b[31m{type(self).__name__}\x1b[0m: {self}"]


class ConfigurationError(AixError):
    pass


class ParameterError(AixError, ValueError):
    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


class UnknownParameterError(ParameterError, AttributeError):
    """``params.nope`` / ``params["nope"]``; an AttributeError too, so ``hasattr`` and ``getattr`` work."""


class RequestError(AixError):
    pass


class UnsafePollURLError(RequestError):
    pass


class RunCancelled(AixError):
    pass


class ReplayMiss(AixError):
    """A run (or a metadata request) that the cassette being replayed has no recording of.

    Replaying answers from the cassette only: nothing goes to a server. ``model_id`` and ``input``
    (its start) name the run that was not found.
    """

    def __init__(self, message: str, *, model_id: str = "", input: str = "") -> None:
        super().__init__(message)
        self.model_id = model_id
        self.input = input
