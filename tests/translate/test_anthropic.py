"""Anthropic Messages <-> GigaChat, checked by anthropic's own types, stream accumulator and client."""

from __future__ import annotations

import json
import typing
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent, message_create_params
from pydantic import TypeAdapter

from gigapy._translate._common import TranslateContext, UnsupportedParameterError
from gigapy._translate.anthropic import MESSAGES_PARAMETERS, MessagesStream, message_response, messages_request
from gigapy._translate.errors import anthropic_error, anthropic_error_from_exception
from gigapy._translate.framing import messages_error_frame, named_frame
from gigapy.errors import InvalidArgumentError

from ..conftest import needs_shared
from ._helpers import SHARED_PNG, cassette, http_client, sse_payloads

CTX = TranslateContext(request_id="rq-msg")
EVENTS: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
TOOL = {
    "name": "get_weather",
    "description": "Weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def body(**kw: Any) -> dict[str, Any]:
    return {"model": "GigaChat-2", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], **kw}


def v2_text(text: str, finish: str = "stop") -> dict[str, Any]:
    return {
        "model": "GigaChat-2-Max:2.0.30.01",
        "created_at": 1700000000,
        "finish_reason": finish,
        "messages": [{"role": "assistant", "content": [{"text": text}]}],
        "usage": {
            "input_tokens": 20,
            "input_tokens_details": {"cached_tokens": 5},
            "output_tokens": 4,
            "total_tokens": 24,
        },
    }


def v2_calls(*calls: tuple[str, str, dict[str, Any]], text: str = "") -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": text}] if text else []
    parts += [{"function_call": {"id": i, "name": n, "arguments": a}} for i, n, a in calls]
    return {
        "model": "GigaChat-2-Max:2.0.30.01",
        "created_at": 1700000000,
        "finish_reason": "function_call",
        "messages": [{"role": "assistant", "content": parts}],
        "usage": {
            "input_tokens": 20,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 4,
            "total_tokens": 24,
        },
    }


def events_of(call: Any, payloads: list[tuple[str | None, Any]]) -> list[dict[str, Any]]:
    stream = MessagesStream(call, CTX)
    events = [e for event, data in payloads for e in stream.feed(data, event)] + stream.close()
    for event in events:
        if event["type"] != "ping":
            EVENTS.validate_python(event)
    assert stream.finished
    return events


def accumulate(events: list[dict[str, Any]]) -> Any:
    snapshot = None
    bufs: dict[int, bytes] = {}
    for event in events:
        if event["type"] != "ping":
            snapshot = accumulate_event(event=EVENTS.validate_python(event), current_snapshot=snapshot, json_bufs=bufs)
    return snapshot


def test_every_anthropic_parameter_has_a_fate() -> None:
    names = set(typing.get_type_hints(message_create_params.MessageCreateParamsBase))
    names |= set(typing.get_type_hints(message_create_params.MessageCreateParamsStreaming))
    missing = names - set(MESSAGES_PARAMETERS)
    assert not missing, sorted(missing)


