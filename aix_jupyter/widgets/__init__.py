"""The notebook layer's widgets: ``ModelWidget``, ``ChatWidget``, ``ModelBrowser`` and the run progress bar.

Names load lazily so that importing this package loads no ipywidgets until a widget is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aix_jupyter import _lazy

_EXPORTS: dict[str, str] = {
    "BatchWidgetProgress": "aix_jupyter.widgets.progress",
    "ChatWidget": "aix_jupyter.widgets.chat",
    "ModelBrowser": "aix_jupyter.widgets.browser",
    "ModelWidget": "aix_jupyter.widgets.model_widget",
    "WidgetProgress": "aix_jupyter.widgets.progress",
    "make_batch_progress": "aix_jupyter.widgets.progress",
    "make_progress": "aix_jupyter.widgets.progress",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = _lazy.exports(__name__, _EXPORTS, globals(), __all__)


if TYPE_CHECKING:  # pragma: no cover
    # ``X as X``: an explicit re-export (``__all__`` is derived from ``_EXPORTS``)
    from aix_jupyter.widgets.browser import ModelBrowser as ModelBrowser
    from aix_jupyter.widgets.chat import ChatWidget as ChatWidget
    from aix_jupyter.widgets.model_widget import ModelWidget as ModelWidget
    from aix_jupyter.widgets.progress import BatchWidgetProgress as BatchWidgetProgress
    from aix_jupyter.widgets.progress import WidgetProgress as WidgetProgress
    from aix_jupyter.widgets.progress import make_batch_progress as make_batch_progress
    from aix_jupyter.widgets.progress import make_progress as make_progress
