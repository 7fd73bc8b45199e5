"""LangChain chat model and embeddings backed by gigapy (``pip install 'gigapy[langchain]'``).

>>> from gigapy.integrations.langchain import ChatGigaChat, GigaChatEmbeddings
>>> llm = ChatGigaChat(model="GigaChat-2-Max")           # settings from GIGACHAT_* or a client=
>>> llm.invoke("Привет!").content

``ChatGigaChat`` speaks the v2 chat contract (``client.v2``): several tool calls per answer,
built-in tools (``bind_tools(["web_search"])``), reasoning, files as content parts. Every model
with the same settings shares one pair of gigapy clients per process (one token, one pool).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any, ClassVar, Literal, cast

try:
    import langchain_core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError("gigapy.integrations.langchain needs langchain-core: pip install 'gigapy[langchain]'") from exc

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import Field

from gigapy import GigaChatError, InvalidArgumentError
from gigapy.schema import function_schema
from gigapy.types import ChatCompletionV2, ChatCompletionV2Chunk, UsageV2
from gigapy.types import ToolCall as GigaToolCall

from ._shared import Connection as _Connection

__all__ = ["BUILTIN_TOOLS", "ChatGigaChat", "GigaChatEmbeddings"]

#: Server-side tools of the v2 contract, passed to ``bind_tools`` by name.
BUILTIN_TOOLS = frozenset(
    {"web_search", "image_generate", "url_content_extraction", "code_interpreter", "model_3d_generate"}
)
#: What ``temperature=0`` (LangChain's "deterministic") is sent as: the service refuses 0 and
#: decodes greedily for any value in (0, 0.001].
GREEDY_TEMPERATURE = 0.001
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?:;[^,]*)?;base64,(?P<data>.*)$", re.S)
_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/jpg": "jpg",
    "image/tiff": "tiff",
    "image/bmp": "bmp",
    "image/gif": "gif",
    "image/webp": "webp",
    "application/pdf": "pdf",
    "text/plain": "txt",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/ogg": "ogg",
    "audio/mp4": "m4a",
    "audio/webm": "weba",
}


# --- LangChain messages -> v2 messages ---------------------------------------------------


class _Blob:
    """Inline content (base64) to upload before the request; replaced by its file id."""

    __slots__ = ("data", "mime")

    def __init__(self, data: bytes, mime: str | None) -> None:
        self.data, self.mime = data, mime


def _decode(data: str, field: str) -> bytes:
    try:
        return base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        raise InvalidArgumentError(field, "is not valid base64") from None


def _block_file(block: Mapping[str, Any], field: str) -> str | _Blob | None:
    """A file id or inline bytes from an image/file/audio content block (None: not a file block)."""
    kind = block.get("type")
    if kind in ("image", "file", "audio", "video"):
        if block.get("file_id") or (block.get("id") and block.get("source_type") == "id"):
            return str(block.get("file_id") or block.get("id"))
        if block.get("base64") or block.get("data"):
            return _Blob(_decode(block.get("base64") or block["data"], field), block.get("mime_type"))
        source = block.get("source")
        if isinstance(source, Mapping) and source.get("type") == "base64":  # Anthropic's shape
            return _Blob(_decode(source.get("data", ""), field), source.get("media_type"))
        inner = block.get("file")
        if isinstance(inner, Mapping):  # OpenAI's file block
            if inner.get("file_id"):
                return str(inner["file_id"])
            return _data_url(str(inner.get("file_data", "")), field)
        url = block.get("url")
        if isinstance(url, str):
            return _data_url(url, field)
        raise InvalidArgumentError(field, f"a {kind} block needs base64 data or a GigaChat file id")
    if kind == "image_url":
        value = block.get("image_url")
        url = value.get("url") if isinstance(value, Mapping) else value
        return _data_url(str(url or ""), field)
    if kind == "input_audio":
        audio = block.get("input_audio") or {}
        fmt = str(audio.get("format") or "wav")
        return _Blob(_decode(str(audio.get("data", "")), field), f"audio/{fmt}")
    return None


def _data_url(url: str, field: str) -> _Blob:
    match = _DATA_URL.match(url)
    if match is None:
        raise InvalidArgumentError(
            field,
            "GigaChat takes files, not URLs: give base64 data (a data: URL) or "
            "upload the file and pass its id (client.upload_file)",
        )
    return _Blob(_decode(match["data"], field), match["mime"])


def _parts(content: str | list[Any], field: str, *, keep_files: bool = True) -> list[dict[str, Any]]:
    """v2 content parts of a message's content (text joined, files collected into one part)."""
    if isinstance(content, str):
        return [{"text": content}] if content else []
    texts: list[str] = []
    files: list[str | _Blob] = []
    for i, block in enumerate(content):
        where = f"{field}[{i}]"
        if isinstance(block, str):
            texts.append(block)
            continue
        if not isinstance(block, Mapping):
            raise InvalidArgumentError(where, f"expected a string or a content block, got {type(block).__name__}")
        kind = block.get("type")
        if kind == "text" or (kind is None and "text" in block):
            texts.append(str(block.get("text", "")))
        elif kind in ("tool_use", "tool_call", "thinking", "reasoning", "redacted_thinking", "function_call"):
            continue  # calls travel in tool_calls; past reasoning is not sent back
        else:
            found = _block_file(block, where)
            if found is None:
                raise InvalidArgumentError(f"{where}.type", f"unsupported content block {kind!r}")
            if keep_files:
                files.append(found)
    parts: list[dict[str, Any]] = []
    if texts:
        parts.append({"text": "\n".join(t for t in texts if t) or ""})
    if files:
        parts.append({"files": files})
    return parts


