"""The OpenAI/Anthropic endpoints served through a gigapy client: routing, uploads, the GigaChat
call, the translated answer. Shared by the in-process httpx transports and ``gigapy serve``.

One request is ``(method, path, headers, body bytes)``; the answer is a :class:`Reply` (whole
JSON) or a :class:`StreamReply` (server-sent events, produced lazily). Everything but the
GigaChat calls is the sans-IO translation in ``gigapy._translate``; the calls go through the
public client API (``completion``, ``completion_stream``, ``v2``, ``embedding``,
``all_models``, ``upload_file``), so the client's token cache, retries and TLS apply.

Paths are accepted with or without the ``/v1`` prefix:

- ``POST /v1/chat/completions`` (streaming too), ``POST /v1/embeddings``,
  ``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/responses`` (streaming too);
- ``POST /v1/messages`` (Anthropic Messages, streaming too).
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .. import _telemetry
from .._ops import chat as _chat_ops
from .._ops import chat_v2 as _chat_v2_ops
from .._translate import (
    DONE,
    ChatCompletionStream,
    ErrorReply,
    GigaChatCall,
    MemoryResponseStore,
    MessagesStream,
    PendingUpload,
    ResponsesStream,
    ResponseStore,
    TranslateContext,
    TranslateOptions,
    UnsupportedParameterError,
    anthropic_error_from_exception,
    chat_completion,
    chat_completion_json,
    chat_request,
    data_frame,
    embeddings_request,
    embeddings_response,
    message_response,
    messages_request,
    models_response,
    named_frame,
    openai_error_from_exception,
    request_json,
    responses_request,
    responses_response,
)
from .._translate.embeddings import EmbeddingsCall, model_object
from .._translate.framing import chat_error_frame, messages_error_frame, responses_error_frame
from ..errors import GigaChatError, NotFoundError

if TYPE_CHECKING:
    from .. import AsyncGigaChat, GigaChat

log = logging.getLogger("gigapy.openai")

Kind = Literal["chat", "embeddings", "models", "model", "responses", "messages"]
Shape = Literal["openai", "anthropic"]
_JSON = {"content-type": "application/json"}
_SSE = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_ROUTES: dict[tuple[str, str], Kind] = {
    ("POST", "/chat/completions"): "chat",
    ("POST", "/embeddings"): "embeddings",
    ("GET", "/models"): "models",
    ("POST", "/responses"): "responses",
    ("POST", "/messages"): "messages",
}


def route(method: str, path: str) -> tuple[Kind, str] | None:
    """The endpoint of ``method path`` (``/v1`` optional) and its path argument, or None."""
    if path.startswith("/v1/"):
        path = path[3:]
    path = path.rstrip("/") or "/"
    kind = _ROUTES.get((method.upper(), path))
    if kind is not None:
        return kind, ""
    if method.upper() == "GET" and path.startswith("/models/") and len(path) > 8:
        return "model", path[8:]
    return None


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _dumps(obj: Any) -> bytes:
    return _ENCODER.encode(obj).encode()


@dataclass
class Reply:
    """A whole answer: status, headers, JSON bytes."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed (tests and logs)."""
        return json.loads(self.body)


@dataclass
class StreamReply:
    """A streamed answer: status, headers, and the SSE frames (made as they are read).

    ``frames`` is an iterator (sync bridge) or an async iterator (async bridge); closing it
    early (the client went away) closes the GigaChat stream.
    """

    status: int
    headers: dict[str, str]
    frames: Any
    close: Callable[[], Any] = field(default=lambda: None)


@dataclass
class Exchange:
    """One translated request in flight: what it is, its ids, its translation state."""

    kind: Kind
    shape: Shape
    request_id: str
    ctx: TranslateContext
    body: dict[str, Any] = field(default_factory=dict)
    arg: str = ""
    model: str | None = None
    stream: bool = False

    def error(self, exc: BaseException) -> Reply:
        """An exception as this API's error reply."""
        reply = error_reply(exc, self.shape)
        return Reply(reply.status, {**_JSON, **reply.headers, "x-request-id": self.request_id}, _dumps(reply.body))

    def headers(self, call: GigaChatCall | None, sse: bool = False) -> dict[str, str]:
        """Response headers: content type, request id, the translation's notes."""
        out = {**(_SSE if sse else _JSON), "x-request-id": self.request_id}
        if call is not None and call.notes:
            out["x-gigapy-notes"] = "; ".join(call.notes).encode("ascii", "backslashreplace").decode()[:2000]
        return out


def error_reply(exc: BaseException, shape: Shape) -> ErrorReply:
    """Any exception as OpenAI's or Anthropic's error reply (never a secret: gigapy errors hold none)."""
    if not isinstance(exc, GigaChatError):
        log.exception("unexpected error in the OpenAI bridge", exc_info=exc)
    return anthropic_error_from_exception(exc) if shape == "anthropic" else openai_error_from_exception(exc)


