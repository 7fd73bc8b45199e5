"""Every API operation, written once as a flow (see ``_core``) for both clients.

A public method of ``GigaChat`` / ``AsyncGigaChat`` is one line: it hands one of these
flows to its driver. Argument checks and request bodies live here and in ``_params``;
transports live in ``_sync`` and ``_async``.
"""

from __future__ import annotations

import platform
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict, TypeVar

from .. import _telemetry
from .._clients.tokens import TokenSource
from .._config import Settings, Timeout
from .._core import params as P
from .._core import wire as _wire
from .._core.flow import (
    FilePart,
    Flow,
    Request,
    Response,
    RetryPolicy,
    dumps,
    invalid_body,
    new_request_id,
    parse_json_object,
    parse_model,
    send_flow,
)
from .._core.stream_state import StreamState
from .._core.tokens import identity, parse_token, token_request
from .._version import __version__
from ..errors import GigaChatError, InvalidArgumentError
from ..types._base import ResponseMeta
from ..types.auth import AccessToken
from ..types.embeddings import Embeddings
from ..usage import UsageTotals

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
#: Keyword arguments of the client's methods, suggested for a typo that is no per-call option
CALL_ARGUMENTS = ("model", "purpose", "filename", "content_type", "texts", "input", "messages", "timeout")


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
    #: The stream's telemetry span (``gigapy._otel.StreamSpan``) while telemetry is on, else None.
    telemetry: Any = None
    #: Where the stream's final usage is added (the client's totals), and under which model.
    usage: UsageTotals | None = None
    model: str | None = None
    #: What broke the stream (seen by :func:`observe` / :func:`observe_async`), if anything.
    failure: BaseException | None = None

    def ended(self, exc: BaseException | None = None) -> None:
        """The stream ended or was closed (the drivers call this once): the span ends, the usage
        is added, and what the stream held (a fleet's lease) is given back."""
        try:
            self._account(exc)
        finally:
            hold = self.response.hold
            if hold is not None:
                self.response.hold = None
                hold.close(exc is None and self.state.complete())

    def _account(self, exc: BaseException | None) -> None:
        state = self.state
        span = self.telemetry
        final: Any = None
        if span is not None:
            final = span.end(state, exc)
        elif self.usage is not None and state.complete():
            try:
                final = state.final()
            except Exception:
                final = None
        usage = self.usage
        if usage is not None:
            if final is None:
                usage.record(self.model, error=exc is not None)
            else:
                usage.record(self.model or getattr(final, "model", None), *usage_of(final))


class ClientCore:
    """Settings, retry policy and token source of one client, plus request building."""

    __slots__ = ("_auth_hint", "_bearer", "_headers", "policy", "settings", "telemetry", "tokens", "usage")

    def __init__(self, settings: Settings, tokens: TokenSource | None = None, usage: UsageTotals | None = None) -> None:
        self.settings = settings
        #: The client's ``telemetry`` setting: None follows ``gigapy.instrument()``.
        self.telemetry = settings.telemetry
        self.usage = usage if usage is not None else UsageTotals()
        self.policy = RetryPolicy(retry_non_idempotent=settings.retry_non_idempotent)
        self.tokens = tokens if tokens is not None else TokenSource(settings)
        mtls = settings.auth_mode == "mtls"
        self._bearer = not mtls  # mTLS-only: the client certificate identifies the account, no token is sent
        self._auth_hint = (
            (
                f"the server did not accept the client certificate {settings.cert_file} as an account: "
                "is it the one issued for this API (and this base_url)?"
            )
            if mtls
            else None
        )
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
            typo = P.close_to(name, OPTION_KEYS) or P.close_to(name, CALL_ARGUMENTS)
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
            path=path,
            body=body,
        )

    def raw_send(self, request: Request) -> Flow[Response]:
        """The retrying, token-refreshing flow of one request (no telemetry)."""
        return send_flow(request, policy=self.policy, can_refresh=self.settings.can_refresh, auth_hint=self._auth_hint)

    def hook(self) -> Any:
        """The telemetry hook for a call now, or None (off: one attribute read)."""
        setting = self.telemetry
        return _telemetry.HOOK if setting is None else _telemetry.hook_for(setting)

    def content(self, hook: Any) -> bool:
        """Whether this client's spans carry message content."""
        own = self.settings.telemetry_content
        return bool(hook.content) if own is None else own

    def send(self, request: Request) -> Flow[Response]:
        """The retrying, token-refreshing flow of one request (under a span when telemetry is on)."""
        hook = self.hook()
        if hook is None:
            return self.raw_send(request)
        return self._traced_send(hook, request)

    def _traced_send(self, hook: Any, request: Request) -> Flow[Response]:
        response, _ = yield from hook.traced(self.raw_send(request), request, _same, self.content(hook))
        return response  # type: ignore[no-any-return]

    def call(self, request: Request, parse: Callable[[Response], T]) -> Flow[T]:
        """One request, one parsed result; its usage goes into the client's totals."""
        hook = self.hook()
        try:
            if hook is None:
                response = yield from self.raw_send(request)
                value = parse(response)
            else:
                value, _ = yield from hook.traced(self.raw_send(request), request, parse, self.content(hook))
        except GigaChatError:
            model = model_of(request)
            if model is not None:
                self.usage.record(model, error=True)
            raise
        if request.body is not None:
            usage = getattr(value, "usage", None)
            if usage is not None or isinstance(value, Embeddings):
                self.usage.record(model_of(request) or getattr(value, "model", None), *usage_of(value))
        return value

    def call_json(self, request: Request, model: type[Any], list_field: str | None = None) -> Flow[dict[str, Any]]:
        """:meth:`call` with the answer as a plain dict (``model``'s JSON shape; ``list_field``,
        when there, an array): no model is built and dumped again. With telemetry on, the model is
        built as in :meth:`call` (the span reads its fields) and given as a dict."""
        hook = self.hook()
        if hook is not None:
            value = yield from self.call(request, lambda r: parse_model(model, r))
            return value.to_dict()  # type: ignore[no-any-return]
        try:
            response = yield from self.raw_send(request)
            data = parse_json_object(response, list_field)
        except GigaChatError:
            name = model_of(request)
            if name is not None:
                self.usage.record(name, error=True)
            raise
        usage = data.get("usage")
        if isinstance(usage, Mapping):
            name = model_of(request) or data.get("model")
            self.usage.record(name if isinstance(name, str) else None, *json_usage(usage))
        return data

    def fetch_token(self) -> Flow[AccessToken]:
        """The token request for this client's identity (OAuth or user/password)."""
        request = token_request(self.settings, USER_AGENT)
        response = yield from send_flow(request, policy=self.policy, can_refresh=False)
        return parse_token(response, self.policy.clock.wall())