def _result(message: ToolMessage) -> Any:
    """A tool's output as the JSON object the service accepts."""
    content = message.content
    if isinstance(content, list):
        content = "\n".join(
            b if isinstance(b, str) else str(b.get("text", ""))
            for b in content
            if isinstance(b, str) or b.get("type") == "text"
        )
    value: Any
    try:
        value = json.loads(content)
    except ValueError:
        value = content
    if not isinstance(value, (dict, list)):
        value = {"result": value}
    if message.status == "error":
        value = {"error": value}
    return value


def to_v2_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """LangChain messages as v2 messages (system messages merged first; inline files as _Blob)."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if isinstance(message, SystemMessage) or (isinstance(message, ChatMessage) and message.role == "system"):
            system.extend(
                p["text"] for p in _parts(message.content, f"{where}.content", keep_files=False) if p.get("text")
            )
        elif isinstance(message, AIMessage):
            parts = _parts(message.content, f"{where}.content", keep_files=False)
            for call in message.tool_calls:
                call_id = call.get("id") or str(uuid.uuid4())
                names[call_id] = call["name"]
                parts.append({"function_call": {"id": call_id, "name": call["name"], "arguments": call["args"]}})
            entry: dict[str, Any] = {"role": "assistant", "content": parts or [{"text": ""}]}
            state = message.additional_kwargs.get("tool_state_id")
            if isinstance(state, str):
                entry["tool_state_id"] = state
            out.append(entry)
        elif isinstance(message, ToolMessage):
            name = message.name or names.get(message.tool_call_id)
            if not name:
                raise InvalidArgumentError(
                    f"{where}.name",
                    "a tool message needs the name of its tool (or a tool_call_id of an earlier AI message's call)",
                )
            result = {"name": name, "result": _result(message), "id": message.tool_call_id}
            out.append({"role": "function", "content": [{"function_result": result}]})
        elif isinstance(message, HumanMessage) or (isinstance(message, ChatMessage) and message.role == "user"):
            out.append({"role": "user", "content": _parts(message.content, f"{where}.content") or [{"text": ""}]})
        else:
            raise InvalidArgumentError(f"{where}", f"unsupported message type {type(message).__name__}")
    if system:
        out.insert(0, {"role": "system", "content": [{"text": "\n\n".join(system)}]})
    return out


def _blobs(messages: list[dict[str, Any]]) -> list[_Blob]:
    return [f for m in messages for p in m["content"] for f in p.get("files", ()) if isinstance(f, _Blob)]


def _with_ids(messages: list[dict[str, Any]], ids: Mapping[int, str]) -> list[dict[str, Any]]:
    for message in messages:
        for part in message["content"]:
            if "files" in part:
                part["files"] = [ids[id(f)] if isinstance(f, _Blob) else f for f in part["files"]]
    return messages


def _upload_args(blob: _Blob) -> dict[str, Any]:
    ext = _EXTENSIONS.get((blob.mime or "").lower())
    return {"filename": f"attachment.{ext}" if ext else None, "content_type": blob.mime}


# --- v2 answers -> LangChain messages ----------------------------------------------------


def _usage(usage: UsageV2 | None) -> UsageMetadata | None:
    if usage is None:
        return None
    out: dict[str, Any] = {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }
    details = usage.input_tokens_details
    if details is not None and details.cached_tokens is not None:
        out["input_token_details"] = InputTokenDetails(cache_read=details.cached_tokens)
    reasoning = (usage.model_extra or {}).get("output_tokens_details")
    if isinstance(reasoning, Mapping) and isinstance(reasoning.get("reasoning_tokens"), int):
        out["output_token_details"] = OutputTokenDetails(reasoning=reasoning["reasoning_tokens"])
    return cast("UsageMetadata", out)


def _tool_call(call: GigaToolCall) -> ToolCall:
    return ToolCall(
        name=call.name, args=call.parsed_arguments, id=call.id or f"call_{uuid.uuid4().hex}", type="tool_call"
    )


def _metadata(answer: ChatCompletionV2 | ChatCompletionV2Chunk, model: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"model_name": answer.model or model, "model_provider": "gigachat"}
    if answer.finish_reason:
        meta["finish_reason"] = answer.finish_reason
    for name in ("request_id", "session_id"):
        value = getattr(answer, name, None)
        if value:
            meta[name] = value
    if answer.error_details is not None:
        meta["error_details"] = answer.error_details.model_dump(exclude_none=True)
    return meta


def _extras(answer: ChatCompletionV2 | ChatCompletionV2Chunk) -> dict[str, Any]:
    """What only GigaChat returns: reasoning, the tool state, generated files, tool runs."""
    extra: dict[str, Any] = {}
    reasoning = "".join(m.reasoning for m in answer.messages)
    if reasoning:
        extra["reasoning_content"] = reasoning
    for message in answer.messages:
        if message.state_id:
            extra["tool_state_id"] = message.state_id
    files = [f.model_dump(exclude_none=True) for m in answer.messages for f in m.files]
    if files:
        extra["files"] = files
    return extra


def _cut(text: str, stop: Sequence[str] | None) -> tuple[str, bool]:
    """Text up to the first stop sequence, and whether one was found."""
    if not stop:
        return text, False
    at = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:at], True) if at >= 0 else (text, False)


class _StopFilter:
    """Streamed text with stop sequences cut out, holding back what may begin one."""

    def __init__(self, stop: Sequence[str] | None) -> None:
        self.stop = [s for s in (stop or ()) if s]
        self.hold = max((len(s) for s in self.stop), default=1) - 1
        self.pending = ""
        self.done = False

    def feed(self, text: str) -> str:
        if not self.stop:
            return text
        self.pending += text
        cut, found = _cut(self.pending, self.stop)
        if found:
            self.done = True
            self.pending = ""
            return cut
        keep = len(self.pending) - self.hold
        out, self.pending = (self.pending[:keep], self.pending[keep:]) if keep > 0 else ("", self.pending)
        return out

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


# --- the chat model ------------------------------------------------------------------------


#: Request fields passed through from ``invoke(..., field=value)`` / ``bind(...)`` to ``client.v2``.
_V2_CALL_FIELDS = frozenset(
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
        "ranker_options",
        "filter_config",
        "user_info",
        "disable_filter",
        "flags",
        "assistant_id",
        "model_options",
        "unnormalized_history",
        "tools",
        "functions",
        "tool_config",
        "response_format",
        "schema_dialect",
        "timeout",
        "extra_headers",
        "extra_body",
        "session_id",
        "request_id",
        "client_id",
    }
)


class ChatGigaChat(_Connection, BaseChatModel):
    """GigaChat as a LangChain chat model, on gigapy's v2 client.

    Settings come from ``client=`` (a gigapy ``GigaChat`` or ``AsyncGigaChat``) or from the
    fields below and the ``GIGACHAT_*`` environment; every model with the same settings shares
    one gigapy client pair (one token, one connection pool) per process.
    """

    model: str | None = Field(default=None, alias="model_name")
    """The model (``GIGACHAT_MODEL`` or gigapy's default when not set)."""
    temperature: float | None = None
    """Sampling temperature; 0 is sent as 0.001 (the service refuses 0 and decodes greedily at 0.001)."""
    top_p: float | None = None
    max_tokens: int | None = None
    repetition_penalty: float | None = None
    update_interval: float | None = None
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    """Stop sequences. GigaChat has none: the answer is cut at the first one on our side."""
    streaming: bool = False
    """``invoke`` streams under the hood (callbacks receive tokens)."""
    profanity_check: bool | None = None
    flags: list[str] | None = None
    reasoning_effort: str | None = None
    """"low", "medium" or "high": the model reasons first (``additional_kwargs["reasoning_content"]``)."""
    reasoning_max_tokens: int | None = None
    parallel_tool_calls: bool | None = None
    top_logprobs: int | None = None
    schema_dialect: Literal["reduced", "full"] | None = None
    """How tool schemas are sent: "reduced" (GigaChat's older dialect, the default) or "full"."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Other v2 request fields sent with every call (``{"storage": {...}}``, ...)."""
    auto_upload_attachments: bool = True
    """Upload inline (base64) images, documents and audio and attach them by file id."""
    use_api_for_tokens: bool = False
    """``get_num_tokens`` asks the service (``count_tokens``) instead of estimating."""

    _ENV_FIELDS: ClassVar[tuple[str, ...]] = (*_Connection._ENV_FIELDS, "model")

    @property
    def lc_secrets(self) -> dict[str, str]:
        """Secret fields and the environment variables they come from."""
        return {
            "credentials": "GIGACHAT_CREDENTIALS",
            "password": "GIGACHAT_PASSWORD",
            "access_token": "GIGACHAT_ACCESS_TOKEN",
            "key_file_password": "GIGACHAT_KEY_FILE_PASSWORD",
        }

    @property
    def _llm_type(self) -> str:
        return "gigachat"

    @property
    def model_name(self) -> str:
        """The model requests go to (this model's, else the client's)."""
        return self.model or self.sync_client.settings.model

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "reasoning_effort": self.reasoning_effort,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="gigachat",
            ls_model_name=kwargs.get("model") or self.model or self._default_model(),
            ls_model_type="chat",
        )
        temperature = kwargs.get("temperature", self.temperature)
        if temperature is not None:
            params["ls_temperature"] = temperature
        max_tokens = kwargs.get("max_tokens", self.max_tokens)
        if max_tokens is not None:
            params["ls_max_tokens"] = max_tokens
        stops = stop or kwargs.get("stop") or self.stop
        if stops:
            params["ls_stop"] = list(stops)
        return params

    def _default_model(self) -> str:
        try:
            return self.model_name
        except GigaChatError:  # not configured yet (no credentials): name the client's default
            return "GigaChat-2"

    # --- requests ---

    def _params(self, stop: list[str] | None, kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], list[str] | None]:
        """The ``client.v2.completion`` keyword arguments, and the stop sequences to apply."""
        params: dict[str, Any] = {}
        for name in (
            "model",
            "temperature",
            "top_p",
            "max_tokens",
            "repetition_penalty",
            "update_interval",
            "reasoning_effort",
            "reasoning_max_tokens",
            "parallel_tool_calls",
            "top_logprobs",
            "flags",
            "schema_dialect",
        ):
            value = getattr(self, name)
            if value is not None:
                params[name] = value
        if self.profanity_check is not None:
            params["disable_filter"] = not self.profanity_check
        if self.session_id is not None:
            params["session_id"] = self.session_id
        params.update(self.model_kwargs)
        extra = dict(kwargs)
        if extra.get("temperature", params.get("temperature")) == 0:
            extra["temperature"] = GREEDY_TEMPERATURE
        stops = stop if stop is not None else extra.pop("stop", None)
        extra.pop("stop", None)
        for name, value in extra.items():
            if name not in _V2_CALL_FIELDS:
                raise InvalidArgumentError(
                    name,
                    "not a GigaChat v2 request field (see ChatGigaChat's docs); "
                    "pass other fields in model_kwargs= or extra_body=",
                )
            if value is not None:
                params[name] = value
        return params, stops if stops is not None else self.stop

    def _prepare(self, messages: list[BaseMessage]) -> tuple[list[dict[str, Any]], list[_Blob]]:
        wire = to_v2_messages(messages)
        blobs = _blobs(wire)
        if blobs and not self.auto_upload_attachments:
            raise InvalidArgumentError(
                "messages", "inline files need auto_upload_attachments=True (or upload them and pass file ids)"
            )
        return wire, blobs

    def _wire(self, messages: list[BaseMessage]) -> list[dict[str, Any]]:
        wire, blobs = self._prepare(messages)
        client = self.sync_client
        ids: dict[int, str] = {}
        for blob in blobs:
            try:  # the same content is uploaded once per account; the type is read from the bytes
                ids[id(blob)] = client.attach(blob.data)[0]
            except InvalidArgumentError:  # a type the bytes do not tell: say it with the block's mime type
                ids[id(blob)] = client.upload_file(blob.data, **_upload_args(blob)).id
        return _with_ids(wire, ids)

    async def _awire(self, messages: list[BaseMessage]) -> list[dict[str, Any]]:
        wire, blobs = self._prepare(messages)
        client = self.aclient
        ids: dict[int, str] = {}
        for blob in blobs:
            try:
                ids[id(blob)] = (await client.attach(blob.data))[0]
            except InvalidArgumentError:
                ids[id(blob)] = (await client.upload_file(blob.data, **_upload_args(blob))).id
        return _with_ids(wire, ids)

    def _result(self, answer: ChatCompletionV2, stop: list[str] | None) -> ChatResult:
        text, cut = _cut(answer.text, stop)
        meta = _metadata(answer, self.model)
        if cut:
            meta["finish_reason"] = "stop"
        message = AIMessage(
            content=text,
            tool_calls=[_tool_call(c) for c in answer.function_calls],
            additional_kwargs=_extras(answer),
            response_metadata=meta,
            usage_metadata=_usage(answer.usage),
            id=answer.message_id or None,
        )
        return ChatResult(
            generations=[ChatGeneration(message=message, generation_info={"finish_reason": meta.get("finish_reason")})],
            llm_output={"model_name": meta["model_name"]},
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            chunks = list(self._stream(messages, stop=stop, run_manager=run_manager, **kwargs))
            return _from_chunks(chunks)
        params, stops = self._params(stop, kwargs)
        answer = self.sync_client.v2.completion(self._wire(messages), **params)
        return self._result(answer, stops)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            chunks = [c async for c in self._astream(messages, stop=stop, run_manager=run_manager, **kwargs)]
            return _from_chunks(chunks)
        params, stops = self._params(stop, kwargs)
        answer = await self.aclient.v2.completion(await self._awire(messages), **params)
        return self._result(answer, stops)

    def _chunk(self, event: ChatCompletionV2Chunk, stops: _StopFilter, calls: list[int]) -> ChatGenerationChunk | None:
        text = "" if stops.done else stops.feed(event.text)
        tool_chunks = []
        for call in (c for m in event.messages for c in m.function_calls):
            index = len(calls)
            calls.append(index)
            args = (
                call.arguments
                if isinstance(call.arguments, str)
                else json.dumps(call.arguments or {}, ensure_ascii=False)
            )
            tool_chunks.append(
                tool_call_chunk(name=call.name, args=args, id=call.id or f"call_{uuid.uuid4().hex}", index=index)
            )
        final = event.usage is not None or event.finish_reason is not None
        if final:
            text += "" if stops.done else stops.flush()
        extras = _extras(event)
        if not (text or tool_chunks or final or extras):
            return None
        meta = _metadata(event, self.model) if final else {}
        if final and stops.done:
            meta["finish_reason"] = "stop"
        message = AIMessageChunk(
            content=text,
            tool_call_chunks=tool_chunks,
            additional_kwargs=extras,
            response_metadata=meta,
            usage_metadata=_usage(event.usage) if final else None,
        )
        info = {"finish_reason": meta["finish_reason"]} if meta.get("finish_reason") else None
        return ChatGenerationChunk(message=message, generation_info=info)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        params, stops = self._params(stop, kwargs)
        cutter, calls = _StopFilter(stops), cast("list[int]", [])
        with self.sync_client.v2.completion_stream(self._wire(messages), **params) as stream:
            for event in stream:
                chunk = self._chunk(event, cutter, calls)
                if chunk is None:
                    continue
                if run_manager is not None and chunk.text:
                    run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        params, stops = self._params(stop, kwargs)
        cutter, calls = _StopFilter(stops), cast("list[int]", [])
        async with self.aclient.v2.completion_stream(await self._awire(messages), **params) as stream:
            async for event in stream:
                chunk = self._chunk(event, cutter, calls)
                if chunk is None:
                    continue
                if run_manager is not None and chunk.text:
                    await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
                yield chunk

    # --- tools and structured output ---

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool | str],
        *,
        tool_choice: dict[str, Any] | str | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer tools to the model: LangChain tools, functions, pydantic models, OpenAI-style dicts,
        and the service's built-in tools by name (``"web_search"``, ``"image_generate"``, ...).

        ``tool_choice``: ``"auto"``, ``"none"``, ``"any"`` (or ``"required"`` / ``True``: call one of
        them), or a tool name (call that one).
        """
        functions: list[dict[str, Any]] = []
        builtins: list[Any] = []
        dialect = kwargs.get("schema_dialect") or self.schema_dialect or "reduced"
        for i, item in enumerate(tools):
            if isinstance(item, str):
                if item not in BUILTIN_TOOLS:
                    raise InvalidArgumentError(
                        f"tools[{i}]",
                        f"unknown built-in tool {item!r}; expected one of {', '.join(sorted(BUILTIN_TOOLS))}",
                    )
                builtins.append(item)
                continue
            if isinstance(item, Mapping) and item.get("type") in BUILTIN_TOOLS and "function" not in item:
                builtins.append(dict(item))
                continue
            if isinstance(item, Mapping) and "name" in item and "input_schema" in item:  # Anthropic's shape
                item = {
                    "name": item["name"],
                    "description": item.get("description", ""),
                    "parameters": item["input_schema"],
                }
            spec = convert_to_openai_tool(item)["function"]
            functions.append(function_schema(spec, dialect=dialect).to_dict())
        if functions:
            kwargs["functions"] = functions
        if builtins:
            kwargs["tools"] = builtins
        if tool_choice is not None and tool_choice is not False:
            kwargs["tool_config"] = _tool_config(tool_choice)
        return super().bind(**kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: Literal["json_schema", "function_calling", "json_mode"] = "json_schema",
        strict: bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """Answers as ``schema`` objects: ``json_schema`` (GigaChat's native structured output, the
        default), ``function_calling`` (a forced call of a function with that schema) or
        ``json_mode`` (GigaChat has no schema-less JSON mode: the schema is sent as ``json_schema``).
        ``strict`` is accepted for compatibility; the service has no strict switch.
        """
        if kwargs:
            raise InvalidArgumentError(next(iter(kwargs)), "unexpected argument of with_structured_output")
        if schema is None:
            raise InvalidArgumentError("schema", "a pydantic model, a TypedDict or a JSON Schema is required")
        pydantic_class = isinstance(schema, type) and is_basemodel_subclass(schema)
        json_schema = convert_to_json_schema(schema)
        fmt = {"kwargs": {"method": method, "strict": strict}, "schema": json_schema}
        llm: Runnable[LanguageModelInput, Any]
        parser: Runnable[Any, Any]
        if method == "function_calling":
            name = convert_to_openai_tool(schema)["function"]["name"]
            llm = self.bind_tools([schema], tool_choice=name, ls_structured_output_format=fmt)
            if pydantic_class:
                parser = PydanticToolsParser(tools=[schema], first_tool_only=True)
            else:
                parser = JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
        elif method in ("json_schema", "json_mode"):
            response_format = {"type": "json_schema", "schema": _plain_schema(json_schema)}
            llm = self.bind(response_format=response_format, ls_structured_output_format=fmt)
            parser = PydanticOutputParser(pydantic_object=schema) if pydantic_class else JsonOutputParser()
        else:
            raise InvalidArgumentError(
                "method", f"expected 'json_schema', 'function_calling' or 'json_mode', got {method!r}"
            )
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([fallback], exception_key="parsing_error")

    def get_num_tokens(self, text: str) -> int:
        """Tokens of ``text``: counted by the service with ``use_api_for_tokens``, else estimated."""
        if self.use_api_for_tokens:
            return self.sync_client.count_tokens(text, model=self.model_name)[0].tokens
        return super().get_num_tokens(text)


def _plain_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema for ``response_format`` (LangChain's title/description kept)."""
    out = dict(schema)
    if "type" not in out and "properties" in out:
        out["type"] = "object"
    return out


