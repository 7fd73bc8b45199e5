"""``GigaChat``: the synchronous client (httpx driver).

The driver executes the actions of the shared flows in ``_api``/``_core``: it sends
requests with httpx, sleeps with ``time.sleep`` and fetches tokens through the
process-wide cache. Nothing about the API itself is decided here.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal, TypeVar, overload

import httpx

try:  # private to httpx: the fast path below is used only where it exists
    from httpx._transports.default import map_httpcore_exceptions
except ImportError:  # pragma: no cover - a future httpx: the public path only
    map_httpcore_exceptions = None  # type: ignore[assignment]
from pydantic import BaseModel, SecretStr
from typing_extensions import Self, Unpack

from . import _api as api
from . import _embed
from . import _httpx_deadlines as HD
from . import _params as P
from . import _threads as TH
from ._api import (
    ChatFields,
    ChatParams,
    ChatV2Base,
    ChatV2Params,
    ImageParams,
    OpenStream,
    RequestOptions,
)
from ._client import BaseClient, ClientSettings
from ._config import Settings, Timeout, load_settings, secret_args
from ._conversation import Conversation, ConversationState
from ._core import (
    AttemptDeadline,
    Blocking,
    Flow,
    GetToken,
    Invoke,
    InvokeFailed,
    Request,
    Response,
    Send,
    Sleep,
    StreamDeadline,
    TransportFailure,
    client_cert_alert,
)
from ._files import _Seekable
from ._logs import setup_logging
from ._media import attach_flow, generate_image_flow
from ._streaming import Stream, TransportBroken
from ._structured import parse_flow
from ._tls import client_ssl_context, tls_key
from .errors import GigaChatError
from .tools import Tool, ToolRun, run_tools_flow
from .types import (
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

if TYPE_CHECKING:
    import httpcore

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

ChatStream = Stream[ChatCompletionChunk, ChatCompletion]
ChatV2Stream = Stream[ChatCompletionV2Chunk, ChatCompletionV2]
ThreadStream = Stream[ThreadCompletionChunk, ChatCompletion]


def _failure(exc: Exception, url: str) -> TransportFailure:
    """Map an httpx exception to the core's transport failure."""
    refused = client_cert_alert(exc)
    if refused is not None:  # arrives on connect (TLS 1.2) or on the first read (TLS 1.3)
        return TransportFailure("client_cert", refused, sent=not isinstance(exc, httpx.ConnectError),
                                host=httpx.URL(url).host)
    if isinstance(exc, httpx.ConnectTimeout):
        return TransportFailure("connect_timeout", exc, sent=False)
    if isinstance(exc, httpx.PoolTimeout):
        return TransportFailure("pool_timeout", exc, sent=False)
    if isinstance(exc, httpx.ReadTimeout):
        return TransportFailure("read_timeout", exc, sent=True)
    if isinstance(exc, httpx.WriteTimeout):
        return TransportFailure("write_timeout", exc, sent=True)
    if isinstance(exc, httpx.ConnectError):
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ssl.SSLCertVerificationError):
                return TransportFailure("tls", cause, sent=False, host=httpx.URL(url).host)
            cause = cause.__cause__ or cause.__context__
        return TransportFailure("connect", exc, sent=False)
    if isinstance(exc, httpx.RemoteProtocolError):
        return TransportFailure("disconnect", exc, sent=True)
    return TransportFailure("network", exc, sent=True)


def _invoke(action: Invoke) -> Any:
    """Call user code for a flow; an async function is run to completion in a fresh loop."""
    try:
        value = action.fn(**action.kwargs)
        if inspect.isawaitable(value):
            value = asyncio.run(_await(value))
        return value
    except Exception as exc:  # handed to the flow, which decides
        return InvokeFailed(exc)


async def _await(value: Awaitable[Any]) -> Any:
    return await value


_AUTO_HEADERS = frozenset({"host", "content-length", "transfer-encoding"})


def _hc_headers(req: Request, host: bytes) -> list[tuple[bytes, bytes]]:
    """httpcore's header list for ``req``, as httpx would build it (the values were checked as
    ASCII when the request was built)."""
    headers = [(b"Host", host)]
    headers += [(key.encode("ascii"), value.encode("ascii")) for key, value in req.wire_headers().items()]
    content = req.content
    if content:
        headers.append((b"Content-Length", str(len(content)).encode()))
    elif req.method in ("POST", "PUT", "PATCH"):
        headers.append((b"Content-Length", b"0"))
    return headers


