"""Threads over raw HTTP: create, list, retrieve, delete, messages, runs (background and streamed),
messages/run, rerun; v1 chat ``storage``; shapes against the recordings, limits, ownership, faults."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gigapy.emulator import Account, Emulator

from ..conftest import needs_shared, wait_until
from .conftest import PAYLOADS, Api, v1_chunks

OTHER = Account("aaaaaaaa-bbbb-4ccc-8ddd-000000000001", "other-secret")
RUN_DELAY = 0.5  # long enough to see a run in progress; the tests poll for its end
WEATHER = {
    "name": "get_weather",
    "description": "Get the weather forecast for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City"}},
        "required": ["city"],
    },
}


@pytest.fixture(scope="module")
def own_emu() -> Iterator[Emulator]:
    with Emulator(accounts=(OTHER,), thread_run_delay=RUN_DELAY) as emu:
        yield emu


@pytest.fixture(scope="module")
def api(own_emu: Emulator) -> Iterator[Api]:
    client = Api(own_emu)
    yield client
    client.close()


def recorded(name: str) -> Any:
    return json.loads((PAYLOADS / "threads" / name).read_text())


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def user(text: str, **extra: Any) -> dict[str, Any]:
    return {"role": "user", "content": text, **extra}


def new_thread(api: Api, *texts: str, **body: Any) -> str:
    """A thread holding one answered exchange per text (via /threads/messages/run)."""
    thread_id = None
    for text in texts or ("Tell me about owls",):
        thread_id = ok(
            api.post("threads/messages/run", json={"thread_id": thread_id, "messages": [user(text)], **body})
        )["thread_id"]
        body.pop("assistant_id", None)
        body.pop("model", None)
    assert thread_id is not None
    return str(thread_id)


def messages_of(api: Api, thread_id: str, **params: Any) -> list[dict[str, Any]]:
    return list(ok(api.get("threads/messages", params={"thread_id": thread_id, **params}))["messages"])


def test_create_thread_and_add_messages(api: Api) -> None:
    thread = ok(api.post("threads", json={}))
    assert list(thread) == ["id", "model", "created_at", "updated_at", "status", "run_lock"]
    assert uuid.UUID(thread["id"]).version == 4
    assert (thread["model"], thread["status"], thread["run_lock"]) == ("GigaChat", "ready", False)
    added = ok(
        api.post(
            "threads/messages",
            json={
                "thread_id": thread["id"],
                "model": None,
                "messages": [user("Какой окрас кота?"), user("А у собаки?")],
            },
        )
    )
    assert added["thread_id"] == thread["id"] and len(added["messages"]) == 2
    assert all(set(m) == {"created_at", "message_id"} for m in added["messages"])
    stored = messages_of(api, thread["id"])
    assert [m["message_id"] for m in stored] == [m["message_id"] for m in added["messages"]]
    assert [m["content"] for m in stored] == ["Какой окрас кота?", "А у собаки?"]
    assert stored[0]["model"] == "GigaChat" and stored[0]["role"] == "user" and "finish_reason" not in stored[0]
    # without thread_id a new thread is made, for the given model
    fresh = ok(api.post("threads/messages", json={"model": "GigaChat-Pro", "messages": [user("hi")]}))
    assert fresh["thread_id"] != thread["id"]
    assert (
        ok(api.post("threads/retrieve", json={"threads_ids": [fresh["thread_id"]]}))["threads"][0]["model"]
        == "GigaChat-Pro"
    )


def test_system_message_goes_first(api: Api) -> None:
    thread_id = ok(api.post("threads/messages", json={"messages": [user("first")]}))["thread_id"]
    ok(
        api.post(
            "threads/messages",
            json={"thread_id": thread_id, "messages": [{"role": "system", "content": "Be brief"}, user("second")]},
        )
    )
    kind = {"role": "system", "content": "Be kind"}
    ok(api.post("threads/messages", json={"thread_id": thread_id, "messages": [kind]}))
    assert [(m["role"], m["content"]) for m in messages_of(api, thread_id)] == [
        ("system", "Be kind"),
        ("user", "first"),
        ("user", "second"),
    ]


def test_attachments(api: Api) -> None:
    file_id = ok(
        api.post("files", files={"file": ("cat.jpeg", b"\xff\xd8\xff fake", "image/jpeg")}, data={"purpose": "general"})
    )["id"]
    thread_id = ok(api.post("threads/messages", json={"messages": [user("Какой окрас кота?", attachments=[file_id])]}))[
        "thread_id"
    ]
    (message,) = messages_of(api, thread_id)
    assert message["attachments"] == [{"file_id": file_id, "name": "cat.jpeg"}]
    missing = api.post("threads/messages", json={"messages": [user("?", attachments=[str(uuid.uuid4())])]})
    assert (missing.status_code, missing.json()["message"]) == (404, "File not found")


def test_background_run(api: Api) -> None:
    thread_id = ok(api.post("threads/messages", json={"messages": [user("Describe the moon")]}))["thread_id"]
    assert api.get("threads/run", params={"thread_id": thread_id}).json() == {
        "status": 404,
        "message": "Thread run not found",
    }
    started = ok(api.post("threads/run", json={"thread_id": thread_id, "assistant_id": None}))
    assert started["status"] == "in_progress" and started["thread_id"] == thread_id
    assert isinstance(started["created_at"], int)
    pending = ok(api.get("threads/run", params={"thread_id": thread_id}))
    assert pending["status"] == "in_progress" and "messages" not in pending
    (listed,) = ok(api.post("threads/retrieve", json={"threads_ids": [thread_id]}))["threads"]
    assert (listed["status"], listed["run_lock"]) == ("in_progress", True)
    busy = api.post("threads/messages", json={"thread_id": thread_id, "messages": [user("more")]})
    assert busy.status_code == 409 and busy.json()["message"] == "Thread is locked: a run is in progress"
    assert api.post("threads/run", json={"thread_id": thread_id}).status_code == 409
    done = wait_until(
        lambda: (r := ok(api.get("threads/run", params={"thread_id": thread_id})))["status"] == "ready" and r
    )
    assert done["status"] == "ready" and done["model"] == "GigaChat"
    assert [m["role"] for m in done["messages"]] == ["user", "assistant"]
    assert done["messages"][1]["finish_reason"] == "stop" and done["messages"][1]["content"]
    stored = messages_of(api, thread_id)
    assert [m["message_id"] for m in stored] == [m["message_id"] for m in done["messages"]]
    (listed,) = ok(api.post("threads/retrieve", json={"threads_ids": [thread_id]}))["threads"]
    assert (listed["status"], listed["run_lock"]) == ("ready", False)


@needs_shared
def test_shapes_match_the_recordings(api: Api) -> None:
    file_id = ok(api.post("files", files={"file": ("c.jpeg", b"\xff\xd8\xff", "image/jpeg")}))["id"]
    added = ok(api.post("threads/messages", json={"messages": [user("Какой окрас кота?", attachments=[file_id])]}))
    assert list(added) == list(recorded("post_threads_messages.json"))
    assert list(added["messages"][0]) == list(recorded("post_threads_messages.json")["messages"][0])
    thread_id = added["thread_id"]
    started = ok(api.post("threads/run", json={"thread_id": thread_id}))
    assert list(started) == list(recorded("post_threads_run.json"))
    run = wait_until(
        lambda: (r := ok(api.get("threads/run", params={"thread_id": thread_id})))["status"] == "ready" and r
    )
    expected = recorded("get_threads_run.json")
    assert list(run) == list(expected)
    assert [list(m) for m in run["messages"]] == [list(m) for m in expected["messages"]]
    listed = ok(api.get("threads/messages", params={"thread_id": thread_id}))
    expected = recorded("get_threads_messages.json")
    assert list(listed) == list(expected)
    assert [list(m) for m in listed["messages"]] == [list(m) for m in expected["messages"]]
    (thread,) = ok(api.post("threads/retrieve", json={"threads_ids": [thread_id]}))["threads"]
    assert list(thread) == list(recorded("get_threads.json")["threads"][0])
    assistant_id = ok(api.post("assistants", json={"model": "GigaChat-Pro", "name": "a"}))["assistant_id"]
    with_assistant = ok(api.post("threads", json={"assistant_id": assistant_id}))
    assert list(with_assistant) == list(recorded("post_threads_retrieve.json")["threads"][0])
    completion = ok(api.post("threads/messages/run", json={"messages": [user("Привет")], "model": "GigaChat-Pro"}))
    assert list(completion) == list(recorded("post_thread_messages_run.json"))
    assert list(completion["usage"]) == list(recorded("post_thread_messages_run.json")["usage"])
    assert completion["message"] == {"content": "Здравствуйте! Чем могу помочь?", "role": "assistant"}
    rerun = ok(api.post("threads/messages/rerun", json={"thread_id": completion["thread_id"]}))
    assert list(rerun) == list(recorded("post_thread_messages_rerun.json"))
    stream = api.post("threads/messages/run", json={"messages": [user("Привет")], "stream": True})
    raw = (PAYLOADS / "threads" / "post_thread_messages_run.stream").read_text().rstrip("\n") + "\n\n"
    chunk_keys = {tuple(c) for c in v1_chunks(raw)}
    assert {tuple(c) for c in v1_chunks(stream.text)} == chunk_keys


def test_messages_run_keeps_history(api: Api) -> None:
    first = ok(
        api.post(
            "threads/messages/run",
            json={"messages": [user("Tell me about owls and their habits")], "model": "GigaChat-Max"},
        )
    )
    assert first["object"] == "threads.messages.run" and first["model"].startswith("GigaChat-Max:")
    assert first["finish_reason"] == "stop" and first["message"]["role"] == "assistant"
    usage = first["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    second = ok(
        api.post(
            "threads/messages/run", json={"thread_id": first["thread_id"], "model": None, "messages": [user("More")]}
        )
    )
    assert second["thread_id"] == first["thread_id"] and second["message_id"] != first["message_id"]
    assert second["model"] == first["model"]  # the thread's model
    assert second["usage"]["prompt_tokens"] > usage["prompt_tokens"] + usage["completion_tokens"]
    assert "owls" in second["message"]["content"]  # a follow-up without a topic takes the history's
    stored = messages_of(api, first["thread_id"])
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert [stored[1]["message_id"], stored[3]["message_id"]] == [first["message_id"], second["message_id"]]
    assert stored[3]["content"] == second["message"]["content"]
    # thread_options.limit: only the last N messages reach the model
    limited = ok(
        api.post(
            "threads/messages/run",
            json={"thread_id": first["thread_id"], "limit": 1, "messages": [user("And eagles?")]},
        )
    )
    assert limited["usage"]["prompt_tokens"] < second["usage"]["prompt_tokens"]
    short = ok(
        api.post(
            "threads/messages/run",
            json={"thread_id": first["thread_id"], "max_tokens": 3, "messages": [user("Again, in detail")]},
        )
    )
    assert short["finish_reason"] == "length"


def test_messages_run_stream(api: Api) -> None:
    response = api.post(
        "threads/messages/run",
        json={"messages": [user("Describe mountains and rivers")], "stream": True, "update_interval": None},
        headers={"X-Emulator-Chunk-Tokens": "5"},
    )
    assert response.status_code == 200 and response.headers["Content-Type"] == "text/event-stream"
    chunks = v1_chunks(response.text)
    assert len(chunks) > 2
    ids = {(c["thread_id"], c["message_id"]) for c in chunks}
    assert len(ids) == 1
    ((thread_id, message_id),) = ids
    assert all(c["object"] == "threads.messages.run" and c["model"].startswith("GigaChat:") for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("role" not in c["choices"][0]["delta"] for c in chunks[1:])
    assert [c["choices"][0].get("finish_reason") for c in chunks] == [None] * (len(chunks) - 1) + ["stop"]
    assert chunks[0]["usage"]["prompt_tokens"] > 0 and all(c["usage"]["prompt_tokens"] == 0 for c in chunks[1:])
    assert all(c["usage"]["completion_tokens"] <= 5 for c in chunks)
    text = "".join(c["choices"][0]["delta"]["content"] for c in chunks)
    stored = messages_of(api, thread_id)
    assert stored[-1]["message_id"] == message_id and stored[-1]["content"] == text
    completion = sum(c["usage"]["completion_tokens"] for c in chunks)
    plain = ok(api.post("threads/messages/run", json={"messages": [user("Describe mountains and rivers")]}))
    assert plain["message"]["content"] == text and plain["usage"]["completion_tokens"] == completion


def test_run_stream(api: Api) -> None:
    thread_id = ok(api.post("threads/messages", json={"messages": [user("Say 'streamed'")]}))["thread_id"]
    chunks = v1_chunks(api.post("threads/run", json={"thread_id": thread_id, "stream": True}).text)
    assert "".join(c["choices"][0]["delta"]["content"] for c in chunks) == "streamed."
    assert {c["thread_id"] for c in chunks} == {thread_id}
    run = ok(api.get("threads/run", params={"thread_id": thread_id}))
    assert run["status"] == "ready" and run["messages"][-1]["message_id"] == chunks[0]["message_id"]


def test_rerun_replaces_the_last_answer(api: Api) -> None:
    thread_id = new_thread(api, "Explain the history of tea in China")
    before = messages_of(api, thread_id)
    rerun = ok(api.post("threads/messages/rerun", json={"thread_id": thread_id}))
    assert rerun["thread_id"] == thread_id and rerun["message_id"] != before[-1]["message_id"]
    assert rerun["message"]["content"] != before[-1]["content"]
    after = messages_of(api, thread_id)
    assert [m["message_id"] for m in after] == [before[0]["message_id"], rerun["message_id"]]
    chunks = v1_chunks(
        api.post("threads/messages/rerun", json={"thread_id": thread_id, "stream": True, "update_interval": None}).text
    )
    streamed = "".join(c["choices"][0]["delta"]["content"] for c in chunks)
    assert streamed not in (rerun["message"]["content"], before[-1]["content"])
    final = messages_of(api, thread_id)
    assert len(final) == 2 and final[-1]["content"] == streamed
    run = ok(api.get("threads/run", params={"thread_id": thread_id}))
    assert [m["message_id"] for m in run["messages"]] == [final[0]["message_id"], final[1]["message_id"]]


def test_assistant_drives_the_thread(api: Api) -> None:
    assistant = ok(
        api.post(
            "assistants",
            json={
                "model": "GigaChat-2-Max",
                "name": "weather",
                "instructions": "You are a weather bot. " * 20,
                "functions": [WEATHER],
            },
        )
    )
    assistant_id = assistant["assistant_id"]
    plain = ok(api.post("threads/messages/run", json={"messages": [user("Tell me a joke")]}))
    joke = ok(
        api.post("threads/messages/run", json={"messages": [user("Tell me a joke")], "assistant_id": assistant_id})
    )
    assert joke["model"] == "GigaChat-2-Max:2.0.30.01" and joke["finish_reason"] == "stop"
    assert joke["usage"]["prompt_tokens"] > plain["usage"]["prompt_tokens"] + 60  # instructions + functions
    call = ok(
        api.post(
            "threads/messages/run",
            json={"thread_id": joke["thread_id"], "messages": [user("What is the weather in Oslo?")]},
        )
    )
    assert call["finish_reason"] == "function_call"
    function_call = dict(call["message"]["function_call"])
    assert uuid.UUID(function_call.pop("id"))  # the call's id (the SDK 0.2.4a1 FunctionCall has one)
    assert function_call == {"name": "get_weather", "arguments": {"city": "Oslo"}}
    assert uuid.UUID(call["message"]["functions_state_id"])
    unanswered = api.post("threads/messages/run", json={"thread_id": joke["thread_id"], "messages": [user("?")]})
    assert unanswered.json() == {
        "status": 422,
        "message": ("Invalid params: every assistant function call must have a result in history"),
    }
    result = {"role": "function", "name": "get_weather", "content": json.dumps({"temperature": 12})}
    answer = ok(api.post("threads/messages/run", json={"thread_id": joke["thread_id"], "messages": [result]}))
    assert answer["finish_reason"] == "stop" and "12" in answer["message"]["content"]
    stored = messages_of(api, joke["thread_id"])
    assert stored[3]["function_call"] == call["message"]["function_call"] and stored[4]["name"] == "get_weather"
    (thread,) = ok(api.post("threads/retrieve", json={"threads_ids": [joke["thread_id"]]}))["threads"]
    assert thread["assistant_id"] == assistant_id and thread["model"] == "GigaChat-2-Max"
    (listed,) = ok(api.get("assistants", params={"assistant_id": assistant_id}))["data"]
    assert listed["threads_count"] == 1
    # a thread run with an assistant binds it
    thread_id = ok(api.post("threads/messages", json={"messages": [user("Tell me a joke")]}))["thread_id"]
    chunks = v1_chunks(
        api.post("threads/run", json={"thread_id": thread_id, "assistant_id": assistant_id, "stream": True}).text
    )
    assert chunks[0]["model"].startswith("GigaChat-2-Max:")
    listed_ids = [t["id"] for t in ok(api.get("threads", params={"assistants_ids": [assistant_id]}))["threads"]]
    assert listed_ids == [thread_id, joke["thread_id"]]
    # thread_options.function_call "none" keeps the model from calling
    text = ok(
        api.post(
            "threads/messages/run",
            json={"thread_id": thread_id, "function_call": "none", "messages": [user("Weather in Oslo?")]},
        )
    )
    assert text["finish_reason"] == "stop"


def test_list_filters_and_pages(own_emu: Emulator) -> None:
    with Emulator() as emu:
        api = Api(emu)
        assistants = [ok(api.post("assistants", json={"model": "GigaChat", "name": n}))["assistant_id"] for n in "ab"]
        ids = [ok(api.post("threads", json={"assistant_id": a}))["id"] for a in (*assistants, assistants[0])]
        plain = ok(api.post("threads", json={}))["id"]
        listed = [t["id"] for t in ok(api.get("threads"))["threads"]]
        assert sorted(listed) == sorted([*ids, plain])
        assert [t["id"] for t in ok(api.get("threads", params={"limit": 2}))["threads"]] == listed[:2]
        by_first = {t["id"] for t in ok(api.get("threads", params={"assistants_ids": assistants[0]}))["threads"]}
        assert by_first == {ids[0], ids[2]}
        both = ok(api.get("threads", params=[("assistants_ids", assistants[0]), ("assistants_ids", assistants[1])]))
        comma = ok(api.get("threads", params={"assistants_ids": ",".join(assistants)}))
        assert {t["id"] for t in both["threads"]} == {t["id"] for t in comma["threads"]} == set(ids)
        assert ok(api.get("threads", params={"before": 1}))["threads"] == []
        assert len(ok(api.get("threads", params={"before": int(time.time()) + 5}))["threads"]) == 4
        assert api.get("threads", params={"limit": "x"}).json() == {
            "status": 422,
            "message": "Invalid params: limit must be an integer",
        }
        assert api.get("threads", params={"limit": 0}).status_code == 422
        api.close()


def test_message_pages(api: Api) -> None:
    thread_id = new_thread(api, "one", "two")
    everything = messages_of(api, thread_id)
    assert len(everything) == 4
    assert messages_of(api, thread_id, limit=3) == everything[1:]
    assert messages_of(api, thread_id, before=1) == []
    assert messages_of(api, thread_id, before=int(time.time()) + 5) == everything


def test_retrieve_and_delete(api: Api) -> None:
    kept, dropped = new_thread(api), new_thread(api)
    response = api.post("threads/delete", json={"thread_id": dropped})
    assert response.status_code == 200 and response.content == b"true" and response.json() is True
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    retrieved = ok(api.post("threads/retrieve", json={"threads_ids": [dropped, str(uuid.uuid4()), kept]}))
    assert [(t["id"], t["status"]) for t in retrieved["threads"]] == [(dropped, "deleted"), (kept, "ready")]
    assert dropped not in [t["id"] for t in ok(api.get("threads"))["threads"]]
    for method, path, kwargs in [
        ("POST", "threads/delete", {"json": {"thread_id": dropped}}),
        ("GET", "threads/messages", {"params": {"thread_id": dropped}}),
        ("GET", "threads/run", {"params": {"thread_id": dropped}}),
        ("POST", "threads/run", {"json": {"thread_id": dropped}}),
        ("POST", "threads/messages", {"json": {"thread_id": dropped, "messages": [user("x")]}}),
        ("POST", "threads/messages/run", {"json": {"thread_id": dropped, "messages": [user("x")]}}),
        ("POST", "threads/messages/rerun", {"json": {"thread_id": dropped}}),
    ]:
        gone = api.request(method, path, **kwargs)
        assert (gone.status_code, gone.json()) == (404, {"status": 404, "message": "Thread not found"}), path


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("threads/retrieve", {}, "Invalid params: threads_ids must be a non-empty array of strings"),
        ("threads/retrieve", {"threads_ids": "x"}, "Invalid params: threads_ids must be an array of strings"),
        ("threads/delete", {}, "Invalid params: thread_id is required"),
        ("threads/run", {}, "Invalid params: thread_id is required"),
        ("threads/messages/rerun", {"thread_id": 5}, "Invalid params: thread_id must be a non-empty string"),
        ("threads/messages", {"messages": []}, "Invalid params: messages must be a non-empty array"),
        (
            "threads/messages",
            {"messages": [{"role": "robot", "content": "x"}]},
            "Invalid params: messages[0].role must be one of system, user, assistant, function",
        ),
        (
            "threads/messages/run",
            {"messages": [user("x"), {"role": "system", "content": "late"}]},
            "Invalid params: system message must be the first message",
        ),
        (
            "threads/messages/run",
            {"messages": [user("x")], "temperature": 0},
            "Invalid params: temperature must be in range (0, +inf)",
        ),
        (
            "threads/messages/run",
            {"messages": [user("x")], "limit": 0},
            "Invalid params: limit must be in range [1, +inf)",
        ),
        (
            "threads/messages/run",
            {"messages": [user("x")], "stream": "yes"},
            "Invalid params: stream must be a boolean",
        ),
        (
            "threads/messages/run",
            {"messages": [user("x")], "function_call": {"name": "nope"}},
            "Invalid params: function nope is not described in functions",
        ),
    ],
)
def test_validation(api: Api, path: str, body: dict[str, Any], message: str) -> None:
    response = api.post(path, json=body)
    assert (response.status_code, response.json()) == (422, {"status": 422, "message": message})


def test_other_errors(api: Api) -> None:
    assert api.get("threads/messages").json() == {"status": 422, "message": "Invalid params: thread_id is required"}
    assert api.post("threads/messages/run", json={"messages": [user("x")], "model": "Nope"}).json() == {
        "status": 404,
        "message": "No such model",
    }
    assert api.post("threads/messages/run", json={"messages": [user("x")], "assistant_id": "nope"}).json() == {
        "status": 404,
        "message": "Assistant not found",
    }
    broken = api.post("threads/messages/run", content=b"{nope", headers={"Content-Type": "application/json"})
    assert broken.json() == {"status": 400, "message": "Your request contains invalid JSON syntax."}
    empty = ok(api.post("threads", json={}))["id"]
    no_messages = api.post("threads/run", json={"thread_id": empty})
    assert no_messages.json() == {"status": 422, "message": "Invalid params: thread has no messages to answer"}
    assert api.post("threads/messages/rerun", json={"thread_id": empty}).status_code == 422
    assert api.post("threads", content=b"").status_code == 200  # an empty body is {}


def test_threads_are_private_to_their_account(own_emu: Emulator, api: Api) -> None:
    theirs = Api(own_emu, key=OTHER.credentials)
    thread_id = new_thread(api)
    assert theirs.get("threads/messages", params={"thread_id": thread_id}).status_code == 404
    assert ok(theirs.post("threads/retrieve", json={"threads_ids": [thread_id]})) == {"threads": []}
    assert thread_id not in [t["id"] for t in ok(theirs.get("threads"))["threads"]]
    assert theirs.post("threads/delete", json={"thread_id": thread_id}).status_code == 404
    chat = theirs.chat("hi", storage={"is_stateful": True, "thread_id": thread_id})
    assert (chat.status_code, chat.json()["message"]) == (404, "Thread not found")
    theirs.close()


def test_routes_share_the_pipeline(own_emu: Emulator, api: Api) -> None:
    for prefix in ("/v1", "/api/v1"):
        response = api.post(
            prefix + "/threads/messages/run",
            json={"messages": [user("hi")]},
            headers={"X-Request-ID": "req-t", "X-Session-ID": "sess-t"},
        )
        assert response.status_code == 200
        assert (response.headers["X-Request-ID"], response.headers["X-Session-ID"]) == ("req-t", "sess-t")
        assert uuid.UUID(response.headers["X-Client-ID"]).version == 4
    assert api.http.get("/api/v1/threads").json() == {"status": 401, "message": "Unauthorized"}
    own_emu.faults.enqueue("500", routes=["/threads/messages/run"])
    failed = api.post("threads/messages/run", json={"messages": [user("hi")]})
    assert failed.json() == {"status": 500, "message": "Internal Server Error"}
    own_emu.faults.enqueue("stream_drop", routes=["/threads"])
    received: list[bytes] = []
    with pytest.raises(httpx.RemoteProtocolError):  # noqa: SIM117
        with api.http.stream(
            "POST",
            api.url("threads/messages/run"),
            json={"messages": [user("Describe rivers")], "stream": True},
            headers={"Authorization": f"Bearer {api.token}", "X-Emulator-Chunk-Tokens": "2"},
        ) as cut:
            received.extend(cut.iter_raw())
    assert received and b"[DONE]" not in b"".join(received)
    stats = own_emu.stats()
    assert stats["api_requests"]["threads_messages_run"] >= 4 and stats["threads"] >= 1


# --- v1 chat storage ---------------------------------------------------------------------------


def test_chat_storage_keeps_history(api: Api) -> None:
    first = ok(api.chat("Расскажи про шахматы", storage={"is_stateful": True}))
    thread_id, message_id = first["thread_id"], first["message_id"]
    assert uuid.UUID(thread_id) and uuid.UUID(message_id) and first["object"] == "chat.completion"
    second = ok(
        api.post(
            "chat/completions",
            json={"messages": [user("Ещё")], "storage": {"is_stateful": True, "thread_id": thread_id}},
        )
    )
    assert second["thread_id"] == thread_id and second["message_id"] != message_id
    assert second["model"].startswith("GigaChat:")  # the thread's model; no "model" needed
    assert second["usage"]["prompt_tokens"] > first["usage"]["prompt_tokens"]
    assert second["usage"]["precached_prompt_tokens"] > 0  # the thread's own prefix is cached
    assert "шахматы" in second["choices"][0]["message"]["content"]
    stored = messages_of(api, thread_id)
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert [stored[1]["message_id"], stored[3]["message_id"]] == [message_id, second["message_id"]]
    chunks = v1_chunks(api.chat("Continue", stream=True, storage={"is_stateful": True, "thread_id": thread_id}).text)
    assert {(c["thread_id"], c["message_id"]) for c in chunks} == {(thread_id, chunks[0]["message_id"])}
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["object"] == "chat.completion"
    assert messages_of(api, thread_id)[-1]["message_id"] == chunks[0]["message_id"]
    limited = ok(api.chat("And?", storage={"is_stateful": True, "thread_id": thread_id, "limit": 1}))
    assert limited["usage"]["prompt_tokens"] < second["usage"]["prompt_tokens"]


def test_chat_storage_not_stateful_and_assistant(api: Api) -> None:
    first = ok(api.chat("Tell me about owls", storage={"is_stateful": False, "metadata": {"k": "v"}}))
    again = ok(api.chat("Tell me about owls", storage={"is_stateful": False, "thread_id": first["thread_id"]}))
    assert again["usage"]["prompt_tokens"] == first["usage"]["prompt_tokens"]  # no history sent
    assert len(messages_of(api, first["thread_id"])) == 2  # the request's messages + answer replace it
    assistant_id = ok(api.post("assistants", json={"model": "GigaChat-Pro", "name": "a", "functions": [WEATHER]}))[
        "assistant_id"
    ]
    body = {"messages": [user("Weather in Oslo?")], "storage": {"is_stateful": True, "assistant_id": assistant_id}}
    called = ok(api.post("chat/completions", json=body))
    assert called["model"].startswith("GigaChat-Pro:")
    assert called["choices"][0]["message"]["function_call"]["name"] == "get_weather"
    (thread,) = ok(api.post("threads/retrieve", json={"threads_ids": [called["thread_id"]]}))["threads"]
    assert thread["assistant_id"] == assistant_id
    plain = ok(api.chat("Weather in Oslo?"))
    assert "thread_id" not in plain and "message_id" not in plain


@pytest.mark.parametrize(
    ("storage", "status", "message"),
    [
        ("yes", 422, "Invalid params: storage must be an object"),
        ({"is_stateful": "yes"}, 422, "Invalid params: storage.is_stateful must be a boolean"),
        ({"is_stateful": True, "limit": 0}, 422, "Invalid params: limit must be in range [1, +inf)"),
        ({"is_stateful": True, "thread_id": str(uuid.uuid4())}, 404, "Thread not found"),
        ({"is_stateful": True, "assistant_id": str(uuid.uuid4())}, 404, "Assistant not found"),
        ({"is_stateful": True, "metadata": 1}, 422, "Invalid params: storage.metadata must be an object"),
    ],
)
def test_chat_storage_validation(api: Api, storage: object, status: int, message: str) -> None:
    response = api.chat("hi", storage=storage)
    assert (response.status_code, response.json()) == (status, {"status": status, "message": message})


def test_chat_storage_needs_a_model_source(api: Api) -> None:
    response = api.post("chat/completions", json={"messages": [user("hi")], "storage": {"is_stateful": True}})
    assert response.json() == {"status": 422, "message": "Invalid params: model is required"}


# --- bounded storage ---------------------------------------------------------------------------


def test_thread_store_is_bounded() -> None:
    with Emulator(max_threads=3, max_thread_messages=4, max_thread_store_chars=20_000, thread_run_delay=0) as emu:
        api = Api(emu)
        ids = [ok(api.post("threads", json={}))["id"] for _ in range(5)]
        assert {t["id"] for t in ok(api.get("threads"))["threads"]} == set(ids[2:])
        thread_id = ids[-1]
        ok(
            api.post(
                "threads/messages",
                json={
                    "thread_id": thread_id,
                    "messages": [{"role": "system", "content": "sys"}, *[user(f"m{i}") for i in range(6)]],
                },
            )
        )
        assert [m["content"] for m in messages_of(api, thread_id)] == ["sys", "m3", "m4", "m5"]
        big = [ok(api.post("threads/messages", json={"messages": [user("x" * 8_000)]}))["thread_id"] for _ in range(3)]
        remaining = {t["id"] for t in ok(api.get("threads"))["threads"]}
        assert big[-1] in remaining and big[0] not in remaining
        assert emu.stats()["threads"] <= 3
        api.close()
