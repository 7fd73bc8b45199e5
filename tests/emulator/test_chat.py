"""v1 chat completions: shapes, validation, generation, functions, images, caching."""

from __future__ import annotations

import io
import json
import re
import time
import uuid

import jsonschema
import pytest
from PIL import Image

from gigapy.emulator import BLACKLIST_TRIGGER, Emulator, count_tokens

from .conftest import Api

WEATHER = {
    "name": "get_weather",
    "description": "Get the weather forecast for a city",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name"},
            "days": {"type": "integer", "description": "Number of days"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        "required": ["city", "days"],
    },
}


def content(response_json: dict) -> str:
    return response_json["choices"][0]["message"]["content"]


def test_response_shape(api: Api) -> None:
    before = int(time.time())
    response = api.chat("Say 'Hello' and nothing else")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == "GigaChat:2.0.28.2"
    assert before <= body["created"] <= time.time() + 1
    assert body["choices"] == [
        {"message": {"content": "Hello.", "role": "assistant"}, "index": 0, "finish_reason": "stop"}
    ]
    usage = body["usage"]
    assert set(usage) == {"prompt_tokens", "completion_tokens", "total_tokens", "precached_prompt_tokens"}
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] == count_tokens("Hello.")


@pytest.mark.parametrize(
    ("model", "echo"),
    [
        ("GigaChat-2-Max", "GigaChat-2-Max:2.0.30.01"),
        ("GigaChat-3-Ultra", "GigaChat-3-Ultra:32.3.18.5"),
        ("GigaChat-2-Pro-preview", "GigaChat-2-Pro-preview:2.0.28.2"),
        ("GigaChat:latest", "GigaChat:2.0.28.2"),
    ],
)
def test_model_is_echoed_with_version(api: Api, model: str, echo: str) -> None:
    assert api.chat(model=model).json()["model"] == echo


def test_answers_are_deterministic_and_follow_the_prompt_language(api: Api) -> None:
    prompt = "Explain how photosynthesis works in plants and why chlorophyll matters"
    first, second = content(api.chat(prompt).json()), content(api.chat(prompt).json())
    assert first == second
    assert re.search(r"[A-Za-z]", first) and not re.search(r"[А-Яа-я]", first)
    assert any(word in first.lower() for word in ("photosynthesis", "plants", "chlorophyll"))
    russian = content(api.chat("Объясни, как работает фотосинтез у растений").json())
    assert re.search(r"[А-Яа-я]{4}", russian) and not re.search(r"[A-Za-z]", russian)
    assert "фотосинтез" in russian.lower() or "растений" in russian.lower()


def test_seed_changes_answers() -> None:
    prompts = [f"Tell me something about topic number {i} and its history" for i in range(5)]
    with Emulator(seed=1) as one, Emulator(seed=2) as two:
        a, b = Api(one), Api(two)
        assert [content(a.chat(p).json()) for p in prompts] != [content(b.chat(p).json()) for p in prompts]
        a.close()
        b.close()


def test_answer_length_varies_with_the_prompt(api: Api) -> None:
    lengths = {
        api.chat(f"Question {i}: describe gardening, cooking and travelling in detail").json()["usage"][
            "completion_tokens"
        ]
        for i in range(8)
    }
    assert len(lengths) > 2
    short = api.chat("Describe rivers").json()["usage"]["completion_tokens"]
    long_prompt = "Describe rivers, mountains, valleys, glaciers, deserts and oceans. " * 30
    assert api.chat(long_prompt).json()["usage"]["completion_tokens"] > short


def test_max_tokens_gives_length_exactly(api: Api) -> None:
    body = api.chat("Write a long essay about the history of European architecture", max_tokens=7).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 7
    assert count_tokens(content(body)) == 7


