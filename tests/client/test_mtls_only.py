"""mTLS-only authentication (the GigaChat API for banks): a client certificate and no authorization
key. gigapy (sync and async) and the official SDK against the emulator's mTLS-only mode over real
TLS on loopback, with certificates minted by trustme; the mode-selection rules; the refusals (an
unmapped certificate, none at all, one from another CA, a server's TLS alert) as typed errors."""

from __future__ import annotations

import hashlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from gigapy import (
    APIConnectionError,
    AsyncGigaChat,
    AuthenticationError,
    BadRequestError,
    ClientCertificateError,
    ConfigurationError,
    GigaChat,
    PermissionDeniedError,
)
from gigapy._config import load_settings
from gigapy.emulator import DEMO_CREDENTIALS, CertAccount, Emulator, config_from_args
from gigapy.emulator._runner import banner

from ..conftest import run

KEY_PASSWORD = "bank-key-pass-7f1e"


@dataclass
class Pki:
    """Files of one test PKI: the CA, the emulator's certificate, client certificates and keys."""

    files: dict[str, Path]
    fingerprints: dict[str, str]

    def __getitem__(self, name: str) -> str:
        return str(self.files[name])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root = tmp_path_factory.mktemp("bank-pki")
    ca, foreign = trustme.CA(), trustme.CA()
    files: dict[str, Path] = {}
    prints: dict[str, str] = {}

    def write(name: str, data: bytes) -> None:
        files[name] = root / name
        files[name].write_bytes(data)

    write("ca.pem", ca.cert_pem.bytes())
    server = ca.issue_cert("127.0.0.1", "localhost")
    write("server.pem", server.private_key_and_cert_chain_pem.bytes())
    for name, issuer in (("bank", ca), ("treasury", ca), ("stranger", ca), ("foreign", foreign)):
        cert = issuer.issue_cert(f"{name}.bank.test", common_name=f"{name}-client")
        pem = cert.cert_chain_pems[0].bytes()
        write(f"{name}.crt", pem)
        write(f"{name}.key", cert.private_key_pem.bytes())
        key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
        write(
            f"{name}.enc.key",
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
            ),
        )
        prints[name] = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem.decode())).hexdigest()
    return Pki(files, prints)


@pytest.fixture(scope="module")
def bank(pki: Pki) -> Iterator[Emulator]:
    """The emulator in mTLS-only mode: bank-client by CN (CORP), treasury by fingerprint (B2B)."""
    treasury = ":".join(pki.fingerprints["treasury"][i : i + 2] for i in range(0, 64, 2)).upper()
    accounts = (CertAccount("CN=bank-client", "bank-1"), CertAccount(treasury, "bank-2", "GIGACHAT_API_B2B"))
    with Emulator(
        limits=None,
        tls_cert=pki["server.pem"],
        tls_key=pki["server.pem"],
        client_ca=pki["ca.pem"],
        mtls_only=True,
        cert_accounts=accounts,
    ) as emu:
        yield emu


