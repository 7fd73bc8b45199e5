"""Files: an in-memory store with the real type and size limits, and the ``/files`` endpoints."""

from __future__ import annotations

import json
import re
import struct
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ._http import ApiError, new_uuid4
from ._jpeg import mosaic
from ._textgen import count_tokens

if TYPE_CHECKING:
    from ._pipeline import Ctx

MB = 1024 * 1024
#: Largest file per modality, as documented.
SIZE_LIMITS = {"text": 40 * MB, "image": 15 * MB, "audio": 35 * MB}
_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    # extension: (modality, accepted MIME types; the first is the canonical one)
    "txt": ("text", ("text/plain",)),
    "doc": ("text", ("application/msword",)),
    "docx": ("text", ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",)),
    "pdf": ("text", ("application/pdf",)),
    "epub": ("text", ("application/epub", "application/epub+zip")),
    "ppt": ("text", ("application/ppt", "application/vnd.ms-powerpoint")),
    "pptx": ("text", ("application/pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation")),
    "xlsx": ("text", ("application/vnd.ms-excel", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")),
    "jpg": ("image", ("image/jpeg", "image/jpg")),
    "jpeg": ("image", ("image/jpeg", "image/jpg")),
    "png": ("image", ("image/png",)),
    "tiff": ("image", ("image/tiff",)),
    "tif": ("image", ("image/tiff",)),
    "bmp": ("image", ("image/bmp",)),
    "mp4": ("audio", ("audio/mp4",)),
    "mp3": ("audio", ("audio/mp3", "audio/mpeg")),
    "m4a": ("audio", ("audio/x-m4a", "audio/m4a")),
    "wav": ("audio", ("audio/x-wav", "audio/wave", "audio/wav", "audio/x-pn-wav")),
    "weba": ("audio", ("audio/webm",)),
    "ogg": ("audio", ("audio/x-ogg", "audio/ogg")),
    "opus": ("audio", ("audio/opus",)),
}
_BY_MIME = {mime: (modality, mimes[0]) for modality, mimes in _TYPES.values() for mime in mimes}
_GENERIC_MIMES = ("", "application/octet-stream", "binary/octet-stream")
_PARAM_RE = re.compile(r';\s*([\w*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))')
_PURPOSES = ("general", "assistant")


@dataclass(slots=True)
class FileRecord:
    """One stored file."""

    id: str
    owner: str
    filename: str
    data: bytes
    mime: str
    modality: str
    purpose: str
    created_at: int
    #: The X-Client-ID a generated file is bound to (None: any caller of the owning account).
    bound_client: str | None = None
    tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        """The File object of the API."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "access_policy": "private",
            "modalities": [self.modality],
        }


class FileStore:
    """Files per owner, capped by count and total bytes (oldest evicted first)."""

    def __init__(self, max_files: int, max_bytes: int) -> None:
        self.max_files = max_files
        self.max_bytes = max_bytes
        self._files: OrderedDict[str, FileRecord] = OrderedDict()
        self._bytes = 0

    def add(self, record: FileRecord) -> FileRecord:
        """Store a file, evicting the oldest ones over the caps."""
        self._files[record.id] = record
        self._bytes += len(record.data)
        while len(self._files) > 1 and (len(self._files) > self.max_files or self._bytes > self.max_bytes):
            _, old = self._files.popitem(last=False)
            self._bytes -= len(old.data)
        return record

    def create(self, owner: str, filename: str, data: bytes, mime: str, modality: str, **extra: Any) -> FileRecord:
        """Store new content under a fresh id."""
        record = FileRecord(
            new_uuid4(),
            owner,
            filename,
            data,
            mime,
            modality,
            extra.pop("purpose", "general"),
            int(time.time()),
            **extra,
        )
        return self.add(record)

    def owned(self, file_id: str, owner: str) -> FileRecord | None:
        """The file if it exists and belongs to ``owner``."""
        record = self._files.get(file_id)
        return record if record is not None and record.owner == owner else None

    def remove(self, file_id: str) -> None:
        """Delete a file."""
        record = self._files.pop(file_id, None)
        if record is not None:
            self._bytes -= len(record.data)

    def of_owner(self, owner: str) -> list[FileRecord]:
        """Every file of an owner, oldest first."""
        return [r for r in self._files.values() if r.owner == owner]

    def __len__(self) -> int:
        return len(self._files)


def generate_image(store: FileStore, owner: str, client_id: str | None, prompt: str, seed: int) -> str:
    """Draw a JPEG for the prompt and store it as the owner's file; returns the file id."""
    record = store.create(owner, "image.jpg", mosaic(seed), "image/jpeg", "image", bound_client=client_id, tokens=256)
    record.filename = f"{record.id}.jpg"
    return record.id


def _glb() -> bytes:
    """A minimal valid binary glTF 2.0 file."""
    chunk = json.dumps({"asset": {"version": "2.0", "generator": "gigapy emulator"}}).encode()
    chunk += b" " * (-len(chunk) % 4)
    return struct.pack("<4sII", b"glTF", 2, 12 + 8 + len(chunk)) + struct.pack("<I4s", len(chunk), b"JSON") + chunk


def generate_model3d(store: FileStore, owner: str, client_id: str | None, prompt: str) -> str:
    """Store a 3D model file for the prompt; returns the file id."""
    record = store.create(owner, "model.glb", _glb(), "model/gltf-binary", "3dmodel", bound_client=client_id)
    return record.id


@dataclass(slots=True)
class Part:
    """One multipart/form-data part."""

    name: str
    filename: str | None
    content_type: str
    data: bytes


def _header_params(value: str) -> dict[str, str]:
    return {
        m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3).strip())
        for m in _PARAM_RE.finditer(";" + value)
    }


