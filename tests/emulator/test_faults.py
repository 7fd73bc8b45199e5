"""Fault injection: statuses, Retry-After, drops, stalls, latency, stream faults, routes, admin API."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from gigapy.emulator import Emulator
from gigapy.emulator._faults import FaultSpec

from .conftest import Api, oauth, v1_chunks


def test_spec_parsing() -> None:
    spec = FaultSpec.parse("500:0.1, 429:0.05,drop:0.02,stream_drop:0.5,latency_ms:50,chunk_delay_ms:5,retry_after:3")
    assert spec.rates == {"500": 0.1, "429": 0.05, "drop": 0.02, "stream_drop": 0.5}
    assert (spec.latency_ms, spec.chunk_delay_ms, spec.retry_after) == (50, 5, 3)
    assert FaultSpec.parse("503").rates == {"503": 1.0}
    for bad in ("teapot:0.1", "500:abc", "500:1.5", "500:0.6,502:0.6", "latency_ms:-1"):
        with pytest.raises(ValueError):
            FaultSpec.parse(bad)


def test_enqueued_faults_hit_the_next_requests_in_order(emu: Emulator, api: Api) -> None:
    emu.faults.enqueue("500", "503")
    first, second, third = (api.get("models") for _ in range(3))
    assert (first.status_code, second.status_code, third.status_code) == (500, 503, 200)
    assert first.json() == {"status": 500, "message": "Internal Server Error"}
    assert first.headers["X-Request-ID"]


@pytest.mark.parametrize(("kind", "status"), [("402", 402), ("413", 413), ("422", 422), ("502", 502), ("504", 504)])
def test_status_faults_are_json(emu: Emulator, api: Api, kind: str, status: int) -> None:
    emu.faults.enqueue(kind)
    response = api.chat("hi")
    assert response.status_code == status
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    assert response.json()["status"] == status


def test_429_carries_retry_after(emu: Emulator, api: Api) -> None:
    emu.faults.enqueue("429")
    response = api.chat("hi")
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"
    assert response.json() == {"status": 429, "message": "Too many requests"}
    emu.faults.set("429:1,retry_after:7")
    assert api.chat("hi").headers["Retry-After"] == "7"


def test_html_500(emu: Emulator, api: Api) -> None:
    emu.faults.enqueue("500html")
    response = api.chat("hi")
    assert response.status_code == 500
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<center>nginx</center>" in response.text


def test_drop_closes_the_connection(emu: Emulator, api: Api) -> None:
    emu.faults.enqueue("drop")
    with pytest.raises(httpx.RemoteProtocolError):
        api.chat("hi")
    assert api.chat("hi").status_code == 200


def test_stall_and_stream_faults() -> None:
    with Emulator(stall_seconds=0.5) as emu:
        api = Api(emu)
        emu.faults.enqueue("stall")
        with pytest.raises(httpx.ReadTimeout):
            api.http.post(
                api.url("chat/completions"),
                timeout=0.2,
                headers={"Authorization": f"Bearer {api.token}"},
                json={"model": "GigaChat", "messages": [{"role": "user", "content": "hi"}]},
            )
        emu.faults.enqueue("stream_stall")
        with (
            api.http.stream(
                "POST",
                api.url("chat/completions"),
                timeout=0.3,
                headers={"Authorization": f"Bearer {api.token}", "X-Emulator-Answer-Tokens": "50"},
                json={"model": "GigaChat", "messages": [{"role": "user", "content": "hi"}], "stream": True},
            ) as response,
            pytest.raises(httpx.ReadTimeout),
        ):
            response.read()
        api.close()


def test_stream_drop_cuts_the_stream(emu: Emulator, api: Api) -> None:
    emu.faults.enqueue("stream_drop")
    received: list[bytes] = []
    with api.http.stream(
        "POST",
        api.url("chat/completions"),
        headers={"Authorization": f"Bearer {api.token}", "X-Emulator-Answer-Tokens": "100"},
        json={"model": "GigaChat", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    ) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            received.extend(response.iter_bytes())
    assert b"".join(received).startswith(b"data: {") and b"[DONE]" not in b"".join(received)
    assert len(v1_chunks(api.chat("hi", stream=True).text)) > 1  # the next stream is whole


def test_stream_faults_wait_for_a_stream(emu: Emulator, api: Api) -> None:
    emu.faults.enqueue("stream_drop")
    assert api.chat("plain request").status_code == 200
    assert emu.faults.snapshot()["queue"] == [{"kind": "stream_drop", "routes": None}]


def test_latency_and_chunk_delay(emu: Emulator, api: Api) -> None:
    emu.faults.set("latency_ms:150")
    start = time.monotonic()
    api.get("models")
    assert time.monotonic() - start >= 0.15
    emu.faults.set("chunk_delay_ms:20")
    start = time.monotonic()
    chunks = v1_chunks(
        api.chat("hi", stream=True, headers={"X-Emulator-Answer-Tokens": "10", "X-Emulator-Chunk-Tokens": "1"}).text
    )
    assert time.monotonic() - start >= 0.02 * len(chunks)


def test_route_filters(emu: Emulator, api: Api, http: httpx.Client) -> None:
    emu.faults.set("503:1", routes=["/embeddings"])
    assert api.chat("hi").status_code == 200
    assert api.post("embeddings", json={"model": "Embeddings", "input": ["x"]}).status_code == 503
    emu.faults.set("503:1")
    assert oauth(http).status_code == 200  # OAuth only when a filter names it
    assert http.get("/__emulator__/stats").status_code == 200  # admin routes never
    emu.faults.set("503:1", routes=["oauth"])
    assert oauth(http).status_code == 503
    assert api.chat("hi").status_code == 200


def test_rates_are_seeded() -> None:
    def pattern(seed: int) -> list[int]:
        with Emulator(faults="500:0.5", seed=seed) as emu:
            api = Api(emu)
            statuses = [api.get("models").status_code for _ in range(30)]
            api.close()
            return statuses

    first = pattern(7)
    assert first == pattern(7)
    assert 200 in first and 500 in first
    assert first != pattern(8)


def test_admin_fault_routes(emu: Emulator, api: Api, http: httpx.Client) -> None:
    assert http.post("/__emulator__/faults", json={"enqueue": ["502"], "routes": ["/models"]}).status_code == 200
    snapshot = http.get("/__emulator__/faults").json()
    assert snapshot["queue"] == [{"kind": "502", "routes": ["/models"]}]
    assert api.get("models").status_code == 502
    assert http.post("/__emulator__/faults", json={"spec": "500:1"}).json()["rates"] == {"500": 1.0}
    assert api.get("models").status_code == 500
    assert http.delete("/__emulator__/faults").status_code == 200
    assert api.get("models").status_code == 200
    bad = http.post("/__emulator__/faults", json={"spec": "bogus:1"})
    assert bad.status_code == 400 and "bogus" in bad.json()["message"]
    assert http.post("/__emulator__/faults", json={"enqueue": ["nope"]}).status_code == 400


def test_a_whole_answer_is_computed_inside_its_latency(
    emu: Emulator, api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Embeddings (never streamed) under latency_ms: computed first, then the rest of the latency
    waited, so the slot is held latency_ms rather than latency_ms plus the computing; an error answer
    keeps its latency too."""
    from gigapy.emulator import _embeddings, _pipeline

    events: list[tuple[str, float]] = []
    real_embed, real_wait = _embeddings.embed, _pipeline.generate_for

    def embed(*args: Any) -> list[float]:
        events.append(("embed", 0.0))
        return real_embed(*args)

    async def wait(seconds: float) -> None:
        events.append(("wait", seconds))
        await real_wait(seconds)

    monkeypatch.setattr(_embeddings, "embed", embed)
    monkeypatch.setattr(_pipeline, "generate_for", wait)
    emu.faults.set("latency_ms:300", routes=["/embeddings"])
    start = time.monotonic()
    assert api.post("embeddings", json={"model": "Embeddings", "input": ["x"]}).status_code == 200
    assert time.monotonic() - start >= 0.3
    assert [name for name, _ in events] == ["embed", "wait"]
    assert 0 < events[1][1] <= 0.3
    events.clear()
    start = time.monotonic()
    assert api.post("embeddings", json={"model": "Embeddings", "input": []}).status_code == 422
    assert time.monotonic() - start >= 0.3
    assert [name for name, _ in events] == ["wait"]
    events.clear()
    emu.faults.set("latency_ms:300")
    assert api.chat("hi").status_code == 200  # chat (it may stream): the whole latency first, as before
    assert events[0] == ("wait", 0.3)
