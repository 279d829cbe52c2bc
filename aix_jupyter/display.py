"""Rich display of model results, shared by the ``%aix`` magics and the widget.

The client core knows nothing of Jupyter; this module turns a ``ModelResponse`` into a Jupyter
MIME bundle plus output metadata, and shows it.

* :func:`response_bundle` -- ``(data, metadata)`` for a response and its :class:`Provenance`:
  ``text/plain`` always; ``text/markdown`` for text; ``application/json`` for dicts and lists;
  ``image/*`` or an HTML ``<img>``/``<audio>``/``<video>`` element when the output is media (a
  ``data:`` URI or a URL whose path names a media file). Provenance (model id, version, parameters,
  run time, credits, usage; for a run that passed the cache/cassette seam its ``request_key``, and for
  an answer from a store ``cached`` = "cache"/"cassette" and ``saved_credits``) goes into
  ``metadata["aix_jupyter"]``; nothing that looks like a secret
  (parameter names such as ``api_key``/``token``, or the configured key's value) is ever written.
* :class:`ResponseView` -- a displayable wrapper (``_repr_mimebundle_``) for ``display()`` or
  ``ipywidgets.Output.append_display_data()``.
* :func:`show_response` -- the IPython display hook for ``ModelResponse`` that ``%load_ext``
  registers (by type name, importing nothing): a response returned by the magic, or by
  ``model.run()`` in a cell, is shown as the bundle above, as one ``display_data`` output.
* :class:`StreamView` -- chunks as they arrive, ending with the same single static output, in the
  way the frontend (:mod:`aix_jupyter.frontend`) calls for.
* Media outputs (:func:`output_media`): an output that is a file URL on this machine or a configured
  host is fetched with the core's ``download`` (its deadlines, caps and key rules) and, when its first
  bytes are audio, an image or video, embedded as a ``data:`` URI up to :func:`embed_max_bytes`
  (``AixMagics.embed_max_bytes``, ``AIX_EMBED_MAX_BYTES``, 10 MiB), so the saved notebook still plays
  it once the server is gone; a larger file is shown by its link, with a note. Runs, ``%aix map``
  tables, ``BatchResult`` and ``Comparison`` HTML and the widget's result area all render media here.

Importing this module imports nothing heavy (no httpx, pydantic or ipywidgets).
"""

from __future__ import annotations

import base64
import binascii
import functools
import html
import json
import math
import mimetypes
import os
import re
import sys
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from IPython import get_ipython
from IPython.display import publish_display_data

from aix_jupyter import frontend
from aix_jupyter.frontend import Frontend

Bundle = dict[str, Any]

METADATA_KEY = "aix_jupyter"
REDACTED = "***"
_SECRET_NAME = re.compile(
    r"^(.*[_-])?(api[_-]?key|apikey|token|secret|passw(or)?d|authori[sz]ation|credentials?)$", re.I
)
_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?)(?P<b64>;base64)?,", re.I)
_BINARY_IMAGES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp"})
_MIN_UPDATE_INTERVAL = 0.1  # seconds between live stream repaints


# ---------------------------------------------------------------------------------------------
# provenance
# ---------------------------------------------------------------------------------------------
def field_text(value: Any) -> str:
    """A metadata field as text: an enum's value, '' for None."""
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def name_text(value: Any) -> str:
    """A supplier (or any ``{name, code, id}`` dict) as its name."""
    if isinstance(value, dict):
        return str(value.get("name") or value.get("code") or value.get("id") or "")
    return field_text(value)


def price_text(cost: Any) -> str:
    """A model's ``cost``/``pricing`` as ``'0.01 USD/token'`` ('' when it has none)."""
    if isinstance(cost, dict):
        price = cost.get("price")
        if price is None:
            return ""
        unit = str(cost.get("unitType") or "").lower()
        return f"{price} {cost.get('currency', '')}".strip() + (f"/{unit}" if unit else "")
    return field_text(cost)


