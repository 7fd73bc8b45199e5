"""Clients nobody here wrote send the 2026 fields to the emulator and get them back: the official
``gigachat`` SDK 0.2.4a1 and ``langchain-gigachat`` 0.5.2a1 (call ids, parallel calls, mode any,
reasoning with a token budget, logprobs, the session id setting)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import pytest

from gigapy.emulator import DEMO_CREDENTIALS, SCOPE_PERS, Emulator, count_tokens

gigachat = pytest.importorskip("gigachat")
from gigachat.models import Chat, ChatCompletionRequest, Messages  # noqa: E402

# the dev extra pins these versions: an older SDK lacks the fields under test
assert tuple(int(p) for p in version("gigachat").split("a")[0].split(".")) >= (0, 2, 4), version("gigachat")

W = {
    "name": "get_weather",
    "description": "Погода в городе",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
T = {
    "name": "get_time",
    "description": "Текущее время в городе",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
BOTH = "Какая сейчас погода и время в Москве?"


@pytest.fixture(scope="module")
def emu26() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


def last_body(emu: Emulator) -> Any:
    return json.loads(emu.requests[-1].body)


def sdk(emu: Emulator, **settings: Any) -> Any:
    return gigachat.GigaChat(
        base_url=emu.base_url,
        auth_url=emu.auth_url,
        credentials=DEMO_CREDENTIALS,
        scope=SCOPE_PERS,
        model="GigaChat-2-Max",
        timeout=30,
        **settings,
    )


def test_sdk_v2_parallel_any_reasoning_logprobs(emu26: Emulator) -> None:
    with sdk(emu26, session_id="sdk-session") as giga:
        request = ChatCompletionRequest(
            messages=[{"role": "user", "content": BOTH}],
            tools=[{"functions": {"specifications": [W, T]}}],
            model_options={"parallel_tool_calls": True, "reasoning": {"effort": "high", "max_tokens": 12}},
            tool_config={"mode": "any", "functions_names_any": ["get_weather", "get_time"]},
        )
        response = giga.chat.create(request)
        assert emu26.requests[-1].headers["X-Session-ID"] == "sdk-session"
        assert last_body(emu26)["model_options"]["reasoning"] == {"effort": "high", "max_tokens": 12}
        message = response.messages[0]
        calls = [part.function_call for part in message.content]
        assert sorted(c.name for c in calls) == ["get_time", "get_weather"] and all(c.id_ for c in calls)
        assert count_tokens(message.model_extra["reasoning_content"]) == 12
        results = [
            {
                "role": "function",
                "content": [
                    {"function_result": {"id": c.id_, "name": c.name, "result": json.dumps({"value": c.name.upper()})}}
                ],
            }
            for c in calls
        ]
        history = [{"role": "user", "content": BOTH}, message.model_dump(by_alias=True, exclude_none=True), *results]
        tools = [{"functions": {"specifications": [W, T]}}]
        final = giga.chat.create(ChatCompletionRequest(messages=history, tools=tools))
        text = final.messages[0].content[0].text
        assert "GET_WEATHER" in text and "GET_TIME" in text
        sent = last_body(emu26)["messages"]
        assert [m["content"][0]["function_result"]["id"] for m in sent[2:]] == [c.id_ for c in calls]
        scored = giga.chat.create(
            ChatCompletionRequest(
                messages=[{"role": "user", "content": "Расскажи о реках"}], model_options={"top_logprobs": 3}
            )
        )
        part = scored.messages[0].content[0]
        assert part.logprobs and "".join(lp.chosen.token for lp in part.logprobs) == part.text
        assert all(len(lp.top) == 3 for lp in part.logprobs)


def test_sdk_v1_reasoning_budget_and_call_id(emu26: Emulator) -> None:
    with sdk(emu26) as giga:
        answer = giga.chat(
            Chat(
                messages=[Messages(role="user", content="Почему небо голубое?")],
                reasoning_effort="medium",
                reasoning_max_tokens=10,
            )
        )
        assert (last_body(emu26)["reasoning_effort"], last_body(emu26)["reasoning_max_tokens"]) == ("medium", 10)
        assert count_tokens(answer.choices[0].message.reasoning_content) == 10
        called = giga.chat(Chat(messages=[Messages(role="user", content="Какая погода в Туле?")], functions=[W]))
        assert called.choices[0].message.function_call.id_


def test_langchain_gigachat_v2_tools_round_trip(emu26: Emulator) -> None:
    langchain_gigachat = pytest.importorskip("langchain_gigachat")
    from langchain_core.messages import HumanMessage, ToolMessage

    values = {"get_weather": '{"temperature": -3}', "get_time": '{"time": "12:30"}'}
    llm = langchain_gigachat.GigaChat(
        base_url=emu26.base_url,
        auth_url=emu26.auth_url,
        credentials=DEMO_CREDENTIALS,
        scope=SCOPE_PERS,
        model="GigaChat-2-Max",
        use_api_v2=True,
        parallel_tool_calls=True,
        reasoning_effort="high",
        reasoning_max_tokens=15,
        session_id="lc-session",
        timeout=30,
    )
    tools = [{"type": "function", "function": spec} for spec in (W, T)]
    question = HumanMessage(BOTH)
    ai = llm.bind_tools(tools, tool_choice="any").invoke([question])
    body = last_body(emu26)
    assert body["tool_config"] == {"mode": "any"}
    assert body["model_options"] == {"parallel_tool_calls": True, "reasoning": {"effort": "high", "max_tokens": 15}}
    assert emu26.requests[-1].headers["X-Session-ID"] == "lc-session"
    assert sorted(c["name"] for c in ai.tool_calls) == ["get_time", "get_weather"]
    assert count_tokens(ai.additional_kwargs["reasoning_content"]) == 15
    replies = [ToolMessage(content=values[c["name"]], tool_call_id=c["id"], name=c["name"]) for c in ai.tool_calls]
    final = llm.bind_tools(tools).invoke([question, ai, *replies])
    text = "".join(block["text"] for block in final.content if isinstance(block, dict) and block.get("type") == "text")
    assert "-3" in text and "12:30" in text
    sent = last_body(emu26)["messages"]
    assert [m["content"][0]["function_result"]["id"] for m in sent[2:]] == [c["id"] for c in ai.tool_calls]
