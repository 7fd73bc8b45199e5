"""What cannot go on the wire is refused before anything is sent, the same way by both clients.

A class table: every operation that takes text, every header a caller can set, every body
that can carry a number, crossed with the bad values of its class (lone surrogates for
text, non-ASCII and CR/LF/control characters for headers, NaN and infinities for numbers).
Each cell must raise InvalidArgumentError naming the field, and the emulator must see no
request at all, not even the token request.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from gigapy import (
    APIResponseValidationError,
    AsyncGigaChat,
    ConfigurationError,
    GigaChat,
    InvalidArgumentError,
)
from gigapy.emulator import DEMO_CREDENTIALS, DEMO_PASSWORD, DEMO_USER, Emulator
from gigapy.testing import client_settings

# Lone surrogates: what text cut by UTF-16 length leaves (a high one, a low one, one inside).
TEXT_BAD = {"lone high surrogate": "\ud83d", "lone low surrogate": "\ude00", "surrogate inside": "ab\ud800cd"}
# Header values: every way a value can fail to be one line of ASCII.
HEADER_BAD = {
    **TEXT_BAD,
    "Cyrillic": "сессия-1",
    "Latin-1": "café",
    "CRLF injection": "abc\r\nX-Injected: 1",
    "bare LF": "abc\ndef",
    "bare CR": "abc\rdef",
    "NUL": "abc\x00def",
    "DEL": "abc\x7fdef",
    "escape": "abc\x1bdef",
    "leading space": " abc",
    "trailing tab": "abc\t",
}
HEADER_NAME_BAD = {
    "space": "X Trace",
    "colon": "X-Trace:",
    "CRLF": "X-A\r\nX-B",
    "Cyrillic": "Х-Трасса",
    "empty": "",
    "surrogate": "X-\ud83d",
}
NUMBER_BAD = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}

U = {"role": "user", "content": "Привет"}
CALL = {"role": "assistant", "content": "", "function_call": {"name": "f", "arguments": {}}}


class _Named(io.BytesIO):
    """A file object with a name (as ``open()`` gives)."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self.name = name


def _two_turns(client: Any, bad: str) -> Any:
    """A conversation whose second turn is bad: refused before it joins the history."""
    conv = client.conversation()
    conv.state.add_user("первый")
    with pytest.raises(InvalidArgumentError):
        conv.state.add_user("второй " + bad)
    assert [m["content"] for m in conv.state.messages] == ["первый"]
    return conv.say("третий " + bad)


def _stream(client: Any, *args: Any, **kwargs: Any) -> Any:
    """Open a stream (sync: the call itself raises; async: awaiting it does)."""
    opened = client.completion_stream(*args, **kwargs)
    if isinstance(client, AsyncGigaChat):

        async def enter() -> None:
            async with opened:
                pass

        return enter()
    return opened


@dataclass(frozen=True)
class Op:
    """One operation: ``call(client, bad)`` puts ``bad`` into the request at ``field``."""

    name: str
    field: str
    call: Callable[[Any, Any], Any]