def _same(response: Response) -> Response:
    return response


def model_of(request: Request) -> str | None:
    """The model a request asks for (its JSON body's ``model``), or None."""
    body = request.body
    model = body.get("model") if isinstance(body, Mapping) else None
    return model if isinstance(model, str) else None


def usage_of(result: Any) -> tuple[int, int, int]:
    """(prompt, completion, cached) tokens of a parsed answer (0 where it does not say)."""
    usage = getattr(result, "usage", None)
    if usage is None:
        prompt = getattr(result, "prompt_tokens", 0)  # Embeddings: per-item usage summed
        return (prompt if isinstance(prompt, int) else 0), 0, 0
    fields = getattr(usage, "__dict__", None)  # a model's fields: no attribute lookup that misses (and raises inside)
    if not isinstance(fields, dict):
        fields = {}
    if "input_tokens" in fields:  # v2
        details = fields.get("input_tokens_details")
        cached = getattr(details, "cached_tokens", None)
        return _int(fields["input_tokens"]), _int(fields.get("output_tokens")), _int(cached)
    return (
        _int(fields.get("prompt_tokens")),
        _int(fields.get("completion_tokens")),
        _int(fields.get("precached_prompt_tokens")),
    )


def json_usage(usage: Mapping[str, Any]) -> tuple[int, int, int]:
    """:func:`usage_of` for an answer's ``usage`` object as JSON (v1 or v2 names)."""
    if "input_tokens" in usage or "output_tokens" in usage:  # v2
        details = usage.get("input_tokens_details")
        cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
        return _int(usage.get("input_tokens")), _int(usage.get("output_tokens")), _int(cached)
    return (
        _int(usage.get("prompt_tokens")),
        _int(usage.get("completion_tokens")),
        _int(usage.get("precached_prompt_tokens")),
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _id_header(value: Any, field: str) -> str:
    return _wire.header_value(P.text(value, field), field)


# --- operations ----------------------------------------------------------------------------


def open_stream(
    core: ClientCore, request: Request, state: Callable[[ResponseMeta], StreamState[Any, Any]]
) -> Flow[OpenStream]:
    """Send a streaming request; once the response headers arrive, hand over the open stream
    (under a span that the stream ends, when telemetry is on)."""
    hook = core.hook()
    try:
        if hook is None:
            response = yield from core.raw_send(request)
            _check_event_stream(response)
            span = None
        else:
            response, span = yield from hook.traced(
                core.raw_send(request), request, _check_event_stream, core.content(hook), keep_open=True
            )
    except GigaChatError:
        core.usage.record(model_of(request), error=True)
        raise
    return OpenStream(
        response,
        state(response.meta()),
        request.timeout.read,
        request.deadline,
        telemetry=span,
        usage=core.usage,
        model=model_of(request),
    )


def observe(source: Iterator[bytes], opened: OpenStream) -> Iterator[bytes]:
    """The driver's byte iterator, telling the stream's span of the first bytes and of a failure."""
    span = opened.telemetry
    try:
        for data in source:
            span.chunk()
            yield data
    except Exception as exc:
        opened.failure = getattr(getattr(exc, "failure", None), "exc", None) or exc
        raise


async def observe_async(source: AsyncIterator[bytes], opened: OpenStream) -> AsyncIterator[bytes]:
    """:func:`observe` for an async byte iterator (a cancelled read counts as a failure)."""
    span = opened.telemetry
    try:
        async for data in source:
            span.chunk()
            yield data
    except BaseException as exc:
        if not isinstance(exc, GeneratorExit):
            opened.failure = getattr(getattr(exc, "failure", None), "exc", None) or exc
        raise


def _check_event_stream(response: Response) -> Response:
    ctype = response.headers.get("content-type", "")
    if not ctype.startswith("text/event-stream"):
        if response.raw is not None:
            response.raw.close()
        raise invalid_body(response, TypeError(f"expected text/event-stream, got {ctype or 'no content type'}"))
    return response


# --- batches -------------------------------------------------------------------------------