def test_answer_tokens_hook(api: Api) -> None:
    body = api.chat("Hi", headers={"X-Emulator-Answer-Tokens": "123"}).json()
    assert body["usage"]["completion_tokens"] == 123
    assert count_tokens(content(body)) == 123
    assert api.chat("Hi", headers={"X-Emulator-Answer-Tokens": "lots"}).status_code == 400


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "be nice"}]},
            422,
            "Invalid params: system message must be the first message",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "", "function_call": {"name": "f", "arguments": {}}},
                    {"role": "user", "content": "and?"},
                ]
            },
            422,
            "Invalid params: every assistant function call must have a result in history",
        ),
        ({"temperature": 0}, 422, "Invalid params: temperature must be in range (0, +inf)"),
        ({"temperature": -1.5}, 422, "Invalid params: temperature must be in range (0, +inf)"),
        ({"top_p": 1.5}, 422, "Invalid params: top_p must be in range [0, 1]"),
        ({"max_tokens": 0}, 422, "Invalid params: max_tokens must be in range (0, +inf)"),
        ({"repetition_penalty": 0}, 422, "Invalid params: repetition_penalty must be in range (0, +inf)"),
        ({"n": 5}, 422, "Invalid params: n must be in range [1, 4]"),
        ({"n": 0}, 422, "Invalid params: n must be in range [1, 4]"),
        ({"temperature": "hot"}, 422, "Invalid params: temperature must be a number"),
        ({"max_tokens": 2.5}, 422, "Invalid params: max_tokens must be an integer"),
        ({"stream": "yes"}, 422, "Invalid params: stream must be a boolean"),
        ({"messages": "hello"}, 422, "Invalid params: messages must be a non-empty array"),
        ({"messages": []}, 422, "Invalid params: messages must be a non-empty array"),
        ({"messages": [{"role": "robot", "content": "x"}]}, 422, None),
        ({"messages": [{"role": "user", "content": 5}]}, 422, "Invalid params: messages[0].content must be a string"),
        ({"model": "NonExistentModel"}, 404, "No such model"),
        ({"model": "Embeddings"}, 404, "No such model"),
        (
            {"functions": [{"name": "Плохое_Имя", "parameters": {}}, {"name": "9lives", "parameters": {}}]},
            422,
            "Invalid params: Invalid function names. Only Latin letters (A-Z or a-z), underscore (_), hyphen (-), "
            "dot (.) and digits (not leading) are allowed.: [Плохое_Имя 9lives]",
        ),
        ({"function_call": {"name": "missing"}}, 422, "Invalid params: function missing is not described in functions"),
        ({"response_format": {"type": "json"}}, 400, 'Unknown type "json" in response_format'),
        ({"response_format": {"type": "json_schema"}}, 400, "Empty schema with json format type is not supported"),
    ],
)
def test_validation_errors(api: Api, body: dict, status: int, message: str | None) -> None:
    payload = {"model": "GigaChat", "messages": [{"role": "user", "content": "hi"}], **body}
    response = api.post("chat/completions", json=payload)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    error = response.json()
    assert error["status"] == status
    if message is not None:
        assert error["message"] == message


def test_broken_json_and_wrong_shapes(api: Api) -> None:
    for raw in (b'{"model": "GigaChat", "messages": [', b"\xff\xfe", b"", b"model=GigaChat"):
        response = api.post("chat/completions", content=raw, headers={"Content-Type": "application/json"})
        assert response.status_code == 400
        assert response.json() == {"status": 400, "message": "Your request contains invalid JSON syntax."}
    assert api.post("chat/completions", json=[1, 2]).status_code == 422
    assert api.post("chat/completions", json={"messages": []}).status_code == 422


def test_unknown_fields_are_ignored(api: Api) -> None:
    response = api.chat(
        "hello world",
        flags=["x"],
        profanity_check=True,
        storage={"is_stateful": False},
        reasoning_effort="low",
        some_future_field={"a": 1},
    )
    assert response.status_code == 200


