"""The file-upload pair: ``POST /sdk/file/upload/temp-url`` hands out a signed URL, ``PUT`` stores the bytes.

Clients (the official SDK, the core) send a local file this way and then run the model with the
returned link as ``data``. The backend resolves its own links (the download URL, or the
``s3://<bucket>/<key>`` form the SDK derives from the upload URL) back to the stored file.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

_ID = r"[0-9a-f]{32}"
_LINK = re.compile(rf"(?:/files/(?P<a>{_ID})(?:\?|$))|(?:^s3://[^/]+/uploads/(?P<b>{_ID})/)")


@dataclass
class Upload:
    id: str
    name: str
    content_type: str
    path: Path
    size: int = 0
    complete: bool = False

    @property
    def key(self) -> str:
        return f"uploads/{self.id}/{self.name}"

    def read_text(self) -> str:
        return self.path.read_bytes().decode("utf-8", errors="replace")


class UploadStore:
    """Uploaded files, kept in a private temporary folder until :meth:`close`."""

    def __init__(self, *, max_files: int = 256) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="aix-uploads-"))
        self._secret = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._uploads: dict[str, Upload] = {}
        self.max_files = max_files

    def create(self, name: str, content_type: str) -> Upload:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(name or "file"))[:100] or "file"
        upload = Upload(
            id=secrets.token_hex(16),
            name=safe,
            content_type=content_type or "application/octet-stream",
            path=Path(),
        )
        upload.path = self._dir / upload.id
        with self._lock:
            if len(self._uploads) >= self.max_files:  # forget the oldest
                oldest = next(iter(self._uploads))
                self._uploads.pop(oldest).path.unlink(missing_ok=True)
            self._uploads[upload.id] = upload
        return upload

    def signature(self, upload_id: str) -> str:
        return hmac.new(self._secret, upload_id.encode(), hashlib.sha256).hexdigest()[:32]

    def check(self, upload_id: str, signature: str) -> Upload | None:
        """The upload named by a signed URL, or None when the id or the signature is wrong."""
        if not hmac.compare_digest(self.signature(upload_id), signature or ""):
            return None
        with self._lock:
            return self._uploads.get(upload_id)

    def store(self, upload: Upload, data: bytes) -> None:
        upload.path.write_bytes(data)
        upload.size = len(data)
        upload.complete = True

    def resolve(self, value: object) -> Upload | None:
        """The finished upload that a link in a run's input names, else None."""
        if not isinstance(value, str) or len(value) > 2048:
            return None
        match = _LINK.search(value)
        if match is None:
            return None
        with self._lock:
            upload = self._uploads.get(match.group("a") or match.group("b"))
        return upload if upload is not None and upload.complete else None

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
