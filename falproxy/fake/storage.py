"""The fake's object store: pending uploads guarded by one-time tokens, and stored files.

Mirrors ``fal-cdn-v3`` uploads (docs/fal-protocol.md §10): ``initiate`` hands out an upload
URL whose query token is the only credential, a single ``PUT`` or numbered part ``PUT``\\s plus
``complete`` fill it, and the file is then served from a ``file_url``. Tokens are consumed on
success so a leaked upload URL cannot overwrite a finished file.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass, field

from .errors import detail

DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class StoredFile:
    """A finished upload."""

    name: str
    content_type: str
    data: bytes


@dataclass
class PendingUpload:
    """An initiated upload waiting for its bytes."""

    file_id: str
    token: str
    file_name: str
    content_type: str
    multipart: bool
    parts: dict[int, bytes] = field(default_factory=dict)


def etag_of(data: bytes) -> str:
    """A quoted MD5 ETag, as S3-style stores return."""
    return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'


def _parse_parts(body: object) -> list[tuple[int, str]]:
    """Read ``{"parts": [{"partNumber": n, "etag": "..."}]}`` or raise 400."""
    parts = body.get("parts") if isinstance(body, dict) else None
    if not isinstance(parts, list) or not parts:
        raise detail(400, "Body must be {'parts': [{'partNumber', 'etag'}, ...]}")
    result = []
    for part in parts:
        number = part.get("partNumber") if isinstance(part, dict) else None
        etag = part.get("etag") if isinstance(part, dict) else None
        if isinstance(number, bool) or not isinstance(number, int) or not isinstance(etag, str):
            raise detail(400, "Each part needs an integer partNumber and a string etag")
        result.append((number, etag))
    return result


class Storage:
    """In-memory uploads and files, keyed by file id."""

    def __init__(self) -> None:
        self._pending: dict[str, PendingUpload] = {}
        self._files: dict[str, StoredFile] = {}

    def initiate(self, content_type: str, file_name: str, *, multipart: bool) -> PendingUpload:
        """Start an upload and return its one-time credential."""
        upload = PendingUpload(
            uuid.uuid4().hex, secrets.token_urlsafe(24), file_name, content_type, multipart
        )
        self._pending[upload.file_id] = upload
        return upload

    def _claim(self, file_id: str, token: str, *, multipart: bool) -> PendingUpload:
        """The pending upload if ``token`` opens it; 403 otherwise (no hint which part failed)."""
        upload = self._pending.get(file_id)
        if upload is None or not hmac.compare_digest(upload.token.encode(), token.encode()):
            raise detail(403, "Invalid or expired upload token")
        if upload.multipart != multipart:
            raise detail(400, "This upload expects the other upload flow")
        return upload

    def put_single(self, file_id: str, token: str, data: bytes, content_type: str | None) -> None:
        """Store a single-request upload and consume its token."""
        upload = self._claim(file_id, token, multipart=False)
        ctype = content_type or upload.content_type
        self._files[file_id] = StoredFile(upload.file_name, ctype, data)
        del self._pending[file_id]

    def put_part(self, file_id: str, token: str, number: int, data: bytes) -> str:
        """Store one part of a multipart upload; returns its ETag."""
        upload = self._claim(file_id, token, multipart=True)
        if number < 1:
            raise detail(400, "Part numbers start at 1")
        upload.parts[number] = data
        return etag_of(data)

    def complete(self, file_id: str, token: str, body: object) -> StoredFile:
        """Check the part list (1..N, matching ETags), assemble, and consume the token."""
        upload = self._claim(file_id, token, multipart=True)
        listed = _parse_parts(body)
        if [n for n, _ in listed] != list(range(1, len(listed) + 1)):
            raise detail(400, "Parts must be numbered 1..N in order")
        if sorted(upload.parts) != [n for n, _ in listed]:
            raise detail(400, "Part list does not match the uploaded parts")
        if any(etag_of(upload.parts[n]) != etag for n, etag in listed):
            raise detail(400, "ETag mismatch")
        data = b"".join(upload.parts[n] for n, _ in listed)
        stored = StoredFile(upload.file_name, upload.content_type, data)
        self._files[file_id] = stored
        del self._pending[file_id]
        return stored

    def get(self, file_id: str, name: str) -> StoredFile | None:
        """A stored file, if ``name`` is the one it was uploaded as."""
        stored = self._files.get(file_id)
        return stored if stored is not None and stored.name == name else None

    def clear(self) -> None:
        """Forget every upload and file."""
        self._pending.clear()
        self._files.clear()