@dataclass(frozen=True)
class Provenance:
    """Where a result came from; written to the output metadata, never to the output text."""

    model_id: str
    version: str | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    wall_time: float | None = None  # seconds measured by the client, submit to result
    streamed: bool = False
    output_format: str | None = None  # -f/--format: how the answer is shown (``format_bundle``)

    def to_metadata(self, response: Any = None) -> dict[str, Any]:
        """The JSON-ready ``metadata["aix_jupyter"]`` entry (secrets redacted), with the response's
        status, run time, credits and usage when given."""
        meta: dict[str, Any] = {"model_id": self.model_id}
        if self.version:
            meta["model_version"] = str(self.version)
        meta["parameters"] = redact(dict(self.parameters))
        if response is not None:
            meta["status"] = _status(response)
            run_time = _number(getattr(response, "run_time", None))
            if run_time is not None:
                meta["run_time"] = run_time
            credits = _number(getattr(response, "used_credits", None))
            if credits is not None:
                meta["used_credits"] = credits  # as recorded: an answer from a store spent none of it
            mark = recall_mark(response)
            if mark is not None:
                meta["request_key"] = mark.key
                if mark.source:
                    meta["cached"] = mark.source
                    meta["saved_credits"] = float(mark.saved)
            usage = getattr(response, "usage", None)
            if usage:
                meta["usage"] = _jsonable(redact(usage))
        if self.wall_time is not None:
            meta["wall_time"] = round(self.wall_time, 3)
        if self.streamed:
            meta["streamed"] = True
        if self.output_format:
            meta["format"] = self.output_format
        return meta


def recall_mark(response: Any) -> Any:
    """The core's ``RecallMark`` of a response (request key, "cache"/"cassette"/None, credits saved),
    or None for one that did not pass the cache/cassette seam (``core.marks.recall_of``)."""
    if response is None or sys.modules.get("aix_jupyter.core.marks") is None:
        return None  # no run in this process: nothing is marked
    from aix_jupyter.core.marks import recall_of

    return recall_of(response)


def stored_word(response: Any) -> str | None:
    """``"cached"`` or ``"replayed"`` when a store answered ``response``, else None (the server)."""
    mark = recall_mark(response)
    return None if mark is None else mark.word


def credits_text(response: Any) -> str:
    """A single run's credits as text: ``0.05``, or ``0 (saved 0.05)`` for an answer from a store."""
    mark = recall_mark(response)
    if mark is not None and mark.source:
        return f"0 (saved {float(mark.saved):.4g})"
    credits = _number(getattr(response, "used_credits", None))
    return f"{credits or 0.0:.4g}"


_provenance_lock = threading.Lock()
_provenance: OrderedDict[int, tuple[Any, Provenance]] = OrderedDict()
_PROVENANCE_LIMIT = 512


def remember(response: Any, provenance: Provenance) -> None:
    """Attach provenance to a response object (kept beside it, the response is not modified)."""
    key = id(response)
    ref: Callable[[], Any]
    try:
        ref = weakref.ref(response, functools.partial(_forget_ref, key))
    except TypeError:  # not weak-referenceable (ModelResponse has __slots__): kept while its entry exists
        ref = functools.partial(_identity, response)
    with _provenance_lock:
        _provenance[key] = (ref, provenance)
        _provenance.move_to_end(key)
        while len(_provenance) > _PROVENANCE_LIMIT:
            _provenance.popitem(last=False)


def _forget_ref(key: int, _ref: Any) -> None:
    with _provenance_lock:
        _provenance.pop(key, None)


def _identity(value: Any) -> Any:
    return value


def provenance_of(response: Any) -> Provenance | None:
    """The provenance remembered for ``response``, else one derived from the response itself."""
    with _provenance_lock:
        entry = _provenance.get(id(response))
    if entry is not None and entry[0]() is response:
        return entry[1]
    asset = getattr(response, "asset", None)
    if isinstance(asset, Mapping):
        model_id = asset.get("assetId") or asset.get("id")
        if model_id:
            return Provenance(model_id=str(model_id), version=asset.get("version"))
    return None


