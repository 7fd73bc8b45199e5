"""``AsyncGigaChat``: the asynchronous client (aiohttp driver).

The driver executes the actions of the shared flows in ``_ops``/``_core``: it sends requests
with aiohttp, sleeps, runs blocking work and calls user code through ``hooks``, and fetches
tokens through the process-wide single-flight cache. Nothing about the API itself is decided
here. The sync client is generated from this file by ``scripts/unasync.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, TypeVar, overload

import aiohttp
from pydantic import BaseModel, SecretStr
from typing_extensions import Self, Unpack

from .._config import Settings, load_settings, secret_args
from .._core import params as P
from .._core.flow import (
    Blocking,
    Flow,
    GetToken,
    Invoke,
    Send,
    Sleep,
)
from .._logs import setup_logging
from .._ops import assistants as assistants_ops
from .._ops import auth as auth_ops
from .._ops import batches as batches_ops
from .._ops import chat as chat_ops
from .._ops import chat_v2 as chat_v2_ops
from .._ops import embeddings as embeddings_ops
from .._ops import files as files_ops
from .._ops import misc as misc_ops
from .._ops import models as models_ops
from .._ops import threads as threads_ops
from .._ops.base import RequestOptions
from .._ops.chat import ChatFields, ChatParams
from .._ops.chat_v2 import ChatV2Base, ChatV2Params
from .._ops.images import ImageParams, attach_flow, generate_image_flow
from .._ops.structured import parse_flow
from .._transports.aiohttp_driver import AiohttpTransport
from ..errors import GigaChatError
from ..tools import Tool, ToolRun, run_tools_flow
from ..types import (
    AccessToken,
    AICheckResult,
    Assistant,
    Assistants,
    Balance,
    Batch,
    BatchResult,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionV2,
    ChatCompletionV2Chunk,
    ConvertedFunctions,
    CreatedAssistant,
    DeletedAssistant,
    DeletedAssistantFile,
    DeletedFile,
    Embeddings,
    File,
    FilterCheckResult,
    FunctionValidationResult,
    Message,
    Model,
    Models,
    Thread,
    ThreadCompletion,
    ThreadCompletionChunk,
    ThreadMessages,
    ThreadRunResponse,
    ThreadRunResult,
    Threads,
    TokensCount,
)
from . import hooks
from .base import BaseClient, ClientSettings
from .conversation import AsyncConversation, ConversationState
from .gate import gate_for, gated
from .streams import AsyncStream

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

AsyncChatStream = AsyncStream[ChatCompletionChunk, ChatCompletion]
AsyncChatV2Stream = AsyncStream[ChatCompletionV2Chunk, ChatCompletionV2]
AsyncThreadStream = AsyncStream[ThreadCompletionChunk, ChatCompletion]


class AsyncChatV2:
    """``client.v2``: the v2 chat contract (content parts, built-in tools, named stream events)."""

    __slots__ = ("_client",)

    def __init__(self, client: AsyncGigaChat) -> None:
        self._client = client

    async def completion(
        self, messages: str | Sequence[Any] | None = None, /, **params: Unpack[ChatV2Params]
    ) -> ChatCompletionV2:
        """``POST /v2/chat/completions``: ``client.v2.completion("Hi", tools=["web_search"])``."""
        client = self._client
        return await client._run(chat_v2_ops.v2_completion(client._core, messages, params))

    def completion_stream(
        self, messages: str | Sequence[Any] | None = None, /, **params: Unpack[ChatV2Params]
    ) -> hooks.StreamRequest[AsyncChatV2Stream]:
        """The v2 answer as a stream of named events (use it in an ``async with`` block)."""
        client = self._client
        flow = chat_v2_ops.v2_completion_stream(client._core, messages, params)  # arguments are checked here

        async def open_stream() -> AsyncChatV2Stream:
            return client._transport.stream(await client._run(flow))

        return hooks.open_stream_async(open_stream)

    async def run_tools(
        self,
        messages: str | Sequence[Any],
        /,
        *,
        tools: Sequence[Callable[..., Any] | Tool],
        max_steps: int = 5,
        **params: Unpack[ChatV2Base],
    ) -> ToolRun:
        """Let the model call Python functions until it answers (see gigapy.tools)."""
        core = self._client._core

        def ask(history: list[Any], specs: list[dict[str, Any]]) -> Flow[Any]:
            return chat_v2_ops.v2_completion(core, history, {**params, "functions": specs})

        return await self._client._run(
            run_tools_flow(
                ask, messages, tools, max_steps=max_steps, v2=True, dialect=chat_ops.schema_dialect_of(core, params)
            )
        )

    async def parse(
        self,
        messages: str | Sequence[Any],
        /,
        *,
        response_format: type[M],
        method: str = "auto",
        **params: Unpack[ChatV2Base],
    ) -> M:
        """Ask for a validated ``response_format`` object (see ``AsyncGigaChat.parse``)."""
        core = self._client._core

        def ask(history: list[Any], extra: dict[str, Any]) -> Flow[Any]:
            return chat_v2_ops.v2_completion(core, history, {**params, **extra})

        return await self._client._run(
            parse_flow(
                ask, messages, response_format, method=method, v2=True, dialect=chat_ops.schema_dialect_of(core, params)
            )
        )


class AsyncAssistantsAPI:
    """``client.assistants``: a saved model, instructions, files and functions to run threads with."""

    __slots__ = ("_client",)

    def __init__(self, client: AsyncGigaChat) -> None:
        self._client = client

    async def list(self, **options: Unpack[RequestOptions]) -> Assistants:
        """Every assistant of the account."""
        return await self._client._run(assistants_ops.list_assistants(self._client._core, options))

    async def get(self, assistant_id: str, **options: Unpack[RequestOptions]) -> Assistant:
        """One assistant (NotFoundError if there is no such assistant)."""
        return await self._client._run(assistants_ops.get_assistant(self._client._core, assistant_id, options))

    async def create(
        self,
        *,
        name: str,
        model: str | None = None,
        instructions: str | None = None,
        description: str | None = None,
        file_ids: Sequence[str] | None = None,
        functions: Sequence[Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **options: Unpack[RequestOptions],
    ) -> CreatedAssistant:
        """Create an assistant (model defaults to the client's)."""
        fields = {
            "instructions": instructions,
            "description": description,
            "file_ids": file_ids,
            "functions": functions,
            "metadata": metadata,
        }
        core = self._client._core
        return await self._client._run(assistants_ops.create_assistant(core, model, name, fields, options))

    async def update(
        self,
        assistant_id: str,
        *,
        name: str | None = None,
        instructions: str | None = None,
        description: str | None = None,
        file_ids: Sequence[str] | None = None,
        functions: Sequence[Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        **options: Unpack[RequestOptions],
    ) -> Assistant:
        """Change the given fields of an assistant."""
        fields = {
            "name": name,
            "instructions": instructions,
            "description": description,
            "file_ids": file_ids,
            "functions": functions,
            "metadata": metadata,
        }
        core = self._client._core
        return await self._client._run(assistants_ops.update_assistant(core, assistant_id, fields, options))

    async def delete(self, assistant_id: str, **options: Unpack[RequestOptions]) -> DeletedAssistant:
        """Delete an assistant."""
        return await self._client._run(assistants_ops.delete_assistant(self._client._core, assistant_id, options))

    async def delete_file(
        self, assistant_id: str, file_id: str, **options: Unpack[RequestOptions]
    ) -> DeletedAssistantFile:
        """Detach a file from an assistant."""
        core = self._client._core
        return await self._client._run(assistants_ops.delete_assistant_file(core, assistant_id, file_id, options))


class AsyncThreadsAPI:
    """``client.threads``: conversations stored by the service, and runs over them."""

    __slots__ = ("_client",)

    def __init__(self, client: AsyncGigaChat) -> None:
        self._client = client

    async def list(
        self,
        *,
        assistants_ids: Sequence[str] | None = None,
        limit: int | None = None,
        before: int | None = None,
        **options: Unpack[RequestOptions],
    ) -> Threads:
        """The account's threads (optionally of some assistants)."""
        core = self._client._core
        return await self._client._run(threads_ops.list_threads(core, assistants_ids, limit, before, options))

    async def create(self, **options: Unpack[RequestOptions]) -> Thread:
        """An empty thread."""
        return await self._client._run(threads_ops.create_thread(self._client._core, options))

    async def retrieve(self, threads_ids: Sequence[str], **options: Unpack[RequestOptions]) -> Threads:
        """Several threads by id."""
        return await self._client._run(threads_ops.retrieve_threads(self._client._core, threads_ids, options))

    async def delete(self, thread_id: str, **options: Unpack[RequestOptions]) -> bool:
        """Delete a thread."""
        return await self._client._run(threads_ops.delete_thread(self._client._core, thread_id, options))

    async def get_messages(
        self, thread_id: str, *, limit: int | None = None, before: int | None = None, **options: Unpack[RequestOptions]
    ) -> ThreadMessages:
        """A thread's messages."""
        return await self._client._run(threads_ops.get_messages(self._client._core, thread_id, limit, before, options))

    async def add_messages(
        self,
        messages: str | Sequence[Any],
        *,
        thread_id: str | None = None,
        assistant_id: str | None = None,
        model: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> ThreadMessages:
        """Append messages to a thread (a new one when ``thread_id`` is not given)."""
        core = self._client._core
        flow = threads_ops.add_messages(core, messages, thread_id, assistant_id, model, options)
        return await self._client._run(flow)

    async def run(
        self, thread_id: str, *, assistant_id: str | None = None, **params: Unpack[threads_ops.RunOptions]
    ) -> ThreadRunResponse:
        """Start a run over the thread in the background (see ``get_run``)."""
        return await self._client._run(threads_ops.run_thread(self._client._core, thread_id, assistant_id, params))

    async def get_run(self, thread_id: str, **options: Unpack[RequestOptions]) -> ThreadRunResult:
        """The state of a thread's run and the messages it produced."""
        return await self._client._run(threads_ops.get_run(self._client._core, thread_id, options))

    def run_stream(
        self, thread_id: str, *, assistant_id: str | None = None, **params: Unpack[threads_ops.RunOptions]
    ) -> hooks.StreamRequest[AsyncThreadStream]:
        """Run the thread and stream the answer."""
        client = self._client
        flow = threads_ops.run_stream(client._core, thread_id, assistant_id, params)  # arguments are checked here

        async def open_stream() -> AsyncThreadStream:
            return client._transport.stream(await client._run(flow))

        return hooks.open_stream_async(open_stream)

    async def run_messages(
        self,
        messages: str | Sequence[Any],
        *,
        thread_id: str | None = None,
        assistant_id: str | None = None,
        model: str | None = None,
        **params: Unpack[threads_ops.RunOptions],
    ) -> ThreadCompletion:
        """Add messages and answer them in one call (a new thread when ``thread_id`` is not given)."""
        core = self._client._core
        return await self._client._run(threads_ops.run_messages(core, messages, thread_id, assistant_id, model, params))

    def run_messages_stream(
        self,
        messages: str | Sequence[Any],
        *,
        thread_id: str | None = None,
        assistant_id: str | None = None,
        model: str | None = None,
        **params: Unpack[threads_ops.RunOptions],
    ) -> hooks.StreamRequest[AsyncThreadStream]:
        """Add messages and stream the answer."""
        client = self._client
        flow = threads_ops.run_messages_stream(client._core, messages, thread_id, assistant_id, model, params)

        async def open_stream() -> AsyncThreadStream:
            return client._transport.stream(await client._run(flow))

        return hooks.open_stream_async(open_stream)

    async def rerun_messages(self, thread_id: str, **params: Unpack[threads_ops.RunOptions]) -> ThreadCompletion:
        """Regenerate the thread's last answer."""
        return await self._client._run(threads_ops.rerun_messages(self._client._core, thread_id, params))

    def rerun_messages_stream(
        self, thread_id: str, **params: Unpack[threads_ops.RunOptions]
    ) -> hooks.StreamRequest[AsyncThreadStream]:
        """Regenerate the thread's last answer as a stream."""
        client = self._client
        flow = threads_ops.rerun_messages_stream(client._core, thread_id, params)  # arguments are checked here

        async def open_stream() -> AsyncThreadStream:
            return client._transport.stream(await client._run(flow))

        return hooks.open_stream_async(open_stream)


class AsyncGigaChat(BaseClient[AiohttpTransport]):
    """The asynchronous GigaChat client.

    Every setting can also come from the ``GIGACHAT_*`` environment variable of the same
    name (the official SDK's names). A client is cheap to share between threads; create
    one per process and reuse it. Use it in an ``async with`` block, or call :meth:`aclose`.
    """

    def __init__(self, *, session: aiohttp.ClientSession | None = None, **settings: Unpack[ClientSettings]) -> None:
        args = secret_args(settings)
        del settings  # the raw keyword arguments: no secret stays in a local of this frame
        setup_logging()
        resolved = load_settings(args)
        self._setup(resolved, AiohttpTransport(resolved, session), owns=session is None)

    def _new_transport(self, settings: Settings) -> AiohttpTransport:
        return AiohttpTransport(settings)

    # --- driver ------------------------------------------------------------------------

    async def _run(self, flow: Flow[T]) -> T:
        send = flow.send
        result: Any = None
        try:
            while True:
                action = send(result)
                kind = type(action)
                if kind is Send:
                    fleet = self._fleet
                    if fleet is not None:
                        result = await fleet.send_async(self._transport.send, action.request, self._bearer_now)
                    else:
                        request = action.request
                        gate_kind = gated(request)
                        if gate_kind is None:
                            result = await self._transport.send(request)
                        else:
                            gate = self._gates.get(gate_kind) or gate_for(
                                self._gates, self._core.settings.scope, gate_kind
                            )
                            result = await gate.send_async(self._transport.send, request)
                elif kind is GetToken:
                    result = await self._token(action.stale)
                elif kind is Sleep:
                    await hooks.sleep_async(action.seconds)
                    result = None
                elif kind is Blocking:
                    result = await hooks.run_blocking_async(action.fn)
                elif kind is Invoke:
                    result = await hooks.invoke_async(action)
                else:  # pragma: no cover - a programming error in a flow
                    raise TypeError(f"unknown action {action!r}")
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _bearer_now(self) -> SecretStr:
        return await self._token(None)

    async def _token(self, stale: SecretStr | None) -> SecretStr:
        tokens = self._core.tokens
        token = tokens.without_io(stale)
        if token is not None:
            return token
        assert tokens.entry is not None
        if self._fleet is not None:
            return await self._fleet.token_async(tokens.entry, lambda: self._run(self._core.fetch_token()), stale)
        return await tokens.entry.get_async(lambda: self._run(self._core.fetch_token()), stale)

    # --- lifecycle -----------------------------------------------------------------------

    def with_options(self, **overrides: Unpack[ClientSettings]) -> AsyncGigaChat:
        """A client with some settings changed that shares this one's connection pool and
        token cache (a new pool only when TLS settings change)."""
        args = secret_args(overrides)
        del overrides  # no secret stays in a local of this frame
        return self._copy(args)

    async def aclose(self) -> None:
        """Close the connection pool (copies made by ``with_options`` leave it to the owner)."""
        if self._owns_transport:
            await self._transport.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @property
    def assistants(self) -> AsyncAssistantsAPI:
        """Assistants: ``client.assistants.create(...)``, ``.list()``, ``.update(...)``, ..."""
        return AsyncAssistantsAPI(self)

    @property
    def threads(self) -> AsyncThreadsAPI:
        """Threads: ``client.threads.run_messages(...)``, ``.get_messages(...)``, ..."""
        return AsyncThreadsAPI(self)

    @property
    def v2(self) -> AsyncChatV2:
        """The v2 chat contract: ``client.v2.completion(...)``, ``client.v2.completion_stream(...)``."""
        return AsyncChatV2(self)

    # --- tokens --------------------------------------------------------------------------

    async def create_token(self) -> AccessToken:
        """Fetch a new access token now (it also goes into the shared cache)."""
        return await self._run(auth_ops.create_token(self._core))

    # --- API -----------------------------------------------------------------------------

    async def all_models(self, **options: Unpack[RequestOptions]) -> Models:
        """List the models available to the account."""
        return await self._run(models_ops.all_models(self._core, options))

    async def get_model(self, name: str, **options: Unpack[RequestOptions]) -> Model:
        """Describe one model (NotFoundError for an unknown name)."""
        return await self._run(models_ops.get_model(self._core, name, options))

    async def completion(
        self, messages: str | Sequence[Any] | None = None, /, **params: Unpack[ChatParams]
    ) -> ChatCompletion:
        """Generate an answer: ``await completion("Hi")`` or ``await completion([{...}, ...], temperature=0.5)``."""
        return await self._run(chat_ops.completion(self._core, messages, params))

    def completion_stream(
        self, messages: str | Sequence[Any] | None = None, /, **params: Unpack[ChatParams]
    ) -> hooks.StreamRequest[AsyncChatStream]:
        """Generate an answer as a stream of chunks (use it in an ``async with`` block)."""
        flow = chat_ops.completion_stream(self._core, messages, params)  # arguments are checked here

        async def open_stream() -> AsyncChatStream:
            return self._transport.stream(await self._run(flow))

        return hooks.open_stream_async(open_stream)

    async def embedding(
        self, input: str | Sequence[str], *, model: str = "Embeddings", **options: Unpack[RequestOptions]
    ) -> Embeddings:
        """Embed one text or a list of texts."""
        return await self._run(embeddings_ops.embedding(self._core, input, model, options))

    async def count_tokens(
        self, input: str | Sequence[str], *, model: str | None = None, **options: Unpack[RequestOptions]
    ) -> list[TokensCount]:
        """Count the tokens of each text for a model (default: the client's model)."""
        return await self._run(embeddings_ops.count_tokens(self._core, input, model, options))

    async def upload_file(
        self,
        file: str | os.PathLike[str] | bytes | IO[bytes],
        *,
        purpose: str = "general",
        filename: str | None = None,
        content_type: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> File:
        """Upload a file (path, bytes or binary file object), checked against the limits first."""
        return await self._run(files_ops.upload_file(self._core, file, purpose, filename, content_type, options))

    async def get_all_files(self, **options: Unpack[RequestOptions]) -> list[File]:
        """List the account's files."""
        return await self._run(files_ops.get_all_files(self._core, options))

    async def get_file_info(self, file_id: str, **options: Unpack[RequestOptions]) -> File:
        """Describe one file."""
        return await self._run(files_ops.get_file_info(self._core, file_id, options))

    async def delete_file(self, file_id: str, **options: Unpack[RequestOptions]) -> DeletedFile:
        """Delete a file."""
        return await self._run(files_ops.delete_file(self._core, file_id, options))

    @overload
    async def download_file(self, file_id: str, path: None = None, **options: Unpack[RequestOptions]) -> bytes: ...

    @overload
    async def download_file(
        self, file_id: str, path: str | os.PathLike[str], **options: Unpack[RequestOptions]
    ) -> Path: ...

    async def download_file(
        self, file_id: str, path: str | os.PathLike[str] | None = None, **options: Unpack[RequestOptions]
    ) -> bytes | Path:
        """A file's content as bytes, or streamed into ``path`` (written atomically)."""
        target = None if path is None else os.fspath(path)
        return await self._run(files_ops.download_file(self._core, file_id, target, options))

    async def get_balance(self, **options: Unpack[RequestOptions]) -> Balance:
        """Remaining prepaid tokens (PermissionDeniedError on pay-as-you-go)."""
        return await self._run(misc_ops.get_balance(self._core, options))

    async def check_ai(
        self, text: str, *, model: str = "GigaCheckClassification", **options: Unpack[RequestOptions]
    ) -> AICheckResult:
        """Tell whether a text was written by AI."""
        return await self._run(misc_ops.check_ai(self._core, text, model, options))

    async def validate_function(
        self, function: Mapping[str, Any] | Any, **options: Unpack[RequestOptions]
    ) -> FunctionValidationResult:
        """Ask the service whether a function definition is valid."""
        return await self._run(misc_ops.validate_function(self._core, function, options))

    async def convert_functions(
        self, openapi: str | bytes | os.PathLike[str] | Mapping[str, Any], **options: Unpack[RequestOptions]
    ) -> ConvertedFunctions:
        """Function definitions from an OpenAPI document (its text, a path to it, or the parsed dict), one
        per operation."""
        return await self._run(misc_ops.convert_functions(self._core, openapi, options))

    async def check_filter(
        self,
        messages: str | Sequence[Message | Mapping[str, Any]],
        *,
        model: str = "GigaFilter",
        settings: Mapping[str, bool] | None = None,
        **options: Unpack[RequestOptions],
    ) -> FilterCheckResult:
        """Check messages against the account's topic restrictions (``settings``: neuro, blacklist,
        whitelist switches, all on by default)."""
        return await self._run(misc_ops.check_filter(self._core, messages, model, settings, options))

    async def create_batch(
        self, requests: Any, *, method: str = "chat_completions", **options: Unpack[RequestOptions]
    ) -> Batch:
        """Submit a batch: a JSONL path or bytes, or a list of ``{"id", "request"}`` dicts."""
        return await self._run(batches_ops.create_batch(self._core, requests, method, options))

    async def get_batches(self, **options: Unpack[RequestOptions]) -> list[Batch]:
        """List the account's batches."""
        return await self._run(batches_ops.get_batches(self._core, options))

    async def get_batch(self, batch_id: str, **options: Unpack[RequestOptions]) -> Batch:
        """Describe one batch."""
        return await self._run(batches_ops.get_batch(self._core, batch_id, options))

    async def wait_for_batch(
        self,
        batch_id: str,
        *,
        poll_interval: float = 5.0,
        max_wait: float | None = None,
        **options: Unpack[RequestOptions],
    ) -> Batch:
        """Poll a batch until it is done (APITimeoutError after ``max_wait`` seconds)."""
        return await self._run(batches_ops.wait_for_batch(self._core, batch_id, poll_interval, max_wait, options))

    async def get_batch_results(self, batch: str | Batch, **options: Unpack[RequestOptions]) -> list[BatchResult]:
        """The per-request results of a finished batch."""
        return await self._run(batches_ops.get_batch_results(self._core, batch, options))

    # --- helpers -------------------------------------------------------------------------

    async def run_tools(
        self,
        messages: str | Sequence[Any],
        /,
        *,
        tools: Sequence[Callable[..., Any] | Tool],
        max_steps: int = 5,
        **params: Unpack[ChatParams],
    ) -> ToolRun:
        """Let the model call Python functions (plain or coroutine functions) until it answers.

        Returns a ToolRun (``.text``, ``.completion``, ``.messages``, ``.calls``); raises
        ToolLoopError after ``max_steps`` rounds of function calls.
        """
        core = self._core

        def ask(history: list[Any], specs: list[dict[str, Any]]) -> Flow[Any]:
            call = {**params, "functions": specs, "function_call": params.get("function_call", "auto")}
            return chat_ops.completion(core, history, call)

        return await self._run(
            run_tools_flow(
                ask, messages, tools, max_steps=max_steps, v2=False, dialect=chat_ops.schema_dialect_of(core, params)
            )
        )

    async def parse(
        self,
        messages: str | Sequence[Any],
        /,
        *,
        response_format: type[M],
        method: str = "auto",
        **params: Unpack[ChatFields],
    ) -> M:
        """Ask for structured output; returns a validated ``response_format`` (a pydantic model).

        ``method``: "json_schema" (native), "function" (forced function call) or "auto"
        (native, falling back to a function call when the model does not support it).
        Raises StructuredOutputError (raw text and usage kept) or LengthFinishReasonError.
        """
        core = self._core

        def ask(history: list[Any], extra: dict[str, Any]) -> Flow[Any]:
            return chat_ops.completion(core, history, {**params, **extra})

        return await self._run(
            parse_flow(
                ask,
                messages,
                response_format,
                method=method,
                v2=False,
                dialect=chat_ops.schema_dialect_of(core, params),
            )
        )

    @overload
    async def generate_image(
        self, prompt: str, path: None = None, *, style: str | None = None, **params: Unpack[ImageParams]
    ) -> bytes: ...

    @overload
    async def generate_image(
        self, prompt: str, path: str | os.PathLike[str], *, style: str | None = None, **params: Unpack[ImageParams]
    ) -> Path: ...

    async def generate_image(
        self,
        prompt: str,
        path: str | os.PathLike[str] | None = None,
        *,
        style: str | None = None,
        **params: Unpack[ImageParams],
    ) -> bytes | Path:
        """Draw ``prompt``: the JPEG bytes, or the file written at ``path``. ``style`` is a system
        prompt (e.g. "Ты художник-акварелист"). ImageGenerationError if the model did not draw."""
        target = None if path is None else os.fspath(path)
        return await self._run(generate_image_flow(self._core, prompt, target, style, params))

    async def attach(
        self,
        *sources: str | os.PathLike[str] | bytes | IO[bytes],
        purpose: str = "general",
        **options: Unpack[RequestOptions],
    ) -> list[str]:
        """Upload files for ``attachments=`` (type and size checked first); the same content is
        uploaded only once per account. Returns the file ids."""
        return await self._run(attach_flow(self._core, sources, purpose, options))

    @overload
    async def embed_many(
        self,
        texts: Sequence[str],
        *,
        model: str = ...,
        batch_size: int = ...,
        max_batch_tokens: int = ...,
        concurrency: int | None = ...,
        batch_retries: int = ...,
        as_numpy: Literal[False] = False,
        **options: Unpack[RequestOptions],
    ) -> list[list[float]]: ...

    @overload
    async def embed_many(
        self,
        texts: Sequence[str],
        *,
        model: str = ...,
        batch_size: int = ...,
        max_batch_tokens: int = ...,
        concurrency: int | None = ...,
        batch_retries: int = ...,
        as_numpy: Literal[True],
        **options: Unpack[RequestOptions],
    ) -> Any: ...

    async def embed_many(
        self,
        texts: Sequence[str],
        *,
        model: str = "Embeddings",
        batch_size: int = 100,
        max_batch_tokens: int = 16_000,
        concurrency: int | None = None,
        batch_retries: int = 2,
        as_numpy: bool = False,
        **options: Unpack[RequestOptions],
    ) -> Any:
        """Embed any number of texts: batches by count and token budget, run concurrently, input
        order kept, only failed batches retried. Lists of floats, or a numpy array."""
        items, spans = embeddings_ops.plan(texts, batch_size, max_batch_tokens)
        # None: as many as the client's concurrency gate lets through (the account's limit)
        workers = 32 if concurrency is None else int(P.number(concurrency, "concurrency", low=1, integer=True))
        P.number(batch_retries, "batch_retries", low=0, integer=True)
        repeat = self._core.policy.retry_non_idempotent  # embeddings are billed: the client's rule

        async def one(span: tuple[int, int]) -> Embeddings:
            for attempt in range(batch_retries + 1):
                try:
                    return await self.embedding(items[span[0] : span[1]], model=model, **options)
                except GigaChatError as exc:
                    if attempt == batch_retries or not embeddings_ops.retryable(exc, repeat):
                        raise
                    await hooks.sleep_async(self._core.policy.backoff(attempt))
            raise AssertionError("unreachable")

        batches = await hooks.map_bounded_async(one, spans, workers)
        return embeddings_ops.assemble(batches, as_numpy)

    def conversation(
        self, system: str | None = None, *, max_context_tokens: int | None = None, **defaults: Unpack[ChatParams]
    ) -> AsyncConversation:
        """A chat that keeps its history and one X-Session-ID (``await conv.say("...")``); ``defaults``
        (model, temperature, session_id, ...) apply to every turn."""
        return AsyncConversation(self, ConversationState(system, max_context_tokens, defaults))


#: The names these classes had before the sync/async pairs were made consistent.  # unasync: async only
AssistantsAPI = AsyncAssistantsAPI  # unasync: async only
ThreadsAPI = AsyncThreadsAPI  # unasync: async only
