"""aix_jupyter: run aiXplain-wire AI models from Jupyter.

The public API is importable from here. Names are loaded lazily (PEP 562) so that
``import aix_jupyter`` and ``%load_ext aix_jupyter`` stay fast: httpx, pydantic and
ipywidgets are imported only when a name that needs them is first used.
"""

from __future__ import annotations

import importlib as _importlib
from collections.abc import Callable as _Callable
from typing import TYPE_CHECKING, Any

from aix_jupyter import _lazy
from aix_jupyter.core import errors as _errors
from aix_jupyter.core import hooks as _hooks

__version__ = "0.1.0"

# public name -> module that defines it (``__all__`` is derived from it)
_EXPORTS: dict[str, str] = {
    # client core
    "Model": "aix_jupyter.core.model",
    "LLM": "aix_jupyter.core.llm",
    "Conversation": "aix_jupyter.core.conversation",
    "ConversationBusy": "aix_jupyter.core.conversation",
    "ModelFactory": "aix_jupyter.core.factory",
    "ModelResponse": "aix_jupyter.core.response",
    "ModelResponseStreamer": "aix_jupyter.core.streaming",
    "ModelParameters": "aix_jupyter.core.parameters",
    "Parameter": "aix_jupyter.core.parameters",
    "ResponseStatus": "aix_jupyter.core.enums",
    "AssetStatus": "aix_jupyter.core.enums",
    "FunctionType": "aix_jupyter.core.enums",
    "Function": "aix_jupyter.core.enums",
    "Language": "aix_jupyter.core.enums",
    "SortBy": "aix_jupyter.core.enums",
    "SortOrder": "aix_jupyter.core.enums",
    "FinetuneStatus": "aix_jupyter.core.finetune",
    "RunEvent": "aix_jupyter.core.events",
    "RunOutcome": "aix_jupyter.core.events",
    "observe_session": "aix_jupyter.core.events",
    "AixError": "aix_jupyter.core.errors",
    "ConfigurationError": "aix_jupyter.core.errors",
    "ParameterError": "aix_jupyter.core.errors",
    "RequestError": "aix_jupyter.core.errors",
    "UnsafePollURLError": "aix_jupyter.core.errors",
    "RunCancelled": "aix_jupyter.core.errors",
    "BatchEvent": "aix_jupyter.core.batch_result",
    "BatchInterrupted": "aix_jupyter.core.batch_result",
    "BatchResult": "aix_jupyter.core.batch_result",
    "Comparison": "aix_jupyter.core.compare",
    "ComparisonInterrupted": "aix_jupyter.core.compare",
    "compare": "aix_jupyter.core.compare",
    "acompare": "aix_jupyter.core.compare",
    # media: fetch a model's output file (same deadlines, caps and key rules as runs)
    "download": "aix_jupyter.core.media",
    "adownload": "aix_jupyter.core.media",
    # response cache and cassettes (record a notebook's runs once, replay them offline)
    "ResponseCache": "aix_jupyter.core.cache",
    "CacheInfo": "aix_jupyter.core.cache",
    "CacheWarning": "aix_jupyter.core.cache",
    "Cassette": "aix_jupyter.core.cassette",
    "CassetteError": "aix_jupyter.core.cassette",
    "ReplayMiss": "aix_jupyter.core.errors",
    "set_cache": "aix_jupyter.core.recall",
    "set_record": "aix_jupyter.core.recall",
    "set_replay": "aix_jupyter.core.recall",
    "recall_of": "aix_jupyter.core.marks",
    "RecallMark": "aix_jupyter.core.marks",
    # embedded backend: serve your own Python functions as models
    "register_model": "aix_jupyter.backend.registry",
    "unregister_model": "aix_jupyter.backend.registry",
    "RegistrationError": "aix_jupyter.backend.registry",
    # notebook layer
    "ModelWidget": "aix_jupyter.widgets",
    "ModelBrowser": "aix_jupyter.widgets",
    "ChatWidget": "aix_jupyter.widgets",
    "MagicUsageError": "aix_jupyter.magics.errors",
    "RunFailed": "aix_jupyter.magics.errors",
}

__all__ = sorted([*_EXPORTS, "__version__", "load_ipython_extension", "unload_ipython_extension"])


__getattr__, __dir__ = _lazy.exports(__name__, _EXPORTS, globals(), __all__)


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%aix`` magics (``%load_ext aix_jupyter``)."""
    from aix_jupyter.magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove what ``load_ipython_extension`` registered (``%unload_ext aix_jupyter``)."""
    from aix_jupyter.magics import unload_ipython_extension as _unload

    _unload(ipython)


