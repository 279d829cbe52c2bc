"""What ``capture.js`` sends the kernel, sent from Python: the widget's real message handler runs."""

from __future__ import annotations

from typing import Any


def message(widget: Any, content: Any, buffers: list[Any] | None = None) -> None:
    """Deliver one custom message as the kernel's comm layer does (``Widget._handle_msg``)."""
    widget._handle_msg(
        {"content": {"data": {"method": "custom", "content": content}}, "buffers": buffers or []}
    )


def begin(capture: Any, data: bytes, *, name: str, mime: str, ident: str = "t1") -> int:
    """The ``begin`` message for ``data``; the number of chunks announced."""
    chunks = -(-len(data) // capture.chunk_size)
    content = {"type": "begin", "id": ident, "name": name, "mime": mime, "size": len(data), "chunks": chunks}
    message(capture, content)
    return chunks


def chunks(capture: Any, data: bytes, *, ident: str = "t1") -> None:
    """Every chunk of ``data``, in order, each as one binary buffer."""
    step = capture.chunk_size
    for index in range(-(-len(data) // step)):
        piece = memoryview(data)[index * step : (index + 1) * step]
        message(capture, {"type": "chunk", "id": ident, "index": index}, [piece])


def deliver(capture: Any, data: bytes, *, name: str, mime: str, ident: str = "t1") -> None:
    """A whole transfer of ``data``: begin, every chunk, end."""
    begin(capture, data, name=name, mime=mime, ident=ident)
    chunks(capture, data, ident=ident)
    message(capture, {"type": "end", "id": ident})
