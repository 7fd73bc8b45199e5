"""``gigapy serve``: the real ``openai`` and ``anthropic`` clients through the server on loopback, in
front of the emulator; keys, per-key limits, /health, access logs, graceful shutdown, the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import anthropic
import httpx
import openai
import pytest
from pydantic import BaseModel

from gigapy.emulator import wait_until
from gigapy.testing import client_settings

from .test_inprocess import USER, WEATHER, chat_bodies

KEY = "sk-team-0123456789"


class City(BaseModel):
    name: str
    population: int


def test_the_openai_client_through_the_server(live_server: Any, emu: Any) -> None:
    server = live_server()
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="anything", max_retries=0)
    whole = client.chat.completions.create(model="GigaChat-2", messages=USER)
    text = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="GigaChat-2", messages=USER, stream=True)
        if c.choices
    )
    assert text == whole.choices[0].message.content
    with client.chat.completions.stream(
        model="GigaChat-2", tools=[WEATHER], messages=[{"role": "user", "content": "Weather in Oslo?"}]
    ) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments)["city"]
    parsed = client.chat.completions.parse(
        model="GigaChat-2", response_format=City, messages=[{"role": "user", "content": "Describe Oslo as JSON"}]
    )
    assert isinstance(parsed.choices[0].message.parsed, City)
    assert len(client.embeddings.create(model="Embeddings", input="текст").data[0].embedding) > 0
    assert "GigaChat-2" in [m.id for m in client.models.list()]
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="GigaChat-2", messages=USER, presence_penalty=1.0)
    assert bad.value.body["param"] == "presence_penalty"
    bad_json = httpx.post(f"{server.url}/v1/chat/completions", content=b'{"model": "m", "top_p": Infinity}')
    assert bad_json.status_code == 400 and bad_json.json()["error"]["param"] == "body"
    assert chat_bodies(emu)  # the emulator did the answering


def test_keys_logs_and_request_ids(live_server: Any, emu: Any, captured: Any) -> None:
    server = live_server(keys={KEY: "team"})
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-wrong-0000000", max_retries=0).models.list()
    assert httpx.post(f"{server.url}/v1/chat/completions", json={}).status_code == 401  # no key at all
    reply = httpx.post(
        f"{server.url}/v1/chat/completions",
        headers={"Authorization": f"Bearer {KEY}", "X-Request-ID": "rq-serve-1"},
        json={"model": "GigaChat-2", "messages": USER},
    )
    assert reply.status_code == 200 and reply.headers["x-request-id"] == "rq-serve-1"
    assert [r for r in emu.requests if r.headers.get("X-Request-ID") == "rq-serve-1"]
    assert not {"authorization", "set-cookie"} & {k.lower() for k in reply.headers}
    message = anthropic.Anthropic(base_url=server.url, api_key=KEY, max_retries=0).messages.create(
        model="GigaChat-2", max_tokens=100, messages=[{"role": "user", "content": "Привет"}]
    )
    assert message.content[0].text
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=server.url, api_key="sk-wrong-0000000", max_retries=0).messages.create(
            model="GigaChat-2", max_tokens=100, messages=[{"role": "user", "content": "x"}]
        )
    records = [json.loads(line) for line in captured.lines if line.startswith('{"ts"')]
    ours = next(r for r in records if r["request_id"] == "rq-serve-1")
    assert ours["key"] == "team" and ours["status"] == 200 and ours["model"] == "GigaChat-2"
    assert any(r["status"] == 401 and r["key"] == "?" for r in records)
    token = server.server.client.authorization
    everything = "\n".join(captured.lines)
    assert KEY not in everything and (token is None or token not in everything)
    assert token is None or token not in reply.text
    assert KEY not in repr(server.config)


def test_per_key_concurrency_limit(live_server: Any, emu: Any) -> None:
    server = live_server(keys={KEY: "a", "sk-other-9876543210": "b"}, max_concurrency=1)
    emu.faults.set("latency_ms:1500", routes=["chat"])
    results: dict[str, int] = {}

    def ask(name: str, key: str) -> None:
        reply = httpx.post(
            f"{server.url}/v1/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": "GigaChat-2", "messages": USER},
            timeout=30,
        )
        results[name] = reply.status_code
        if reply.status_code == 429:
            results[name + "-retry-after"] = int(reply.headers["retry-after"])

    first = threading.Thread(target=ask, args=("first", KEY))
    first.start()
    deadline = time.monotonic() + 10
    while httpx.get(f"{server.url}/health").json()["in_flight"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    others = [
        threading.Thread(target=ask, args=("second", KEY)),
        threading.Thread(target=ask, args=("other", "sk-other-9876543210")),
    ]
    for t in others:
        t.start()
    for t in [first, *others]:
        t.join(30)
    assert results == {"first": 200, "second": 429, "second-retry-after": 1, "other": 200}
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok", "in_flight": 0}


def test_graceful_shutdown_finishes_the_stream_in_flight(live_server: Any, emu: Any) -> None:
    server = live_server()
    emu.faults.set("chunk_delay_ms:60", routes=["chat"])
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    stream = client.chat.completions.create(
        model="GigaChat-2", stream=True, messages=[{"role": "user", "content": "Расскажи длинную историю"}]
    )
    first = next(iter(stream))
    drained = server.drain()

    def refused() -> bool:
        try:
            httpx.get(f"{server.url}/health", timeout=2)
        except httpx.ConnectError:
            return True
        return False

    wait_until(refused, 5, what="the listener closes")
    with pytest.raises(httpx.ConnectError):  # no new connections while draining
        httpx.get(f"{server.url}/health", timeout=2)
    rest = list(stream)
    assert rest and rest[-1].choices[0].finish_reason in ("stop", "length")
    assert first.choices[0].delta.role == "assistant"
    assert drained.result(30) is True
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health", timeout=2)


def test_tls_verification_cannot_be_turned_off(emu: Any) -> None:
    import asyncio

    from gigapy.openai._server import ServeConfig, serve

    with pytest.raises(ValueError, match="verifies"):
        asyncio.run(serve(client_settings(emu, verify_ssl_certs=False), ServeConfig(port=0)))


def test_the_cli_serves_and_stops_on_sigterm(emu: Any) -> None:
    env = {**os.environ, **{f"GIGACHAT_{k.upper()}": str(v) for k, v in client_settings(emu).items()}}
    cmd = [
        sys.executable,
        "-c",
        "from gigapy.cli import main; main()",
        "serve",
        "--port",
        "0",
        "--api-key",
        f"ci={KEY}",
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = ""
        deadline = time.monotonic() + 30
        while "listening on" not in line and time.monotonic() < deadline:
            line = proc.stderr.readline() if proc.stderr else ""
        url = line.split("listening on ", 1)[1].split()[0]
        answer = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0).chat.completions.create(
            model="GigaChat-2", messages=USER
        )
        assert answer.choices[0].message.content
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0
        access = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
        assert access and access[-1]["key"] == "ci" and access[-1]["status"] == 200 and access[-1]["request_id"]
        assert KEY not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
