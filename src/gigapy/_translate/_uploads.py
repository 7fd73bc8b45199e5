"""Images and files in OpenAI/Anthropic requests: what the caller must upload to GigaChat first.

GigaChat takes files only by id (``attachments`` in v1, ``content[].files`` in v2), so an
image given inline (a ``data:`` URL, base64) or by an http(s) URL must be uploaded to
``/files`` before the chat call. The translation never does that itself: it returns the
list of :class:`PendingUpload` and takes back a mapping ``key -> file id``. The key of
inline data is its content hash (``sha256:<hex>``), so the caller can cache uploads by
content; the key of a URL is the URL (the caller fetches it, checks the bytes with
:func:`check_media`, uploads, and may cache by the hash it gets back).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from ._common import bad_value, fail

MB = 1024 * 1024
#: GigaChat's per-file limits by kind (reference: the files section of the wire contract).
LIMITS = {"image": 15 * MB, "text": 40 * MB, "audio": 35 * MB}
#: MIME types GigaChat accepts, by kind.
IMAGE_TYPES = ("image/jpeg", "image/png", "image/tiff", "image/bmp")
DOCUMENT_TYPES = {
    "text/plain": "text",
    "application/pdf": "text",
    "application/msword": "text",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "text",
    "application/epub": "text",
    "application/epub+zip": "text",
    "application/ppt": "text",
    "application/pptx": "text",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "text",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "text",
    "audio/mp4": "audio",
    "audio/mpeg": "audio",
    "audio/mp3": "audio",
    "audio/x-m4a": "audio",
    "audio/wav": "audio",
    "audio/x-wav": "audio",
    "audio/webm": "audio",
    "audio/ogg": "audio",
    "audio/opus": "audio",
}
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"II*\x00", 0, "image/tiff"),
    (b"MM\x00*", 0, "image/tiff"),
    (b"BM", 0, "image/bmp"),
    (b"GIF8", 0, "image/gif"),
    (b"WEBP", 8, "image/webp"),
    (b"%PDF", 0, "application/pdf"),
)


@dataclass(frozen=True)
class PendingUpload:
    """One file the caller must upload (or fetch, then upload) before the chat call.

    ``key`` is what the caller maps to the GigaChat file id. Inline data has ``data``,
    ``mime`` and ``sha256`` set and ``key == "sha256:" + sha256``; a remote image has only
    ``url`` (``key == url``). ``field`` names the request part it came from.
    """

    key: str
    field: str
    data: bytes | None = None
    mime: str | None = None
    sha256: str | None = None
    url: str | None = None
    filename: str | None = None

    def __repr__(self) -> str:  # never dump megabytes of image into a log line
        size = "" if self.data is None else f", {len(self.data)} bytes"
        return f"PendingUpload({self.key!r}, {self.field!r}, {self.mime or self.url!r}{size})"


def sniff(data: bytes) -> str | None:
    """The MIME type the first bytes show, if they show one."""
    for magic, offset, mime in _MAGIC:
        if data[offset : offset + len(magic)] == magic:
            return mime
    return None


def check_media(data: bytes, declared: str | None, where: str, *, images_only: bool = True) -> str:
    """Check bytes GigaChat would get: a type it accepts and the size limit. Returns the MIME type.

    The bytes' own signature wins over the declared type (a PNG sent as image/jpeg is a PNG).
    """
    if not data:
        raise fail(where, "the file is empty")
    mime = sniff(data) or (declared or "").split(";")[0].strip().lower() or None
    if mime in IMAGE_TYPES:
        kind = "image"
    elif not images_only and mime in DOCUMENT_TYPES:
        kind = DOCUMENT_TYPES[mime]
    else:
        allowed = ", ".join(IMAGE_TYPES) if images_only else "images (jpeg, png, tiff, bmp), documents and audio"
        raise bad_value(
            where,
            f"GigaChat does not accept {mime or 'this file type'}; it takes {allowed}"
            + (" (convert gif/webp images to png first)" if mime in ("image/gif", "image/webp") else ""),
        )
    if len(data) > LIMITS[kind]:
        raise bad_value(
            where, f"the {kind} is {len(data)} bytes; GigaChat's limit for a {kind} is {LIMITS[kind] // MB} MB"
        )
    return mime


def inline_upload(
    data: bytes, declared: str | None, where: str, *, images_only: bool = True, filename: str | None = None
) -> PendingUpload:
    """A checked upload of inline bytes, keyed by content hash."""
    mime = check_media(data, declared, where, images_only=images_only)
    digest = hashlib.sha256(data).hexdigest()
    return PendingUpload(key=f"sha256:{digest}", field=where, data=data, mime=mime, sha256=digest, filename=filename)


def decode_base64(text: str, where: str) -> bytes:
    """Strict base64 (whitespace allowed), with an error naming ``where``."""
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise fail(where, "is not valid base64") from None


def from_url(url: str, where: str, *, images_only: bool = True, filename: str | None = None) -> PendingUpload:
    """A ``data:`` URL (decoded and checked now) or an http(s) URL (for the caller to fetch)."""
    if url.startswith("data:"):
        header, sep, payload = url[5:].partition(",")
        if not sep:
            raise fail(where, "a data: URL needs a ',' before its data")
        parts = header.split(";")
        declared = parts[0] or None
        if "base64" not in (p.strip().lower() for p in parts[1:]):
            raise fail(where, "only base64 data: URLs are supported (data:<type>;base64,...)")
        return inline_upload(decode_base64(payload, where), declared, where, images_only=images_only, filename=filename)
    lowered = url[:8].lower()
    if lowered.startswith(("http://", "https://")):
        return PendingUpload(key=url, field=where, url=url, filename=filename)
    raise fail(where, "expected a data: URL or an http(s) URL")


def resolve(key: str, file_ids: Mapping[str, str] | None, where: str) -> str:
    """The GigaChat file id the caller gave for ``key``."""
    file_id = (file_ids or {}).get(key)
    if not isinstance(file_id, str) or not file_id:
        raise fail(
            where,
            "the file was not uploaded: no file id was given for it "
            "(upload every PendingUpload and pass its key -> file id)",
        )
    return file_id