@pytest.fixture(autouse=True)
def _clean(bank: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bank.reset_stats()
    monkeypatch.setenv("GIGAPY_CONFIG_DIR", str(tmp_path / "config"))  # no installed Russian CA


def cert_settings(emu: Emulator, pki: Pki, who: str = "bank", **overrides: Any) -> dict[str, Any]:
    """Constructor arguments of a certificate-only client: no credentials, no token."""
    settings: dict[str, Any] = {
        "base_url": emu.base_url,
        "ca_bundle_file": pki["ca.pem"],
        "cert_file": pki[f"{who}.crt"],
        "key_file": pki[f"{who}.enc.key"],
        "key_file_password": KEY_PASSWORD,
        "max_retries": 0,
    }
    settings.update(overrides)
    return settings


def assert_no_auth_sent(emu: Emulator) -> None:
    """No OAuth or /token request reached the emulator, and no API request carried Authorization."""
    stats = emu.stats()
    assert stats["oauth_requests"] == 0 and stats["token_requests"] == 0
    sent = list(emu.requests)
    assert sent and all("Authorization" not in r.headers for r in sent)


def test_sync_completions_streams_files_models(bank: Emulator, pki: Pki) -> None:
    with GigaChat(**cert_settings(bank, pki)) as client:
        assert client.settings.auth_mode == "mtls"
        assert "auth='mtls'" in repr(client) and "bank.crt" in repr(client)
        assert client.completion("Привет").text
        with client.completion_stream("Расскажи про банки") as stream:
            chunks = list(stream)
        assert len(chunks) > 1 and stream.get_final_completion().text
        assert client.v2.completion("Привет, v2").text
        uploaded = client.upload_file(b"bank statement", filename="statement.txt")
        assert uploaded.id in {f.id for f in client.get_all_files()}
        assert client.download_file(uploaded.id) == b"bank statement"
        assert client.delete_file(uploaded.id).deleted
        assert "GigaChat-2" in client.all_models().names
        assert client.get_model("GigaChat-2").id == "GigaChat-2"
        assert client.authorization is None  # no token is ever held
    assert_no_auth_sent(bank)
    assert bank.stats()["api_requests"]["chat"] == 2


def test_async_completions_streams_files_models(bank: Emulator, pki: Pki) -> None:
    async def main() -> None:
        async with AsyncGigaChat(**cert_settings(bank, pki)) as client:
            assert (await client.completion("Привет")).text
            async with client.completion_stream("Расскажи про банки") as stream:
                chunks = [chunk async for chunk in stream]
            assert len(chunks) > 1
            uploaded = await client.upload_file(b"async statement", filename="a.txt")
            assert await client.download_file(uploaded.id) == b"async statement"
            assert uploaded.id in {f.id for f in await client.get_all_files()}
            assert (await client.delete_file(uploaded.id)).deleted
            assert "GigaChat-2" in (await client.all_models()).names

    run(main())
    assert_no_auth_sent(bank)


def test_the_certificate_names_the_account(bank: Emulator, pki: Pki) -> None:
    """CN=bank-client is bank-1 (CORP, pay-as-you-go); the treasury fingerprint is bank-2 (B2B, prepaid):
    the scope decides /balance, and each account sees only its own files."""
    with GigaChat(**cert_settings(bank, pki)) as one, GigaChat(**cert_settings(bank, pki, "treasury")) as two:
        with pytest.raises(PermissionDeniedError):
            one.get_balance()
        assert two.get_balance().balance
        mine = one.upload_file(b"private", filename="p.txt")
        assert mine.id not in {f.id for f in two.get_all_files()}
        assert mine.id in {f.id for f in one.get_all_files()}
        assert one.check_ai("Кроме того, следует отметить важность. " * 3).category  # CORP only
    assert_no_auth_sent(bank)


def test_credentials_in_the_environment_lose_to_nothing_but_rule_order(
    monkeypatch: pytest.MonkeyPatch, bank: Emulator, pki: Pki
) -> None:
    """The GIGACHAT_* variables alone configure mTLS-only access."""
    for name, value in (
        ("BASE_URL", bank.base_url),
        ("CA_BUNDLE_FILE", pki["ca.pem"]),
        ("CERT_FILE", pki["bank.crt"]),
        ("KEY_FILE", pki["bank.enc.key"]),
        ("KEY_FILE_PASSWORD", KEY_PASSWORD),
    ):
        monkeypatch.setenv(f"GIGACHAT_{name}", value)
    for name in ("CREDENTIALS", "ACCESS_TOKEN", "USER", "PASSWORD"):
        monkeypatch.delenv(f"GIGACHAT_{name}", raising=False)
    with GigaChat() as client:
        assert client.settings.auth_mode == "mtls"
        assert client.count_tokens("Привет")[0].tokens > 0
    assert_no_auth_sent(bank)


@pytest.mark.parametrize(
    ("given", "mode"),
    [
        ({"credentials": DEMO_CREDENTIALS}, "oauth"),
        ({"user": "u", "password": "p"}, "password"),
        ({"access_token": "a.b.c"}, "token"),
        ({"credentials": DEMO_CREDENTIALS, "user": "u", "password": "p", "access_token": "a.b.c"}, "oauth"),
        ({"user": "u", "password": "p", "access_token": "a.b.c"}, "password"),
        ({}, "mtls"),
    ],
)
def test_mode_selection_rules(pki: Pki, given: dict[str, str], mode: str) -> None:
    """credentials > user/password > access_token > the certificate alone; a certificate next to any of
    them is presented on the TLS connections (OAuth over mTLS), never the mode by itself."""
    settings = load_settings(
        {"base_url": "https://bank.test/v1", "cert_file": pki["bank.crt"], "key_file": pki["bank.key"], **given}, env={}
    )
    assert settings.auth_mode == mode
    assert settings.can_refresh is (mode in ("oauth", "password"))


def test_what_mtls_only_refuses_at_construction(pki: Pki) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings({"base_url": "http://bank.test/v1", "cert_file": pki["bank.crt"]}, env={})
    assert info.value.field == "base_url" and "https://" in info.value.reason
    with pytest.raises(ConfigurationError) as info:
        load_settings({"base_url": "https://bank.test/v1"}, env={})
    assert info.value.field == "credentials" and "cert_file= and key_file=" in info.value.reason
    with pytest.raises(ConfigurationError) as info:
        load_settings({"base_url": "https://bank.test/v1", "key_file": pki["bank.key"]}, env={})
    assert info.value.field == "cert_file"
    for key, password, says in (
        (pki["bank.enc.key"], None, "is encrypted"),
        (pki["bank.enc.key"], "wrong", "wrong key_file_password"),
        (pki["stranger.key"], None, "not the private key"),
    ):
        with pytest.raises(ConfigurationError) as info:
            GigaChat(
                base_url="https://127.0.0.1:1/v1", cert_file=pki["bank.crt"], key_file=key, key_file_password=password
            )
        assert says in str(info.value) and Path(key).name in str(info.value)


def test_create_token_says_why_there_is_none(bank: Emulator, pki: Pki) -> None:
    with GigaChat(**cert_settings(bank, pki)) as client, pytest.raises(ConfigurationError, match="mTLS-only"):
        client.create_token()


def test_an_unmapped_certificate_is_a_typed_401_naming_the_file(bank: Emulator, pki: Pki) -> None:
    with (
        GigaChat(**cert_settings(bank, pki, "stranger", max_retries=2)) as client,
        pytest.raises(AuthenticationError) as info,
    ):
        client.completion("Привет")
    assert "stranger.crt" in str(info.value) and "client certificate" in str(info.value)
    assert bank.stats()["api_requests"]["chat"] == 1  # no token to refresh: not repeated

    async def main() -> None:
        async with AsyncGigaChat(**cert_settings(bank, pki, "stranger")) as client:
            await client.all_models()

    with pytest.raises(AuthenticationError, match=r"stranger\.crt"):
        run(main())
    assert_no_auth_sent(bank)


def test_no_certificate_gets_the_gateways_400_with_the_fix(bank: Emulator, pki: Pki) -> None:
    """OAuth works there (no certificate needed for it), but the API wants the certificate."""
    with (
        GigaChat(
            base_url=bank.base_url,
            auth_url=bank.auth_url,
            credentials=DEMO_CREDENTIALS,
            ca_bundle_file=pki["ca.pem"],
            max_retries=0,
        ) as client,
        pytest.raises(BadRequestError) as info,
    ):
        client.completion("Привет")
    assert "No required SSL certificate was sent" in str(info.value)
    assert "cert_file" in str(info.value)
    assert "text/html" in info.value.headers.get("content-type", "")


def test_a_certificate_from_another_ca_is_refused_in_the_handshake(bank: Emulator, pki: Pki) -> None:
    with GigaChat(**cert_settings(bank, pki, "foreign")) as client, pytest.raises(APIConnectionError):
        client.completion("Привет")

    async def main() -> None:
        async with AsyncGigaChat(**cert_settings(bank, pki, "foreign")) as client:
            await client.completion("Привет")

    with pytest.raises(APIConnectionError):
        run(main())
    assert bank.stats()["api_requests"].get("chat", 0) == 0


class AlertServer:
    """A TLS server on OpenSSL's own socket handshake (which sends alerts, unlike asyncio's): it
    requires a client certificate signed by the CA and answers 200 to those who have one."""

    def __init__(self, pki: Pki) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(pki["server.pem"])
        self.context.load_verify_locations(pki["ca.pem"])
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.handshakes = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        deadline = time.monotonic() + 60
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            self.handshakes += 1
            # the handshake is run by hand: wrap_socket closes the socket at once when it fails, and
            # closing with the client's request unread sends a reset that can destroy the alert
            tls = self.context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
            try:
                tls.do_handshake()
                tls.recv(65536)
                body = b'{"object":"list","data":[]}'
                tls.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\nConnection: close\r\n\r\n"
                    + body
                )
                tls.close()
            except (OSError, ssl.SSLError):
                self._linger(tls)

    @staticmethod
    def _linger(conn: socket.socket) -> None:
        """Close as nginx does after an error: stop writing, read what the client still sends, then
        close, so no reset destroys the alert before the client reads it."""
        try:
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(1)
            while conn.recv(65536):
                pass
        except OSError:
            pass
        conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def test_a_tls_alert_is_a_client_certificate_error(pki: Pki) -> None:
    server = AlertServer(pki)
    try:
        base = f"https://127.0.0.1:{server.port}/v1"
        with GigaChat(**cert_settings_for(base, pki, "bank")) as client:
            assert client.all_models().data == []  # the server itself works with a good certificate
        with (
            GigaChat(**cert_settings_for(base, pki, "foreign", max_retries=2)) as client,
            pytest.raises(ClientCertificateError) as info,
        ):
            client.all_models()
        err = info.value
        assert server.handshakes == 2  # not retried, though max_retries=2: another try gets the same answer
        assert err.host == "127.0.0.1" and err.reason == "TLSV1_ALERT_UNKNOWN_CA"
        assert "cert_file" in str(err) and "gigapy doctor" in str(err)
        before = server.handshakes

        async def main() -> None:
            async with AsyncGigaChat(**cert_settings_for(base, pki, "foreign", max_retries=2)) as client:
                await client.all_models()

        with pytest.raises(ClientCertificateError, match="refused the client certificate"):
            run(main())
        # gigapy does not retry it (aiohttp itself repeats an idempotent request once on a connection error)
        assert server.handshakes - before in (1, 2)
    finally:
        server.close()


