"""The ``%aix`` / ``%%aix`` magics: the magic itself, its argument parsing, input handling and completion.

``%load_ext aix_jupyter`` calls :func:`load_ipython_extension`; nothing heavy is imported by it.
"""

from __future__ import annotations

from aix_jupyter.magics.magic import AixMagics, load_ipython_extension, unload_ipython_extension

__all__ = ["AixMagics", "load_ipython_extension", "unload_ipython_extension"]