def _request_id(headers: Mapping[str, str]) -> str:
    given = headers.get("x-request-id")
    if given is None and type(headers) is dict:  # httpx's and aiohttp's headers ignore case already
        given = headers.get("X-Request-ID")
    if isinstance(given, str) and _REQUEST_ID.match(given):
        return given
    return f"{random.getrandbits(128):032x}"  # an id, not a secret: no need for uuid4's os.urandom


def _gigachat_kwargs(call: GigaChatCall, request_id: str) -> tuple[Any, dict[str, Any]]:
    """(messages, keyword arguments) of the client call for ``call``."""
    kwargs = dict(call.body)
    kwargs.pop("stream", None)
    messages = kwargs.pop("messages")
    kwargs["request_id"] = request_id
    headers = dict(call.headers)
    session = headers.pop("X-Session-ID", None)
    if session is not None:
        kwargs["session_id"] = session
    if headers:
        kwargs["extra_headers"] = headers
    return messages, kwargs


def _answer_flow(client: Any, call: GigaChatCall, messages: Any, kwargs: dict[str, Any]) -> Any:
    """The client's flow of a whole chat call, its answer as GigaChat's JSON dict (no model built)."""
    if call.api == "v2":
        return _chat_v2_ops.v2_completion_json(client._core, messages, kwargs)
    return _chat_ops.completion_json(client._core, messages, kwargs)


def _stream_of(kind: Kind, call: GigaChatCall, ctx: TranslateContext) -> Any:
    if kind == "chat":
        return ChatCompletionStream(call, ctx)
    if kind == "responses":
        return ResponsesStream(call, ctx)
    return MessagesStream(call, ctx)


def _frames(kind: Kind, objects: list[dict[str, Any]]) -> bytes:
    frame = data_frame if kind == "chat" else named_frame
    return b"".join(frame(obj) for obj in objects)


def _error_frame(kind: Kind, exc: BaseException, sequence: int) -> bytes:
    if kind == "chat":
        return chat_error_frame(error_reply(exc, "openai"))
    if kind == "responses":
        return responses_error_frame(error_reply(exc, "openai"), sequence)
    return messages_error_frame(error_reply(exc, "anthropic"))


