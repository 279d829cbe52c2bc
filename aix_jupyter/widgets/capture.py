"""``MediaCapture``: a media parameter's Upload, drag-and-drop, Record (audio) and Camera (image).

An ``anywidget`` (its JavaScript, ``capture.js``, ships in the package: nothing is fetched). In the
browser:

* **Upload** picks a file; a file dropped on the widget does the same. Either is sent at once.
* **Record** (audio) opens the microphone (``getUserMedia``), records with ``MediaRecorder`` while a
  level meter (a WebAudio ``AnalyserNode``) moves; **Stop** turns the recording into a WAV (16-bit
  PCM, mono, ``sample_rate`` Hz, written in the browser) shown as an ``<audio controls>`` player.
  **Use** sends it. A recording the browser cannot decode is sent as recorded (WebM/Opus).
* **Camera** (image) shows the webcam live; **Snap** draws the frame on a canvas, as PNG, previewed;
  **Use** sends it.

The bytes reach the kernel as custom widget messages, ``chunk_size`` bytes per binary buffer, at most
a few unacknowledged at a time (the protocol, browser → kernel)::

    {"type": "begin", "id": ID, "name": NAME, "mime": TYPE, "size": BYTES, "chunks": COUNT}
    {"type": "chunk", "id": ID, "index": I}    + one binary buffer (chunks in order, from 0)
    {"type": "end", "id": ID}
    {"type": "abort", "id": ID}                (the view went away)

and the kernel answers ``{"type": "ack", "id", "index"}`` per chunk, ``{"type": "done", "id", "name",
"size"}`` at the end, or ``{"type": "error", "id", "message"}`` (a one-line message the widget shows;
the transfer is dropped). A file over ``max_bytes`` is refused by the browser before anything is
sent (and by the kernel should a message claim more). The reassembled bytes are written to a fresh
temporary file, whose path is handed to the ``on_file`` callbacks; while a transfer is under way
``receiving`` is true (a form then holds its Run: the value is not there yet).

Nothing of the configuration (API key, endpoints) is part of the widget's state: only the kind, the
accepted types, the size limit, the chunk size, the recording rate and a random id are.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from aix_jupyter.core.errors import ParameterError

DEFAULT_MAX_BYTES = 25 * 2**20
"""The size limit of one captured or uploaded file (25 MB), unless a widget is given another."""
CHUNK_SIZE = 256 * 2**10
ACCEPT = {"audio": "audio/*", "image": "image/*", "video": "video/*"}
DEFAULT_NAMES = {"audio": "recording.wav", "image": "snapshot.png", "video": "video", "file": "upload"}
_UNSAFE = re.compile(r"[^\w.\- ]+")


def megabytes(size: int) -> str:
    """``size`` bytes as the browser writes it: ``25.0 MB``, ``12.5 KB`` or ``11 bytes``."""
    if size >= 2**20:
        return f"{size / 2**20:.1f} MB"
    return f"{size / 2**10:.1f} KB" if size >= 2**10 else f"{size} bytes"


def safe_name(name: Any, default: str) -> str:
    """A file name the browser sent, reduced to a harmless base name (``default`` when nothing is left)."""
    base = os.path.basename(str(name or "").replace("\\", "/")).strip()
    base = _UNSAFE.sub("_", base).strip(". ")[:100]
    return base or default


@dataclass
class Received:
    """One file, reassembled: its (safe) name, its declared type and its bytes."""

    name: str
    mime: str
    data: bytes


@dataclass
class _Transfer:
    id: str
    name: str
    mime: str
    size: int
    chunks: int
    data: bytearray = field(default_factory=bytearray)
    next: int = 0


class ChunkAssembler:
    """Reassembles one file at a time from ``begin`` / ``chunk`` / ``end`` messages (see the module doc).

    Every bad message raises ``ParameterError`` with a one-line message naming ``label`` and drops
    the transfer under way.
    """

    def __init__(
        self,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        chunk_size: int = CHUNK_SIZE,
        kind: str = "file",
        label: str = "file",
    ) -> None:
        self.max_bytes = max_bytes
        self.chunk_size = chunk_size
        self.kind = kind
        self.label = label
        self.current: _Transfer | None = None

    def _fail(self, message: str) -> ParameterError:
        self.current = None
        return ParameterError(f"{self.label}: {message}", parameter=self.label)

    def _transfer(self, content: dict[str, Any]) -> _Transfer:
        transfer = self.current
        if transfer is None or content.get("id") != transfer.id:  # (a transfer under way goes on)
            message = f"a {content.get('type')} message for no transfer under way; send it again"
            raise ParameterError(f"{self.label}: {message}", parameter=self.label)
        return transfer

    def begin(self, content: dict[str, Any]) -> _Transfer:
        """Start a transfer (one under way is dropped: the newer file wins)."""
        self.current = None
        name = safe_name(content.get("name"), DEFAULT_NAMES.get(self.kind, "upload"))
        size, chunks, ident = content.get("size"), content.get("chunks"), content.get("id")
        mime = str(content.get("mime") or "")
        if not isinstance(ident, str) or not ident:
            raise self._fail("a transfer without an id; send it again")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise self._fail(f"{name} has no valid size ({size!r}); nothing was received")
        if size > self.max_bytes:
            limit = megabytes(self.max_bytes)
            raise self._fail(f"{name} is {megabytes(size)}, over the {limit} limit; nothing was received")
        expected = -(-size // self.chunk_size)
        if chunks != expected:
            raise self._fail(f"{name}: {chunks!r} chunks announced for {size} bytes, expected {expected}")
        major = self.kind if self.kind in ACCEPT else ""
        if major and mime and not mime.startswith(major + "/"):
            raise self._fail(f"{name} is not {'an' if major == 'image' else 'a'} {major} file ({mime})")
        self.current = _Transfer(ident, name, mime, size, expected)
        return self.current

    def chunk(self, content: dict[str, Any], buffers: Sequence[Any]) -> int:
        """Add one chunk (they come in order); its index."""
        transfer = self._transfer(content)
        index = content.get("index")
        if index != transfer.next:
            raise self._fail(f"{transfer.name}: chunk {index!r} arrived, expected chunk {transfer.next}")
        if len(buffers) != 1:
            raise self._fail(f"{transfer.name}: chunk {index} carries {len(buffers)} buffers, expected 1")
        piece = bytes(buffers[0])
        last = index == transfer.chunks - 1
        expected = transfer.size - index * self.chunk_size if last else self.chunk_size
        if len(piece) != expected:
            raise self._fail(f"{transfer.name}: chunk {index} holds {len(piece)} bytes, expected {expected}")
        transfer.data += piece
        transfer.next += 1
        return index

    def end(self, content: dict[str, Any]) -> Received:
        """The whole file, once every announced chunk arrived."""
        transfer = self._transfer(content)
        if transfer.next != transfer.chunks:
            raise self._fail(
                f"{transfer.name}: ended after {transfer.next} of {transfer.chunks} chunks; send it again"
            )
        self.current = None
        return Received(transfer.name, transfer.mime, bytes(transfer.data))

    def abort(self, content: dict[str, Any]) -> None:
        """Drop the transfer ``content`` names (nothing when it is not the one under way)."""
        if self.current is not None and content.get("id") == self.current.id:
            self.current = None

    @property
    def progress(self) -> str:
        """What is under way, in words (empty when nothing is)."""
        transfer = self.current
        if transfer is None:
            return ""
        return f"{transfer.name} is still arriving"


_written: set[Path] = set()  # the folders ``save`` made in this process (removed when it exits)


def _remove(folders: Iterable[Path]) -> None:
    for folder in list(folders):
        shutil.rmtree(folder, ignore_errors=True)
        _written.discard(folder)


@atexit.register
def _remove_all() -> None:
    _remove(_written)


def save(received: Received) -> Path:
    """Write a received file into a fresh temporary folder, under its own name; the path.

    The folder goes when the widget that received it is closed, or at the latest when the process
    (the kernel) exits."""
    folder = Path(tempfile.mkdtemp(prefix="aix-upload-"))
    _written.add(folder)
    path = folder / received.name
    path.write_bytes(received.data)
    return path


class MediaCapture(anywidget.AnyWidget):
    """Upload, drop, Record (audio) or Camera (image) for one media parameter; see the module doc."""

    _esm = (Path(__file__).with_name("capture.js")).read_text(encoding="utf-8")
    _css = """
