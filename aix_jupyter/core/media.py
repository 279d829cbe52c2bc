"""Media out: fetching a model's output file, through the core's transport.

**Out.** ``download(url, path=None)`` (``adownload``) fetches an output file through the core's
transport: the run's deadline, the reply cap ``AIX_MAX_REPLY_BYTES``, no redirects, and the API key
only for the configured run/backend hosts (``AIX_TRUSTED_HOSTS``); any other host gets the request
without the key. ``ModelResponse.save`` / ``asave`` call it with the response's ``data``.

What a media input may be, and what a file's first bytes say, are in ``mediatypes`` (sans I/O,
below the protocol; re-exported here).
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from aix_jupyter.core.config import resolve_endpoints
from aix_jupyter.core.errors import AixError, ParameterError, RequestError
from aix_jupyter.core.flows import Send
from aix_jupyter.core.mediatypes import (
    ACCEPTS,
    FORMATS,
    MEDIA_KINDS,
    Format,
    LocalMedia,
    Prepared,
    _short,
    is_media_object,
    is_url,
    kind_of,
    local_file,
    prepare,
    sniff,
    to_media,
    with_links,
)
from aix_jupyter.core.plans import Plan, run_async, run_sync
from aix_jupyter.core.protocol import http_error_message
from aix_jupyter.core.wire import Call, DeadlineExceeded, ReplyTooLarge

DEFAULT_TIMEOUT = 300.0


# ---------------------------------------------------------------------------------------------
# media out


def _data_uri(url: str) -> bytes | None:
    """The bytes of a ``data:`` URI (None when ``url`` is not one); RequestError when it is broken."""
    if not url.startswith("data:"):
        return None
    head, sep, payload = url.partition(",")
    if not sep:
        raise RequestError("download: the data: URI has no ',' before its content")
    if head.endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError("download: the data: URI's base64 content is corrupt") from None
    return unquote(payload).encode("utf-8")


def output_url(value: Any) -> str:
    """The URL in a response's data (a ``ModelResponse`` or its data), or RequestError."""
    data = getattr(value, "data", value)
    if isinstance(data, Mapping):
        data = data.get("url") or data.get("data")
    if isinstance(data, str) and data.strip().startswith(("http://", "https://", "data:")):
        url = data.strip()
        if url.startswith("data:") or not any(ord(c) < 33 or ord(c) == 127 for c in url):
            return url
    shown = data if isinstance(data, str) else type(data).__name__
    raise RequestError(f"download: {_short(str(shown), 60)} is not a file URL (http(s) or data:)")


def download_flow(
    url: str, endpoints: Any, timeout: float, max_bytes: int | None = None, first: int | None = None
) -> Any:
    """GET an output file with a deadline; return its bytes (the key only to the configured hosts).
    ``max_bytes``: a cap below ``AIX_MAX_REPLY_BYTES`` (ReplyTooLarge beyond it); ``first``: ask for the
    first bytes only (a Range request; a server may send more, up to the cap)."""
    inline = _data_uri(url)
    if inline is not None:
        if max_bytes is not None and len(inline) > max_bytes:
            raise ReplyTooLarge(
                f"download: the data: URI holds more than {max_bytes} bytes, the cap (max_bytes)"
            )
        return inline
    auth = "run" if endpoints.api_key and endpoints.may_receive_key(url) else None
    cap = None if max_bytes is None else (max_bytes, "max_bytes")
    headers = {"Accept": "*/*"} if first is None else {"Accept": "*/*", "Range": f"bytes=0-{first - 1}"}
    call = Call("GET", url, auth=auth, headers=headers, what="download", max_bytes=cap)
    try:
        reply = yield Send(call, time.monotonic() + timeout)
    except DeadlineExceeded:
        raise RequestError(f"download of {_shown_url(url)} did not finish within {timeout:g} s") from None
    if not 200 <= reply.status_code < 300:
        raise RequestError(f"download of {_shown_url(url)} failed: {http_error_message(reply.status_code)}")
    return reply.content


def _shown_url(url: str) -> str:
    """The URL as an error message shows it: no query, and no user or password in its host part."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"[:120]


def _target(path: str | os.PathLike[str], url: str, content: bytes) -> Path:
    target = Path(path).expanduser()
    if target.is_dir():
        name = os.path.basename(urlsplit(url).path) if not url.startswith("data:") else ""
        found = sniff(content)
        if not name:
            name = "output" + (found.ext if found else ".bin")
        elif not os.path.splitext(name)[1] and found is not None:
            name += found.ext
        target = target / name
    return target


def _finish(url: str, path: str | os.PathLike[str] | None) -> Callable[[Any, Any], Any]:
    def finish(content: bytes, _: Any) -> bytes | Path:
        if path is None:
            return content
        target = _target(path, url, content)
        target.write_bytes(content)
        return target

    return finish


def _plan(
    url_or_response: Any,
    path: str | os.PathLike[str] | None,
    timeout: float,
    api_key: str | None,
    max_bytes: int | None,
    first: int | None = None,
) -> Any:
    url = output_url(url_or_response)
    if not (isinstance(timeout, int | float) and timeout > 0):
        raise ParameterError(f"timeout must be a number of seconds > 0, got {timeout!r}", parameter="timeout")
    endpoints = resolve_endpoints(api_key=api_key, start_default=False)
    if max_bytes is not None and (
        isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0
    ):
        raise ParameterError(
            f"max_bytes must be a number of bytes >= 0, got {max_bytes!r}", parameter="max_bytes"
        )
    flow = download_flow(url, endpoints, float(timeout), max_bytes, first)
    return Plan(flow, endpoints, finish=_finish(url, path))


def download(
    url: Any,
    path: str | os.PathLike[str] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    api_key: str | None = None,
    max_bytes: int | None = None,
) -> bytes | Path:
    """Fetch an output file (a URL, a ``data:`` URI, or a ``ModelResponse`` holding one).

    With ``path`` (a file, or a folder: the URL's file name is used) the bytes are written there and
    the ``Path`` is returned; without, the bytes are. Within ``timeout`` s, at most
    ``AIX_MAX_REPLY_BYTES`` (or ``max_bytes`` when smaller); the API key goes only to the configured
    hosts. RequestError otherwise (``ReplyTooLarge`` over the cap).
    """
    result: bytes | Path = run_sync(_plan(url, path, timeout, api_key, max_bytes))
    return result


async def adownload(
    url: Any,
    path: str | os.PathLike[str] | None = None,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    api_key: str | None = None,
    max_bytes: int | None = None,
) -> bytes | Path:
    """The async twin of ``download``: the same arguments, awaited."""
    result: bytes | Path = await run_async(_plan(url, path, timeout, api_key, max_bytes))
    return result


SNIFF_BYTES = 64


def sniff_url(url: str, *, timeout: float = 30.0, api_key: str | None = None) -> Format | None:
    """The format of the file behind ``url``, from its first bytes only (a Range request; None when it
    is not a known format, or the server sends the whole of a larger file, or the fetch fails)."""
    try:
        head = run_sync(_plan(url, None, timeout, api_key, SNIFF_BYTES, first=SNIFF_BYTES))
    except AixError:
        return None
    return sniff(head) if isinstance(head, bytes) else None


__all__ = [
    "ACCEPTS",
    "FORMATS",
    "MEDIA_KINDS",
    "Format",
    "LocalMedia",
    "Prepared",
    "adownload",
    "download",
    "download_flow",
    "is_media_object",
    "is_url",
    "kind_of",
    "local_file",
    "output_url",
    "prepare",
    "sniff",
    "sniff_url",
    "to_media",
    "with_links",
]
