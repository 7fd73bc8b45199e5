"""Telemetry of the OpenAI-compatible layer, with the real OpenTelemetry SDK (in-memory exporters):
``gigapy serve`` makes a SERVER span per request, parented by the caller's ``traceparent`` and
parent of the GigaChat call's CLIENT span; the in-process bridge (sync and async) the same, under
the caller's current span; no key of the server or of GigaChat in any attribute."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

import gigapy
import gigapy.openai
from gigapy import AsyncGigaChat
from gigapy.emulator import DEMO_CREDENTIALS
from gigapy.testing import client_settings
from tests.client.test_telemetry import Telemetry
from tests.conftest import run

from .test_inprocess import USER

KEY = "sk-team-0123456789"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    tel = Telemetry()
    yield tel
    gigapy.uninstrument()


def _text(tel: Telemetry) -> str:
    return "\n".join(json.dumps(dict(s.attributes), default=str) + s.name for s in tel.spans())


def _servers(tel: Telemetry, count: int) -> list[Any]:
    """The SERVER spans once ``count`` of them ended (the server ends its span just after the reply)."""
    deadline = time.monotonic() + 10
    while True:
        found = [s for s in tel.spans() if s.kind is SpanKind.SERVER]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def _pair(tel: Telemetry) -> tuple[Any, Any]:
    """The SERVER span and the CLIENT chat span under it."""
    _servers(tel, 1)
    spans = tel.spans()
    [server] = [s for s in spans if s.kind is SpanKind.SERVER and s.attributes["gen_ai.operation.name"] == "chat"]
    [client] = [s for s in spans if s.kind is SpanKind.CLIENT and s.attributes["gen_ai.operation.name"] == "chat"]
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    assert client.context.trace_id == server.context.trace_id
    return server, client


def test_serve_span_joins_the_callers_trace(otel: Telemetry, live_server: Any, emu: Any) -> None:
    server = live_server(keys={KEY: "team"})
    headers = {"Authorization": f"Bearer {KEY}", "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
    body = {"model": "GigaChat-2", "messages": USER, "stream": True}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, headers=headers, timeout=30) as reply:
        frames = [line for line in reply.iter_lines() if line.startswith("data:")]
    assert frames[-1] == "data: [DONE]"
    srv, cli = _pair(otel)
    assert f"{srv.context.trace_id:032x}" == TRACE_ID and f"{srv.parent.span_id:016x}" == PARENT_ID
    a = srv.attributes
    assert srv.name == "chat GigaChat-2"
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.provider.name"] == "gigachat"
    assert a["gen_ai.request.model"] == "GigaChat-2" and a["gigapy.stream"] is True
    assert a["http.response.status_code"] == 200 and a["url.path"] == "/v1/chat/completions"
    assert a["gigapy.request_id"] == cli.attributes["gigapy.request_id"]  # the same id on both hops
    assert cli.attributes["gen_ai.usage.output_tokens"] > 0  # the stream's span ended with its usage
    assert srv.end_time >= cli.end_time  # the server span covers the whole stream
    # a refused request still gets its span, without the key
    refused = httpx.post(
        f"{server.url}/v1/chat/completions", json=body, headers={"Authorization": "Bearer sk-wrong-000000"}
    )
    assert refused.status_code == 401
    statuses = sorted(s.attributes["http.response.status_code"] for s in _servers(otel, 2))
    assert statuses == [200, 401]
    text = _text(otel)
    assert KEY not in text and "sk-wrong" not in text and DEMO_CREDENTIALS not in text


def test_serve_upstream_error_marks_the_span(otel: Telemetry, live_server: Any, emu: Any) -> None:
    server = live_server()
    emu.faults.enqueue("503")
    reply = httpx.post(f"{server.url}/v1/chat/completions", json={"model": "GigaChat-2", "messages": USER}, timeout=30)
    assert reply.status_code >= 500
    [srv] = _servers(otel, 1)
    assert srv.status.status_code is StatusCode.ERROR and srv.attributes["error.type"] == str(reply.status_code)
    [cli] = [s for s in otel.spans() if s.kind is SpanKind.CLIENT]
    assert cli.attributes["error.type"] == "503" and cli.parent.span_id == srv.context.span_id


def test_inprocess_bridge_spans_sync(otel: Telemetry, oai: Any) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handle ticket") as outer:
        answer = oai.chat.completions.create(model="GigaChat-2", messages=USER)
        assert trace.get_current_span() is outer  # the bridge put the caller's context back
    assert answer.choices[0].message.content
    srv, cli = _pair(otel)
    assert srv.parent.span_id == outer.get_span_context().span_id
    assert srv.attributes["http.response.status_code"] == 200
    assert cli.attributes["gen_ai.response.model"].startswith("GigaChat")
    assert DEMO_CREDENTIALS not in _text(otel)


def test_inprocess_bridge_spans_async(otel: Telemetry, emu: Any) -> None:
    async def go() -> Any:
        async with (
            AsyncGigaChat(**client_settings(emu, max_retries=0)) as giga,
            openai.AsyncOpenAI(
                base_url=gigapy.openai.BASE_URL,
                api_key="unused",
                max_retries=0,
                http_client=gigapy.openai.async_http_client(giga),
            ) as client,
        ):
            await client.embeddings.create(model="Embeddings", input="текст")
            return await client.chat.completions.create(model="GigaChat-2", messages=USER)

    assert run(go()).choices[0].message.content
    srv, _cli = _pair(otel)
    assert srv.attributes["gen_ai.operation.name"] == "chat"
    [emb] = [
        s for s in otel.spans() if s.kind is SpanKind.SERVER and s.attributes["gen_ai.operation.name"] == "embeddings"
    ]
    [emb_client] = [s for s in otel.spans("embeddings") if s.kind is SpanKind.CLIENT]
    assert emb_client.parent.span_id == emb.context.span_id
