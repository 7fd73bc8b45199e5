"""Fixtures for the emulator's own tests: a shared emulator, raw HTTP helpers, reference paths."""

from __future__ import annotations

import json
import logging
import ssl
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gigapy.emulator import DEMO_CREDENTIALS, SCOPE_B2B, SCOPE_CORP, SCOPE_PERS, Emulator

from ..conftest import SHARED as REFERENCE

CASSETTES = REFERENCE / "recordings" / "cassettes"
PAYLOADS = REFERENCE / "recordings" / "payloads"


def oauth(client: httpx.Client, scope: str = SCOPE_B2B, key: str = DEMO_CREDENTIALS, **headers: str) -> httpx.Response:
    """POST /api/v2/oauth the way the docs describe it."""
    hdrs = {"Authorization": f"Basic {key}", "RqUID": str(uuid.uuid4()), **headers}
    return client.post("/api/v2/oauth", headers=hdrs, data={"scope": scope})


class Api:
    """A raw httpx client holding a bearer token for one scope; paths are relative to /api/v1."""

    def __init__(
        self, emu: Emulator, scope: str = SCOPE_B2B, key: str = DEMO_CREDENTIALS, verify: ssl.SSLContext | bool = True
    ) -> None:
        self.emu = emu
        self.http = httpx.Client(base_url=emu.url, timeout=30, verify=verify)
        response = oauth(self.http, scope, key)
        assert response.status_code == 200, response.text
        self.token = response.json()["access_token"]

    def url(self, path: str) -> str:
        return path if path.startswith("/") else "/api/v1/" + path

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.http.request(method, self.url(path), headers=headers, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def chat(self, content: str = "Hello there, how are you?", **body: Any) -> httpx.Response:
        headers = body.pop("headers", {})
        payload = {"model": "GigaChat", "messages": [{"role": "user", "content": content}], **body}
        return self.post("chat/completions", json=payload, headers=headers)

    def chat_v2(self, text: str = "Hello there", **body: Any) -> httpx.Response:
        headers = body.pop("headers", {})
        payload = {"model": "GigaChat-2-Max", "messages": [{"role": "user", "content": [{"text": text}]}], **body}
        return self.post("/v2/chat/completions", json=payload, headers=headers)

    def close(self) -> None:
        self.http.close()


def sse_events(text: str) -> list[dict[str, str]]:
    """Split an SSE body into blocks of {field: value}; asserts the blank-line framing."""
    assert text.endswith("\n\n"), repr(text[-40:])
    blocks = []
    for raw in text.split("\n\n")[:-1]:
        block: dict[str, str] = {}
        for line in raw.split("\n"):
            name, _, value = line.partition(": ")
            block[name] = value
        blocks.append(block)
    return blocks


def v1_chunks(text: str) -> list[Any]:
    """The JSON chunks of a v1 stream (asserting the final ``[DONE]``)."""
    events = sse_events(text)
    assert events[-1] == {"data": "[DONE]"}
    return [json.loads(e["data"]) for e in events[:-1]]


@pytest.fixture(scope="session")
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _no_leftover_faults(emu: Emulator) -> Iterator[None]:
    yield
    emu.faults.clear()


@pytest.fixture(autouse=True)
def _no_server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The server never logs an error (a bug, or an exception aiohttp had to catch)."""
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith(("aiohttp", "gigapy"))]
    assert not errors, "\n".join(r.getMessage() for r in errors)


@pytest.fixture(scope="session")
def api(emu: Emulator) -> Iterator[Api]:
    client = Api(emu, SCOPE_B2B)
    yield client
    client.close()


@pytest.fixture(scope="session")
def api_pers(emu: Emulator) -> Iterator[Api]:
    client = Api(emu, SCOPE_PERS)
    yield client
    client.close()


@pytest.fixture(scope="session")
def api_corp(emu: Emulator) -> Iterator[Api]:
    client = Api(emu, SCOPE_CORP)
    yield client
    client.close()


@pytest.fixture
def http(emu: Emulator) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.url, timeout=30) as client:
        yield client