TEXT_OPS = [
    Op("completion: prompt", "messages[0].content", lambda c, b: c.completion("hi " + b)),
    Op(
        "completion: message content",
        "messages[1].content",
        lambda c, b: c.completion([U, {"role": "assistant", "content": b}, U]),
    ),
    Op(
        "completion: system prompt",
        "messages[0].content",
        lambda c, b: c.completion([{"role": "system", "content": b}, U]),
    ),
    Op(
        "completion: function description",
        "functions[0].description",
        lambda c, b: c.completion("hi", functions=[{"name": "f", "description": b}]),
    ),
    Op(
        "completion: function parameter",
        "functions[0].parameters.properties.city.description",
        lambda c, b: c.completion(
            "hi",
            functions=[
                {
                    "name": "f",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": b}}},
                }
            ],
        ),
    ),
    Op(
        "completion: function parameter name",
        "functions[0].parameters.properties." + "{b}",
        lambda c, b: c.completion(
            "hi", functions=[{"name": "f", "parameters": {"type": "object", "properties": {b: {"type": "string"}}}}]
        ),
    ),
    Op(
        "completion: function call arguments",
        "messages[1].function_call.arguments.city",
        lambda c, b: c.completion(
            [
                U,
                {**CALL, "function_call": {"name": "f", "arguments": {"city": b}}},
                {"role": "function", "content": "{}"},
            ],
            functions=[{"name": "f"}],
        ),
    ),
    Op(
        "completion: function result",
        "messages[2].content.t",
        lambda c, b: c.completion([U, CALL, {"role": "function", "content": {"t": b}}], functions=[{"name": "f"}]),
    ),
    Op("completion: model", "model", lambda c, b: c.completion("hi", model=b)),
    Op("completion: attachments", "messages[0].attachments[0]", lambda c, b: c.completion("hi", attachments=[b])),
    Op("completion: flags", "flags[0]", lambda c, b: c.completion("hi", flags=[b])),
    Op("completion: storage", "storage.thread_id", lambda c, b: c.completion("hi", storage={"thread_id": b})),
    Op(
        "completion: response_format schema",
        "response_format.schema.title",
        lambda c, b: c.completion(
            "hi", response_format={"type": "json_schema", "schema": {"type": "object", "title": b}}
        ),
    ),
    Op(
        "completion: extra_body",
        "extra_body.custom.items[1]",
        lambda c, b: c.completion("hi", extra_body={"custom": {"items": ["ok", b]}}),
    ),
    Op("completion: extra_body key", "extra_body.{b}", lambda c, b: c.completion("hi", extra_body={b: 1})),
    Op("completion_stream: prompt", "messages[0].content", lambda c, b: _stream(c, "hi " + b)),
    Op("v2 completion: prompt", "messages[0].content[0].text", lambda c, b: c.v2.completion("hi " + b)),
    Op(
        "v2 completion: content part",
        "messages[0].content[0].text",
        lambda c, b: c.v2.completion([{"role": "user", "content": [{"text": b}]}]),
    ),
    Op("v2 completion: user_info", "user_info.name", lambda c, b: c.v2.completion("hi", user_info={"name": b})),
    Op("embedding", "input[1]", lambda c, b: c.embedding(["ok", b])),
    Op("embedding: model", "model", lambda c, b: c.embedding("ok", model=b)),
    Op("count_tokens", "input[0]", lambda c, b: c.count_tokens([b])),
    Op("check_ai", "text", lambda c, b: c.check_ai("text " + b)),
    Op("validate_function", "description", lambda c, b: c.validate_function({"name": "f", "description": b})),
    Op("get_model (URL path)", "model", lambda c, b: c.get_model("GigaChat" + b)),
    Op("get_file_info (URL path)", "file_id", lambda c, b: c.get_file_info("id-" + b)),
    Op("delete_file (URL path)", "file_id", lambda c, b: c.delete_file("id-" + b)),
    Op("download_file (URL path)", "file_id", lambda c, b: c.download_file("id-" + b)),
    Op("upload_file: filename", "filename", lambda c, b: c.upload_file(b"hello", filename="a" + b + ".txt")),
    Op("get_batch (query)", "batch_id", lambda c, b: c.get_batch("b-" + b)),
    Op(
        "create_batch: id",
        "requests[0].id",
        lambda c, b: c.create_batch([{"id": "a" + b, "request": {"messages": [U]}}]),
    ),
    Op(
        "create_batch: content",
        "requests[1].request.messages[0].content",
        lambda c, b: c.create_batch(
            [
                {"id": "a", "request": {"messages": [U]}},
                {"id": "b", "request": {"messages": [{"role": "user", "content": b}]}},
            ]
        ),
    ),
    Op("assistants.create: name", "name", lambda c, b: c.assistants.create(name="bot" + b)),
    Op("assistants.create: metadata", "metadata.k", lambda c, b: c.assistants.create(name="bot", metadata={"k": b})),
    Op("assistants.get (query)", "assistant_id", lambda c, b: c.assistants.get("as-" + b)),
    Op(
        "threads.add_messages",
        "messages[0].content",
        lambda c, b: c.threads.add_messages([{"role": "user", "content": b}]),
    ),
    Op("threads.get_messages (query)", "thread_id", lambda c, b: c.threads.get_messages("t-" + b)),
    Op("threads.retrieve", "threads_ids[0]", lambda c, b: c.threads.retrieve(["t-" + b])),
    Op("threads.list (query)", "assistants_ids", lambda c, b: c.threads.list(assistants_ids=["a" + b])),
    Op("threads.run_messages", "messages[0].content", lambda c, b: c.threads.run_messages("hi " + b)),
    Op("conversation.say", "content", lambda c, b: c.conversation().say("hi " + b)),
    Op("conversation.say after a good turn", "content", lambda c, b: _two_turns(c, b)),
    Op("conversation: system prompt", "system", lambda c, b: c.conversation("Будь краток " + b)),
    Op("generate_image: prompt", "messages[0].content", lambda c, b: c.generate_image("кот " + b)),
    Op("generate_image: style", "messages[0].content", lambda c, b: c.generate_image("кот", style=b)),
    Op("attach: file name", "sources[0]", lambda c, b: c.attach(_Named(b"hello", "a" + b + ".txt"))),
]

