"""v2 chat completions: content parts, tools, model_options, named SSE events."""

from __future__ import annotations

import io
import json
import re
import uuid

import jsonschema
import pytest
from PIL import Image

from .conftest import Api, sse_events

ORDER = {
    "name": "get_order_status",
    "description": "Get delivery status for an order.",
    "parameters": {
        "type": "object",
        "properties": {"order_id": {"type": "string", "description": "Order identifier."}},
        "required": ["order_id"],
    },
}
TOOLS = [{"functions": {"specifications": [ORDER]}}]


def text_of(body: dict) -> str:
    return "".join(part.get("text", "") for part in body["messages"][0]["content"])


@pytest.mark.parametrize("path", ["/v2/chat/completions", "/api/v2/chat/completions"])
def test_response_shape(api: Api, path: str) -> None:
    payload = {
        "model": "GigaChat-3-Ultra",
        "messages": [{"content": [{"text": "Say 'Hello' and nothing else"}], "role": "user"}],
    }
    response = api.post(path, json=payload)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body["model"] == "GigaChat-3-Ultra:32.3.18.5"
    assert isinstance(body["created_at"], int)
    assert body["messages"] == [{"role": "assistant", "content": [{"text": "Hello."}]}]
    assert body["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["input_tokens"] == usage["input_tokens_details"]["prompt_tokens"]
    assert usage["input_tokens_details"]["cached_tokens"] == 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_stream_named_events(api: Api) -> None:
    response = api.chat_v2("Describe mountains and rivers", stream=True)
    assert response.headers["Content-Type"] == "text/event-stream"
    events = sse_events(response.text)
    names = [e["event"] for e in events]
    assert names[-1] == "response.message.done"
    assert set(names[:-1]) == {"response.message.delta"}
    assert "[DONE]" not in response.text
    deltas = [json.loads(e["data"]) for e in events[:-1]]
    assert all(d["messages"][0]["role"] == "assistant" for d in deltas)
    done = json.loads(events[-1]["data"])
    assert done["finish_reason"] == "stop" and set(done["usage"]) >= {"input_tokens", "output_tokens"}
    streamed = "".join(d["messages"][0]["content"][0]["text"] for d in deltas)
    assert streamed == text_of(api.chat_v2("Describe mountains and rivers").json())


def test_function_roundtrip_with_tool_role(api: Api) -> None:
    first = api.chat_v2(
        "Check order A-1024 and answer naturally.",
        tools=TOOLS,
        tool_config={"mode": "forced", "function_name": "get_order_status"},
    ).json()
    assert first["finish_reason"] == "function_call"
    message = first["messages"][0]
    state = message["tool_state_id"]
    call = message["content"][0]["function_call"]
    assert uuid.UUID(call["id"]) and uuid.UUID(state)
    assert call["name"] == "get_order_status" and call["arguments"] == {"order_id": "A-1024"}
    history = [
        {"content": [{"text": "Check order A-1024 and answer naturally."}], "role": "user"},
        {
            "content": [{"function_call": {"name": "get_order_status", "arguments": {"order_id": "A-1024"}}}],
            "tools_state_id": state,
            "role": "assistant",
        },
        {
            "content": [
                {
                    "function_result": {
                        "name": "get_order_status",
                        "result": {"order_id": "A-1024", "status": "packed", "eta": "tomorrow"},
                    }
                }
            ],
            "tools_state_id": state,
            "role": "tool",
        },
    ]
    second = api.post(
        "/v2/chat/completions", json={"model": "GigaChat-3-Ultra", "messages": history, "tools": TOOLS}
    ).json()
    assert second["finish_reason"] == "stop"
    assert "packed" in text_of(second) and "tomorrow" in text_of(second)
    history[2]["role"] = "function"
    history[2]["content"][0]["function_result"]["result"] = json.dumps({"status": "lost"})
    third = api.post("/v2/chat/completions", json={"model": "GigaChat-3-Ultra", "messages": history}).json()
    assert "lost" in text_of(third)


@pytest.mark.parametrize("tool_config", [None, {"mode": "auto"}])
def test_auto_calls_only_related_functions(api: Api, tool_config: dict | None) -> None:
    extra = {"tool_config": tool_config} if tool_config else {}
    joke = api.chat_v2("Tell me a joke about cats", tools=TOOLS, **extra).json()
    assert joke["finish_reason"] == "stop" and text_of(joke)
    assert "tool_state_id" not in joke["messages"][0]
    called = api.chat_v2("Где мой заказ A-7?", tools=TOOLS, **extra).json()
    assert called["finish_reason"] == "function_call"
    assert called["messages"][0]["content"][0]["function_call"]["arguments"] == {"order_id": "A-7"}
    searched = api.chat_v2("Tell me a joke about cats", tools=[*TOOLS, {"web_search": {}}], **extra).json()
    assert searched["finish_reason"] == "stop" and searched["messages"][0]["content"][0]["inline_data"]["sources"]
    forced = api.chat_v2(
        "Tell me a joke", tools=TOOLS, tool_config={"mode": "forced", "function_name": "get_order_status"}
    ).json()
    assert forced["finish_reason"] == "function_call"


def test_function_call_stream_done_carries_messages(api: Api) -> None:
    events = sse_events(api.chat_v2("Where is order B-77?", tools=TOOLS, stream=True).text)
    assert [e["event"] for e in events] == ["response.message.done"]
    done = json.loads(events[0]["data"])
    assert done["finish_reason"] == "function_call"
    assert done["messages"][0]["content"][0]["function_call"]["arguments"] == {"order_id": "B-77"}


@pytest.mark.parametrize(
    ("messages", "status", "message"),
    [
        ([{"role": "user", "content": "plain string"}], 400, "Your request contains invalid JSON syntax."),
        ([{"role": "robot", "content": [{"text": "x"}]}], 400, "Your request contains invalid JSON syntax."),
        (
            [
                {"role": "user", "content": [{"text": "x"}]},
                {"role": "assistant", "content": [{"function_call": {"name": "f", "arguments": "{}"}}]},
                {"role": "function", "content": [{"function_result": {"name": "f", "result": "{}"}}]},
            ],
            400,
            "Your request contains invalid JSON syntax.",
        ),
        (
            [
                {"role": "user", "content": [{"text": "x"}]},
                {"role": "assistant", "content": [{"function_call": {"name": "f", "arguments": {}}}]},
                {"role": "function", "content": [{"function_result": {"result": "{}"}}]},
            ],
            400,
            "Your request contains invalid JSON syntax.",
        ),
        (
            [
                {"role": "user", "content": [{"text": "x"}]},
                {"role": "function", "content": [{"function_result": {"name": "f", "result": "{}"}}]},
            ],
            422,
            "Invalid params: every assistant function result must have an assistant function call in history",
        ),
        (
            [
                {"role": "user", "content": [{"text": "x"}]},
                {"role": "assistant", "content": [{"function_call": {"name": "read", "arguments": {}}}]},
                {"role": "function", "content": [{"function_result": {"name": "read", "result": "file list"}}]},
            ],
            400,
            "invalid function result for function read json string file list, error: "
            "JSON parse error at line 1 column 1",
        ),
    ],
)
def test_message_validation(api: Api, messages: list, status: int, message: str) -> None:
    response = api.post("/v2/chat/completions", json={"model": "GigaChat-2-Max", "messages": messages})
    assert response.status_code == status, response.text
    assert response.json() == {"status": status, "message": message}


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"tools": [{"zzz_not_a_real_tool": {}}]}, 404, "Unknown tool zzz_not_a_real_tool"),
        ({"tools": [{"url_extraction": {}}]}, 404, "Unknown tool url_extraction"),
        ({"model_options": {"response_format": {"type": "json"}}}, 400, 'Unknown type "json" in response_format'),
        ({"model_options": {"response_format": {"type": "xml"}}}, 400, 'Unknown type "xml" in response_format'),
        (
            {"model_options": {"response_format": {"type": "json_schema"}}},
            400,
            "Empty schema with json format type is not supported",
        ),
        ({"model_options": {"temperature": 0}}, 422, "Invalid params: temperature must be in range (0, +inf)"),
        ({"model_options": {"temperature": "warm"}}, 400, "Your request contains invalid JSON syntax."),
        (
            {"tools": [{"functions": {"specifications": [{"name": "Плохое_Имя", "parameters": {}}]}}]},
            422,
            "Invalid params: Invalid function names. Only Latin letters (A-Z or a-z), underscore (_), hyphen (-), "
            "dot (.) and digits (not leading) are allowed.: [Плохое_Имя]",
        ),
        ({"tool_config": {"mode": "sometimes"}}, 400, "Your request contains invalid JSON syntax."),
        (
            {"tools": [{"web_search": {}}], "tool_config": {"mode": "forced", "tool_name": "image_generate"}},
            422,
            "Tool image_generate is unavailable",
        ),
        ({"model": "NonExistentModel"}, 404, "No such model"),
        ({"stream": "yes"}, 400, "Your request contains invalid JSON syntax."),
    ],
)
def test_option_validation(api: Api, body: dict, status: int, message: str) -> None:
    response = api.chat_v2("hello", **body)
    assert response.status_code == status, response.text
    assert response.json() == {"status": status, "message": message}


