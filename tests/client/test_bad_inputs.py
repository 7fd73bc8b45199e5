"""Bad input gets a clear error naming the field, before anything is sent (sync and async)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gigapy import AsyncGigaChat, GigaChat, InvalidArgumentError
from gigapy.testing import client_settings

MB = 1024 * 1024
U = {"role": "user", "content": "Привет"}
WEATHER = {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}
CALL = {"role": "assistant", "content": "", "function_call": {"name": "get_weather", "arguments": {}}}


def sparse(path: Path, size: int) -> Path:
    with path.open("wb") as fh:
        fh.truncate(size)
    return path


Case = tuple[str, str, Callable[[Any, Path], Any]]
CASES: list[Case] = [
    ("temperature zero", "temperature", lambda c, t: c.completion("hi", temperature=0)),
    ("temperature negative", "temperature", lambda c, t: c.completion("hi", temperature=-1)),
    ("temperature not a number", "temperature", lambda c, t: c.completion("hi", temperature="hot")),
    ("temperature NaN", "temperature", lambda c, t: c.completion("hi", temperature=float("nan"))),
    ("temperature bool", "temperature", lambda c, t: c.completion("hi", temperature=True)),
    ("top_p above 1", "top_p", lambda c, t: c.completion("hi", top_p=1.5)),
    ("top_p below 0", "top_p", lambda c, t: c.completion("hi", top_p=-0.1)),
    ("max_tokens zero", "max_tokens", lambda c, t: c.completion("hi", max_tokens=0)),
    ("max_tokens negative", "max_tokens", lambda c, t: c.completion("hi", max_tokens=-5)),
    ("max_tokens float", "max_tokens", lambda c, t: c.completion("hi", max_tokens=1.5)),
    ("repetition_penalty zero", "repetition_penalty", lambda c, t: c.completion("hi", repetition_penalty=0)),
    ("n too big", "n", lambda c, t: c.completion("hi", n=5)),
    ("update_interval negative", "update_interval", lambda c, t: c.completion("hi", update_interval=-1)),
    ("empty message list", "messages", lambda c, t: c.completion([])),
    ("empty prompt", "messages", lambda c, t: c.completion("   ")),
    ("no messages at all", "messages", lambda c, t: c.completion()),
    ("messages twice", "messages", lambda c, t: c.completion("a", messages=[U])),
    ("messages not a list", "messages", lambda c, t: c.completion(42)),
    ("message not a dict", "messages[0]", lambda c, t: c.completion(["hello"])),
    ("role tool", "messages[0].role", lambda c, t: c.completion([{"role": "tool", "content": "{}"}])),
    ("unknown role", "messages[0].role", lambda c, t: c.completion([{"role": "bot", "content": "x"}])),
    (
        "system not first",
        "messages[1].role",
        lambda c, t: c.completion([U, {"role": "system", "content": "Будь краток"}]),
    ),
    ("content not text", "messages[0].content", lambda c, t: c.completion([{"role": "user", "content": 5}])),
    ("empty user content", "messages[0].content", lambda c, t: c.completion([{"role": "user", "content": ""}])),
    (
        "function result without call",
        "messages[1]",
        lambda c, t: c.completion([U, {"role": "function", "content": "{}"}]),
    ),
    ("function call without result", "messages[1].function_call", lambda c, t: c.completion([U, CALL])),
    ("function call then user", "messages[1].function_call", lambda c, t: c.completion([U, CALL, U])),
    (
        "function result not JSON",
        "messages[2].content",
        lambda c, t: c.completion([U, CALL, {"role": "function", "content": "sunny"}], functions=[WEATHER]),
    ),
    (
        "arguments not JSON",
        "messages[1].function_call.arguments",
        lambda c, t: c.completion(
            [U, {**CALL, "function_call": {"name": "f", "arguments": "{oops"}}, {"role": "function", "content": "{}"}]
        ),
    ),
    (
        "function_call on a user message",
        "messages[0].function_call",
        lambda c, t: c.completion([{**U, "function_call": {"name": "f"}}]),
    ),
    (
        "function name with digit first",
        "functions[0].name",
        lambda c, t: c.completion("hi", functions=[{"name": "1f"}]),
    ),
    ("function name in Cyrillic", "functions[0].name", lambda c, t: c.completion("hi", functions=[{"name": "Погода"}])),
    ("functions not a list", "functions", lambda c, t: c.completion("hi", functions="get_weather")),
    (
        "parameters not an object schema",
        "functions[0].parameters",
        lambda c, t: c.completion("hi", functions=[{"name": "f", "parameters": {"type": "array"}}]),
    ),
    ("forced function not given", "function_call.name", lambda c, t: c.completion("hi", function_call="missing")),
    ("bad function_call mode", "function_call", lambda c, t: c.completion("hi", function_call={"x": 1})),
    ("response_format json", "response_format.type", lambda c, t: c.completion("hi", response_format={"type": "json"})),
    (
        "json_schema without schema",
        "response_format.schema",
        lambda c, t: c.completion("hi", response_format={"type": "json_schema"}),
    ),
    ("reasoning_effort typo", "reasoning_effort", lambda c, t: c.completion("hi", reasoning_effort="medum")),
    ("reasoning_effort not text", "reasoning_effort", lambda c, t: c.completion("hi", reasoning_effort=3)),
    ("reasoning_max_tokens zero", "reasoning_max_tokens", lambda c, t: c.completion("hi", reasoning_max_tokens=0)),
    ("top_logprobs above 5", "top_logprobs", lambda c, t: c.completion("hi", top_logprobs=6)),
    ("option typo", "timout", lambda c, t: c.completion("hi", timout=5)),
    ("a v2 field on v1", "tools", lambda c, t: c.completion("hi", tools=["web_search"])),
    ("stream on completion", "stream", lambda c, t: c.completion("hi", stream=True)),
    ("schema_dialect unknown", "schema_dialect", lambda c, t: c.completion("hi", schema_dialect="json")),
    (
        "regex format without regex",
        "response_format.regex",
        lambda c, t: c.completion("hi", response_format={"type": "regex"}),
    ),
    (
        "response_format json_object",
        "response_format.type",
        lambda c, t: c.completion("hi", response_format={"type": "json_object"}),
    ),
    (
        "response_format type typo",
        "response_format.type",
        lambda c, t: c.completion("hi", response_format={"type": "json_shema", "schema": {"type": "object"}}),
    ),
    ("unknown parameter", "temprature", lambda c, t: c.completion("hi", temprature=0.5)),
    ("profanity_check not bool", "profanity_check", lambda c, t: c.completion("hi", profanity_check="yes")),
    ("flags not strings", "flags[0]", lambda c, t: c.completion("hi", flags=[1])),
    ("attachments not strings", "attachments[0]", lambda c, t: c.completion("hi", attachments=[1])),
    ("empty model", "model", lambda c, t: c.completion("hi", model="")),
    ("extra_headers value not text", "extra_headers['X-A']", lambda c, t: c.completion("hi", extra_headers={"X-A": 1})),
    ("extra_body on a GET", "extra_body", lambda c, t: c.all_models(extra_body={"a": 1})),
    ("empty session_id", "session_id", lambda c, t: c.completion("hi", session_id="")),
    ("unknown option", "foo", lambda c, t: c.all_models(foo=1)),
    ("per-call timeout zero", "timeout", lambda c, t: c.completion("hi", timeout=0)),
    ("embedding empty list", "input", lambda c, t: c.embedding([])),
    ("embedding not text", "input[1]", lambda c, t: c.embedding(["a", 2])),
    ("embedding empty model", "model", lambda c, t: c.embedding("a", model="")),
    ("count_tokens nothing", "input", lambda c, t: c.count_tokens(None)),
    ("get_model empty", "model", lambda c, t: c.get_model("")),
    ("upload missing file", "file", lambda c, t: c.upload_file(t / "nope.pdf")),
    ("upload a directory", "file", lambda c, t: c.upload_file(t)),
    ("upload unsupported type", "file", lambda c, t: c.upload_file(sparse(t / "tool.exe", 10))),
    ("upload text over 40 MB", "file", lambda c, t: c.upload_file(sparse(t / "big.txt", 41 * MB))),
    ("upload image over 15 MB", "file", lambda c, t: c.upload_file(sparse(t / "big.jpg", 16 * MB))),
    ("upload audio over 35 MB", "file", lambda c, t: c.upload_file(sparse(t / "big.mp3", 36 * MB))),
    ("upload empty bytes", "file", lambda c, t: c.upload_file(b"")),
    ("upload unknown bytes", "file", lambda c, t: c.upload_file(b"\x00\x01\x02binary")),
    ("upload bad content type", "content_type", lambda c, t: c.upload_file(b"x", content_type="application/zip")),
    ("upload bad purpose", "purpose", lambda c, t: c.upload_file(b"text", filename="a.txt", purpose="other")),
    ("upload an int", "file", lambda c, t: c.upload_file(12345)),
    ("download into a directory", "path", lambda c, t: c.download_file("id", t)),
    ("download into a missing dir", "path", lambda c, t: c.download_file("id", t / "no" / "x.jpg")),
    ("file id empty", "file_id", lambda c, t: c.get_file_info("")),
    ("batch empty", "requests", lambda c, t: c.create_batch([])),
    (
        "batch duplicate ids",
        "requests[1].id",
        lambda c, t: c.create_batch([{"id": "a", "request": {"messages": [U]}}] * 2),
    ),
    ("batch unknown method", "method", lambda c, t: c.create_batch([{"id": "a"}], method="x")),
    (
        "batch line without messages",
        "requests[0].request.messages",
        lambda c, t: c.create_batch([{"id": "a", "request": {}}]),
    ),
    ("batch missing file", "requests", lambda c, t: c.create_batch(t / "missing.jsonl")),
    ("batch broken JSONL", "requests line 1", lambda c, t: c.create_batch(b"{not json}\n")),
    ("check_ai empty text", "text", lambda c, t: c.check_ai("")),
    ("validate_function without name", "function.name", lambda c, t: c.validate_function({})),
    ("wait_for_batch zero interval", "poll_interval", lambda c, t: c.wait_for_batch("b", poll_interval=0)),
]


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize(("name", "field", "call"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_rejected_before_sending(
    emu: Any, tmp_path: Path, kind: str, name: str, field: str, call: Callable[[Any, Path], Any]
) -> None:
    before = len(emu.requests)
    if kind == "sync":
        with GigaChat(**client_settings(emu)) as client, pytest.raises(InvalidArgumentError) as info:
            call(client, tmp_path)
    else:

        async def main() -> None:
            async with AsyncGigaChat(**client_settings(emu)) as client:
                result = call(client, tmp_path)
                if inspect.isawaitable(result):
                    await result

        with pytest.raises(InvalidArgumentError) as info:
            asyncio.run(main())
    assert info.value.field == field, str(info.value)
    assert str(info.value).startswith(field)
    assert len(info.value.reason) > 10  # says what is allowed, not just "invalid"
    assert len(emu.requests) == before  # nothing was sent, not even a token request
    assert isinstance(info.value, ValueError)


def test_there_are_at_least_fifty_cases() -> None:
    assert len(CASES) >= 50