# ---------------------------------------------------------------------------------------------
# secrets
# ---------------------------------------------------------------------------------------------
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Never write ``value`` into an output (``%aix login`` registers the key it reads)."""
    if value and len(value) >= 4:
        _secrets.add(value)


def _known_secrets() -> list[str]:
    found = set(_secrets)
    for name in ("TEAM_API_KEY", "AIXPLAIN_API_KEY"):
        value = (os.environ.get(name) or "").strip()
        if len(value) >= 4:
            found.add(value)
    config = sys.modules.get("aix_jupyter.core.config")  # only when the core is already loaded
    if config is not None:
        try:
            key, _ = config.configured_api_key()
        except Exception:  # a configuration error is reported where it matters, not here
            key = None
        if key and len(key) >= 4:
            found.add(key)
    return sorted(found, key=len, reverse=True)


def redact(value: Any, secrets: Iterable[str] | None = None, *, by_name: bool = True) -> Any:
    """A copy of ``value`` with known secret values (and, ``by_name``, the values of entries named
    like ``api_key``, ``token``, ``password``) replaced by ``***``."""
    known = list(secrets) if secrets is not None else _known_secrets()

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            for secret in known:
                if secret in item:
                    item = item.replace(secret, REDACTED)
            return item
        if isinstance(item, Mapping):
            return {
                k: (REDACTED if by_name and isinstance(k, str) and _SECRET_NAME.search(k) and v else walk(v))
                for k, v in item.items()
            }
        if isinstance(item, list | tuple):
            return [walk(v) for v in item]
        return item

    return walk(value)


# ---------------------------------------------------------------------------------------------
# the bundle
# ---------------------------------------------------------------------------------------------
def _status(response: Any) -> str:
    status = getattr(response, "status", "")
    return str(getattr(status, "value", status))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (numpy scalars, enums, sets and others become JSON or strings)."""
    return json.loads(json.dumps(value, default=_json_default, ensure_ascii=False))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    if hasattr(value, "value") and not callable(value.value):  # Enum
        return value.value
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return value.to_dict()
    return str(value)


def _media_kind(data: str) -> tuple[str, str] | None:
    """``(mime type, src)`` when ``data`` is a data: URI or an http(s) URL of a media file."""
    text = data.strip()
    if not text or (any(c.isspace() for c in text[:512]) and not text.startswith("data:")):
        return None
    match = _DATA_URI.match(text)
    if match:
        mime = (match.group("mime") or "").lower()
        return (mime, text) if mime.split("/")[0] in ("image", "audio", "video") else None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    mime, _ = mimetypes.guess_type(parts.path)
    if mime and mime.split("/")[0] in ("image", "audio", "video"):
        return mime, text
    return None


# ---------------------------------------------------------------------------------------------
# media outputs: fetched once, embedded up to a cap
# ---------------------------------------------------------------------------------------------
EMBED_MAX_BYTES = 10 * 1024 * 1024  # AIX_EMBED_MAX_BYTES / AixMagics.embed_max_bytes
FETCH_TIMEOUT = 60.0  # seconds a media output may take to fetch for display
_embed_max: int | None = None
#: (url, cap) -> (bytes, why not): a change of the cap fetches again (and never embeds past the new cap)
_fetched: OrderedDict[tuple[str, int], tuple[bytes | None, str]] = OrderedDict()
_FETCHED_KEPT = 8
_fetch_lock = threading.Lock()


def set_embed_max_bytes(value: int | None) -> None:
    """The largest media output embedded in a notebook, in bytes (None: ``AIX_EMBED_MAX_BYTES`` or 10 MiB;
    0: never embed)."""
    global _embed_max
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"embed_max_bytes must be a number of bytes >= 0, got {value!r}")
    _embed_max = value