class _Translated:
    """The parts of a request the sync and async bridges share: parsing and the plans."""

    def __init__(self, options: TranslateOptions, store: ResponseStore | None, upload_cache: int) -> None:
        self.options = options
        self.store = store
        self._uploaded: OrderedDict[str, str] = OrderedDict()
        self._upload_cache = upload_cache

    def begin(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Exchange | Reply:
        """Route and parse; a Reply when the request is answered already (unknown path, bad JSON)."""
        rid = _request_id(headers)
        found = route(method, path)
        shape: Shape = "anthropic" if found is not None and found[0] == "messages" else "openai"
        ex = Exchange(found[0] if found else "chat", shape, rid, TranslateContext(request_id=rid, now=time.time))
        if found is None:
            reply = ErrorReply(
                404,
                {
                    "error": {
                        "message": f"no such endpoint: {method} {path}",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "unknown_url",
                    }
                },
            )
            return Reply(404, {**_JSON, "x-request-id": rid}, _dumps(reply.body))
        ex.arg = found[1]
        if method.upper() == "POST":
            try:
                ex.body = request_json(body)
            except GigaChatError as exc:
                return ex.error(exc)
            model = ex.body.get("model")
            ex.model = model if isinstance(model, str) else None
            ex.stream = ex.body.get("stream") is True
        return ex

    def plan(self, ex: Exchange) -> Any:
        """The translation plan of a chat, responses or messages request (errors name the field)."""
        if ex.kind == "chat":
            return chat_request(ex.body, self.options)
        if ex.kind == "messages":
            return messages_request(ex.body, self.options)
        plan = responses_request(ex.body, self.options)
        if plan.previous_response_id is not None and self.store is not None:
            plan.with_previous(self.store.load(plan.previous_response_id))
        return plan

    def cached(self, upload: PendingUpload) -> str | None:
        """The file id of an upload seen before (by content hash)."""
        if upload.url is not None:
            raise UnsupportedParameterError(
                upload.field,
                "images by http(s) URL are not fetched by this bridge; "
                "send the image inline as a data: URL (data:image/png;base64,...)",
                code="unsupported_value",
            )
        found = self._uploaded.get(upload.key)
        if found is not None:
            self._uploaded.move_to_end(upload.key)
        return found

    def forget(self, upload: PendingUpload) -> None:
        """Drop an id the service no longer has (deleted elsewhere, expired): it is uploaded again."""
        self._uploaded.pop(upload.key, None)

    def remember(self, upload: PendingUpload, file_id: str) -> None:
        """Keep an uploaded file's id under its content hash (bounded, oldest first out)."""
        self._uploaded[upload.key] = file_id
        while len(self._uploaded) > self._upload_cache:
            self._uploaded.popitem(last=False)

    def render(self, ex: Exchange, call: GigaChatCall, plan: Any, answer: Mapping[str, Any]) -> Reply:
        """A whole GigaChat answer as the front end's JSON reply."""
        if ex.kind == "chat":
            fast = chat_completion_json(call, answer, ex.ctx)
            if fast is not None:
                return Reply(200, ex.headers(call), fast)
            out = chat_completion(call, answer, ex.ctx)
        elif ex.kind == "messages":
            out = message_response(call, answer, ex.ctx)
        else:
            out = responses_response(call, answer, ex.ctx)
            self.save(plan, out)
        return Reply(200, ex.headers(call), _dumps(out))

    def save(self, plan: Any, response: Mapping[str, Any]) -> None:
        """Store a Responses answer for ``previous_response_id`` (unless ``store: false``)."""
        if self.store is not None and response.get("store") is not False and isinstance(response.get("id"), str):
            self.store.save(str(response["id"]), plan.conversation(response))

    def embeddings(self, ex: Exchange) -> EmbeddingsCall:
        """The GigaChat embeddings request."""
        return embeddings_request(ex.body, self.options)


def _file_name(upload: PendingUpload) -> str:
    if upload.filename:
        return upload.filename
    ext = (upload.mime or "application/octet-stream").rsplit("/", 1)[-1].split("+")[0]
    return f"{(upload.sha256 or 'file')[:16]}.{ext}"


class Bridge:
    """The endpoints through a sync :class:`~gigapy.GigaChat` (see the module docstring)."""

    def __init__(
        self,
        client: GigaChat,
        options: TranslateOptions | None = None,
        *,
        store: ResponseStore | None = None,
        upload_cache: int = 1024,
    ) -> None:
        self.client = client
        self._t = _Translated(
            options or TranslateOptions(), store if store is not None else MemoryResponseStore(), upload_cache
        )

    def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply | StreamReply:
        """Answer one request."""
        ex = self._t.begin(method, path, headers, body)
        if isinstance(ex, Reply):
            return ex
        span = _telemetry.serve_start(self.client, ex, method, path, headers, remote=False)
        status = 500
        try:
            reply = self._answer(ex)
            status = reply.status
            return reply
        finally:
            _telemetry.serve_end(span, status)

    def _answer(self, ex: Exchange) -> Reply | StreamReply:
        try:
            if ex.kind == "models":
                return Reply(
                    200,
                    ex.headers(None),
                    _dumps(models_response(self.client.all_models(request_id=ex.request_id).to_dict())),
                )
            if ex.kind == "model":
                return Reply(
                    200,
                    ex.headers(None),
                    _dumps(model_object(self.client.get_model(ex.arg, request_id=ex.request_id).to_dict())),
                )
            if ex.kind == "embeddings":
                ecall = self._t.embeddings(ex)
                answer = self.client.embedding(ecall.body["input"], model=ecall.body["model"], request_id=ex.request_id)
                return Reply(200, ex.headers(None), _dumps(embeddings_response(ecall, answer.to_dict())))
            plan = self._t.plan(ex)
            call: GigaChatCall = plan.finish(self._uploads(plan.uploads, ex.request_id))
            messages, kwargs = _gigachat_kwargs(call, ex.request_id)
            if not call.stream:
                return self._t.render(
                    ex, call, plan, self.client._run(_answer_flow(self.client, call, messages, kwargs))
                )
            chat = self.client.v2 if call.api == "v2" else self.client
            opened = chat.completion_stream(messages, **kwargs)
        except Exception as exc:
            return ex.error(exc)
        return StreamReply(200, ex.headers(call, sse=True), self._stream(ex, call, plan, opened), opened.close)

    def _uploads(self, uploads: tuple[PendingUpload, ...], request_id: str) -> dict[str, str]:
        ids: dict[str, str] = {}
        for upload in uploads:
            found = self._t.cached(upload)
            if found is not None:
                try:  # a remembered file may be gone from the service since
                    self.client.get_file_info(found, request_id=request_id)
                except NotFoundError:
                    self._t.forget(upload)
                    found = None
            if found is None:
                assert upload.data is not None
                found = self.client.upload_file(
                    upload.data, filename=_file_name(upload), content_type=upload.mime, request_id=request_id
                ).id
                self._t.remember(upload, found)
            ids[upload.key] = found
        return ids

    def _stream(self, ex: Exchange, call: GigaChatCall, plan: Any, opened: Any) -> Iterator[bytes]:
        translator = _stream_of(ex.kind, call, ex.ctx)
        try:
            for chunk in opened:
                out = translator.feed(chunk.to_dict(), getattr(chunk, "event", None))
                if out:
                    yield _frames(ex.kind, out)
            yield _frames(ex.kind, translator.close())
            if ex.kind == "responses" and getattr(translator, "response", None) is not None:
                self._t.save(plan, translator.response)
        except Exception as exc:
            yield _error_frame(ex.kind, exc, getattr(translator, "_seq", 0))
        finally:
            opened.close()
        if ex.kind == "chat":
            yield DONE


class AsyncBridge:
    """The endpoints through an :class:`~gigapy.AsyncGigaChat` (see the module docstring)."""

    def __init__(
        self,
        client: AsyncGigaChat,
        options: TranslateOptions | None = None,
        *,
        store: ResponseStore | None = None,
        upload_cache: int = 1024,
    ) -> None:
        self.client = client
        self._t = _Translated(
            options or TranslateOptions(), store if store is not None else MemoryResponseStore(), upload_cache
        )

    async def handle(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Reply | StreamReply:
        """Answer one request."""
        ex = self._t.begin(method, path, headers, body)
        if isinstance(ex, Reply):
            return ex
        span = _telemetry.serve_start(self.client, ex, method, path, headers, remote=False)
        status = 500
        try:
            reply = await self.handle_exchange(ex)
            status = reply.status
            return reply
        finally:
            _telemetry.serve_end(span, status)

    def begin(self, method: str, path: str, headers: Mapping[str, str], body: bytes) -> Exchange | Reply:
        """Route and parse only (the server logs the exchange before it runs)."""
        return self._t.begin(method, path, headers, body)

    async def handle_exchange(self, ex: Exchange) -> Reply | StreamReply:
        """Answer a begun exchange."""
        client = self.client
        try:
            if ex.kind == "models":
                return Reply(
                    200,
                    ex.headers(None),
                    _dumps(models_response((await client.all_models(request_id=ex.request_id)).to_dict())),
                )
            if ex.kind == "model":
                return Reply(
                    200,
                    ex.headers(None),
                    _dumps(model_object((await client.get_model(ex.arg, request_id=ex.request_id)).to_dict())),
                )
            if ex.kind == "embeddings":
                ecall = self._t.embeddings(ex)
                answer = await client.embedding(
                    ecall.body["input"], model=ecall.body["model"], request_id=ex.request_id
                )
                return Reply(200, ex.headers(None), _dumps(embeddings_response(ecall, answer.to_dict())))
            plan = self._t.plan(ex)
            call: GigaChatCall = plan.finish(await self._uploads(plan.uploads, ex.request_id))
            messages, kwargs = _gigachat_kwargs(call, ex.request_id)
            if not call.stream:
                return self._t.render(ex, call, plan, await client._run(_answer_flow(client, call, messages, kwargs)))
            chat: Any = client.v2 if call.api == "v2" else client
            opened = await chat.completion_stream(messages, **kwargs)
        except Exception as exc:
            return ex.error(exc)
        return StreamReply(200, ex.headers(call, sse=True), self._stream(ex, call, plan, opened), opened.aclose)

    async def _uploads(self, uploads: tuple[PendingUpload, ...], request_id: str) -> dict[str, str]:
        ids: dict[str, str] = {}
        for upload in uploads:
            found = self._t.cached(upload)
            if found is not None:
                try:
                    await self.client.get_file_info(found, request_id=request_id)
                except NotFoundError:
                    self._t.forget(upload)
                    found = None
            if found is None:
                assert upload.data is not None
                found = (
                    await self.client.upload_file(
                        upload.data, filename=_file_name(upload), content_type=upload.mime, request_id=request_id
                    )
                ).id
                self._t.remember(upload, found)
            ids[upload.key] = found
        return ids

    async def _stream(self, ex: Exchange, call: GigaChatCall, plan: Any, opened: Any) -> AsyncIterator[bytes]:
        translator = _stream_of(ex.kind, call, ex.ctx)
        try:
            async for chunk in opened:
                out = translator.feed(chunk.to_dict(), getattr(chunk, "event", None))
                if out:
                    yield _frames(ex.kind, out)
            yield _frames(ex.kind, translator.close())
            if ex.kind == "responses" and getattr(translator, "response", None) is not None:
                self._t.save(plan, translator.response)
        except Exception as exc:
            yield _error_frame(ex.kind, exc, getattr(translator, "_seq", 0))
        finally:
            await opened.aclose()
        if ex.kind == "chat":
            yield DONE
