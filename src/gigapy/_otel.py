"""OpenTelemetry spans and metrics for gigapy calls (the GenAI semantic conventions).

Imported only once telemetry is on (see ``gigapy._telemetry``). One span per logical API call
(its retries included), kind CLIENT, named ``"{operation} {model}"``; a stream's span ends when
the stream ends or is closed, with the final usage. The span's context goes out as
``traceparent``. Never a header value, key or token in an attribute: only the request fields
listed here, the response's model, ids, finish reasons and usage, and (on opt-in) the messages.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from opentelemetry import baggage, context, metrics, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from . import errors
from ._core.flow import Flow, Request, Response, Sleep
from ._version import __version__

T = TypeVar("T")

PROVIDER = "gigachat"
#: Bucket boundaries the GenAI conventions advise for the two histograms.
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
_REQUEST_FIELDS = ("temperature", "top_p", "max_tokens")
_ID_SEGMENT = re.compile(r"^(?=.*\d)[0-9A-Za-z_-]{8,}$")

#: (method, path) -> gen_ai.operation.name; the GenAI names where one fits, gigapy's own otherwise.
_OPERATIONS = {
    ("POST", "/chat/completions"): "chat",
    ("POST", "/threads/messages/run"): "chat",
    ("POST", "/threads/run"): "chat",
    ("POST", "/threads/messages/rerun"): "chat",
    ("POST", "/embeddings"): "embeddings",
    ("POST", "/tokens/count"): "count_tokens",
    ("GET", "/models"): "list_models",
    ("GET", "/models/{id}"): "get_model",
    ("POST", "/files"): "upload_file",
    ("GET", "/files"): "list_files",
    ("GET", "/files/{id}"): "get_file",
    ("POST", "/files/{id}/delete"): "delete_file",
    ("GET", "/files/{id}/content"): "download_file",
    ("GET", "/balance"): "get_balance",
}


_NAMED = frozenset({"models", "files", "batches"})  # /<collection>/<name or id>/...


def route(request: Request) -> str:
    """The request's path with ids replaced by ``{id}`` (low cardinality)."""
    path = request.path or urlsplit(request.url).path
    parts = path.split("/")
    for i, part in enumerate(parts):
        if (i == 2 and parts[1] in _NAMED) or _ID_SEGMENT.match(part):
            parts[i] = "{id}"
    return "/".join(parts)


def operation(request: Request) -> str:
    """The ``gen_ai.operation.name`` of a request."""
    key = (request.method, route(request))
    name = _OPERATIONS.get(key)
    if name is not None:
        return name
    return key[1].strip("/").replace("/", ".").replace("{id}", "id") or "request"


def error_type(exc: BaseException) -> str:
    """``error.type``: the HTTP status for a status error, else the exception's class name."""
    if isinstance(exc, errors.APIStatusError):
        return str(exc.status_code)
    return type(exc).__name__


def _server(url: str) -> tuple[str | None, int | None]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname, port


def _model_of(body: Any) -> str | None:
    model = body.get("model") if isinstance(body, Mapping) else None
    return model if isinstance(model, str) else None


