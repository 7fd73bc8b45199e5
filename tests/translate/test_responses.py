"""OpenAI Responses API <-> GigaChat, checked by openai's own types, stream accumulator and client."""

from __future__ import annotations

import json
import typing
from typing import Any

import httpx
import openai
import pytest
from openai.lib.streaming.responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent, response_create_params
from pydantic import BaseModel, TypeAdapter

from gigapy._translate._common import TranslateContext, UnsupportedParameterError
from gigapy._translate.errors import openai_error_from_exception
from gigapy._translate.responses import (
    RESPONSES_PARAMETERS,
    MemoryResponseStore,
    ResponsesStream,
    responses_request,
    responses_response,
)
from gigapy.errors import InvalidArgumentError

from ..conftest import needs_shared
from ._helpers import cassette, data_url, http_client, sse_body, sse_payloads

CTX = TranslateContext(request_id="rq-resp")
EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather",
    "strict": True,
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


def text_answer(text: str, finish: str = "stop") -> dict[str, Any]:
    return {
        "model": "GigaChat-2-Max:2.0.30.01",
        "created_at": 1700000000,
        "finish_reason": finish,
        "messages": [{"role": "assistant", "content": [{"text": text}]}],
        "usage": {
            "input_tokens": 10,
            "input_tokens_details": {"cached_tokens": 3},
            "output_tokens": 4,
            "total_tokens": 14,
        },
    }


def call_answer(*calls: tuple[str, str, dict[str, Any]]) -> dict[str, Any]:
    return {
        "model": "GigaChat-2-Max:2.0.30.01",
        "created_at": 1700000000,
        "finish_reason": "function_call",
        "messages": [
            {
                "role": "assistant",
                "content": [{"function_call": {"id": i, "name": n, "arguments": a}} for i, n, a in calls],
            }
        ],
        "usage": {
            "input_tokens": 10,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 4,
            "total_tokens": 14,
        },
    }


def as_api(call: Any, answer: dict[str, Any]) -> dict[str, Any]:
    """A v2 text answer in the shape of the API ``call`` goes to."""
    if call.api == "v2":
        return answer
    usage = answer["usage"]
    return {
        "model": answer["model"],
        "created": answer["created_at"],
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "finish_reason": answer["finish_reason"],
                "message": {
                    "role": "assistant",
                    "content": "".join(p.get("text", "") for p in answer["messages"][0]["content"]),
                },
            }
        ],
        "usage": {
            "prompt_tokens": usage["input_tokens"],
            "completion_tokens": usage["output_tokens"],
            "total_tokens": usage["total_tokens"],
            "precached_prompt_tokens": usage["input_tokens_details"]["cached_tokens"],
        },
    }


def stream_events(call: Any, payloads: list[tuple[str | None, Any]]) -> list[dict[str, Any]]:
    stream = ResponsesStream(call, CTX)
    events = [e for event, data in payloads for e in stream.feed(data, event)] + stream.close()
    for event in events:
        EVENTS.validate_python(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    return events


def accumulate(events: list[dict[str, Any]]) -> Any:
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=openai.omit, text_format=openai.omit)
    for event in events:
        state.handle_event(EVENTS.validate_python(event))
    return state._completed_response or state._ResponseStreamState__current_snapshot  # type: ignore[attr-defined]


