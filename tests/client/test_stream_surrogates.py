"""A character split across two stream events (a surrogate pair: the first event ends with the
high half ``\\ud83d``, the next starts with the low half ``\\ude00``) joins into one character in
the chunks and in the assembled answer; a half that finds no partner becomes U+FFFD. Never a
lone surrogate, which no UTF-8 writer (a terminal, a file, a JSON dump) could encode."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from gigapy import AsyncGigaChat, GigaChat
from gigapy._core.stream_state import ChatStreamState, ChatV2StreamState
from gigapy.types._base import ResponseMeta

from ..rawserver import SSE_HEAD, RawRequest, RawServer, sse_event

pytestmark = pytest.mark.hostile("unencodable")

SPLIT = ["Смайл a\ud83d", "\ude00 b, ещё \ud83d", "\ude03 конец"]
WHOLE = "Смайл a😀 b, ещё 😃 конец"


def _assert_encodable(text: str) -> None:
    text.encode("utf-8")  # a lone surrogate would raise here


def _v1_events(parts: list[str], *, finish: bool = True) -> bytes:
    data = b"".join(sse_event(p, "stop" if finish and i == len(parts) - 1 else None) for i, p in enumerate(parts))
    return data + b"data: [DONE]\n\n"


def _v2_event(text: str) -> bytes:
    body = {"messages": [{"role": "assistant", "content": [{"text": text}]}], "model": "GigaChat-2"}
    return b"event: response.message.delta\ndata: " + json.dumps(body).encode() + b"\n\n"


@pytest.mark.parametrize("cut", [None, 1, 7, 40])
def test_v1_state_joins_a_pair_split_across_events(cut: int | None) -> None:
    assert b"\\ud83d" in sse_event(SPLIT[0])  # the wire really carries the halves as escapes
    raw = _v1_events(SPLIT)
    state = ChatStreamState(ResponseMeta())
    chunks = []
    pieces = [raw] if cut is None else [raw[i : i + cut] for i in range(0, len(raw), cut)]
    for piece in pieces:
        chunks += state.feed(piece)
    texts = [state.text_of(c) for c in chunks]
    for text in texts:
        _assert_encodable(text)
    assert "".join(texts) == WHOLE
    assert state.final().choices[0].message.content == WHOLE


def test_v1_state_a_half_without_partner_becomes_the_replacement_character() -> None:
    state = ChatStreamState(ResponseMeta())
    chunks = state.feed(_v1_events(["a\ud83d", "b \ude00c", "end \ud83d"], finish=False))
    text = state.final().choices[0].message.content
    assert text == "a\ufffdb \ufffdcend \ufffd"
    for chunk in chunks:
        _assert_encodable(state.text_of(chunk))


def test_v2_state_joins_a_pair_split_across_events() -> None:
    state = ChatV2StreamState(ResponseMeta())
    chunks = state.feed(b"".join(_v2_event(p) for p in SPLIT))
    assert "".join(state.text_of(c) for c in chunks) == WHOLE
    assert state.final().text == WHOLE


def test_text_without_surrogates_is_untouched() -> None:
    state = ChatStreamState(ResponseMeta())
    state.feed(_v1_events(["Привет, ", "мир 🙂 \\ud83d as text"]))
    assert state.final().choices[0].message.content == "Привет, мир 🙂 \\ud83d as text"


@pytest.fixture(scope="module")
def raw() -> Iterator[RawServer]:
    server = RawServer().start()

    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(SSE_HEAD)
        for part in SPLIT:  # each event its own write, as the service sends them
            writer.write(sse_event(part, "stop" if part is SPLIT[-1] else None))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"data: [DONE]\n\n")
        await writer.drain()
        return False

    server.handler = handler
    yield server
    server.stop()


def _settings(raw: RawServer) -> dict[str, Any]:
    return {"base_url": raw.base_url, "access_token": "t", "max_retries": 0}


def test_sync_stream_over_http(raw: RawServer) -> None:
    with GigaChat(**_settings(raw)) as client, client.completion_stream("hi") as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_completion()
    assert "".join(texts) == WHOLE and final.text == WHOLE
    for text in texts:
        _assert_encodable(text)


def test_async_stream_over_http(raw: RawServer) -> None:
    async def main() -> tuple[list[str], str]:
        async with AsyncGigaChat(**_settings(raw)) as client, client.completion_stream("hi") as stream:
            texts = [t async for t in stream.text_stream]
            final = await stream.get_final_completion()
        return texts, final.text

    texts, final = asyncio.run(main())
    assert "".join(texts) == WHOLE and final == WHOLE
