"""LangChain's own standard suites (langchain-tests) for ChatGigaChat and GigaChatEmbeddings.

The unit suites run offline; the integration suites run against the emulator over real loopback
HTTP. Nothing is overridden (the suites check that themselves). The few standard tests that skip
are switched off by the suite's feature flags below, each with the reason:

- ``test_image_tool_message``, ``test_pdf_tool_message``: GigaChat takes only JSON as a
  function result, not images or documents;
- ``test_stream_time``: a VCR benchmark that replays cassettes recorded from the live service
  (``enable_vcr_tests``); there is no live service offline;
- ``test_serdes``: langchain-core's ``load()`` revives only classes on its own allowlist of
  partner packages, so no third-party model can pass it; ``ChatGigaChat`` is therefore not
  declared serializable, which makes the suite skip it.

Off by flag, so part of a test does not run: image URLs (``supports_image_urls``: GigaChat takes
files, not URLs) and video (``supports_video_inputs``: the service takes none).

The standard image, PDF and audio tests download public sample files with ``httpx.get``; there
is no network here, so the fixture below answers those downloads with files made locally (a PNG,
a PDF and a WAV), and the model uploads them to the emulator like any attachment.
"""

from __future__ import annotations

import io
import wave
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_tests.integration_tests import ChatModelIntegrationTests, EmbeddingsIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests, EmbeddingsUnitTests

from gigapy.integrations.langchain import ChatGigaChat, GigaChatEmbeddings
from gigapy.testing import client_settings


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 140, 90)).save(out, format="PNG")
    return out.getvalue()


def _pdf() -> bytes:
    return (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>"
        b"endobj\n3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
    )


def _wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x10" * 4000)
    return out.getvalue()


@pytest.fixture(autouse=True)
def _local_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    """The standard tests' sample downloads, answered with local files (no network here)."""
    real = httpx.get
    samples = {".png": _png, ".pdf": _pdf, ".wav": _wav}

    def get(url: Any, *args: Any, **kwargs: Any) -> httpx.Response:
        for suffix, make in samples.items():
            if str(url).endswith(suffix) and not str(url).startswith("http://127.0.0.1"):
                return httpx.Response(200, content=make(), request=httpx.Request("GET", str(url)))
        return real(url, *args, **kwargs)

    monkeypatch.setattr(httpx, "get", get)
    monkeypatch.setenv("LANGCHAIN_TESTS_USER_AGENT", "gigapy-tests")


ENV = {"GIGACHAT_CREDENTIALS": "test", "GIGACHAT_SCOPE": "GIGACHAT_API_CORP", "GIGACHAT_MODEL": "GigaChat-2-Pro"}


class TestChatGigaChatUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatGigaChat]:
        return ChatGigaChat

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {"model": "GigaChat-2"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return ENV, {}, {"credentials": "test", "scope": "GIGACHAT_API_CORP", "model": "GigaChat-2-Pro"}

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_pdf_inputs(self) -> bool:
        return True

    @property
    def supports_audio_inputs(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_anthropic_inputs(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "GigaChat-2-Max"


class TestChatGigaChatIntegration(ChatModelIntegrationTests):
    @pytest.fixture(autouse=True)
    def _emulator(self, gigachat_emulator: Any) -> None:
        self.emu = gigachat_emulator

    @property
    def chat_model_class(self) -> type[ChatGigaChat]:
        return ChatGigaChat

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {**client_settings(self.emu), "model": "GigaChat-2"}

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_pdf_inputs(self) -> bool:
        return True

    @property
    def supports_audio_inputs(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def supports_anthropic_inputs(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "GigaChat-2-Max"

    @property
    def supported_usage_metadata_details(self) -> dict[str, list[Any]]:
        return {"invoke": ["cache_read_input"], "stream": ["cache_read_input"]}

    def invoke_with_cache_read_input(self, *, stream: bool = False) -> AIMessage:
        """Two turns under one session id: the second reads the first's prompt from the cache."""
        model = ChatGigaChat(**self.chat_model_params, session_id="cache-read-test")
        history = [HumanMessage("Расскажи подробно про реку Волгу и города на ней. " * 20)]
        model.invoke(history)
        if not stream:
            return model.invoke(history)
        full: Any = None
        for chunk in model.stream(history):
            full = chunk if full is None else full + chunk
        return full


class TestGigaChatEmbeddingsUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[GigaChatEmbeddings]:
        return GigaChatEmbeddings

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        return ENV, {"model": "EmbeddingsGigaR"}, {"credentials": "test", "scope": "GIGACHAT_API_CORP"}


class TestGigaChatEmbeddingsIntegration(EmbeddingsIntegrationTests):
    @pytest.fixture(autouse=True)
    def _emulator(self, gigachat_emulator: Any) -> None:
        self.emu = gigachat_emulator

    @property
    def embeddings_class(self) -> type[GigaChatEmbeddings]:
        return GigaChatEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {**client_settings(self.emu), "model": "Embeddings"}