def parse_multipart(body: bytes, content_type: str) -> list[Part]:
    """Parse a multipart/form-data body (400 when it is not one)."""
    boundary = _header_params(content_type.partition(";")[2]).get("boundary")
    if not content_type.lower().startswith("multipart/form-data") or not boundary:
        raise ApiError(400, "Request must be multipart/form-data")
    parts = []
    for chunk in body.split(b"--" + boundary.encode("utf-8", "surrogateescape"))[1:]:  # the header's own bytes
        if chunk.startswith(b"--"):
            break
        head, sep, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            continue
        headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = _header_params(headers.get("content-disposition", "").partition(";")[2])
        filename = disposition.get("filename*", "").split("''")[-1] or disposition.get("filename")
        parts.append(
            Part(disposition.get("name", ""), filename, headers.get("content-type", ""), data.removesuffix(b"\r\n"))
        )
    return parts


def _file_type(part: Part) -> tuple[str, str]:
    """(modality, canonical MIME) of an uploaded part; 400 for unsupported types."""
    mime = part.content_type.split(";")[0].strip().lower()
    if mime in _BY_MIME:
        return _BY_MIME[mime]
    extension = (part.filename or "").rsplit(".", 1)[-1].lower() if "." in (part.filename or "") else ""
    if mime in _GENERIC_MIMES and extension in _TYPES:
        modality, mimes = _TYPES[extension]
        return modality, mimes[0]
    raise ApiError(400, f"Unsupported file type: {mime or extension or 'unknown'}")


def _estimate_tokens(data: bytes, mime: str, modality: str) -> int:
    if modality == "image":
        return 256
    if modality == "audio":
        return max(len(data) // 1000, 1)
    if mime == "text/plain":
        sample = data[:MB]
        return count_tokens(sample.decode("utf-8", "replace")) * max(len(data) // max(len(sample), 1), 1)
    return max(len(data) // 6, 1)


async def upload(ctx: Ctx) -> dict[str, Any]:
    """``POST /files`` (multipart: ``file`` and ``purpose``)."""
    parts = parse_multipart(ctx.body, ctx.request.headers.get("Content-Type", ""))
    upload_part = next((p for p in parts if p.name == "file"), None)
    if upload_part is None:
        raise ApiError(400, "file is required")
    purpose_part = next((p for p in parts if p.name == "purpose"), None)
    purpose = purpose_part.data.decode("utf-8", "replace").strip() if purpose_part else "general"
    if purpose not in _PURPOSES:
        raise ApiError(400, f"Invalid purpose: {purpose}")
    modality, mime = _file_type(upload_part)
    if len(upload_part.data) > SIZE_LIMITS[modality]:
        raise ApiError(413, "Payload too large")
    record = ctx.state.files.create(
        ctx.auth.account.client_id,
        upload_part.filename or "file",
        upload_part.data,
        mime,
        modality,
        purpose=purpose,
        tokens=_estimate_tokens(upload_part.data, mime, modality),
    )
    return record.to_json()


def _owned(ctx: Ctx) -> FileRecord:
    file_id = ctx.request.match_info["file"]
    record = ctx.state.files.owned(file_id, ctx.auth.account.client_id)
    if record is None:
        raise ApiError(404, "File not found")
    return record


async def list_files(ctx: Ctx) -> dict[str, Any]:
    """``GET /files``: the caller's files."""
    return {"data": [r.to_json() for r in ctx.state.files.of_owner(ctx.auth.account.client_id)]}


async def get_file(ctx: Ctx) -> dict[str, Any]:
    """``GET /files/{file}``."""
    return _owned(ctx).to_json()


async def delete_file(ctx: Ctx) -> dict[str, Any]:
    """``POST /files/{file}/delete`` (any body is accepted: the official SDK posts multipart)."""
    record = _owned(ctx)
    ctx.state.files.remove(record.id)
    return {"id": record.id, "deleted": True, "access_policy": "private"}


async def file_content(ctx: Ctx) -> web.StreamResponse:
    """``GET /files/{file}/content``: raw bytes; generated files need the same X-Client-ID."""
    record = _owned(ctx)
    if record.bound_client is not None and record.bound_client != ctx.client_id:
        raise ApiError(403, "Permission denied")
    headers = {**ctx.id_headers, "Content-Type": record.mime}
    return web.Response(body=record.data, headers=headers)