def embed_max_bytes() -> int:
    """The cap on embedded media: the setting, else ``AIX_EMBED_MAX_BYTES``, else 10 MiB."""
    if _embed_max is not None:
        return _embed_max
    raw = os.environ.get("AIX_EMBED_MAX_BYTES", "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            value = -1
        if value < 0:
            raise ValueError(f"AIX_EMBED_MAX_BYTES must be a number of bytes >= 0, got {raw!r}")
        return value
    return EMBED_MAX_BYTES


@dataclass(frozen=True)
class Media:
    """A media output as shown: its type, the ``src`` (a ``data:`` URI or the link), its size when
    known, and a note when it is not embedded."""

    mime: str
    src: str
    size: int | None = None
    note: str = ""

    @property
    def embedded(self) -> bool:
        """True when the bytes are in the output itself (a ``data:`` URI), not behind a link."""
        return self.src.startswith("data:")


def _size_text(size: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)


def _may_fetch(url: str) -> bool:
    """An output URL worth fetching to look at: on this machine, or on a host runs go to."""
    host = (urlsplit(url).hostname or "").lower()
    if host in ("127.0.0.1", "localhost", "::1"):
        return True
    try:
        from aix_jupyter.core.config import resolve_endpoints

        return resolve_endpoints(start_default=False).may_receive_key(url)
    except Exception:  # a configuration error is reported by the runs, not by a display
        return False


def _fetch(url: str) -> tuple[bytes | None, str]:
    """The bytes of an output file (or None and why not), fetched once per cap by the core's ``download``."""
    cap = embed_max_bytes()
    key = (url, cap)
    with _fetch_lock:
        if key in _fetched:
            _fetched.move_to_end(key)
            return _fetched[key]
    from aix_jupyter.core.errors import AixError
    from aix_jupyter.core.media import download
    from aix_jupyter.core.wire import ReplyTooLarge

    try:
        content = download(url, timeout=FETCH_TIMEOUT, max_bytes=cap)
        outcome: tuple[bytes | None, str] = (content, "") if isinstance(content, bytes) else (None, "")
    except ReplyTooLarge:  # over the cap: not read past it (and not read again while the cap stays)
        outcome = (None, _over_cap(cap))
    except AixError as exc:
        outcome = (None, str(exc))
    if outcome[0] is None or len(outcome[0]) <= cap:  # what is not embedded is not kept
        with _fetch_lock:
            _fetched[key] = outcome
            while len(_fetched) > _FETCHED_KEPT:
                _fetched.popitem(last=False)
    return outcome


def output_media(data: Any) -> Media | None:
    """``data`` as a media output to show, or None when it is not one.

    A ``data:`` URI of audio, an image or video is shown as it is. An http(s) URL is fetched (once)
    when it is on this machine or a configured host, or its name says media: its first bytes decide
    what it is, and up to :func:`embed_max_bytes` it is embedded as a ``data:`` URI; a larger one, or
    one that cannot be fetched, is shown by its link with a note.
    """
    if not isinstance(data, str):
        return None
    text = data.strip()
    if not text or (any(c.isspace() for c in text[:512]) and not text.startswith("data:")):
        return None
    if text.startswith("data:"):
        found = _media_kind(text)
        return Media(found[0], found[1]) if found else None
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in text):
        return None
    named = _media_kind(text)
    if named is None and not _may_fetch(text):
        return None
    content, why = _fetch(text)
    if content is None and named is None and why.startswith(OVER_CAP):  # what is it? its first bytes say
        from aix_jupyter.core.media import sniff_url

        head = sniff_url(text, timeout=FETCH_TIMEOUT)
        kind = head.mime if head is not None and head.mime.split("/")[0] in MEDIA_KINDS else None
        named = (kind, text) if kind else None
    if content is None:
        if named is None:  # a link and why it is not embedded, when it is too large to look at
            return Media("", text, note=f"not embedded: {why}") if why.startswith(OVER_CAP) else None
        return Media(named[0], text, note=f"not embedded: {why}" if why else "")
    from aix_jupyter.core.mediatypes import sniff

    fmt = sniff(content)
    mime = fmt.mime if fmt is not None else (named[0] if named else "")
    if mime.split("/")[0] not in ("audio", "image", "video"):
        return None
    return Media(mime, f"data:{mime};base64," + base64.b64encode(content).decode("ascii"), len(content))


OVER_CAP = "the file is over the"
MEDIA_KINDS = ("audio", "image", "video")


def _over_cap(cap: int) -> str:
    return f"{OVER_CAP} {_size_text(cap)} cap (AIX_EMBED_MAX_BYTES); the link works while its server keeps it"