def _mapped_failure(exc: Exception, url: str) -> TransportFailure:
    """An httpcore exception as httpx.Client.send would have raised it, as a TransportFailure
    (anything else propagates unchanged)."""
    try:
        with map_httpcore_exceptions():
            raise exc
    except httpx.TransportError as mapped:
        return _failure(mapped, url)
_UNKNOWN = object()


class HttpxTransport:
    """One httpx connection pool, shared by a client and its ``with_options`` copies."""

    def __init__(self, settings: Settings, http_client: httpx.Client | None = None) -> None:
        self.tls_key = tls_key(settings)
        if http_client is not None:
            self.client = http_client
        else:
            ctx = client_ssl_context(settings)
            limits = httpx.Limits(max_connections=settings.max_connections,
                                  max_keepalive_connections=settings.max_connections)
            self.client = httpx.Client(verify=ctx if ctx is not None else False, limits=limits,
                                       follow_redirects=False, trust_env=True)
            HD.install(self.client)  # deadlines a trickle cannot defeat (see _httpx_deadlines)
        self._timeouts: dict[Timeout, dict[str, float | None]] = {}
        # Plain requests on our own client go straight to the httpcore pool httpx would use.
        # (httpx imports httpcore when it builds its transport; importing it at module level
        # would add it to `from gigapy import GigaChat`.)
        self._direct = http_client is None and map_httpcore_exceptions is not None
        if self._direct:
            import httpcore

            self._hc_url, self._hc_request = httpcore.URL, httpcore.Request
        self._routes: dict[str, tuple[Any, httpcore.URL, bytes] | None] = {}

    def _timeout(self, req: Request) -> dict[str, float | None]:
        t = req.timeout
        ext = self._timeouts.get(t)
        if ext is None:
            ext = self._timeouts[t] = {"connect": t.connect, "read": t.read, "write": t.write, "pool": t.pool}
        if req.deadline is not None:  # waiting for a pooled connection counts against the call's deadline
            left = max(req.deadline - time.monotonic(), 1e-3)
            ext = {**ext, "pool": left if t.pool is None else min(t.pool, left)}
        return ext

    def _build(self, req: Request) -> tuple[httpx.Request, IO[bytes] | None]:
        files = data = None
        opened: IO[bytes] | None = None
        if req.file is not None:
            src = req.file.source
            if isinstance(src, _Seekable):
                body: Any = src.rewind()
            elif isinstance(src, str):
                body = opened = open(src, "rb")  # noqa: SIM115 - closed in send()
            else:
                body = src
            files = {req.file.field: (req.file.filename, body, req.file.content_type)}
            data = req.form
        hreq = httpx.Request(req.method, req.url, params=req.params, headers=req.wire_headers(), content=req.content,
                             files=files, data=data, extensions={"timeout": self._timeout(req)})
        return hreq, opened

    def _route(self, url: str) -> tuple[Any, httpcore.URL, bytes] | None:
        """(httpcore pool, URL, Host) that ``httpx.Client.send`` would use for ``url``; None when
        the request must go through httpx (a mounted or custom transport)."""
        found = self._routes.get(url, _UNKNOWN)
        if found is not _UNKNOWN:
            return found  # type: ignore[return-value]
        hurl = httpx.URL(url)
        finder = getattr(self.client, "_transport_for_url", None)
        if finder is None:  # pragma: no cover - a future httpx without this internal
            return None
        transport = finder(hurl)
        pool = getattr(transport, "_pool", None) if type(transport) is httpx.HTTPTransport else None
        route = None
        if pool is not None and hurl.host:
            route = (pool, self._hc_url(scheme=hurl.raw_scheme, host=hurl.raw_host, port=hurl.port,
                                        target=hurl.raw_path), hurl.netloc)
        if len(self._routes) >= 256:
            self._routes.clear()
        self._routes[url] = route
        return route

    def _send_direct(self, req: Request) -> Response | TransportFailure | None:
        """A plain request (no stream, file, download or query) sent through the httpcore pool
        directly: the same connections, TLS, proxies, timeouts and exceptions as
        ``httpx.Client.send``, without httpx's request/response models, auth and redirect
        machinery and cookie jar (about 40% of the client's CPU per request). None when
        this request needs the general path."""
        route = self._route(req.url)
        if route is None or self.client.is_closed:
            return None
        pool, url, host = route
        content = req.content
        if not _AUTO_HEADERS.isdisjoint(key.lower() for key in req.headers):
            return None
        # the header list (Authorization included) goes straight into httpcore: no local holds it
        hreq = self._hc_request(req.method, url, headers=_hc_headers(req, host), content=content or b"",
                                extensions={"timeout": self._timeout(req)})
        try:
            hresp = pool.handle_request(hreq)
            try:
                body = hresp.read()
            finally:
                hresp.close()
        except Exception as exc:  # mapped to httpx's exception only when there is one
            return _mapped_failure(exc, req.url)
        resp_headers = httpx.Headers(hresp.headers)
        for name, _ in hresp.headers:
            if name.lower() == b"content-encoding":  # decoded as httpx would (we never ask for it)
                body = httpx.Response(hresp.status, headers=resp_headers, stream=httpx.ByteStream(body)).read()
                break
        return Response(hresp.status, resp_headers, body, req.method, req.url)

    def send(self, req: Request) -> Response | TransportFailure:
        """Send one request; the body is read unless it is a stream or a download. The whole
        attempt is bounded by its deadline (the response within ``read`` seconds of the
        connection being ready, and the call's total deadline)."""
        limit = AttemptDeadline(req, time.monotonic)
        previous = HD.enter(limit)
        try:
            outcome = self._send(req)
        finally:
            HD.leave(previous)
        if type(outcome) is TransportFailure and outcome.kind.endswith("timeout") and limit.phase() == "total":
            outcome.kind = "total_timeout"
        return outcome

    def _send(self, req: Request) -> Response | TransportFailure:
        if (self._direct and not req.stream and req.file is None and req.download_to is None
                and req.params is None and req.form is None):
            direct = self._send_direct(req)
            if direct is not None:
                return direct
        try:
            hreq, opened = self._build(req)
        except OSError as exc:
            return TransportFailure("network", exc, sent=False)
        streaming = req.stream or req.download_to is not None
        try:
            resp = self.client.send(hreq, stream=streaming)
        except httpx.TransportError as exc:
            return _failure(exc, req.url)
        finally:
            if opened is not None:
                opened.close()
        try:
            if streaming and resp.status_code < 400:
                if req.download_to is None:
                    return Response(resp.status_code, resp.headers, b"", req.method, req.url, raw=resp)
                self._download(resp, req.download_to)
                return Response(resp.status_code, resp.headers, b"", req.method, req.url)
            if streaming:
                resp.read()
            return Response(resp.status_code, resp.headers, resp.content, req.method, req.url)
        except httpx.TransportError as exc:
            return _failure(exc, req.url)
        finally:
            if streaming and not (req.stream and resp.status_code < 400):
                resp.close()

    @staticmethod
    def _download(resp: httpx.Response, target: str) -> None:
        part = f"{target}.part"
        try:
            with open(part, "wb") as fh:
                for chunk in resp.iter_bytes():
                    fh.write(chunk)
            os.replace(part, target)
        except BaseException:
            Path(part).unlink(missing_ok=True)
            raise

    def stream(self, opened: OpenStream) -> Stream[Any, Any]:
        """Wrap an open streaming response into a typed Stream. Every read waits at most until
        the stream's deadline: ``read`` seconds for the next *event* (bytes that complete none
        do not reset it), and the call's total deadline."""
        resp: httpx.Response = opened.response.raw
        url = opened.response.url
        deadline = StreamDeadline(opened.read, opened.deadline, time.monotonic)

        def broken(failure: TransportFailure) -> TransportBroken:
            if failure.kind.endswith("timeout") and deadline.phase() == "total":
                failure.kind = "total_timeout"
            return TransportBroken(failure)

        def chunks() -> Iterator[bytes]:
            raw = resp.iter_bytes()
            while True:
                until = deadline.until()
                if until is not None and time.monotonic() >= until:  # also where the bounded backend is missing
                    raise broken(TransportFailure("read_timeout", httpx.ReadTimeout("no event in time"), sent=True))
                previous = HD.enter(deadline)
                try:
                    data = next(raw, None)
                except httpx.TransportError as exc:
                    raise broken(_failure(exc, url)) from exc
                finally:
                    HD.leave(previous)
                if data is None:
                    return
                yield data

        return Stream(opened.state, chunks(), resp.close, deadline)

    def close(self) -> None:
        """Close every pooled connection."""
        self.client.close()


