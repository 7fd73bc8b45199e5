"""Smoke tests through real frameworks that speak OpenAI, on ``gigapy.openai``'s in-process
transport in front of the emulator: LangChain's ChatOpenAI, LlamaIndex's OpenAILike, Instructor,
PydanticAI and an openai-agents agent that calls a tool."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import openai
import pytest
from pydantic import BaseModel

import gigapy.openai
from gigapy import AsyncGigaChat, GigaChat
from gigapy.testing import client_settings

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")  # openai-agents would upload traces to OpenAI


class City(BaseModel):
    name: str
    population: int


def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny, 21 degrees in {city}"


def test_langchain_chat_openai(giga: GigaChat) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        model="GigaChat-2",
        api_key="unused",
        base_url=gigapy.openai.BASE_URL,
        max_retries=0,
        http_client=gigapy.openai.http_client(giga),
    )
    whole = llm.invoke("Привет!")
    assert isinstance(whole.content, str) and whole.content
    assert "".join(str(chunk.content) for chunk in llm.stream("Привет!")) == whole.content
    called = llm.bind_tools([get_weather]).invoke("What is the weather in Oslo?")
    assert called.tool_calls and called.tool_calls[0]["name"] == "get_weather"
    assert "city" in called.tool_calls[0]["args"]
    city = llm.with_structured_output(City).invoke("Describe Oslo")
    assert isinstance(city, City)


def test_llamaindex_openai_like(giga: GigaChat) -> None:
    from llama_index.core.llms import ChatMessage
    from llama_index.llms.openai_like import OpenAILike

    llm = OpenAILike(
        model="GigaChat-2",
        api_base=gigapy.openai.BASE_URL,
        api_key="unused",
        is_chat_model=True,
        max_retries=0,
        http_client=gigapy.openai.http_client(giga),
    )
    assert llm.complete("Привет!").text
    reply = llm.chat([ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content="Привет!")])
    assert reply.message.content
    assert "".join(r.delta or "" for r in llm.stream_chat([ChatMessage(role="user", content="Привет!")]))


def test_instructor(giga: GigaChat) -> None:
    import instructor

    base = openai.OpenAI(
        base_url=gigapy.openai.BASE_URL, api_key="unused", max_retries=0, http_client=gigapy.openai.http_client(giga)
    )
    for mode in (instructor.Mode.TOOLS, instructor.Mode.JSON_SCHEMA):
        client = instructor.from_openai(base, mode=mode)
        city = client.chat.completions.create(
            model="GigaChat-2",
            response_model=City,
            max_retries=1,
            messages=[{"role": "user", "content": "Describe Oslo"}],
        )
        assert isinstance(city, City)


def test_pydantic_ai(emu: Any) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.providers.openai import OpenAIProvider

    try:
        from pydantic_ai.models.openai import OpenAIChatModel as Model
    except ImportError:  # older releases
        from pydantic_ai.models.openai import OpenAIModel as Model

    async def main() -> tuple[Any, list[str]]:
        giga = AsyncGigaChat(**client_settings(emu, max_retries=0))
        client = openai.AsyncOpenAI(
            base_url=gigapy.openai.BASE_URL,
            api_key="unused",
            max_retries=0,
            http_client=gigapy.openai.async_http_client(giga),
        )
        model = Model("GigaChat-2", provider=OpenAIProvider(openai_client=client))
        called: list[str] = []
        helper = Agent(model, instructions="Use the tools.")

        @helper.tool_plain
        def weather(city: str) -> str:
            """The weather in a city."""
            called.append(city)
            return get_weather(city)

        try:
            text = await Agent(model).run("Привет!")
            assert isinstance(text.output, str) and text.output
            answer = await helper.run("What is the weather in Oslo?")
            assert isinstance(answer.output, str) and answer.output
            result = await Agent(model, output_type=City).run("Describe Oslo")
            return result.output, called
        finally:
            await client.close()
            await giga.aclose()

    output, called = asyncio.run(main())
    assert isinstance(output, City)
    assert called, "the agent did not call the tool"


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_openai_agents_agent_calls_a_tool(emu: Any, api: str) -> None:
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        OpenAIResponsesModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)
    called: list[str] = []

    @function_tool
    def weather(city: str) -> str:
        """The weather in a city."""
        called.append(city)
        return get_weather(city)

    async def main() -> Any:
        giga = AsyncGigaChat(**client_settings(emu, max_retries=0))
        client = openai.AsyncOpenAI(
            base_url=gigapy.openai.BASE_URL,
            api_key="unused",
            max_retries=0,
            http_client=gigapy.openai.async_http_client(giga),
        )
        kind = OpenAIResponsesModel if api == "responses" else OpenAIChatCompletionsModel
        agent = Agent(
            name="weather",
            instructions="Answer with the weather tool.",
            tools=[weather],
            model=kind(model="GigaChat-2", openai_client=client),
        )
        try:
            return await Runner.run(agent, "What is the weather in Oslo?", max_turns=4)
        finally:
            await client.close()
            await giga.aclose()

    result = asyncio.run(main())
    assert called, "the agent did not call the tool"
    assert isinstance(result.final_output, str) and result.final_output
