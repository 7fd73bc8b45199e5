"""v2 assistants and storage: ``assistant_id`` instead of a model, and ``storage`` that keeps history.

Requests are shaped as the official SDK sends them (``storage: true`` becomes ``{}``; with a
``thread_id`` or an ``assistant_id`` no ``model`` is sent).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from .conftest import Api, sse_events, v1_chunks

WEATHER = {
    "name": "get_weather",
    "description": "Get the weather forecast for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"text": text}]}


def v2(api: Api, **body: Any) -> dict[str, Any]:
    response = api.post("/v2/chat/completions", json=body)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def text_of(body: dict[str, Any]) -> str:
    return "".join(part.get("text", "") for part in body["messages"][0]["content"])


def stored(api: Api, thread_id: str) -> list[dict[str, Any]]:
    response = api.get("threads/messages", params={"thread_id": thread_id})
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


def assistant(api: Api, **fields: Any) -> str:
    body = {"model": "GigaChat-2", "name": "SDK Example Assistant", **fields}
    response = api.post("assistants", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["assistant_id"])


def test_assistant_id_without_model(api: Api) -> None:
    """The official SDK's assistant example: ``assistant_id`` and messages, no model."""
    assistant_id = assistant(api, instructions="Answer as a concise Python SDK maintainer.")
    body = v2(api, assistant_id=assistant_id, messages=[user("How should I test a new SDK example?")])
    assert body["model"].startswith("GigaChat-2:")  # the assistant's model answers
    assert text_of(body)
    assert "thread_id" not in body and "message_id" not in body["messages"][0]  # nothing was stored
    with_instructions = v2(api, assistant_id=assistant_id, messages=[user("Hello")])
    plain = v2(api, model="GigaChat-2", messages=[user("Hello")])
    assert with_instructions["usage"]["input_tokens"] > plain["usage"]["input_tokens"]  # the instructions count
    tools = assistant(api, functions=[WEATHER])
    called = v2(api, assistant_id=tools, messages=[user("Weather in Oslo?")])
    assert called["finish_reason"] == "function_call"
    assert called["messages"][0]["content"][0]["function_call"]["arguments"] == {"city": "Oslo"}
    chosen = v2(api, assistant_id=assistant_id, model="GigaChat-2-Max", messages=[user("Hi")])
    assert chosen["model"].startswith("GigaChat-2-Max:")  # an explicit model wins