def plain(response: Any) -> Any:
    """A response as JSON, without the ``parsed`` fields openai's stream accumulator adds."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k not in ("parsed", "parsed_arguments")}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return strip(response.model_dump(mode="json"))


def test_every_openai_parameter_has_a_fate() -> None:
    names = set(typing.get_type_hints(response_create_params.ResponseCreateParamsBase)) - {"stream"}
    missing = names - set(RESPONSES_PARAMETERS)
    assert not missing, sorted(missing)


def test_request_with_items_tools_and_format() -> None:
    body = {
        "model": "GigaChat-2-Max",
        "instructions": "be brief",
        "tools": [TOOL],
        "tool_choice": "required",
        "max_output_tokens": 100,
        "reasoning": {"effort": "low", "summary": "auto"},
        "temperature": 0.3,
        "text": {"format": {"type": "json_schema", "name": "o", "schema": {"type": "object"}, "strict": True}},
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "weather?"},
                    {"type": "input_image", "image_url": data_url(), "detail": "auto"},
                ],
            },
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "checking"}]},
            {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
            {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": '{"city":"Rome"}'},
            {"type": "function_call_output", "call_id": "c1", "output": "rain"},
            {"type": "function_call_output", "call_id": "c2", "output": '{"sky": "clear"}'},
        ],
    }
    plan = responses_request(body)
    (upload,) = plan.uploads
    call = plan.finish({upload.key: "img-1"})
    assert call.api == "v2"
    assert call.body["messages"] == [
        {"role": "system", "content": [{"text": "be brief"}]},
        {"role": "user", "content": [{"text": "weather?"}, {"files": [{"id": "img-1"}]}]},
        {
            "role": "assistant",
            "content": [
                {"text": "checking"},
                {"function_call": {"name": "get_weather", "arguments": {"city": "Oslo"}}},
                {"function_call": {"name": "get_weather", "arguments": {"city": "Rome"}}},
            ],
        },
        {"role": "function", "content": [{"function_result": {"name": "get_weather", "result": '{"result":"rain"}'}}]},
        {"role": "function", "content": [{"function_result": {"name": "get_weather", "result": '{"sky": "clear"}'}}]},
    ]
    assert call.body["tool_config"] == {"mode": "forced", "function_name": "get_weather"}
    assert call.body["model_options"] == {
        "temperature": 0.3,
        "max_tokens": 100,
        "reasoning": {"effort": "low"},
        "response_format": {"type": "json_schema", "schema": {"type": "object"}, "strict": True},
    }
    assert any("reasoning items" in n for n in call.notes)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": "x", "background": True}, "background"),
        ({"input": "x", "truncation": "auto"}, "truncation"),
        ({"input": "x", "conversation": "conv_1"}, "conversation"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
        ({"input": [{"type": "computer_call_output", "call_id": "c", "output": {}}]}, "input[0].type"),
        ({"input": "x", "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]}, "tools[0].type"),
        ({"input": "x", "text": {"verbosity": "high"}}, "text.verbosity"),
        ({"input": "x", "nonsense": 1}, "nonsense"),
        ({"input": "x", "text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
    ],
)
def test_refusals_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        responses_request({"model": "GigaChat-2", **body})
    assert err.value.field == field


def test_previous_response_id_needs_a_store() -> None:
    plan = responses_request({"model": "GigaChat-2", "input": "more", "previous_response_id": "resp_1"})
    with pytest.raises(UnsupportedParameterError) as err:
        plan.finish()
    assert err.value.field == "previous_response_id"
    reply = openai_error_from_exception(err.value)
    assert (reply.status, reply.body["error"]["param"]) == (400, "previous_response_id")
    with pytest.raises(UnsupportedParameterError) as err:
        plan.with_previous(None)
    assert err.value.code == "previous_response_not_found"


def test_a_conversation_through_the_store() -> None:
    store = MemoryResponseStore(max_entries=2)
    first_plan = responses_request({"model": "GigaChat-2", "input": "call me", "tools": [TOOL]})
    first_call = first_plan.finish()
    first = responses_response(first_call, call_answer(("id-1", "get_weather", {"city": "Oslo"})), CTX)
    store.save(first["id"], first_plan.conversation(first))
    follow = responses_request(
        {
            "model": "GigaChat-2",
            "previous_response_id": first["id"],
            "tools": [TOOL],
            "input": [{"type": "function_call_output", "call_id": "id-1", "output": "sunny"}],
        }
    )
    call = follow.with_previous(store.load(first["id"])).finish()
    assert [m["role"] for m in call.body["messages"]] == ["user", "assistant", "function"]
    assert call.body["messages"][2]["content"][0]["function_result"]["name"] == "get_weather"
    second = responses_response(call, as_api(call, text_answer("It is sunny.")), TranslateContext(request_id="rq-2"))
    assert Response.model_validate(second).previous_response_id == first["id"]
    store.save(second["id"], follow.conversation(second))
    store.save("resp_x", [])
    assert store.load(first["id"]) is None  # bounded: the oldest went first
    assert len(store.load(second["id"]) or []) == 4


def test_text_answer_validates() -> None:
    call = responses_request({"model": "GigaChat-2", "input": "hi", "metadata": {"k": "v"}}).finish()
    out = Response.model_validate(responses_response(call, as_api(call, text_answer("hello")), CTX))
    assert out.output_text == "hello"
    assert (out.status, out.metadata, out.model) == ("completed", {"k": "v"}, "GigaChat-2-Max:2.0.30.01")
    assert out.usage is not None and out.usage.input_tokens_details.cached_tokens == 3


@pytest.mark.parametrize(
    ("finish", "status", "reason"),
    [("length", "incomplete", "max_output_tokens"), ("blacklist", "incomplete", "content_filter")],
)
def test_cut_answers_are_incomplete(finish: str, status: str, reason: str) -> None:
    call = responses_request({"model": "GigaChat-2", "input": "hi"}).finish()
    out = Response.model_validate(responses_response(call, as_api(call, text_answer("hel", finish)), CTX))
    assert out.status == status
    assert out.incomplete_details is not None and out.incomplete_details.reason == reason
    events = stream_events(
        call.__class__(**{**call.__dict__, "api": "v2"}), [("response.message.done", text_answer("hel", finish))]
    )
    assert events[-1]["type"] == "response.incomplete"


def test_streamed_text_equals_the_whole_answer() -> None:
    call = responses_request({"model": "GigaChat-2", "input": "hi", "stream": True, "tools": [TOOL]}).finish()
    pieces = ["Hel", "lo", "!"]
    feed: list[tuple[str | None, Any]] = [
        (
            "response.message.delta",
            {
                "model": "GigaChat-2-Max:2.0.30.01",
                "created_at": 1700000000,
                "messages": [{"role": "assistant", "content": [{"text": p}]}],
            },
        )
        for p in pieces
    ]
    done = text_answer("")
    done.pop("messages")
    feed.append(("response.message.done", done))
    events = stream_events(call, feed)
    kinds = [e["type"] for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 3,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    streamed = accumulate(events)
    whole = Response.model_validate(responses_response(call, text_answer("Hello!"), CTX))
    assert streamed.output_text == whole.output_text == "Hello!"
    assert plain(streamed) == plain(whole)


def test_streamed_function_calls_equal_the_whole_answer() -> None:
    call = responses_request({"model": "GigaChat-2", "input": "two cities", "tools": [TOOL], "stream": True}).finish()
    answer = call_answer(("a1", "get_weather", {"city": "Oslo"}), ("a2", "get_weather", {"city": "Rome"}))
    events = stream_events(call, [("response.message.done", answer)])
    assert [e["type"] for e in events if "function_call" in e["type"]] == [
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
    ] * 2
    streamed = accumulate(events)
    whole = Response.model_validate(responses_response(call, answer, CTX))
    assert [(o.call_id, o.name, o.arguments) for o in whole.output if o.type == "function_call"] == [
        ("a1", "get_weather", '{"city":"Oslo"}'),
        ("a2", "get_weather", '{"city":"Rome"}'),
    ]
    assert plain(streamed) == plain(whole)


@needs_shared
def test_recorded_v2_stream_as_response_events() -> None:
    (interaction,) = cassette("test_primary_chat_stream_simple.yaml")
    call = responses_request(
        {"model": "GigaChat-3-Ultra", "input": "Count from 1 to 3", "stream": True, "tools": [TOOL]}
    ).finish()
    events = stream_events(call, list(sse_payloads(interaction["body"])))
    final = Response.model_validate(events[-1]["response"])
    assert final.output_text == "1, 2, 3"
    assert final.usage is not None and final.usage.total_tokens == 27


@needs_shared
def test_recorded_v1_stream_as_response_events() -> None:
    (interaction,) = cassette("test_stream_simple.yaml")
    call = responses_request({"model": "GigaChat", "input": "Count from 1 to 3", "stream": True}).finish()
    assert call.api == "v1"
    events = stream_events(call, list(sse_payloads(interaction["body"])))
    assert Response.model_validate(events[-1]["response"]).usage.input_tokens_details.cached_tokens == 2  # type: ignore[union-attr]


class Weather(BaseModel):
    city: str
    temp: int


def test_the_openai_client() -> None:
    answers = iter(
        [
            call_answer(("id-7", "get_weather", {"city": "Oslo"})),
            text_answer('{"city":"Oslo","temp":3}'),
            text_answer("done"),
        ]
    )
    sent: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append(body)
        try:
            call = responses_request(body).finish()
        except InvalidArgumentError as exc:
            reply = openai_error_from_exception(exc)
            return httpx.Response(reply.status, json=reply.body)
        answer = as_api(call, next(answers))
        if call.stream:
            chunks = (
                [
                    (
                        None,
                        {
                            "choices": [
                                {
                                    "index": 0,
                                    "delta": {"content": answer["choices"][0]["message"]["content"]},
                                    "finish_reason": "stop",
                                }
                            ],
                            "created": 1,
                            "model": "G",
                            "usage": answer["usage"],
                        },
                    )
                ]
                if call.api == "v1"
                else [("response.message.done", answer)]
            )
            return httpx.Response(
                200,
                content=sse_body(stream_events(call, chunks), done=False, named=True),
                headers={"content-type": "text/event-stream"},
            )
        return httpx.Response(200, json=responses_response(call, answer, CTX))

    oa = openai.OpenAI(
        base_url="http://bridge.test/v1", api_key="unused", http_client=http_client(handler), max_retries=0
    )
    first = oa.responses.create(model="GigaChat-2", input="weather in Oslo?", tools=[TOOL])  # type: ignore[list-item]
    (fc,) = [o for o in first.output if o.type == "function_call"]
    parsed = oa.responses.parse(
        model="GigaChat-2",
        text_format=Weather,
        input=[
            {"role": "user", "content": "weather in Oslo?"},
            fc.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"type": "function_call_output", "call_id": fc.call_id, "output": "3 degrees"},
        ],
        tools=[TOOL],
    )  # type: ignore[list-item]
    assert parsed.output_parsed == Weather(city="Oslo", temp=3)
    assert sent[1]["text"]["format"]["type"] == "json_schema"
    with oa.responses.stream(model="GigaChat-2", input="again") as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert texts == ["done"] and final.output_text == "done"
    with pytest.raises(openai.BadRequestError) as err:
        oa.responses.create(model="GigaChat-2", input="x", previous_response_id="resp_nope")
    assert err.value.param == "previous_response_id"
