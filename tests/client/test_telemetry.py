"""OpenTelemetry spans and metrics, with the real SDK (in-memory exporters) and the emulator over
loopback HTTP: GenAI attribute names and values per operation, sync and async; streams' spans end
with the final usage or when closed; content only on opt-in; no secret in any attribute; one
export over OTLP/HTTP to a receiver started here; the usage totals."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import gigapy
from gigapy import GigaChat
from gigapy.emulator import DEMO_CREDENTIALS
from gigapy.testing import client_settings
from gigapy.usage import PriceTable, estimate_cost
from tests.conftest import run


class Telemetry:
    """A tracer and meter provider with in-memory exporters, installed with gigapy.instrument()."""

    def __init__(self, capture_content: bool = False) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        gigapy.instrument(
            capture_content=capture_content, tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
        )

    def spans(self, op: str | None = None) -> list[Any]:
        found = self.exporter.get_finished_spans()
        return [s for s in found if op is None or s.attributes.get("gen_ai.operation.name") == op]

    def metrics(self) -> dict[str, list[Any]]:
        data = self.reader.get_metrics_data()
        out: dict[str, list[Any]] = {}
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    out.setdefault(metric.name, []).extend(metric.data.data_points)
        return out


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    tel = Telemetry()
    yield tel
    gigapy.uninstrument()


@pytest.fixture
def otel_content() -> Iterator[Telemetry]:
    tel = Telemetry(capture_content=True)
    yield tel
    gigapy.uninstrument()


def _secrets(client: Any) -> list[str]:
    token = client.authorization
    return [DEMO_CREDENTIALS, *([token] if token else [])]


def _all_text(tel: Telemetry) -> str:
    parts = []
    for span in tel.spans():
        parts.append(json.dumps(dict(span.attributes), default=str))
        parts.extend(json.dumps(dict(e.attributes or {}), default=str) for e in span.events)
        parts.append(span.name)
    parts.append(repr(tel.reader.get_metrics_data().to_json()))
    return "\n".join(parts)


def _check_chat_span(span: Any, emu: Any) -> None:
    a = span.attributes
    assert span.kind is SpanKind.CLIENT
    assert span.name == "chat GigaChat"
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "gigachat"
    assert a["gen_ai.request.model"] == "GigaChat"
    assert a["gen_ai.request.temperature"] == 0.3
    assert a["gen_ai.request.top_p"] == 0.9
    assert a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.response.model"].startswith("GigaChat")
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gen_ai.usage.input_tokens"] > 0
    assert a["gen_ai.usage.output_tokens"] > 0
    assert a["server.address"] == "127.0.0.1"
    assert a["server.port"] == int(emu.base_url.split(":")[2].split("/")[0])
    assert a["gigapy.request_id"] == "rid-telemetry-1"
    assert a["gen_ai.conversation.id"] == "sess-1"
    assert "error.type" not in a
    assert "gen_ai.input.messages" not in a and "gen_ai.output.messages" not in a  # content is opt-in


CHAT = {
    "model": "GigaChat",
    "temperature": 0.3,
    "top_p": 0.9,
    "max_tokens": 50,
    "request_id": "rid-telemetry-1",
    "session_id": "sess-1",
}


def test_sync_chat_span_metrics_and_traceparent(otel: Telemetry, make_client: Any, emu: Any) -> None:
    client = make_client()
    answer = client.completion("Привет", **CHAT)
    [span] = otel.spans("chat")
    _check_chat_span(span, emu)
    assert span.attributes["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens
    # the span's context went out as traceparent on the API call (not on the token request)
    sent = [r for r in emu.requests if r.path.endswith("/chat/completions")][-1]
    trace_id = f"{span.context.trace_id:032x}"
    span_id = f"{span.context.span_id:016x}"
    version, sent_trace, sent_span, flags = sent.headers["traceparent"].split("-")
    assert (version, sent_trace, sent_span) == ("00", trace_id, span_id)
    assert int(flags, 16) & 1  # sampled
    metrics = otel.metrics()
    [duration] = metrics["gen_ai.client.operation.duration"]
    assert duration.count == 1 and duration.sum > 0
    assert duration.attributes["gen_ai.operation.name"] == "chat"
    assert duration.attributes["gen_ai.response.model"] == span.attributes["gen_ai.response.model"]
    tokens = {p.attributes["gen_ai.token.type"]: p.sum for p in metrics["gen_ai.client.token.usage"]}
    assert tokens == {"input": answer.usage.prompt_tokens, "output": answer.usage.completion_tokens}
    secrets = _secrets(client)
    text = _all_text(otel)
    assert not [s for s in secrets if s in text]


def test_async_chat_span(otel: Telemetry, make_async: Any, emu: Any) -> None:
    async def main() -> None:
        async with make_async() as client:
            await client.completion("Привет", **CHAT)
            secrets = _secrets(client)
        [span] = otel.spans("chat")
        _check_chat_span(span, emu)
        text = _all_text(otel)
        assert not [s for s in secrets if s in text]

    run(main())


@pytest.mark.parametrize("coordinator", [None, "memory://?limit=1"], ids=["client-gate", "fleet-lease"])
def test_quota_wait_on_spans_and_metric(otel: Telemetry, make_async: Any, coordinator: str | None) -> None:
    """Requests that waited for a slot of the account's quota (the client's gate: PERS allows 1;
    or a fleet lease through the coordinator) say how long, on their span and in a histogram."""
    extra = {} if coordinator is None else {"coordinator": coordinator}

    async def main() -> None:
        async with make_async(**extra) as client:
            await asyncio.gather(*(client.completion(f"q{i}", **CHAT) for i in range(3)))
            await client.embedding(["x"], model="Embeddings")  # gated as well, by its own kind of slot

    run(main())
    spans = otel.spans("chat")
    assert len(spans) == 3
    waits = sorted(s.attributes["gigapy.quota.wait"] for s in spans)
    assert all(isinstance(w, float) and w >= 0 for w in waits)
    assert waits[-1] > 0  # one slot for three calls: the last waited for two answers
    assert waits[-1] >= waits[0]
    [embedding] = otel.spans("embeddings")
    assert embedding.attributes["gigapy.quota.wait"] >= 0
    [point] = [p for p in otel.metrics()["gigapy.client.quota.wait"] if p.attributes["gen_ai.operation.name"] == "chat"]
    assert point.count == 3
    assert point.sum == pytest.approx(sum(waits))
    [model_list] = otel.spans("models") or [None]
    assert model_list is None or "gigapy.quota.wait" not in model_list.attributes  # no quota gates it


def test_parent_span_and_v2(otel: Telemetry, make_client: Any) -> None:
    tracer = otel.tracer_provider.get_tracer("app")
    client = make_client()
    with tracer.start_as_current_span("handler") as parent:
        client.v2.completion("Привет", model="GigaChat", model_options={"temperature": 0.5, "max_tokens": 20})
    [span] = otel.spans("chat")
    assert span.parent is not None and span.parent.span_id == parent.get_span_context().span_id
    assert span.attributes["gen_ai.request.temperature"] == 0.5
    assert span.attributes["gen_ai.request.max_tokens"] == 20
    assert span.attributes["gen_ai.usage.input_tokens"] > 0


def test_sync_stream_span_ends_with_usage(otel: Telemetry, make_client: Any) -> None:
    client = make_client()
    with client.completion_stream("Расскажи сказку", model="GigaChat") as stream:
        assert otel.spans("chat") == []  # open while the stream is read
        final = stream.get_final_completion()
    [span] = otel.spans("chat")
    a = span.attributes
    assert a["gigapy.stream"] is True
    assert a["gen_ai.usage.output_tokens"] == final.usage.completion_tokens > 0
    assert a["gen_ai.response.finish_reasons"] == ("stop",)
    assert a["gigapy.stream.chunks"] == stream.chunks_received
    assert [e.name for e in span.events] == ["gen_ai.first_chunk"]
    assert "gigapy.stream.closed_early" not in a
    [first] = otel.metrics()["gen_ai.client.operation.time_to_first_chunk"]
    assert first.count == 1
    assert client.usage["GigaChat"].completion_tokens == final.usage.completion_tokens


def test_async_stream_closed_early_and_cancelled(otel: Telemetry, make_async: Any, emu: Any) -> None:
    emu.faults.set("chunk_delay_ms:20")

    async def main() -> None:
        async with make_async() as client:
            async with client.completion_stream("Расскажи длинную сказку", model="GigaChat") as stream:
                async for _ in stream:
                    break  # closed after the first chunk
            assert len(otel.spans("chat")) == 1

            async def read_all() -> None:
                async with client.completion_stream("Расскажи длинную сказку", model="GigaChat") as s:
                    async for _ in s:
                        pass

            task = asyncio.ensure_future(read_all())
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    try:
        run(main())
    finally:
        emu.faults.clear()
    early, cancelled = otel.spans("chat")
    assert early.attributes["gigapy.stream.closed_early"] is True
    assert "gen_ai.usage.output_tokens" not in early.attributes
    assert cancelled.end_time is not None
    assert (
        cancelled.attributes.get("error.type") == "CancelledError"
        or cancelled.attributes.get("gigapy.stream.closed_early") is True
    )


def test_stream_broken_sets_error_type(otel: Telemetry, make_client: Any, emu: Any) -> None:
    client = make_client(max_retries=0)
    emu.faults.enqueue("stream_drop")
    with pytest.raises(gigapy.StreamError), client.completion_stream("Расскажи сказку", model="GigaChat") as s:
        for _ in s:
            pass
    [span] = otel.spans("chat")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"]


def test_errors_and_retries(otel: Telemetry, make_client: Any, emu: Any) -> None:
    client = make_client(max_retries=2)
    emu.faults.enqueue("500")
    client.completion("Привет", model="GigaChat")
    [span] = otel.spans("chat")
    assert span.attributes["gigapy.retries"] == 1
    [retries] = otel.metrics()["gigapy.client.retries"]
    assert retries.value == 1
    emu.faults.enqueue("402")
    with pytest.raises(gigapy.PaymentRequiredError):
        client.completion("Привет", model="GigaChat")
    failed = otel.spans("chat")[-1]
    assert failed.attributes["error.type"] == "402"
    assert failed.status.status_code is StatusCode.ERROR
    assert client.usage["GigaChat"].errors == 1
    assert client.usage["GigaChat"].requests == 2


def test_embeddings_and_files(otel: Telemetry, make_client: Any) -> None:
    client = make_client()
    result = client.embedding(["один", "два"], model="Embeddings")
    [span] = otel.spans("embeddings")
    assert span.name == "embeddings Embeddings"
    assert span.attributes["gen_ai.request.model"] == "Embeddings"
    assert span.attributes["gen_ai.usage.input_tokens"] == result.prompt_tokens > 0
    uploaded = client.upload_file(b"hello", filename="a.txt", content_type="text/plain")
    client.get_all_files()
    client.download_file(uploaded.id)
    client.delete_file(uploaded.id)
    ops = [s.attributes["gen_ai.operation.name"] for s in otel.spans()]
    assert ops[1:] == ["upload_file", "list_files", "download_file", "delete_file"]
    assert all(s.attributes["gen_ai.provider.name"] == "gigachat" for s in otel.spans())
    assert client.usage["Embeddings"].prompt_tokens == result.prompt_tokens


def test_content_only_on_opt_in(otel_content: Telemetry, make_client: Any) -> None:
    client = make_client()
    answer = client.completion("Секретное слово: жираф", model="GigaChat")
    [span] = otel_content.spans("chat")
    assert "жираф" in span.attributes["gen_ai.input.messages"]
    assert answer.text in span.attributes["gen_ai.output.messages"]
    # a client may turn it off for itself
    quiet = make_client(telemetry_content=False)
    quiet.completion("Секретное слово: жираф", model="GigaChat")
    assert "gen_ai.input.messages" not in otel_content.spans("chat")[-1].attributes


def test_per_client_setting(otel: Telemetry, make_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    make_client(telemetry=False).completion("Привет", model="GigaChat")
    assert otel.spans() == []
    monkeypatch.setenv("GIGACHAT_TELEMETRY", "false")
    make_client().completion("Привет", model="GigaChat")
    assert otel.spans() == []
    monkeypatch.setenv("GIGACHAT_TELEMETRY", "maybe")
    with pytest.raises(gigapy.ConfigurationError, match="GIGACHAT_TELEMETRY"):
        make_client()


def test_bulk_runner_run_and_item_spans(otel: Telemetry, make_async: Any, tmp_path: Path) -> None:
    from gigapy.bulk import run_bulk

    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"r{i}",
                    "request": {"model": "GigaChat", "messages": [{"role": "user", "content": f"вопрос {i}"}]},
                }
            )
            + "\n"
            for i in range(5)
        ),
        encoding="utf-8",
    )

    async def main() -> Any:
        async with make_async() as client:
            return await run_bulk(client, source, tmp_path / "out.jsonl", concurrency=2)

    summary = run(main())
    assert summary.done == 5
    spans = otel.spans()
    [root] = [s for s in spans if s.name == "gigapy.bulk chat"]
    items = [s for s in spans if s.name == "gigapy.bulk.item"]
    chats = otel.spans("chat")
    assert len(items) == 5 and len(chats) == 5
    assert all(i.parent.span_id == root.context.span_id for i in items)
    item_ids = {i.context.span_id for i in items}
    assert all(c.parent.span_id in item_ids for c in chats)
    assert {c.context.trace_id for c in chats} == {root.context.trace_id}
    assert summary.usage["GigaChat"]["requests"] == 5
    assert summary.to_dict()["usage"]["GigaChat"]["completion_tokens"] > 0
    assert summary.cost["estimate"] is True


def test_off_imports_no_opentelemetry(emu: Any) -> None:
    """Telemetry off: a client makes calls and opentelemetry is never imported."""
    settings = client_settings(emu)
    code = (
        "import sys, gigapy\n"
        f"c = gigapy.GigaChat(**{settings!r})\n"
        "c.completion('hi', model='GigaChat')\n"
        "with c.completion_stream('hi', model='GigaChat') as s:\n"
        "    s.get_final_completion()\n"
        "c.embedding(['a'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


# --- OTLP/HTTP to a receiver started here ---------------------------------------------------------


class _Receiver(BaseHTTPRequestHandler):
    spans: list[Any] = []  # noqa: RUF012 - one class per test server (see below)

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            req = ExportTraceServiceRequest()
            req.ParseFromString(body)
            for resource in req.resource_spans:
                for scope in resource.scope_spans:
                    self.spans.extend(scope.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_export_over_otlp_http(emu: Any) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    handler = type("Receiver", (_Receiver,), {"spans": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        provider = TracerProvider()
        provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=f"http://127.0.0.1:{server.server_port}/v1/traces", timeout=10)
            )
        )
        with GigaChat(**client_settings(emu), telemetry=True) as client:
            gigapy.instrument(tracer_provider=provider)
            try:
                client.completion("Привет", model="GigaChat")
                client.embedding(["a"])
            finally:
                gigapy.uninstrument()
            secrets = _secrets(client)
        provider.force_flush(10_000)
        provider.shutdown()
    finally:
        server.shutdown()
        server.server_close()
    names = sorted(s.name for s in handler.spans)
    assert names == ["chat GigaChat", "embeddings Embeddings"]
    wire = b"".join(s.SerializeToString() for s in handler.spans)
    assert not [s for s in secrets if s.encode() in wire]


# --- usage and cost -------------------------------------------------------------------------------


def test_usage_totals_without_telemetry(make_client: Any) -> None:
    client = make_client()
    a = client.completion("Привет", model="GigaChat")
    b = client.with_options(model="GigaChat-Pro").completion("Привет")
    assert client.usage["GigaChat"].prompt_tokens == a.usage.prompt_tokens
    assert client.usage["GigaChat-Pro"].completion_tokens == b.usage.completion_tokens
    total = client.usage.total()
    assert total.requests == 2 and total.errors == 0
    cost = estimate_cost(client.usage)
    assert cost["estimate"] is True and cost["rub"] > 0
    assert set(cost["by_model"]) == {"GigaChat", "GigaChat-Pro"}


def test_price_table_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "prices.json"
    path.write_text(
        json.dumps(
            {
                "version": "mine",
                "unit_tokens": 1000,
                "scopes": {
                    "GIGACHAT_API_CORP": {"tariff": "contract", "models": {"GigaChat": {"input": 1, "output": 2}}}
                },
            }
        )
    )
    monkeypatch.setenv("GIGAPY_PRICES", str(path))
    table = PriceTable.default()
    assert table.version == "mine"
    assert table.cost("GIGACHAT_API_CORP", "GigaChat:1.0.26.20", 1000, 500) == pytest.approx(2.0)
    usage = {"GigaChat": {"prompt_tokens": 2000, "completion_tokens": 0}, "Other": {"prompt_tokens": 1}}
    cost = estimate_cost(usage, "GIGACHAT_API_CORP")
    assert cost["rub"] == pytest.approx(2.0) and cost["unpriced"] == ["Other"]
    path.write_text(json.dumps({"scopes": {"X": {"models": {"GigaChat": {"input": -1}}}}}))
    with pytest.raises(gigapy.ConfigurationError, match=r"prices\.scopes\.X\.models\.GigaChat\.input"):
        PriceTable.default()


def test_bulk_budget_stops_cleanly(make_async: Any, tmp_path: Path) -> None:
    from gigapy.bulk import run_bulk

    source = tmp_path / "in.jsonl"
    request = {"model": "GigaChat", "messages": [{"role": "user", "content": "вопрос " * 50}], "max_tokens": 100}
    source.write_text(
        "".join(json.dumps({"id": f"r{i}", "request": request}) + "\n" for i in range(20)), encoding="utf-8"
    )
    prices = PriceTable.checked(
        {"unit_tokens": 1000, "scopes": {"GIGACHAT_API_PERS": {"models": {"GigaChat": {"input": 10, "output": 10}}}}}
    )
    out = tmp_path / "out.jsonl"

    async def main(budget: float) -> Any:
        async with make_async() as client:
            return await run_bulk(client, source, out, concurrency=4, budget_rub=budget, prices=prices)

    first = run(main(10.0))
    assert first.budget_reached and first.status == "budget"
    assert 0 < first.done < 20 and first.failed == 0
    assert first.cost["rub"] <= 10.0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == first.done  # every answer sent is saved
    second = run(main(1000.0))  # a rerun sends the rest, none twice
    assert second.done == 20 and not second.budget_reached
    ids = [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(ids) == sorted(f"r{i}" for i in range(20))
