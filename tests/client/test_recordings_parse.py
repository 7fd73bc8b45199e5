"""Every response body recorded from the live service parses into our models, losing nothing.

"Nothing lost" is checked by dumping the parsed model back to JSON (wire names, only the
fields that were set) and comparing it with the original body.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from gigapy._core.sse import SSEDecoder
from gigapy.types import (
    AICheckResult,
    Assistant,
    Assistants,
    Balance,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionV2,
    ChatCompletionV2Chunk,
    CreatedAssistant,
    DeletedAssistant,
    DeletedAssistantFile,
    DeletedFile,
    Embeddings,
    File,
    FileList,
    Function,
    Model,
    Models,
    ThreadCompletion,
    ThreadCompletionChunk,
    ThreadMessages,
    ThreadRunResponse,
    ThreadRunResult,
    Threads,
    TokensCount,
)

from ..conftest import RECORDINGS, needs_shared

pytestmark = needs_shared

PAYLOADS: dict[str, type[BaseModel]] = {
    "ai_check.json": AICheckResult,
    "balance.json": Balance,
    "chat_completion.json": ChatCompletion,
    "chat_completion_function.json": ChatCompletion,
    "chat_completion_json.json": ChatCompletion,
    "embeddings.json": Embeddings,
    "get_file.json": File,
    "get_files.json": FileList,
    "model.json": Model,
    "models.json": Models,
    "post_files.json": File,
    "post_files_delete.json": DeletedFile,
    "assistants/get_assistants.json": Assistants,
    "assistants/post_assistant_delete.json": DeletedAssistant,
    "assistants/post_assistant_files_delete.json": DeletedAssistantFile,
    "assistants/post_assistant_modify.json": Assistant,
    "assistants/post_assistants.json": CreatedAssistant,
    "threads/get_threads.json": Threads,
    "threads/get_threads_messages.json": ThreadMessages,
    "threads/get_threads_run.json": ThreadRunResult,
    "threads/post_thread_messages_rerun.json": ThreadCompletion,
    "threads/post_thread_messages_run.json": ThreadCompletion,
    "threads/post_threads_messages.json": ThreadMessages,
    "threads/post_threads_retrieve.json": Threads,
    "threads/post_threads_run.json": ThreadRunResponse,
}
STREAMS: dict[str, type[BaseModel]] = {
    "chat_completion.stream": ChatCompletionChunk,
    "threads/post_thread_messages_run.stream": ThreadCompletionChunk,
    "threads/post_thread_messages_rerun.stream": ThreadCompletionChunk,
}
# request bodies among the payloads, parsed with request-side models
REQUESTS = {
    "chat.json",
    "chat_function.json",
    "convert_functions.json",
    "threads/post_threads_delete.txt",
    "image.jpg",
    "tokens_count.json",
}


def roundtrip(model: type[BaseModel], body: Any) -> Any:
    return model.model_validate(body).model_dump(mode="json", by_alias=True, exclude_unset=True)


def test_every_payload_is_covered() -> None:
    files = {
        p.relative_to(RECORDINGS / "payloads").as_posix() for p in (RECORDINGS / "payloads").rglob("*") if p.is_file()
    }
    assert files == set(PAYLOADS) | set(STREAMS) | REQUESTS


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_payload_roundtrips(name: str) -> None:
    body = json.loads((RECORDINGS / "payloads" / name).read_text())
    assert roundtrip(PAYLOADS[name], body) == body


def test_tokens_count_payload_is_a_bare_list() -> None:
    body = json.loads((RECORDINGS / "payloads" / "tokens_count.json").read_text())
    assert [roundtrip(TokensCount, item) for item in body] == body


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_stream_payload_roundtrips(name: str) -> None:
    decoder = SSEDecoder()
    events = decoder.feed((RECORDINGS / "payloads" / name).read_bytes()) + decoder.flush()
    assert events[-1].data == b"[DONE]"
    for event in events[:-1]:
        body = json.loads(event.data)
        assert roundtrip(STREAMS[name], body) == body


def test_request_payloads_parse_into_request_models() -> None:
    functions = json.loads((RECORDINGS / "payloads" / "chat_function.json").read_text())["functions"]
    functions += json.loads((RECORDINGS / "payloads" / "convert_functions.json").read_text())["functions"]
    for fn in functions:
        assert roundtrip(Function, fn) == fn


def _cassette_bodies() -> list[tuple[str, str, str, int, str]]:
    import yaml

    out = []
    for path in sorted((RECORDINGS / "cassettes").glob("*.yaml")):
        for item in yaml.safe_load(path.read_text())["interactions"]:
            req, resp = item["request"], item["response"]
            out.append((path.name, req["method"], req["uri"], resp["status"]["code"], resp["body"]["string"]))
    return out


def _model_for(method: str, uri: str, status: int) -> tuple[type[BaseModel] | None, bool]:
    """(model, is_list) for a recorded response."""
    path = uri.split("://", 1)[1].split("/", 1)[1]
    if status >= 400 or path.endswith("/oauth"):
        return None, False
    table: list[tuple[str, type[BaseModel], bool]] = [
        ("v2/chat/completions", ChatCompletionV2, False),
        ("v1/chat/completions", ChatCompletion, False),
        ("v1/embeddings", Embeddings, False),
        ("v1/tokens/count", TokensCount, True),
        ("v1/models/", Model, False),
        ("v1/models", Models, False),
    ]
    for suffix, model, is_list in table:
        if suffix in path:
            return model, is_list
    raise AssertionError(f"no model for {method} {uri}")


@pytest.mark.parametrize(
    ("cassette", "method", "uri", "status", "body"), _cassette_bodies() if RECORDINGS.is_dir() else []
)
def test_cassette_response_roundtrips(cassette: str, method: str, uri: str, status: int, body: str) -> None:
    model, is_list = _model_for(method, uri, status)
    if model is None:  # OAuth and error bodies: covered by the error-mapping tests
        assert json.loads(body)
        return
    if body.startswith(("data:", "event:")):
        chunk_model = ChatCompletionV2Chunk if model is ChatCompletionV2 else ChatCompletionChunk
        events = SSEDecoder().feed(body.encode())
        assert events
        for event in events:
            if event.data == b"[DONE]":
                continue
            data = json.loads(event.data)
            assert roundtrip(chunk_model, data) == data
        return
    data = json.loads(body)
    if is_list:
        assert [roundtrip(model, item) for item in data] == data
    else:
        assert roundtrip(model, data) == data


def test_recordings_are_where_we_expect() -> None:
    assert isinstance(RECORDINGS, Path) and (RECORDINGS / "cassettes").is_dir()


def test_recorded_thread_stream_accumulates_usage_increments() -> None:
    from gigapy._ops.threads import _thread_state
    from gigapy.types import ResponseMeta

    state = _thread_state(ResponseMeta())
    state.feed((RECORDINGS / "payloads" / "threads" / "post_thread_messages_run.stream").read_bytes())
    state.feed_eof()
    final = state.final()
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (64, 23 + 8)
    assert final.thread_id == "9b1cc6d9-0eeb-46de-b01f-6f74c9a82df7"
    assert final.text.startswith("Здравствуйте!")
