"""Server-sent-event framing of translated streams, as each official client reads it.

- Chat Completions: ``data: <chunk>`` per chunk, ended by :data:`DONE` (``data: [DONE]``);
  an error mid-stream is ``data: {"error": {...}}`` (the ``openai`` client raises on it).
- Responses and Messages: ``event: <type>`` + ``data: <event>`` (the ``anthropic`` client
  skips events without a name); an error mid-stream is an ``error`` event.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import ErrorReply

DONE = b"data: [DONE]\n\n"


def _json(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def data_frame(obj: Mapping[str, Any]) -> bytes:
    """One ``data:`` event (a Chat Completions chunk)."""
    return f"data: {_json(obj)}\n\n".encode()


def named_frame(obj: Mapping[str, Any]) -> bytes:
    """One event named by its ``type`` (Responses and Messages events)."""
    return f"event: {obj['type']}\ndata: {_json(obj)}\n\n".encode()


def chat_error_frame(reply: ErrorReply) -> bytes:
    """An error inside a Chat Completions stream."""
    return data_frame(reply.body)


def responses_error_frame(reply: ErrorReply, sequence_number: int) -> bytes:
    """An ``error`` event inside a Responses stream."""
    error = reply.body.get("error") or {}
    return named_frame(
        {
            "type": "error",
            "code": error.get("code"),
            "message": error.get("message", ""),
            "param": error.get("param"),
            "sequence_number": sequence_number,
        }
    )


def messages_error_frame(reply: ErrorReply) -> bytes:
    """An ``error`` event inside a Messages stream (the body of :func:`~.errors.anthropic_error`)."""
    return named_frame(reply.body)
