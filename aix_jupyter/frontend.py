"""Which frontend runs the current cell: the one answer the notebook layer's displays follow.

Three kinds, each with one behaviour for every display of the package:

=============  ===========================================  ===================================
kind           who                                          progress / ``%aix stream``
=============  ===========================================  ===================================
``live``       an interactive notebook frontend a person    a widget bar / one output updated
               looks at (JupyterLab, Notebook 7, VS Code)   in place, ending static
``headless``   a kernel driven by a headless executor       the final text line only / only
               (nbclient, nbconvert, papermill, nbval)      the final output
``terminal``   terminal IPython, plain Python               a text line (redrawn on a tty) /
                                                            chunks printed as they arrive
=============  ===========================================  ===================================

A kernel cannot see its frontend, so the guess uses two facts a kernel does know: it is an
ipykernel (not terminal IPython), and whether the request being executed allows stdin.
Interactive frontends send ``allow_stdin: true`` with every execute request; headless executors
send ``false`` because nobody can answer ``input()``.

The environment variable ``AIX_FRONTEND=live|headless|terminal`` (``auto`` or unset: guess)
overrides the guess, e.g. ``live`` for Voila, which executes headless but renders widgets. It is
read on every call. This module is stdlib-only and never imports IPython.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Any, Literal, get_args

from aix_jupyter.core.errors import ConfigurationError

Frontend = Literal["live", "headless", "terminal"]
KINDS: tuple[str, ...] = get_args(Frontend)
ENV_VAR = "AIX_FRONTEND"
_RETIRED = ("AIX_PROGRESS", "AIX_JUPYTER_FRONTEND")  # the variables AIX_FRONTEND replaced


def kernel() -> Any:
    """The running ipykernel, or None (terminal IPython, plain Python). Never imports IPython."""
    ipython_mod = sys.modules.get("IPython")
    if ipython_mod is None:
        return None
    try:
        shell = ipython_mod.get_ipython()
    except Exception:  # pragma: no cover - IPython half torn down
        return None
    return getattr(shell, "kernel", None) if shell is not None else None


def headless_execution() -> bool:
    """True when the request being executed comes from a headless executor (``allow_stdin`` false)."""
    running = kernel()
    if running is None:
        return False
    try:
        parent = running.get_parent() or {}
    except Exception:  # pragma: no cover - very old ipykernel
        return False
    header = parent.get("header") or {}
    content = parent.get("content") or {}
    return header.get("msg_type") == "execute_request" and content.get("allow_stdin") is False


def forced() -> Frontend | None:
    """The kind ``$AIX_FRONTEND`` names, or None when it is unset or ``auto``."""
    for name in _RETIRED:
        if name in os.environ:
            raise ConfigurationError(
                f"{name} is no longer read; unset it and set {ENV_VAR}=live|headless|terminal instead"
            )
    value = (os.environ.get(ENV_VAR) or "").strip().lower()
    if value in ("", "auto"):
        return None
    if value not in KINDS:
        raise ConfigurationError(
            f"{ENV_VAR} must be one of auto, {', '.join(KINDS)}; got {os.environ.get(ENV_VAR)!r}"
        )
    return value  # type: ignore[return-value]


def current() -> Frontend:
    """The kind of frontend running the current cell: ``$AIX_FRONTEND``, else the guess."""
    chosen = forced()
    if chosen is not None:
        return chosen
    if kernel() is None:
        return "terminal"
    return "headless" if headless_execution() else "live"


def renders_widgets() -> bool:
    """True when widgets displayed now will be rendered live (a ``live`` frontend, ipywidgets there)."""
    return current() == "live" and importlib.util.find_spec("ipywidgets") is not None


__all__ = [
    "ENV_VAR",
    "KINDS",
    "Frontend",
    "current",
    "forced",
    "headless_execution",
    "kernel",
    "renders_widgets",
]
