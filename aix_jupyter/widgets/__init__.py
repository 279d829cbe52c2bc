"""The notebook layer's widgets: ``ModelWidget`` and the run progress bar.

Names load lazily so that importing this package loads no ipywidgets until a widget is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "ModelWidget": "aix_jupyter.widgets.model_widget",
    "WidgetProgress": "aix_jupyter.widgets.progress",
    "make_progress": "aix_jupyter.widgets.progress",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aix_jupyter.widgets' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover
    # ``X as X``: an explicit re-export (``__all__`` is derived from ``_EXPORTS``)
    from aix_jupyter.widgets.model_widget import ModelWidget as ModelWidget
    from aix_jupyter.widgets.progress import WidgetProgress as WidgetProgress
    from aix_jupyter.widgets.progress import make_progress as make_progress