def _embedded_backend() -> tuple[str, str]:
    """The client core's default backend: the embedded one, imported and started on first use."""
    try:
        import aix_jupyter.backend.embedded as embedded
    except ImportError as exc:
        raise _errors.ConfigurationError(
            f"no API key or URL is configured and the embedded backend is unavailable ({exc}); "
            "set TEAM_API_KEY, or AIX_BACKEND_URL to an aiXplain-wire server"
        ) from None
    return embedded.ensure_running()


# The core knows no server of its own: the package gives it the embedded backend (not imported here).
_hooks.set_default_backend(_embedded_backend)


def _late(module: str, name: str) -> _Callable[..., Any]:
    """``module.name``, imported when first called."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(_importlib.import_module(module), name)(*args, **kwargs)

    return call


# The core's upper layers that lower ones call back (``core.hooks``: ``ModelResponse.save``, ``LLM.chat``).
_hooks.bind_late("download", _late("aix_jupyter.core.media", "download"))
_hooks.bind_late("adownload", _late("aix_jupyter.core.media", "adownload"))
_hooks.bind_late("conversation", _late("aix_jupyter.core.conversation", "Conversation"))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs; a test checks it matches _EXPORTS
    # ``X as X`` marks an explicit re-export
    from aix_jupyter.backend.registry import RegistrationError as RegistrationError
    from aix_jupyter.backend.registry import register_model as register_model
    from aix_jupyter.backend.registry import unregister_model as unregister_model
    from aix_jupyter.core.batch_result import BatchEvent as BatchEvent
    from aix_jupyter.core.batch_result import BatchInterrupted as BatchInterrupted
    from aix_jupyter.core.batch_result import BatchResult as BatchResult
    from aix_jupyter.core.cache import CacheInfo as CacheInfo
    from aix_jupyter.core.cache import CacheWarning as CacheWarning
    from aix_jupyter.core.cache import ResponseCache as ResponseCache
    from aix_jupyter.core.cassette import Cassette as Cassette
    from aix_jupyter.core.cassette import CassetteError as CassetteError
    from aix_jupyter.core.compare import Comparison as Comparison
    from aix_jupyter.core.compare import ComparisonInterrupted as ComparisonInterrupted
    from aix_jupyter.core.compare import acompare as acompare
    from aix_jupyter.core.compare import compare as compare
    from aix_jupyter.core.conversation import Conversation as Conversation
    from aix_jupyter.core.conversation import ConversationBusy as ConversationBusy
    from aix_jupyter.core.enums import AssetStatus as AssetStatus
    from aix_jupyter.core.enums import Function as Function
    from aix_jupyter.core.enums import FunctionType as FunctionType
    from aix_jupyter.core.enums import Language as Language
    from aix_jupyter.core.enums import ResponseStatus as ResponseStatus
    from aix_jupyter.core.enums import SortBy as SortBy
    from aix_jupyter.core.enums import SortOrder as SortOrder
    from aix_jupyter.core.errors import AixError as AixError
    from aix_jupyter.core.errors import ConfigurationError as ConfigurationError
    from aix_jupyter.core.errors import ParameterError as ParameterError
    from aix_jupyter.core.errors import ReplayMiss as ReplayMiss
    from aix_jupyter.core.errors import RequestError as RequestError
    from aix_jupyter.core.errors import RunCancelled as RunCancelled
    from aix_jupyter.core.errors import UnsafePollURLError as UnsafePollURLError
    from aix_jupyter.core.events import RunEvent as RunEvent
    from aix_jupyter.core.events import RunOutcome as RunOutcome
    from aix_jupyter.core.events import observe_session as observe_session
    from aix_jupyter.core.factory import ModelFactory as ModelFactory
    from aix_jupyter.core.finetune import FinetuneStatus as FinetuneStatus
    from aix_jupyter.core.llm import LLM as LLM
    from aix_jupyter.core.marks import RecallMark as RecallMark
    from aix_jupyter.core.marks import recall_of as recall_of
    from aix_jupyter.core.media import adownload as adownload
    from aix_jupyter.core.media import download as download
    from aix_jupyter.core.model import Model as Model
    from aix_jupyter.core.parameters import ModelParameters as ModelParameters
    from aix_jupyter.core.parameters import Parameter as Parameter
    from aix_jupyter.core.recall import set_cache as set_cache
    from aix_jupyter.core.recall import set_record as set_record
    from aix_jupyter.core.recall import set_replay as set_replay
    from aix_jupyter.core.response import ModelResponse as ModelResponse
    from aix_jupyter.core.streaming import ModelResponseStreamer as ModelResponseStreamer
    from aix_jupyter.magics.errors import MagicUsageError as MagicUsageError
    from aix_jupyter.magics.errors import RunFailed as RunFailed
    from aix_jupyter.widgets import ChatWidget as ChatWidget
    from aix_jupyter.widgets import ModelBrowser as ModelBrowser
    from aix_jupyter.widgets import ModelWidget as ModelWidget