class _Route:
    """What every call of one (method, route, server, requested model) shares, built once: the
    span name, the start attributes, and the metric attribute sets (per response model)."""

    __slots__ = ("_by_response", "attrs", "metric", "name", "op")

    def __init__(self, op: str, attrs: dict[str, Any], model: str | None) -> None:
        self.op = op
        self.name = f"{op} {model}" if model else op
        self.attrs = dict(attrs)
        if model:
            self.attrs["gen_ai.request.model"] = model
        self.metric: dict[str, Any] = dict(self.attrs)
        self._by_response: dict[str | None, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {}

    def metrics(self, response_model: str | None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """(duration, input tokens, output tokens) attribute sets for answers of this model; never
        mutated once made (the SDK copies what it keeps)."""
        found = self._by_response.get(response_model)
        if found is None:
            base = dict(self.metric)
            if response_model:
                base["gen_ai.response.model"] = response_model
            found = (base, {**base, "gen_ai.token.type": "input"}, {**base, "gen_ai.token.type": "output"})
            if len(self._by_response) > 64:  # model builds change rarely: keep it bounded
                self._by_response.clear()
            self._by_response[response_model] = found
        return found


_ROUTES: dict[tuple[str, str, str, Any], _Route] = {}


def _route(request: Request) -> _Route:
    """The cached :class:`_Route` of a request."""
    url, path = request.url, request.path
    base = url[: len(url) - len(path)] if path and url.endswith(path) else url
    body = request.body
    model = _model_of(body)
    key = (request.method, path, base, model)
    found = _ROUTES.get(key)
    if found is not None:
        return found
    op = operation(request)
    host, port = _server(url)
    attrs: dict[str, Any] = {"gen_ai.operation.name": op, "gen_ai.provider.name": PROVIDER}
    if host:
        attrs["server.address"] = host
    if port:
        attrs["server.port"] = port
    if len(_ROUTES) > 4096:  # paths with ids, many models: keep the cache bounded
        _ROUTES.clear()
    _ROUTES[key] = found = _Route(op, attrs, model)
    return found


def _request_attributes(request: Request, route: _Route) -> dict[str, Any]:
    attrs = dict(route.attrs)
    body = request.body
    if isinstance(body, Mapping):
        options = body.get("model_options")
        source = options if isinstance(options, Mapping) else body  # v2 nests them
        for name in _REQUEST_FIELDS:
            value = source.get(name)
            if value is not None and type(value) in (int, float):
                attrs[_REQUEST_KEYS[name]] = value
        if body.get("stream") is True:
            attrs["gigapy.stream"] = True
    headers = request.headers
    rid = headers.get("X-Request-ID")
    if rid:
        attrs["gigapy.request_id"] = rid
    sid = headers.get("X-Session-ID")
    if sid:
        attrs["gen_ai.conversation.id"] = sid
        attrs["gigapy.session_id"] = sid
    return attrs


_REQUEST_KEYS = {name: f"gen_ai.request.{name}" for name in _REQUEST_FIELDS}
_HAS: dict[tuple[type, str], bool] = {}


def _field(obj: Any, name: str) -> Any:
    """``getattr(obj, name, None)`` for the parsed answers without paying for an AttributeError
    on every call: which model classes lack which fields is remembered (a field the server adds
    later is still read, from the model's extras)."""
    cls = type(obj)
    fields = getattr(cls, "model_fields", None)
    if fields is None:  # not a pydantic model (None included)
        return getattr(obj, name, None)
    key = (cls, name)
    has = _HAS.get(key)
    if has is None:
        has = name in fields or getattr(cls, name, None) is not None  # a field or a property
        if len(_HAS) < 4096:
            _HAS[key] = has
    if has:
        return getattr(obj, name, None)
    extra = obj.__pydantic_extra__
    return extra.get(name) if extra else None


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _input_messages(body: Any) -> str | None:
    if not isinstance(body, Mapping):
        return None
    messages = body.get("messages")
    if messages is None:
        messages = body.get("input")
    return None if messages is None else _json(messages)


def usage_numbers(result: Any) -> tuple[int | None, int | None, int | None]:
    """(input, output, cached) tokens of a parsed answer, each None when it does not say."""
    usage = _field(result, "usage")
    if usage is None:
        prompt = _field(result, "prompt_tokens")  # Embeddings: per-item usage summed
        return (prompt if isinstance(prompt, int) and prompt else None), None, None
    if _field(usage, "input_tokens") is not None:  # v2
        details = _field(usage, "input_tokens_details")
        return _int(usage, "input_tokens"), _int(usage, "output_tokens"), _int(details, "cached_tokens")
    return _int(usage, "prompt_tokens"), _int(usage, "completion_tokens"), _int(usage, "precached_prompt_tokens")


def _int(obj: Any, name: str) -> int | None:
    value = _field(obj, name)  # other usage shapes (a filter check's) lack these
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _finish_reasons(result: Any) -> tuple[str, ...]:
    choices = _field(result, "choices")
    if isinstance(choices, list):
        return tuple(c.finish_reason for c in choices if _field(c, "finish_reason"))
    reason = _field(result, "finish_reason")
    return (reason,) if isinstance(reason, str) and reason else ()


def _output_messages(result: Any) -> str | None:
    choices = getattr(result, "choices", None)
    if isinstance(choices, list):
        return _json([c.message.model_dump(exclude_none=True) for c in choices])
    messages = getattr(result, "messages", None)
    if isinstance(messages, list):
        return _json([m.model_dump(exclude_none=True) for m in messages])
    return None


class Hook:
    """The tracer, the instruments, and the flow wrappers that use them."""

    def __init__(self, *, content: bool = False, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self.content = content
        self.tracer = trace.get_tracer("gigapy", __version__, tracer_provider=tracer_provider)
        meter = metrics.get_meter("gigapy", __version__, meter_provider=meter_provider)
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self.tokens = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Tokens used per GenAI operation",
            explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS),
        )
        self.first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time from the request until the first chunk of a streamed answer",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )
        self.retries = meter.create_counter(
            "gigapy.client.retries", unit="{retry}", description="Attempts repeated after a retryable failure"
        )
        self.quota_wait = meter.create_histogram(
            "gigapy.client.quota.wait",
            unit="s",
            description="Time a request waited for a slot of the account's concurrency quota "
            "(the client's gate or a fleet lease through the coordinator)",
            explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
        )

    # --- spans -------------------------------------------------------------------------------

    def span(self, name: str, attributes: Mapping[str, Any], kind: Any = SpanKind.INTERNAL) -> Any:
        """A context manager: a span made current (the bulk runner's run and items, ``gigapy serve``)."""
        return self.tracer.start_as_current_span(
            name, kind=kind, attributes={"gen_ai.provider.name": PROVIDER, **attributes}
        )

    def _start(self, request: Request, content: bool) -> tuple[Any, _Route]:
        route = _route(request)
        span = self.tracer.start_span(route.name, kind=SpanKind.CLIENT, attributes=_request_attributes(request, route))
        if content and span.is_recording():
            text = _input_messages(request.body)
            if text is not None:
                span.set_attribute("gen_ai.input.messages", text)
        inject(request.headers, span)
        return span, route

    def traced(
        self,
        flow: Flow[Response],
        request: Request,
        parse: Callable[[Response], T],
        content: bool,
        keep_open: bool = False,
    ) -> Flow[tuple[T, Any]]:
        """Run ``flow`` (the send flow of ``request``) and ``parse`` under one span; returns
        (parsed, the open :class:`StreamSpan` when ``keep_open`` else None)."""
        span, route = self._start(request, content)
        started = time.perf_counter()
        retries = 0
        result: Any = None
        try:
            while True:
                try:
                    action = flow.send(result)
                except StopIteration as stop:
                    response: Response = stop.value
                    break
                if type(action) is Sleep:
                    retries += 1
                result = yield action
            value = parse(response)
        except GeneratorExit:  # the caller was cancelled while a request was in flight
            flow.close()
            self._fail(span, route, "cancelled", None, started, retries, self._waited(request, route, {}))
            raise
        except BaseException as exc:
            self._fail(span, route, error_type(exc), exc, started, retries, self._waited(request, route, {}))
            raise
        attrs = self._waited(request, route, _response_attributes(response))
        if keep_open:
            return value, StreamSpan(self, span, route, started, retries, content, attrs)
        self._done(span, route, value, content, started, retries, attrs)
        return value, None

    def _waited(self, request: Request, route: _Route, attrs: dict[str, Any]) -> dict[str, Any]:
        """The wait for a quota slot (gate or fleet lease), when one gated the request: recorded,
        and added to the span's attributes ``attrs`` as ``gigapy.quota.wait`` (seconds)."""
        queued = request.queued
        if queued is not None:
            self.quota_wait.record(queued, route.metric)
            attrs["gigapy.quota.wait"] = queued
        return attrs

    def _done(
        self,
        span: Any,
        route: _Route,
        value: Any,
        content: bool,
        started: float,
        retries: int,
        attrs: dict[str, Any],
    ) -> None:
        """A call that succeeded: the answer's attributes in one call, the metrics, the end."""
        model = _field(value, "model") if value is not None else None
        response_model = model if isinstance(model, str) and model else None
        inp, out, cached = usage_numbers(value) if value is not None else (None, None, None)
        duration_attrs, input_attrs, output_attrs = route.metrics(response_model)
        if span.is_recording():  # a sampled-out span: no attribute work
            if response_model:
                attrs["gen_ai.response.model"] = response_model
            if value is not None:
                rid = _field(value, "id") or _field(value, "message_id")
                if isinstance(rid, str) and rid:
                    attrs["gen_ai.response.id"] = rid
                reasons = _finish_reasons(value)
                if reasons:
                    attrs["gen_ai.response.finish_reasons"] = reasons
            if inp is not None:
                attrs["gen_ai.usage.input_tokens"] = inp
            if out is not None:
                attrs["gen_ai.usage.output_tokens"] = out
            if cached is not None:
                attrs["gen_ai.usage.cache_read.input_tokens"] = cached
            if retries:
                attrs["gigapy.retries"] = retries
            if content and value is not None:
                text = _output_messages(value)
                if text is not None:
                    attrs["gen_ai.output.messages"] = text
            if attrs:
                span.set_attributes(attrs)
        if inp is not None:
            self.tokens.record(inp, input_attrs)
        if out is not None:
            self.tokens.record(out, output_attrs)
        if retries:
            self.retries.add(retries, duration_attrs)
        self.duration.record(time.perf_counter() - started, duration_attrs)
        span.end()

    def _fail(
        self,
        span: Any,
        route: _Route,
        kind: str,
        exc: BaseException | None,
        started: float,
        retries: int,
        attrs: dict[str, Any] | None = None,
    ) -> None:
        """A call that failed (or was cancelled): ``error.type``, status ERROR, the metrics, the end."""
        attrs = {} if attrs is None else attrs
        attrs["error.type"] = kind
        if isinstance(exc, errors.APIError) and exc.request_id:
            attrs["gigapy.response.request_id"] = exc.request_id
        if retries:
            attrs["gigapy.retries"] = retries
        span.set_attributes(attrs)
        message = type(exc).__name__ if exc is not None else kind
        span.set_status(Status(StatusCode.ERROR, message))  # the class only: a message may quote input
        metric = {**route.metric, "error.type": kind}
        if retries:
            self.retries.add(retries, metric)
        self.duration.record(time.perf_counter() - started, metric)
        span.end()

    def serve_start(self, exchange: Any, method: str, path: str, headers: Mapping[str, str] | None) -> ServeSpan:
        """The span of one request to the OpenAI-compatible layer, made current: kind SERVER,
        the GenAI attributes of what was asked, parented by the caller's ``traceparent`` when
        ``headers`` are given."""
        kind = exchange.kind
        op = _SERVE_OPERATIONS.get(kind, kind)
        model = exchange.model if isinstance(exchange.model, str) and exchange.model else None
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": op,
            "gen_ai.provider.name": PROVIDER,
            "http.request.method": method,
            "url.path": path,
            "gigapy.request_id": exchange.request_id,
            "gigapy.serve.api": f"{exchange.shape}.{kind}",
        }
        if model:
            attrs["gen_ai.request.model"] = model
        if exchange.stream:
            attrs["gigapy.stream"] = True
        parent = propagate.extract(headers) if headers is not None else None
        span = self.tracer.start_span(
            f"{op} {model}" if model else op,
            context=parent,
            kind=SpanKind.SERVER,
            attributes=attrs,
            record_exception=False,  # an exception's message may quote the input
            set_status_on_exception=False,
        )
        return ServeSpan(span, context.attach(trace.set_span_in_context(span, parent)))


