"""Files (``/files``)."""

from __future__ import annotations

from pydantic import Field

from ._base import APIResponse, Count, Stamp


class File(APIResponse):
    """A stored file: uploaded, generated (images) or a batch output."""

    id: str
    object: str = "file"
    bytes: Count = 0
    created_at: Stamp = None
    filename: str | None = None
    purpose: str | None = None
    access_policy: str | None = None
    modalities: list[str] | None = None


class DeletedFile(APIResponse):
    """The answer to ``delete_file``."""

    id: str
    deleted: bool = False
    object: str | None = None
    access_policy: str | None = None


class FileList(APIResponse):
    """The wire shape of ``GET /files``."""

    data: list[File] = Field(default_factory=list)