.aix-capture { border: 1px dashed transparent; border-radius: 4px; padding: 2px; }
.aix-capture.aix-capture-over { border-color: var(--jp-brand-color1, #1976d2);
  background: var(--jp-layout-color2, #eee); }
.aix-capture-bar { display: flex; align-items: center; gap: 4px; flex-wrap: wrap; }
.aix-capture-bar .widget-button { width: auto; padding: 0 10px; }
.aix-capture-meter { width: 80px; height: 8px; background: var(--jp-layout-color3, #ddd); border-radius: 4px;
  overflow: hidden; }
.aix-capture-level { height: 100%; width: 0; background: var(--jp-success-color1, #4caf50); }
.aix-capture-hint, .aix-capture-status { color: var(--jp-ui-font-color2, #666); font-size: 12px; }
.aix-capture-status { display: block; min-height: 1em; }
.aix-capture-status.aix-capture-error { color: var(--jp-error-color1, #d32f2f); }
.aix-capture-preview img, .aix-capture-preview video { max-width: 320px; max-height: 240px; margin-top: 4px;
  display: block; }
.aix-capture-preview audio { margin-top: 4px; display: block; }
"""
    kind = traitlets.Unicode("file").tag(sync=True)
    accept = traitlets.Unicode("").tag(sync=True)
    max_bytes = traitlets.Int(DEFAULT_MAX_BYTES).tag(sync=True)
    chunk_size = traitlets.Int(CHUNK_SIZE).tag(sync=True)
    sample_rate = traitlets.Int(16000).tag(sync=True)
    uid = traitlets.Unicode("").tag(sync=True)  # names this widget's clip for views drawn again
    receiving = traitlets.Bool(False)  # kernel side only: a transfer is under way
    error = traitlets.Unicode("")  # kernel side only: the last refusal, in one line

    def __init__(
        self,
        kind: str = "file",
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        label: str | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes <= 0:
            raise ParameterError(f"max_bytes must be a positive number of bytes, not {max_bytes!r}")
        super().__init__(
            kind=kind, accept=ACCEPT.get(kind, ""), max_bytes=max_bytes, uid=uuid.uuid4().hex, **kwargs
        )
        self.assembler = ChunkAssembler(
            max_bytes=max_bytes, chunk_size=self.chunk_size, kind=kind, label=label or kind
        )
        self.files: list[Path] = []  # every file this widget wrote (removed on close)
        self._callbacks: list[Callable[[Path], None]] = []
        self.on_msg(self._message)

    def on_file(self, callback: Callable[[Path], None]) -> None:
        """Call ``callback(path)`` with each file received (a new temporary file each time)."""
        self._callbacks.append(callback)

    def abort(self) -> None:
        """Drop the transfer under way, if any (its chunks are ignored from now on)."""
        transfer = self.assembler.current
        if transfer is not None:
            self.assembler.abort({"id": transfer.id})
            self.send(
                {"type": "error", "id": transfer.id, "message": "cancelled: the value was set otherwise"}
            )
        self.receiving = False

    def _message(self, _widget: Any, content: Any, buffers: Sequence[Any]) -> None:
        if not isinstance(content, dict):
            self.error = f"{self.assembler.label}: a message that is not an object was ignored"
            return
        kind, ident = content.get("type"), content.get("id")
        try:
            if kind == "begin":
                self.assembler.begin(content)
                self.error = ""
                self.receiving = True
            elif kind == "chunk":
                index = self.assembler.chunk(content, buffers)
                self.send({"type": "ack", "id": ident, "index": index})
            elif kind == "end":
                received = self.assembler.end(content)
                self.receiving = False
                path = save(received)  # (an OSError is reported like a bad message)
                self.files.append(path)
                self.send({"type": "done", "id": ident, "name": received.name, "size": len(received.data)})
                for callback in list(self._callbacks):
                    callback(path)
            elif kind == "abort":
                self.assembler.abort(content)
                self.receiving = self.assembler.current is not None
            else:
                raise ParameterError(f"{self.assembler.label}: unknown message type {kind!r}")
        except (ParameterError, OSError) as exc:
            self.receiving = self.assembler.current is not None
            self.error = str(exc)
            self.send({"type": "error", "id": ident, "message": self.error})

    def close(self) -> None:
        """Close the widget and remove the temporary files it wrote."""
        _remove({path.parent for path in getattr(self, "files", ())})  # (none when __init__ failed)
        self.files = []
        super().close()


__all__ = ["DEFAULT_MAX_BYTES", "ChunkAssembler", "MediaCapture", "Received"]
