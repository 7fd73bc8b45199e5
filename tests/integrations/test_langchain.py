"""ChatGigaChat and GigaChatEmbeddings beyond the standard suites: what only GigaChat has, the
shared client and token, and bad input refused before anything is sent."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from gigapy import AsyncGigaChat, GigaChat, InvalidArgumentError
from gigapy.integrations.langchain import ChatGigaChat, GigaChatEmbeddings
from gigapy.testing import client_settings

from .test_langchain_standard import _pdf, _png


@tool
def get_weather(city: str) -> str:
    """Текущая погода в городе."""
    return f"В городе {city} солнечно"


@tool
def get_time(city: str) -> str:
    """Текущее время в городе."""
    return "12:00"


def _chat_bodies(emu: Any) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in emu.requests if r.path.endswith("/chat/completions")]


@pytest.fixture
def llm(emu: Any) -> ChatGigaChat:
    return ChatGigaChat(**client_settings(emu), model="GigaChat-2-Max")


def test_models_with_the_same_settings_share_one_client_and_one_token(emu: Any) -> None:
    settings = client_settings(emu)
    models = [ChatGigaChat(**settings, temperature=0.1 * i) for i in range(5)]  # 0 is sent as greedy
    embeddings = GigaChatEmbeddings(**settings)
    assert len({id(m.sync_client) for m in models} | {id(embeddings.sync_client)}) == 1
    for model in models:
        model.invoke("Привет")
    embeddings.embed_query("кошка")

    async def both() -> None:
        await models[0].ainvoke("Привет")
        await embeddings.aembed_documents(["кошка", "собака"])

    asyncio.run(both())
    assert models[0].aclient is models[1].aclient is embeddings.aclient
    assert emu.stats()["oauth_requests"] == 1  # one token for every model, sync and async
    assert _chat_bodies(emu)[0]["model_options"]["temperature"] == 0.001
    other = ChatGigaChat(**{**settings, "scope": "GIGACHAT_API_CORP"})
    assert other.sync_client is not models[0].sync_client


def test_a_given_client_is_used_and_its_async_twin_shares_the_token(emu: Any) -> None:
    with GigaChat(**client_settings(emu), model="GigaChat-2-Pro") as client:
        llm = ChatGigaChat(client=client)
        assert llm.sync_client is client and llm.model_name == "GigaChat-2-Pro"
        assert ChatGigaChat(client=client).aclient is llm.aclient  # one twin per given client
        assert llm.invoke("Привет").response_metadata["model_name"].startswith("GigaChat-2-Pro")
        asyncio.run(llm.ainvoke("Привет"))
        assert emu.stats()["oauth_requests"] == 1
    twin = ChatGigaChat(client=AsyncGigaChat(**client_settings(emu)))
    assert isinstance(twin.sync_client, GigaChat)
    with pytest.raises(InvalidArgumentError, match="client"):
        ChatGigaChat(client="not a client").invoke("x")


def test_usage_with_cached_tokens_and_session_id(emu: Any) -> None:
    llm = ChatGigaChat(**client_settings(emu), session_id="lc-session-1")
    history = [HumanMessage("Расскажи про озеро Байкал подробно. " * 10)]
    llm.invoke(history)
    second = llm.invoke(history)
    usage = second.usage_metadata
    assert usage is not None and usage["input_token_details"]["cache_read"] > 0
    assert usage["input_tokens"] >= usage["input_token_details"]["cache_read"]
    assert second.response_metadata["session_id"] == "lc-session-1"
    assert all(
        r.headers.get("X-Session-ID") == "lc-session-1" for r in emu.requests if r.path.endswith("/chat/completions")
    )
    per_call = llm.invoke("Привет", session_id="other-session")
    assert per_call.response_metadata["session_id"] == "other-session"


def test_stream_yields_ai_message_chunks_with_usage_once(llm: ChatGigaChat) -> None:
    chunks = list(llm.stream("Расскажи про Волгу"))
    assert all(type(c).__name__ == "AIMessageChunk" for c in chunks)
    assert sum(1 for c in chunks if c.usage_metadata) == 1
    full = chunks[0]
    for c in chunks[1:]:
        full += c
    assert full.text and full.usage_metadata["output_tokens"] > 0
    assert full.response_metadata["model_name"].startswith("GigaChat-2-Max")
    assert chunks[-1].chunk_position == "last"


@pytest.mark.parametrize(
    ("choice", "sent"), [("auto", "auto"), ("any", "any"), ("required", "any"), ("get_time", "get_time"), (True, "any")]
)
def test_tool_choice_reaches_the_service(emu: Any, llm: ChatGigaChat, choice: Any, sent: str) -> None:
    answer = llm.bind_tools([get_weather, get_time], tool_choice=choice).invoke("Какая погода в Казани?")
    body = _chat_bodies(emu)[-1]
    mode = body["tool_config"]
    if sent in ("auto", "any"):
        assert mode["mode"] == sent
    else:
        assert mode.get("function_name") == sent or mode.get("tool_name") == sent
    if sent != "auto":
        assert answer.tool_calls
    if sent == "get_time":
        assert answer.tool_calls[0]["name"] == "get_time"
    assert [t.get("functions") for t in body["tools"] if "functions" in t]


def test_streamed_tool_calls_and_the_round_trip(llm: ChatGigaChat) -> None:
    bound = llm.bind_tools([get_weather], tool_choice="get_weather")
    full: Any = None
    for chunk in bound.stream("Какая погода в Казани?"):
        full = chunk if full is None else full + chunk
    assert full.tool_call_chunks and full.tool_calls[0]["name"] == "get_weather"
    call = full.tool_calls[0]
    assert call["args"]["city"] and call["id"]
    assert full.additional_kwargs.get("tool_state_id")
    result = get_weather.invoke(call)
    assert isinstance(result, ToolMessage)
    final = bound.bind(tool_config="auto").invoke([HumanMessage("Какая погода в Казани?"), full, result])
    assert isinstance(final, AIMessage) and final.text


def test_parallel_tool_calls(llm: ChatGigaChat) -> None:
    bound = llm.bind_tools([get_weather, get_time], parallel_tool_calls=True)
    answer = bound.invoke("Какая сейчас погода и время в Москве?")
    names = sorted(c["name"] for c in answer.tool_calls)
    assert names == ["get_time", "get_weather"]
    assert len({c["id"] for c in answer.tool_calls}) == 2


class Recipe(BaseModel):
    """Рецепт."""

    title: str = Field(description="Название")
    minutes: int
    note: str | None = None


@pytest.mark.parametrize("method", ["json_schema", "function_calling", "json_mode"])
def test_structured_output_methods(emu: Any, llm: ChatGigaChat, method: str) -> None:
    recipe = llm.with_structured_output(Recipe, method=method).invoke("Дай рецепт омлета за 10 минут")
    assert isinstance(recipe, Recipe) and recipe.title
    body = _chat_bodies(emu)[-1]
    if method == "function_calling":
        assert body["tool_config"]["function_name"] == "Recipe"
    else:
        assert body["model_options"]["response_format"]["type"] == "json_schema"
    raw = llm.with_structured_output(Recipe, method=method, include_raw=True).invoke("Рецепт омлета")
    assert isinstance(raw["raw"], AIMessage) and isinstance(raw["parsed"], Recipe) and raw["parsing_error"] is None


def test_images_and_documents_become_attachments(emu: Any, llm: ChatGigaChat) -> None:
    png = base64.b64encode(_png()).decode()
    pdf = base64.b64encode(_pdf()).decode()
    message = HumanMessage(
        [
            {"type": "text", "text": "Что на картинке и в документе?"},
            {"type": "image", "base64": png, "mime_type": "image/png"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},  # the same bytes
            {"type": "file", "base64": pdf, "mime_type": "application/pdf"},
        ]
    )
    llm.invoke([message])
    llm.invoke([message])
    assert emu.stats()["api_requests"]["files_upload"] == 2  # each content uploaded once
    files = _chat_bodies(emu)[-1]["messages"][0]["content"][1]["files"]
    assert len(files) == 3 and files[0] == files[1] != files[2]
    uploaded = {f.id: f for f in llm.sync_client.get_all_files()}
    assert uploaded[files[0]["id"]].modalities == ["image"]
    by_id = HumanMessage([{"type": "text", "text": "А тут?"}, {"type": "file", "file_id": files[2]["id"]}])
    llm.invoke([by_id])
    assert _chat_bodies(emu)[-1]["messages"][0]["content"][1]["files"] == [{"id": files[2]["id"]}]


def test_builtin_tools_reasoning_and_generated_files(emu: Any, llm: ChatGigaChat) -> None:
    drawn = llm.bind_tools(["image_generate"], tool_choice="image_generate").invoke("Нарисуй кота в шляпе")
    files = drawn.additional_kwargs["files"]
    assert files and files[0]["target"] == "image"
    assert llm.sync_client.download_file(files[0]["id"])[:2] == b"\xff\xd8"  # a JPEG
    assert _chat_bodies(emu)[-1]["tools"] == [{"image_generate": {}}] or "image_generate" in json.dumps(
        _chat_bodies(emu)[-1]["tools"]
    )
    thinker = ChatGigaChat(**client_settings(emu), reasoning_effort="high")
    answer = thinker.invoke("Сколько будет 17 * 23?")
    assert answer.additional_kwargs["reasoning_content"]
    assert any(b["type"] == "reasoning" for b in answer.content_blocks)
    assert _chat_bodies(emu)[-1]["model_options"]["reasoning"] == {"effort": "high"}


def test_system_messages_are_merged_first(emu: Any, llm: ChatGigaChat) -> None:
    llm.invoke([SystemMessage("Ты краток."), HumanMessage("Привет"), SystemMessage("Отвечай по-русски.")])
    messages = _chat_bodies(emu)[-1]["messages"]
    assert messages[0] == {"role": "system", "content": [{"text": "Ты краток.\n\nОтвечай по-русски."}]}
    assert [m["role"] for m in messages] == ["system", "user"]


def test_stop_sequences_cut_the_answer(llm: ChatGigaChat) -> None:
    full = llm.invoke("Привет")
    word = full.text.split()[1]
    cut = llm.invoke("Привет", stop=[word])
    assert word not in cut.text and full.text.startswith(cut.text)
    streamed = "".join(c.text for c in llm.stream("Привет", stop=[word]))
    assert streamed == cut.text


def test_tracing_metadata(emu: Any) -> None:
    llm = ChatGigaChat(**client_settings(emu), model="GigaChat-2-Pro", temperature=0.2, max_tokens=50, stop=["x"])
    params = llm._get_ls_params()
    assert params == {
        "ls_provider": "gigachat",
        "ls_model_name": "GigaChat-2-Pro",
        "ls_model_type": "chat",
        "ls_temperature": 0.2,
        "ls_max_tokens": 50,
        "ls_stop": ["x"],
    }
    assert llm._get_ls_params(model="GigaChat-2-Max")["ls_model_name"] == "GigaChat-2-Max"
    assert llm.invoke("Привет").response_metadata["model_provider"] == "gigachat"


def test_langchain_gigachat_names_are_accepted(emu: Any) -> None:
    settings = client_settings(emu)
    llm = ChatGigaChat(
        credentials=settings["credentials"],
        scope=settings["scope"],
        base_url=settings["base_url"],
        auth_url=settings["auth_url"],
        model="GigaChat-2",
        verify_ssl_certs=True,
        timeout=30,
        temperature=0.5,
        top_p=0.9,
        max_tokens=64,
        repetition_penalty=1.1,
        profanity_check=False,
        reasoning_max_tokens=100,
        reasoning_effort="low",
        streaming=True,
        use_api_for_tokens=True,
    )
    assert llm.invoke("Привет").text
    assert llm.get_num_tokens("Привет, мир!") > 0
    assert emu.stats()["api_requests"].get("tokens_count") == 1
    body = _chat_bodies(emu)[-1]
    assert body["model_options"]["temperature"] == 0.5 and body["disable_filter"] is True


def test_bad_input_is_refused_before_sending(emu: Any, llm: ChatGigaChat) -> None:
    with pytest.raises(InvalidArgumentError, match="temprature"):
        llm.invoke("Привет", temprature=0.3)
    with pytest.raises(InvalidArgumentError, match="files, not URLs"):
        llm.invoke([HumanMessage([{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}])])
    with pytest.raises(InvalidArgumentError, match="tools"):
        llm.bind_tools(["web_serch"])
    with pytest.raises(InvalidArgumentError, match="tool_choice"):
        llm.bind_tools([get_weather], tool_choice={"nothing": 1})
    assert not _chat_bodies(emu)


def test_no_secret_in_repr_or_dump(emu: Any) -> None:
    llm = ChatGigaChat(**{**client_settings(emu), "credentials": "c2VjcmV0LWtleQ=="}, password="p4ss")
    text = repr(llm) + str(llm.model_dump()) + repr(GigaChatEmbeddings(credentials="c2VjcmV0LWtleQ=="))
    assert "c2VjcmV0LWtleQ==" not in text and "p4ss" not in text


def test_embeddings_batch_and_keep_order(emu: Any) -> None:
    embeddings = GigaChatEmbeddings(**client_settings(emu), batch_size=3, concurrency=2)
    texts = [f"документ {i}" for i in range(8)]
    vectors = embeddings.embed_documents(texts)
    assert len(vectors) == 8 and emu.stats()["api_requests"]["embeddings"] == 3
    assert vectors[5] == embeddings.embed_query("документ 5")
    assert asyncio.run(embeddings.aembed_documents(texts)) == vectors
    assert embeddings.embed_documents([]) == []
    prefixed = GigaChatEmbeddings(**client_settings(emu), use_prefix_query=True)
    assert prefixed.embed_query("кот") != embeddings.embed_query("кот")


@pytest.mark.parametrize("cls", [ChatGigaChat, GigaChatEmbeddings])
def test_unknown_and_refused_settings_are_named_and_hide_the_secret(cls: type) -> None:
    with pytest.raises(ValueError, match="temprature: unknown setting") as info:
        cls(credentials="c2VjcmV0LWtleQ==", temprature=0.5)
    assert "c2VjcmV0LWtleQ==" not in str(info.value)
    with pytest.raises(ValueError, match="ssl_context: gigapy builds its own TLS context"):
        cls(ssl_context=object())
    with pytest.raises(ValueError, match="retry_on_status_codes"):
        cls(retry_on_status_codes=(500,))
    with pytest.raises(ValueError, match="use_api_v2"):
        cls(use_api_v2=False)
    assert cls(use_api_v2=True, allow_any_tool_choice_fallback=True) is not None  # accepted, nothing to do


def test_settings_from_the_environment(emu: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = client_settings(emu)
    for name in ("credentials", "scope", "base_url", "auth_url"):
        monkeypatch.setenv(f"GIGACHAT_{name.upper()}", settings[name])
    monkeypatch.setenv("GIGACHAT_MODEL", "GigaChat-2-Pro")
    llm = ChatGigaChat()
    assert llm.model == "GigaChat-2-Pro" and llm.credentials.get_secret_value() == settings["credentials"]
    assert llm.invoke("Привет").response_metadata["model_name"].startswith("GigaChat-2-Pro")
    assert len(GigaChatEmbeddings().embed_query("кот")) > 0


@pytest.mark.parametrize(
    ("module", "missing", "extra"),
    [("langchain", "langchain_core", "gigapy[langchain]"), ("llama_index", "llama_index.core", "gigapy[llama-index]")],
)
def test_a_missing_framework_names_the_extra(module: str, missing: str, extra: str) -> None:
    import subprocess
    import sys

    code = (
        f"import sys; sys.modules[{missing!r}] = None\n"
        f"try:\n    import gigapy.integrations.{module}\nexcept ImportError as e:\n    print(e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert extra in out.stdout


def test_import_gigapy_loads_no_framework() -> None:
    import subprocess
    import sys

    code = (
        "import sys, gigapy, gigapy.integrations; print(sorted(m for m in sys.modules "
        "if m.startswith(('langchain', 'llama_index', 'gigapy.integrations.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_shared_clients_are_closed_at_exit(emu: Any) -> None:
    import subprocess
    import sys

    code = (
        "import asyncio, json, sys\n"
        "from gigapy.integrations.langchain import ChatGigaChat\n"
        "llm = ChatGigaChat(**json.loads(sys.argv[1]))\n"
        "print(asyncio.run(llm.ainvoke('Привет')).content[:5], llm.invoke('Привет').content[:5])\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(client_settings(emu))],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() and "Unclosed" not in out.stderr, out.stderr
