"""v2 chat (/v2/chat/completions): wire shapes, tools, named-event streams, sync and async."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gigapy import AsyncGigaChat, InvalidArgumentError, StreamError
from gigapy._core.stream_state import ChatV2StreamState
from gigapy._ops.chat_v2 import v2_base
from gigapy.testing import client_settings
from gigapy.types import ChatCompletionV2, ResponseMeta

WEATHER = {
    "name": "get_weather",
    "description": "Погода в городе",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def last_v2(emu: Any) -> Any:
    return next(r for r in reversed(emu.requests) if "/v2/chat/completions" in r.path)


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        ("https://api.giga.chat/v1", "https://api.giga.chat/v2"),
        ("https://gigachat.devices.sberbank.ru/api/v1", "https://gigachat.devices.sberbank.ru/api/v2"),
        ("http://127.0.0.1:9/custom", "http://127.0.0.1:9/custom/v2"),
    ],
)
def test_v2_url_follows_the_base_url(base: str, expected: str) -> None:
    assert v2_base(base) == expected


def test_v2_completion_wire_shape(emu: Any, make_client: Any) -> None:
    answer = make_client().v2.completion(
        [{"role": "system", "content": "Отвечай кратко"}, {"role": "user", "content": "Привет"}],
        temperature=0.4,
        max_tokens=30,
        reasoning="low",
        user_info={"timezone": "Europe/Moscow"},
    )
    assert isinstance(answer, ChatCompletionV2)
    assert answer.text
    assert answer.model.startswith("GigaChat-2:")
    assert answer.usage.total_tokens == answer.usage.input_tokens + answer.usage.output_tokens
    body = last_v2(emu).json()
    assert body["messages"] == [
        {"role": "system", "content": [{"text": "Отвечай кратко"}]},
        {"role": "user", "content": [{"text": "Привет"}]},
    ]
    assert body["model_options"] == {"temperature": 0.4, "max_tokens": 30, "reasoning": {"effort": "low"}}
    assert body["user_info"] == {"timezone": "Europe/Moscow"}


def test_built_in_tools(make_client: Any) -> None:
    client = make_client()
    searched = client.v2.completion("Что нового в Python?", tools=["web_search"], tool_config="web_search")
    assert searched.text
    assert any(part.inline_data and part.inline_data.sources for msg in searched.messages for part in msg.content)
    drawn = client.v2.completion("Нарисуй кота", tools=["image_generate"], tool_config="image_generate")
    (file,) = drawn.files
    assert (file.target, file.mime) == ("image", "image/jpeg")
    assert client.download_file(file.id)[:3] == b"\xff\xd8\xff"
    assert client.v2.completion("Посчитай сумму 2+2 кодом", tools=["code_interpreter"]).text
    assert client.v2.completion("Прочитай https://example.com", tools=["url_content_extraction"]).text


def test_function_call_round_trip_with_state_id(emu: Any, make_client: Any) -> None:
    client = make_client()
    first = client.v2.completion("Какая погода в Туле?", functions=[WEATHER], tool_config="get_weather")
    assert first.finish_reason == "function_call"
    (call,) = first.function_calls
    assert call.name == "get_weather"
    assert call.parsed_arguments["city"]
    assert first.message.state_id
    history = [
        {"role": "user", "content": "Какая погода в Туле?"},
        first.message,
        {"role": "tool", "content": [{"function_result": {"name": "get_weather", "result": {"t": 5}}}]},
    ]
    second = client.v2.completion(history, functions=[WEATHER])
    assert second.finish_reason == "stop"
    sent = last_v2(emu).json()
    assert sent["messages"][2]["role"] == "function"  # 'tool' is rejected by the live service
    assert sent["messages"][1]["tool_state_id"] == first.message.state_id
    assert sent["tools"] == [{"functions": {"specifications": [WEATHER]}}]


def test_v2_stream_named_events_and_final(make_client: Any) -> None:
    with make_client().v2.completion_stream("Расскажи про Волгу", max_tokens=40) as stream:
        chunks = list(stream)
        final = stream.get_final_completion()
    assert chunks[-1].event == "response.message.done"
    assert {c.event for c in chunks[:-1]} == {"response.message.delta"}
    assert final.text == "".join(c.text for c in chunks)
    assert final.finish_reason == "length"
    assert final.usage.output_tokens == 40


def test_v2_stream_with_a_built_in_tool(make_client: Any) -> None:
    with make_client().v2.completion_stream(
        "Нарисуй дом", tools=["image_generate"], tool_config="image_generate"
    ) as stream:
        events = [c.event for c in stream]
        final = stream.get_final_completion()
    assert events[:2] == ["response.tool.in_progress", "response.tool.completed"]
    assert final.files


def test_v2_async(emu: Any) -> None:
    async def main() -> None:
        async with AsyncGigaChat(**client_settings(emu)) as client:
            answer = await client.v2.completion("Привет", top_p=0.5)
            assert answer.text
            async with client.v2.completion_stream("Поток", max_tokens=20) as stream:
                texts = [t async for t in stream.text_stream]
            assert "".join(texts)
            events = [c.event async for c in client.v2.completion_stream("Ещё")]
            assert events[-1] == "response.message.done"

    asyncio.run(main())


def test_an_error_event_raises_a_typed_stream_error() -> None:
    state = ChatV2StreamState(ResponseMeta(request_id="req-1"))
    state.feed(
        b'event: response.message.delta\ndata: {"messages":[{"role":"assistant","content":[{"text":"Hi"}]}]}\n\n'
    )
    with pytest.raises(StreamError) as info:
        state.feed(b'event: error\ndata: {"status": 503, "message": "model overloaded"}\n\n')
    assert (info.value.status_code, info.value.server_message) == (503, "model overloaded")
    assert info.value.chunks_received == 1
    assert info.value.request_id == "req-1"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"tools": ["web_serch"]}, "tools[0]"),
        ({"tools": ["url_extraction"]}, "tools[0]"),
        ({"tools": "web_search"}, "tools"),
        ({"tool_config": "nothing"}, "tool_config"),
        ({"tool_config": {"mode": "forced"}}, "tool_config"),
        (
            {"functions": [WEATHER], "tool_config": {"mode": "forced", "function_name": "other"}},
            "tool_config.function_name",
        ),
        ({"top_logprobs": 9}, "top_logprobs"),
        ({"reasoning": "hihg"}, "reasoning.effort"),
        ({"reasoning": {"max_tokens": 0}}, "reasoning.max_tokens"),
        ({"reasoning": {}}, "reasoning"),
        ({"reasoning": {"efort": "high"}}, "reasoning.efort"),
        ({"reasoning_max_tokens": 1.5}, "reasoning.max_tokens"),
        ({"parallel_tool_calls": "yes"}, "parallel_tool_calls"),
        ({"model_options": {"temprature": 0.5}}, "model_options.temprature"),
        ({"function_call": "auto"}, "function_call"),
        ({"tool_config": "any"}, "tool_config"),
        ({"functions": [WEATHER], "tool_config": {"mode": "forcd"}}, "tool_config.mode"),
        (
            {"functions": [WEATHER], "tool_config": {"mode": "any", "functions_names_any": ["other"]}},
            "tool_config.functions_names_any[0]",
        ),
        (
            {"functions": [WEATHER], "tool_config": {"mode": "auto", "functions_names_any": ["get_weather"]}},
            "tool_config.functions_names_any",
        ),
        (
            {"functions": [WEATHER], "tool_config": {"mode": "any", "function_names_any": ["get_weather"]}},
            "tool_config.function_names_any",
        ),
        ({"response_format": {"type": "xml"}}, "response_format.type"),
        ({"messages": [{"role": "user", "content": [{"txt": "x"}]}]}, "messages[0].content[0].txt"),
        (
            {
                "messages": [
                    {"role": "user", "content": "Погода?"},
                    {"role": "assistant", "content": [{"function_call": {"id": "c1", "name": "get_weather"}}]},
                    {
                        "role": "function",
                        "content": [{"function_result": {"id": "c2", "name": "get_weather", "result": {}}}],
                    },
                ]
            },
            "messages[2].content[0].function_result.id",
        ),
        ({"messages": [{"role": "user", "content": [{"files": ["", "x"]}]}]}, "messages[0].content[0].files[0]"),
        (
            {"messages": [{"role": "function", "content": [{"function_result": {"name": "f", "result": {}}}]}]},
            "messages[0]",
        ),
        (
            {"messages": [{"role": "user", "content": [{"function_result": {"result": {}}}]}]},
            "messages[0].content[0].function_result.name",
        ),
    ],
)
def test_v2_bad_input_is_rejected_before_sending(
    emu: Any, make_client: Any, kwargs: dict[str, Any], field: str
) -> None:
    before = len(emu.requests)
    call = dict(kwargs)
    messages = call.pop("messages", "Привет")
    with pytest.raises(InvalidArgumentError) as info:
        make_client().v2.completion(messages, **call)
    assert info.value.field == field
    assert len(emu.requests) == before