def cert_settings_for(base_url: str, pki: Pki, who: str, **overrides: Any) -> dict[str, Any]:
    return {
        "base_url": base_url,
        "ca_bundle_file": pki["ca.pem"],
        "cert_file": pki[f"{who}.crt"],
        "key_file": pki[f"{who}.key"],
        "max_retries": 0,
        **overrides,
    }


def test_the_official_sdk_works_against_mtls_only(bank: Emulator, pki: Pki) -> None:
    """A client nobody here wrote: gigachat with a client certificate and no credentials. (Its
    cert_file= goes to httpx's deprecated ``cert=``, which httpx 0.28 drops next to a CA path, so the
    emulator answers it the gateway's 400 page, as the service does: a known SDK problem. An
    ssl_context carrying the certificate is the SDK's way around it.)"""
    import gigachat

    context = ssl.create_default_context(cafile=pki["ca.pem"])
    context.load_cert_chain(pki["bank.crt"], pki["bank.key"])
    with gigachat.GigaChat(base_url=bank.base_url, ssl_context=context, model="GigaChat", timeout=30) as giga:
        assert giga.chat("Say 'Hello' and nothing else").choices[0].message.content == "Hello."
        assert giga.get_models().data
    assert_no_auth_sent(bank)


def test_emulator_mtls_only_configuration(pki: Pki) -> None:
    with pytest.raises(ValueError, match="client_ca"):
        Emulator(mtls_only=True, tls_cert=pki["server.pem"], tls_key=pki["server.pem"])
    with pytest.raises(ValueError, match="SHA-256 fingerprint"):
        Emulator(
            mtls_only=True,
            tls_cert=pki["server.pem"],
            tls_key=pki["server.pem"],
            client_ca=pki["ca.pem"],
            cert_accounts=(CertAccount("bank-client", "x"),),
        )
    config = config_from_args(
        [
            "--tls-cert",
            pki["server.pem"],
            "--tls-key",
            pki["server.pem"],
            "--client-ca",
            pki["ca.pem"],
            "--mtls-only",
            "--cert-account",
            "CN=bank-client=bank-1",
            "--cert-account",
            f"sha256:{pki.fingerprints['treasury']}=bank-2:GIGACHAT_API_B2B",
        ]
    )
    assert config.mtls_only
    assert [(e.key, e.client_id, e.scope) for e in config.cert_accounts] == [
        ("cn:bank-client", "bank-1", "GIGACHAT_API_CORP"),
        (f"sha256:{pki.fingerprints['treasury']}", "bank-2", "GIGACHAT_API_B2B"),
    ]
    text = banner(config, 8443)
    assert "client certificate only (mTLS)" in text and "CN=bank-client -> bank-1" in text
    assert "credentials" not in text
    for argv in (
        ["--mtls-only"],
        ["--cert-account", "CN=x=y"],
        ["--tls-cert", "a", "--tls-key", "b", "--client-ca", "c", "--mtls-only", "--cert-account", "bad"],
    ):
        with pytest.raises(SystemExit):
            config_from_args(argv)


def test_without_a_mapping_every_certificate_the_ca_signed_is_its_cn(pki: Pki) -> None:
    with Emulator(
        limits=None, tls_cert=pki["server.pem"], tls_key=pki["server.pem"], client_ca=pki["ca.pem"], mtls_only=True
    ) as emu:
        with (
            GigaChat(**cert_settings(emu, pki, "stranger")) as stranger,
            GigaChat(**cert_settings(emu, pki, "bank")) as bank_client,
        ):
            kept = stranger.upload_file(b"x", filename="x.txt")
            assert kept.id not in {f.id for f in bank_client.get_all_files()}
            assert stranger.check_ai("Кроме того, следует отметить. " * 3).category  # CORP by default
        assert_no_auth_sent(emu)
