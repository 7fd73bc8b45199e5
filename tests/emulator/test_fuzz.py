"""Malformed requests never get a 500 (or a crash): fuzzed bodies, shapes, headers and paths."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gigapy.emulator import SCOPE_CORP, Emulator

from .conftest import Api

POST_ROUTES = [
    "chat/completions",
    "/v2/chat/completions",
    "embeddings",
    "tokens/count",
    "ai/check",
    "functions/validate",
    "functions/convert",
    "files",
    "batches?method=embedder",
    "batches?method=chat_completions",
    "files/x/delete",
]
GET_ROUTES = [
    "models",
    "models/%00",
    "files",
    "files/..%2F..",
    "files/x/content",
    "balance",
    "batches?batch_id=",
    "batches?batch_id=%ff",
    "assistants?assistant_id=%ff",
    "threads?limit=-1&before=x&assistants_ids=",
    "threads?limit=99999999999999999999",
    "threads/messages?thread_id=&limit=0",
    "threads/run?thread_id=x",
]
THREAD_ROUTES = [
    "assistants",
    "assistants/modify",
    "assistants/delete",
    "assistants/files/delete",
    "threads",
    "threads/retrieve",
    "threads/delete",
    "threads/messages",
    "threads/run",
    "threads/messages/run",
    "threads/messages/rerun",
]
#: EMULATOR_FUZZ_EXAMPLES=5000 for a longer hunt.
FUZZ = settings(
    max_examples=int(os.environ.get("EMULATOR_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
#: Half as many examples where each sends two requests.
FUZZ_HALF = settings(FUZZ, max_examples=max(FUZZ.max_examples // 2, 1))

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=20,
)
roles = st.one_of(st.sampled_from(["user", "system", "assistant", "function", "tool", "robot", 1, None]), json_values)
message_v1 = st.fixed_dictionaries(
    {"role": roles},
    optional={
        "content": st.one_of(st.text(max_size=40), json_values),
        "name": json_values,
        "function_call": st.one_of(
            json_values, st.fixed_dictionaries({"name": st.text(max_size=8), "arguments": json_values})
        ),
        "attachments": json_values,
    },
)
part_v2 = st.dictionaries(
    st.sampled_from(["text", "files", "function_call", "function_result", "inline_data"]), json_values, max_size=2
)
message_v2 = st.fixed_dictionaries(
    {"role": roles, "content": st.one_of(st.lists(part_v2, max_size=3), json_values)},
    optional={"functions_state_id": json_values},
)
chat_fields = {
    "model": st.sampled_from(["GigaChat", "GigaChat-2-Max", "Embeddings", "nope", 7]),
    "temperature": json_values,
    "top_p": json_values,
    "max_tokens": st.one_of(st.integers(-5, 50), json_values),
    "n": json_values,
    "stream": json_values,
    "repetition_penalty": json_values,
    "update_interval": st.just(0),
    "functions": st.one_of(
        json_values,
        st.lists(st.fixed_dictionaries({"name": st.text(max_size=10)}, optional={"parameters": json_values})),
    ),
    "function_call": st.one_of(st.sampled_from(["auto", "none"]), json_values),
    "response_format": st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"type": st.sampled_from(["text", "json_schema", "regex", "xml"])},
            optional={"schema": json_values, "regex": st.text(max_size=12)},
        ),
    ),
    "tools": st.one_of(
        json_values,
        st.lists(
            st.one_of(
                st.text(max_size=10),
                st.dictionaries(
                    st.sampled_from(["functions", "web_search", "image_generate", "nope"]), json_values, max_size=2
                ),
            )
        ),
    ),
    "tool_config": st.one_of(
        json_values,
        st.fixed_dictionaries({"mode": json_values}, optional={"tool_name": json_values, "function_name": json_values}),
    ),
    "model_options": json_values,
    "input": json_values,
    "storage": st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"is_stateful": st.one_of(st.booleans(), json_values)},
            optional={
                "limit": json_values,
                "metadata": json_values,
                "thread_id": json_values,
                "assistant_id": json_values,
            },
        ),
    ),
}
#: "@thread" / "@assistant" are replaced with live ids before sending.
live_ids = st.sampled_from(["@thread", "@assistant"])
thread_bodies = st.fixed_dictionaries(
    {},
    optional={
        "thread_id": st.one_of(live_ids, json_values),
        "assistant_id": st.one_of(live_ids, json_values),
        "threads_ids": st.one_of(st.lists(st.one_of(live_ids, st.text(max_size=5)), max_size=3), json_values),
        "messages": st.one_of(st.lists(message_v1, max_size=3), json_values),
        "model": chat_fields["model"],
        "name": json_values,
        "instructions": json_values,
        "description": json_values,
        "file_ids": json_values,
        "file_id": json_values,
        "metadata": json_values,
        "functions": chat_fields["functions"],
        "function_call": chat_fields["function_call"],
        "limit": st.one_of(st.integers(-2, 5), json_values),
        "stream": st.one_of(st.booleans(), json_values),
        "temperature": json_values,
        "max_tokens": chat_fields["max_tokens"],
        "update_interval": st.just(0),
        "flags": json_values,
    },
)
chat_v1_bodies = st.fixed_dictionaries({"messages": st.lists(message_v1, max_size=4)}, optional=chat_fields)
chat_v2_bodies = st.fixed_dictionaries({"messages": st.lists(message_v2, max_size=4)}, optional=chat_fields)


@pytest.fixture(scope="module")
def fuzz_api() -> Iterator[Api]:
    with Emulator(limits=None, enforce_tariffs=False) as emu:
        api = Api(emu, SCOPE_CORP)
        yield api
        api.close()


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    if response.headers.get("Content-Type", "").startswith("application/json"):
        body = response.json()
        if response.status_code >= 400:
            assert set(body) == {"status", "message"} and body["status"] == response.status_code


@FUZZ
@given(body=chat_v1_bodies)
def test_v1_chat_shapes(fuzz_api: Api, body: dict[str, Any]) -> None:
    check(fuzz_api.post("chat/completions", json=body))


@FUZZ
@given(body=chat_v2_bodies)
def test_v2_chat_shapes(fuzz_api: Api, body: dict[str, Any]) -> None:
    check(fuzz_api.post("/v2/chat/completions", json=body))


@pytest.fixture(scope="module")
def assistant_id(fuzz_api: Api) -> str:
    response = fuzz_api.post("assistants", json={"model": "GigaChat", "name": "fuzz", "instructions": "x"})
    return str(response.json()["assistant_id"])


@FUZZ_HALF
@given(route=st.sampled_from(THREAD_ROUTES), body=thread_bodies)
def test_assistant_and_thread_shapes(fuzz_api: Api, assistant_id: str, route: str, body: dict[str, Any]) -> None:
    thread = fuzz_api.post("threads/messages", json={"messages": [{"role": "user", "content": "hi"}]}).json()
    live = {"@thread": thread["thread_id"], "@assistant": assistant_id}
    body = {k: live.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    if isinstance(body.get("threads_ids"), list):
        body["threads_ids"] = [live.get(v, v) if isinstance(v, str) else v for v in body["threads_ids"]]
    check(fuzz_api.post(route, json=body))


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_non_json_numbers(fuzz_api: Api, constant: bytes) -> None:
    for field in (b"temperature", b"max_tokens", b"top_p", b"n"):
        body = b'{"model": "GigaChat", "messages": [{"role": "user", "content": "hi"}], "%s": %s}' % (field, constant)
        check(fuzz_api.post("chat/completions", content=body))


@FUZZ
@given(route=st.sampled_from(POST_ROUTES + THREAD_ROUTES), body=json_values)
def test_any_json_anywhere(fuzz_api: Api, route: str, body: Any) -> None:
    check(fuzz_api.post(route, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"}))


@FUZZ
@given(
    route=st.sampled_from(POST_ROUTES + THREAD_ROUTES),
    raw=st.binary(max_size=200),
    content_type=st.sampled_from(
        [
            "application/json",
            "text/plain",
            "multipart/form-data; boundary=x",
            "multipart/form-data",
            "application/x-www-form-urlencoded",
            "",
        ]
    ),
)
def test_raw_bytes(fuzz_api: Api, route: str, raw: bytes, content_type: str) -> None:
    check(fuzz_api.post(route, content=raw, headers={"Content-Type": content_type}))


@FUZZ
@given(
    route=st.sampled_from(GET_ROUTES),
    hook=st.sampled_from(["X-Emulator-Answer-Tokens", "X-Emulator-Chunk-Tokens", "X-Session-ID", "X-Client-ID"]),
    value=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
)
def test_gets_and_headers(fuzz_api: Api, route: str, hook: str, value: str) -> None:
    value = value.strip() or "0"  # HTTP forbids surrounding whitespace in header values
    check(fuzz_api.get(route, headers={hook: value}))
    check(
        fuzz_api.post(
            "chat/completions",
            json={"model": "GigaChat", "messages": [{"role": "user", "content": "hi"}], "stream": True},
            headers={hook: value},
        )
    )


@FUZZ
@given(
    scope=st.text(max_size=20),
    key=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=60),
    rquid=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
)
def test_oauth_garbage(fuzz_api: Api, scope: str, key: str, rquid: str) -> None:
    response = fuzz_api.http.post(
        "/api/v2/oauth", data={"scope": scope}, headers={"Authorization": f"Basic {key}", "RqUID": rquid}
    )
    assert response.status_code < 500
    assert set(response.json()) == {"code", "message"}


def test_huge_body_is_413() -> None:
    with Emulator(max_body_bytes=1024) as emu:
        api = Api(emu)
        response = api.chat("x" * 5000)
        assert response.status_code == 413
        assert response.json() == {"status": 413, "message": "Payload too large"}
        api.close()