def media_html(media: Media) -> str:
    """An ``<img>``, ``<audio controls>`` or ``<video controls>`` element for ``media`` (with its note)."""
    kind = media.mime.split("/")[0]
    quoted = html.escape(media.src, quote=True)
    if kind not in MEDIA_KINDS:  # a file too large to look at: its link
        element = f'<a href="{quoted}" target="_blank" rel="noopener">{html.escape(media.src[:120])}</a>'
    elif kind == "image":
        element = f'<img src="{quoted}" alt="model output"/>'
    else:
        element = f'<{kind} controls src="{quoted}"></{kind}>'
    note = f"<br><small>{html.escape(media.note)}</small>" if media.note else ""
    return element + note


def media_cell(data: Any) -> str | None:
    """The HTML of ``data`` when it is a media output (for tables: ``BatchResult``, ``Comparison``)."""
    media = output_media(data)
    return None if media is None else media_html(media)


def _media_bundle(mime: str, src: str) -> Bundle:
    kind = mime.split("/")[0]
    bundle: Bundle = {}
    if src.startswith("data:") and mime in _BINARY_IMAGES:
        payload = src.split(",", 1)[1]
        try:
            base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            payload = ""
        if payload:
            bundle[mime] = payload
            return bundle
    if src.startswith("data:") and mime == "image/svg+xml" and ";base64" not in src.split(",", 1)[0]:
        bundle[mime] = unquote(src.split(",", 1)[1])
        return bundle
    quoted = html.escape(src, quote=True)
    if kind == "image":
        bundle["text/html"] = f'<img src="{quoted}" alt="model output"/>'
    else:
        bundle["text/html"] = f'<{kind} controls src="{quoted}"></{kind}>'
    return bundle


def _plain_for_media(media: Media, data: str) -> str:
    if not media.embedded:
        return data
    if media.size is not None:  # fetched from a link and embedded: the link dies with its server
        return f"<{media.mime}, {_size_text(media.size)}, embedded>"
    return f"<{media.mime} data, {len(media.src)} characters>"


def markdown_text(text: str) -> str:
    """``text`` as Markdown that keeps its line breaks.

    In Markdown a single newline is a space, so a model's lines (a poem, a list without markers)
    would run together; each line that another line follows gets a hard break (two trailing
    spaces), except inside fenced code blocks, where lines are kept as they are.
    """
    lines = text.split("\n")
    fenced = False
    for i, line in enumerate(lines[:-1]):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and line.strip() and lines[i + 1].strip() and not line.endswith("  "):
            lines[i] = line + "  "
    return "\n".join(lines)


def _running_line(model_id: str, response: Any) -> str:
    """``<model>: running (40% done, about 3 s left); poll URL <url>`` from a poll reply."""
    get = getattr(response, "get", None)
    progress = _number(get("progress")) if get else None
    eta = _number(get("eta")) if get else None
    known = []
    if progress is not None:
        known.append(f"{progress:.0%} done")
    if eta is not None:
        known.append(f"about {eta:.0f} s left")
    line = f"{model_id}: running" + (f" ({', '.join(known)})" if known else "")
    stored = stored_word(response)
    if stored is not None:  # a run_async answered from a store: its poll answers at once
        line = f"{model_id}: {stored}, ready to poll"
    url = getattr(response, "url", None)
    return f"{line}; poll URL {url}" if url else line


