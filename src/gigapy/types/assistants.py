"""Assistants (``/assistants``): saved instructions, files and functions for threads."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ._base import APIResponse, Stamp


class Assistant(APIResponse):
    """An assistant."""

    assistant_id: str
    name: str | None = None
    description: str | None = None
    instructions: str | None = None
    model: str | None = None
    file_ids: list[str] | None = None
    functions: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None
    created_at: Stamp = None
    updated_at: Stamp = None


class Assistants(APIResponse):
    """A list of assistants."""

    data: list[Assistant] = Field(default_factory=list)


class CreatedAssistant(APIResponse):
    """The answer to creating an assistant."""

    assistant_id: str
    created_at: Stamp = None


class DeletedAssistant(APIResponse):
    """The answer to deleting an assistant."""

    assistant_id: str
    deleted: bool = False


class DeletedAssistantFile(APIResponse):
    """The answer to detaching a file from an assistant."""

    file_id: str
    deleted: bool = False
