"""v1 streaming: SSE framing exactly as recorded, hooks, pacing."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid

import aiohttp

from gigapy.emulator import Emulator, count_tokens

from .conftest import Api, sse_events, v1_chunks
from .test_chat import WEATHER


def test_stream_framing(api: Api) -> None:
    prompt = "Describe the seasons of the year and how weather changes"
    response = api.chat(prompt, stream=True)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/event-stream"
    assert response.text.startswith("data: {")
    assert "\r" not in response.text
    chunks = v1_chunks(response.text)
    assert len(chunks) >= 3
    first, *middle, finish = chunks
    assert first["choices"][0]["delta"]["role"] == "assistant"
    assert all("role" not in c["choices"][0]["delta"] for c in [*middle, finish])
    for chunk in chunks:
        assert chunk["object"] == "chat.completion"
        assert chunk["model"] == "GigaChat:2.0.28.2"
        assert isinstance(chunk["created"], int)
    assert all("finish_reason" not in c["choices"][0] and "usage" not in c for c in [first, *middle])
    assert finish["choices"][0] == {"delta": {"content": ""}, "index": 0, "finish_reason": "stop"}
    usage = finish["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    text = "".join(c["choices"][0]["delta"]["content"] for c in chunks)
    plain = api.chat(prompt).json()
    assert text == plain["choices"][0]["message"]["content"]
    assert usage == plain["usage"]


def test_chunk_and_answer_hooks(api: Api) -> None:
    response = api.chat("Hi", stream=True, headers={"X-Emulator-Answer-Tokens": "300", "X-Emulator-Chunk-Tokens": "1"})
    chunks = v1_chunks(response.text)
    assert len(chunks) == 301
    assert all(count_tokens(c["choices"][0]["delta"]["content"]) == 1 for c in chunks[:-1])
    assert chunks[-1]["usage"]["completion_tokens"] == 300
    default = v1_chunks(api.chat("Tell me about the ocean and its currents", stream=True).text)
    assert all(1 <= count_tokens(c["choices"][0]["delta"]["content"]) <= 8 for c in default[:-1])
    assert api.chat("Hi", stream=True, headers={"X-Emulator-Chunk-Tokens": "0"}).status_code == 400


def test_max_tokens_in_stream(api: Api) -> None:
    chunks = v1_chunks(api.chat("Write a long story about dragons", stream=True, max_tokens=5).text)
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 5


def test_update_interval_spaces_bigger_chunks(emu: Emulator, api: Api) -> None:
    async def arrivals() -> list[tuple[float, bytes]]:
        headers = {"Authorization": f"Bearer {api.token}", "X-Emulator-Answer-Tokens": "40"}
        body = {
            "model": "GigaChat",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
            "update_interval": 0.1,
        }
        seen: list[tuple[float, bytes]] = []
        async with (
            aiohttp.ClientSession() as session,
            session.post(emu.base_url + "/chat/completions", json=body, headers=headers) as resp,
        ):
            async for line in resp.content:
                if line.startswith(b"data: {"):
                    seen.append((time.monotonic(), line))
        return seen

    seen = asyncio.run(arrivals())
    contents = [json.loads(line[6:])["choices"][0]["delta"]["content"] for _, line in seen]
    assert max(count_tokens(c) for c in contents) >= 10  # 100 tokens/s * 0.1 s per chunk
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(seen)]
    assert gaps and min(gaps) >= 0.08


def test_function_call_stream(api: Api) -> None:
    chunks = v1_chunks(api.chat("Weather in Paris for 2 days?", stream=True, functions=[WEATHER]).text)
    head = chunks[0]["choices"][0]["delta"]
    assert head["role"] == "assistant" and head["content"] == ""
    call = dict(head["function_call"])
    assert uuid.UUID(call.pop("id"))
    assert call == {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}
    assert uuid.UUID(head["functions_state_id"])
    assert chunks[-1]["choices"][0]["finish_reason"] == "function_call"


def test_image_stream_reports_function_in_progress(api: Api) -> None:
    chunks = v1_chunks(api.chat("Draw a red fox", stream=True, function_call="auto").text)
    progress = chunks[0]["choices"][0]["delta"]
    assert progress["role"] == "function_in_progress" and progress["name"] == "text2image"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert '<img src="' in text and 'fuse="true"/>' in text


def test_events_are_separated_by_blank_lines(api: Api) -> None:
    events = sse_events(api.chat("hello", stream=True).text)
    assert all(set(event) == {"data"} for event in events)