def response_bundle(response: Any, provenance: Provenance | None = None) -> tuple[Bundle, dict[str, Any]]:
    """Turn a ModelResponse (and its provenance) into a ``(data, metadata)`` display pair."""
    if provenance is None:
        provenance = provenance_of(response)
    secrets = _known_secrets()
    status = _status(response)
    data = getattr(response, "data", None)
    bundle: Bundle = {}
    meta_json: dict[str, Any] = {}
    output_format = provenance.output_format if provenance is not None else None
    if status == "FAILED":
        message = getattr(response, "error_message", "") or "the run failed"
        bundle["text/plain"] = f"FAILED: {message}"
    elif output_format and isinstance(data, str):  # -f: shown as asked (a media link is not fetched)
        bundle, meta_json = format_bundle(data, output_format)
    elif status == "IN_PROGRESS" and not getattr(response, "completed", False):
        bundle["text/plain"] = _running_line(provenance.model_id if provenance else "model", response)
    elif isinstance(data, str):
        media = output_media(data)
        if media:
            if media.mime:
                bundle.update(_media_bundle(media.mime, media.src))
            bundle["text/plain"] = _plain_for_media(media, data.strip())
            if media.note:
                bundle["text/plain"] += f"\n({media.note})"
                bundle["text/html"] = media_html(media)
        else:
            bundle["text/plain"] = data
            if data.strip():
                bundle["text/markdown"] = markdown_text(data)
    elif isinstance(data, Mapping | list | tuple):
        value = _jsonable(data)
        bundle["application/json"] = value
        bundle["text/plain"] = json.dumps(value, indent=2, ensure_ascii=False)
        meta_json = {"application/json": {"expanded": True, "root": "data"}}
    elif data is None:
        bundle["text/plain"] = ""
    else:
        bundle["text/plain"] = json.dumps(_jsonable(data), ensure_ascii=False)
    bundle = redact(bundle, secrets, by_name=False)  # a model's output may have a "token" field
    metadata: dict[str, Any] = dict(meta_json)
    if provenance is not None:
        metadata[METADATA_KEY] = redact(_jsonable(provenance.to_metadata(response)), secrets)
    else:
        metadata[METADATA_KEY] = redact(_jsonable({"status": status}), secrets)
    return bundle, metadata


class ResponseView:
    """A displayable response with its provenance: ``display(ResponseView(r, prov))``."""

    def __init__(self, response: Any, provenance: Provenance | None = None) -> None:
        self.response = response
        self.provenance = provenance

    def _repr_mimebundle_(
        self, include: Iterable[str] | None = None, exclude: Iterable[str] | None = None
    ) -> tuple[Bundle, dict[str, Any]]:
        data, metadata = response_bundle(self.response, self.provenance)
        if include:
            data = {k: v for k, v in data.items() if k in set(include)}
        if exclude:
            data = {k: v for k, v in data.items() if k not in set(exclude)}
        return data, metadata

    def __repr__(self) -> str:
        return response_bundle(self.response, self.provenance)[0]["text/plain"]


# ---------------------------------------------------------------------------------------------
# showing it
# ---------------------------------------------------------------------------------------------
_shown: dict[int, int] = {}  # id(response) -> execution count in which it was already displayed


def publish(
    response: Any,
    provenance: Provenance | None = None,
    *,
    display_id: str | None = None,
    update: bool = False,
) -> None:
    """Publish a response as one ``display_data`` output (or update the one with ``display_id``)."""
    data, metadata = response_bundle(response, provenance)
    transient = {"display_id": display_id} if display_id else None
    publish_display_data(data, metadata, transient=transient, update=update)


def mark_shown(response: Any) -> None:
    """The response was already displayed in this cell: its return value adds no second output."""
    count = _execution_count()
    for key in [k for k, c in _shown.items() if c != count]:  # marks of earlier cells are stale
        del _shown[key]
    _shown[id(response)] = count


def _execution_count() -> int:
    ip = get_ipython()
    return int(getattr(ip, "execution_count", 0) or 0) if ip is not None else 0


def show_response(response: Any) -> None:
    """Display a response as one ``display_data`` (the magic registers this as IPython's display
    hook for ModelResponse), unless it was already shown in this cell (a finished stream)."""
    if _shown.pop(id(response), None) == _execution_count():
        return
    publish(response)


