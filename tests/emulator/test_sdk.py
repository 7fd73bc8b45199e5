"""The official ``gigachat`` SDK works against the emulator unchanged (its own headers and bodies)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
from collections.abc import Iterator

import pytest
from PIL import Image

from gigapy.emulator import DEMO_CREDENTIALS, DEMO_PASSWORD, DEMO_USER, SCOPE_CORP, SCOPE_PERS, Emulator

gigachat = pytest.importorskip("gigachat")
from gigachat.models import Chat, Messages, MessagesRole  # noqa: E402
from pydantic import BaseModel  # noqa: E402


class Answer(BaseModel):
    answer: str
    n: int


OPENAPI = json.dumps(
    {
        "openapi": "3.0.0",
        "paths": {
            "/sms": {
                "post": {
                    "operationId": "send_sms",
                    "description": "Send an SMS",
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"text": {"type": "string"}},
                                    "required": ["text"],
                                }
                            }
                        }
                    },
                }
            }
        },
    }
)


@pytest.fixture(scope="module")
def sdk_emu() -> Iterator[Emulator]:
    with Emulator() as emu:
        yield emu


def client(emu: Emulator, scope: str = SCOPE_PERS) -> gigachat.GigaChat:
    return gigachat.GigaChat(
        base_url=emu.base_url,
        auth_url=emu.auth_url,
        credentials=DEMO_CREDENTIALS,
        scope=scope,
        model="GigaChat",
        timeout=30,
    )


def test_sync_chat_and_stream(sdk_emu: Emulator) -> None:
    with client(sdk_emu) as giga:
        answer = giga.chat("Say 'Hello' and nothing else")
        assert answer.choices[0].message.content == "Hello."
        assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens
        assert answer.x_headers["x-request-id"]
        payload = Chat(
            messages=[
                Messages(role=MessagesRole.SYSTEM, content="Be brief"),
                Messages(role=MessagesRole.USER, content="Tell me about owls"),
            ],
            max_tokens=5,
        )
        short = giga.chat(payload)
        assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 5
        chunks = list(giga.stream("Count from 1 to 3"))
        assert "".join(c.choices[0].delta.content for c in chunks) == "1, 2, 3"
        assert chunks[-1].choices[0].finish_reason == "stop"
        _, parsed = giga.chat_parse('Return {"answer":"ok","n":3} exactly.', response_format=Answer)
        assert parsed == Answer(answer="ok", n=3)


def test_sync_v2_chat(sdk_emu: Emulator) -> None:
    with client(sdk_emu) as giga:
        response = giga.chat.create("Say 'Hello' and nothing else")
        assert response.messages[0].content[0].text == "Hello."
        assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
        chunks = list(giga.chat.stream("Count from 1 to 5"))
        assert chunks[-1].event == "response.message.done"
        text = "".join(part.text or "" for c in chunks for m in (c.messages or []) for part in m.content or [])
        assert text == "1, 2, 3, 4, 5"
        _, parsed = giga.chat.parse('Return {"answer":"ok","n":3} exactly.', response_format=Answer)
        assert parsed.n == 3
        tools = giga.chat.create(
            {
                "messages": [{"role": "user", "content": "Weather in Oslo?"}],
                "tools": [
                    {
                        "functions": {
                            "specifications": [
                                {
                                    "name": "get_weather",
                                    "parameters": {
                                        "type": "object",
                                        "properties": {"city": {"type": "string"}},
                                        "required": ["city"],
                                    },
                                }
                            ]
                        }
                    }
                ],
            }
        )
        assert tools.finish_reason == "function_call"
        assert tools.messages[0].content[0].function_call.arguments == {"city": "Oslo"}


def test_sync_other_methods(sdk_emu: Emulator) -> None:
    with client(sdk_emu) as giga:
        assert giga.get_token().access_token
        assert "GigaChat-2-Max" in [m.id_ for m in giga.get_models().data]
        assert giga.get_model("GigaChat").id_ == "GigaChat"
        vectors = giga.embeddings(["hello world", "goodbye"])
        assert [len(e.embedding) for e in vectors.data] == [1024, 1024]
        assert [t.tokens for t in giga.tokens_count(["Hello, world!"])] == [4]
        uploaded = giga.upload_file(("notes.txt", b"some notes", "text/plain"))
        assert giga.get_file(uploaded.id_).bytes_ == 10
        assert uploaded.id_ in [f.id_ for f in giga.get_files().data]
        assert giga.delete_file(uploaded.id_).deleted is True
        assert {b.usage for b in giga.get_balance().balance} >= {"GigaChat", "embeddings"}
        drawn = giga.chat(
            {"messages": [{"role": "user", "content": "Нарисуй закат над морем"}], "function_call": "auto"}
        )
        file_id = re.search(r'<img src="([^"]+)"', drawn.choices[0].message.content).group(1)
        image = Image.open(io.BytesIO(base64.b64decode(giga.get_image(file_id).content)))
        assert image.format == "JPEG"
        converted = giga.openapi_function_convert(OPENAPI)
        assert converted.functions[0].name == "send_sms"


def test_check_ai_needs_pay_as_you_go(sdk_emu: Emulator) -> None:
    with client(sdk_emu, SCOPE_CORP) as giga:
        result = giga.check_ai("Кроме того, следует отметить важность этого текста. Я гулял.", "GigaCheckDetection")
        assert result.category in ("ai", "human", "mixed") and result.characters > 0
    with client(sdk_emu) as giga, pytest.raises(gigachat.exceptions.ResponseError):
        giga.check_ai("text", "GigaCheckDetection")


def test_user_password_token(sdk_emu: Emulator) -> None:
    with gigachat.GigaChat(
        base_url=sdk_emu.base_url, user=DEMO_USER, password=DEMO_PASSWORD, model="GigaChat", timeout=30
    ) as giga:
        assert giga.chat("Say 'ok'").choices[0].message.content == "ok."
        assert giga.get_token().access_token


def test_errors_map_to_sdk_exceptions(sdk_emu: Emulator) -> None:
    with client(sdk_emu) as giga:
        with pytest.raises(gigachat.exceptions.NotFoundError):
            giga.get_model("NonExistentModel")
        with pytest.raises(gigachat.exceptions.UnprocessableEntityError):
            giga.chat({"messages": [{"role": "user", "content": "hi"}], "temperature": 0})
        sdk_emu.faults.enqueue("429")
        with pytest.raises(gigachat.exceptions.RateLimitError) as caught:
            giga.chat("hi")
        assert caught.value.retry_after == 1.0
        sdk_emu.expire_tokens()
        assert giga.chat("Say 'again'").choices[0].message.content == "again."  # SDK refreshes on 401


def test_async_methods(sdk_emu: Emulator) -> None:
    async def scenario() -> None:
        async with client(sdk_emu) as giga:
            assert (await giga.achat("Say 'Hello' and nothing else")).choices[0].message.content == "Hello."
            text = "".join([c.choices[0].delta.content async for c in giga.astream("Count from 1 to 4")])
            assert text == "1, 2, 3, 4"
            response = await giga.achat.create("Say 'Hi'")
            assert response.messages[0].content[0].text == "Hi."
            events = [c.event async for c in giga.achat.stream("Count from 1 to 2")]
            assert events[-1] == "response.message.done"
            assert len((await giga.aembeddings(["a"])).data[0].embedding) == 1024
            assert (await giga.atokens_count(["First text"]))[0].tokens == 2
            assert (await giga.aget_models()).data
            assert (await giga.aget_model("Embeddings")).id_ == "Embeddings"
            uploaded = await giga.aupload_file(("a.png", b"\x89PNG\r\n", "image/png"))
            assert (await giga.aget_file(uploaded.id_)).id_ == uploaded.id_
            assert uploaded.id_ in [f.id_ for f in (await giga.aget_files()).data]
            assert (await giga.adelete_file(uploaded.id_)).deleted
            assert (await giga.aget_balance()).balance
            assert (await giga.aget_token()).access_token
            assert (await giga.aopenapi_function_convert(OPENAPI)).functions
            _, parsed = await giga.achat_parse('Return {"answer":"ok","n":3} exactly.', response_format=Answer)
            assert parsed.answer == "ok"

    asyncio.run(scenario())


def test_sdk_assistant_and_thread_storage_examples(sdk_emu: Emulator) -> None:
    """The SDK's own examples (assistants/basic.py, chat_completions/thread_storage.py), sync and async."""
    from gigachat.models import ChatCompletionRequest, ChatMessage, ChatStorage

    def text(response: object) -> str:
        message = response.messages[0]  # type: ignore[attr-defined]
        return "".join(part.text for part in message.content if part.text)

    with gigachat.GigaChat(
        base_url=sdk_emu.base_url, auth_url=sdk_emu.auth_url, credentials=DEMO_CREDENTIALS, scope=SCOPE_PERS, timeout=30
    ) as giga:  # no model configured: the examples send none
        created = giga.assistants.create(
            model="GigaChat-2", name="SDK Example Assistant", instructions="Answer as a concise Python SDK maintainer."
        )
        response = giga.chat.create(
            ChatCompletionRequest(
                assistant_id=created.assistant_id,
                messages=[ChatMessage(role="user", content="How should I test a new SDK example?")],
            )
        )
        assert text(response) and response.model.startswith("GigaChat-2:")
        giga.assistants.delete(created.assistant_id)
        first = giga.chat.create(
            ChatCompletionRequest(
                model="GigaChat-2-Max",
                storage=ChatStorage(),
                messages=[ChatMessage(role="user", content="My name is Alex. Remember it for the next question.")],
            )
        )
        assert first.thread_id
        second = giga.chat.create(
            ChatCompletionRequest(
                messages=[ChatMessage(role="user", content="What is my name?")],
                storage=ChatStorage(thread_id=first.thread_id),
            )
        )
        assert second.thread_id == first.thread_id and "Alex" in text(second)
        assert second.messages[0].message_id

    async def scenario() -> None:
        async with gigachat.GigaChat(
            base_url=sdk_emu.base_url,
            auth_url=sdk_emu.auth_url,
            credentials=DEMO_CREDENTIALS,
            scope=SCOPE_PERS,
            timeout=30,
        ) as giga:
            first = await giga.achat.create(
                ChatCompletionRequest(
                    model="GigaChat", storage=True, messages=[ChatMessage(role="user", content="Меня зовут Ольга.")]
                )
            )
            second = await giga.achat.create(
                ChatCompletionRequest(
                    storage=ChatStorage(thread_id=first.thread_id),
                    messages=[ChatMessage(role="user", content="Как меня зовут?")],
                )
            )
            assert "Ольга" in text(second)

    asyncio.run(scenario())
