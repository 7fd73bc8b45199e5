"""Assistants and threads: every method sync and async, correct wire bodies (no explicit nulls)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gigapy import AsyncGigaChat, InvalidArgumentError, NotFoundError
from gigapy.testing import client_settings

from ..conftest import wait_until


def bodies(emu: Any, part: str) -> list[Any]:
    return [r.json() for r in emu.requests if r.path.endswith(part) and r.body]


def no_nulls(value: Any) -> bool:
    if isinstance(value, dict):
        return all(v is not None and no_nulls(v) for v in value.values())
    if isinstance(value, list):
        return all(no_nulls(v) for v in value)
    return True


def test_assistants_lifecycle(emu: Any, make_client: Any) -> None:
    client = make_client()
    created = client.assistants.create(name="Гид", instructions="Отвечай кратко", metadata={"team": "travel"})
    assert created.assistant_id
    sent = bodies(emu, "/assistants")[-1]
    assert sent == {
        "model": "GigaChat-2",
        "name": "Гид",
        "instructions": "Отвечай кратко",
        "metadata": {"team": "travel"},
    }
    assert created.assistant_id in [a.assistant_id for a in client.assistants.list().data]
    assert client.assistants.get(created.assistant_id).instructions == "Отвечай кратко"
    updated = client.assistants.update(created.assistant_id, name="Гид 2")
    assert updated.name == "Гид 2"
    assert bodies(emu, "/assistants/modify")[-1] == {"assistant_id": created.assistant_id, "name": "Гид 2"}
    file_id = client.upload_file(b"FAQ: opening hours 9-18", filename="faq.txt").id
    client.assistants.update(created.assistant_id, file_ids=[file_id])
    assert client.assistants.delete_file(created.assistant_id, file_id).deleted
    assert client.assistants.delete(created.assistant_id).deleted
    with pytest.raises(NotFoundError):
        client.assistants.get(created.assistant_id)


def test_threads_and_runs(emu: Any, make_client: Any) -> None:
    client = make_client()
    assistant = client.assistants.create(name="Помощник", instructions="Будь вежлив")
    first = client.threads.run_messages("Привет! Кто ты?", assistant_id=assistant.assistant_id, temperature=0.5)
    thread_id = first.thread_id
    assert thread_id
    assert first.message_id
    assert first.text
    assert first.finish_reason == "stop"
    sent = bodies(emu, "/threads/messages/run")[-1]
    assert sent == {
        "temperature": 0.5,
        "assistant_id": assistant.assistant_id,
        "messages": [{"role": "user", "content": "Привет! Кто ты?"}],
    }
    second = client.threads.run_messages([{"role": "user", "content": "А ещё?"}], thread_id=thread_id)
    assert second.thread_id == thread_id
    history = client.threads.get_messages(thread_id)
    assert [m.role for m in history.messages] == ["user", "assistant", "user", "assistant"]
    assert len(client.threads.get_messages(thread_id, limit=2).messages) == 2
    rerun = client.threads.rerun_messages(thread_id, max_tokens=5)
    assert rerun.usage.completion_tokens <= 5
    added = client.threads.add_messages("Ещё один вопрос", thread_id=thread_id)
    assert added.thread_id == thread_id
    started = client.threads.run(thread_id)
    assert started.status in ("in_progress", "ready")
    wait_until(lambda: client.threads.get_run(thread_id).status == "ready", 10, 0.05, what="the run is ready")
    assert thread_id in [t.id for t in client.threads.list().threads]
    assert [t.id for t in client.threads.retrieve([thread_id]).threads] == [thread_id]
    assert client.threads.delete(thread_id) is True
    for part in (
        "/threads/messages/run",
        "/threads/messages/rerun",
        "/threads/messages",
        "/threads/run",
        "/threads/retrieve",
        "/threads/delete",
        "/assistants",
    ):
        assert all(no_nulls(body) for body in bodies(emu, part)), part


def test_streamed_thread_runs(make_client: Any) -> None:
    client = make_client()
    with client.threads.run_messages_stream("Расскажи про Байкал", max_tokens=30) as stream:
        chunks = list(stream)
        final = stream.get_final_completion()
    assert chunks
    assert all(c.thread_id == final.thread_id for c in chunks)
    assert final.thread_id
    assert final.usage.completion_tokens == 30
    with client.threads.rerun_messages_stream(final.thread_id) as stream:
        assert "".join(stream.text_stream)
    client.threads.add_messages("И ещё про Волгу", thread_id=final.thread_id)
    with client.threads.run_stream(final.thread_id) as stream:
        assert stream.get_final_completion().text


def test_async_assistants_and_threads(emu: Any) -> None:
    async def main() -> None:
        async with AsyncGigaChat(**client_settings(emu)) as client:
            assistant = await client.assistants.create(name="Async")
            done = await client.threads.run_messages("Привет", assistant_id=assistant.assistant_id)
            assert done.text
            async with client.threads.run_messages_stream("Ещё", thread_id=done.thread_id) as stream:
                text = "".join([t async for t in stream.text_stream])
            assert text
            assert len((await client.threads.get_messages(done.thread_id)).messages) == 4
            assert await client.threads.delete(done.thread_id)
            assert (await client.assistants.delete(assistant.assistant_id)).deleted

    asyncio.run(main())


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.assistants.create(name=""), "name"),
        (lambda c: c.assistants.get(""), "assistant_id"),
        (lambda c: c.assistants.update("a", file_ids=[1]), "file_ids[0]"),
        (lambda c: c.threads.run_messages([]), "messages"),
        (lambda c: c.threads.run_messages("hi", temperature=0), "temperature"),
        (lambda c: c.threads.run("t", limit=0), "limit"),
        (lambda c: c.threads.get_messages("t", limit=0), "limit"),
        (lambda c: c.threads.retrieve([]), "threads_ids"),
        (lambda c: c.threads.rerun_messages(""), "thread_id"),
    ],
)
def test_bad_input_is_rejected_before_sending(emu: Any, make_client: Any, call: Any, field: str) -> None:
    before = len(emu.requests)
    with pytest.raises(InvalidArgumentError) as info:
        call(make_client())
    assert info.value.field == field
    assert len(emu.requests) == before


def test_wire_bodies_are_json_objects(emu: Any, make_client: Any) -> None:
    make_client().threads.create()
    raw = next(r for r in reversed(emu.requests) if r.path.endswith("/threads"))
    assert json.loads(raw.body) == {}
