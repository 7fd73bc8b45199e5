"""Assistants: ``/assistants`` list, get, create, modify, delete and their files."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._core import params as P
from .._core.flow import Flow, missing_error, parse_model
from ..errors import InvalidArgumentError
from ..types.assistants import Assistant, Assistants, CreatedAssistant, DeletedAssistant, DeletedAssistantFile
from .base import ClientCore, RequestOptions
from .threads import check_id, compact


def list_assistants(core: ClientCore, options: RequestOptions) -> Flow[Assistants]:
    """``GET /assistants``."""
    req = core.request("GET", "/assistants", options, idempotent=True)
    return core.call(req, lambda r: parse_model(Assistants, r))


def get_assistant(core: ClientCore, assistant_id: str, options: RequestOptions) -> Flow[Assistant]:
    """``GET /assistants?assistant_id=...``: one assistant (NotFoundError if unknown)."""
    req = core.request(
        "GET", "/assistants", options, idempotent=True, params={"assistant_id": check_id(assistant_id, "assistant_id")}
    )
    response = yield from core.send(req)
    found = [a for a in parse_model(Assistants, response).data if a.assistant_id == assistant_id]
    if not found:
        raise missing_error(response, f"No such assistant: {assistant_id!r} is not in the answer")
    found[0]._meta = response.meta()
    return found[0]


def create_assistant(
    core: ClientCore, model: str | None, name: str, fields: Mapping[str, Any], options: RequestOptions
) -> Flow[CreatedAssistant]:
    """``POST /assistants``."""
    body = compact(
        model=P.text(model or core.settings.model, "model"),
        name=P.text(name, "name"),
        **_assistant_fields(core, fields),
    )
    return core.call(
        core.request("POST", "/assistants", options, body=body), lambda r: parse_model(CreatedAssistant, r)
    )


def update_assistant(
    core: ClientCore, assistant_id: str, fields: Mapping[str, Any], options: RequestOptions
) -> Flow[Assistant]:
    """``POST /assistants/modify`` (only the given fields change)."""
    body = compact(assistant_id=check_id(assistant_id, "assistant_id"), **_assistant_fields(core, fields))
    return core.call(
        core.request("POST", "/assistants/modify", options, body=body), lambda r: parse_model(Assistant, r)
    )


def _assistant_fields(core: ClientCore, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The assistant's fields checked for the wire; functions follow the client's ``schema_dialect``."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if key in ("name", "instructions", "description"):
            out[key] = P.text(value, key, allow_empty=key != "name")
        elif key == "file_ids":
            out[key] = P.strings(value, key, min_items=0)
        elif key == "functions":
            dialect = core.settings.schema_dialect
            out[key] = [P.function_def(fn, f"functions[{i}]", dialect) for i, fn in enumerate(value)]
        elif key == "metadata":
            out[key] = P.plain(value, key)
        else:
            raise InvalidArgumentError(key, "unknown assistant field")
    return out


def delete_assistant(core: ClientCore, assistant_id: str, options: RequestOptions) -> Flow[DeletedAssistant]:
    """``POST /assistants/delete``."""
    body = {"assistant_id": check_id(assistant_id, "assistant_id")}
    return core.call(
        core.request("POST", "/assistants/delete", options, body=body), lambda r: parse_model(DeletedAssistant, r)
    )


def delete_assistant_file(
    core: ClientCore, assistant_id: str, file_id: str, options: RequestOptions
) -> Flow[DeletedAssistantFile]:
    """``POST /assistants/files/delete``: detach a file from an assistant."""
    body = {"assistant_id": check_id(assistant_id, "assistant_id"), "file_id": check_id(file_id, "file_id")}
    return core.call(
        core.request("POST", "/assistants/files/delete", options, body=body),
        lambda r: parse_model(DeletedAssistantFile, r),
    )
