"""Fuzzing (hypothesis): any response body, status or stream yields our typed results or errors only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gigapy import GigaChatError
from gigapy._core.flow import Response, parse_model, parse_model_list, status_error
from gigapy._core.stream_state import ChatStreamState, ChatV2StreamState
from gigapy._core.tokens import parse_token
from gigapy.types import (
    AICheckResult,
    Balance,
    Batch,
    ChatCompletion,
    ChatCompletionV2,
    DeletedFile,
    Embeddings,
    File,
    FileList,
    FunctionValidationResult,
    Model,
    Models,
    ResponseMeta,
    TokensCount,
)

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
# shapes close to real ones, with values of the wrong kinds: reaches deeper into the models
NEAR = st.fixed_dictionaries(
    {},
    optional={
        "choices": st.lists(
            st.fixed_dictionaries({}, optional={"message": JSON, "delta": JSON, "index": JSON, "finish_reason": JSON}),
            max_size=3,
        )
        | JSON,
        "messages": st.lists(st.fixed_dictionaries({}, optional={"role": JSON, "content": JSON}), max_size=3) | JSON,
        "usage": JSON,
        "model": JSON,
        "created": JSON,
        "data": JSON,
        "id": JSON,
        "status": JSON,
        "message": JSON,
        "code": JSON,
        "balance": JSON,
        "batches": JSON,
        "access_token": JSON,
        "expires_at": JSON,
        "tok": JSON,
        "exp": JSON,
    },
)
BODIES = st.one_of(
    JSON.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    NEAR.map(lambda v: json.dumps(v, allow_nan=True).encode()),
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
)
NUMBERS = st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0, -1, 1e308, 2**63])
TOKENS = st.one_of(
    st.fixed_dictionaries({"access_token": st.text(max_size=5), "expires_at": NUMBERS | JSON}),
    st.fixed_dictionaries({"tok": st.text(max_size=5), "exp": NUMBERS | JSON}),
).map(lambda v: json.dumps(v, allow_nan=True).encode())
MODELS = [
    ChatCompletion,
    ChatCompletionV2,
    Embeddings,
    Models,
    Model,
    File,
    FileList,
    DeletedFile,
    Balance,
    AICheckResult,
    FunctionValidationResult,
    Batch,
    TokensCount,
]


def response(body: bytes, status: int = 200) -> Response:
    return Response(
        status, {"x-request-id": "r-1", "content-type": "application/json"}, body, "POST", "http://127.0.0.1/api/v1/x"
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES, model=st.sampled_from(MODELS))
def test_any_success_body_parses_or_raises_a_typed_error(body: bytes, model: Any) -> None:
    try:
        parse_model(model, response(body))
    except GigaChatError:
        pass
    try:
        parse_model_list(TokensCount, response(body))
    except GigaChatError:
        pass
    try:
        parse_token(response(body))
    except GigaChatError:
        pass


@settings(max_examples=300, deadline=None)
@given(body=TOKENS)
def test_any_token_response_gives_a_token_or_a_typed_error(body: bytes) -> None:
    try:
        token = parse_token(response(body))
    except GigaChatError:
        return
    assert token.expires_at > 0


@settings(max_examples=300, deadline=None)
@given(body=BODIES, status=st.integers(min_value=400, max_value=599))
def test_any_error_body_becomes_a_typed_error(body: bytes, status: int) -> None:
    err = status_error(response(body, status))
    assert isinstance(err, GigaChatError)
    assert err.status_code == status
    assert str(err).startswith(str(status))


EVENT_LINES = st.lists(
    st.one_of(
        BODIES.map(lambda b: b"data: " + b.replace(b"\n", b" ").replace(b"\r", b" ") + b"\n\n"),
        st.sampled_from(
            [
                b"data: [DONE]\n\n",
                b": ping\n\n",
                b"event: error\n",
                b"event: response.message.done\n",
                b"event: response.message.delta\n",
                b"\n",
                b"retry: 10\n",
                b"id: 1\n",
            ]
        ),
        st.binary(max_size=40),
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=EVENT_LINES, v2=st.booleans())
def test_any_stream_yields_chunks_or_a_typed_error(parts: list[bytes], v2: bool) -> None:
    state = (ChatV2StreamState if v2 else ChatStreamState)(ResponseMeta(request_id="r"), max_event_size=4096)
    try:
        for part in parts:
            state.feed(part)
        state.feed_eof()
        state.final()
    except GigaChatError:
        pass


@pytest.mark.parametrize("model", MODELS)
def test_an_html_page_on_200_is_a_typed_error(model: Any) -> None:
    with pytest.raises(GigaChatError, match="unexpected response body"):
        parse_model(model, response(b"<html><body>maintenance</body></html>"))
