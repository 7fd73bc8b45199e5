"""No secret in a traceback with locals, on any error path, sync and async.

Sentry, ``pytest -l`` and rich tracebacks record ``repr()`` of every local of every frame:
gigapy's and the HTTP libraries' (httpx, httpcore, h11, aiohttp, ssl, asyncio). Each case
makes one failure happen for real (the emulator over loopback, a closed port, an untrusted
certificate, a wrong key password, a token endpoint that answers with a bad token). The
whole exception chain is formatted with ``traceback.TracebackException(capture_locals=True)``
(suppressed ``__context__`` included), plus repr, str, args and ``__dict__`` of every
exception in it, and searched for every secret in play: the authorization key and its
decoded client id and secret, the passwords, the key file password, every token the
client sent or received.
"""

from __future__ import annotations

import asyncio
import base64
import http.server
import inspect
import json
import re
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from gigapy import (
    APIConnectionError,
    APIResponseValidationError,
    APITimeoutError,
    AsyncGigaChat,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    GigaChat,
    GigaChatError,
    InternalServerError,
    InvalidArgumentError,
    StreamError,
    Timeout,
    TLSVerificationError,
)
from gigapy.emulator import DEMO_CREDENTIALS, DEMO_PASSWORD, DEMO_USER, CertAccount, Emulator
from gigapy.emulator._config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

pytestmark = pytest.mark.hostile("secrets")

WRONG_SECRET = "wrong-client-secret-1f2e3d"
WRONG_KEY = base64.b64encode(f"{DEMO_CLIENT_ID}:{WRONG_SECRET}".encode()).decode()
WRONG_PASSWORD = "wrong-password-9c8b7a"
STATIC_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzdGF0aWMifQ.c3RhdGljLXNpZ25hdHVyZS12YWx1ZQ"
KEY_PASSWORD = "key-file-pass-5d4c"
WRONG_KEY_PASSWORD = "not-the-key-pass-3b2a"
EVIL_PARTS = ("evil-token-head-77aa", "evil-token-tail-88bb")
EVIL_TOKEN = f"{EVIL_PARTS[0]}\r\nX-Injected: {EVIL_PARTS[1]}"