HEADER_OPS = [
    Op("session_id", "session_id", lambda c, b: c.completion("hi", session_id=b)),
    Op("request_id", "request_id", lambda c, b: c.embedding("hi", request_id=b)),
    Op("client_id", "client_id", lambda c, b: c.get_all_files(client_id=b)),
    Op("extra_headers value", "extra_headers['X-Trace']", lambda c, b: c.all_models(extra_headers={"X-Trace": b})),
    Op("session_id on a stream", "session_id", lambda c, b: _stream(c, "hi", session_id=b)),
    Op("session_id on a thread run", "session_id", lambda c, b: c.threads.run_messages("hi", session_id=b)),
]

NUMBER_OPS = [
    Op("extra_body", "extra_body.x", lambda c, b: c.completion("hi", extra_body={"x": b})),
    Op("extra_body nested", "extra_body.a.b[2]", lambda c, b: c.completion("hi", extra_body={"a": {"b": [1, 2, b]}})),
    Op("temperature", "temperature", lambda c, b: c.completion("hi", temperature=b)),
    Op("v2 model_options", "temperature", lambda c, b: c.v2.completion("hi", model_options={"temperature": b})),
    Op("storage", "storage.x", lambda c, b: c.completion("hi", storage={"x": b})),
    Op(
        "function parameter default",
        "functions[0].parameters.properties.n.default",
        lambda c, b: c.completion(
            "hi",
            functions=[
                {"name": "f", "parameters": {"type": "object", "properties": {"n": {"type": "number", "default": b}}}}
            ],
        ),
    ),
    Op(
        "function call arguments",
        "messages[1].function_call.arguments.n",
        lambda c, b: c.completion(
            [U, {**CALL, "function_call": {"name": "f", "arguments": {"n": b}}}, {"role": "function", "content": "{}"}],
            functions=[{"name": "f"}],
        ),
    ),
    Op(
        "function result (dict)",
        "messages[2].content.n",
        lambda c, b: c.completion([U, CALL, {"role": "function", "content": {"n": b}}], functions=[{"name": "f"}]),
    ),
    Op(
        "function result (text)",
        "messages[2].content",
        lambda c, b: c.completion(
            [U, CALL, {"role": "function", "content": json.dumps({"n": b})}], functions=[{"name": "f"}]
        ),
    ),
    Op(
        "v2 function result (text)",
        "messages[1].content[0].function_result.result",
        lambda c, b: c.v2.completion(
            [U, {"role": "function", "content": [{"function_result": {"name": "f", "result": json.dumps({"n": b})}}]}]
        ),
    ),
    Op("embedding extra_body", "extra_body.dimensions", lambda c, b: c.embedding("x", extra_body={"dimensions": b})),
    Op("thread run temperature", "temperature", lambda c, b: c.threads.run_messages("hi", temperature=b)),
    Op(
        "create_batch body",
        "requests[0].request.temperature",
        lambda c, b: c.create_batch([{"id": "a", "request": {"messages": [U], "temperature": b}}]),
    ),
]


def _cells() -> list[Any]:
    cells = []
    for ops, values, hostile in (
        (TEXT_OPS, TEXT_BAD, "unencodable"),
        (HEADER_OPS, HEADER_BAD, "headers"),
        (NUMBER_OPS, NUMBER_BAD, "headers"),
    ):
        for op in ops:
            for label, value in values.items():
                cells.append(pytest.param(op, value, id=f"{op.name} <- {label}", marks=pytest.mark.hostile(hostile)))
    for label, name in HEADER_NAME_BAD.items():
        field = f"extra_headers[{name!r}]" if name.isprintable() else "extra_headers"
        op = Op("extra_headers name", field, lambda c, b: c.all_models(extra_headers={b: "1"}))
        cells.append(pytest.param(op, name, id=f"extra_headers name <- {label}", marks=pytest.mark.hostile("headers")))
    return cells


