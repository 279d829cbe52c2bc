"""Scrubbing an API key out of what is kept on disk (cache entries, cassettes).

Replies are already scrubbed where they arrive (``protocol.RawReply``); what is written to a file
is scrubbed once more, of every form under which a key can be spelt in text: as is, as JSON
escapes it and as a URL quotes it (a server may echo the key inside a link).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, quote_plus

from aix_jupyter.core.protocol import REDACTED, map_strings


def secret_forms(secret: str | None) -> list[str]:
    """The spellings of ``secret`` to look for in text (longest first), none for no secret."""
    if not secret:
        return []
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    forms |= {quote(secret, safe=""), quote_plus(secret, safe="")}
    return sorted(forms, key=len, reverse=True)


def scrub_text(text: str, secret: str | None) -> str:
    """``text`` with every spelling of ``secret`` replaced by ``***``."""
    for form in secret_forms(secret):
        if form in text:
            text = text.replace(form, REDACTED)
    return text


def scrub_deep(value: Any, secret: str | None) -> Any:
    """A JSON-ready copy of ``value`` with ``secret`` scrubbed out of every string, keys too."""
    copy = json.loads(json.dumps(value, default=str))
    return map_strings(copy, lambda text: scrub_text(text, secret)) if secret else copy


__all__ = ["scrub_deep", "scrub_text", "secret_forms"]