def test_prompt_cache_under_the_same_session(api: Api) -> None:
    session = str(uuid.uuid4())
    history = [
        {"role": "system", "content": "You are a helpful assistant. " * 20},
        {"role": "user", "content": "Tell me about cats"},
    ]
    first = api.post(
        "chat/completions", json={"model": "GigaChat", "messages": history}, headers={"X-Session-ID": session}
    ).json()
    assert first["usage"]["precached_prompt_tokens"] == 0
    history += [{"role": "assistant", "content": content(first)}, {"role": "user", "content": "And dogs?"}]
    second = api.post(
        "chat/completions", json={"model": "GigaChat", "messages": history}, headers={"X-Session-ID": session}
    ).json()
    cached = second["usage"]["precached_prompt_tokens"]
    assert first["usage"]["prompt_tokens"] <= cached < second["usage"]["prompt_tokens"]
    other = api.post("chat/completions", json={"model": "GigaChat", "messages": history}).json()
    assert other["usage"]["precached_prompt_tokens"] == 0
    assert second["usage"]["total_tokens"] == second["usage"]["prompt_tokens"] + second["usage"]["completion_tokens"]


def test_blacklist_trigger(api: Api) -> None:
    body = api.chat(f"Tell me something forbidden {BLACKLIST_TRIGGER}").json()
    assert body["choices"][0]["finish_reason"] == "blacklist"
    assert content(body)


def test_function_call_roundtrip(api: Api) -> None:
    messages = [{"role": "user", "content": "What is the weather in Moscow for 3 days?"}]
    body = api.post("chat/completions", json={"model": "GigaChat", "messages": messages, "functions": [WEATHER]}).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "function_call"
    message = choice["message"]
    assert message["content"] == ""
    assert uuid.UUID(message["functions_state_id"])
    call = message["function_call"]
    assert call["name"] == "get_weather"
    assert call["arguments"] == {"city": "Moscow", "days": 3}  # an object, built from the schema and prompt
    jsonschema.validate(call["arguments"], WEATHER["parameters"])
    messages += [
        message,
        {"role": "function", "name": "get_weather", "content": json.dumps({"temperature": 21, "sky": "sunny"})},
    ]
    answer = api.post(
        "chat/completions", json={"model": "GigaChat", "messages": messages, "functions": [WEATHER]}
    ).json()
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert "21" in content(answer) and "sunny" in content(answer)


def test_function_result_must_be_json(api: Api) -> None:
    messages = [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "", "function_call": {"name": "get_weather", "arguments": {}}},
        {"role": "function", "name": "get_weather", "content": "sunny"},
    ]
    response = api.post("chat/completions", json={"model": "GigaChat", "messages": messages})
    assert response.status_code == 400
    assert response.json()["message"].startswith("invalid function result for function get_weather json string sunny")


def test_function_call_modes(api: Api) -> None:
    other = {"name": "get_time", "description": "Current time", "parameters": {"type": "object", "properties": {}}}
    forced = api.chat("What time is it?", functions=[WEATHER, other], function_call={"name": "get_weather"}).json()
    assert forced["choices"][0]["message"]["function_call"]["name"] == "get_weather"
    chosen = api.chat("What time is it now?", functions=[WEATHER, other], function_call="auto").json()
    assert chosen["choices"][0]["message"]["function_call"]["name"] == "get_time"
    none = api.chat("What is the weather in Moscow?", functions=[WEATHER], function_call="none").json()
    assert none["choices"][0]["finish_reason"] == "stop"
    assert "function_call" not in none["choices"][0]["message"]


@pytest.mark.parametrize("function_call", [None, "auto"])
def test_auto_calls_only_related_functions(api: Api, function_call: str | None) -> None:
    extra = {"function_call": function_call} if function_call else {}
    joke = api.chat("Расскажи анекдот", functions=[WEATHER], **extra).json()
    assert joke["choices"][0]["finish_reason"] == "stop"
    assert "function_call" not in joke["choices"][0]["message"] and joke["choices"][0]["message"]["content"]
    for prompt in ("Какая погода в Москве на 3 дня?", "Weather forecast for Paris, 2 days", "погоду в Казани"):
        called = api.chat(prompt, functions=[WEATHER], **extra).json()["choices"][0]
        assert called["finish_reason"] == "function_call", prompt
        assert called["message"]["function_call"]["name"] == "get_weather"
    # parameter words alone are weak evidence; one word of the name or description is enough
    assert (
        api.chat("How many days are in a year?", functions=[WEATHER], **extra).json()["choices"][0]["finish_reason"]
        == "stop"
    )
    described = {"name": "lookup", "description": "Найти заказ по номеру", "parameters": {"type": "object"}}
    assert api.chat("Где мой заказ?", functions=[described], **extra).json()["choices"][0]["finish_reason"] == (
        "function_call"
    )
    assert api.chat("Where is my order?", functions=[described], **extra).json()["choices"][0]["finish_reason"] == (
        "function_call"
    )  # the glossary links заказ and order
    forced = api.chat("Расскажи анекдот", functions=[WEATHER], function_call={"name": "get_weather"}).json()
    assert forced["choices"][0]["message"]["function_call"]["name"] == "get_weather"


