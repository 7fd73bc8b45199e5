"""Request bodies are read as strict JSON: NaN and Infinity (which Python's json reads) are refused
with OpenAI's 400, naming the body."""

from __future__ import annotations

import pytest

from gigapy._translate import openai_error_from_exception, request_json
from gigapy.errors import InvalidArgumentError


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "m", "temperature": NaN}',
        b'{"model": "m", "temperature": Infinity}',
        b'{"model": "m", "top_p": -Infinity}',
        b'{"model": "m"',
        b"",
        b"   ",
        b"[1, 2]",
        b'"text"',
        b"\xff\xfe{}",
        b"[" * 100_000,
    ],
)
def test_bad_bodies_are_refused_as_openai_400(raw: bytes) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        request_json(raw)
    assert err.value.field == "body"
    reply = openai_error_from_exception(err.value)
    assert reply.status == 400
    assert reply.body["error"]["type"] == "invalid_request_error"
    assert reply.body["error"]["param"] == "body"


def test_nan_is_named() -> None:
    with pytest.raises(InvalidArgumentError, match="NaN"):
        request_json(b'{"temperature": NaN}')


def test_good_body() -> None:
    assert request_json('{"model": "m", "n": 1.5e3, "t": "привет"}'.encode()) == {
        "model": "m",
        "n": 1500.0,
        "t": "привет",
    }
