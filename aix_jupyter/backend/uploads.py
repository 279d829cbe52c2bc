"""The file-upload pair: ``POST /sdk/file/upload/temp-url`` hands out a signed URL, ``PUT`` stores the bytes.

Clients (the official SDK, the core) send a local file this way and then run the model with the
returned link as ``data``. The backend resolves its own links (the download URL, or the
``s3://<bucket>/<key>`` form the SDK derives from the upload URL) back to the stored file.

Limits: a signed URL carries its expiry in its signature and stops working after ``ttl`` seconds
(the file is deleted then too); a URL takes one upload (write-once: a repeat of the same bytes, as a
retrying client sends, succeeds again; other bytes get 409); at most ``max_files`` files and
``max_bytes`` bytes are kept, the oldest deleted first. The content type is checked when the URL is
made (a media type, nothing else), and files are served back as downloads of an inert type only
(see :func:`served_type`).
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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_ID = r"[0-9a-f]{32}"
_LINK = re.compile(rf"(?:/files/(?P<a>{_ID})(?:\?|$))|(?:^s3://[^/]+/uploads/(?P<b>{_ID})/)")
#: a whole value that is one of our links (``resolve`` finds links inside longer text too)
_WHOLE_LINK = re.compile(rf"(?:https?://\S+/files/{_ID}(?:\?\S*)?|s3://[^/\s]+/uploads/{_ID}/\S*)")
#: ``type/subtype`` with optional ``; name=value`` parameters: no spaces, quotes or line breaks
_MEDIA_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[\w.+-]+(?:\s*;\s*[\w.+-]+=[\w.+-]+)*")
#: types served back as they are; every other type is served as application/octet-stream
INERT_TYPES = frozenset(
    {
        "text/plain",
        "text/csv",
        "application/json",
        "application/pdf",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "audio/mpeg",
        "audio/wav",
        "audio/x-wav",
        "audio/ogg",
        "audio/flac",
        "video/mp4",
        "video/webm",
    }
)


class StoredPath(str):
    """The local path of an uploaded file, as a run's media input receives it (a ``str``).

    Models tell a file that this backend stored (and may read) from a path typed into a request.
    """


class UploadError(Exception):
    """A file URL that cannot be used (bad signature, expired, already used, bad content type)."""


def check_media_type(value: str) -> str:
    """``value`` if it is a plain media type (``text/plain; charset=utf-8``), else :class:`UploadError`."""
    if len(value) > 200 or not _MEDIA_TYPE.fullmatch(value):
        raise UploadError(f"contentType {value[:80]!r} is not a media type such as 'text/plain'")
    return value


def served_type(content_type: str) -> str:
    """The type a stored file is served with: its own if inert (:data:`INERT_TYPES`), else a download."""
    base = content_type.split(";", 1)[0].strip().lower()
    return base if base in INERT_TYPES else "application/octet-stream"


@dataclass
class Upload:
    id: str
    name: str
    content_type: str
    path: Path
    expires: int = 0  # unix time after which the URL and the file are gone
    size: int = 0
    complete: bool = False
    writing: bool = False
    digest: str = ""  # sha256 of the stored bytes

    @property
    def key(self) -> str:
        return f"uploads/{self.id}/{self.name}"

    @property
    def local_path(self) -> StoredPath:
        return StoredPath(self.path)

    def read_text(self) -> str:
        return self.path.read_bytes().decode("utf-8", errors="replace")


class UploadStore:
    """Uploaded files, kept in a private temporary folder until they expire or :meth:`close`."""

    def __init__(
        self,
        *,
        max_files: int = 256,
        max_bytes: int = 1024 * 2**20,
        ttl: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="aix-uploads-"))
        self._secret = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._uploads: dict[str, Upload] = {}
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.ttl = ttl
        self._clock = clock

    def create(self, name: str, content_type: str) -> Upload:
        """A new upload slot; :class:`UploadError` when ``content_type`` is not a media type."""
        content_type = check_media_type(content_type) if content_type else "application/octet-stream"
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(name or "file"))[:100] or "file"
        upload_id = secrets.token_hex(16)
        upload = Upload(
            id=upload_id,
            name=safe,
            content_type=content_type,
            path=self._dir / upload_id,
            expires=int(self._clock() + self.ttl),
        )
        with self._lock:
            self._expire()
            while len(self._uploads) >= self.max_files:  # forget the oldest
                self._forget(next(iter(self._uploads)))
            self._uploads[upload.id] = upload
        return upload

    def add(self, name: str, content_type: str, data: bytes) -> Upload:
        """Store ``data`` as a new file (a model's output), as if it had been uploaded."""
        upload = self.create(name, content_type)
        self.begin(upload)
        self.store(upload, data)
        return upload

    def signature(self, upload_id: str, expires: int) -> str:
        message = f"{upload_id}:{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def query(self, upload: Upload) -> str:
        """The signed query string of ``upload``'s URL."""
        return f"exp={upload.expires}&sig={self.signature(upload.id, upload.expires)}"

    def check(self, upload_id: str, expires: str, signature: str) -> Upload:
        """The upload named by a signed URL; :class:`UploadError` saying why when it cannot be used."""
        if not expires.isdigit() or not hmac.compare_digest(
            self.signature(upload_id, int(expires)), signature or ""
        ):
            raise UploadError("Invalid file URL (bad signature)")
        if self._clock() > int(expires):
            raise UploadError("This file URL has expired")
        with self._lock:
            self._expire()
            upload = self._uploads.get(upload_id)
        if upload is None:
            raise UploadError("This file URL's file is gone (the server kept too many files)")
        return upload

    def begin(self, upload: Upload) -> None:
        """Claim ``upload`` for its one write; :class:`UploadError` if it was written (or is being)."""
        with self._lock:
            if upload.complete or upload.writing:
                raise UploadError("This file URL was already used for an upload (URLs are write-once)")
            upload.writing = True

    def repeats(self, upload: Upload, data: bytes) -> bool:
        """True when ``data`` is exactly what ``upload`` holds (a client's retry, answered as a success)."""
        return upload.complete and hmac.compare_digest(upload.digest, hashlib.sha256(data).hexdigest())

    def store(self, upload: Upload, data: bytes) -> None:
        """Write the claimed ``upload``'s bytes (see :meth:`begin`), dropping the oldest files over budget."""
        upload.path.write_bytes(data)
        with self._lock:
            upload.size = len(data)
            upload.digest = hashlib.sha256(data).hexdigest()
            upload.complete, upload.writing = True, False
            total = sum(u.size for u in self._uploads.values())
            for old in list(self._uploads.values()):
                if total <= self.max_bytes or old is upload:
                    break
                total -= old.size
                self._forget(old.id)

    def abort(self, upload: Upload) -> None:
        """Release a claim whose upload failed (the URL can be used again)."""
        with self._lock:
            upload.writing = False

    def is_link(self, value: object) -> bool:
        """True when ``value`` as a whole is a link to a file of this server (known or not)."""
        return isinstance(value, str) and len(value) <= 2048 and _WHOLE_LINK.fullmatch(value) is not None

    def resolve(self, value: object) -> Upload | None:
        """The finished upload that a link in a run's input names, else None."""
        if not isinstance(value, str) or len(value) > 2048:
            return None
        match = _LINK.search(value)
        if match is None:
            return None
        with self._lock:
            self._expire()
            upload = self._uploads.get(match.group("a") or match.group("b"))
        return upload if upload is not None and upload.complete else None

    def _forget(self, upload_id: str) -> None:
        self._uploads.pop(upload_id).path.unlink(missing_ok=True)

    def _expire(self) -> None:
        now = self._clock()
        while self._uploads:
            oldest = next(iter(self._uploads.values()))
            if oldest.expires >= now:
                break
            self._forget(oldest.id)

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)
