"""No repr, str, log line (DEBUG included) or exception ever shows a secret."""

from __future__ import annotations

import asyncio
import base64
import logging
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from gigapy import AsyncGigaChat, GigaChat, GigaChatError, Timeout, clear_token_cache
from gigapy.emulator import DEMO_CREDENTIALS, DEMO_PASSWORD, DEMO_USER, CertAccount, Emulator
from gigapy.testing import client_settings

from ..conftest import LogCapture

pytestmark = pytest.mark.hostile("secrets")


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
    secrets = {
        "credentials": DEMO_CREDENTIALS,
        "wrong credentials": wrong,
        "password": DEMO_PASSWORD,
        "key password": "key-pass-123",
        "access token": token,
        "password token": password_token,
    }
    assert token and password_token
    haystack = "\n".join(texts + captured.lines)
    assert len(captured.lines) > 50  # DEBUG logging really was on
    for label, secret in secrets.items():
        assert secret is not None
        assert secret not in haystack, f"{label} leaked"
    assert "Basic " not in haystack
    assert "Bearer " not in haystack


MTLS_KEY_PASSWORD = "mtls-only-key-pass-4e5f"


def test_no_secret_anywhere_in_mtls_only_mode(tmp_path: Path, captured: LogCapture) -> None:
    """A certificate-only client (encrypted key): its key password shows nowhere, on success and on
    every refusal (an unmapped certificate, a wrong password, a bad argument), sync and async."""
    ca = trustme.CA()
    files: dict[str, str] = {}

    def write(name: str, data: bytes) -> None:
        (tmp_path / name).write_bytes(data)
        files[name] = str(tmp_path / name)

    write("ca.pem", ca.cert_pem.bytes())
    write("server.pem", ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.bytes())
    for who in ("bank", "stranger"):
        cert = ca.issue_cert(f"{who}.test", common_name=who)
        write(f"{who}.crt", cert.cert_chain_pems[0].bytes())
        key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
        write(
            f"{who}.key",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(MTLS_KEY_PASSWORD.encode()),
            ),
        )
    texts: list[str] = []

    def settings(emu: Emulator, who: str = "bank", password: str = MTLS_KEY_PASSWORD) -> dict[str, Any]:
        return {
            "base_url": emu.base_url,
            "ca_bundle_file": files["ca.pem"],
            "cert_file": files[f"{who}.crt"],
            "key_file": files[f"{who}.key"],
            "key_file_password": password,
            "max_retries": 0,
        }

    def keep(exc: BaseException) -> None:
        texts.extend([str(exc), repr(exc), repr(getattr(exc, "__dict__", {}))])

    with Emulator(
        limits=None,
        tls_cert=files["server.pem"],
        tls_key=files["server.pem"],
        client_ca=files["ca.pem"],
        mtls_only=True,
        cert_accounts=(CertAccount("CN=bank", "bank-1"),),
    ) as emu:
        with GigaChat(**settings(emu)) as client:
            texts += [repr(client), str(client), repr(client.settings), repr(client.completion("Привет"))]
            with client.completion_stream("Поток") as stream:
                texts.append(repr(stream.get_final_completion()))
            texts += [repr(client.all_models()), repr(client.embedding("x")), repr(client.count_tokens("x"))]
            uploaded = client.upload_file(b"secret scan", filename="a.txt")
            texts += [repr(uploaded), repr(client.delete_file(uploaded.id))]
            for bad in (client.create_token, lambda: client.completion("x", temperature=0)):
                try:
                    bad()
                except GigaChatError as exc:
                    keep(exc)
        with GigaChat(**settings(emu, "stranger")) as client:
            try:
                client.completion("unmapped")
            except GigaChatError as exc:
                keep(exc)
        try:
            GigaChat(**settings(emu, password="not-the-password"))
        except GigaChatError as exc:
            keep(exc)

        async def run_async() -> None:
            async with AsyncGigaChat(**settings(emu)) as client:
                texts.extend([repr(client), repr(await client.completion("async"))])
                async with client.completion_stream("async stream") as stream:
                    texts.append(repr(await stream.get_final_completion()))
            async with AsyncGigaChat(**settings(emu, "stranger")) as client:
                try:
                    await client.completion("unmapped")
                except GigaChatError as exc:
                    keep(exc)

        asyncio.run(run_async())
        sent = [r.headers for r in emu.requests]
    haystack = "\n".join(texts + captured.lines)
    assert len(captured.lines) > 20 and len(texts) > 15  # DEBUG logging was on; errors were kept
    assert "Unauthorized" in haystack and "wrong key_file_password" in haystack
    assert MTLS_KEY_PASSWORD not in haystack
    assert all("Authorization" not in headers for headers in sent)


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
        for handler in logger.handlers[len(handlers) :]:
            logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