STATIC_SECRETS = {
    "authorization key": DEMO_CREDENTIALS,
    "client id": DEMO_CLIENT_ID,
    "client secret": DEMO_CLIENT_SECRET,
    "wrong key": WRONG_KEY,
    "wrong key's secret": WRONG_SECRET,
    "password": DEMO_PASSWORD,
    "wrong password": WRONG_PASSWORD,
    "static token": STATIC_TOKEN,
    "key file password": KEY_PASSWORD,
    "wrong key file password": WRONG_KEY_PASSWORD,
    "bad token (head)": EVIL_PARTS[0],
    "bad token (tail)": EVIL_PARTS[1],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _EvilTokenHandler(http.server.BaseHTTPRequestHandler):
    """A token endpoint that answers 200 with a token that is not a header value."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"access_token": EVIL_TOKEN, "expires_at": int(time.time() * 1000) + 1_800_000}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class World:
    """Everything the cases need: emulators, URLs, certificate files."""

    emu: Emulator
    https: Emulator
    mtls: Emulator
    mtls_only: Emulator
    pki: dict[str, Path]
    dead_auth: str
    dead_base: str
    evil_auth: str


@pytest.fixture(scope="module")
def world(gigachat_emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    ca = trustme.CA()
    root = tmp_path_factory.mktemp("pki")
    pki: dict[str, Path] = {}

    def write(name: str, data: bytes) -> None:
        pki[name] = root / name
        pki[name].write_bytes(data)

    write("ca.pem", ca.cert_pem.bytes())
    server = ca.issue_cert("127.0.0.1")
    write("server.pem", b"".join(blob.bytes() for blob in server.cert_chain_pems))
    write("server.key", server.private_key_pem.bytes())
    client = ca.issue_cert("client@gigapy.test")
    write("client.pem", client.cert_chain_pems[0].bytes())
    key = serialization.load_pem_private_key(client.private_key_pem.bytes(), password=None)
    write(
        "client.key",
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
        ),
    )
    foreign = trustme.CA().issue_cert("foreign@gigapy.test")
    write("foreign.pem", foreign.cert_chain_pems[0].bytes())
    fkey = serialization.load_pem_private_key(foreign.private_key_pem.bytes(), password=None)
    write(
        "foreign.key",
        fkey.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
        ),
    )
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EvilTokenHandler)
    thread = threading.Thread(target=evil.serve_forever, daemon=True)
    thread.start()
    tls = {"tls_cert": str(pki["server.pem"]), "tls_key": str(pki["server.key"])}
    # mTLS-only: the certificate names the account; client.pem is signed by the CA but names none
    only = {"client_ca": str(pki["ca.pem"]), "mtls_only": True, "cert_accounts": (CertAccount("CN=nobody", "x"),)}
    with (
        Emulator(limits=None, **tls) as https,
        Emulator(limits=None, client_ca=str(pki["ca.pem"]), **tls) as mtls,
        Emulator(limits=None, **only, **tls) as mtls_only,
    ):
        yield World(
            gigachat_emulator,
            https,
            mtls,
            mtls_only,
            pki,
            f"http://127.0.0.1:{free_port()}/api/v2/oauth",
            f"http://127.0.0.1:{free_port()}/api/v1",
            f"http://127.0.0.1:{evil.server_port}/api/v2/oauth",
        )
    evil.shutdown()
    evil.server_close()


def _base(emu: Emulator, **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "credentials": DEMO_CREDENTIALS,
        "base_url": emu.base_url,
        "auth_url": emu.auth_url,
        "max_retries": 0,
    }
    settings.update(overrides)
    return settings


def _chat(client: Any) -> Any:
    return client.completion("Привет")


def _stream(client: Any) -> Any:
    if isinstance(client, AsyncGigaChat):

        async def consume() -> None:
            async with client.completion_stream("Расскажи длинную историю") as stream:
                async for _ in stream:
                    pass

        return consume()
    with client.completion_stream("Расскажи длинную историю") as stream:
        for _ in stream:
            pass
    return None


@dataclass
class Case:
    """One error path: the client's settings, the call, a fault to arm first, the error expected."""

    name: str
    settings: Callable[[World], dict[str, Any]]
    call: Callable[[Any], Any] | None
    error: type[GigaChatError]
    fault: tuple[str, str] | None = None


CASES = [
    Case("OAuth host unreachable", lambda w: _base(w.emu, auth_url=w.dead_auth), _chat, APIConnectionError),
    Case(
        "OAuth host unreachable, retried",
        lambda w: _base(w.emu, auth_url=w.dead_auth, max_retries=1),
        _chat,
        APIConnectionError,
    ),
    Case("OAuth 401 (wrong key)", lambda w: _base(w.emu, credentials=WRONG_KEY), _chat, AuthenticationError),
    Case(
        "OAuth host returns a token that is not a header value",
        lambda w: _base(w.emu, auth_url=w.evil_auth),
        _chat,
        APIResponseValidationError,
    ),
    Case(
        "API 401 with access_token",
        lambda w: _base(w.emu, credentials=None, access_token=STATIC_TOKEN),
        _chat,
        AuthenticationError,
    ),
    Case(
        "API 401, then the refresh cannot reach OAuth",
        lambda w: _base(w.emu, access_token=STATIC_TOKEN, auth_url=w.dead_auth),
        _chat,
        APIConnectionError,
    ),
    Case(
        "user/password: wrong password",
        lambda w: _base(w.emu, credentials=None, user=DEMO_USER, password=WRONG_PASSWORD),
        _chat,
        AuthenticationError,
    ),
    Case(
        "user/password: host unreachable",
        lambda w: _base(w.emu, credentials=None, user=DEMO_USER, password=DEMO_PASSWORD, base_url=w.dead_base),
        _chat,
        APIConnectionError,
    ),
    Case("TLS verification failure", lambda w: _base(w.https), _chat, TLSVerificationError),
    Case(
        "read timeout", lambda w: _base(w.emu, timeout=Timeout(5, 0.3, 5, 5)), _chat, APITimeoutError, ("stall", "chat")
    ),
    Case("5xx", lambda w: _base(w.emu), _chat, InternalServerError, ("500", "chat")),
    Case("OAuth 5xx", lambda w: _base(w.emu), _chat, InternalServerError, ("503", "oauth")),
    Case("stream dropped mid-way", lambda w: _base(w.emu), _stream, StreamError, ("stream_drop", "chat")),
    Case(
        "bad argument (lone surrogate)",
        lambda w: _base(w.emu),
        lambda c: c.completion("hi \ud83d"),
        InvalidArgumentError,
    ),
    Case(
        "bad header value",
        lambda w: _base(w.emu),
        lambda c: c.completion("hi", session_id="a\r\nb"),
        InvalidArgumentError,
    ),
    Case("bad setting next to the key", lambda w: _base(w.emu, scope="GIGACHAT_API_PER"), None, ConfigurationError),
    Case("bad key", lambda w: _base(w.emu, credentials=WRONG_KEY[:-6] + "%%%%"), None, ConfigurationError),
    Case(
        "bad access_token",
        lambda w: _base(w.emu, credentials=None, access_token=STATIC_TOKEN.replace(".", "\r\n.", 1)),
        None,
        ConfigurationError,
    ),
    Case(
        "mTLS: wrong key file password",
        lambda w: _base(
            w.mtls,
            ca_bundle_file=str(w.pki["ca.pem"]),
            cert_file=str(w.pki["client.pem"]),
            key_file=str(w.pki["client.key"]),
            key_file_password=WRONG_KEY_PASSWORD,
        ),
        _chat,
        ConfigurationError,
    ),
    Case(
        "mTLS: server rejects, with the key password in the settings",
        lambda w: _base(w.mtls, ca_bundle_file=str(w.pki["ca.pem"]), key_file_password=KEY_PASSWORD),
        _chat,
        APIConnectionError,
    ),
    Case(
        "mTLS-only: wrong key file password",
        lambda w: _cert_only(w, "client", WRONG_KEY_PASSWORD),
        _chat,
        ConfigurationError,
    ),
    Case(
        "mTLS-only: a certificate the server maps to no account (401)",
        lambda w: _cert_only(w, "client"),
        _chat,
        AuthenticationError,
    ),
    Case("mTLS-only: a certificate from another CA", lambda w: _cert_only(w, "foreign"), _stream, APIConnectionError),
    Case(
        "mTLS-only: no certificate at all, the key password in the settings",
        lambda w: _base(w.mtls_only, ca_bundle_file=str(w.pki["ca.pem"]), key_file_password=KEY_PASSWORD),
        _chat,
        BadRequestError,
    ),
]


def _cert_only(w: World, who: str, password: str = KEY_PASSWORD) -> dict[str, Any]:
    """Certificate-only settings (no credentials: mTLS-only mode) for the mTLS-only emulator."""
    return {
        "base_url": w.mtls_only.base_url,
        "ca_bundle_file": str(w.pki["ca.pem"]),
        "cert_file": str(w.pki[f"{who}.pem"]),
        "key_file": str(w.pki[f"{who}.key"]),
        "key_file_password": password,
        "max_retries": 0,
    }


def _raise_sync(settings: Callable[[], dict[str, Any]], call: Callable[[Any], Any] | None) -> BaseException:
    """Run one call and return what it raised. This frame holds no secret: settings are built
    inline, as a user's code passing literals would."""
    try:
        with GigaChat(**settings()) as client:
            if call is not None:
                call(client)
    except GigaChatError as exc:
        return exc
    raise AssertionError("no error was raised")


def _raise_async(settings: Callable[[], dict[str, Any]], call: Callable[[Any], Any] | None) -> BaseException:
    async def main() -> None:
        async with AsyncGigaChat(**settings()) as client:
            if call is not None:
                result = call(client)
                if inspect.isawaitable(result):
                    await result

    try:
        asyncio.run(main())
    except GigaChatError as exc:
        return exc
    raise AssertionError("no error was raised")


def everything_shown(exc: BaseException) -> str:
    """Every traceback (locals included), repr, str, args and __dict__ along the whole chain."""
    texts: list[str] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        formatted = traceback.TracebackException.from_exception(current, capture_locals=True)
        texts.append("".join(formatted.format()))
        texts += [repr(current), str(current), repr(current.args), repr(getattr(current, "__dict__", {}))]
        todo += [current.__cause__, current.__context__]
    return "\n".join(texts)


def frames_in(exc: BaseException) -> list[str]:
    """The file of every frame along the chain (to show which libraries' frames were scanned)."""
    files: list[str] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        files += [frame.filename for frame in traceback.extract_tb(current.__traceback__)]
        todo += [current.__cause__, current.__context__]
    return files


def _sent_secrets(emulators: list[Emulator]) -> dict[str, str]:
    """Every Authorization value any emulator received (tokens included), by its value."""
    found: dict[str, str] = {}
    for emu in emulators:
        for req in list(emu.requests):
            auth = req.headers.get("Authorization", "")
            _, _, value = auth.partition(" ")
            if len(value) >= 8:
                found[f"sent {auth.split(' ')[0]} value"] = value
    return found


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_no_secret_in_the_traceback_locals(world: World, kind: str, case: Case) -> None:
    emulators = [world.emu, world.https, world.mtls, world.mtls_only]
    for emu in emulators:
        emu.faults.clear()
        emu.reset_stats()
    if case.fault is not None:
        kind_of_fault, route = case.fault
        world.emu.faults.enqueue(kind_of_fault, routes=[route])
    make = case.settings
    runner = _raise_sync if kind == "sync" else _raise_async
    exc = runner(lambda: make(world), case.call)
    world.emu.faults.clear()
    assert isinstance(exc, case.error), f"{type(exc).__name__}: {exc}"
    shown = everything_shown(exc)
    assert "capture_locals" not in shown  # the scan really formatted frames, not our own helper
    secrets = {**STATIC_SECRETS, **_sent_secrets(emulators)}
    leaked = sorted(label for label, value in secrets.items() if value in shown)
    lines = [line for line in shown.splitlines() if any(secrets[label] in line for label in leaked)]
    assert not leaked, f"{', '.join(leaked)} shown in:\n" + "\n".join(lines)
    assert not re.search(r"\b(Bearer|Basic) +(?!\[secure\])\S", shown), "an Authorization value is shown"


def test_the_scan_sees_the_http_libraries_frames(world: World) -> None:
    """The scan above covers third-party frames: their files are in the chain (their locals are
    dropped, or, for their generators and coroutines, the frames are left out)."""
    sync_exc = _raise_sync(lambda: _base(world.emu, auth_url=world.dead_auth), _chat)
    async_exc = _raise_async(lambda: _base(world.emu, auth_url=world.dead_auth), _chat)
    assert any("/httpcore/" in f or "/httpx/" in f for f in frames_in(sync_exc))
    assert any("/socket.py" in f or "/asyncio/" in f or "/aiohttp/" in f for f in frames_in(async_exc))
    # gigapy's own frames keep their locals (they hold nothing secret in plain form)
    formatted = "".join(traceback.TracebackException.from_exception(sync_exc, capture_locals=True).format())
    assert "request = Request(method='POST'" in formatted
    assert "authorization='[secure]'" in formatted


def test_a_scan_would_have_caught_the_key_in_a_plain_local() -> None:
    """The scanner is not blind: a plain local holding the key is found."""

    def leak(key: str) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError) as info:
        leak(DEMO_CREDENTIALS)
    assert DEMO_CREDENTIALS in everything_shown(info.value)


