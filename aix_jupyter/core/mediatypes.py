"""Media, sans I/O: what the first bytes of a file say (``sniff``), and what a media input may be.

**In.** Wherever a run takes a media input (a parameter whose ``dataType`` is audio, image, video or
file, or a media model's ``data``), ``prepare`` accepts

* a local path (``str`` or ``os.PathLike``), a URL (``http(s)://``, ``s3://``, ``data:``; sent as is);
* ``bytes`` / ``bytearray`` / ``memoryview``;
* an ``IPython.display.Audio`` / ``Image`` (duck-typed: its ``.data`` bytes, else its ``.url``, else
  its ``.filename``; IPython is never imported here);
* a PIL image (duck-typed: saved as PNG; PIL itself is not imported here).

Local data becomes a ``LocalMedia``: its bytes read once, its content type, its SHA-256. The request
body holds its ``ref`` until the run's flow uploads it (``flows.upload_flow``, the SDK's
``FileFactory.to_link``: temp-url, then PUT) and puts the link in its place; the request key holds its
digest instead (``requestkey.key_body``), so the cache and cassettes key a file by its content.
A file that does not exist or is empty, or whose first bytes are not of the declared kind (WAV, MP3,
OGG, FLAC, WebM for audio; PNG, JPEG, GIF, WebP, BMP for an image), is a one-line ``ParameterError``
naming the parameter and the file, raised before anything is sent.

For a parameter the schema does not declare as media, a string is only a file when it names an
existing one (and only in ``data``), as before; bytes, paths and media objects are always uploaded.

Fetching a model's output file (``download``) is in ``media``, above the transports.
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aix_jupyter.core.errors import ParameterError

MEDIA_KINDS = frozenset({"audio", "image", "video", "file"})
MEDIA_REF = "aix-media:"
MAX_LOCAL_PATH = 4096
_URL_SCHEMES = ("http://", "https://", "s3://", "gs://", "data:")


# ---------------------------------------------------------------------------------------------
# what the first bytes say


@dataclass(frozen=True)
class Format:
    """A file format known by its first bytes."""

    name: str
    mime: str
    ext: str
    match: Callable[[bytes], bool] = field(repr=False)


def _mp3(head: bytes) -> bool:
    return head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


FORMATS: tuple[Format, ...] = (
    Format("PNG", "image/png", ".png", lambda h: h.startswith(b"\x89PNG\r\n\x1a\n")),
    Format("JPEG", "image/jpeg", ".jpg", lambda h: h.startswith(b"\xff\xd8\xff")),
    Format("GIF", "image/gif", ".gif", lambda h: h[:6] in (b"GIF87a", b"GIF89a")),
    Format("WebP", "image/webp", ".webp", lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP"),
    Format("BMP", "image/bmp", ".bmp", lambda h: h.startswith(b"BM")),
    Format("WAV", "audio/wav", ".wav", lambda h: h[:4] == b"RIFF" and h[8:12] == b"WAVE"),
    Format("OGG", "audio/ogg", ".ogg", lambda h: h.startswith(b"OggS")),
    Format("FLAC", "audio/flac", ".flac", lambda h: h.startswith(b"fLaC")),
    Format("WebM", "audio/webm", ".webm", lambda h: h.startswith(b"\x1a\x45\xdf\xa3")),
    Format("MP4", "video/mp4", ".mp4", lambda h: h[4:8] == b"ftyp"),
    Format("MP3", "audio/mpeg", ".mp3", _mp3),
)
#: the formats a media kind accepts (``file`` accepts anything)
ACCEPTS: dict[str, tuple[str, ...]] = {
    "audio": ("WAV", "MP3", "OGG", "FLAC", "WebM"),
    "image": ("PNG", "JPEG", "GIF", "WebP", "BMP"),
    "video": ("MP4", "WebM", "OGG"),
}


def sniff(content: bytes) -> Format | None:
    """The format ``content`` starts with, or None."""
    head = bytes(content[:16])
    return next((f for f in FORMATS if f.match(head)), None)


def kind_of(content: bytes) -> str | None:
    """``"audio"``, ``"image"`` or ``"video"`` for content in one of the known formats, else None."""
    found = sniff(content)
    if found is None:
        return None
    return next(kind for kind in ("image", "audio", "video") if found.name in ACCEPTS[kind])


# ---------------------------------------------------------------------------------------------
# media in


@dataclass(frozen=True)
class LocalMedia:
    """Local data a run uploads before it starts: its bytes, name, content type and digest."""

    content: bytes = field(repr=False)
    name: str
    content_type: str
    digest: str  # "sha256:<hex>", what the request key holds

    @property
    def ref(self) -> str:
        """What the request body holds until the upload's link replaces it."""
        return MEDIA_REF + self.digest


