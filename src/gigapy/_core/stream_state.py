"""Stream state, sans-IO: SSE bytes in, typed chunks out, the final completion accumulated as they
pass (v1 and v2). The faces in ``_clients.streams`` drive it from the transport."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from ..errors import StreamError, StreamTimeoutError
from ..types._base import ResponseMeta
from ..types.chat import ChatCompletion, ChatCompletionChunk, Choice, FunctionCall, Logprob, Message, Usage
from ..types.chat_v2 import ChatCompletionV2, ChatCompletionV2Chunk, UsageV2
from .sse import SSEDecodeError, SSEDecoder, SSEEvent

T = TypeVar("T")
F = TypeVar("F")


#: A JSON escape of a UTF-16 surrogate (``\ud83d``): half of a character that may be split across events.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")
#: A held high surrogate never completed: the stream ends with this instead of half a character.
REPLACEMENT = "\ufffd"


def whole_text(text: str) -> str:
    """``text`` with surrogate pairs joined into their characters and any lone surrogate replaced
    by U+FFFD, so that it always encodes as UTF-8."""
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


class StreamState(Generic[T, F]):
    """Decodes one stream: ``feed(bytes) -> chunks``; ``final()`` is the accumulated answer."""

    def __init__(self, meta: ResponseMeta, max_event_size: int | None = None) -> None:
        self.meta = meta
        self.decoder = SSEDecoder() if max_event_size is None else SSEDecoder(max_event_size)
        self.done = False
        self.count = 0
        self.events = 0  # SSE events decoded (comments and partial events are none)
        #: High surrogates that ended a string of the last event, by the string's path, waiting for
        #: the low half at the start of the same string in the next event.
        self.held: dict[tuple[Any, ...], str] = {}

    def mend(self, data: bytes) -> bytes:
        """The event's JSON with characters split across events made whole: a string ending in
        a high surrogate escape keeps it for the same string of the next event, which starts
        with the low half; a surrogate that finds no partner becomes U+FFFD. The fast path
        (no surrogate escape, nothing held) returns ``data`` unchanged."""
        if not self.held and (b"\\u" not in data or _SURROGATE_ESCAPE.search(data) is None):
            return data
        try:
            value = json.loads(data)
        except (ValueError, RecursionError):
            return data  # not JSON: the chunk validation reports it
        held = self.held

        def walk(item: Any, path: tuple[Any, ...]) -> Any:
            if isinstance(item, str):
                text = held.pop(path, "") + item
                if text and "\ud800" <= text[-1] <= "\udbff":
                    held[path] = text[-1]
                    text = text[:-1]
                return whole_text(text)
            if isinstance(item, dict):
                return {key: walk(child, (*path, key)) for key, child in item.items()}
            if isinstance(item, list):
                return [walk(child, (*path, i)) for i, child in enumerate(item)]
            return item

        try:
            mended = walk(value, ())
        except RecursionError:
            return data
        return json.dumps(mended, ensure_ascii=False).encode("utf-8")

    def unpaired(self) -> list[tuple[Any, ...]]:
        """The paths of strings whose last high surrogate never found its low half (taken out)."""
        paths = list(self.held)
        self.held.clear()
        return paths

    def iter_feed(self, data: bytes) -> Iterator[T]:
        """Decode a network chunk; each typed chunk is built when the consumer asks for it.

        A network read can hold hundreds of events; building them one at a time lets a chunk
        the consumer has dropped be freed at once (and an error event is raised only after
        the chunks before it were delivered).
        """
        try:
            events = self.decoder.feed(data)
        except SSEDecodeError as exc:
            raise self.error(str(exc)) from None
        if events:
            self.events += len(events)
        return self._deliver(events)

    def feed(self, data: bytes) -> list[T]:
        """Decode a network chunk into typed chunks (raises StreamError on an error event)."""
        return list(self.iter_feed(data))

    def feed_eof(self) -> list[T]:
        """The connection ended: decode whatever complete event is still buffered."""
        return list(self._deliver(self.decoder.flush()))

    def _deliver(self, events: list[SSEEvent]) -> Iterator[T]:
        for event in events:
            if self.done:
                return
            item = self.on_event(event)
            if item is not None:
                self.count += 1
                yield item

    def on_event(self, event: SSEEvent) -> T | None:
        """Turn one SSE event into a chunk (None = nothing to deliver)."""
        raise NotImplementedError

    def text_of(self, chunk: T) -> str:
        """The text a chunk adds."""
        raise NotImplementedError

    def final(self) -> F:
        """The whole answer accumulated from every chunk seen."""
        raise NotImplementedError

    def complete(self) -> bool:
        """Whether the server finished the stream properly."""
        return self.done

    def error(
        self, message: str, *, status: int | None = None, server_message: str | None = None, body: Any = None
    ) -> StreamError:
        """A StreamError carrying this stream's request id and progress."""
        rid = self.meta.request_id
        text = f"{message} (after {self.count} chunks, request_id={rid})"
        return StreamError(
            text,
            chunks_received=self.count,
            request_id=rid,
            status_code=status,
            server_message=server_message,
            body=body,
        )

    def timeout_error(self, message: str, phase: str) -> StreamTimeoutError:
        """A StreamTimeoutError (a StreamError and an APITimeoutError) with this stream's progress."""
        rid = self.meta.request_id
        return StreamTimeoutError(
            f"{message} (after {self.count} chunks, request_id={rid})",
            chunks_received=self.count,
            request_id=rid,
            phase=phase,
        )

    def raise_error_payload(self, data: bytes) -> None:
        """An error object sent inside the stream becomes a StreamError."""
        try:
            body = json.loads(data)
        except ValueError:
            body = data.decode("utf-8", "replace")
        status = message = None
        if isinstance(body, dict):
            err = body.get("error", body)
            if isinstance(err, dict):
                raw_status = err.get("status", err.get("code"))
                status = raw_status if isinstance(raw_status, int) else None
                msg = err.get("message")
                message = str(msg) if msg is not None else None
        raise self.error(
            f"the server reported an error in the stream: {message or body}",
            status=status,
            server_message=message,
            body=body,
        )


