"""The errors the ``%aix`` magics raise on top of the client core's (``aix_jupyter.core.errors``).

Both are ``AixError``s: IPython shows them as one line, and ``except AixError`` catches them too.
"""

from __future__ import annotations

from aix_jupyter.core.errors import AixError


class MagicUsageError(AixError):
    """The magic's line does not follow its grammar (``%aix help`` shows it)."""


class RunFailed(AixError):
    """The model answered FAILED (the message is the server's, prefixed by the model id)."""


__all__ = ["MagicUsageError", "RunFailed"]
