"""File uploads: type detection and the service's size limits, checked before sending.

Limits (reference/api-contract.md §7): text documents 40 MB, images 15 MB, audio 35 MB.
A source is a path, bytes, or a binary file object; its type comes from ``content_type``,
the file name's extension, or the first bytes.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from .._core import params as P
from .._core.flow import (
    Blocking,
    FilePart,
    Flow,
    parse_model,
)
from .._core.wire import surrogate_at
from ..errors import InvalidArgumentError
from ..types.files import DeletedFile, File, FileList
from .base import ClientCore, RequestOptions

MB = 1024 * 1024
LIMITS = {"text": 40 * MB, "image": 15 * MB, "audio": 35 * MB}

# extension -> (MIME type sent, kind)
TYPES: dict[str, tuple[str, str]] = {
    ".txt": ("text/plain", "text"),
    ".doc": ("application/msword", "text"),
    ".docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "text"),
    ".pdf": ("application/pdf", "text"),
    ".epub": ("application/epub", "text"),
    ".ppt": ("application/ppt", "text"),
    ".pptx": ("application/pptx", "text"),
    ".xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "text"),
    ".jpg": ("image/jpeg", "image"),
    ".jpeg": ("image/jpeg", "image"),
    ".png": ("image/png", "image"),
    ".tif": ("image/tiff", "image"),
    ".tiff": ("image/tiff", "image"),
    ".bmp": ("image/bmp", "image"),
    ".mp4": ("audio/mp4", "audio"),
    ".mp3": ("audio/mpeg", "audio"),
    ".m4a": ("audio/x-m4a", "audio"),
    ".wav": ("audio/wav", "audio"),
    ".weba": ("audio/webm", "audio"),
    ".ogg": ("audio/ogg", "audio"),
    ".opus": ("audio/opus", "audio"),
}
_KIND_BY_MIME = dict(TYPES.values())
_KIND_BY_MIME.update(
    {
        "audio/mp3": "audio",
        "audio/x-wav": "audio",
        "audio/wave": "audio",
        "audio/x-pn-wav": "audio",
        "audio/x-ogg": "audio",
        "application/vnd.ms-excel": "text",
        "application/epub+zip": "text",
        "application/vnd.ms-powerpoint": "text",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation": "text",
    }
)
_EXT_BY_MIME = {mime: ext for ext, (mime, _) in reversed(list(TYPES.items()))}

_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, ".jpg"),
    (b"\x89PNG\r\n\x1a\n", 0, ".png"),
    (b"%PDF", 0, ".pdf"),
    (b"II*\x00", 0, ".tiff"),
    (b"MM\x00*", 0, ".tiff"),
    (b"BM", 0, ".bmp"),
    (b"ID3", 0, ".mp3"),
    (b"OggS", 0, ".ogg"),
    (b"WAVE", 8, ".wav"),
    (b"ftyp", 4, ".mp4"),
)
SUPPORTED = ", ".join(sorted({ext.lstrip(".") for ext in TYPES}))


def sniff(head: bytes) -> str | None:
    """Guess an extension from the first bytes of a file."""
    for magic, offset, ext in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return ext
    if head and b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return ".txt"
    return None


def prepare_upload(
    source: Any, *, filename: str | None = None, content_type: str | None = None, field: str = "file"
) -> FilePart:
    """Check a file before upload and describe it; blocking (the async client runs it in a thread).

    Raises InvalidArgumentError for a missing file, an unsupported type or a file over the
    limit for its type.
    """
    data: Any
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise InvalidArgumentError(field, f"file not found: {path}") from None
        except OSError as exc:
            raise InvalidArgumentError(field, f"cannot read {path}: {exc.strerror or exc}") from None
        if not path.is_file():
            raise InvalidArgumentError(field, f"not a regular file: {path}")
        size = stat.st_size
        name = filename or path.name
        with path.open("rb") as fh:
            head = fh.read(64)
        data = str(path)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        size = len(data)
        head = data[:64]
        name = filename or ""
    elif hasattr(source, "read"):
        data, size, head = _file_object(source, field)
        name = filename or os.path.basename(str(getattr(source, "name", "") or ""))
    else:
        kind = type(source).__name__
        raise InvalidArgumentError(field, f"expected a path, bytes or a binary file object, got {kind}")
    if size == 0:
        raise InvalidArgumentError(field, "the file is empty")
    _check_filename(name, "filename" if filename else field)
    mime, kind, name = _classify(name, content_type, head, field)
    limit = LIMITS[kind]
    if size > limit:
        raise InvalidArgumentError(
            field, f"{name} is {size / MB:.1f} MB; the service accepts {kind} files up to {limit // MB} MB"
        )
    return FilePart(field="file", filename=name, content_type=mime, source=data, size=size)


def _check_filename(name: str, field: str) -> None:
    """The name goes into the multipart part's headers: one line of UTF-8 text."""
    if not isinstance(name, str):
        raise InvalidArgumentError(field, f"the file name must be a string, got {type(name).__name__}")
    for i, ch in enumerate(name):
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            raise InvalidArgumentError(
                field,
                f"the file name contains a control character (a line break?) at index "
                f"{i}; pass filename= with a plain name",
            )
    index = surrogate_at(name)
    if index is not None:
        raise InvalidArgumentError(
            field,
            f"the file name contains a lone surrogate at index {index} (a name that is "
            "not UTF-8?); pass filename= with a plain name",
        )