class ChatV2:
    """``client.v2``: the v2 chat contract (content parts, built-in tools, named stream events)."""

    __slots__ = ("_client",)

    def __init__(self, client: GigaChat) -> None:
        self._client = client

    def completion(self, messages: str | Sequence[Any] | None = None, /,
                   **params: Unpack[ChatV2Params]) -> ChatCompletionV2:
        """``POST /v2/chat/completions``: ``client.v2.completion("Hi", tools=["web_search"])``."""
        client = self._client
        return client._run(api.v2_completion(client._core, messages, params))

    def completion_stream(self, messages: str | Sequence[Any] | None = None, /,
                          **params: Unpack[ChatV2Params]) -> ChatV2Stream:
        """The v2 answer as a stream of named events (use it in a ``with`` block)."""
        client = self._client
        return client._transport.stream(client._run(api.v2_completion_stream(client._core, messages, params)))

    def run_tools(self, messages: str | Sequence[Any], /, *, tools: Sequence[Callable[..., Any] | Tool],
                  max_steps: int = 5, **params: Unpack[ChatV2Base]) -> ToolRun:
        """Let the model call Python functions until it answers (see gigapy.tools)."""
        core = self._client._core

        def ask(history: list[Any], specs: list[dict[str, Any]]) -> Flow[Any]:
            return api.v2_completion(core, history, {**params, "functions": specs})

        return self._client._run(run_tools_flow(ask, messages, tools, max_steps=max_steps, v2=True,
                                                   dialect=api.schema_dialect_of(core, params)))

    def parse(self, messages: str | Sequence[Any], /, *, response_format: type[M], method: str = "auto",
              **params: Unpack[ChatV2Base]) -> M:
        """Ask for a validated ``response_format`` object (see ``GigaChat.parse``)."""
        core = self._client._core

        def ask(history: list[Any], extra: dict[str, Any]) -> Flow[Any]:
            return api.v2_completion(core, history, {**params, **extra})

        return self._client._run(parse_flow(ask, messages, response_format, method=method, v2=True,
                                                   dialect=api.schema_dialect_of(core, params)))


