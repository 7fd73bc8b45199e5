"""Threads (``/threads``): conversations stored by the service."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ._base import APIModel, APIResponse, Stamp
from .chat import ChatCompletionChunk, Message, Usage


class Thread(APIResponse):
    """A stored conversation."""

    id: str
    assistant_id: str | None = None
    model: str | None = None
    created_at: Stamp = None
    updated_at: Stamp = None
    run_lock: bool | None = None
    status: str | None = None


class Threads(APIResponse):
    """A list of threads."""

    threads: list[Thread] = Field(default_factory=list)


class ThreadAttachment(APIModel):
    """A file attached to a thread message."""

    file_id: str
    name: str | None = None


class ThreadMessage(APIModel):
    """A message stored in a thread."""

    message_id: str | None = None
    role: str | None = None
    content: str | None = None
    attachments: list[ThreadAttachment] | None = None
    created_at: Stamp = None
    model: str | None = None
    function_call: dict[str, Any] | None = None
    functions_state_id: str | None = None


class ThreadMessages(APIResponse):
    """Messages of a thread."""

    thread_id: str | None = None
    messages: list[ThreadMessage] = Field(default_factory=list)


class ThreadRunResponse(APIResponse):
    """The answer to starting a run."""

    status: str | None = None
    thread_id: str | None = None
    created_at: Stamp = None


class ThreadRunResult(APIResponse):
    """A run's state and the messages it produced."""

    status: str | None = None
    thread_id: str | None = None
    updated_at: Stamp = None
    model: str | None = None
    messages: list[ThreadMessage] = Field(default_factory=list)


class ThreadCompletion(APIResponse):
    """The answer of a thread run (``/threads/messages/run``)."""

    object: str | None = None
    model: str | None = None
    thread_id: str | None = None
    message_id: str | None = None
    created: Stamp = None
    usage: Usage | None = None
    message: Message = Field(default_factory=Message)
    finish_reason: str | None = None

    @property
    def text(self) -> str:
        """The answer's text."""
        return self.message.content or ""


class ThreadCompletionChunk(ChatCompletionChunk):
    """One event of a streamed thread run."""

    thread_id: str | None = None
    message_id: str | None = None
