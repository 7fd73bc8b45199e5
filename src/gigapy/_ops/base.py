"""Every API operation, written once as a flow (see ``_core``) for both clients.

A public method of ``GigaChat`` / ``AsyncGigaChat`` is one line: it hands one of these
flows to its driver. Argument checks and request bodies live here and in ``_params``;
transports live in ``_sync`` and ``_async``.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Literal, TypedDict, TypeVar
from urllib.parse import quote

from pydantic import BaseModel

from .._clients.streams import ChatStreamState, ChatV2StreamState, StreamState
from .._clients.tokens import TokenSource, identity, parse_token, token_request
from .._config import Settings, Timeout
from .._core import params as P
from .._core import params_v2 as P2
from .._core import wire as _wire
from .._core.flow import (
    Blocking,
    FilePart,
    Flow,
    Request,
    Response,
    RetryPolicy,
    Sleep,
    _invalid_body,
    dumps,
    missing_error,
    new_request_id,
    parse_model,
    parse_model_list,
    send_flow,
)
from .._version import __version__
from ..errors import APITimeoutError, ConfigurationError, InvalidArgumentError
from ..types._base import ResponseMeta
from ..types.auth import AccessToken
from ..types.batches import Batch, Batches, BatchResult
from ..types.chat import ChatCompletion, Function, Message
from ..types.chat_v2 import ChatCompletionV2, MessageV2
from ..types.embeddings import Embeddings
from ..types.files import DeletedFile, File, FileList
from ..types.misc import (
    AICheckResult,
    Balance,
    ConvertedFunctions,
    FilterCheckResult,
    FunctionValidationResult,
    TokensCount,
)
from ..types.models import Model, Models
from .files import forget_upload, prepare_upload

T = TypeVar("T")

VERSION = __version__
USER_AGENT = f"gigapy/{VERSION} (Python {platform.python_version()})"


class RequestOptions(TypedDict, total=False):
    """Per-call options every method accepts."""

    timeout: float | Timeout | None
    extra_headers: Mapping[str, str]
    extra_body: Mapping[str, Any]
    session_id: str
    request_id: str
    client_id: str


OPTION_KEYS = frozenset(RequestOptions.__annotations__)


class ChatFields(RequestOptions, total=False):
    """The v1 request fields other than ``response_format`` (see ChatParams)."""

    messages: str | Sequence[Message | Mapping[str, Any]]
    model: str
    temperature: float
    top_p: float
    n: int
    max_tokens: int
    repetition_penalty: float
    update_interval: float
    profanity_check: bool
    functions: Sequence[Function | Mapping[str, Any] | Callable[..., Any] | type[BaseModel]]
    function_call: str | Mapping[str, Any]
    flags: Sequence[str]
    #: "low", "medium", "high" or a value the service added since (sent with a warning).
    reasoning_effort: Literal["low", "medium", "high"] | str
    #: The most tokens the model may spend reasoning before it answers.
    reasoning_max_tokens: int
    #: 1..5: the log probabilities of that many most likely tokens per position (``message.logprobs``).
    top_logprobs: int
    storage: Mapping[str, Any]
    function_ranker: Mapping[str, Any]
    attachments: Sequence[str]
    #: An assistant answers (its model, instructions, files, functions); ``model`` may then be left out.
    assistant_id: str
    #: How Python functions and pydantic models in ``functions`` become schemas: "reduced" or "full".
    schema_dialect: Literal["reduced", "full"]


class ChatParams(ChatFields, total=False):
    """Keyword arguments of ``completion`` / ``completion_stream`` (the v1 request fields)."""

    response_format: Mapping[str, Any] | type[BaseModel]


class ImageParams(RequestOptions, total=False):
    """Keyword arguments of ``generate_image``."""

    model: str


class ChatV2Base(RequestOptions, total=False):
    """The v2 request fields other than tools and ``response_format``."""

    messages: str | Sequence[MessageV2 | Mapping[str, Any]]
    model: str
    model_options: Mapping[str, Any]
    temperature: float
    top_p: float
    max_tokens: int
    repetition_penalty: float
    update_interval: float
    #: An effort ("low", "medium", "high", or newer) or ``{"effort": ..., "max_tokens": N}``.
    reasoning: Literal["low", "medium", "high"] | str | Mapping[str, Any]
    #: Shorthands of ``reasoning`` (``reasoning={"effort": ..., "max_tokens": ...}``).
    reasoning_effort: Literal["low", "medium", "high"] | str
    reasoning_max_tokens: int
    top_logprobs: int
    unnormalized_history: bool
    #: Let the model ask for several function calls in one answer (v2).
    parallel_tool_calls: bool
    storage: bool | Mapping[str, Any]
    ranker_options: Mapping[str, Any]
    filter_config: Mapping[str, Any]
    user_info: Mapping[str, Any]
    disable_filter: bool
    flags: Sequence[str]
    assistant_id: str
    schema_dialect: Literal["reduced", "full"]


class ChatV2Params(ChatV2Base, total=False):
    """Keyword arguments of ``client.v2.completion`` / ``completion_stream``."""

    tools: Sequence[str | Mapping[str, Any]]
    functions: Sequence[Function | Mapping[str, Any] | Callable[..., Any] | type[BaseModel]]
    #: "auto", "none", "any", a tool or function name (forced), a list of function names (any of
    #: them), or ``{"mode": ..., "tool_name"/"function_name"/"functions_names_any": ...}``.
    tool_config: str | Sequence[str] | Mapping[str, Any]
    response_format: Mapping[str, Any] | type[BaseModel]


def same_identity(a: Settings, b: Settings) -> bool:
    """Whether two settings authenticate as the same identity (and may share a token source)."""
    return identity(a) == identity(b) and a.access_token == b.access_token


@dataclass(slots=True)
class OpenStream:
    """What a streaming flow returns: the open response, the state that decodes it, and the
    limits of its waits (the idle limit between events, the call's deadline)."""

    response: Response
    state: StreamState[Any, Any]
    read: float | None = None
    deadline: float | None = None


class ClientCore:
    """Settings, retry policy and token source of one client, plus request building."""

    __slots__ = ("_auth_hint", "_bearer", "_headers", "policy", "settings", "tokens")

    def __init__(self, settings: Settings, tokens: TokenSource | None = None) -> None:
        self.settings = settings
        self.policy = RetryPolicy(retry_non_idempotent=settings.retry_non_idempotent)
        self.tokens = tokens if tokens is not None else TokenSource(settings)
        mtls = settings.auth_mode == "mtls"
        self._bearer = not mtls  # mTLS-only: the client certificate identifies the account, no token is sent
        self._auth_hint = (f"the server did not accept the client certificate {settings.cert_file} as an account: "
                           "is it the one issued for this API (and this base_url)?") if mtls else None
        headers = _wire.Headers({"User-Agent": USER_AGENT, "Accept": "application/json"})
        headers.update(settings.default_headers)
        self._headers = headers

    def request(
        self,
        method: str,
        path: str,
        options: Mapping[str, Any],
        *,
        body: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
        params: dict[str, str] | None = None,
        idempotent: bool = False,
        stream: bool = False,
        accept: str | None = None,
        file: FilePart | None = None,
        form: dict[str, str] | None = None,
        base: str | None = None,
    ) -> Request:
        """Build a request to ``base_url + path`` with the per-call options applied."""
        bad = options.keys() - OPTION_KEYS if options else None
        if bad:
            name = sorted(bad)[0]
            typo = P.close_to(name, OPTION_KEYS)
            expected = f"did you mean {typo!r}?" if typo else f"expected one of {', '.join(sorted(OPTION_KEYS))}"
            raise InvalidArgumentError(name, f"unknown option; {expected}")
        headers = _wire.Headers(self._headers)
        if accept is not None:
            headers["Accept"] = accept
        if body is not None:
            extra_body = options.get("extra_body")
            if extra_body:
                _wire.check_json(extra_body, "extra_body")
            content = dumps(P.merge_extra(body, extra_body))
            content_type = "application/json"
        elif options.get("extra_body"):
            raise InvalidArgumentError("extra_body", "this call sends no JSON body")
        if content_type is not None:
            headers["Content-Type"] = content_type
        # every header value a caller gives is checked here, once, for both clients
        rid = options.get("request_id")
        headers["X-Request-ID"] = _id_header(rid, "request_id") if rid is not None else new_request_id()
        sid = options.get("session_id")
        if sid is not None:
            headers["X-Session-ID"] = _id_header(sid, "session_id")
        elif self.settings.session_id is not None:
            headers["X-Session-ID"] = self.settings.session_id
        cid = options.get("client_id")
        if cid is not None:
            headers["X-Client-ID"] = _id_header(cid, "client_id")
        extra = options.get("extra_headers")
        if extra:
            if not isinstance(extra, Mapping):
                raise InvalidArgumentError("extra_headers", "expected a dict of header names to values")
            headers.update(_wire.headers(extra.items(), "extra_headers"))
        if params:
            for key, value in params.items():
                _wire.utf8_text(value, key)
        timeout = Timeout.coerce(options["timeout"]) if "timeout" in options else self.settings.timeout
        return Request(
            method,
            (base if base is not None else self.settings.base_url) + path,
            headers,
            content=content,
            params=params,
            stream=stream,
            idempotent=idempotent,
            auth=self._bearer,
            timeout=timeout,
            max_retries=self.settings.max_retries,
            file=file,
            form=form,
        )

    def send(self, request: Request) -> Flow[Response]:
        """The retrying, token-refreshing flow of one request."""
        return send_flow(request, policy=self.policy, can_refresh=self.settings.can_refresh,
                         auth_hint=self._auth_hint)

    def call(self, request: Request, parse: Callable[[Response], T]) -> Flow[T]:
        """One request, one parsed result."""
        response = yield from self.send(request)
        return parse(response)

    def fetch_token(self) -> Flow[AccessToken]:
        """The token request for this client's identity (OAuth or user/password)."""
        request = token_request(self.settings, USER_AGENT)
        response = yield from send_flow(request, policy=self.policy, can_refresh=False)
        return parse_token(response, self.policy.clock.wall())


def _id_header(value: Any, field: str) -> str:
    return _wire.header_value(P.text(value, field), field)


# --- operations ----------------------------------------------------------------------------


def create_token(core: ClientCore) -> Flow[AccessToken]:
    """Fetch a new token now and put it in the shared cache."""
    if core.tokens.entry is None:
        if core.settings.auth_mode == "mtls":
            raise ConfigurationError("credentials", "create_token() needs credentials= or user=/password=; this "
                                                    "client authenticates with its client certificate (mTLS-only) "
                                                    "and uses no token")
        raise ConfigurationError("credentials", "create_token() needs credentials= or user=/password=")
    token = yield from core.fetch_token()
    core.tokens.entry.store(token)
    return token


def all_models(core: ClientCore, options: RequestOptions) -> Flow[Models]:
    """``GET /models``."""
    return core.call(core.request("GET", "/models", options, idempotent=True), lambda r: parse_model(Models, r))


def get_model(core: ClientCore, name: str, options: RequestOptions) -> Flow[Model]:
    """``GET /models/{name}``."""
    P.text(name, "model")
    req = core.request("GET", "/models/" + quote(name, safe=""), options, idempotent=True)
    return core.call(req, lambda r: parse_model(Model, r))


def split_call(messages: Any, params: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """(request fields, per-call options) of a chat call; positional messages join the fields."""
    fields = {k: v for k, v in params.items() if k not in OPTION_KEYS}
    options = {k: v for k, v in params.items() if k in OPTION_KEYS}
    if messages is not None:
        if fields.get("messages") is not None:
            raise InvalidArgumentError("messages", "given both positionally and as a keyword")
        fields["messages"] = messages
    return fields, options


def schema_dialect_of(core: ClientCore, params: Mapping[str, Any]) -> str:
    """The schema dialect of a call: its ``schema_dialect``, else the client's setting."""
    return str(params.get("schema_dialect") or core.settings.schema_dialect)


def chat_request(core: ClientCore, messages: Any, params: Mapping[str, Any], *, stream: bool) -> Request:
    """The ``/chat/completions`` request for ``completion`` / ``completion_stream``."""
    fields, options = split_call(messages, params)
    s = core.settings
    body = P.chat_body(fields, default_model=s.model, profanity_check=s.profanity_check, flags=s.flags,
                       schema_dialect_default=s.schema_dialect, options=OPTION_KEYS)
    if stream:
        body["stream"] = True
        return core.request("POST", "/chat/completions", options, body=body, stream=True,
                            accept="text/event-stream")
    return core.request("POST", "/chat/completions", options, body=body)


def completion(core: ClientCore, messages: Any, params: Mapping[str, Any]) -> Flow[ChatCompletion]:
    """``POST /chat/completions``."""
    return core.call(chat_request(core, messages, params, stream=False), lambda r: parse_model(ChatCompletion, r))


def completion_stream(core: ClientCore, messages: Any, params: Mapping[str, Any]) -> Flow[OpenStream]:
    """``POST /chat/completions`` with ``stream: true``; arguments are checked at call time."""
    return open_stream(core, chat_request(core, messages, params, stream=True), ChatStreamState)


def open_stream(core: ClientCore, request: Request,
                state: Callable[[ResponseMeta], StreamState[Any, Any]]) -> Flow[OpenStream]:
    """Send a streaming request; once the response headers arrive, hand over the open stream."""
    response = yield from core.send(request)
    ctype = response.headers.get("content-type", "")
    if not ctype.startswith("text/event-stream"):
        if response.raw is not None:
            response.raw.close()
        raise _invalid_body(response, TypeError(f"expected text/event-stream, got {ctype or 'no content type'}"))
    return OpenStream(response, state(response.meta()), request.timeout.read, request.deadline)


def v2_base(base_url: str) -> str:
    """The v2 root for a base URL: its last ``/vN`` segment becomes ``/v2`` (else ``/v2`` is added)."""
    root, _, last = base_url.rpartition("/")
    return root + "/v2" if re.fullmatch(r"v\d+", last) else base_url + "/v2"


def v2_request(core: ClientCore, messages: Any, params: Mapping[str, Any], *, stream: bool) -> Request:
    """The ``/v2/chat/completions`` request."""
    fields, options = split_call(messages, params)
    s = core.settings
    body = P2.chat_body_v2(fields, default_model=s.model, profanity_check=s.profanity_check, flags=s.flags,
                           schema_dialect_default=s.schema_dialect, options=OPTION_KEYS)
    base = v2_base(s.base_url)
    if stream:
        body["stream"] = True
        return core.request("POST", "/chat/completions", options, body=body, stream=True,
                            accept="text/event-stream", base=base)
    return core.request("POST", "/chat/completions", options, body=body, base=base)


def v2_completion(core: ClientCore, messages: Any, params: Mapping[str, Any]) -> Flow[ChatCompletionV2]:
    """``POST /v2/chat/completions``."""
    request = v2_request(core, messages, params, stream=False)
    return core.call(request, lambda r: parse_model(ChatCompletionV2, r))


def v2_completion_stream(core: ClientCore, messages: Any, params: Mapping[str, Any]) -> Flow[OpenStream]:
    """``POST /v2/chat/completions`` with ``stream: true`` (named events)."""
    return open_stream(core, v2_request(core, messages, params, stream=True), ChatV2StreamState)


def embedding(core: ClientCore, texts: Any, model: str, options: RequestOptions) -> Flow[Embeddings]:
    """``POST /embeddings``."""
    body = {"model": P.text(model, "model"), "input": P.strings(texts, "input")}
    return core.call(core.request("POST", "/embeddings", options, body=body), lambda r: parse_model(Embeddings, r))


def count_tokens(core: ClientCore, texts: Any, model: str | None, options: RequestOptions) -> Flow[list[TokensCount]]:
    """``POST /tokens/count`` (one result per input text)."""
    body = {"model": P.text(model or core.settings.model, "model"), "input": P.strings(texts, "input")}
    req = core.request("POST", "/tokens/count", options, body=body, idempotent=True)
    return core.call(req, lambda r: parse_model_list(TokensCount, r))


def upload_file(core: ClientCore, source: Any, purpose: str, filename: str | None, content_type: str | None,
                options: RequestOptions) -> Flow[File]:
    """``POST /files`` (multipart). The file is checked (type, size limit) before sending."""
    if purpose not in ("general", "assistant"):
        raise InvalidArgumentError("purpose", f"expected 'general' or 'assistant', got {purpose!r}")
    part: FilePart = yield Blocking(lambda: prepare_upload(source, filename=filename, content_type=content_type))
    return (yield from upload_part(core, part, purpose, options))


def upload_part(core: ClientCore, part: FilePart, purpose: str, options: RequestOptions) -> Flow[File]:
    """``POST /files`` for a checked file."""
    req = core.request("POST", "/files", options, file=part, form={"purpose": purpose})
    return core.call(req, lambda r: parse_model(File, r))


def get_all_files(core: ClientCore, options: RequestOptions) -> Flow[list[File]]:
    """``GET /files``."""
    response = yield from core.send(core.request("GET", "/files", options, idempotent=True))
    files = parse_model(FileList, response).data
    meta = response.meta()
    for f in files:
        f._meta = meta
    return files


def _file_path(file_id: str) -> str:
    return "/files/" + quote(P.text(file_id, "file_id"), safe="")


def get_file_info(core: ClientCore, file_id: str, options: RequestOptions) -> Flow[File]:
    """``GET /files/{id}``."""
    req = core.request("GET", _file_path(file_id), options, idempotent=True)
    return core.call(req, lambda r: parse_model(File, r))


def delete_file(core: ClientCore, file_id: str, options: RequestOptions) -> Flow[DeletedFile]:
    """``POST /files/{id}/delete``."""
    req = core.request("POST", _file_path(file_id) + "/delete", options, idempotent=True)
    deleted = yield from core.call(req, lambda r: parse_model(DeletedFile, r))
    forget_upload(file_id)
    return deleted


def download_file(core: ClientCore, file_id: str, path: str | Path | None,
                  options: RequestOptions) -> Flow[bytes | Path]:
    """``GET /files/{id}/content``: the bytes, or streamed into ``path`` (written atomically)."""
    req = core.request("GET", _file_path(file_id) + "/content", options, idempotent=True, accept="*/*")
    if path is not None:
        target = Path(path)
        if target.is_dir():
            raise InvalidArgumentError("path", f"is a directory: {target}")
        if not target.parent.exists():
            raise InvalidArgumentError("path", f"directory does not exist: {target.parent}")
        req.download_to = str(target)
        yield from core.send(req)
        return target
    response = yield from core.send(req)
    return response.content


def get_balance(core: ClientCore, options: RequestOptions) -> Flow[Balance]:
    """``GET /balance`` (prepaid accounts; pay-as-you-go gets 403)."""
    return core.call(core.request("GET", "/balance", options, idempotent=True), lambda r: parse_model(Balance, r))


def check_ai(core: ClientCore, text: str, model: str, options: RequestOptions) -> Flow[AICheckResult]:
    """``POST /ai/check``."""
    body = {"input": P.text(text, "text"), "model": P.text(model, "model")}
    return core.call(core.request("POST", "/ai/check", options, body=body), lambda r: parse_model(AICheckResult, r))


def validate_function(core: ClientCore, function: Any, options: RequestOptions) -> Flow[FunctionValidationResult]:
    """``POST /functions/validate``: the service's verdict on a function definition."""
    body = P._plain(function, "function")
    if not isinstance(body.get("name"), str):
        raise InvalidArgumentError("function.name", "required: the function's name as a string")
    req = core.request("POST", "/functions/validate", options, body=body, idempotent=True)
    return core.call(req, lambda r: parse_model(FunctionValidationResult, r))


def openapi_text(spec: Any) -> bytes:
    """An OpenAPI document for ``/functions/convert`` as UTF-8 bytes: the text itself (JSON or
    YAML, ``str`` or ``bytes``), a path to it (``pathlib.Path`` / ``os.PathLike``), or the parsed
    document (a dict, sent as JSON)."""
    if isinstance(spec, Mapping):
        return dumps(spec, "openapi")
    if isinstance(spec, PathLike):
        path = Path(spec)
        if not path.is_file():
            raise InvalidArgumentError("openapi", f"file not found: {path}")
        spec = path.read_bytes()
    if isinstance(spec, (bytes, bytearray)):
        try:
            spec = bytes(spec).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidArgumentError("openapi", f"is not UTF-8 text (bad byte at offset {exc.start})") from None
    if not isinstance(spec, str):
        raise InvalidArgumentError("openapi", f"expected the OpenAPI document as text, bytes or a path, got "
                                              f"{type(spec).__name__}")
    if not spec.strip():
        raise InvalidArgumentError("openapi", "is empty: expected an OpenAPI 3 document (JSON or YAML)")
    return _wire.utf8_text(spec, "openapi").encode("utf-8")


def convert_functions(core: ClientCore, spec: Any, options: RequestOptions) -> Flow[ConvertedFunctions]:
    """``POST /functions/convert``: function definitions from an OpenAPI document (raw text body,
    as the official SDK sends it)."""
    body: bytes = yield Blocking(lambda: openapi_text(spec))
    req = core.request("POST", "/functions/convert", options, content=body, idempotent=True)
    return (yield from core.call(req, lambda r: parse_model(ConvertedFunctions, r)))


FILTER_SETTINGS = ("neuro", "blacklist", "whitelist")


def check_filter(core: ClientCore, messages: Any, model: str, settings: Mapping[str, Any] | None,
                 options: RequestOptions) -> Flow[FilterCheckResult]:
    """``POST /filter/check``: whether messages break the account's topic restrictions."""
    body: dict[str, Any] = {"model": P.text(model, "model"), "messages": P.messages_v1(messages)}
    if settings is not None:
        if not isinstance(settings, Mapping):
            raise InvalidArgumentError("settings", f"expected a dict of {', '.join(FILTER_SETTINGS)} switches, got "
                                                   f"{type(settings).__name__}")
        for key, value in settings.items():
            if key in FILTER_SETTINGS and not isinstance(value, bool):
                raise InvalidArgumentError(f"settings.{key}", f"expected True or False, got {value!r}")
        body["settings"] = dict(settings)
    req = core.request("POST", "/filter/check", options, body=body, idempotent=True)
    return core.call(req, lambda r: parse_model(FilterCheckResult, r))


# --- batches -------------------------------------------------------------------------------

BATCH_METHODS = {"chat_completions": "chat_completions", "chat": "chat_completions",
                 "embedder": "embedder", "embeddings": "embedder"}


def batch_jsonl(requests: Any, method: str, default_model: str) -> bytes:
    """Check batch input and return it as JSONL lines ``{"id": ..., "request": {...}}``.

    ``requests`` is a JSONL path, JSONL bytes, or an iterable of dicts. A request without
    ``model`` gets the client's model (chat) or ``Embeddings`` (embedder).
    """
    if isinstance(requests, (str, Path)):
        path = Path(requests)
        if not path.is_file():
            raise InvalidArgumentError("requests", f"file not found: {path}")
        requests = path.read_bytes()
    if isinstance(requests, (bytes, bytearray)):
        requests = _jsonl_items(bytes(requests))
    elif not isinstance(requests, Iterable):
        raise InvalidArgumentError("requests", "expected a JSONL path, JSONL bytes or a list of {id, request} dicts")
    seen: set[str] = set()
    model = default_model if method == "chat_completions" else "Embeddings"
    lines = [_check_batch_item(item, i, method, seen, model) for i, item in enumerate(requests)]
    if not lines:
        raise InvalidArgumentError("requests", "the batch is empty")
    return b"".join(dumps(line, f"requests[{i}]") + b"\n" for i, line in enumerate(lines))


def _jsonl_items(data: bytes) -> list[Any]:
    items = []
    for i, raw in enumerate(data.splitlines()):
        if raw.strip():
            try:
                items.append(json.loads(raw))
            except ValueError:
                raise InvalidArgumentError(f"requests line {i + 1}", "is not valid JSON") from None
    return items


def _check_batch_item(item: Any, i: int, method: str, seen: set[str], model: str) -> dict[str, Any]:
    where = f"requests[{i}]"
    if not isinstance(item, Mapping):
        raise InvalidArgumentError(where, "expected {'id': ..., 'request': {...}}")
    rid, request = item.get("id"), item.get("request")
    if not isinstance(rid, str) or not rid:
        raise InvalidArgumentError(f"{where}.id", "required: a non-empty string unique in the batch")
    if rid in seen:
        raise InvalidArgumentError(f"{where}.id", f"duplicate id {rid!r}")
    seen.add(rid)
    if not isinstance(request, Mapping):
        raise InvalidArgumentError(f"{where}.request", "required: the body of /chat/completions or /embeddings")
    body = dict(request)
    if method == "chat_completions":
        body["messages"] = P.messages_v1(request.get("messages"), f"{where}.request.messages")
    else:
        body["input"] = P.strings(request.get("input"), f"{where}.request.input")
    body.setdefault("model", model)
    return {"id": rid, "request": body}


def create_batch(core: ClientCore, requests: Any, method: str, options: RequestOptions) -> Flow[Batch]:
    """``POST /batches?method=...`` with a JSONL body."""
    wire = BATCH_METHODS.get(method)
    if wire is None:
        raise InvalidArgumentError("method", f"expected 'chat_completions' or 'embedder', got {method!r}")
    body: bytes = yield Blocking(lambda: batch_jsonl(requests, wire, core.settings.model))
    req = core.request("POST", "/batches", options, content=body, content_type="application/octet-stream",
                       params={"method": wire})
    return (yield from core.call(req, lambda r: parse_model(Batch, r)))


def _batches_from(response: Response) -> list[Batch]:
    try:
        data = json.loads(response.content)
    except ValueError:
        data = None
    # the other shapes parsed as the usual one (ASCII escapes: text we could not send may come
    # back); the response itself keeps the body the server sent
    if isinstance(data, list):
        response = dataclasses.replace(response, content=json.dumps({"batches": data}).encode())
    elif isinstance(data, dict) and "batches" not in data and "id" in data:
        response = dataclasses.replace(response, content=json.dumps({"batches": [data]}).encode())
    batches = parse_model(Batches, response)
    for b in batches.batches:
        b._meta = batches._meta
    return batches.batches


def get_batches(core: ClientCore, options: RequestOptions) -> Flow[list[Batch]]:
    """``GET /batches``."""
    req = core.request("GET", "/batches", options, idempotent=True, content_type="application/json")
    return core.call(req, _batches_from)


def get_batch(core: ClientCore, batch_id: str, options: RequestOptions) -> Flow[Batch]:
    """``GET /batches?batch_id=...``."""
    req = core.request("GET", "/batches", options, idempotent=True, content_type="application/json",
                       params={"batch_id": P.text(batch_id, "batch_id")})
    response = yield from core.send(req)
    found = [b for b in _batches_from(response) if b.id == batch_id]
    if not found:
        raise missing_error(response, f"Batch task not found: no batch {batch_id!r} in the answer")
    return found[0]


def parse_batch_output(data: bytes) -> list[BatchResult]:
    """Read a batch output file. Tolerates the shapes seen in the wild:
    ``{id, response: {status_code, body}}``, ``{id, response: body}``, ``{id, result}``,
    ``{id, body}`` and ``{id, error}``."""
    results = []
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(item, dict) or "id" not in item:
            continue
        status: int | None = None
        body: Any = None
        resp = item.get("response", item.get("result", item.get("body")))
        if isinstance(resp, dict) and "body" in resp and ("status_code" in resp or "status" in resp):
            raw_status = resp.get("status_code", resp.get("status"))
            status = raw_status if isinstance(raw_status, int) else None
            body = resp.get("body")
        elif isinstance(resp, dict):
            body = resp
        error = item.get("error")
        if status is not None and status >= 400 and error is None:
            error = body if isinstance(body, dict) else {"status": status, "message": str(body)}
            body = None
        results.append(BatchResult(id=str(item["id"]), status_code=status,
                                   body=body if isinstance(body, dict) else None,
                                   error=error if isinstance(error, dict) else None))
    return results


def get_batch_results(core: ClientCore, batch: str | Batch, options: RequestOptions) -> Flow[list[BatchResult]]:
    """The results of a finished batch (downloads and parses its output file)."""
    current = batch if isinstance(batch, Batch) else (yield from get_batch(core, batch, options))
    if not current.output_file_id:
        raise InvalidArgumentError("batch", f"batch {current.id} has no results yet (status={current.status})")
    data = yield from download_file(core, current.output_file_id, None, options)
    assert isinstance(data, bytes)
    return parse_batch_output(data)


def wait_for_batch(core: ClientCore, batch_id: str, poll_interval: float, max_wait: float | None,
                   options: RequestOptions) -> Flow[Batch]:
    """Poll a batch until it is done; raises APITimeoutError after ``max_wait`` seconds."""
    P.number(poll_interval, "poll_interval", low=0, low_open=True)
    if max_wait is not None:
        P.number(max_wait, "max_wait", low=0, low_open=True)
    clock = core.policy.clock
    deadline = None if max_wait is None else clock.monotonic() + max_wait
    while True:
        batch = yield from get_batch(core, batch_id, options)
        if batch.is_done:
            return batch
        if deadline is not None and clock.monotonic() + poll_interval > deadline:
            raise APITimeoutError(f"batch {batch_id} still {batch.status} after {max_wait} s", phase="batch")
        yield Sleep(poll_interval)