#: The fields a plain text delta sets, and those a chunk without usage, thread or error fields
#: sets (unknown fields are set too, so their chunks take the full path).
_TEXT_ONLY = frozenset({"content"})
_PLAIN_CHUNK = frozenset({"choices", "created", "model", "object"})


class _ChoiceAcc:
    __slots__ = (
        "args",
        "args_text",
        "call_id",
        "content",
        "finish",
        "fn_name",
        "logprobs",
        "reasoning",
        "role",
        "state_id",
    )

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.role: str | None = None
        self.fn_name: str | None = None
        self.call_id: str | None = None
        self.args: dict[str, Any] | None = None
        self.args_text: list[str] = []
        self.state_id: str | None = None
        self.finish: str | None = None
        self.logprobs: list[Logprob] = []


class ChatStreamState(StreamState[ChatCompletionChunk, ChatCompletion]):
    """v1 ``/chat/completions`` streams: ``data: {chunk}`` events ended by ``data: [DONE]``."""

    def __init__(
        self,
        meta: ResponseMeta,
        max_event_size: int | None = None,
        chunk_model: type[ChatCompletionChunk] = ChatCompletionChunk,
        sum_usage: bool = False,
    ) -> None:
        super().__init__(meta, max_event_size)
        self._chunk_model = chunk_model
        # what chunk_model.model_validate_json() calls, without the classmethod hop per chunk
        # (looking it up also builds the model's deferred schema)
        self._validate_json = chunk_model.__pydantic_validator__.validate_json
        self._sum_usage = sum_usage  # thread runs send usage increments on every chunk (as recorded)
        self._choices: dict[int, _ChoiceAcc] = {}
        self._usage: Usage | None = None
        self._model: str | None = None
        self._created: int | None = None
        self._extra: dict[str, Any] = {}

    def on_event(self, event: SSEEvent) -> ChatCompletionChunk | None:
        data = event.data
        if event.event is None and not self.held and b"\\u" not in data:
            # The common chunk: an unnamed event, nothing to mend, valid, with choices.
            try:
                chunk: ChatCompletionChunk = self._validate_json(data)
            except ValidationError:
                pass  # [DONE], an error object, junk: the checks below
            else:
                if chunk.choices:
                    self._accumulate(chunk)
                    return chunk
        if data == b"[DONE]":
            self.done = True
            return None
        if event.event == "error":
            self.raise_error_payload(data)
        data = self.mend(data)
        try:
            chunk = self._validate_json(data)
        except ValidationError:
            self.raise_error_payload(data)
            raise  # unreachable: raise_error_payload always raises
        if not chunk.choices:
            extra = chunk.model_extra
            if extra and ("message" in extra or "status" in extra or "error" in extra):
                self.raise_error_payload(data)
        self._accumulate(chunk)
        return chunk

    def _accumulate(self, chunk: ChatCompletionChunk) -> None:
        for choice in chunk.choices:
            acc = self._choices.get(choice.index)
            if acc is None:
                acc = self._choices[choice.index] = _ChoiceAcc()
            delta = choice.delta
            if delta.__pydantic_fields_set__ == _TEXT_ONLY and choice.finish_reason is None:
                if delta.content:  # the common delta: text and nothing else
                    acc.content.append(delta.content)
                continue
            if delta.content:
                acc.content.append(delta.content)
            if delta.role and acc.role is None:
                acc.role = delta.role
            if delta.reasoning_content:
                acc.reasoning.append(delta.reasoning_content)
            if delta.logprobs:
                acc.logprobs.extend(delta.logprobs)
            call = delta.function_call
            if call is not None:
                acc.fn_name = call.name or acc.fn_name
                acc.call_id = call.id or acc.call_id
                if isinstance(call.arguments, dict):
                    acc.args = {**(acc.args or {}), **call.arguments}
                elif isinstance(call.arguments, str):
                    acc.args_text.append(call.arguments)
            if delta.functions_state_id:
                acc.state_id = delta.functions_state_id
            if choice.finish_reason:
                acc.finish = choice.finish_reason
        fields = chunk.__dict__
        if chunk.__pydantic_fields_set__ <= _PLAIN_CHUNK:  # no usage, thread or error fields
            if fields["model"]:
                self._model = fields["model"]
            if fields["created"] is not None:
                self._created = fields["created"]
            return
        usage = chunk.usage
        if usage is not None:
            if self._sum_usage and self._usage is not None:
                prev = self._usage
                usage = Usage(
                    prompt_tokens=prev.prompt_tokens + usage.prompt_tokens,
                    completion_tokens=prev.completion_tokens + usage.completion_tokens,
                    total_tokens=prev.total_tokens + usage.total_tokens,
                    precached_prompt_tokens=(prev.precached_prompt_tokens or 0) + (usage.precached_prompt_tokens or 0)
                    or None,
                )
            self._usage = usage
        if chunk.model:
            self._model = chunk.model
        if chunk.created is not None:
            self._created = chunk.created
        # Declared fields live in __dict__, unknown ones in model_extra; getattr() on a missing
        # name would go through pydantic's __getattr__ and raise (microseconds per chunk).
        extra = chunk.__pydantic_extra__
        if extra or fields.get("thread_id") or fields.get("error_details") is not None:
            extra = extra or {}
            for key in ("thread_id", "message_id", "error_details"):
                value = fields.get(key) or extra.get(key)
                if value:
                    self._extra[key] = value

    def text_of(self, chunk: ChatCompletionChunk) -> str:
        choices = chunk.choices
        return (choices[0].delta.content or "") if choices else ""

    def complete(self) -> bool:
        return self.done or any(acc.finish for acc in self._choices.values())

    def final(self) -> ChatCompletion:
        for path in self.unpaired():  # half a character at the very end: U+FFFD, never a lone surrogate
            if path[:1] == ("choices",) and path[-2:] == ("delta", "content") and isinstance(path[1], int):
                acc = self._choices.get(path[1])
                if acc is not None:
                    acc.content.append(REPLACEMENT)
        choices = []
        for index in sorted(self._choices):
            acc = self._choices[index]
            call = None
            if acc.fn_name is not None:
                args: dict[str, Any] | str | None = acc.args
                if acc.args_text:
                    args = "".join(acc.args_text)
                call = FunctionCall(name=acc.fn_name, arguments=args, id=acc.call_id)
            message = Message(
                role=acc.role or "assistant",
                content="".join(acc.content),
                function_call=call,
                functions_state_id=acc.state_id,
                reasoning_content="".join(acc.reasoning) or None,
                logprobs=acc.logprobs or None,
            )
            choices.append(Choice(message=message, index=index, finish_reason=acc.finish))
        completion = ChatCompletion(
            choices=choices,
            created=self._created,
            model=self._model,
            object="chat.completion",
            usage=self._usage,
            **self._extra,
        )
        completion._meta = self.meta
        return completion