def _response_attributes(response: Response) -> dict[str, Any]:
    rid = response.headers.get("x-request-id")
    if rid:
        sent = response.request
        if sent is None or rid != sent.headers.get("X-Request-ID"):  # the server's own id for the call
            return {"gigapy.response.request_id": rid}
    return {}


_FAST_TEXTMAP: list[Any] = [None, False]  # [the global propagator seen last, whether it is the default one]


def _is_default(textmap: Any) -> bool:
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not isinstance(textmap, CompositePropagator):
        return False
    kinds = [type(p) for p in getattr(textmap, "_propagators", ())]
    return kinds == [TraceContextTextMapPropagator, W3CBaggagePropagator]


def inject(headers: Any, span: Any) -> None:
    """Put the span's context into ``headers`` through the configured propagators. With the
    default ones (W3C trace context and baggage), ``traceparent`` is formatted here from the span
    context (the same header, without building a context), and baggage only when there is some."""
    textmap = propagate.get_global_textmap()
    if textmap is not _FAST_TEXTMAP[0]:
        _FAST_TEXTMAP[:] = [textmap, _is_default(textmap)]
    if not _FAST_TEXTMAP[1]:
        propagate.inject(headers, context=trace.set_span_in_context(span))
        return
    ctx = span.get_span_context()
    if ctx.is_valid:
        headers["traceparent"] = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
        if ctx.trace_state:
            headers["tracestate"] = ctx.trace_state.to_header()
    if baggage.get_all():
        propagate.inject(headers, context=trace.set_span_in_context(span))