def _tool_config(choice: dict[str, Any] | str | bool) -> str | dict[str, Any]:
    if choice is True or choice in ("any", "required"):
        return "any"
    if choice in ("auto", "none"):
        return str(choice)
    if isinstance(choice, str):
        return choice
    if isinstance(choice, Mapping):
        name = (choice.get("function") or {}).get("name") or choice.get("name")
        if isinstance(name, str):
            return name
        if choice.get("type") in ("any", "auto", "none"):
            return str(choice["type"])
    raise InvalidArgumentError("tool_choice", f"expected 'auto', 'none', 'any' or a tool name, got {choice!r}")


def _from_chunks(chunks: list[ChatGenerationChunk]) -> ChatResult:
    if not chunks:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=""))])
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    message = total.message
    full = AIMessage(
        content=message.content,
        additional_kwargs=message.additional_kwargs,
        response_metadata=message.response_metadata,
        usage_metadata=getattr(message, "usage_metadata", None),
        tool_calls=message.tool_calls if isinstance(message, AIMessageChunk) else [],
        id=message.id,
    )
    return ChatResult(generations=[ChatGeneration(message=full, generation_info=total.generation_info)])


# --- embeddings ----------------------------------------------------------------------------


class GigaChatEmbeddings(_Connection, Embeddings):
    """GigaChat embeddings for LangChain: batched by count and token budget, concurrent, order kept
    (``embed_many``), on the same shared gigapy clients as ``ChatGigaChat``."""

    model: str = "Embeddings"
    """The embeddings model (``Embeddings``, ``EmbeddingsGigaR``, ...)."""
    batch_size: int = Field(default=100, ge=1)
    concurrency: int = Field(default=4, ge=1)
    prefix_query: str = "Дано предложение, необходимо найти его парафраз \nпредложение: "
    """Prepended to queries when ``use_prefix_query`` (as langchain-gigachat does)."""
    use_prefix_query: bool = False

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order."""
        if not texts:
            return []
        return self.sync_client.embed_many(
            texts, model=self.model, batch_size=self.batch_size, concurrency=self.concurrency
        )

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order (async)."""
        if not texts:
            return []
        return await self.aclient.embed_many(
            texts, model=self.model, batch_size=self.batch_size, concurrency=self.concurrency
        )

    def embed_query(self, text: str) -> list[float]:
        """The vector of one query."""
        return self.embed_documents([self._query(text)])[0]

    async def aembed_query(self, text: str) -> list[float]:
        """The vector of one query (async)."""
        return (await self.aembed_documents([self._query(text)]))[0]

    def _query(self, text: str) -> str:
        return self.prefix_query + text if self.use_prefix_query else text
