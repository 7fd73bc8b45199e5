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

from opentelemetry import metrics, propagate, trace
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


_STATIC: dict[tuple[str, str, str], tuple[str, dict[str, Any]]] = {}


def _static(request: Request) -> tuple[str, dict[str, Any]]:
    """(operation, the attributes that depend only on the method, route and server), cached."""
    url, path = request.url, request.path
    base = url[: len(url) - len(path)] if path and url.endswith(path) else url
    key = (request.method, path, base)
    found = _STATIC.get(key)
    if found is not None:
        return found
    op = operation(request)
    host, port = _server(url)
    attrs: dict[str, Any] = {"gen_ai.operation.name": op, "gen_ai.provider.name": PROVIDER}
    if host:
        attrs["server.address"] = host
    if port:
        attrs["server.port"] = port
    if len(_STATIC) > 4096:  # paths with ids: keep the cache bounded
        _STATIC.clear()
    _STATIC[key] = found = (op, attrs)
    return found


def _request_attributes(request: Request, static: dict[str, Any]) -> dict[str, Any]:
    attrs = dict(static)
    body = request.body
    if isinstance(body, Mapping):
        model = _model_of(body)
        if model:
            attrs["gen_ai.request.model"] = model
        options = body.get("model_options")
        source = options if isinstance(options, Mapping) else body  # v2 nests them
        for name in _REQUEST_FIELDS:
            value = source.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                attrs[f"gen_ai.request.{name}"] = value
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
    usage = getattr(result, "usage", None)
    if usage is None:
        prompt = getattr(result, "prompt_tokens", None)  # Embeddings: per-item usage summed
        return (prompt if isinstance(prompt, int) and prompt else None), None, None
    if hasattr(usage, "input_tokens"):  # v2
        details = getattr(usage, "input_tokens_details", None)
        return _int(usage, "input_tokens"), _int(usage, "output_tokens"), _int(details, "cached_tokens")
    return _int(usage, "prompt_tokens"), _int(usage, "completion_tokens"), _int(usage, "precached_prompt_tokens")


