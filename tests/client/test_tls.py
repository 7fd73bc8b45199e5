"""TLS with test CAs (trustme): verification on by default, CA bundles, the installed Russian
Trusted Root CA, mTLS to the auth and API hosts, hostname checks, and the insecure warning."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

import gigapy._transports.tls as tls
from gigapy import APIConnectionError, AsyncGigaChat, ConfigurationError, GigaChat, TLSVerificationError
from gigapy.emulator import Emulator
from gigapy.testing import client_settings


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def pki(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files: the CA, a server cert for 127.0.0.1, a cert for another host, a client cert."""
    root = tmp_path_factory.mktemp("pki")
    files: dict[str, Path] = {}

    def write(name: str, data: bytes) -> None:
        files[name] = root / name
        files[name].write_bytes(data)

    write("ca.pem", ca.cert_pem.bytes())
    server = ca.issue_cert("127.0.0.1", "localhost")
    write("server.pem", b"".join(blob.bytes() for blob in server.cert_chain_pems))
    write("server.key", server.private_key_pem.bytes())
    other = ca.issue_cert("gigachat.example.com")
    write("other.pem", b"".join(blob.bytes() for blob in other.cert_chain_pems))
    write("other.key", other.private_key_pem.bytes())
    client = ca.issue_cert("client@gigapy.test")
    write("client.pem", client.cert_chain_pems[0].bytes())
    key = serialization.load_pem_private_key(client.private_key_pem.bytes(), password=None)
    write(
        "client.key",
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"key-secret"),
        ),
    )
    return files


@pytest.fixture(scope="module")
def https_emu(pki: dict[str, Path]) -> Iterator[Emulator]:
    with Emulator(limits=None, tls_cert=str(pki["server.pem"]), tls_key=str(pki["server.key"])) as emu:
        yield emu


@pytest.fixture(scope="module")
def mtls_emu(pki: dict[str, Path]) -> Iterator[Emulator]:
    with Emulator(
        limits=None, tls_cert=str(pki["server.pem"]), tls_key=str(pki["server.key"]), client_ca=str(pki["ca.pem"])
    ) as emu:
        yield emu


@pytest.fixture(autouse=True)
def empty_config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No installed Russian CA unless a test puts one there."""
    monkeypatch.setenv("GIGAPY_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path / "config"


def test_the_emulator_really_speaks_https(https_emu: Emulator) -> None:
    assert https_emu.base_url.startswith("https://127.0.0.1:")


def test_verification_is_on_by_default_and_the_error_names_host_and_fix(https_emu: Emulator) -> None:
    with GigaChat(**client_settings(https_emu)) as client, pytest.raises(TLSVerificationError) as info:
        client.completion("Привет")
    err = info.value
    assert err.host.startswith("127.0.0.1")
    assert "gigapy certs install" in str(err)
    assert "ca_bundle_file" in str(err)
    assert https_emu.stats()["oauth_requests"] == 0  # nothing got through


def test_custom_ca_bundle(https_emu: Emulator, pki: dict[str, Path]) -> None:
    with GigaChat(**client_settings(https_emu, ca_bundle_file=str(pki["ca.pem"]))) as client:
        assert client.completion("Привет").text


def test_installed_russian_ca_is_trusted_automatically(
    https_emu: Emulator, pki: dict[str, Path], empty_config_dir: Path
) -> None:
    target = tls.russian_ca_path()
    assert target.is_relative_to(empty_config_dir)
    target.parent.mkdir(parents=True)
    target.write_bytes(pki["ca.pem"].read_bytes())  # stands in for the real root, as `certs install` stores it
    with GigaChat(**client_settings(https_emu)) as client:
        assert client.completion("Привет").text


def test_hostname_mismatch_is_rejected(pki: dict[str, Path]) -> None:
    with (
        Emulator(limits=None, tls_cert=str(pki["other.pem"]), tls_key=str(pki["other.key"])) as emu,
        GigaChat(**client_settings(emu, ca_bundle_file=str(pki["ca.pem"]))) as client,
        pytest.raises(TLSVerificationError, match=r"127\.0\.0\.1"),
    ):
        client.completion("Привет")


def test_mtls_to_the_auth_and_api_hosts(mtls_emu: Emulator, pki: dict[str, Path]) -> None:
    base = client_settings(mtls_emu, ca_bundle_file=str(pki["ca.pem"]))
    with GigaChat(**base) as client, pytest.raises(APIConnectionError):
        client.completion("без сертификата")
    with GigaChat(
        **base, cert_file=str(pki["client.pem"]), key_file=str(pki["client.key"]), key_file_password="key-secret"
    ) as client:
        assert client.completion("с сертификатом").text
    stats = mtls_emu.stats()
    assert stats["oauth_requests"] == 1  # the auth host accepted the certificate too
    assert stats["api_requests"]["chat"] == 1


def test_mtls_async(mtls_emu: Emulator, pki: dict[str, Path]) -> None:
    async def main() -> str:
        async with AsyncGigaChat(
            **client_settings(
                mtls_emu,
                ca_bundle_file=str(pki["ca.pem"]),
                cert_file=str(pki["client.pem"]),
                key_file=str(pki["client.key"]),
                key_file_password="key-secret",
            )
        ) as client:
            return (await client.completion("async mTLS")).text

    assert asyncio.run(main())


def test_async_verification_error(https_emu: Emulator) -> None:
    async def main() -> None:
        async with AsyncGigaChat(**client_settings(https_emu)) as client:
            await client.completion("Привет")

    with pytest.raises(TLSVerificationError, match="gigapy certs install"):
        asyncio.run(main())


def test_wrong_key_password_is_a_clear_configuration_error(mtls_emu: Emulator, pki: dict[str, Path]) -> None:
    with pytest.raises(ConfigurationError) as info:  # at construction, before anything is sent
        GigaChat(
            **client_settings(
                mtls_emu, cert_file=str(pki["client.pem"]), key_file=str(pki["client.key"]), key_file_password="not-it"
            )
        )
    assert info.value.field == "cert_file"
    assert "key_file_password" in str(info.value)
    assert "not-it" not in str(info.value)


def test_verification_off_works_but_warns_once(https_emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls, "_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            with GigaChat(**client_settings(https_emu, verify_ssl_certs=False)) as client:
                assert client.completion("Привет").text
    insecure = [w for w in caught if issubclass(w.category, tls.InsecureTLSWarning)]
    assert len(insecure) == 1
    assert "gigapy certs install" in str(insecure[0].message)


def test_tls_context_is_built_once_per_configuration(pki: dict[str, Path], emu: Any) -> None:
    first = tls.ssl_context(ca_bundle_file=str(pki["ca.pem"]))
    assert tls.ssl_context(ca_bundle_file=str(pki["ca.pem"])) is first
