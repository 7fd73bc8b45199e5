"""The emulator speaks the 2026 API: call ids, mode any, parallel calls, reasoning, logprobs,
error_details, full JSON Schema for functions (raw HTTP, v1 and v2, JSON and streams)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import jsonschema
import pytest

from gigapy.emulator import count_tokens

from .conftest import Api, sse_events, v1_chunks

WEATHER = {
    "name": "get_weather",
    "description": "Погода в городе",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
TIME = {
    "name": "get_time",
    "description": "Текущее время в городе",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
BOTH = "Какая сейчас погода и время в Москве?"
FUNCTIONS = [{"functions": {"specifications": [WEATHER, TIME]}}]
#: Full JSON Schema: $defs/$ref, anyOf unions, type lists, const, nested arrays of refs.
FULL = {
    "name": "book_delivery",
    "description": "Оформить доставку заказа по адресу",
    "parameters": {
        "$defs": {
            "Address": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "zip": {"type": ["string", "null"]}},
                "required": ["city", "zip"],
            },
            "Item": {
                "type": "object",
                "properties": {
                    "sku": {"type": "string"},
                    "qty": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]},
                },
                "required": ["sku", "qty"],
            },
        },
        "type": "object",
        "properties": {
            "address": {"$ref": "#/$defs/Address"},
            "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}, "minItems": 1},
            "when": {"anyOf": [{"type": "string", "format": "date"}, {"type": "integer"}]},
            "kind": {"const": "delivery"},
        },
        "required": ["address", "items", "when", "kind"],
    },
}


def v2_text(api: Api, text: str, **body: Any) -> Any:
    response = api.chat_v2(text, **body)
    assert response.status_code == 200, response.text
    return response.json()


def v2_error(api: Api, text: str, **body: Any) -> tuple[int, str]:
    response = api.chat_v2(text, **body)
    return response.status_code, response.json()["message"]


def calls_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [p["function_call"] for m in body["messages"] for p in m["content"] if "function_call" in p]


def v2_stream(api: Api, text: str, **body: Any) -> list[tuple[str, Any]]:
    response = api.chat_v2(text, stream=True, **body)
    assert response.status_code == 200, response.text
    return [(e["event"], json.loads(e["data"])) for e in sse_events(response.text)]


# --- tool_config mode any, parallel calls, call ids -------------------------------------------


def test_any_mode_calls_an_allowed_function(api: Api) -> None:
    body = v2_text(
        api, "Расскажи анекдот", tools=FUNCTIONS, tool_config={"mode": "any", "functions_names_any": ["get_time"]}
    )
    assert body["finish_reason"] == "function_call"
    (call,) = calls_of(body)
    assert call["name"] == "get_time" and uuid.UUID(call["id"])
    relevant = v2_text(api, "Какая погода в Туле?", tools=FUNCTIONS, tool_config={"mode": "any"})
    assert [c["name"] for c in calls_of(relevant)] == ["get_weather"]  # the one the prompt is about
    anything = v2_text(api, "Расскажи анекдот", tools=FUNCTIONS, tool_config={"mode": "any"})
    assert [c["name"] for c in calls_of(anything)] == ["get_weather"]  # about none: the first


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"tools": FUNCTIONS, "tool_config": {"mode": "any", "functions_names_any": ["nope"]}},
            (422, "Invalid params: function nope is not described in tools"),
        ),
        ({"tool_config": {"mode": "any"}}, (422, "Invalid params: tool_config.mode any requires functions in tools")),
        (
            {"tools": FUNCTIONS, "tool_config": {"mode": "any", "functions_names_any": "get_time"}},
            (400, "Your request contains invalid JSON syntax."),
        ),
        (
            {"tools": FUNCTIONS, "tool_config": {"mode": "whatever"}},
            (400, "Your request contains invalid JSON syntax."),
        ),
        (
            {"tools": FUNCTIONS, "model_options": {"parallel_tool_calls": "yes"}},
            (400, "Your request contains invalid JSON syntax."),
        ),
    ],
)
def test_tool_config_errors(api: Api, body: dict[str, Any], expected: tuple[int, str]) -> None:
    assert v2_error(api, "Привет", **body) == expected


def test_parallel_calls_with_distinct_ids(api: Api) -> None:
    body = v2_text(api, BOTH, tools=FUNCTIONS, model_options={"parallel_tool_calls": True})
    calls = calls_of(body)
    assert sorted(c["name"] for c in calls) == ["get_time", "get_weather"]
    assert len({c["id"] for c in calls}) == 2
    assert all(c["arguments"] == {"city": "Москве"} or c["arguments"]["city"] for c in calls)
    assert len(body["messages"]) == 1 and len(body["messages"][0]["content"]) == 2  # one message, a part each
    one = v2_text(api, BOTH, tools=FUNCTIONS, model_options={"parallel_tool_calls": False})
    assert len(calls_of(one)) == 1
    events = v2_stream(api, BOTH, tools=FUNCTIONS, model_options={"parallel_tool_calls": True})
    name, done = events[-1]
    assert name == "response.message.done" and done["finish_reason"] == "function_call"
    assert sorted(c["name"] for c in calls_of(done)) == ["get_time", "get_weather"]


def _history(calls: list[dict[str, Any]], results: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": [{"text": BOTH}]},
        {"role": "assistant", "content": [{"function_call": c} for c in calls]},
        *({"role": "function", "content": [{"function_result": r} for r in group]} for group in results),
    ]


def test_results_are_matched_to_calls_by_id(api: Api) -> None:
    calls = calls_of(v2_text(api, BOTH, tools=FUNCTIONS, model_options={"parallel_tool_calls": True}))
    by_name = {c["name"]: c for c in calls}
    weather = {"id": by_name["get_weather"]["id"], "name": "get_weather", "result": json.dumps({"t": -3})}
    time_ = {"id": by_name["get_time"]["id"], "name": "get_time", "result": json.dumps({"time": "12:30"})}
    for grouping in ([[weather, time_]], [[time_], [weather]]):  # one function message, or one per result
        payload = {"model": "GigaChat-2-Max", "messages": _history(calls, grouping), "tools": FUNCTIONS}
        response = api.post("/v2/chat/completions", json=payload)
        assert response.status_code == 200, response.text
        answer = response.json()["messages"][0]["content"][0]["text"]
        assert "-3" in answer and "12:30" in answer
    unnamed = [{"name": r["name"], "result": r["result"]} for r in (weather, time_)]  # ids are optional (live)
    ok = api.post(
        "/v2/chat/completions",
        json={"model": "GigaChat-2-Max", "messages": _history(calls, [unnamed]), "tools": FUNCTIONS},
    )
    assert ok.status_code == 200
    for bad in ([[weather]], [[{**weather, "id": str(uuid.uuid4())}, time_]]):
        response = api.post(
            "/v2/chat/completions",
            json={"model": "GigaChat-2-Max", "messages": _history(calls, bad), "tools": FUNCTIONS},
        )
        assert response.status_code == 422
        assert response.json()["message"].startswith("Invalid params: every assistant function")


def test_v2_call_id_must_be_text(api: Api) -> None:
    history = _history([{"id": 7, "name": "get_weather", "arguments": {}}], [[{"name": "get_weather", "result": "{}"}]])
    response = api.post("/v2/chat/completions", json={"model": "GigaChat-2-Max", "messages": history})
    assert response.status_code == 400


def test_v1_call_ids(api: Api) -> None:
    first = api.chat("Какая погода в Туле?", functions=[WEATHER]).json()
    call = first["choices"][0]["message"]["function_call"]
    assert uuid.UUID(call["id"])
    history = [
        {"role": "user", "content": "Какая погода в Туле?"},
        first["choices"][0]["message"],
        {"role": "function", "name": "get_weather", "content": json.dumps({"t": 5})},
    ]
    second = api.post("chat/completions", json={"model": "GigaChat", "messages": history, "functions": [WEATHER]})
    assert second.status_code == 200 and "5" in second.json()["choices"][0]["message"]["content"]
    bad = [{**history[1], "function_call": {**call, "id": 5}}]
    response = api.post("chat/completions", json={"model": "GigaChat", "messages": [history[0], *bad, history[2]]})
    assert response.json() == {
        "status": 422,
        "message": "Invalid params: messages[1].function_call.id must be a string",
    }


# --- reasoning ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reasoning", "tokens"),
    [
        ({"effort": "low"}, 24),
        ({"effort": "medium"}, 64),
        ({"effort": "high"}, 160),
        ({"effort": "high", "max_tokens": 7}, 7),
        ({"max_tokens": 30}, 30),
        ({"effort": "max"}, 64),
    ],
)
def test_v2_reasoning_budget(api: Api, reasoning: dict[str, Any], tokens: int) -> None:
    body = v2_text(api, "Почему небо голубое?", model_options={"reasoning": reasoning})
    message = body["messages"][0]
    assert count_tokens(message["reasoning_content"]) == tokens
    plain = v2_text(api, "Почему небо голубое?")
    assert "reasoning_content" not in plain["messages"][0]
    assert message["content"] == plain["messages"][0]["content"]  # reasoning never changes the answer
    assert body["usage"]["output_tokens"] == plain["usage"]["output_tokens"] + tokens


def test_v2_reasoning_streams_before_the_answer(api: Api) -> None:
    events = v2_stream(api, "Почему небо голубое?", model_options={"reasoning": {"effort": "medium"}})
    deltas = [data["messages"][0] for name, data in events if name == "response.message.delta"]
    reasoning = [d for d in deltas if "reasoning_content" in d]
    text = [d for d in deltas if d["content"]]
    assert reasoning and text and deltas.index(reasoning[-1]) < deltas.index(text[0])
    whole = v2_text(api, "Почему небо голубое?", model_options={"reasoning": {"effort": "medium"}})
    assert "".join(d["reasoning_content"] for d in reasoning) == whole["messages"][0]["reasoning_content"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"reasoning": "high"}, (400, "Your request contains invalid JSON syntax.")),
        ({"reasoning": {"effort": 3}}, (400, "Your request contains invalid JSON syntax.")),
        ({"reasoning": {"max_tokens": "many"}}, (400, "Your request contains invalid JSON syntax.")),
        ({"reasoning": {"max_tokens": 0}}, (422, "Invalid params: reasoning.max_tokens must be in range (0, +inf)")),
        ({"top_logprobs": 6}, (422, "Invalid params: top_logprobs must be in range [1, 5]")),
        ({"top_logprobs": "3"}, (400, "Your request contains invalid JSON syntax.")),
    ],
)
def test_v2_option_errors(api: Api, options: dict[str, Any], expected: tuple[int, str]) -> None:
    assert v2_error(api, "Привет", model_options=options) == expected


def test_v1_reasoning(api: Api) -> None:
    body = api.chat("Почему небо голубое?", reasoning_effort="low").json()
    assert count_tokens(body["choices"][0]["message"]["reasoning_content"]) == 24
    capped = api.chat("Почему небо голубое?", reasoning_effort="high", reasoning_max_tokens=12).json()
    assert count_tokens(capped["choices"][0]["message"]["reasoning_content"]) == 12
    chunks = v1_chunks(api.chat("Почему небо голубое?", reasoning_effort="low", stream=True).text)
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0]["role"] == "assistant" and deltas[0]["reasoning_content"]
    streamed = "".join(d.get("reasoning_content", "") for d in deltas)
    assert streamed == body["choices"][0]["message"]["reasoning_content"]
    assert "".join(d["content"] for d in deltas) == body["choices"][0]["message"]["content"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"reasoning_effort": 1}, "Invalid params: reasoning_effort must be a string"),
        ({"reasoning_max_tokens": -1}, "Invalid params: reasoning_max_tokens must be in range (0, +inf)"),
        ({"reasoning_max_tokens": 2.5}, "Invalid params: reasoning_max_tokens must be an integer"),
        ({"top_logprobs": 0}, "Invalid params: top_logprobs must be in range [1, +inf)"),
        ({"top_logprobs": 9}, "Invalid params: top_logprobs must be in range [1, 5]"),
    ],
)
def test_v1_option_errors(api: Api, body: dict[str, Any], message: str) -> None:
    assert api.chat("Привет", **body).json() == {"status": 422, "message": message}


# --- logprobs -------------------------------------------------------------------------------------


def _check_logprobs(logprobs: list[dict[str, Any]], text: str, top: int) -> None:
    assert "".join(lp["chosen"]["token"] for lp in logprobs) == text
    for lp in logprobs:
        assert len(lp["top"]) == top and lp["top"][0] == lp["chosen"]
        values = [t["logprob"] for t in lp["top"]]
        assert values == sorted(values, reverse=True) and all(v <= 0 for v in values)
        assert all(isinstance(t["token_id"], int) for t in lp["top"])


def test_logprobs_v1_and_v2(api: Api) -> None:
    v1 = api.chat("Расскажи о реках", top_logprobs=4).json()["choices"][0]["message"]
    _check_logprobs(v1["logprobs"], v1["content"], 4)
    chunks = v1_chunks(api.chat("Расскажи о реках", top_logprobs=4, stream=True).text)
    assert [lp for c in chunks for lp in c["choices"][0]["delta"].get("logprobs", [])] == v1["logprobs"]
    (part,) = v2_text(api, "Расскажи о реках", model_options={"top_logprobs": 2})["messages"][0]["content"]
    _check_logprobs(part["logprobs"], part["text"], 2)
    events = v2_stream(api, "Расскажи о реках", model_options={"top_logprobs": 2})
    streamed = [
        lp
        for name, data in events
        if name == "response.message.delta"
        for p in data["messages"][0]["content"]
        for lp in p.get("logprobs", [])
    ]
    assert streamed == part["logprobs"]
    assert "logprobs" not in api.chat("Расскажи о реках").json()["choices"][0]["message"]


def test_same_token_same_id(api: Api) -> None:
    v1 = api.chat("Раз два раз два раз", top_logprobs=1).json()["choices"][0]["message"]["logprobs"]
    ids: dict[str, int] = {}
    for lp in v1:
        assert ids.setdefault(lp["chosen"]["token"], lp["chosen"]["token_id"]) == lp["chosen"]["token_id"]


# --- error_details --------------------------------------------------------------------------------


def test_error_details(api: Api) -> None:
    prompt = "Погода? [emulator:function_call_error]"
    v1 = api.chat(prompt, functions=[WEATHER]).json()
    assert v1["choices"][0]["finish_reason"] == "error" and v1["choices"][0]["message"]["content"] == ""
    details = v1["error_details"]
    assert details["code"] == "function_call_error" and details["function_name"] == "get_weather"
    last = v1_chunks(api.chat(prompt, functions=[WEATHER], stream=True).text)[-1]
    assert last["choices"][0]["finish_reason"] == "error" and last["error_details"] == v1["error_details"]
    v2 = v2_text(api, prompt, tools=[{"functions": {"specifications": [WEATHER]}}])
    assert v2["finish_reason"] == "function_call_error" and v2["error_details"] == v1["error_details"]
    assert v2["messages"][0]["content"] == []
    name, done = v2_stream(api, prompt, tools=[{"functions": {"specifications": [WEATHER]}}])[-1]
    assert name == "response.message.done"
    assert done["finish_reason"] == "function_call_error" and done["error_details"] == v1["error_details"]


# --- full JSON Schema -------------------------------------------------------------------------------


def _arguments_v1(api: Api, spec: dict[str, Any], prompt: str) -> dict[str, Any]:
    body = api.chat(prompt, functions=[spec], function_call={"name": spec["name"]}).json()
    result: dict[str, Any] = body["choices"][0]["message"]["function_call"]["arguments"]
    return result


def _arguments_v2(api: Api, spec: dict[str, Any], prompt: str) -> dict[str, Any]:
    body = v2_text(
        api,
        prompt,
        tools=[{"functions": {"specifications": [spec]}}],
        tool_config={"mode": "forced", "function_name": spec["name"]},
    )
    result: dict[str, Any] = calls_of(body)[0]["arguments"]
    return result


@pytest.mark.parametrize("arguments", [_arguments_v1, _arguments_v2], ids=["v1", "v2"])
def test_full_json_schema_functions(api: Api, arguments: Any) -> None:
    args = arguments(api, FULL, "Доставь в Казань два SKU-17 на 2026-10-01")
    jsonschema.Draft202012Validator(FULL["parameters"]).validate(args)  # $ref resolved, unions and type lists
    assert args["kind"] == "delivery" and args["address"]["city"] and args["items"][0]["sku"]
    recursive = {
        "name": "tree",
        "parameters": {
            "$defs": {
                "Node": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                    },
                    "required": ["name"],
                }
            },
            "$ref": "#/$defs/Node",
        },
    }
    tree = arguments(api, recursive, "Построй дерево")
    jsonschema.Draft202012Validator(recursive["parameters"]).validate(tree)