def _int(obj: Any, name: str) -> int | None:
    value = getattr(obj, name, None)  # other usage shapes (a filter check's) lack these
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _finish_reasons(result: Any) -> tuple[str, ...]:
    choices = getattr(result, "choices", None)
    if isinstance(choices, list):
        return tuple(c.finish_reason for c in choices if getattr(c, "finish_reason", None))
    reason = getattr(result, "finish_reason", None)
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

    # --- spans -------------------------------------------------------------------------------

    def span(self, name: str, attributes: Mapping[str, Any]) -> Any:
        """A context manager: an INTERNAL span made current (the bulk runner's run and items)."""
        return self.tracer.start_as_current_span(
            name, kind=SpanKind.INTERNAL, attributes={"gen_ai.provider.name": PROVIDER, **attributes}
        )

    def _start(self, request: Request, content: bool) -> tuple[Any, dict[str, Any]]:
        op, static = _static(request)
        attrs = _request_attributes(request, static)
        model = attrs.get("gen_ai.request.model")
        span = self.tracer.start_span(f"{op} {model}" if model else op, kind=SpanKind.CLIENT, attributes=attrs)
        if content and span.is_recording():
            text = _input_messages(request.body)
            if text is not None:
                span.set_attribute("gen_ai.input.messages", text)
        propagate.inject(request.headers, context=trace.set_span_in_context(span))
        metric_attrs = dict(static)
        if model:
            metric_attrs["gen_ai.request.model"] = model
        return span, metric_attrs

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
        span, metric_attrs = self._start(request, content)
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
            self._end_error(span, metric_attrs, "cancelled", None, started, retries)
            raise
        except BaseException as exc:
            self._end_error(span, metric_attrs, error_type(exc), exc, started, retries)
            raise
        if keep_open:
            self._response(span, response)
            return value, StreamSpan(self, span, metric_attrs, started, retries, content)
        self._response(span, response)
        self._result(span, metric_attrs, value, content)
        self._finish(span, metric_attrs, started, retries)
        return value, None

    def _response(self, span: Any, response: Response) -> None:
        rid = response.headers.get("x-request-id")
        sent = response.request.headers.get("X-Request-ID") if response.request is not None else None
        if rid and rid != sent:  # the server's own id for the call
            span.set_attribute("gigapy.response.request_id", rid)

    def _result(self, span: Any, metric_attrs: dict[str, Any], value: Any, content: bool) -> None:
        attrs: dict[str, Any] = {}
        model = getattr(value, "model", None)
        if isinstance(model, str) and model:
            attrs["gen_ai.response.model"] = model
            metric_attrs["gen_ai.response.model"] = model
        rid = getattr(value, "id", None) or getattr(value, "message_id", None)
        if isinstance(rid, str) and rid:
            attrs["gen_ai.response.id"] = rid
        reasons = _finish_reasons(value)
        if reasons:
            attrs["gen_ai.response.finish_reasons"] = reasons
        inp, out, cached = usage_numbers(value)
        if inp is not None:
            attrs["gen_ai.usage.input_tokens"] = inp
            self.tokens.record(inp, {**metric_attrs, "gen_ai.token.type": "input"})
        if out is not None:
            attrs["gen_ai.usage.output_tokens"] = out
            self.tokens.record(out, {**metric_attrs, "gen_ai.token.type": "output"})
        if cached is not None:
            attrs["gen_ai.usage.cache_read.input_tokens"] = cached
        span.set_attributes(attrs)
        if content and span.is_recording():
            text = _output_messages(value)
            if text is not None:
                span.set_attribute("gen_ai.output.messages", text)

    def _finish(self, span: Any, metric_attrs: dict[str, Any], started: float, retries: int) -> None:
        if retries:
            span.set_attribute("gigapy.retries", retries)
            self.retries.add(retries, metric_attrs)
        self.duration.record(time.perf_counter() - started, metric_attrs)
        span.end()

    def _end_error(
        self,
        span: Any,
        metric_attrs: dict[str, Any],
        kind: str,
        exc: BaseException | None,
        started: float,
        retries: int,
    ) -> None:
        span.set_attribute("error.type", kind)
        metric_attrs["error.type"] = kind
        if isinstance(exc, errors.APIError) and exc.request_id:
            span.set_attribute("gigapy.response.request_id", exc.request_id)
        message = type(exc).__name__ if exc is not None else kind
        span.set_status(Status(StatusCode.ERROR, message))  # the class only: a message may quote input
        self._finish(span, metric_attrs, started, retries)


class StreamSpan:
    """The span of an open stream: ended by the driver when the stream ends or is closed."""

    __slots__ = ("_content", "_first", "_hook", "_metric_attrs", "_retries", "_started", "ended", "span")

    def __init__(
        self, hook: Hook, span: Any, metric_attrs: dict[str, Any], started: float, retries: int, content: bool
    ) -> None:
        self._hook = hook
        self.span = span
        self._metric_attrs = metric_attrs
        self._started = started
        self._retries = retries
        self._content = content
        self._first = False
        self.ended = False

    def chunk(self) -> None:
        """Bytes of the answer arrived: the first time, time to first chunk is recorded."""
        if not self._first:
            self._first = True
            elapsed = time.perf_counter() - self._started
            self.span.add_event("gen_ai.first_chunk")
            self._hook.first_chunk.record(elapsed, self._metric_attrs)

    def end(self, state: Any, exc: BaseException | None = None) -> Any:
        """End the span (once): with the final answer when the stream completed, ``error.type``
        when it broke, ``gigapy.stream.closed_early`` when the consumer closed it first.
        Returns the final answer, or None."""
        if self.ended:
            return None
        self.ended = True
        hook, span = self._hook, self.span
        final: Any = None
        try:
            if state.complete():
                final = state.final()
        except Exception:
            final = None
        if final is not None:
            hook._result(span, self._metric_attrs, final, self._content)
        span.set_attribute("gigapy.stream.chunks", state.count)
        if exc is not None:
            hook._end_error(span, self._metric_attrs, error_type(exc), exc, self._started, self._retries)
        elif final is None:
            span.set_attribute("gigapy.stream.closed_early", True)
            hook._finish(span, self._metric_attrs, self._started, self._retries)
        else:
            hook._finish(span, self._metric_attrs, self._started, self._retries)
        return final