class AssistantsAPI:
    """``client.assistants``: a saved model, instructions, files and functions to run threads with."""

    __slots__ = ("_client",)

    def __init__(self, client: GigaChat) -> None:
        self._client = client

    def list(self, **options: Unpack[RequestOptions]) -> Assistants:
        """Every assistant of the account."""
        return self._client._run(TH.list_assistants(self._client._core, options))

    def get(self, assistant_id: str, **options: Unpack[RequestOptions]) -> Assistant:
        """One assistant (NotFoundError if there is no such assistant)."""
        return self._client._run(TH.get_assistant(self._client._core, assistant_id, options))

    def create(self, *, name: str, model: str | None = None, instructions: str | None = None,
               description: str | None = None, file_ids: Sequence[str] | None = None,
               functions: Sequence[Any] | None = None, metadata: Mapping[str, Any] | None = None,
               **options: Unpack[RequestOptions]) -> CreatedAssistant:
        """Create an assistant (model defaults to the client's)."""
        fields = {"instructions": instructions, "description": description, "file_ids": file_ids,
                  "functions": functions, "metadata": metadata}
        return self._client._run(TH.create_assistant(self._client._core, model, name, fields, options))

    def update(self, assistant_id: str, *, name: str | None = None, instructions: str | None = None,
               description: str | None = None, file_ids: Sequence[str] | None = None,
               functions: Sequence[Any] | None = None, metadata: Mapping[str, Any] | None = None,
               **options: Unpack[RequestOptions]) -> Assistant:
        """Change the given fields of an assistant."""
        fields = {"name": name, "instructions": instructions, "description": description,
                  "file_ids": file_ids, "functions": functions, "metadata": metadata}
        return self._client._run(TH.update_assistant(self._client._core, assistant_id, fields, options))

    def delete(self, assistant_id: str, **options: Unpack[RequestOptions]) -> DeletedAssistant:
        """Delete an assistant."""
        return self._client._run(TH.delete_assistant(self._client._core, assistant_id, options))

    def delete_file(self, assistant_id: str, file_id: str,
                    **options: Unpack[RequestOptions]) -> DeletedAssistantFile:
        """Detach a file from an assistant."""
        core = self._client._core
        return self._client._run(TH.delete_assistant_file(core, assistant_id, file_id, options))


