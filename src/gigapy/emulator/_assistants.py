"""Assistants: a model, instructions, files and functions kept server-side, used by threads.

Routes: ``GET /assistants[?assistant_id=]``, ``POST /assistants``, ``POST /assistants/modify``,
``POST /assistants/delete``, ``POST /assistants/files/delete``. Assistants are private to their account.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._http import ApiError, invalid_params, new_uuid4, parse_json_object
from ._models import resolve
from ._validate import function_specs, optional_str, required_str, shape_422, string_list

if TYPE_CHECKING:
    from ._pipeline import Ctx

MAX_METADATA_KEYS = 16
NOT_FOUND = "Assistant not found"


@dataclass
class Assistant:
    """One stored assistant."""

    id: str
    owner: str
    model: str
    name: str
    created_at: int
    updated_at: int
    description: str | None = None
    instructions: str | None = None
    file_ids: list[str] = field(default_factory=list)
    functions: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None

    def to_json(self, ctx: Ctx, threads_count: int) -> dict[str, Any]:
        """The Assistant object: the recorded keys first, then ``functions``, ``files``, ``threads_count``."""
        body: dict[str, Any] = {"assistant_id": self.id, "created_at": self.created_at, "name": self.name}
        if self.description is not None:
            body["description"] = self.description
        if self.instructions is not None:
            body["instructions"] = self.instructions
        body["model"] = self.model
        body["updated_at"] = self.updated_at
        if self.metadata is not None:
            body["metadata"] = self.metadata
        body["file_ids"] = list(self.file_ids)
        if self.functions is not None:
            body["functions"] = self.functions
        files = ctx.state.files
        body["files"] = [
            {"file_id": file_id, "name": record.filename if record is not None else ""}
            for file_id in self.file_ids
            for record in (files.owned(file_id, self.owner),)
        ]
        body["threads_count"] = threads_count
        return body


class AssistantStore:
    """Assistants of every account, capped (the oldest are evicted first)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, Assistant] = OrderedDict()

    def add(self, assistant: Assistant) -> None:
        """Store an assistant."""
        self._items[assistant.id] = assistant
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def get(self, assistant_id: str, owner: str) -> Assistant | None:
        """The owner's assistant."""
        assistant = self._items.get(assistant_id)
        return assistant if assistant is not None and assistant.owner == owner else None

    def remove(self, assistant_id: str) -> None:
        """Forget an assistant."""
        self._items.pop(assistant_id, None)

    def of_owner(self, owner: str) -> list[Assistant]:
        """Every assistant of an owner, oldest first."""
        return [a for a in self._items.values() if a.owner == owner]

    def __len__(self) -> int:
        return len(self._items)


def owned_assistant(ctx: Ctx, assistant_id: str) -> Assistant:
    """The caller's assistant, or 404."""
    assistant = ctx.state.assistants.get(assistant_id, ctx.auth.account.client_id)
    if assistant is None:
        raise ApiError(404, NOT_FOUND)
    return assistant


def _file_ids(ctx: Ctx, body: dict[str, Any]) -> list[str] | None:
    file_ids = string_list(body, "file_ids")
    if file_ids is not None:
        owner = ctx.auth.account.client_id
        for file_id in file_ids:
            if ctx.state.files.owned(file_id, owner) is None:
                raise ApiError(404, "File not found")
        file_ids = list(dict.fromkeys(file_ids))
    return file_ids


def _metadata(body: dict[str, Any]) -> dict[str, Any] | None:
    metadata = body.get("metadata")
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise invalid_params("metadata must be an object")
    if len(metadata) > MAX_METADATA_KEYS:
        raise invalid_params(f"metadata must have at most {MAX_METADATA_KEYS} keys")
    return metadata


def _functions(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    if body.get("functions") is None:
        return None
    return list(function_specs(body["functions"], shape_422))


def _apply(ctx: Ctx, assistant: Assistant, body: dict[str, Any]) -> None:
    """Set every field present (non-null) in ``body``, validating it first."""
    updates: dict[str, Any] = {
        "description": optional_str(body, "description"),
        "instructions": optional_str(body, "instructions"),
        "file_ids": _file_ids(ctx, body),
        "functions": _functions(body),
        "metadata": _metadata(body),
    }
    if body.get("name") is not None:
        updates["name"] = required_str(body, "name")
    if body.get("model") is not None:
        updates["model"] = resolve(body["model"], "chat")
    for key, value in updates.items():
        if value is not None:
            setattr(assistant, key, value)


def _threads_count(ctx: Ctx) -> Counter[str]:
    return ctx.state.threads.per_assistant(ctx.auth.account.client_id)


async def list_assistants(ctx: Ctx) -> dict[str, Any]:
    """``GET /assistants[?assistant_id=]`` → ``{"data": [Assistant]}``, oldest first; 404 for an unknown id."""
    counts = _threads_count(ctx)
    assistant_id = ctx.request.query.get("assistant_id")
    if assistant_id is not None:
        assistant = owned_assistant(ctx, assistant_id)
        return {"data": [assistant.to_json(ctx, counts[assistant.id])]}
    owner = ctx.auth.account.client_id
    return {"data": [a.to_json(ctx, counts[a.id]) for a in ctx.state.assistants.of_owner(owner)]}


async def create_assistant(ctx: Ctx) -> dict[str, Any]:
    """``POST /assistants`` ``{model, name, instructions?, description?, file_ids?, functions?, metadata?}``."""
    body = parse_json_object(ctx.body)
    if body.get("model") is None:
        raise invalid_params("model is required")
    model = resolve(body["model"], "chat")
    name = required_str(body, "name")
    now = int(time.time())
    assistant = Assistant(new_uuid4(), ctx.auth.account.client_id, model, name, now, now)
    _apply(ctx, assistant, body)
    ctx.state.assistants.add(assistant)
    return {"assistant_id": assistant.id, "created_at": assistant.created_at}


async def modify_assistant(ctx: Ctx) -> dict[str, Any]:
    """``POST /assistants/modify`` ``{assistant_id, ...fields to change}`` → the full assistant."""
    body = parse_json_object(ctx.body)
    assistant = owned_assistant(ctx, required_str(body, "assistant_id"))
    _apply(ctx, assistant, body)
    assistant.updated_at = int(time.time())
    return assistant.to_json(ctx, _threads_count(ctx)[assistant.id])


async def delete_assistant(ctx: Ctx) -> dict[str, Any]:
    """``POST /assistants/delete`` ``{assistant_id}`` → ``{assistant_id, deleted}``."""
    body = parse_json_object(ctx.body)
    assistant = owned_assistant(ctx, required_str(body, "assistant_id"))
    ctx.state.assistants.remove(assistant.id)
    return {"assistant_id": assistant.id, "deleted": True}


async def delete_assistant_file(ctx: Ctx) -> dict[str, Any]:
    """``POST /assistants/files/delete`` ``{assistant_id, file_id}`` → ``{file_id, deleted}`` (the file stays)."""
    body = parse_json_object(ctx.body)
    assistant = owned_assistant(ctx, required_str(body, "assistant_id"))
    file_id = required_str(body, "file_id")
    if file_id not in assistant.file_ids:
        raise ApiError(404, "File not found")
    assistant.file_ids.remove(file_id)
    assistant.updated_at = int(time.time())
    return {"file_id": file_id, "deleted": True}