def _run(kind: str, emu: Emulator, call: Callable[[Any], Any]) -> BaseException:
    if kind == "sync":
        with GigaChat(**client_settings(emu)) as client, pytest.raises(InvalidArgumentError) as info:
            call(client)
        return info.value

    async def main() -> None:
        async with AsyncGigaChat(**client_settings(emu)) as client:
            result = call(client)
            if inspect.isawaitable(result):
                await result

    with pytest.raises(InvalidArgumentError) as info:
        asyncio.run(main())
    return info.value


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize(("op", "bad"), _cells())
def test_refused_before_anything_is_sent(emu: Emulator, kind: str, op: Op, bad: Any) -> None:
    before = emu.stats()
    seen = len(emu.requests)
    error = _run(kind, emu, lambda client: op.call(client, bad))
    assert isinstance(error, InvalidArgumentError)
    expected = op.field.replace("{b}", str(bad))
    assert error.field == expected, str(error)
    assert str(error).startswith(expected)
    assert len(error.reason) > 15  # says what is wrong
    if isinstance(bad, str) and bad.strip() and bad.isprintable() and len(bad) > 2:
        assert bad not in error.reason  # a rejected value is never repeated (it may be a secret)
    assert len(emu.requests) == seen, "a request was sent"
    after = emu.stats()
    assert after["oauth_requests"] == before["oauth_requests"]
    assert sum(after["api_requests"].values()) == sum(before["api_requests"].values())


def test_the_table_covers_the_classes() -> None:
    assert len(TEXT_OPS) >= 40 and len(HEADER_OPS) >= 6 and len(NUMBER_OPS) >= 12
    assert len(_cells()) >= 250


@pytest.mark.hostile("headers")
def test_sync_and_async_give_the_same_error(emu: Emulator) -> None:
    """Before the check was in one place, the clients differed (httpx: UnicodeEncodeError or
    an APIConnectionError after the token request; aiohttp: sent the bytes, or ValueError)."""
    for value in HEADER_BAD.values():
        sync = _run("sync", emu, lambda c, v=value: c.completion("hi", session_id=v))
        async_ = _run("async", emu, lambda c, v=value: c.completion("hi", session_id=v))
        assert str(sync) == str(async_)


# --- settings -----------------------------------------------------------------------------------

HEADER_SETTING_BAD = {"surrogate": "\ud83d", "CRLF": "\r\nX-Injected: 1", "NUL": "\x00", "Cyrillic": "ключ"}
TEXT_SETTING_BAD = {"surrogate": "\ud83d"}  # free text (it travels base64-encoded or in a JSON body)
SETTING_CASES = [
    ("credentials", lambda b: {"credentials": DEMO_CREDENTIALS[:8] + b + DEMO_CREDENTIALS[8:]}, HEADER_SETTING_BAD),
    ("key_file_password", lambda b: {"key_file_password": "pw" + b}, TEXT_SETTING_BAD),
    ("access_token", lambda b: {"credentials": None, "access_token": "tok" + b + "en"}, HEADER_SETTING_BAD),
    ("default_headers['X-App']", lambda b: {"default_headers": {"X-App": "app" + b}}, HEADER_SETTING_BAD),
    (
        "base_url",
        lambda b: {"base_url": "http://127.0.0.1:1/api/v1" + b},
        {k: v for k, v in HEADER_SETTING_BAD.items() if k != "Cyrillic"},
    ),
    ("password", lambda b: {"credentials": None, "user": DEMO_USER, "password": "pw" + b}, TEXT_SETTING_BAD),
    (
        "user",
        lambda b: {"credentials": None, "user": "me" + b, "password": DEMO_PASSWORD},
        {**TEXT_SETTING_BAD, "colon": ":"},
    ),
    ("model", lambda b: {"model": "GigaChat" + b}, TEXT_SETTING_BAD),
]
SETTING_CELLS = [
    pytest.param(field, make, bad, id=f"{field} <- {label}")
    for field, make, bads in SETTING_CASES
    for label, bad in bads.items()
]