def _file_object(fh: IO[Any], field: str) -> tuple[Any, int, bytes]:
    """Size and head of a file object; unseekable ones are read (up to the largest limit)."""
    try:
        if fh.seekable():
            start = fh.tell()
            fh.seek(0, io.SEEK_END)
            size = fh.tell() - start
            fh.seek(start)
            head = fh.read(64)
            fh.seek(start)
            if not isinstance(head, bytes):
                raise InvalidArgumentError(field, "the file object must be opened in binary mode ('rb')")
            return Seekable(fh, start), size, head
        data = fh.read(max(LIMITS.values()) + 1)
    except (OSError, ValueError) as exc:
        raise InvalidArgumentError(field, f"cannot read the file object: {exc}") from None
    if not isinstance(data, bytes):
        raise InvalidArgumentError(field, "the file object must be opened in binary mode ('rb')")
    return data, len(data), data[:64]


class Seekable:
    """A caller's seekable file object plus where its content starts (rewound per attempt)."""

    __slots__ = ("fh", "start")

    def __init__(self, fh: IO[bytes], start: int) -> None:
        self.fh = fh
        self.start = start

    def rewind(self) -> IO[bytes]:
        """The file object positioned at the start of the content."""
        self.fh.seek(self.start)
        return self.fh

    def read_all(self) -> bytes:
        """The whole content (the async client reads it in a worker thread)."""
        return self.rewind().read()


def _classify(name: str, content_type: str | None, head: bytes, field: str) -> tuple[str, str, str]:
    ext = os.path.splitext(name)[1].lower()
    if content_type is not None:
        mime = content_type.split(";")[0].strip().lower()
        kind = _KIND_BY_MIME.get(mime)
        if kind is None:
            raise InvalidArgumentError("content_type", f"{content_type!r} is not accepted by the service: {SUPPORTED}")
        if not name:
            name = "file" + _EXT_BY_MIME.get(mime, "")
        return mime, kind, name
    if ext and ext not in TYPES:
        raise InvalidArgumentError(field, f"unsupported file type {ext!r}; the service accepts {SUPPORTED}")
    if not ext:
        sniffed = sniff(head)
        if sniffed is None:
            raise InvalidArgumentError(field, f"unknown file type; pass filename= or content_type= ({SUPPORTED})")
        ext = sniffed
        name = (name or "file") + ext
    mime, kind = TYPES[ext]
    return mime, kind, name


# content hash -> file id of what attach() uploaded, per identity (see gigapy._ops.images)
_UPLOADS: dict[tuple[object, str], str] = {}
_UPLOADS_LOCK = threading.Lock()


def recall_upload(key: tuple[object, str]) -> str | None:
    """The file id uploaded before for this (identity, content) key, if any."""
    return _UPLOADS.get(key)


def remember_upload(key: tuple[object, str], file_id: str) -> None:
    """Remember that this content is stored as ``file_id``."""
    with _UPLOADS_LOCK:
        _UPLOADS[key] = file_id


def forget_upload(file_id: str) -> None:
    """Drop a deleted file from the de-duplication memory."""
    with _UPLOADS_LOCK:
        for key in [k for k, v in _UPLOADS.items() if v == file_id]:
            del _UPLOADS[key]


def upload_file(
    core: ClientCore, source: Any, purpose: str, filename: str | None, content_type: str | None, options: RequestOptions
) -> Flow[File]:
    """``POST /files`` (multipart). The file is checked (type, size limit) before sending."""
    if purpose not in ("general", "assistant"):
        raise InvalidArgumentError("purpose", f"expected 'general' or 'assistant', got {purpose!r}")
    part: FilePart = yield Blocking(lambda: prepare_upload(source, filename=filename, content_type=content_type))
    return (yield from upload_part(core, part, purpose, options))


def upload_part(core: ClientCore, part: FilePart, purpose: str, options: RequestOptions) -> Flow[File]:
    """``POST /files`` for a checked file."""
    req = core.request("POST", "/files", options, file=part, form={"purpose": purpose})
    return core.call(req, lambda r: parse_model(File, r))


def get_all_files(core: ClientCore, options: RequestOptions) -> Flow[list[File]]:
    """``GET /files``."""
    response = yield from core.send(core.request("GET", "/files", options, idempotent=True))
    files = parse_model(FileList, response).data
    meta = response.meta()
    for f in files:
        f._meta = meta
    return files


def _file_path(file_id: str) -> str:
    return "/files/" + quote(P.text(file_id, "file_id"), safe="")


def get_file_info(core: ClientCore, file_id: str, options: RequestOptions) -> Flow[File]:
    """``GET /files/{id}``."""
    req = core.request("GET", _file_path(file_id), options, idempotent=True)
    return core.call(req, lambda r: parse_model(File, r))


def delete_file(core: ClientCore, file_id: str, options: RequestOptions) -> Flow[DeletedFile]:
    """``POST /files/{id}/delete``."""
    req = core.request("POST", _file_path(file_id) + "/delete", options, idempotent=True)
    deleted = yield from core.call(req, lambda r: parse_model(DeletedFile, r))
    forget_upload(file_id)
    return deleted


def download_file(
    core: ClientCore, file_id: str, path: str | Path | None, options: RequestOptions
) -> Flow[bytes | Path]:
    """``GET /files/{id}/content``: the bytes, or streamed into ``path`` (written atomically)."""
    req = core.request("GET", _file_path(file_id) + "/content", options, idempotent=True, accept="*/*")
    if path is not None:
        target = Path(path)
        if target.is_dir():
            raise InvalidArgumentError("path", f"is a directory: {target}")
        if not target.parent.exists():
            raise InvalidArgumentError("path", f"directory does not exist: {target.parent}")
        req.download_to = str(target)
        yield from core.send(req)
        return target
    response = yield from core.send(req)
    return response.content
