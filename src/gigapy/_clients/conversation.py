"""Conversations: history, a stable X-Session-ID (prompt cache) and trimming to the context.

``client.conversation(system=...)`` returns a :class:`Conversation` (or its async twin).
Each ``say()`` sends the history with the same session id, so the service reuses its
prompt cache (``usage.precached_prompt_tokens``); the answer joins the history. When the
history would not fit the model's context, the oldest turns are dropped (the system
message and the newest turn stay; a function call never loses its result).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._core import params as P
from .._ops.embeddings import estimate_tokens
from ..tools import to_json_result
from ..types.chat import ChatCompletion

if TYPE_CHECKING:
    from .async_client import AsyncGigaChat
    from .sync_client import GigaChat

DEFAULT_CONTEXT = 128_000
DEFAULT_RESERVE = 4_096


class ConversationState:
    """The history and its bookkeeping, shared by the sync and async conversations."""

    def __init__(self, system: str | None, max_context_tokens: int | None, defaults: Mapping[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.session_id = str(self.defaults.pop("session_id", None) or uuid.uuid4())
        self.max_context_tokens = int(
            P.number(max_context_tokens or DEFAULT_CONTEXT, "max_context_tokens", low=1, integer=True)
        )
        self.messages: list[dict[str, Any]] = []
        if system is not None:
            self.messages.append({"role": "system", "content": P.text(system, "system")})
        self.prompt_tokens = self.completion_tokens = self.cached_tokens = 0

    def add_user(self, content: str | Mapping[str, Any] | None) -> None:
        """Append the user's turn (a string or a full message dict)."""
        if content is None:
            return
        if isinstance(content, str):
            self.messages.append({"role": "user", "content": P.text(content, "content")})
        else:
            self.messages.append(dict(content))

    def add_function_result(self, name: str, result: Any) -> None:
        """Append a function's result (any JSON-able value; sent as a JSON object)."""
        P.text(name, "name")
        self.messages.append(
            {"role": "function", "name": name, "content": P.json_text(to_json_result(result), "result")}
        )

    def request(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Keyword arguments for ``completion``: the trimmed history, session id and defaults."""
        merged = {**self.defaults, **params}
        merged.setdefault("session_id", self.session_id)
        reserve = merged.get("max_tokens") or DEFAULT_RESERVE
        self.trim(self.max_context_tokens - int(reserve))
        merged["messages"] = list(self.messages)
        return merged

    def trim(self, budget: int) -> None:
        """Drop the oldest turns until the history fits ``budget`` tokens (estimated)."""

        def cost(msg: Mapping[str, Any]) -> int:
            return estimate_tokens(json.dumps(msg, ensure_ascii=False)) + 4

        total = sum(cost(m) for m in self.messages)
        first = 1 if self.messages and self.messages[0]["role"] == "system" else 0
        while total > budget and len(self.messages) - first > 1:
            drop = 1
            if self.messages[first].get("function_call") is not None:
                drop = 2  # a call and its result leave together
            while first + drop < len(self.messages) - 1 and self.messages[first + drop]["role"] == "function":
                drop += 1
            if first + drop >= len(self.messages):
                break
            for msg in self.messages[first : first + drop]:
                total -= cost(msg)
            del self.messages[first : first + drop]

    def record(self, answer: ChatCompletion) -> ChatCompletion:
        """Append the model's answer to the history and count its tokens."""
        self.messages.append(answer.message.model_dump(mode="json", by_alias=True, exclude_none=True))
        if answer.usage is not None:
            self.prompt_tokens += answer.usage.prompt_tokens
            self.completion_tokens += answer.usage.completion_tokens
            self.cached_tokens += answer.usage.precached_prompt_tokens or 0
        return answer


class _ConversationBase:
    """What the sync and async conversations share."""

    state: ConversationState

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The history as sent to the model."""
        return self.state.messages

    @property
    def session_id(self) -> str:
        """The X-Session-ID every turn uses (the service caches the shared prefix)."""
        return self.state.session_id

    def add_function_result(self, name: str, result: Any) -> None:
        """Answer the model's function call; then call ``say()`` to let it continue."""
        self.state.add_function_result(name, result)


class Conversation(_ConversationBase):
    """A chat that remembers (synchronous). Create it with ``client.conversation(...)``."""

    def __init__(self, client: GigaChat, state: ConversationState) -> None:
        self._client = client
        self.state = state

    def say(self, content: str | Mapping[str, Any] | None = None, **params: Any) -> ChatCompletion:
        """Send a user turn (or nothing, to continue after a function result); return the answer."""
        self.state.add_user(content)
        return self.state.record(self._client.completion(**self.state.request(params)))


class AsyncConversation(_ConversationBase):
    """A chat that remembers (asynchronous). Create it with ``client.conversation(...)``."""

    def __init__(self, client: AsyncGigaChat, state: ConversationState) -> None:
        self._client = client
        self.state = state

    async def say(self, content: str | Mapping[str, Any] | None = None, **params: Any) -> ChatCompletion:
        """Send a user turn (or nothing, to continue after a function result); return the answer."""
        self.state.add_user(content)
        return self.state.record(await self._client.completion(**self.state.request(params)))
