"""Every client method, sync and async, against the emulator over real loopback HTTP."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gigapy import AsyncGigaChat, GigaChat, NotFoundError, PermissionDeniedError
from gigapy.testing import client_settings
from gigapy.types import (
    AICheckResult,
    Balance,
    Batch,
    ChatCompletion,
    DeletedFile,
    Embeddings,
    File,
    FunctionValidationResult,
    Model,
    Models,
    TokensCount,
)

Call = Callable[..., Any]


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest, emu: Any) -> Call:
    """Call a client method by name on a sync or an async client."""

    def call(method: str, *args: Any, client_options: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        settings = client_settings(emu, **(client_options or {}))
        if request.param == "sync":
            with GigaChat(**settings) as client:
                return getattr(client, method)(*args, **kwargs)

        async def go() -> Any:
            async with AsyncGigaChat(**settings) as client:
                return await getattr(client, method)(*args, **kwargs)

        return asyncio.run(go())

    return call


def last(emu: Any, path_part: str) -> Any:
    """The last request the emulator received whose path contains ``path_part``."""
    return next(r for r in reversed(emu.requests) if path_part in r.path)


def test_completion_from_a_prompt(api: Call, emu: Any) -> None:
    result = api("completion", "Привет! Расскажи о себе.")
    assert isinstance(result, ChatCompletion)
    assert result.text
    assert result.finish_reason == "stop"
    assert result.model is not None and result.model.startswith("GigaChat-2:")
    assert result.usage is not None
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens
    assert result.request_id == last(emu, "chat/completions").headers["X-Request-ID"]
    body = last(emu, "chat/completions").json()
    assert body == {"model": "GigaChat-2", "messages": [{"role": "user", "content": "Привет! Расскажи о себе."}]}


def test_completion_with_messages_and_fields_never_mutates_input(api: Call, emu: Any) -> None:
    messages = [{"role": "system", "content": "Отвечай кратко."}, {"role": "user", "content": "Что такое Python?"}]
    snapshot = json.dumps(messages)
    result = api(
        "completion",
        messages,
        model="GigaChat-2-Max",
        temperature=0.3,
        top_p=0.9,
        max_tokens=5,
        repetition_penalty=1.1,
        profanity_check=False,
        flags=["x"],
    )
    assert json.dumps(messages) == snapshot
    assert result.finish_reason == "length"
    assert result.usage.completion_tokens == 5
    body = last(emu, "chat/completions").json()
    assert body["model"] == "GigaChat-2-Max"
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["repetition_penalty"]) == (0.3, 0.9, 5, 1.1)
    assert (body["profanity_check"], body["flags"]) == (False, ["x"])


def test_function_calling_round_trip(api: Call) -> None:
    weather = {
        "name": "get_weather",
        "description": "Погода в городе",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
    first = api("completion", "Какая погода в Москве?", functions=[weather], function_call="get_weather")
    call = first.function_call
    assert first.finish_reason == "function_call"
    assert call is not None and call.name == "get_weather"
    assert isinstance(call.parsed_arguments.get("city"), str)
    history = [
        {"role": "user", "content": "Какая погода в Москве?"},
        first.message,  # the model's own message, passed back as is
        {"role": "function", "content": {"temperature": 21, "sky": "ясно"}},
    ]
    second = api("completion", history, functions=[weather])
    assert second.finish_reason == "stop"
    assert second.text


def test_image_generation_and_download(api: Call, emu: Any, tmp_path: Path) -> None:
    result = api("completion", "Нарисуй розового кота", function_call="auto", client_id="user-42")
    (file_id,) = result.images
    data = api("download_file", file_id, client_id="user-42")
    assert data[:3] == b"\xff\xd8\xff"
    target = tmp_path / "cat.jpg"
    assert api("download_file", file_id, target, client_id="user-42") == target
    assert target.read_bytes() == data
    assert not Path(f"{target}.part").exists()
    with pytest.raises(PermissionDeniedError):  # bound to the X-Client-ID it was generated under
        api("download_file", file_id)


def test_models(api: Call) -> None:
    models = api("all_models")
    assert isinstance(models, Models)
    assert "GigaChat-2" in models.names
    assert {m.type for m in models.data} >= {"chat", "embedder", "aicheck"}
    model = api("get_model", "GigaChat-2-Pro")
    assert isinstance(model, Model)
    assert (model.id, model.type) == ("GigaChat-2-Pro", "chat")
    with pytest.raises(NotFoundError) as info:
        api("get_model", "NoSuchModel")
    assert info.value.server_message == "No such model"
    assert info.value.request_id


def test_embeddings(api: Call, emu: Any) -> None:
    result = api("embedding", ["первый текст", "второй текст"], model="Embeddings")
    assert isinstance(result, Embeddings)
    assert [e.index for e in result.data] == [0, 1]
    assert all(len(v) == 1024 for v in result.vectors)
    assert result.prompt_tokens > 0
    assert api("embedding", "первый текст").vectors[0] == result.vectors[0]  # deterministic
    assert last(emu, "embeddings").json() == {"model": "Embeddings", "input": ["первый текст"]}


def test_count_tokens(api: Call) -> None:
    counts = api("count_tokens", ["Hello, world!", "Привет"])
    assert all(isinstance(c, TokensCount) for c in counts)
    assert [c.characters for c in counts] == [13, 6]
    assert all(c.tokens > 0 for c in counts)


def test_balance_and_its_403_for_pay_as_you_go(api: Call) -> None:
    balance = api("get_balance")
    assert isinstance(balance, Balance)
    assert balance.as_dict()
    with pytest.raises(PermissionDeniedError):
        api("get_balance", client_options={"scope": "GIGACHAT_API_CORP"})


@pytest.mark.parametrize("kind", ["path", "bytes", "fileobj"])
def test_upload_list_info_download_delete(api: Call, tmp_path: Path, kind: str) -> None:
    content = "Отчёт за квартал: всё хорошо.\n".encode()
    path = tmp_path / "report.txt"
    path.write_bytes(content)
    source: Any = {"path": path, "bytes": content, "fileobj": io.BytesIO(content)}[kind]
    uploaded = api("upload_file", source, filename=None if kind == "path" else "report.txt")
    assert isinstance(uploaded, File)
    assert (uploaded.bytes, uploaded.filename, uploaded.purpose) == (len(content), "report.txt", "general")
    assert uploaded.id in [f.id for f in api("get_all_files")]
    assert api("get_file_info", uploaded.id).filename == "report.txt"
    assert api("download_file", uploaded.id) == content
    deleted = api("delete_file", uploaded.id)
    assert isinstance(deleted, DeletedFile)
    assert deleted.deleted
    with pytest.raises(NotFoundError):
        api("get_file_info", uploaded.id)


def test_check_ai_and_validate_function(api: Call) -> None:
    text = " ".join(["Искусственный интеллект помогает людям решать сложные задачи каждый день"] * 4)
    result = api("check_ai", text, client_options={"scope": "GIGACHAT_API_CORP"})
    assert isinstance(result, AICheckResult)
    assert result.category in ("ai", "human", "mixed")
    assert result.characters == len(text)
    good = api(
        "validate_function",
        {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {}}},
    )
    assert isinstance(good, FunctionValidationResult)
    assert good.is_valid
    bad = api("validate_function", {"name": "1bad", "parameters": {"type": "object", "properties": {}}})
    assert not bad.is_valid


def test_batches_end_to_end(api: Call) -> None:
    requests = [
        {"id": f"q{i}", "request": {"messages": [{"role": "user", "content": f"Вопрос {i}"}]}} for i in range(3)
    ]
    batch = api("create_batch", requests, client_options={"scope": "GIGACHAT_API_CORP"})
    assert isinstance(batch, Batch)
    assert batch.request_counts.total == 3
    done = api(
        "wait_for_batch", batch.id, poll_interval=0.1, max_wait=30, client_options={"scope": "GIGACHAT_API_CORP"}
    )
    assert done.status == "completed"
    assert batch.id in [b.id for b in api("get_batches", client_options={"scope": "GIGACHAT_API_CORP"})]
    results = api("get_batch_results", done, client_options={"scope": "GIGACHAT_API_CORP"})
    assert sorted(r.id for r in results) == ["q0", "q1", "q2"]
    assert all(r.ok and r.body["choices"][0]["message"]["content"] for r in results)


def test_token_helpers(api: Call) -> None:
    token = api("create_token")
    assert token.expires_in > 60
    assert "access_token" in repr(token)
    assert token.access_token.get_secret_value() not in repr(token)
