"""Shared helpers of the translation tests: recordings, SSE framing, official clients on a MockTransport.

The official clients talk to a ``httpx.MockTransport`` handler written here: that is the
clients' own HTTP layer, so what they send is exactly what they would send to a server,
and what the translation returns is parsed by their own code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from gigapy._core.sse import SSEDecoder
from gigapy._translate.framing import DONE, data_frame, named_frame

from ..conftest import RECORDINGS

Handler = Callable[[httpx.Request], httpx.Response]


def cassette(name: str) -> list[dict[str, Any]]:
    """The chat interactions of a recorded cassette (OAuth left out), bodies parsed."""
    import yaml

    out = []
    for item in yaml.safe_load((RECORDINGS / "cassettes" / name).read_text())["interactions"]:
        if "oauth" in item["request"]["uri"]:
            continue
        request = item["request"]["body"]
        out.append(
            {
                "uri": item["request"]["uri"],
                "request": json.loads(request) if request else None,
                "status": item["response"]["status"]["code"],
                "body": item["response"]["body"]["string"],
            }
        )
    return out


def payload(name: str) -> Any:
    """A recorded response body."""
    return json.loads((RECORDINGS / "payloads" / name).read_text())


def sse_payloads(raw: bytes | str) -> Iterator[tuple[str | None, Any]]:
    """(event name, parsed JSON) of each SSE event, ``[DONE]`` left out."""
    decoder = SSEDecoder()
    data = raw.encode() if isinstance(raw, str) else raw
    for event in decoder.feed(data) + decoder.flush():
        if event.data == b"[DONE]":
            continue
        yield event.event, json.loads(event.data)


def sse_body(objects: list[dict[str, Any]], *, done: bool = True, named: bool = False) -> bytes:
    """SSE bytes framed by the translation's own helpers: Chat Completions or named (Responses/Messages) events."""
    frame = named_frame if named else data_frame
    return b"".join(frame(obj) for obj in objects) + (DONE if done else b"")


def http_client(handler: Handler, lib: Any = httpx) -> Any:
    """An HTTP client whose transport is ``handler``; ``lib`` is httpx or httpx2 (what the SDK uses)."""
    return lib.Client(transport=lib.MockTransport(handler))


def body_of(request: httpx.Request) -> Any:
    """The JSON body an official client sent."""
    return json.loads(request.content)


SHARED_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def data_url(data: bytes = SHARED_PNG, mime: str = "image/png") -> str:
    """A base64 data: URL."""
    import base64

    return f"data:{mime};base64,{base64.b64encode(data).decode()}"
