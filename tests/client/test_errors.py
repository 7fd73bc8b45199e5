"""Errors keep what happened: the request that was sent (secrets masked), the body the server
really sent, the request id and session id, for every failure that involved a request."""

from __future__ import annotations

import ast
import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest

import gigapy
from gigapy import APIConnectionError, APITimeoutError, AsyncGigaChat, GigaChat, NotFoundError, Timeout
from gigapy.errors import APIError

from ..rawserver import RawRequest, answer, raw_server

SRC = Path(gigapy.__file__).resolve().parent


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/v1"


def test_a_connection_error_keeps_the_ids_that_were_sent() -> None:
    with (
        GigaChat(base_url=_closed_port(), access_token="tok-secret-123", max_retries=0) as client,
        pytest.raises(APIConnectionError) as info,
    ):
        client.completion("Привет", request_id="req-1", session_id="sess-1")
    err = info.value
    assert isinstance(err, APIError)
    assert (err.request_id, err.session_id) == ("req-1", "sess-1")
    assert err.request is not None and err.request.method == "POST" and err.request.url.endswith("/chat/completions")
    assert err.request.header("x-request-id") == "req-1" and err.body == b""
    assert "tok-secret-123" not in repr(err.request) + str(err)


def test_an_async_connection_error_keeps_the_ids_too() -> None:
    async def main() -> APIConnectionError:
        async with AsyncGigaChat(
            base_url=_closed_port(), access_token="t", max_retries=0, session_id="sess-2"
        ) as client:
            with pytest.raises(APIConnectionError) as info:
                await client.completion("Привет", request_id="req-2")
            return info.value

    err = asyncio.run(main())
    assert (err.request_id, err.session_id) == ("req-2", "sess-2")


@pytest.mark.parametrize("face", ["sync", "async"])
def test_a_timeout_keeps_the_ids_that_were_sent(face: str) -> None:
    async def slow(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(3)  # the pause under test: longer than the read timeout
        return False

    settings: dict[str, Any] = {"access_token": "t", "max_retries": 0, "timeout": Timeout(connect=5, read=0.3)}
    with raw_server(slow) as server:
        settings["base_url"] = server.base_url
        if face == "sync":
            with GigaChat(**settings) as client, pytest.raises(APITimeoutError) as info:
                client.get_balance(request_id="req-3", session_id="sess-3")
        else:

            async def main() -> None:
                async with AsyncGigaChat(**settings) as client:
                    await client.get_balance(request_id="req-3", session_id="sess-3")

            with pytest.raises(APITimeoutError) as info:
                asyncio.run(main())
    err = info.value
    assert isinstance(err, APIError) and err.phase == "read"
    assert (err.request_id, err.session_id) == ("req-3", "sess-3")


def test_a_status_error_keeps_the_request_and_the_body(make_client: Any) -> None:
    client = make_client()
    with pytest.raises(NotFoundError) as info:
        client.completion("Привет", model="NoSuchModel", session_id="sess-4")
    err = info.value
    assert isinstance(err, APIError) and err.status_code == 404
    assert err.request is not None and err.request.method == "POST"
    assert err.request_id == err.request.header("X-Request-ID") and err.session_id == "sess-4"
    assert json.loads(err.body) == err.json_body and err.server_message
    assert err.request.header("Authorization") in (None, "[secure]")


@pytest.mark.parametrize("case", ["batch", "assistant"])
def test_a_missing_item_keeps_what_the_server_really_sent(case: str) -> None:
    body = (
        {
            "batches": [
                {
                    "id": "other",
                    "method": "chat_completions",
                    "request_counts": {"total": 1},
                    "status": "created",
                    "created_at": 1,
                    "updated_at": 1,
                }
            ]
        }
        if case == "batch"
        else {"data": [{"assistant_id": "other", "name": "x", "created_at": 1, "updated_at": 1}]}
    )

    async def handler(request: RawRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(answer(200, body, {"X-Request-ID": request.headers.get("x-request-id", "")}))
        return True

    with (
        raw_server(handler) as server,
        GigaChat(base_url=server.base_url, access_token="t") as client,
        pytest.raises(NotFoundError) as info,
    ):
        if case == "batch":
            client.get_batch("wanted")
        else:
            client.assistants.get("wanted")
    err = info.value
    assert err.status_code == 200  # the real status: no fabricated 404
    assert json.loads(err.body) == body and err.json_body == body
    assert "wanted" in str(err) and err.request_id and err.request is not None


def test_every_exception_of_ours_lives_in_errors_py() -> None:
    # control-flow exceptions that never leave the package stay beside their logic
    internal = {"TransportBroken", "_LeaderGone", "SSEDecodeError", "StreamPayloadError", "CliError"}
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if (path.name == "errors.py" and path.parent == SRC) or "emulator" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name not in internal:
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                if any(b.endswith(("Error", "Exception", "Warning", "Aborted")) for b in bases):
                    found.append(f"{path.relative_to(SRC)}: {node.name}")
    assert found == []
    from gigapy import batch, errors

    assert batch.BatchAborted is errors.BatchAborted and issubclass(errors.APIStatusError, errors.APIError)
    assert issubclass(errors.APITimeoutError, errors.APIError)
