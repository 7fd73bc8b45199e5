"""The official ``gigachat`` SDK's assistants, threads and chat ``storage`` against the emulator, sync and async."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from gigapy.emulator import DEMO_CREDENTIALS, SCOPE_PERS, Emulator

from ..conftest import async_wait_until, wait_until

gigachat = pytest.importorskip("gigachat")
from gigachat.models import Chat, Function, FunctionParameters, Messages, MessagesRole, Storage  # noqa: E402
from gigachat.models.threads import ThreadRunOptions, ThreadStatus  # noqa: E402

RUN_DELAY = 0.5  # long enough to see a run in progress; the tests poll for its end
WEATHER = Function(
    name="get_weather",
    description="Get the weather forecast for a city",
    parameters=FunctionParameters(properties={"city": {"type": "string", "description": "City"}}, required=["city"]),
)


@pytest.fixture(scope="module")
def sdk_emu() -> Iterator[Emulator]:
    with Emulator(thread_run_delay=RUN_DELAY) as emu:
        yield emu


def client(emu: Emulator) -> gigachat.GigaChat:
    return gigachat.GigaChat(
        base_url=emu.base_url,
        auth_url=emu.auth_url,
        credentials=DEMO_CREDENTIALS,
        scope=SCOPE_PERS,
        model="GigaChat",
        timeout=30,
    )


def test_sync_assistants(sdk_emu: Emulator) -> None:
    with client(sdk_emu) as giga:
        file_id = giga.upload_file(("notes.txt", b"notes", "text/plain"), purpose="assistant").id_
        created = giga.assistants.create(
            model="GigaChat-Pro",
            name="helper",
            instructions="Answer briefly",
            file_ids=[file_id],
            functions=[WEATHER],
            metadata={"team": "a"},
        )
        assert created.assistant_id and created.created_at
        (got,) = giga.assistants.get(assistant_id=created.assistant_id).data
        assert (got.name, got.instructions, got.model, got.metadata) == (
            "helper",
            "Answer briefly",
            "GigaChat-Pro",
            {"team": "a"},
        )
        assert got.functions[0].name == "get_weather" and got.files[0].file_id == file_id
        assert created.assistant_id in [a.assistant_id for a in giga.assistants.get().data]
        updated = giga.assistants.update(created.assistant_id, description="Weather helper")
        assert updated.description == "Weather helper" and updated.instructions == "Answer briefly"
        assert giga.assistants.delete_file(created.assistant_id, file_id).deleted is True
        assert giga.assistants.delete(created.assistant_id).deleted is True
        with pytest.raises(gigachat.exceptions.NotFoundError):
            giga.assistants.get(assistant_id=created.assistant_id)


def test_sync_threads(sdk_emu: Emulator) -> None:
    with client(sdk_emu) as giga:
        assistant_id = giga.assistants.create(model="GigaChat-Max", name="bot", functions=[WEATHER]).assistant_id
        thread_id = giga.threads.create_thread()
        giga.threads.add_message(thread_id, "Tell me about owls")
        added = giga.threads.add_messages(thread_id, [{"role": "user", "content": "And eagles?"}])
        assert added.thread_id == thread_id and len(added.messages) == 1
        started = giga.threads.run(
            thread_id, assistant_id=assistant_id, thread_options=ThreadRunOptions(temperature=0.5, max_tokens=50)
        )
        assert started.status == ThreadStatus.IN_PROGRESS
        assert giga.threads.get_run(thread_id).status == ThreadStatus.IN_PROGRESS
        result = wait_until(lambda: (r := giga.threads.get_run(thread_id)).status == ThreadStatus.READY and r)
        assert result.status == ThreadStatus.READY and result.model == "GigaChat-Max"
        assert [m.role for m in result.messages] == ["user", "user", "assistant"]
        messages = giga.threads.get_messages(thread_id)
        assert [m.message_id for m in messages.messages] == [m.message_id for m in result.messages]
        assert len(giga.threads.get_messages(thread_id, limit=1).messages) == 1

        chunks = list(giga.threads.run_stream(thread_id))
        assert chunks[-1].choices[0].finish_reason == "stop" and {c.thread_id for c in chunks} == {thread_id}
        assert sum(c.usage.completion_tokens for c in chunks) > 0

        done = giga.threads.run_messages(["What is the weather in Oslo?"], thread_id=thread_id)
        assert done.finish_reason == "function_call" and done.message.function_call.arguments == {"city": "Oslo"}
        answer = giga.threads.run_messages(
            [Messages(role=MessagesRole.FUNCTION, name="get_weather", content='{"temperature": 12}')],
            thread_id=thread_id,
        )
        assert answer.finish_reason == "stop" and "12" in answer.message.content
        rerun = giga.threads.rerun_messages(thread_id, thread_options=ThreadRunOptions(max_tokens=5))
        assert rerun.finish_reason == "length" and rerun.message_id != answer.message_id

        fresh = giga.threads.run_messages_stream(["Describe mountains"], model="GigaChat-Pro", update_interval=None)
        chunks = list(fresh)
        assert chunks[0].model.startswith("GigaChat-Pro:") and chunks[0].choices[0].delta.role == "assistant"
        new_id = chunks[0].thread_id
        rechunks = list(giga.threads.rerun_messages_stream(new_id))
        assert rechunks[-1].choices[0].finish_reason == "stop" and rechunks[0].message_id != chunks[0].message_id

        listed = giga.threads.list(assistants_ids=[assistant_id])
        assert [t.id_ for t in listed.threads] == [thread_id]
        assert {t.id_ for t in giga.threads.get_threads(limit=2).threads} == {new_id, thread_id}
        retrieved = giga.threads.retrieve([thread_id, new_id])
        assert [t.id_ for t in retrieved.threads] == [thread_id, new_id]
        assert retrieved.threads[0].assistant_id == assistant_id
        assert giga.threads.delete(new_id) is True
        assert giga.threads.retrieve([new_id]).threads[0].status == ThreadStatus.DELETED
        with pytest.raises(gigachat.exceptions.NotFoundError):
            giga.threads.get_messages(new_id)


def test_sync_chat_storage(sdk_emu: Emulator) -> None:
    with client(sdk_emu) as giga:
        first = giga.chat(
            Chat(
                messages=[Messages(role=MessagesRole.USER, content="Расскажи про шахматы")],
                storage=Storage(is_stateful=True),
            )
        )
        assert first.thread_id and first.message_id
        second = giga.chat(
            Chat(
                messages=[Messages(role=MessagesRole.USER, content="Ещё")],
                storage=Storage(is_stateful=True, thread_id=first.thread_id),
            )
        )
        assert second.thread_id == first.thread_id and "шахматы" in second.choices[0].message.content
        chunks = list(
            giga.stream(
                Chat(
                    messages=[Messages(role=MessagesRole.USER, content="Say 'ok'")],
                    storage=Storage(is_stateful=True, thread_id=first.thread_id),
                )
            )
        )
        assert "".join(c.choices[0].delta.content for c in chunks) == "ok."
        assert len(giga.threads.get_messages(first.thread_id).messages) == 6


def test_async_assistants_threads_and_storage(sdk_emu: Emulator) -> None:
    async def scenario() -> None:
        async with client(sdk_emu) as giga:
            created = await giga.a_assistants.create(model="GigaChat", name="async", instructions="Be brief")
            assert (await giga.a_assistants.get(created.assistant_id)).data[0].name == "async"
            assert (await giga.a_assistants.update(created.assistant_id, name="renamed")).name == "renamed"
            thread_id = await giga.a_threads.create_thread()
            await giga.a_threads.add_message(thread_id, "Describe the sea")
            assert (await giga.a_threads.run(thread_id, assistant_id=created.assistant_id)).thread_id == thread_id

            async def ready() -> bool:
                return (await giga.a_threads.get_run(thread_id)).status == ThreadStatus.READY

            assert await async_wait_until(ready)
            assert len((await giga.a_threads.get_messages(thread_id)).messages) == 2
            chunks = [c async for c in giga.a_threads.run_stream(thread_id)]
            assert chunks[-1].choices[0].finish_reason == "stop"
            completion = await giga.a_threads.run_messages(["Say 'hi'"], assistant_id=created.assistant_id)
            assert completion.message.content == "hi." and completion.model.startswith("GigaChat:")
            rerun = await giga.a_threads.rerun_messages(completion.thread_id)
            assert rerun.thread_id == completion.thread_id
            streamed = [
                c
                async for c in giga.a_threads.run_messages_stream(["Count from 1 to 3"], thread_id=completion.thread_id)
            ]
            assert "".join(c.choices[0].delta.content for c in streamed) == "1, 2, 3"
            restreamed = [c async for c in giga.a_threads.rerun_messages_stream(completion.thread_id)]
            assert "".join(c.choices[0].delta.content for c in restreamed) == "1, 2, 3"
            added = await giga.a_threads.add_messages(messages=["A new thread"])
            assert [t.id_ for t in (await giga.a_threads.retrieve([added.thread_id])).threads] == [added.thread_id]
            assert added.thread_id in [t.id_ for t in (await giga.a_threads.list()).threads]
            assert await giga.a_threads.delete(added.thread_id) is True
            stored = await giga.achat(
                Chat(
                    messages=[Messages(role=MessagesRole.USER, content="hi")],
                    storage=Storage(is_stateful=True, assistant_id=created.assistant_id),
                )
            )
            assert stored.thread_id and stored.message_id
            chunks = [
                c
                async for c in giga.astream(
                    Chat(
                        messages=[Messages(role=MessagesRole.USER, content="Say 'again'")],
                        storage=Storage(is_stateful=True, thread_id=stored.thread_id),
                    )
                )
            ]
            assert "".join(c.choices[0].delta.content for c in chunks) == "again."
            assert (await giga.a_assistants.delete(created.assistant_id)).deleted is True

    asyncio.run(scenario())
