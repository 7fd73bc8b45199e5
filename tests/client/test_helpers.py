"""Images, attachments, embeddings at scale and conversations (sync and async)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from gigapy import AsyncGigaChat, GigaChat, ImageGenerationError, InvalidArgumentError
from gigapy.testing import client_settings


def requests_to(emu: Any, suffix: str) -> list[Any]:
    return [r for r in emu.requests if r.path.endswith(suffix)]


# --- images and attachments ------------------------------------------------------------------


def test_generate_image_returns_a_real_jpeg(emu: Any, make_client: Any, tmp_path: Path) -> None:
    client = make_client()
    data = client.generate_image("Нарисуй маяк на скале", style="Ты художник-акварелист")
    assert Image.open(io.BytesIO(data)).format == "JPEG"
    chat, content = requests_to(emu, "/chat/completions")[-1], [r for r in emu.requests if "/content" in r.path][-1]
    assert chat.json()["function_call"] == "auto"
    assert chat.json()["messages"][0] == {"role": "system", "content": "Ты художник-акварелист"}
    assert chat.headers["X-Client-ID"] == content.headers["X-Client-ID"]  # downloaded under the same id
    path = client.generate_image("Нарисуй сову", tmp_path / "owl.jpg")
    assert path == tmp_path / "owl.jpg"
    assert Image.open(path).size[0] > 0


def test_no_image_is_a_typed_error(make_client: Any) -> None:
    with pytest.raises(ImageGenerationError) as info:
        make_client().generate_image("Сколько будет два плюс два?")
    assert info.value.text


def test_attach_uploads_once_per_content_and_checks_first(emu: Any, make_client: Any, tmp_path: Path) -> None:
    client = make_client()
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(client.generate_image("Нарисуй кота"))
    before = len(requests_to(emu, "/files"))
    first = client.attach(photo, "Какой-то текст".encode(), purpose="general")
    again = client.attach(photo.read_bytes())  # same content, different source: no upload
    assert again == first[:1]
    assert len(requests_to(emu, "/files")) == before + 2
    answer = client.completion("Что на фото?", attachments=first[:1], model="GigaChat-2-Max")
    assert requests_to(emu, "/chat/completions")[-1].json()["messages"][-1]["attachments"] == first[:1]
    assert answer.text
    client.delete_file(first[0])
    assert client.attach(photo) != first[:1]  # deleted content is uploaded anew
    big = tmp_path / "big.png"
    with big.open("wb") as fh:
        fh.truncate(16 * 1024 * 1024)
    count = len(emu.requests)
    with pytest.raises(InvalidArgumentError) as info:
        client.attach(big)
    assert info.value.field == "sources[0]"
    assert len(emu.requests) == count


@pytest.mark.parametrize("face", ["sync", "async"])
def test_a_remembered_upload_the_service_lost_is_uploaded_again(emu: Any, face: str) -> None:
    content = b"%PDF-1.4 remembered then lost " + face.encode()
    if face == "sync":
        with GigaChat(**client_settings(emu)) as client:
            first = client.attach(content)
            emu.reset()  # the service forgets every file (retention, a deletion from elsewhere)
            again = client.attach(content)
            answer = client.completion("Что в файле?", attachments=again, model="GigaChat-2-Max")
    else:

        async def go() -> tuple[list[str], list[str], Any]:
            async with AsyncGigaChat(**client_settings(emu)) as client:
                first = await client.attach(content)
                emu.reset()
                again = await client.attach(content)
                return first, again, await client.completion("Что в файле?", attachments=again, model="GigaChat-2-Max")

        first, again, answer = asyncio.run(go())
    assert again != first and answer.text  # a fresh upload, and the chat finds it


def test_attachments_in_v2_messages(emu: Any, make_client: Any) -> None:
    client = make_client()
    (file_id,) = client.attach("Договор поставки № 7".encode(), purpose="general")
    answer = client.v2.completion([{"role": "user", "content": "О чём документ?", "attachments": [file_id]}])
    assert answer.text
    sent = [r for r in emu.requests if "/v2/chat" in r.path][-1].json()
    assert sent["messages"][0]["content"] == [{"text": "О чём документ?"}, {"files": [{"id": file_id}]}]


# --- embeddings at scale -----------------------------------------------------------------------


def test_embed_many_batches_keeps_order_and_matches_single_calls(emu: Any, make_client: Any) -> None:
    client = make_client()
    texts = [f"документ номер {i}" for i in range(250)]
    emu.reset_stats()
    vectors = client.embed_many(texts, batch_size=40, concurrency=4)
    assert len(vectors) == 250
    assert emu.stats()["api_requests"]["embeddings"] == 7
    assert vectors[137] == client.embedding(texts[137]).vectors[0]
    assert vectors[0] == client.embedding(texts[0]).vectors[0]


def test_embed_many_splits_by_token_budget(emu: Any, make_client: Any) -> None:
    emu.reset_stats()
    make_client().embed_many(["очень длинный текст " * 20] * 6, batch_size=100, max_batch_tokens=300)
    assert emu.stats()["api_requests"]["embeddings"] == 6


def test_embed_many_retries_only_failed_batches(emu: Any, make_client: Any) -> None:
    client = make_client(max_retries=0)
    emu.reset_stats()
    emu.faults.enqueue("500", "503", routes=["embeddings"])
    vectors = client.embed_many([f"t{i}" for i in range(30)], batch_size=10, concurrency=1)
    assert len(vectors) == 30
    assert emu.stats()["api_requests"]["embeddings"] == 3 + 2


def test_embed_many_numpy_and_async(emu: Any, make_client: Any) -> None:
    array = make_client().embed_many(["a", "b", "c"], as_numpy=True)
    assert array.shape == (3, 1024)

    async def main() -> None:
        async with AsyncGigaChat(**client_settings(emu)) as client:
            vectors = await client.embed_many([f"текст {i}" for i in range(95)], batch_size=20, concurrency=3)
            assert len(vectors) == 95
            assert vectors[94] == (await client.embedding("текст 94")).vectors[0]

    asyncio.run(main())


# --- conversations -----------------------------------------------------------------------------


def test_conversation_keeps_history_and_one_session(emu: Any, make_client: Any) -> None:
    conv = make_client().conversation("Ты вежливый помощник. " * 20, temperature=0.5)
    first = conv.say("Привет! Меня зовут Аня.")
    second = conv.say("Напомни, как меня зовут?")
    assert [m["role"] for m in conv.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert second.usage.precached_prompt_tokens > 0  # the shared prefix came from the prompt cache
    sent = requests_to(emu, "/chat/completions")[-2:]
    assert {r.headers["X-Session-ID"] for r in sent} == {conv.session_id}
    assert sent[-1].json()["temperature"] == 0.5
    assert conv.state.cached_tokens == second.usage.precached_prompt_tokens
    assert first.text


def test_conversation_trims_to_the_context(make_client: Any) -> None:
    conv = make_client().conversation("Система", max_context_tokens=4096 + 120)
    for i in range(6):
        conv.say(f"Вопрос номер {i}: расскажи что-нибудь интересное про число {i}", max_tokens=4096 - 200)
    assert conv.messages[0]["role"] == "system"
    assert conv.messages[-1]["role"] == "assistant"
    assert len(conv.messages) < 13
    assert "Вопрос номер 5" in conv.messages[-2]["content"]


def test_conversation_with_a_function_call(make_client: Any) -> None:
    weather = {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    conv = make_client().conversation(functions=[weather])
    asked = conv.say("Какая погода в Самаре?", function_call="get_weather")
    assert asked.function_call is not None
    conv.add_function_result("get_weather", {"temperature": 12})
    final = conv.say()
    assert final.finish_reason == "stop"
    assert [m["role"] for m in conv.messages] == ["user", "assistant", "function", "assistant"]


def test_async_conversation(emu: Any) -> None:
    async def main() -> None:
        async with AsyncGigaChat(**client_settings(emu)) as client:
            conv = client.conversation("Кратко.")
            await conv.say("Привет")
            answer = await conv.say("Ещё")
            assert answer.usage.precached_prompt_tokens > 0
            assert len(conv.messages) == 5

    asyncio.run(main())