def test_json_schema_and_regex_formats(api: Api) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "n": {"type": "integer", "minimum": 0, "maximum": 10}},
        "required": ["answer", "n"],
    }
    body = api.chat_v2(
        'Return {"answer":"ok","n":3} exactly.',
        model_options={"response_format": {"type": "json_schema", "schema": schema, "strict": True}},
    )
    value = json.loads(text_of(body.json()))
    jsonschema.validate(value, schema)
    assert value == {"answer": "ok", "n": 3}
    ticket = text_of(
        api.chat_v2(
            "Generate one support ticket code.",
            model_options={"response_format": {"type": "regex", "regex": r"[A-Z]{3}-\d{4}"}},
        ).json()
    )
    assert re.fullmatch(r"[A-Z]{3}-\d{4}", ticket)


def test_max_tokens_option(api: Api) -> None:
    body = api.chat_v2("Write a long story about the sea", model_options={"max_tokens": 4}).json()
    assert body["finish_reason"] == "length" and body["usage"]["output_tokens"] == 4


@pytest.mark.parametrize("tool", ["web_search", "url_content_extraction", "code_interpreter"])
def test_builtin_tools(api: Api, tool: str) -> None:
    body = api.chat_v2(
        "Read https://example.com/page and calculate the sum of 2 and 3",
        tools=[{tool: {}}],
        tool_config={"mode": "forced", "tool_name": tool},
    ).json()
    assert body["finish_reason"] == "stop"
    assert uuid.UUID(body["messages"][0]["tool_state_id"])
    assert text_of(body)