def test_request_with_blocks_tools_and_thinking() -> None:
    import base64

    msgs = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "weather here?"},
                {
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": "image/png",
                        "data": base64.b64encode(SHARED_PNG).decode(),
                    },
                },
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes: cold"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hm", "signature": "sig"},
                {"type": "text", "text": "let me check"},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
                {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Rome"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"},
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": [{"type": "text", "text": "down"}],
                    "is_error": True,
                },
                {"type": "text", "text": "and tomorrow?"},
            ],
        },
    ]
    plan = messages_request(
        body(
            messages=msgs,
            system=[{"type": "text", "text": "be brief"}],
            tools=[TOOL],
            tool_choice={"type": "any"},
            thinking={"type": "enabled", "budget_tokens": 5000},
            stop_sequences=["END"],
            metadata={"user_id": "u7"},
            temperature=0.5,
        )
    )
    (upload,) = plan.uploads
    call = plan.finish({upload.key: "img"})
    assert call.api == "v2"
    assert call.headers == {"X-Session-ID": "u7"}
    assert call.body["messages"] == [
        {"role": "system", "content": [{"text": "be brief"}]},
        {"role": "user", "content": [{"text": "weather here?\nnotes: cold"}, {"files": [{"id": "img"}]}]},
        {
            "role": "assistant",
            "content": [
                {"text": "let me check"},
                {"function_call": {"name": "get_weather", "arguments": {"city": "Oslo"}}},
                {"function_call": {"name": "get_weather", "arguments": {"city": "Rome"}}},
            ],
        },
        {"role": "function", "content": [{"function_result": {"name": "get_weather", "result": '{"result":"rain"}'}}]},
        {"role": "function", "content": [{"function_result": {"name": "get_weather", "result": '{"error":"down"}'}}]},
        {"role": "user", "content": [{"text": "and tomorrow?"}]},
    ]
    assert call.body["tool_config"] == {"mode": "forced", "function_name": "get_weather"}
    assert call.body["model_options"] == {"temperature": 0.5, "max_tokens": 100, "reasoning": {"effort": "medium"}}
    assert call.request.stop == ("END",)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"top_k": 5}, "top_k"),
        ({"container": "c"}, "container"),
        ({"speed": "fast"}, "speed"),
        ({"max_tokens": None}, "max_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"tools": [{"type": "bash_20250124", "name": "bash"}]}, "tools[0].type"),
        ({"tool_choice": {"type": "tool", "name": "nope"}, "tools": [TOOL]}, "tool_choice.name"),
        (
            {"messages": [{"role": "user", "content": [{"type": "search_result", "source": "x"}]}]},
            "messages[0].content[0].type",
        ),
        ({"thinking": {"type": "enabled"}}, "thinking.budget_tokens"),
        ({"unknown_thing": 1}, "unknown_thing"),
    ],
)
def test_refusals_name_the_field(kw: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        messages_request(body(**kw))
    assert err.value.field == field


def test_disable_parallel_tool_use_goes_to_v1() -> None:
    choice = {"type": "auto", "disable_parallel_tool_use": True}
    call = messages_request(body(tools=[TOOL], tool_choice=choice)).finish()
    assert call.api == "v1" and call.body["function_call"] == "auto"


def test_output_config() -> None:
    call = messages_request(
        body(
            output_config={
                "effort": "max",
                "format": {
                    "type": "json_schema",
                    "schema": {"type": "object", "properties": {"a": {"type": "integer"}}},
                },
            }
        )
    ).finish()
    assert call.body["reasoning_effort"] == "high"
    assert call.body["response_format"]["type"] == "json_schema"


@pytest.mark.parametrize(
    ("finish", "reason"), [("stop", "end_turn"), ("length", "max_tokens"), ("blacklist", "refusal")]
)
def test_text_messages_validate(finish: str, reason: str) -> None:
    call = messages_request(body(tools=[TOOL])).finish()
    out = Message.model_validate(message_response(call, v2_text("hello", finish), CTX))
    assert out.stop_reason == reason
    assert out.content[0].type == "text" and out.content[0].text == "hello"
    assert (out.usage.input_tokens, out.usage.cache_read_input_tokens, out.usage.output_tokens) == (15, 5, 4)


def test_stop_sequence() -> None:
    call = messages_request(body(stop_sequences=["###"], tools=[TOOL])).finish()
    out = Message.model_validate(message_response(call, v2_text("part one ### part two"), CTX))
    assert (out.stop_reason, out.stop_sequence, out.content[0].text) == ("stop_sequence", "###", "part one ")  # type: ignore[union-attr]


def test_tool_use_message_and_its_stream_agree() -> None:
    call = messages_request(body(tools=[TOOL], stream=True)).finish()
    answer = v2_calls(
        ("id-1", "get_weather", {"city": "Oslo"}), ("id-2", "get_weather", {"city": "Rome"}), text="checking"
    )
    whole = Message.model_validate(message_response(call, answer, CTX))
    assert whole.stop_reason == "tool_use"
    assert [(b.type, getattr(b, "id", None)) for b in whole.content] == [
        ("text", None),
        ("tool_use", "id-1"),
        ("tool_use", "id-2"),
    ]
    events = events_of(call, [("response.message.done", answer)])
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["message_start", "ping"] and kinds[-2:] == ["message_delta", "message_stop"]
    assert [e["delta"]["type"] for e in events if e["type"] == "content_block_delta"] == [
        "text_delta",
        "input_json_delta",
        "input_json_delta",
    ]
    streamed = accumulate(events)
    assert streamed.model_dump() == whole.model_dump()


@needs_shared
def test_recorded_streams_as_message_events() -> None:
    (v2,) = cassette("test_primary_chat_stream_simple.yaml")
    call = messages_request(body(tools=[TOOL], stream=True)).finish()
    final = accumulate(events_of(call, list(sse_payloads(v2["body"]))))
    assert final.content[0].text == "1, 2, 3" and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 8
    (v1,) = cassette("test_stream_simple.yaml")
    call = messages_request(body(stream=True)).finish()
    assert call.api == "v1"
    final = accumulate(events_of(call, list(sse_payloads(v1["body"]))))
    assert (final.usage.input_tokens, final.usage.cache_read_input_tokens) == (15, 2)


def test_thinking_blocks_appear_only_when_asked() -> None:
    v1 = {
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"content": "42", "reasoning_content": "hmm"}}],
        "created": 1,
        "model": "G:1",
    }
    asked = messages_request(body(thinking={"type": "adaptive"})).finish()
    assert [b.type for b in Message.model_validate(message_response(asked, v1, CTX)).content] == ["thinking", "text"]
    plain = messages_request(body()).finish()
    assert [b.type for b in Message.model_validate(message_response(plain, v1, CTX)).content] == ["text"]


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, anthropic.BadRequestError),
        (401, anthropic.AuthenticationError),
        (403, anthropic.PermissionDeniedError),
        (404, anthropic.NotFoundError),
        (413, anthropic.BadRequestError),
        (422, anthropic.BadRequestError),
        (429, anthropic.RateLimitError),
        (500, anthropic.InternalServerError),
        (423, anthropic.APIStatusError),
    ],
)
def test_the_anthropic_client(status: int, error: type[Exception]) -> None:
    """create, stream and errors through the real client; the handler plays /v1/messages."""
    answers = iter([v2_calls(("id-1", "get_weather", {"city": "Oslo"})), v2_text("Rain in Oslo."), (status, None)])

    def handler(request: httpx2.Request) -> httpx2.Response:
        try:
            call = messages_request(json.loads(request.content)).finish()
        except InvalidArgumentError as exc:
            reply = anthropic_error_from_exception(exc)
            return httpx2.Response(reply.status, json=reply.body)
        answer = next(answers)
        if isinstance(answer, tuple):
            reply = anthropic_error(answer[0], {"status": answer[0], "message": "boom"})
            return httpx2.Response(reply.status, json=reply.body)
        if call.stream:
            content = b"".join(named_frame(e) for e in events_of(call, [("response.message.done", answer)]))
            return httpx2.Response(200, content=content, headers={"content-type": "text/event-stream"})
        return httpx2.Response(200, json=message_response(call, answer, CTX))

    # this anthropic release runs on httpx2 (and refuses an httpx client)
    client = anthropic.Anthropic(
        base_url="http://bridge.test", api_key="unused", http_client=http_client(handler, httpx2), max_retries=0
    )
    first = client.messages.create(
        model="GigaChat-2",
        max_tokens=50,
        tools=[TOOL],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "weather in Oslo?"}],
    )
    (use,) = [b for b in first.content if b.type == "tool_use"]
    result = {"type": "tool_result", "tool_use_id": use.id, "content": "rain"}
    history: list[Any] = [
        {"role": "user", "content": "weather in Oslo?"},
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [result]},
    ]
    with client.messages.stream(model="GigaChat-2", max_tokens=50, tools=[TOOL], messages=history) as stream:  # type: ignore[list-item]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Rain in Oslo." and final.stop_reason == "end_turn"
    with pytest.raises(error) as err:
        client.messages.create(model="GigaChat-2", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert isinstance(err.value, anthropic.APIStatusError)
    assert "GigaChat" in str(err.value.body)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(
            model="GigaChat-2", max_tokens=5, extra_body={"top_k": 3}, messages=[{"role": "user", "content": "x"}]
        )


def test_error_frame_in_a_stream() -> None:
    frame = messages_error_frame(anthropic_error(429, {"status": 429, "message": "Too many requests"}))
    assert frame.startswith(b"event: error\ndata: ")
    body = json.loads(frame.split(b"data: ", 1)[1])
    assert body == {"type": "error", "error": {"type": "rate_limit_error", "message": "GigaChat: Too many requests"}}
    assert isinstance(UnsupportedParameterError("x", "y"), InvalidArgumentError)
