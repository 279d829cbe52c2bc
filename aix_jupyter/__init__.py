"""aix_jupyter: run aiXplain-wire AI models from Jupyter.

The public API is importable from here. Names are loaded lazily (PEP 562) so that
``import aix_jupyter`` and ``%load_ext aix_jupyter`` stay fast: httpx, pydantic and
ipywidgets are imported only when a name that needs them is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # client core
    "Model": "aix_jupyter.core.model",
    "ModelFactory": "aix_jupyter.core.factory",
    "ModelResponse": "aix_jupyter.core.response",
    "ModelResponseStreamer": "aix_jupyter.core.streaming",
    "ModelParameters": "aix_jupyter.core.parameters",
    "Parameter": "aix_jupyter.core.parameters",
    "ResponseStatus": "aix_jupyter.core.enums",
    "AssetStatus": "aix_jupyter.core.enums",
    "FunctionType": "aix_jupyter.core.enums",
    "Function": "aix_jupyter.core.enums",
    "FinetuneStatus": "aix_jupyter.core.finetune",
    "RunEvent": "aix_jupyter.core.events",
    "AixError": "aix_jupyter.core.errors",
    "ConfigurationError": "aix_jupyter.core.errors",
    "ParameterError": "aix_jupyter.core.errors",
    "RequestError": "aix_jupyter.core.errors",
    "UnsafePollURLError": "aix_jupyter.core.errors",
    "RunCancelled": "aix_jupyter.core.errors",
    "BatchEvent": "aix_jupyter.core.batch",
    "BatchInterrupted": "aix_jupyter.core.batch",
    "BatchResult": "aix_jupyter.core.batch",
    "Comparison": "aix_jupyter.core.compare",
    "compare": "aix_jupyter.core.compare",
    "acompare": "aix_jupyter.core.compare",
    # embedded backend: serve your own Python functions as models
    "register_model": "aix_jupyter.backend.registry",
    # notebook layer
    "ModelWidget": "aix_jupyter.widgets",
}

__all__ = [
    "AixError",
    "AssetStatus",
    "BatchEvent",
    "BatchInterrupted",
    "BatchResult",
    "Comparison",
    "ConfigurationError",
    "FinetuneStatus",
    "Function",
    "FunctionType",
    "Model",
    "ModelFactory",
    "ModelParameters",
    "ModelResponse",
    "ModelResponseStreamer",
    "ModelWidget",
    "Parameter",
    "ParameterError",
    "RequestError",
    "ResponseStatus",
    "RunCancelled",
    "RunEvent",
    "UnsafePollURLError",
    "__version__",
    "acompare",
    "compare",
    "load_ipython_extension",
    "register_model",
    "unload_ipython_extension",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aix_jupyter' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%aix`` magics (``%load_ext aix_jupyter``)."""
    from aix_jupyter.magics import load_ipython_extension as _load

    _load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    from aix_jupyter.magics import unload_ipython_extension as _unload

    _unload(ipython)


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from aix_jupyter.backend.registry import register_model
    from aix_jupyter.core.batch import BatchEvent, BatchInterrupted, BatchResult
    from aix_jupyter.core.compare import Comparison, acompare, compare
    from aix_jupyter.core.enums import AssetStatus, Function, FunctionType, ResponseStatus
    from aix_jupyter.core.errors import (
        AixError,
        ConfigurationError,
        ParameterError,
        RequestError,
        RunCancelled,
        UnsafePollURLError,
    )
    from aix_jupyter.core.events import RunEvent
    from aix_jupyter.core.factory import ModelFactory
    from aix_jupyter.core.finetune import FinetuneStatus
    from aix_jupyter.core.model import Model
    from aix_jupyter.core.parameters import ModelParameters, Parameter
    from aix_jupyter.core.response import ModelResponse
    from aix_jupyter.core.streaming import ModelResponseStreamer
    from aix_jupyter.widgets import ModelWidget