_SERVE_OPERATIONS = {
    "chat": "chat",
    "responses": "chat",
    "messages": "chat",
    "embeddings": "embeddings",
    "models": "list_models",
    "model": "get_model",
}


class ServeSpan:
    """An open span of the OpenAI-compatible layer and the context token that made it current."""

    __slots__ = ("span", "token")

    def __init__(self, span: Any, token: Any) -> None:
        self.span = span
        self.token = token

    def end(self, status: int) -> None:
        """End the span with the reply's HTTP status (5xx: ``error.type`` and status ERROR)."""
        span = self.span
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_attribute("error.type", str(status))
            span.set_status(Status(StatusCode.ERROR, str(status)))
        span.end()
        context.detach(self.token)


class StreamSpan:
    """The span of an open stream: ended by the driver when the stream ends or is closed."""

    __slots__ = ("_attrs", "_content", "_first", "_hook", "_retries", "_route", "_started", "ended", "span")

    def __init__(
        self,
        hook: Hook,
        span: Any,
        route: _Route,
        started: float,
        retries: int,
        content: bool,
        attrs: dict[str, Any],
    ) -> None:
        self._hook = hook
        self.span = span
        self._route = route
        self._started = started
        self._retries = retries
        self._content = content
        self._attrs = attrs
        self._first = False
        self.ended = False

    def chunk(self) -> None:
        """Bytes of the answer arrived: the first time, time to first chunk is recorded."""
        if not self._first:
            self._first = True
            elapsed = time.perf_counter() - self._started
            self.span.add_event("gen_ai.first_chunk")
            self._hook.first_chunk.record(elapsed, self._route.metric)

    def end(self, state: Any, exc: BaseException | None = None) -> Any:
        """End the span (once): with the final answer when the stream completed, ``error.type``
        when it broke, ``gigapy.stream.closed_early`` when the consumer closed it first.
        Returns the final answer, or None."""
        if self.ended:
            return None
        self.ended = True
        final: Any = None
        try:
            if state.complete():
                final = state.final()
        except Exception:
            final = None
        attrs = self._attrs
        attrs["gigapy.stream.chunks"] = state.count
        if exc is not None:
            self._hook._fail(self.span, self._route, error_type(exc), exc, self._started, self._retries, attrs)
            return final
        if final is None:
            attrs["gigapy.stream.closed_early"] = True
        self._hook._done(self.span, self._route, final, self._content, self._started, self._retries, attrs)
        return final