def test_v1_accepts_assistant_id_without_model_too(api: Api) -> None:
    assistant_id = assistant(api, functions=[WEATHER])
    response = api.post(
        "chat/completions",
        json={"assistant_id": assistant_id, "messages": [{"role": "user", "content": "Weather in Oslo?"}]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"].startswith("GigaChat-2:") and "thread_id" not in body
    assert body["choices"][0]["message"]["function_call"]["name"] == "get_weather"


def test_storage_keeps_history(api: Api) -> None:
    """The official SDK's thread-storage example: ``storage: {}``, then ``storage: {thread_id}``."""
    first = v2(
        api, model="GigaChat-2-Max", storage={}, messages=[user("My name is Alex. Remember it for the next question.")]
    )
    thread_id, first_id = first["thread_id"], first["messages"][0]["message_id"]
    assert uuid.UUID(thread_id) and uuid.UUID(first_id)
    second = v2(api, storage={"thread_id": thread_id}, messages=[user("What is my name?")])
    assert second["thread_id"] == thread_id and second["messages"][0]["message_id"] != first_id
    assert second["model"].startswith("GigaChat-2-Max:")  # the thread's model; no "model" sent
    assert "Alex" in text_of(second)  # the second turn remembers the first
    assert second["usage"]["input_tokens"] > first["usage"]["input_tokens"]  # the history was sent
    assert second["usage"]["input_tokens_details"]["cached_tokens"] > 0  # and the thread's prefix cached
    history = stored(api, thread_id)
    assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
    assert [history[1]["message_id"], history[3]["message_id"]] == [first_id, second["messages"][0]["message_id"]]
    assert history[2]["content"] == "What is my name?"


def test_storage_true_and_a_stream(api: Api) -> None:
    first = v2(api, model="GigaChat-2-Max", storage=True, messages=[user("Расскажи про шахматы")])
    thread_id = first["thread_id"]
    events = sse_events(
        api.post(
            "/v2/chat/completions",
            json={"storage": {"thread_id": thread_id}, "stream": True, "messages": [user("Ещё")]},
        ).text
    )
    data = [json.loads(e["data"]) for e in events]
    assert [e["event"] for e in events][-1] == "response.message.done"
    assert {d["thread_id"] for d in data} == {thread_id}
    ids = {m["message_id"] for d in data for m in d.get("messages", [])}
    assert len(ids) == 1
    text = "".join(p.get("text", "") for d in data for m in d.get("messages", []) for p in m["content"])
    assert "шахмат" in text  # a keyword-less follow-up takes its topic from the thread
    assert stored(api, thread_id)[-1]["message_id"] == ids.pop()


def test_storage_limit_metadata_and_assistant(api: Api) -> None:
    assistant_id = assistant(api, instructions="Be brief.", functions=[WEATHER])
    first = v2(
        api, assistant_id=assistant_id, storage={"metadata": {"tenant": "test"}}, messages=[user("Tell me about owls")]
    )
    thread_id = first["thread_id"]
    (thread,) = api.post("threads/retrieve", json={"threads_ids": [thread_id]}).json()["threads"]
    assert thread["assistant_id"] == assistant_id and thread["model"] == "GigaChat-2"
    full = v2(api, storage={"thread_id": thread_id}, messages=[user("And their eyes?")])
    limited = v2(api, storage={"thread_id": thread_id, "limit": 1}, messages=[user("And their eyes?")])
    assert limited["usage"]["input_tokens"] < full["usage"]["input_tokens"]
    called = v2(api, storage={"thread_id": thread_id}, messages=[user("Weather in Oslo?")])  # the assistant's tools
    assert called["finish_reason"] == "function_call"
    listed = api.get("threads", params={"assistants_ids": assistant_id}).json()["threads"]
    assert [t["id"] for t in listed] == [thread_id]
    # the stored function call needs its result before the thread can go on, as in v1
    pending = api.post("/v2/chat/completions", json={"storage": {"thread_id": thread_id}, "messages": [user("Hi")]})
    assert pending.status_code == 422


def test_v1_storage_stream_and_v2_share_threads(api: Api) -> None:
    first = v2(api, model="GigaChat", storage={}, messages=[user("Tell me about rivers")])
    chunks = v1_chunks(
        api.chat("More", stream=True, storage={"is_stateful": True, "thread_id": first["thread_id"]}).text
    )
    assert chunks[0]["thread_id"] == first["thread_id"]
    assert [m["role"] for m in stored(api, first["thread_id"])] == ["user", "assistant"] * 2


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"storage": {"thread_id": str(uuid.uuid4())}}, 404, "Thread not found"),
        ({"assistant_id": str(uuid.uuid4())}, 404, "Assistant not found"),
        ({"storage": {}}, 400, "Your request contains invalid JSON syntax."),  # a new thread needs a model
        ({"storage": "yes", "model": "GigaChat"}, 400, "Your request contains invalid JSON syntax."),
        ({"storage": {"limit": "x"}, "model": "GigaChat"}, 400, "Your request contains invalid JSON syntax."),
        (
            {"storage": {"limit": 0}, "model": "GigaChat"},
            422,
            "Invalid params: storage.limit must be in range [1, +inf)",
        ),
        ({"assistant_id": 5}, 400, "Your request contains invalid JSON syntax."),
    ],
)
def test_storage_errors(api: Api, body: dict[str, Any], status: int, message: str) -> None:
    response = api.post("/v2/chat/completions", json={"messages": [user("hi")], **body})
    assert (response.status_code, response.json()) == (status, {"status": status, "message": message})


def test_storage_false_stores_nothing(api: Api) -> None:
    body = v2(api, model="GigaChat", storage=False, messages=[user("hi")])
    assert "thread_id" not in body