def test_image_generation(api: Api) -> None:
    client_id = str(uuid.uuid4())
    body = api.chat("Нарисуй розового кота", function_call="auto", headers={"X-Client-ID": client_id}).json()
    message = body["choices"][0]["message"]
    assert body["choices"][0]["finish_reason"] == "stop"
    assert uuid.UUID(message["functions_state_id"])
    match = re.match(r'<img src="([0-9a-f-]{36})" fuse="true"/> \S', message["content"])
    assert match, message["content"]
    file_id = match.group(1)
    jpeg = api.get(f"files/{file_id}/content", headers={"X-Client-ID": client_id})
    assert jpeg.status_code == 200
    assert jpeg.headers["Content-Type"] == "image/jpeg"
    image = Image.open(io.BytesIO(jpeg.content))
    image.load()
    assert image.format == "JPEG" and image.size == (512, 512)
    assert len(image.getcolors(1 << 20)) > 2  # a picture, not a blank
    assert api.get(f"files/{file_id}/content").status_code == 403  # bound to the X-Client-ID
    listed = [f["id"] for f in api.get("files").json()["data"]]
    assert file_id in listed
    without_auto = api.chat("Нарисуй розового кота").json()
    assert "<img" not in content(without_auto)


def test_same_prompt_same_picture(api: Api) -> None:
    ids = [
        re.search(r'src="([^"]+)"', content(api.chat("Draw a lighthouse", function_call="auto").json())).group(1)
        for _ in range(2)
    ]
    assert ids[0] != ids[1]
    assert api.get(f"files/{ids[0]}/content").content == api.get(f"files/{ids[1]}/content").content


def test_json_schema_response_format(api: Api) -> None:
    schema = {
        "type": "object",
        "properties": {
            "answer": {"type": "string"},
            "n": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["answer", "n", "tags"],
        "additionalProperties": False,
    }
    body = api.chat(
        'Return {"answer":"ok","n":3} exactly.',
        model="GigaChat-3-Ultra",
        response_format={"type": "json_schema", "schema": schema, "strict": True},
    ).json()
    value = json.loads(content(body))
    jsonschema.validate(value, schema)
    assert value["answer"] == "ok" and value["n"] == 3


def test_n_choices(api: Api) -> None:
    body = api.chat("Suggest a name for a new coffee shop", n=3).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert body["usage"]["completion_tokens"] == sum(count_tokens(c["message"]["content"]) for c in body["choices"])


def test_attachments(api: Api) -> None:
    uploaded = api.post(
        "files",
        files={"file": ("notes.txt", b"Meeting at noon about budgets", "text/plain")},
        data={"purpose": "general"},
    ).json()
    messages = [{"role": "user", "content": "Summarize the file", "attachments": [uploaded["id"]]}]
    with_file = api.post("chat/completions", json={"model": "GigaChat", "messages": messages}).json()
    plain = api.chat("Summarize the file").json()
    assert with_file["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"]
    messages[0]["attachments"] = [str(uuid.uuid4())]
    assert api.post("chat/completions", json={"model": "GigaChat", "messages": messages}).status_code == 404


def test_prompt_over_the_context_is_413() -> None:
    with Emulator(context_tokens=50) as emu:
        api = Api(emu)
        response = api.chat("word " * 100)
        assert response.status_code == 413
        assert response.json() == {"status": 413, "message": "Payload too large"}
        api.close()
