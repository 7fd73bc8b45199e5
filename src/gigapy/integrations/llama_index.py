"""LlamaIndex LLM and embedding model backed by gigapy (``pip install 'gigapy[llama-index]'``).

>>> from llama_index.core import Settings
>>> from gigapy.integrations.llama_index import GigaChatEmbedding, GigaChatLLM
>>> Settings.llm = GigaChatLLM(model="GigaChat-2-Max")     # settings from GIGACHAT_* or client=
>>> Settings.embed_model = GigaChatEmbedding()

Both share one pair of gigapy clients per settings identity in the process (one token, one
connection pool): no client is built per call. The LLM speaks the v2 chat contract: function
calling (several calls per answer), built-in tools, reasoning, files as content parts.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncGenerator, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "gigapy.integrations.llama_index needs llama-index-core: pip install 'gigapy[llama-index]'"
    ) from exc

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.llms.generic_utils import (
    achat_to_completion_decorator,
    astream_chat_to_completion_decorator,
    chat_to_completion_decorator,
    stream_chat_to_completion_decorator,
)
from llama_index.core.base.llms.types import (
    AudioBlock,
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    DocumentBlock,
    ImageBlock,
    LLMMetadata,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from pydantic import Field

from gigapy import InvalidArgumentError
from gigapy.schema import function_schema
from gigapy.types import ChatCompletionV2, ChatCompletionV2Chunk, UsageV2

from ._shared import Connection

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = ["GigaChatEmbedding", "GigaChatLLM"]

_BUILTIN_TOOLS = frozenset(
    {"web_search", "image_generate", "url_content_extraction", "code_interpreter", "model_3d_generate"}
)
_CALL_FIELDS = frozenset(
    {
        "model",
        "temperature",
        "top_p",
        "max_tokens",
        "repetition_penalty",
        "update_interval",
        "reasoning",
        "reasoning_effort",
        "reasoning_max_tokens",
        "top_logprobs",
        "parallel_tool_calls",
        "storage",
        "flags",
        "tools",
        "functions",
        "tool_config",
        "response_format",
        "timeout",
        "extra_headers",
        "extra_body",
        "session_id",
        "request_id",
        "client_id",
        "model_options",
        "assistant_id",
        "disable_filter",
    }
)


def _tool_result(message: ChatMessage) -> Any:
    text = message.content or ""
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    return value if isinstance(value, (dict, list)) else {"result": value}


def _v2_messages(messages: Sequence[ChatMessage]) -> tuple[list[dict[str, Any]], list[tuple[int, bytes]]]:
    """LlamaIndex messages as v2 messages; inline files are returned to upload (index in a parts list)."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    uploads: list[tuple[int, bytes]] = []
    names: dict[str, str] = {}
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.role
        texts = [b.text for b in message.blocks if isinstance(b, TextBlock) and b.text]
        if role in (MessageRole.SYSTEM, MessageRole.DEVELOPER):
            system.extend(texts)
            continue
        if role == MessageRole.TOOL:
            call_id = message.additional_kwargs.get("tool_call_id")
            name = message.additional_kwargs.get("name") or names.get(str(call_id))
            if not name:
                raise InvalidArgumentError(
                    f"{where}.additional_kwargs", "a tool message needs tool_call_id of an earlier call (or name)"
                )
            result: dict[str, Any] = {"name": name, "result": _tool_result(message)}
            if call_id:
                result["id"] = str(call_id)
            out.append({"role": "function", "content": [{"function_result": result}]})
            continue
        parts: list[dict[str, Any]] = [{"text": "\n".join(texts)}] if texts else []
        if role == MessageRole.ASSISTANT:
            for block in message.blocks:
                if isinstance(block, ToolCallBlock):
                    call_id = block.tool_call_id or str(uuid.uuid4())
                    names[call_id] = block.tool_name
                    args = json.loads(block.tool_kwargs) if isinstance(block.tool_kwargs, str) else block.tool_kwargs
                    parts.append({"function_call": {"id": call_id, "name": block.tool_name, "arguments": args}})
            entry: dict[str, Any] = {"role": "assistant", "content": parts or [{"text": ""}]}
            state = message.additional_kwargs.get("tool_state_id")
            if isinstance(state, str):
                entry["tool_state_id"] = state
            out.append(entry)
            continue
        files: list[Any] = []
        for j, block in enumerate(message.blocks):
            data: bytes | None = None
            if isinstance(block, ImageBlock):
                data = block.resolve_image().read()
            elif isinstance(block, DocumentBlock):
                data = block.resolve_document().read()
            elif isinstance(block, AudioBlock):
                data = block.resolve_audio().read()
            elif not isinstance(block, TextBlock):
                raise InvalidArgumentError(f"{where}.blocks[{j}]", f"unsupported block {type(block).__name__}")
            if data is not None:
                uploads.append((len(out), data))
                files.append(None)  # filled with the file id after upload
        if files:
            parts.append({"files": files})
        out.append({"role": "user", "content": parts or [{"text": ""}]})
    if system:
        out.insert(0, {"role": "system", "content": [{"text": "\n\n".join(system)}]})
        uploads = [(k + 1, data) for k, data in uploads]
    return out, uploads