# ---------------------------------------------------------------------------------------------
# streaming
# ---------------------------------------------------------------------------------------------
class StreamView:
    """Shows a stream's chunks as they arrive and ends with one static output.

    ``live``: one output updated in place (``update_display``), finally replaced by the response's
    bundle, so the saved notebook holds exactly that output. ``headless`` (nbval, nbconvert): nobody
    watches, and those tools ignore in-place updates, so nothing is shown until the end and the
    final output is the same single ``display_data``. ``terminal``: chunks are written to stdout as
    they arrive, which is then the output.
    """

    def __init__(
        self,
        model_id: str,
        *,
        mode: Frontend | Literal["auto"] = "auto",
        write: Callable[[str], Any] | None = None,
    ) -> None:
        self.model_id = model_id
        self.mode: Frontend = frontend.current() if mode == "auto" else mode
        self.text = ""
        self._display_id: str | None = None
        self._last_paint = 0.0
        self._dirty = False
        self._write = write or _stdout_write

    def start(self) -> None:
        """Before the first chunk: in a live frontend, show the placeholder output the chunks will update."""
        if self.mode == "live":
            self._display_id = uuid.uuid4().hex
            publish_display_data(
                {"text/plain": f"{self.model_id}: waiting for the first chunk..."},
                {},
                transient={"display_id": self._display_id},
            )

    def chunk(self, text: str) -> None:
        """Add a chunk of text and show it (live: at most every ``_MIN_UPDATE_INTERVAL`` s; terminal: at
        once)."""
        if not text:
            return
        self.text += text
        if self.mode == "terminal":
            self._write(text)
        elif self.mode == "live":
            self._dirty = True
            now = time.monotonic()
            if now - self._last_paint >= _MIN_UPDATE_INTERVAL:
                self._paint()
                self._last_paint = now

    def _paint(self) -> None:
        if self._display_id is None:
            return
        safe = redact(self.text)
        publish_display_data(
            {"text/plain": safe, "text/markdown": markdown_text(safe)},
            {},
            transient={"display_id": self._display_id},
            update=True,
        )
        self._dirty = False

    def finish(self, response: Any, provenance: Provenance | None = None) -> None:
        """Show the final static output; the response's own display then adds nothing."""
        if self.mode == "live" and self._display_id is not None:
            publish(response, provenance, display_id=self._display_id, update=True)
            mark_shown(response)
        elif self.mode == "terminal":
            if self.text and not self.text.endswith("\n"):
                self._write("\n")
            mark_shown(response)
        # headless: the response returned by the magic is the one output

    def abort(self) -> None:
        """The stream ended without a response (error, interrupt): leave what arrived, no more."""
        if self.mode == "live" and self._dirty:
            self._paint()
        elif self.mode == "terminal" and self.text and not self.text.endswith("\n"):
            self._write("\n")


def _stdout_write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------
# tables and cards (``%aix models``, ``%aix info``, ``%aix config``)
# ---------------------------------------------------------------------------------------------
class HtmlCell(str):
    """A table cell that is text in a terminal and its own HTML in a notebook (a media player, say)."""

    html: str

    def __new__(cls, text: str, html_text: str) -> HtmlCell:
        cell = super().__new__(cls, text)
        cell.html = html_text
        return cell


def _cell_text(value: Any) -> str:
    return value if isinstance(value, HtmlCell) else "" if value is None else str(value)


