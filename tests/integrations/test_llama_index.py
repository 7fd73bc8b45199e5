"""GigaChatLLM and GigaChatEmbedding for LlamaIndex, against the emulator over loopback HTTP.

llama-index-core ships no standard test suite for integrations (its own integration packages
check the base classes and exercise the interface); these tests do that, then run a RAG
pipeline end to end: index documents, retrieve, answer.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.llms.base import BaseLLM
from llama_index.core.base.llms.types import (
    AudioBlock,
    ChatMessage,
    DocumentBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel

from gigapy import InvalidArgumentError
from gigapy.integrations.langchain import ChatGigaChat
from gigapy.integrations.llama_index import GigaChatEmbedding, GigaChatLLM
from gigapy.testing import client_settings

from .test_langchain_standard import _pdf, _png, _wav


def get_weather(city: str) -> str:
    """Текущая погода в городе."""
    return f"В городе {city} солнечно, +18"


def _chat_bodies(emu: Any) -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in emu.requests if r.path.endswith("/chat/completions")]


@pytest.fixture
def llm(emu: Any) -> GigaChatLLM:
    return GigaChatLLM(**client_settings(emu), model="GigaChat-2-Max")


@pytest.fixture
def embed(emu: Any) -> GigaChatEmbedding:
    return GigaChatEmbedding(**client_settings(emu))


def test_base_classes() -> None:
    assert BaseLLM in GigaChatLLM.__mro__ and FunctionCallingLLM in GigaChatLLM.__mro__
    assert BaseEmbedding in GigaChatEmbedding.__mro__
    assert GigaChatLLM.class_name() == "GigaChatLLM" and GigaChatEmbedding.class_name() == "GigaChatEmbedding"


def test_chat_complete_and_metadata(llm: GigaChatLLM) -> None:
    meta = llm.metadata
    assert meta.is_chat_model and meta.is_function_calling_model and meta.model_name == "GigaChat-2-Max"
    answer = llm.chat(
        [
            ChatMessage(role=MessageRole.SYSTEM, content="Ты краток."),
            ChatMessage(role=MessageRole.USER, content="Привет"),
        ]
    )
    assert answer.message.role == MessageRole.ASSISTANT and answer.message.content
    assert answer.additional_kwargs["usage"]["total_tokens"] > 0
    assert answer.additional_kwargs["model"].startswith("GigaChat-2-Max")
    assert llm.complete("Сколько планет в Солнечной системе?").text
    assert asyncio.run(llm.acomplete("Привет")).text


def test_streams(llm: GigaChatLLM) -> None:
    responses = list(llm.stream_chat([ChatMessage(role=MessageRole.USER, content="Расскажи про Волгу")]))
    assert len(responses) > 1
    assert responses[-1].message.content == "".join(r.delta or "" for r in responses)
    assert responses[-1].additional_kwargs["usage"]["completion_tokens"] > 0
    completions = list(llm.stream_complete("Расскажи про Волгу"))
    assert completions[-1].text and completions[-1].text == "".join(c.delta or "" for c in completions)

    async def collect() -> list[Any]:
        gen = await llm.astream_chat([ChatMessage(role=MessageRole.USER, content="Привет")])
        return [r async for r in gen]

    assert asyncio.run(collect())[-1].message.content


def test_function_calling_round_trip(emu: Any, llm: GigaChatLLM) -> None:
    tool = FunctionTool.from_defaults(fn=get_weather)
    response = llm.chat_with_tools([tool], user_msg="Какая погода в Казани?", tool_required=True)
    calls = llm.get_tool_calls_from_response(response)
    assert calls[0].tool_name == "get_weather" and calls[0].tool_kwargs["city"]
    assert _chat_bodies(emu)[-1]["tool_config"]["mode"] == "any"
    output = llm.predict_and_call([tool], "Какая погода в Казани?")
    assert "солнечно" in output.response
    history = [
        ChatMessage(role=MessageRole.USER, content="Какая погода в Казани?"),
        response.message,
        ChatMessage(
            role=MessageRole.TOOL,
            content=get_weather(**calls[0].tool_kwargs),
            additional_kwargs={"tool_call_id": calls[0].tool_id},
        ),
    ]
    final = llm.chat(
        history,
        functions=[
            {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
        ],
    )
    assert final.message.content and not [b for b in final.message.blocks if isinstance(b, ToolCallBlock)]
    result = _chat_bodies(emu)[-1]["messages"][2]["content"][0]["function_result"]
    assert result["id"] == calls[0].tool_id and result["name"] == "get_weather"
    with pytest.raises(ValueError, match="tool call"):
        llm.get_tool_calls_from_response(final)


class City(BaseModel):
    name: str
    population: int


def test_structured_predict(llm: GigaChatLLM) -> None:
    from llama_index.core.prompts import PromptTemplate

    city = llm.structured_predict(
        City, PromptTemplate("Назови крупнейший город {country} и его население"), country="России"
    )
    assert isinstance(city, City) and city.name
    assert isinstance(asyncio.run(llm.astructured_predict(City, PromptTemplate("Город {c}"), c="Казань")), City)


def test_images_are_attached_and_builtin_tools(emu: Any, llm: GigaChatLLM) -> None:
    message = ChatMessage(
        role=MessageRole.USER,
        blocks=[
            TextBlock(text="Что на картинке, в документе и в записи?"),
            ImageBlock(image=_png()),
            DocumentBlock(data=_pdf()),
            AudioBlock(audio=_wav(), format="wav"),
        ],
    )
    assert llm.chat([message]).message.content
    files = _chat_bodies(emu)[-1]["messages"][0]["content"][1]["files"]
    uploaded = {f.id: f for f in llm.sync_client.get_all_files()}
    assert [uploaded[f["id"]].modalities for f in files] == [["image"], ["text"], ["audio"]]
    drawn = llm.chat_with_tools(["image_generate"], user_msg="Нарисуй кота", tool_choice="image_generate")
    assert drawn.message.additional_kwargs["files"][0]["target"] == "image"


def test_one_shared_client_no_client_per_call(emu: Any) -> None:
    settings = client_settings(emu)
    llms = [GigaChatLLM(**settings, temperature=0.5 * i) for i in range(3)]
    embed = GigaChatEmbedding(**settings)
    assert len({id(x.sync_client) for x in [*llms, embed]} | {id(ChatGigaChat(**settings).sync_client)}) == 1
    for model in llms:
        model.complete("Привет")
    embed.get_text_embedding("кошка")
    assert emu.stats()["oauth_requests"] == 1
    assert _chat_bodies(emu)[0]["model_options"]["temperature"] == 0.001  # 0 is sent as greedy


def test_embeddings_batch_keep_order(emu: Any, embed: GigaChatEmbedding) -> None:
    texts = [f"документ {i}" for i in range(7)]
    embed.embed_batch_size = 3
    vectors = embed.get_text_embedding_batch(texts)
    assert len(vectors) == 7 and vectors[4] == embed.get_text_embedding("документ 4")
    assert asyncio.run(embed.aget_text_embedding_batch(texts)) == vectors
    assert embed.get_query_embedding("документ 4") == vectors[4]


def test_bad_input(llm: GigaChatLLM, emu: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="temprature"):
        llm.complete("Привет", temprature=1)
    with pytest.raises(InvalidArgumentError, match="tools"):
        llm.chat_with_tools(["web_serch"], user_msg="x")
    assert not _chat_bodies(emu)


DOCS = [
    "Байкал — самое глубокое озеро на планете, его глубина достигает 1642 метров.",
    "Эльбрус — высочайшая вершина России и Европы, его высота 5642 метра.",
    "Волга — самая длинная река Европы, она впадает в Каспийское море.",
    "Пельмени — традиционное блюдо русской кухни из теста и мясного фарша.",
]


def test_rag_index_retrieve_answer(emu: Any, llm: GigaChatLLM, embed: GigaChatEmbedding) -> None:
    index = VectorStoreIndex.from_documents([Document(text=t) for t in DOCS], embed_model=embed)
    assert emu.stats()["api_requests"]["embeddings"] >= 1
    nodes = index.as_retriever(similarity_top_k=1).retrieve("Какая глубина у озера Байкал?")
    assert "Байкал" in nodes[0].node.get_content()
    response = index.as_query_engine(llm=llm, similarity_top_k=2).query("Какая глубина у озера Байкал?")
    assert str(response).strip()
    assert any("Байкал" in n.node.get_content() for n in response.source_nodes)
    prompt = json.dumps(_chat_bodies(emu)[-1]["messages"], ensure_ascii=False)
    assert "1642" in prompt  # the retrieved text reached the model
    assert asyncio.run(index.as_query_engine(llm=llm).aquery("Где впадает Волга?")).response