class ThreadsAPI:
    """``client.threads``: conversations stored by the service, and runs over them."""

    __slots__ = ("_client",)

    def __init__(self, client: GigaChat) -> None:
        self._client = client

    def list(self, *, assistants_ids: Sequence[str] | None = None, limit: int | None = None,
             before: int | None = None, **options: Unpack[RequestOptions]) -> Threads:
        """The account's threads (optionally of some assistants)."""
        core = self._client._core
        return self._client._run(TH.list_threads(core, assistants_ids, limit, before, options))

    def create(self, **options: Unpack[RequestOptions]) -> Thread:
        """An empty thread."""
        return self._client._run(TH.create_thread(self._client._core, options))

    def retrieve(self, threads_ids: Sequence[str], **options: Unpack[RequestOptions]) -> Threads:
        """Several threads by id."""
        return self._client._run(TH.retrieve_threads(self._client._core, threads_ids, options))

    def delete(self, thread_id: str, **options: Unpack[RequestOptions]) -> bool:
        """Delete a thread."""
        return self._client._run(TH.delete_thread(self._client._core, thread_id, options))

    def get_messages(self, thread_id: str, *, limit: int | None = None, before: int | None = None,
                     **options: Unpack[RequestOptions]) -> ThreadMessages:
        """A thread's messages."""
        return self._client._run(TH.get_messages(self._client._core, thread_id, limit, before, options))

    def add_messages(self, messages: str | Sequence[Any], *, thread_id: str | None = None,
                     assistant_id: str | None = None, model: str | None = None,
                     **options: Unpack[RequestOptions]) -> ThreadMessages:
        """Append messages to a thread (a new one when ``thread_id`` is not given)."""
        core = self._client._core
        return self._client._run(TH.add_messages(core, messages, thread_id, assistant_id, model, options))

    def run(self, thread_id: str, *, assistant_id: str | None = None,
            **params: Unpack[TH.RunOptions]) -> ThreadRunResponse:
        """Start a run over the thread in the background (see ``get_run``)."""
        return self._client._run(TH.run_thread(self._client._core, thread_id, assistant_id, params))

    def get_run(self, thread_id: str, **options: Unpack[RequestOptions]) -> ThreadRunResult:
        """The state of a thread's run and the messages it produced."""
        return self._client._run(TH.get_run(self._client._core, thread_id, options))

    def run_stream(self, thread_id: str, *, assistant_id: str | None = None,
                         **params: Unpack[TH.RunOptions]) -> ThreadStream:
        """Run the thread and stream the answer."""
        client = self._client
        return client._transport.stream(client._run(TH.run_stream(client._core, thread_id, assistant_id, params)))

    def run_messages(self, messages: str | Sequence[Any], *, thread_id: str | None = None,
                     assistant_id: str | None = None, model: str | None = None,
                     **params: Unpack[TH.RunOptions]) -> ThreadCompletion:
        """Add messages and answer them in one call (a new thread when ``thread_id`` is not given)."""
        core = self._client._core
        return self._client._run(TH.run_messages(core, messages, thread_id, assistant_id, model, params))

    def run_messages_stream(self, messages: str | Sequence[Any], *, thread_id: str | None = None,
                                  assistant_id: str | None = None, model: str | None = None,
                                  **params: Unpack[TH.RunOptions]) -> ThreadStream:
        """Add messages and stream the answer."""
        client = self._client
        flow = TH.run_messages_stream(client._core, messages, thread_id, assistant_id, model, params)
        return client._transport.stream(client._run(flow))

    def rerun_messages(self, thread_id: str, **params: Unpack[TH.RunOptions]) -> ThreadCompletion:
        """Regenerate the thread's last answer."""
        return self._client._run(TH.rerun_messages(self._client._core, thread_id, params))

    def rerun_messages_stream(self, thread_id: str, **params: Unpack[TH.RunOptions]) -> ThreadStream:
        """Regenerate the thread's last answer as a stream."""
        client = self._client
        return client._transport.stream(client._run(TH.rerun_messages_stream(client._core, thread_id, params)))