@pytest.mark.hostile("headers")
@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize(("field", "make", "bad"), SETTING_CELLS)
def test_bad_settings_are_refused_at_construction(
    emu: Emulator, kind: str, field: str, make: Callable[[str], dict[str, Any]], bad: str
) -> None:
    cls = GigaChat if kind == "sync" else AsyncGigaChat
    seen = len(emu.requests)
    with pytest.raises(ConfigurationError) as info:
        cls(**client_settings(emu, **make(bad)))
    assert info.value.field == field, str(info.value)
    assert len(emu.requests) == seen


@pytest.mark.hostile("headers")
def test_default_headers_names_are_checked(emu: Emulator) -> None:
    with pytest.raises(ConfigurationError) as info:
        GigaChat(**client_settings(emu, default_headers={"Bad Name": "1"}))
    assert info.value.field == "default_headers['Bad Name']"
    with GigaChat(**client_settings(emu)) as client, pytest.raises(ConfigurationError) as info:
        client.with_options(default_headers={"X-A": "é"})
    assert info.value.field == "default_headers['X-A']"


def test_good_values_still_go_through(emu: Emulator) -> None:
    """The checks refuse only what cannot be sent: emoji, Cyrillic, tabs inside a value all pass."""
    with GigaChat(**client_settings(emu, default_headers={"X-App": "gigapy\ttest"})) as client:
        answer = client.completion(
            "Привет 😀 \U0001f600",
            session_id="s-1",
            request_id="r-1",
            extra_headers={"X-Trace": "a b\tc"},
            extra_body={"x": [1.5, None, "ы"]},
        )
        assert answer.session_id == "s-1"
        assert answer.request_id == "r-1"
        uploaded = client.upload_file(b"hello", filename="отчёт 2026.txt")
        assert uploaded.filename == "отчёт 2026.txt"
        client.delete_file(uploaded.id)
    sent = [r for r in emu.requests if r.path.endswith("/chat/completions")][-1]
    assert sent.headers["X-Trace"] == "a b\tc"
    assert sent.json()["messages"][0]["content"] == "Привет 😀 \U0001f600"
    assert sent.json()["x"] == [1.5, None, "ы"]


# --- a token the OAuth host returns -----------------------------------------------------------


class _TokenHandler(BaseHTTPRequestHandler):
    token = ""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"access_token": self.token, "expires_at": int(time.time() * 1000) + 1_800_000}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def token_host() -> Iterator[Callable[[str], str]]:
    """A token endpoint on 127.0.0.1 that answers 200 with the token the test sets."""
    handler = type("Handler", (_TokenHandler,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(token: str) -> str:
        handler.token = token
        return f"http://127.0.0.1:{server.server_port}/api/v2/oauth"

    yield serve
    server.shutdown()
    server.server_close()


BAD_TOKENS = {
    "CRLF": "head-part-aa\r\nX-Injected: tail-part-bb",
    "LF": "head-part-aa\ntail-part-bb",
    "Cyrillic": "head-part-aa-токен",
    "space": "head-part-aa tail-part-bb",
    "NUL": "head-part-aa\x00tail-part-bb",
    "surrogate": "head-part-aa\ud83dtail-part-bb",
}


@pytest.mark.hostile("headers")
@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_a_bad_token_from_the_oauth_host_is_a_typed_error_that_does_not_echo_it(
    emu: Emulator, token_host: Callable[[str], str], kind: str, token: str
) -> None:
    auth_url = token_host(token)
    seen = len(emu.requests)
    with pytest.raises(APIResponseValidationError) as info:
        if kind == "sync":
            with GigaChat(**client_settings(emu, auth_url=auth_url)) as client:
                client.completion("hi")
        else:

            async def main() -> None:
                async with AsyncGigaChat(**client_settings(emu, auth_url=auth_url)) as client:
                    await client.completion("hi")

            asyncio.run(main())
    err = info.value
    assert "access_token" in str(err)
    for part in ("head-part-aa", "tail-part-bb", "токен"):
        assert part not in str(err) and part not in repr(vars(err))
    assert err.body == b""  # the body holds the token: not kept
    assert len(emu.requests) == seen  # the API was never called with it
