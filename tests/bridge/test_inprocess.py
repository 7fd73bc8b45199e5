"""The real ``openai`` and ``anthropic`` clients on ``gigapy.openai``'s in-process transport, in front
of the emulator: every answer is parsed by the official clients' own code."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import anthropic
import openai
import pytest
from pydantic import BaseModel

import gigapy.openai
from gigapy import AsyncGigaChat, GigaChat
from gigapy.testing import client_settings

from ..translate._helpers import SHARED_PNG, data_url

USER = [{"role": "user", "content": "Привет! Как дела?"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "The time in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


class Order(BaseModel):
    order_id: int
    status: str


def chat_bodies(emu: Any) -> list[dict[str, Any]]:
    return [r.json() for r in emu.requests if r.path.endswith("/chat/completions")]


def test_chat_and_the_stream_say_the_same(oai: Any) -> None:
    whole = oai.chat.completions.create(model="GigaChat-2", messages=USER)
    assert whole.object == "chat.completion"
    assert whole.choices[0].finish_reason == "stop"
    assert whole.choices[0].message.content
    assert whole.usage is not None and whole.usage.total_tokens > 0
    chunks = list(
        oai.chat.completions.create(
            model="GigaChat-2", messages=USER, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert {c.id for c in chunks} == {chunks[0].id}


def test_tools_required_is_mode_any_and_streamed_calls_accumulate(oai: Any, emu: Any) -> None:
    ask = [{"role": "user", "content": "What is the weather in Oslo?"}]
    whole = oai.chat.completions.create(model="GigaChat-2", messages=ask, tools=[WEATHER, TIME], tool_choice="required")
    assert chat_bodies(emu)[-1]["tool_config"] == {"mode": "any"}
    call = whole.choices[0].message.tool_calls[0]
    assert whole.choices[0].finish_reason == "tool_calls"
    assert call.function.name in ("get_weather", "get_time")
    assert "city" in json.loads(call.function.arguments)
    with oai.chat.completions.stream(model="GigaChat-2", messages=ask, tools=[WEATHER]) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    streamed = final.choices[0].message.tool_calls[0]
    assert streamed.function.name == "get_weather"
    assert json.loads(streamed.function.arguments) == {"city": json.loads(call.function.arguments)["city"]}
    assert streamed.id
    # the tool result goes back and the model answers in text
    answer = oai.chat.completions.create(
        model="GigaChat-2",
        tools=[WEATHER],
        messages=[
            *ask,
            final.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": streamed.id, "content": '{"temp": 21}'},
        ],
    )
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content


def test_parse_with_a_pydantic_model(oai: Any, emu: Any) -> None:
    done = oai.chat.completions.parse(
        model="GigaChat-2",
        response_format=Order,
        messages=[{"role": "user", "content": "Order 7 shipped: give it as JSON"}],
    )
    parsed = done.choices[0].message.parsed
    assert isinstance(parsed, Order)
    sent = chat_bodies(emu)[-1]
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["schema"]["required"] == ["order_id", "status"]


def test_embeddings_floats_and_base64_agree(oai: Any) -> None:
    floats = oai.embeddings.create(model="Embeddings", input=["один", "два"], encoding_format="float")
    packed = oai.embeddings.create(model="Embeddings", input=["один", "два"])  # the SDK asks for base64
    assert [d.index for d in floats.data] == [0, 1]
    assert len(floats.data[0].embedding) == len(packed.data[0].embedding) > 0
    assert packed.data[1].embedding == pytest.approx(floats.data[1].embedding, rel=1e-6)
    assert floats.usage.prompt_tokens > 0


def test_models(oai: Any) -> None:
    ids = [m.id for m in oai.models.list()]
    assert "GigaChat-2-Max" in ids
    assert oai.models.retrieve("GigaChat-2-Max").id == "GigaChat-2-Max"
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("no-such-model")


def test_errors_are_openai_exceptions(oai: Any, emu: Any) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        oai.chat.completions.create(model="GigaChat-2", messages=USER, logit_bias={"5": 1})
    assert bad.value.body["param"] == "logit_bias"
    with pytest.raises(openai.NotFoundError) as missing:
        oai.chat.completions.create(model="NoSuchModel", messages=USER)
    assert missing.value.body["code"] == "model_not_found"
    emu.faults.enqueue("429", routes=["chat"])
    with pytest.raises(openai.RateLimitError) as limited:
        oai.chat.completions.create(model="GigaChat-2", messages=USER)
    assert limited.value.response.headers.get("retry-after")
    emu.faults.enqueue("402", routes=["chat"])
    with pytest.raises(openai.APIStatusError) as quota:
        oai.chat.completions.create(model="GigaChat-2", messages=USER)
    assert (quota.value.status_code, quota.value.body["code"]) == (402, "insufficient_quota")


def test_an_error_mid_stream_raises_in_the_client(oai: Any, emu: Any) -> None:
    emu.faults.enqueue("stream_drop", routes=["chat"])
    with pytest.raises(openai.APIError):
        for _ in oai.chat.completions.create(model="GigaChat-2", messages=USER, stream=True):
            pass


@pytest.mark.parametrize("raw", [b'{"model": "GigaChat-2", "temperature": NaN, "messages": []}', b"{oops", b"[]"])
def test_bad_json_is_a_400_naming_the_body(giga: GigaChat, raw: bytes) -> None:
    with gigapy.openai.http_client(giga, lib="httpx") as http:
        reply = http.post("/chat/completions", content=raw, headers={"content-type": "application/json"})
    assert reply.status_code == 400
    assert reply.json()["error"]["param"] == "body"


def test_unknown_path_is_a_404(giga: GigaChat) -> None:
    with gigapy.openai.http_client(giga) as http:
        reply = http.post("/audio/speech", json={})
    assert reply.status_code == 404
    assert reply.json()["error"]["code"] == "unknown_url"


def test_images_are_uploaded_once_by_content_hash(oai: Any, emu: Any) -> None:
    content = [
        {"type": "text", "text": "What is in the picture?"},
        {"type": "image_url", "image_url": {"url": data_url(SHARED_PNG)}},
    ]
    for _ in range(2):
        answer = oai.chat.completions.create(model="GigaChat-2-Max", messages=[{"role": "user", "content": content}])
        assert answer.choices[0].message.content
    uploads = [r for r in emu.requests if r.path.endswith("/files") and r.method == "POST"]
    assert len(uploads) == 1
    assert json.dumps(chat_bodies(emu)[-1]).count("attachments") == 1
    with pytest.raises(openai.BadRequestError) as remote:
        oai.chat.completions.create(
            model="GigaChat-2-Max",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "x"},
                        {"type": "image_url", "image_url": {"url": "https://example.org/a.png"}},
                    ],
                }
            ],
        )
    assert "data: URL" in remote.value.body["message"]


def test_a_remembered_image_the_service_lost_is_uploaded_again(oai: Any, emu: Any) -> None:
    content = [
        {"type": "text", "text": "What is in the picture?"},
        {"type": "image_url", "image_url": {"url": data_url(SHARED_PNG)}},
    ]
    oai.chat.completions.create(model="GigaChat-2-Max", messages=[{"role": "user", "content": content}])
    emu.reset()  # the service forgets every file (retention, a deletion from elsewhere)
    answer = oai.chat.completions.create(model="GigaChat-2-Max", messages=[{"role": "user", "content": content}])
    assert answer.choices[0].message.content
    assert [r.method for r in emu.requests if "/files" in r.path] == ["GET", "POST"]  # looked up, uploaded anew


def test_responses_text_previous_id_and_stream(oai: Any) -> None:
    first = oai.responses.create(model="GigaChat-2", input="Привет!")
    assert first.status == "completed" and first.output_text
    second = oai.responses.create(model="GigaChat-2", input="И ещё раз", previous_response_id=first.id)
    assert second.output_text
    with pytest.raises(openai.BadRequestError) as unknown:
        oai.responses.create(model="GigaChat-2", input="x", previous_response_id="resp_nope")
    assert unknown.value.body["param"] == "previous_response_id"
    events = list(oai.responses.create(model="GigaChat-2", input="Привет!", stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == events[-1].response.output_text
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_responses_function_call(oai: Any) -> None:
    tool = {"type": "function", "name": "get_weather", "parameters": WEATHER["function"]["parameters"]}
    out = oai.responses.create(model="GigaChat-2", input="What is the weather in Oslo?", tools=[tool])
    calls = [item for item in out.output if item.type == "function_call"]
    assert calls and calls[0].name == "get_weather"
    follow = oai.responses.create(
        model="GigaChat-2",
        tools=[tool],
        previous_response_id=out.id,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id, "output": '{"temp": 21}'}],
    )
    assert follow.output_text


def test_anthropic_messages_stream_and_tools(giga: GigaChat) -> None:
    client = anthropic.Anthropic(api_key="unused", max_retries=0, http_client=gigapy.openai.http_client(giga))
    message = client.messages.create(
        model="GigaChat-2", max_tokens=200, system="Be brief.", messages=[{"role": "user", "content": "Привет!"}]
    )
    assert message.stop_reason == "end_turn" and message.content[0].type == "text"
    with client.messages.stream(
        model="GigaChat-2", max_tokens=200, messages=[{"role": "user", "content": "Привет!"}]
    ) as stream:
        text = stream.get_final_text()
    assert text == message.content[0].text
    tool = {"name": "get_weather", "description": "weather", "input_schema": WEATHER["function"]["parameters"]}
    called = client.messages.create(
        model="GigaChat-2",
        max_tokens=200,
        tools=[tool],
        messages=[{"role": "user", "content": "What is the weather in Oslo?"}],
    )
    assert called.stop_reason == "tool_use"
    use = next(block for block in called.content if block.type == "tool_use")
    assert use.name == "get_weather" and "city" in use.input
    with client.messages.stream(
        model="GigaChat-2",
        max_tokens=200,
        tools=[tool],
        messages=[{"role": "user", "content": "What is the weather in Oslo?"}],
    ) as stream:
        final = stream.get_final_message()
    assert [b.input for b in final.content if b.type == "tool_use"] == [use.input]
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(model="GigaChat-2", max_tokens=0, messages=[{"role": "user", "content": "x"}])


def test_async_client(emu: Any) -> None:
    async def main() -> tuple[str, str]:
        giga = AsyncGigaChat(**client_settings(emu, max_retries=0))
        async with openai.AsyncOpenAI(
            base_url=gigapy.openai.BASE_URL,
            api_key="unused",
            max_retries=0,
            http_client=gigapy.openai.async_http_client(giga),
        ) as client:
            whole = await client.chat.completions.create(model="GigaChat-2", messages=USER)
            stream = await client.chat.completions.create(model="GigaChat-2", messages=USER, stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        await giga.aclose()
        return whole.choices[0].message.content or "", text

    whole, streamed = asyncio.run(main())
    assert whole and whole == streamed


def test_the_httpx_flavour_works_with_openai(giga: GigaChat) -> None:
    http = gigapy.openai.http_client(giga, lib="httpx")
    import httpx

    assert isinstance(http, httpx.Client)
    with openai.OpenAI(api_key="unused", http_client=http, max_retries=0) as client:
        assert client.chat.completions.create(model="GigaChat-2", messages=USER).choices[0].message.content


def test_a_client_made_from_settings_is_closed_with_the_transport(emu: Any) -> None:
    http = gigapy.openai.http_client(**client_settings(emu))
    assert http.get("/models").json()["object"] == "list"
    http.close()
    with pytest.raises(TypeError):
        gigapy.openai.http_client(GigaChat(**client_settings(emu)), model="x")


def test_model_aliases(giga: GigaChat, emu: Any) -> None:
    with openai.OpenAI(
        api_key="unused",
        max_retries=0,
        http_client=gigapy.openai.http_client(giga, models={"gpt-4o": "GigaChat-2-Max"}),
    ) as client:
        client.chat.completions.create(model="gpt-4o", messages=USER)
    assert chat_bodies(emu)[-1]["model"] == "GigaChat-2-Max"


def test_base64_png_helper_is_a_png() -> None:
    assert base64.b64decode(data_url(SHARED_PNG).split(",", 1)[1])[:4] == b"\x89PNG"


def test_gigapy_openai_imports_lightly() -> None:
    import subprocess
    import sys

    code = (
        "import sys, gigapy.openai; heavy = {'aiohttp', 'openai', 'anthropic', 'httpx', 'httpx2'}"
        " & set(sys.modules); assert not heavy, heavy"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr


def test_bridged_calls_count_in_the_clients_usage_totals(giga: GigaChat, oai: Any) -> None:
    """The bridge reads GigaChat's answer as JSON (no model built); its tokens still count."""
    direct = giga.completion(USER, model="GigaChat-2")
    after_direct = giga.usage.total()
    bridged = oai.chat.completions.create(model="GigaChat-2", messages=USER)
    total = giga.usage.total()
    assert total.requests == after_direct.requests + 1
    assert bridged.usage is not None and direct.usage is not None
    assert total.prompt_tokens - after_direct.prompt_tokens == bridged.usage.prompt_tokens
    assert total.completion_tokens - after_direct.completion_tokens == bridged.usage.completion_tokens
    assert bridged.usage.prompt_tokens == direct.usage.prompt_tokens  # the same request, the same count