def _fill(messages: list[dict[str, Any]], uploads: list[tuple[int, bytes]], ids: list[str]) -> list[dict[str, Any]]:
    for (index, _), file_id in zip(uploads, ids, strict=True):
        files = messages[index]["content"][-1]["files"]
        files[files.index(None)] = {"id": file_id}
    return messages


def _usage(usage: UsageV2 | None) -> dict[str, Any]:
    if usage is None:
        return {}
    out = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }
    details = usage.input_tokens_details
    if details is not None and details.cached_tokens is not None:
        out["cached_tokens"] = details.cached_tokens
    return out


def _extras(answer: ChatCompletionV2 | ChatCompletionV2Chunk) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    for message in answer.messages:
        if message.state_id:
            extra["tool_state_id"] = message.state_id
    files = [f.model_dump(exclude_none=True) for m in answer.messages for f in m.files]
    if files:
        extra["files"] = files
    return extra


class GigaChatLLM(Connection, FunctionCallingLLM):
    """GigaChat as a LlamaIndex function-calling LLM, on gigapy's shared v2 client."""

    model: str | None = None
    """The model (``GIGACHAT_MODEL`` or gigapy's default when not set)."""
    temperature: float | None = None
    """Sampling temperature; 0 is sent as 0.001 (the service refuses 0 and decodes greedily at 0.001)."""
    top_p: float | None = None
    max_tokens: int | None = None
    repetition_penalty: float | None = None
    reasoning_effort: str | None = None
    """"low", "medium" or "high": the model reasons first (a ``ThinkingBlock`` in the answer)."""
    context_window: int = Field(default=32_768, gt=0)
    additional_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Other v2 request fields sent with every call."""

    _ENV_FIELDS: ClassVar[tuple[str, ...]] = (*Connection._ENV_FIELDS, "model")

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex serializes this class under."""
        return "GigaChatLLM"

    @property
    def model_name(self) -> str:
        """The model requests go to (this LLM's, else the client's)."""
        return self.model or self.sync_client.settings.model

    @property
    def metadata(self) -> LLMMetadata:
        """What LlamaIndex needs to know to prompt this model."""
        return LLMMetadata(
            context_window=self.context_window,
            num_output=self.max_tokens or 1024,
            is_chat_model=True,
            is_function_calling_model=True,
            model_name=self.model_name,
        )

    # --- requests ---

    def _params(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {}
        for name in (
            "model",
            "temperature",
            "top_p",
            "max_tokens",
            "repetition_penalty",
            "reasoning_effort",
            "session_id",
        ):
            value = getattr(self, name)
            if value is not None:
                params[name] = value
        params.update(self.additional_kwargs)
        for name, value in kwargs.items():
            if name not in _CALL_FIELDS:
                raise InvalidArgumentError(
                    name, "not a GigaChat v2 request field; pass other fields in additional_kwargs= or extra_body="
                )
            if value is not None:
                params[name] = value
        if params.get("temperature") == 0:  # the service refuses 0; (0, 0.001] decodes greedily
            params["temperature"] = 0.001
        return params

    def _wire(self, messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
        wire, uploads = _v2_messages(messages)
        return _fill(wire, uploads, [self.sync_client.attach(data)[0] for _, data in uploads])

    async def _awire(self, messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
        wire, uploads = _v2_messages(messages)
        return _fill(wire, uploads, [(await self.aclient.attach(data))[0] for _, data in uploads])

    def _response(self, answer: ChatCompletionV2) -> ChatResponse:
        blocks: list[Any] = []
        if answer.reasoning:
            blocks.append(ThinkingBlock(content=answer.reasoning))
        if answer.text:
            blocks.append(TextBlock(text=answer.text))
        blocks += [
            ToolCallBlock(
                tool_call_id=c.id or f"call_{uuid.uuid4().hex}", tool_name=c.name, tool_kwargs=c.parsed_arguments
            )
            for c in answer.function_calls
        ]
        if not blocks:
            blocks.append(TextBlock(text=""))
        message = ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=_extras(answer))
        info = {
            "model": answer.model,
            "finish_reason": answer.finish_reason,
            "usage": _usage(answer.usage),
            "request_id": getattr(answer, "request_id", None),
        }
        return ChatResponse(message=message, raw=answer.model_dump(mode="json"), additional_kwargs=info)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """One answer to the conversation."""
        answer = self.sync_client.v2.completion(self._wire(messages), **self._params(kwargs))
        return self._response(answer)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """One answer to the conversation (async)."""
        answer = await self.aclient.v2.completion(await self._awire(messages), **self._params(kwargs))
        return self._response(answer)

    def _delta(self, event: ChatCompletionV2Chunk, text: list[str], calls: list[ToolCallBlock]) -> ChatResponse:
        delta = event.text
        text.append(delta)
        calls += [
            ToolCallBlock(
                tool_call_id=c.id or f"call_{uuid.uuid4().hex}", tool_name=c.name, tool_kwargs=c.parsed_arguments
            )
            for m in event.messages
            for c in m.function_calls
        ]
        blocks: list[Any] = [TextBlock(text="".join(text)), *calls]
        message = ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=_extras(event))
        info = {"model": event.model, "finish_reason": event.finish_reason, "usage": _usage(event.usage)}
        return ChatResponse(message=message, delta=delta, raw=event.model_dump(mode="json"), additional_kwargs=info)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """The answer as it is generated: each response holds the text so far and the new ``delta``."""
        wire, params = self._wire(messages), self._params(kwargs)

        def gen() -> Generator[ChatResponse, None, None]:
            text: list[str] = []
            calls: list[ToolCallBlock] = []
            with self.sync_client.v2.completion_stream(wire, **params) as stream:
                for event in stream:
                    yield self._delta(event, text, calls)

        return gen()

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        """The answer as it is generated (async)."""
        wire, params = await self._awire(messages), self._params(kwargs)

        async def gen() -> AsyncGenerator[ChatResponse, None]:
            text: list[str] = []
            calls: list[ToolCallBlock] = []
            async with self.aclient.v2.completion_stream(wire, **params) as stream:
                async for event in stream:
                    yield self._delta(event, text, calls)

        return gen()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """The answer to one prompt."""
        return chat_to_completion_decorator(self.chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """The answer to one prompt (async)."""
        return await achat_to_completion_decorator(self.achat)(prompt, **kwargs)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        """The answer to one prompt as it is generated."""
        return stream_chat_to_completion_decorator(self.stream_chat)(prompt, **kwargs)

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseAsyncGen:
        """The answer to one prompt as it is generated (async)."""
        return await astream_chat_to_completion_decorator(self.astream_chat)(prompt, **kwargs)

    # --- function calling ---

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool | str],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """The ``chat`` arguments that offer ``tools`` (LlamaIndex tools, or built-in tool names)."""
        functions, builtins = [], []
        for i, item in enumerate(tools):
            if isinstance(item, str):
                if item not in _BUILTIN_TOOLS:
                    raise InvalidArgumentError(
                        f"tools[{i}]",
                        f"unknown built-in tool {item!r}; expected one of {', '.join(sorted(_BUILTIN_TOOLS))}",
                    )
                builtins.append(item)
            else:
                functions.append(function_schema(item.metadata.to_openai_tool()["function"]).to_dict())
        messages = list(chat_history or [])
        if user_msg is not None:
            messages.append(
                ChatMessage(role=MessageRole.USER, content=user_msg) if isinstance(user_msg, str) else user_msg
            )
        out: dict[str, Any] = {"messages": messages, **kwargs}
        if functions:
            out["functions"] = functions
        if builtins:
            out["tools"] = builtins
        if tool_choice is not None:
            out["tool_config"] = tool_choice
        elif tool_required and functions:
            out["tool_config"] = "any"
        if allow_parallel_tool_calls and functions:
            out["parallel_tool_calls"] = True
        return out

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """The tool calls of an answer (``ValueError`` if there are none and ``error_on_no_tool_call``)."""
        calls = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
        if not calls and error_on_no_tool_call:
            raise ValueError(f"expected at least one tool call, got the answer {response.message.content!r}")
        return [
            ToolSelection(
                tool_id=c.tool_call_id or "",
                tool_name=c.tool_name,
                tool_kwargs=c.tool_kwargs if isinstance(c.tool_kwargs, dict) else json.loads(c.tool_kwargs or "{}"),
            )
            for c in calls
        ]


class GigaChatEmbedding(Connection, BaseEmbedding):
    """GigaChat embeddings for LlamaIndex: batched by count and token budget, concurrent, order kept."""

    model_name: str = "Embeddings"
    embed_batch_size: int = Field(default=100, gt=0)
    concurrency: int = Field(default=4, ge=1)

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex serializes this class under."""
        return "GigaChatEmbedding"

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return self.sync_client.embed_many(
            texts, model=self.model_name, batch_size=self.embed_batch_size, concurrency=self.concurrency
        )

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        return await self.aclient.embed_many(
            texts, model=self.model_name, batch_size=self.embed_batch_size, concurrency=self.concurrency
        )

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return (await self._aget_text_embeddings([text]))[0]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await self._aget_text_embedding(query)