def test_image_generate_tool(api: Api) -> None:
    client_id = str(uuid.uuid4())
    body = api.chat_v2(
        "Create a simple square icon concept for a Python SDK release.",
        tools=[{"image_generate": {}}],
        tool_config={"mode": "forced", "tool_name": "image_generate"},
        headers={"X-Client-ID": client_id},
    ).json()
    files_part, text_part = body["messages"][0]["content"]
    (generated,) = files_part["files"]
    assert generated["mime"] == "image/jpeg" and generated["target"] == "image"
    assert text_part["text"]
    jpeg = api.get(f"files/{generated['id']}/content", headers={"X-Client-ID": client_id})
    assert Image.open(io.BytesIO(jpeg.content)).format == "JPEG"


def test_tool_events_in_stream(api: Api) -> None:
    events = sse_events(api.chat_v2("Draw a cat", tools=[{"image_generate": {}}], stream=True).text)
    names = [e["event"] for e in events]
    assert names[:2] == ["response.tool.in_progress", "response.tool.completed"]
    assert names[-1] == "response.message.done"
    completed = json.loads(events[1]["data"])["messages"][0]["content"][0]["tool_execution"]
    assert completed == {"name": "image_generate", "status": "success", "censored": False}
    files = json.loads(events[2]["data"])["messages"][0]["content"][0]["files"]
    assert files[0]["mime"] == "image/jpeg"


def test_optional_fields_are_accepted(api: Api) -> None:
    response = api.chat_v2(
        "hello",
        storage={"limit": 3},
        ranker_options={"enabled": True, "top_n": 3},
        user_info={"timezone": "UTC"},
        filter_config={"request_content": {"neuro": True}},
        disable_filter=False,
        flags=["x"],
        model_options={"temperature": 0.5, "top_p": 0.9, "repetition_penalty": 1.1, "update_interval": 0},
    )
    assert response.status_code == 200