def test_no_object_of_ours_shows_a_secret_in_its_repr(world: World) -> None:
    """Every internal object that holds a secret masks it in repr (and str), as httpx masks headers."""
    from gigapy._clients.tokens import TokenEntry, TokenSource
    from gigapy._config import load_settings, secret_args
    from gigapy._core.flow import FilePart, GetToken, Response, Send, TransportFailure, send_flow
    from gigapy._core.tokens import parse_token, token_request
    from gigapy._ops.base import ClientCore
    from gigapy._transports.aiohttp_driver import AiohttpTransport
    from gigapy._transports.httpx_driver import HttpxTransport

    oauth = load_settings(
        {
            "credentials": DEMO_CREDENTIALS,
            "key_file_password": KEY_PASSWORD,
            "default_headers": {"Authorization": "Bearer " + STATIC_TOKEN, "X-App": "a"},
        },
        env={},
    )
    password = load_settings({"user": DEMO_USER, "password": DEMO_PASSWORD}, env={})
    static = load_settings({"access_token": STATIC_TOKEN}, env={})
    body = json.dumps({"access_token": STATIC_TOKEN, "expires_at": int(time.time() * 1000) + 60_000}).encode()
    response = Response(200, {"Set-Cookie": "sid=" + STATIC_TOKEN}, body, "POST", "https://auth")
    token = parse_token(response)
    entry = TokenEntry()
    entry.store(token)
    api_request = ClientCore(static).request("POST", "/chat/completions", {}, body={"a": 1})
    flow = send_flow(api_request, policy=ClientCore(static).policy, can_refresh=False)
    sent = flow.send(None)
    assert isinstance(sent, GetToken)
    sent = flow.send(token.access_token)  # the flow puts "Bearer <token>" on the request
    assert isinstance(sent, Send)
    failure = TransportFailure("connect", OSError(f"cannot send Authorization: Bearer {STATIC_TOKEN}"), sent=False)
    objects: list[Any] = [
        oauth,
        password,
        static,
        secret_args({"credentials": DEMO_CREDENTIALS, "password": DEMO_PASSWORD}),
        token_request(oauth, "ua"),
        token_request(password, "ua"),
        api_request,
        sent,
        GetToken(token.access_token),
        response,
        token,
        entry,
        entry._current,
        TokenSource(static),
        TokenSource(oauth),
        failure,
        failure.exc,
        failure.to_error(api_request),
        FilePart("file", "key.pem", "text/plain", DEMO_PASSWORD.encode(), 20),
        AiohttpTransport(static),
        AsyncGigaChat(**_base(world.emu)),
    ]
    transport = HttpxTransport(static)
    objects.append(transport)
    transport.close()
    with GigaChat(**_base(world.emu)) as client:
        objects += [client, client.with_options(password=WRONG_PASSWORD), client.settings]
    try:
        parse_token(
            Response(
                200, {}, json.dumps({"access_token": EVIL_TOKEN, "expires_at": 1}).encode(), "POST", "https://auth"
            )
        )
    except APIResponseValidationError as exc:
        objects += [exc, vars(exc)]
    shown = "\n".join(repr(obj) + "\n" + str(obj) for obj in objects)
    leaked = sorted(label for label, value in STATIC_SECRETS.items() if value in shown)
    assert not leaked, shown
    assert not re.search(r"\b(Bearer|Basic) +(?!\[secure\])\S", shown), shown
    assert "[secure]" in repr(api_request) and "[secure]" in repr(oauth)  # masked, not dropped
    assert api_request.wire_headers()["Authorization"] == "Bearer " + STATIC_TOKEN  # the wire gets the value