def is_url(text: str) -> bool:
    """True for a URL that is sent as it is (http(s), s3, gs, data:)."""
    return text.strip().lower().startswith(_URL_SCHEMES)


def local_file(value: Any) -> str | None:
    """The path when ``value`` is a string naming an existing local file, else None."""
    if (
        isinstance(value, str)
        and value
        and len(value) < MAX_LOCAL_PATH
        and "\n" not in value
        and "://" not in value
        and os.path.isfile(value)
    ):
        return value
    return None


def _short(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _error(where: str, what: str) -> ParameterError:
    return ParameterError(f"parameter '{where}': {what}", parameter=where)


def _is_display_object(value: Any) -> bool:
    """An ``IPython.display.Audio`` / ``Image`` (or alike): ``data``, ``url`` and ``filename``."""
    return all(hasattr(value, name) for name in ("data", "url", "filename", "reload"))


def _is_pil_image(value: Any) -> bool:
    return hasattr(value, "getbands") and hasattr(value, "save") and hasattr(value, "mode")


def is_media_object(value: Any) -> bool:
    """True for a value that can only be media: bytes, a path object, an IPython Audio/Image, a PIL image."""
    return isinstance(value, bytes | bytearray | memoryview | os.PathLike) or (
        _is_display_object(value) or _is_pil_image(value)
    )


def _from_bytes(content: bytes, name: str | None, kind: str | None, where: str, source: str) -> LocalMedia:
    if not content:
        raise _error(where, f"{source} is empty; give a file with content")
    found = sniff(content)
    accepted = ACCEPTS.get(kind or "")
    if accepted is not None and (found is None or found.name not in accepted):
        got = f"{found.name} data" if found is not None else "not a format it knows"
        raise _error(where, f"{source} is not {kind} ({got}); give {', '.join(accepted)}")
    guessed = mimetypes.guess_type(name)[0] if name else None
    content_type = guessed or (found.mime if found else "application/octet-stream")
    if found is not None and kind == "video" and found.mime.startswith("audio/"):
        content_type = found.mime.replace("audio/", "video/")
    if not name:
        name = (kind if kind in ("audio", "image", "video") else "file") + (found.ext if found else ".bin")
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    return LocalMedia(content, name, content_type, digest)


def _from_path(path: str, kind: str | None, where: str) -> LocalMedia:
    full = os.path.expanduser(path)
    if not os.path.exists(full):
        raise _error(where, f"no file {_short(path)}; give an existing path, a URL or the bytes")
    if not os.path.isfile(full):
        raise _error(where, f"{_short(path)} is not a file")
    try:
        with open(full, "rb") as handle:
            content = handle.read()
    except OSError as exc:
        raise _error(where, f"cannot read {_short(path)} ({exc.strerror or exc})") from None
    return _from_bytes(content, os.path.basename(full), kind, where, f"file {_short(path)}")


def _pil_png(image: Any, where: str) -> bytes:
    buffer = io.BytesIO()
    try:
        image.save(buffer, format="PNG")
    except Exception as exc:  # PIL raises many kinds (OSError, ValueError, KeyError)
        raise _error(where, f"the image cannot be saved as PNG ({exc})") from None
    return buffer.getvalue()


def to_media(value: Any, kind: str | None, where: str, *, paths: bool = True) -> Any:
    """``value`` as a run sends it: local data as ``LocalMedia``, a URL as it is, anything else unchanged.

    ``kind``: the parameter's declared media kind (None: not declared media); ``where``: its name, for
    messages; ``paths``: whether a string naming an existing file is a file when ``kind`` is None.
    """
    if isinstance(value, LocalMedia):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return _from_bytes(bytes(value), None, kind, where, f"the data given ({len(value)} bytes)")
    if isinstance(value, os.PathLike):
        return _from_path(os.fspath(value), kind, where)
    if isinstance(value, str):
        if kind in MEDIA_KINDS:
            if is_url(value):
                return value.strip()
            if not value.strip():
                raise _error(where, "is empty; give a file path, a URL or the bytes")
            if "\n" in value or len(value) >= MAX_LOCAL_PATH:
                raise _error(where, f"expects {kind} (a path, a URL or the bytes), got text {_short(value)}")
            return _from_path(value, kind, where)
        path = local_file(value) if paths else None
        return _from_path(path, kind, where) if path else value
    if _is_display_object(value):
        data, url, filename = value.data, value.url, value.filename
        name = os.path.basename(filename) if isinstance(filename, str) and filename else None
        if isinstance(data, bytes | bytearray) and data:
            what = f"the {type(value).__name__} object" + (f" of {_short(filename)}" if name else "")
            return _from_bytes(bytes(data), name, kind, where, what)
        if isinstance(url, str) and url:
            return url
        if name:
            return _from_path(filename, kind, where)
        raise _error(where, f"the {type(value).__name__} object holds no data, URL or file name")
    if _is_pil_image(value):
        return _from_bytes(_pil_png(value, where), None, kind, where, "the PIL image")
    return value


def _declared(schema: Any, name: str) -> str | None:
    """The media kind the schema declares for ``name`` (``data``: the primary input's), or None."""
    if schema is None or len(schema) == 0:
        return None
    param = schema.get(name)
    if param is None and name == "data":
        param = schema.primary_input()
    kind = getattr(param, "data_type", None)
    return kind if kind in MEDIA_KINDS else None


@dataclass
class Prepared:
    """A run's input with its local media replaced by refs (``LocalMedia.ref``), and the media."""

    data: Any
    parameters: dict[str, Any] | None
    files: tuple[LocalMedia, ...]


def prepare(
    schema: Any, data: Any, parameters: Mapping[str, Any] | None, wire_keys: frozenset[str] = frozenset()
) -> Prepared:
    """Turn the media of a run's input into ``LocalMedia`` refs (see the module docstring); the one
    place a run's media inputs are read and checked."""
    found: dict[str, LocalMedia] = {}
    primary = schema.primary_input() if schema is not None and len(schema) else None

    def convert(value: Any, name: str, shown: str, paths: bool) -> Any:
        kind = _declared(schema, name)
        if isinstance(value, list | tuple) and (kind is not None or any(map(is_media_object, value))):
            return [convert(item, name, shown, paths) for item in value]
        out = to_media(value, kind, shown, paths=paths)
        if isinstance(out, LocalMedia):
            found.setdefault(out.ref, out)
            return out.ref
        return out

    data_name = primary.name if primary is not None else "data"
    if isinstance(data, Mapping):
        data = {
            k: convert(v, k, data_name if k == "data" else k, True) if k not in wire_keys else v
            for k, v in data.items()
        }
    else:
        data = convert(data, "data", data_name, True)
    if parameters is not None:
        parameters = {k: v if k in wire_keys else convert(v, k, k, False) for k, v in parameters.items()}
    return Prepared(data, parameters, tuple(found.values()))


def with_links(value: Any, links: Mapping[str, str]) -> Any:
    """``value`` (a body value) with each media ref replaced by ``links[ref]`` (lists too)."""
    if isinstance(value, str):
        return links.get(value, value)
    if isinstance(value, list):
        return [links.get(v, v) if isinstance(v, str) else v for v in value]
    return value
