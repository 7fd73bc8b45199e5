"""v2 chat (``POST /v2/chat/completions``): content parts, tools, named stream events."""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field

from ._base import APIModel, APIResponse, Count, OptCount, Seconds, Stamp
from .chat import ErrorDetails, InlineData, Logprob, LogprobToken

__all__ = [
    "ChatCompletionV2",
    "ChatCompletionV2Chunk",
    "ContentPart",
    "ErrorDetails",
    "FileRef",
    "FunctionResult",
    "InlineData",
    "InputTokensDetails",
    "Logprob",
    "LogprobToken",
    "MessageV2",
    "ToolCall",
    "ToolExecution",
    "UsageV2",
]


class FileRef(APIModel):
    """A file in a message: an attachment (request) or a generated file (response)."""

    id: str
    target: str | None = None
    mime: str | None = None


class ToolCall(APIModel):
    """A function call in v2 content; ``id`` links it to its result."""

    id: str | None = None
    name: str
    arguments: dict[str, Any] | str | None = None

    def result_message(self, result: Any) -> dict[str, Any]:
        """The ``function`` message that answers this call: ``function_result`` with the call's ``id``."""
        if hasattr(result, "model_dump"):
            result = result.model_dump(mode="json")
        answer: dict[str, Any] = {"name": self.name, "result": result}
        if self.id is not None:
            answer = {"id": self.id, **answer}
        return {"role": "function", "content": [{"function_result": answer}]}

    @property
    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict (parsed when the server sent a JSON string)."""
        args = self.arguments
        if isinstance(args, str):
            try:
                value = json.loads(args) if args.strip() else {}
            except ValueError:
                return {}
            return value if isinstance(value, dict) else {}
        return args or {}


class FunctionResult(APIModel):
    """The result of a function, sent back to the model; ``id`` is the call's it answers."""

    name: str
    result: Any = None
    id: str | None = None


class ToolExecution(APIModel):
    """Progress of a built-in tool (web search, image generation, ...)."""

    name: str | None = None
    status: str | None = None
    seconds_left: Seconds = None
    censored: bool | None = None


class ContentPart(APIModel):
    """One part of a v2 message: text, files, a function call or result, tool progress."""

    text: str | None = None
    files: list[FileRef] | None = None
    function_call: ToolCall | None = None
    function_result: FunctionResult | None = None
    tool_execution: ToolExecution | None = None
    inline_data: InlineData | None = None
    logprobs: list[Logprob] | None = None


class MessageV2(APIModel):
    """A v2 message: a role and a list of content parts."""

    role: str = "assistant"
    content: list[ContentPart] = Field(default_factory=list)
    message_id: str | None = None
    tool_state_id: str | None = None
    tools_state_id: str | None = None
    finish_reason: str | None = None
    reasoning_content: str | None = None
    inline_data: InlineData | None = None
    logprobs: list[Logprob] | None = None
    tool_execution: ToolExecution | None = None

    @property
    def text(self) -> str:
        """All text parts joined."""
        return "".join(part.text for part in self.content if part.text)

    @property
    def reasoning(self) -> str:
        """The reasoning in this message: ``reasoning_content``, or the text of a ``reasoning`` message."""
        if self.reasoning_content:
            return self.reasoning_content
        return self.text if self.role == "reasoning" else ""

    @property
    def all_logprobs(self) -> list[Logprob]:
        """Log probabilities of this message's tokens, in order (its own, then each part's)."""
        return [*(self.logprobs or ()), *(lp for part in self.content for lp in (part.logprobs or ()))]

    @property
    def function_calls(self) -> list[ToolCall]:
        """The function calls in this message."""
        return [part.function_call for part in self.content if part.function_call is not None]

    @property
    def files(self) -> list[FileRef]:
        """Files in this message (generated images, ...)."""
        return [f for part in self.content for f in (part.files or ())]

    @property
    def state_id(self) -> str | None:
        """The tool state id to send back with the function result (either spelling)."""
        return self.tool_state_id or self.tools_state_id


class InputTokensDetails(APIModel):
    """Where the input tokens went; ``cached_tokens`` came from the prompt cache."""

    prompt_tokens: OptCount = None
    cached_tokens: OptCount = None


class UsageV2(APIModel):
    """Token usage of a v2 answer."""

    input_tokens: Count = 0
    input_tokens_details: InputTokensDetails | None = None
    output_tokens: Count = 0
    total_tokens: Count = 0


class ChatCompletionV2(APIResponse):
    """The answer of ``client.v2.completion()``."""

    model: str | None = None
    created_at: Stamp = None
    messages: list[MessageV2] = Field(default_factory=list)
    finish_reason: str | None = None
    usage: UsageV2 | None = None
    thread_id: str | None = None
    message_id: str | None = None
    additional_data: dict[str, Any] | list[Any] | None = None
    error_details: ErrorDetails | None = None
    logprobs: list[Logprob] | None = None
    tool_execution: ToolExecution | None = None

    @property
    def message(self) -> MessageV2:
        """The last assistant message (the answer)."""
        for msg in reversed(self.messages):
            if msg.role == "assistant":
                return msg
        return self.messages[-1] if self.messages else MessageV2()

    @property
    def text(self) -> str:
        """The answer's text."""
        return self.message.text

    @property
    def function_calls(self) -> list[ToolCall]:
        """Function calls the model asked for."""
        return [call for msg in self.messages for call in msg.function_calls]

    @property
    def files(self) -> list[FileRef]:
        """Files the model produced (generated images, ...)."""
        return [f for msg in self.messages for f in msg.files]

    @property
    def reasoning(self) -> str:
        """The model's reasoning before the answer ("" when it did not reason)."""
        return "".join(msg.reasoning for msg in self.messages)

    @property
    def all_logprobs(self) -> list[Logprob]:
        """Log probabilities of the answer's tokens (asked with ``top_logprobs``), in order."""
        return [*(self.logprobs or ()), *(lp for msg in self.messages for lp in msg.all_logprobs)]


class ChatCompletionV2Chunk(APIModel):
    """One named event of a v2 stream (``event`` is e.g. ``response.message.delta``)."""

    event: str | None = None
    model: str | None = None
    created_at: Stamp = None
    messages: list[MessageV2] = Field(default_factory=list)
    finish_reason: str | None = None
    usage: UsageV2 | None = None
    thread_id: str | None = None
    message_id: str | None = None
    error_details: ErrorDetails | None = None
    logprobs: list[Logprob] | None = None

    @property
    def text(self) -> str:
        """The text this event adds."""
        return "".join(msg.text for msg in self.messages if msg.role != "reasoning")