def _library_call() -> None:
    """Stands in for an HTTP library: holds the header in plain locals, raises an error whose
    message repeats it, chained to an aiohttp response error that keeps it in request_info."""
    import aiohttp
    from multidict import CIMultiDict, CIMultiDictProxy
    from yarl import URL

    bearer = "Bearer " + STATIC_TOKEN
    headers = CIMultiDictProxy(CIMultiDict({"Authorization": bearer, "X-Request-ID": "r-1"}))
    info = aiohttp.RequestInfo(URL("https://api/x"), "POST", headers, URL("https://api/x"))
    try:
        raise aiohttp.ClientResponseError(info, (), status=407, message="proxy says no")
    except aiohttp.ClientResponseError:
        raise OSError(f"could not send {bearer}") from None


def test_scrub_masks_what_http_library_exceptions_keep(monkeypatch: pytest.MonkeyPatch) -> None:
    """The three places an HTTP library's exception keeps a header value: a frame local, the
    message, aiohttp's ``request_info``. The stand-in above counts as a library frame."""
    import gigapy._core.flow as core

    monkeypatch.setattr(core, "_PACKAGE_DIR", "/nowhere/")  # so this test file is "not gigapy"
    with pytest.raises(OSError) as info:
        _library_call()
    raw = info.value
    context = raw.__context__
    assert context is not None and STATIC_TOKEN in repr(context)  # what aiohttp shows unscrubbed
    assert STATIC_TOKEN in everything_shown(raw)
    failure = core.TransportFailure("network", raw, sent=True)
    shown = everything_shown(failure.exc)
    assert STATIC_TOKEN not in shown, shown
    assert "Bearer [secure]" in str(failure.exc)
    assert "_library_call()" in shown and "raise OSError" in shown  # file and line stay
    assert "r-1" in repr(context)  # only the secret header is masked
