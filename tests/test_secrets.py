"""No repr, str, log line (DEBUG included) or exception ever shows a secret."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import pytest

from gigapy import AsyncGigaChat, GigaChat, GigaChatError, Timeout, clear_token_cache
from gigapy.emulator import DEMO_CREDENTIALS, DEMO_PASSWORD, DEMO_USER
from gigapy.testing import client_settings

from .conftest import LogCapture


def exercise(client: GigaChat, texts: list[str]) -> None:
    """Run the API surface, keeping every repr, str and exception message."""
    texts += [repr(client), str(client), repr(client.settings)]
    texts.append(repr(client.completion("Привет")))
    with client.completion_stream("Поток") as stream:
        texts.append(repr(stream.get_final_completion()))
    texts += [repr(client.all_models()), repr(client.embedding("x")), repr(client.count_tokens("x"))]
    uploaded = client.upload_file(b"secret scan", filename="a.txt")
    texts += [repr(uploaded), repr(client.download_file(uploaded.id)), repr(client.delete_file(uploaded.id))]
    texts.append(repr(client.create_token()))
    for bad in (lambda: client.get_model("nope"), lambda: client.completion("x", temperature=0)):
        try:
            bad()
        except GigaChatError as exc:
            texts += [str(exc), repr(exc), repr(exc.__dict__)]


def test_no_secret_anywhere(emu: Any, captured: LogCapture) -> None:
    texts: list[str] = []
    with GigaChat(**client_settings(emu, key_file_password="key-pass-123")) as client:
        exercise(client, texts)
        token = client.authorization
    clear_token_cache()
    with GigaChat(**client_settings(emu, credentials=None, user=DEMO_USER, password=DEMO_PASSWORD)) as client:
        exercise(client, texts)
        password_token = client.authorization
    emu.expire_tokens()
    with GigaChat(**client_settings(emu, credentials=None, access_token=token)) as client:
        try:
            client.completion("expired")
        except GigaChatError as exc:
            texts += [str(exc), repr(exc), repr(exc.__dict__)]
    wrong = base64.b64encode(b"7f3e0c52-9b1d-4a6e-8c2f-3d5b6a7e8f90:not-the-secret").decode()
    with GigaChat(**client_settings(emu, credentials=wrong)) as client:
        try:
            client.completion("wrong key")
        except GigaChatError as exc:
            texts += [str(exc), repr(exc), repr(exc.__dict__)]
    emu.faults.enqueue("stall", routes=["chat"])
    with GigaChat(**client_settings(emu, timeout=Timeout(5, 0.3, 5, 5))) as client:
        try:
            client.completion("timeout")
        except GigaChatError as exc:
            texts += [str(exc), repr(exc)]

    async def run_async() -> None:
        async with AsyncGigaChat(**client_settings(emu)) as client:
            texts.append(repr(await client.completion("async")))
            texts.append(repr(client))
            async with client.completion_stream("async stream") as stream:
                texts.append(repr(await stream.get_final_completion()))

    asyncio.run(run_async())
    secrets = {"credentials": DEMO_CREDENTIALS, "wrong credentials": wrong, "password": DEMO_PASSWORD,
               "key password": "key-pass-123", "access token": token, "password token": password_token}
    assert token and password_token
    haystack = "\n".join(texts + captured.lines)
    assert len(captured.lines) > 50  # DEBUG logging really was on
    for label, secret in secrets.items():
        assert secret is not None
        assert secret not in haystack, f"{label} leaked"
    assert "Basic " not in haystack
    assert "Bearer " not in haystack


def test_gigapy_log_env_turns_debug_on(monkeypatch: pytest.MonkeyPatch, emu: Any) -> None:
    import gigapy._logs as logs

    monkeypatch.setenv("GIGAPY_LOG", "debug")
    monkeypatch.setattr(logs, "_done", False)
    logger = logging.getLogger("gigapy")
    handlers = list(logger.handlers)
    try:
        with GigaChat(**client_settings(emu)) as client:
            assert logger.level == logging.DEBUG
            assert len(logger.handlers) == len(handlers) + 1
            client.count_tokens("x")
    finally:
        for handler in logger.handlers[len(handlers):]:
            logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