class _MessageAcc:
    __slots__ = ("logprobs", "message_id", "other", "reasoning", "role", "state_id", "text", "text_extra")

    def __init__(self) -> None:
        self.role: str | None = None
        self.text: list[str] = []
        #: What text parts carry besides the text (``inline_data``: the last one wins).
        self.text_extra: dict[str, Any] = {}
        self.logprobs: list[dict[str, Any]] = []
        self.reasoning: list[str] = []
        self.other: list[dict[str, Any]] = []
        self.state_id: str | None = None
        self.message_id: str | None = None


class ChatV2StreamState(StreamState[ChatCompletionV2Chunk, ChatCompletionV2]):
    """v2 streams: named events (``response.message.delta`` ... ``response.message.done``),
    no ``[DONE]``; an ``error`` event raises StreamError."""

    def __init__(self, meta: ResponseMeta, max_event_size: int | None = None) -> None:
        super().__init__(meta, max_event_size)
        self._messages: list[_MessageAcc] = []
        self._model: str | None = None
        self._created: int | None = None
        self._finish: str | None = None
        self._usage: UsageV2 | None = None
        self._extra: dict[str, Any] = {}

    def on_event(self, event: SSEEvent) -> ChatCompletionV2Chunk | None:
        data = event.data
        if event.event == "error" or data == b"[DONE]":
            if data == b"[DONE]":
                self.done = True
                return None
            self.raise_error_payload(data)
        data = self.mend(data)
        try:
            chunk = ChatCompletionV2Chunk.model_validate_json(data)
        except ValidationError:
            self.raise_error_payload(data)
            raise  # unreachable: raise_error_payload always raises
        extra = chunk.model_extra
        if extra and not chunk.messages and ("status" in extra or "error" in extra or "message" in extra):
            self.raise_error_payload(data)
        chunk.event = event.event
        self._accumulate(chunk)
        if event.event == "response.message.done":
            self.done = True
        return chunk

    def _accumulate(self, chunk: ChatCompletionV2Chunk) -> None:
        if chunk.model:
            self._model = chunk.model
        if chunk.created_at is not None:
            self._created = chunk.created_at
        if chunk.finish_reason:
            self._finish = chunk.finish_reason
        if chunk.usage is not None:
            self._usage = chunk.usage
        for key in ("thread_id", "message_id", "error_details", "additional_data"):
            value = getattr(chunk, key, None) if key in chunk.__dict__ else (chunk.model_extra or {}).get(key)
            if value:
                self._extra[key] = (
                    value.model_dump(mode="json", by_alias=True) if hasattr(value, "model_dump") else value
                )
        if chunk.logprobs:
            self._extra.setdefault("logprobs", []).extend(lp.to_dict() for lp in chunk.logprobs)
        for i, msg in enumerate(chunk.messages):
            while len(self._messages) <= i:
                self._messages.append(_MessageAcc())
            acc = self._messages[i]
            acc.role = acc.role or msg.role
            acc.state_id = msg.state_id or acc.state_id
            acc.message_id = msg.message_id or acc.message_id
            if msg.reasoning_content:
                acc.reasoning.append(msg.reasoning_content)
            for part in msg.content:
                rest = part.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"text", "logprobs"})
                if part.text is not None and not part.function_call and not part.function_result:
                    acc.text.append(part.text)
                    acc.logprobs.extend(lp.to_dict() for lp in part.logprobs or ())
                    acc.text_extra.update(rest)
                    continue
                if part.logprobs:
                    acc.logprobs.extend(lp.to_dict() for lp in part.logprobs)
                if rest and rest not in acc.other:
                    acc.other.append(rest)

    def text_of(self, chunk: ChatCompletionV2Chunk) -> str:
        return chunk.text if chunk.event != "response.message.done" else ""

    def final(self) -> ChatCompletionV2:
        for path in self.unpaired():  # half a character at the very end: U+FFFD, never a lone surrogate
            if (
                path[:1] == ("messages",)
                and path[-1:] == ("text",)
                and isinstance(path[1], int)
                and path[1] < len(self._messages)
            ):
                self._messages[path[1]].text.append(REPLACEMENT)
        messages = []
        for acc in self._messages:
            content: list[dict[str, Any]] = []
            if acc.text:
                text_part: dict[str, Any] = {"text": "".join(acc.text), **acc.text_extra}
                if acc.logprobs:
                    text_part["logprobs"] = acc.logprobs
                content.append(text_part)
            elif acc.logprobs:
                content.append({"logprobs": acc.logprobs})
            content += acc.other
            msg: dict[str, Any] = {"role": acc.role or "assistant", "content": content}
            if acc.message_id:
                msg = {"message_id": acc.message_id, **msg}
            if acc.state_id:
                msg["tool_state_id"] = acc.state_id
            if acc.reasoning:
                msg["reasoning_content"] = "".join(acc.reasoning)
            messages.append(msg)
        completion = ChatCompletionV2.model_validate(
            {
                "model": self._model,
                "created_at": self._created,
                "messages": messages,
                "finish_reason": self._finish,
                "usage": self._usage.model_dump(mode="json", exclude_none=True) if self._usage else None,
                **self._extra,
            }
        )
        completion._meta = self.meta
        return completion