class GigaChat(BaseClient[HttpxTransport]):
    """The synchronous GigaChat client.

    Every setting can also come from the ``GIGACHAT_*`` environment variable of the same
    name (the official SDK's names). A client is cheap to share between threads; create
    one per process and reuse it. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, *, http_client: httpx.Client | None = None, **settings: Unpack[ClientSettings]) -> None:
        args = secret_args(settings)
        del settings  # the raw keyword arguments: no secret stays in a local of this frame
        setup_logging()
        resolved = load_settings(args)
        self._setup(resolved, HttpxTransport(resolved, http_client), owns=http_client is None)

    def _new_transport(self, settings: Settings) -> HttpxTransport:
        return HttpxTransport(settings)

    # --- driver ------------------------------------------------------------------------

    def _run(self, flow: Flow[T]) -> T:
        send = flow.send
        result: Any = None
        try:
            while True:
                action = send(result)
                kind = type(action)
                if kind is Send:
                    fleet = self._fleet
                    result = (self._transport.send(action.request) if fleet is None
                              else fleet.send_sync(self._transport.send, action.request, self._bearer_now))
                elif kind is GetToken:
                    result = self._token(action.stale)
                elif kind is Sleep:
                    time.sleep(action.seconds)
                    result = None
                elif kind is Blocking:
                    result = action.fn()
                elif kind is Invoke:
                    result = _invoke(action)
                else:  # pragma: no cover - a programming error in a flow
                    raise TypeError(f"unknown action {action!r}")
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def _bearer_now(self) -> SecretStr:
        return self._token(None)

    def _token(self, stale: SecretStr | None) -> SecretStr:
        tokens = self._core.tokens
        token = tokens.without_io(stale)
        if token is not None:
            return token
        assert tokens.entry is not None
        if self._fleet is not None:
            return self._fleet.token_sync(tokens.entry, lambda: self._run(self._core.fetch_token()), stale)
        return tokens.entry.get_sync(lambda: self._run(self._core.fetch_token()), stale)

    # --- lifecycle -----------------------------------------------------------------------

    def with_options(self, **overrides: Unpack[ClientSettings]) -> GigaChat:
        """A client with some settings changed that shares this one's connection pool and
        token cache (a new pool only when TLS settings change)."""
        args = secret_args(overrides)
        del overrides  # no secret stays in a local of this frame
        return self._copy(args)

    def close(self) -> None:
        """Close the connection pool (copies made by ``with_options`` leave it to the owner)."""
        if self._owns_transport:
            self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def assistants(self) -> AssistantsAPI:
        """Assistants: ``client.assistants.create(...)``, ``.list()``, ``.update(...)``, ..."""
        return AssistantsAPI(self)

    @property
    def threads(self) -> ThreadsAPI:
        """Threads: ``client.threads.run_messages(...)``, ``.get_messages(...)``, ..."""
        return ThreadsAPI(self)

    @property
    def v2(self) -> ChatV2:
        """The v2 chat contract: ``client.v2.completion(...)``, ``client.v2.completion_stream(...)``."""
        return ChatV2(self)

    # --- tokens --------------------------------------------------------------------------

    def create_token(self) -> AccessToken:
        """Fetch a new access token now (it also goes into the shared cache)."""
        return self._run(api.create_token(self._core))

    # --- API -----------------------------------------------------------------------------

    def all_models(self, **options: Unpack[RequestOptions]) -> Models:
        """List the models available to the account."""
        return self._run(api.all_models(self._core, options))

    def get_model(self, name: str, **options: Unpack[RequestOptions]) -> Model:
        """Describe one model (NotFoundError for an unknown name)."""
        return self._run(api.get_model(self._core, name, options))

    def completion(self, messages: str | Sequence[Any] | None = None, /,
                   **params: Unpack[ChatParams]) -> ChatCompletion:
        """Generate an answer: ``completion("Hi")`` or ``completion([{...}, ...], temperature=0.5)``."""
        return self._run(api.completion(self._core, messages, params))

    def completion_stream(self, messages: str | Sequence[Any] | None = None, /,
                          **params: Unpack[ChatParams]) -> ChatStream:
        """Generate an answer as a stream of chunks (use it in a ``with`` block)."""
        return self._transport.stream(self._run(api.completion_stream(self._core, messages, params)))

    def embedding(self, input: str | Sequence[str], *, model: str = "Embeddings",
                  **options: Unpack[RequestOptions]) -> Embeddings:
        """Embed one text or a list of texts."""
        return self._run(api.embedding(self._core, input, model, options))

    def count_tokens(self, input: str | Sequence[str], *, model: str | None = None,
                     **options: Unpack[RequestOptions]) -> list[TokensCount]:
        """Count the tokens of each text for a model (default: the client's model)."""
        return self._run(api.count_tokens(self._core, input, model, options))

    def upload_file(self, file: str | os.PathLike[str] | bytes | IO[bytes], *, purpose: str = "general",
                    filename: str | None = None, content_type: str | None = None,
                    **options: Unpack[RequestOptions]) -> File:
        """Upload a file (path, bytes or binary file object), checked against the limits first."""
        return self._run(api.upload_file(self._core, file, purpose, filename, content_type, options))

    def get_all_files(self, **options: Unpack[RequestOptions]) -> list[File]:
        """List the account's files."""
        return self._run(api.get_all_files(self._core, options))

    def get_file_info(self, file_id: str, **options: Unpack[RequestOptions]) -> File:
        """Describe one file."""
        return self._run(api.get_file_info(self._core, file_id, options))

    def delete_file(self, file_id: str, **options: Unpack[RequestOptions]) -> DeletedFile:
        """Delete a file."""
        return self._run(api.delete_file(self._core, file_id, options))

    @overload
    def download_file(self, file_id: str, path: None = None, **options: Unpack[RequestOptions]) -> bytes: ...

    @overload
    def download_file(self, file_id: str, path: str | os.PathLike[str], **options: Unpack[RequestOptions]) -> Path: ...

    def download_file(self, file_id: str, path: str | os.PathLike[str] | None = None,
                      **options: Unpack[RequestOptions]) -> bytes | Path:
        """A file's content as bytes, or streamed into ``path`` (written atomically)."""
        target = None if path is None else os.fspath(path)
        return self._run(api.download_file(self._core, file_id, target, options))

    def get_balance(self, **options: Unpack[RequestOptions]) -> Balance:
        """Remaining prepaid tokens (PermissionDeniedError on pay-as-you-go)."""
        return self._run(api.get_balance(self._core, options))

    def check_ai(self, text: str, *, model: str = "GigaCheckClassification",
                 **options: Unpack[RequestOptions]) -> AICheckResult:
        """Tell whether a text was written by AI."""
        return self._run(api.check_ai(self._core, text, model, options))

    def validate_function(self, function: Mapping[str, Any] | Any,
                          **options: Unpack[RequestOptions]) -> FunctionValidationResult:
        """Ask the service whether a function definition is valid."""
        return self._run(api.validate_function(self._core, function, options))

    def convert_functions(self, openapi: str | bytes | os.PathLike[str] | Mapping[str, Any],
                         **options: Unpack[RequestOptions]) -> ConvertedFunctions:
        """Function definitions from an OpenAPI document (its text, a path to it, or the parsed dict), one
        per operation."""
        return self._run(api.convert_functions(self._core, openapi, options))

    def check_filter(self, messages: str | Sequence[Message | Mapping[str, Any]], *, model: str = "GigaFilter",
                     settings: Mapping[str, bool] | None = None,
                     **options: Unpack[RequestOptions]) -> FilterCheckResult:
        """Check messages against the account's topic restrictions (``settings``: neuro, blacklist,
        whitelist switches, all on by default)."""
        return self._run(api.check_filter(self._core, messages, model, settings, options))

    def create_batch(self, requests: Any, *, method: str = "chat_completions",
                     **options: Unpack[RequestOptions]) -> Batch:
        """Submit a batch: a JSONL path or bytes, or a list of ``{"id", "request"}`` dicts."""
        return self._run(api.create_batch(self._core, requests, method, options))

    def get_batches(self, **options: Unpack[RequestOptions]) -> list[Batch]:
        """List the account's batches."""
        return self._run(api.get_batches(self._core, options))

    def get_batch(self, batch_id: str, **options: Unpack[RequestOptions]) -> Batch:
        """Describe one batch."""
        return self._run(api.get_batch(self._core, batch_id, options))

    def wait_for_batch(self, batch_id: str, *, poll_interval: float = 5.0, max_wait: float | None = None,
                       **options: Unpack[RequestOptions]) -> Batch:
        """Poll a batch until it is done (APITimeoutError after ``max_wait`` seconds)."""
        return self._run(api.wait_for_batch(self._core, batch_id, poll_interval, max_wait, options))

    def get_batch_results(self, batch: str | Batch, **options: Unpack[RequestOptions]) -> list[BatchResult]:
        """The per-request results of a finished batch."""
        return self._run(api.get_batch_results(self._core, batch, options))

    # --- helpers -------------------------------------------------------------------------

    def run_tools(self, messages: str | Sequence[Any], /, *, tools: Sequence[Callable[..., Any] | Tool],
                  max_steps: int = 5, **params: Unpack[ChatParams]) -> ToolRun:
        """Let the model call Python functions (sync or async) until it answers.

        Returns a ToolRun (``.text``, ``.completion``, ``.messages``, ``.calls``); raises
        ToolLoopError after ``max_steps`` rounds of function calls.
        """
        core = self._core

        def ask(history: list[Any], specs: list[dict[str, Any]]) -> Flow[Any]:
            call = {**params, "functions": specs, "function_call": params.get("function_call", "auto")}
            return api.completion(core, history, call)

        return self._run(run_tools_flow(ask, messages, tools, max_steps=max_steps, v2=False,
                                             dialect=api.schema_dialect_of(core, params)))

    def parse(self, messages: str | Sequence[Any], /, *, response_format: type[M], method: str = "auto",
              **params: Unpack[ChatFields]) -> M:
        """Ask for structured output; returns a validated ``response_format`` (a pydantic model).

        ``method``: "json_schema" (native), "function" (forced function call) or "auto"
        (native, falling back to a function call when the model does not support it).
        Raises StructuredOutputError (raw text and usage kept) or LengthFinishReasonError.
        """
        core = self._core

        def ask(history: list[Any], extra: dict[str, Any]) -> Flow[Any]:
            return api.completion(core, history, {**params, **extra})

        return self._run(parse_flow(ask, messages, response_format, method=method, v2=False,
                                             dialect=api.schema_dialect_of(core, params)))

    @overload
    def generate_image(self, prompt: str, path: None = None, *, style: str | None = None,
                       **params: Unpack[ImageParams]) -> bytes: ...

    @overload
    def generate_image(self, prompt: str, path: str | os.PathLike[str], *, style: str | None = None,
                       **params: Unpack[ImageParams]) -> Path: ...

    def generate_image(self, prompt: str, path: str | os.PathLike[str] | None = None, *, style: str | None = None,
                       **params: Unpack[ImageParams]) -> bytes | Path:
        """Draw ``prompt``: the JPEG bytes, or the file written at ``path``. ``style`` is a system
        prompt (e.g. "Ты художник-акварелист"). ImageGenerationError if the model did not draw."""
        target = None if path is None else os.fspath(path)
        return self._run(generate_image_flow(self._core, prompt, target, style, params))

    def attach(self, *sources: str | os.PathLike[str] | bytes | IO[bytes], purpose: str = "general",
               **options: Unpack[RequestOptions]) -> list[str]:
        """Upload files for ``attachments=`` (type and size checked first); the same content is
        uploaded only once per account. Returns the file ids."""
        return self._run(attach_flow(self._core, sources, purpose, options))

    @overload
    def embed_many(self, texts: Sequence[str], *, model: str = ..., batch_size: int = ...,
                   max_batch_tokens: int = ..., concurrency: int = ..., batch_retries: int = ...,
                   as_numpy: Literal[False] = False, **options: Unpack[RequestOptions]) -> list[list[float]]: ...

    @overload
    def embed_many(self, texts: Sequence[str], *, model: str = ..., batch_size: int = ...,
                   max_batch_tokens: int = ..., concurrency: int = ..., batch_retries: int = ...,
                   as_numpy: Literal[True], **options: Unpack[RequestOptions]) -> Any: ...

    def embed_many(self, texts: Sequence[str], *, model: str = "Embeddings", batch_size: int = 100,
                   max_batch_tokens: int = 16_000, concurrency: int = 4, batch_retries: int = 2,
                   as_numpy: bool = False, **options: Unpack[RequestOptions]) -> Any:
        """Embed any number of texts: batches by count and token budget, run concurrently, input
        order kept, only failed batches retried. Lists of floats, or a numpy array."""
        items, spans = _embed.plan(texts, batch_size, max_batch_tokens)
        workers = int(P.number(concurrency, "concurrency", low=1, integer=True))
        P.number(batch_retries, "batch_retries", low=0, integer=True)
        repeat = self._core.policy.retry_non_idempotent  # embeddings are billed: the client's rule

        def one(span: tuple[int, int]) -> Embeddings:
            for attempt in range(batch_retries + 1):
                try:
                    return self.embedding(items[span[0]:span[1]], model=model, **options)
                except GigaChatError as exc:
                    if attempt == batch_retries or not _embed.retryable(exc, repeat):
                        raise
                    time.sleep(self._core.policy.backoff(attempt))
            raise AssertionError("unreachable")

        with ThreadPoolExecutor(max_workers=min(workers, len(spans))) as pool:
            batches = list(pool.map(one, spans))
        return _embed.assemble(batches, as_numpy)

    def conversation(self, system: str | None = None, *, max_context_tokens: int | None = None,
                     **defaults: Unpack[ChatParams]) -> Conversation:
        """A chat that keeps its history and one X-Session-ID (``conv.say("...")``); ``defaults``
        (model, temperature, session_id, ...) apply to every turn."""
        return Conversation(self, ConversationState(system, max_context_tokens, defaults))