class Table:
    """A small table shown as HTML in a notebook and as aligned text elsewhere."""

    def __init__(self, columns: list[str], rows: list[list[Any]], *, title: str = "", note: str = "") -> None:
        self.columns = columns
        self.rows = [[_cell_text(c) for c in row] for row in rows]
        self.title = title
        self.note = note

    def _text(self) -> str:
        widths = [max([len(c)] + [len(r[i]) for r in self.rows]) for i, c in enumerate(self.columns)]
        lines = [self.title] if self.title else []
        lines.append("  ".join(c.ljust(w) for c, w in zip(self.columns, widths, strict=True)).rstrip())
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in self.rows]
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def _html(self) -> str:
        esc = html.escape

        def cell(value: str) -> str:
            return value.html if isinstance(value, HtmlCell) else esc(value)

        head = "".join(f"<th>{esc(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in self.rows)
        title = f"<p><b>{esc(self.title)}</b></p>" if self.title else ""
        note = f"<p><small>{esc(self.note)}</small></p>" if self.note else ""
        table = f'<table class="aix-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        return title + table + note

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Bundle:
        return redact({"text/plain": self._text(), "text/html": self._html()})

    def __repr__(self) -> str:
        return redact(self._text())


class Card:
    """Titled sections of ``(label, value)`` lines and free text, as HTML and as text."""

    def __init__(
        self, title: str, fields: list[tuple[str, Any]], sections: list[tuple[str, list[str]]]
    ) -> None:
        self.title = title
        self.fields = [(k, "" if v is None else str(v)) for k, v in fields]
        self.sections = sections

    def _text(self) -> str:
        width = max((len(k) for k, _ in self.fields), default=0)
        lines = [self.title, "=" * len(self.title)]
        lines += [f"{k.ljust(width)}  {v}" for k, v in self.fields]
        for heading, items in self.sections:
            lines += ["", heading + ":"] + [f"  {item}" for item in items]
        return "\n".join(lines)

    def _html(self) -> str:
        esc = html.escape
        rows = "".join(
            f"<tr><th style='text-align:left'>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in self.fields
        )
        parts = [f"<h4>{esc(self.title)}</h4>", f"<table>{rows}</table>"]
        for heading, items in self.sections:
            lis = "".join(f"<li><code>{esc(i)}</code></li>" for i in items)
            parts.append(f"<p><b>{esc(heading)}</b></p><ul>{lis}</ul>")
        return "".join(parts)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> Bundle:
        return redact({"text/plain": self._text(), "text/html": self._html()})

    def __repr__(self) -> str:
        return redact(self._text())


# ---------------------------------------------------------------------------------------------
# output formats (``-f/--format`` of ``%aix run / stream / chat``)
# ---------------------------------------------------------------------------------------------
OUTPUT_FORMATS: tuple[str, ...] = ("text", "markdown", "json", "html", "code")
_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n(?P<body>.*?)^[ \t]*\1[ \t]*$", re.M | re.S)


def extract_code(text: str) -> str:
    """The code of a model's answer: the bodies of its fenced blocks (joined by a blank line), or the
    whole answer without an unclosed opening fence when it has no closed block."""
    blocks = [m.group("body").rstrip("\n") for m in _FENCE.finditer(text)]
    if blocks:
        return "\n\n".join(blocks)
    lines = text.strip("\n").split("\n")
    if lines and lines[0].lstrip().startswith(("```", "~~~")):  # an answer cut off inside its block
        lines = lines[1:]
    return "\n".join(lines).strip("\n")


def parse_json_answer(text: str) -> Any:
    """A model's answer as JSON (a fenced block's body if it has one); ValueError when it is not JSON."""
    candidate = extract_code(text) if _FENCE.search(text) else text.strip()
    try:
        return json.loads(candidate)
    except json.JSONDecodeError as exc:
        where = f"{exc.msg} at line {exc.lineno}"
        raise ValueError(f"the answer is not JSON ({where}): {_clip(text)!r}") from None


def _clip(text: str, limit: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def format_bundle(text: str, output_format: str) -> tuple[Bundle, dict[str, Any]]:
    """``(data, metadata)`` showing a text answer as ``output_format`` (one of ``OUTPUT_FORMATS``):
    ``text`` plain text only, ``markdown`` rendered, ``json`` the parsed value (an answer that is not
    JSON stays text), ``html`` as HTML, ``code`` the answer's code in a code block."""
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {output_format!r}; one of {', '.join(OUTPUT_FORMATS)}")
    bundle: Bundle = {"text/plain": text}
    meta: dict[str, Any] = {}
    if output_format == "markdown" and text.strip():
        bundle["text/markdown"] = markdown_text(text)
    elif output_format == "json":
        try:
            value = _jsonable(parse_json_answer(text))
        except ValueError:
            return bundle, meta
        bundle = {"application/json": value, "text/plain": json.dumps(value, indent=2, ensure_ascii=False)}
        meta = {"application/json": {"expanded": True, "root": "data"}}
    elif output_format == "html":
        bundle["text/html"] = text
    elif output_format == "code":
        code = extract_code(text)
        bundle = {"text/plain": code, "text/markdown": f"```python\n{code}\n```"}
    return bundle, meta
