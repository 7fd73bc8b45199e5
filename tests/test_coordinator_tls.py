"""``rediss://`` with a password, for real: a redis-server with ``requirepass`` behind a TLS
listener whose certificate a test CA signed. Verification is on by default; the CA is given in
the URL; a wrong password or an unknown CA is a clear CoordinatorError that never shows the
password (message, repr, traceback)."""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from gigapy import GigaChat
from gigapy.coordinator import connect
from gigapy.emulator import DEMO_CREDENTIALS, Emulator
from gigapy.errors import CoordinatorError
from gigapy.testing import client_settings

from .redis_server import RedisServer, free_port
from .tls_proxy import TLSProxy

PASSWORD = "tls-s3cret-Pw"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("redis-pki")
    ca, stranger = trustme.CA(), trustme.CA()
    files = {name: root / name for name in ("ca.pem", "server.pem", "server.key", "stranger.pem", "stranger.key")}
    files["ca.pem"].write_bytes(ca.cert_pem.bytes())
    for name, issuer in (("server", ca), ("stranger", stranger)):
        cert = issuer.issue_cert("127.0.0.1", "localhost")
        files[f"{name}.pem"].write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        files[f"{name}.key"].write_bytes(cert.private_key_pem.bytes())
    return files


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer(password=PASSWORD) as redis_server:
        yield redis_server


@pytest.fixture(scope="module")
def proxy(server: RedisServer, pki: dict[str, Path]) -> Iterator[TLSProxy]:
    with TLSProxy(server.port, pki["server.pem"], pki["server.key"]) as tls:
        yield tls


def _url(port: int, password: str, ca: Path | None) -> str:
    query = f"?ssl_ca_certs={ca}" if ca is not None else ""
    return f"rediss://:{password}@127.0.0.1:{port}/0{query}"


def _no_password(exc: BaseException, *passwords: str) -> None:
    shown = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    frames = exc.__traceback__
    while frames is not None:  # nor in the locals of any frame of ours the traceback keeps
        if frames.tb_frame.f_code.co_filename != __file__:  # (this test's own frames hold the URL)
            code = frames.tb_frame.f_code.co_name
            shown.extend(f"{code}:{k}={v!r}" for k, v in frames.tb_frame.f_locals.items())
        frames = frames.tb_next
    for password in passwords:
        assert [text for text in shown if password in text] == []


def test_rediss_with_password_and_ca_does_a_verified_handshake(
    proxy: TLSProxy, pki: dict[str, Path], tmp_path: Path
) -> None:
    url = _url(proxy.port, PASSWORD, pki["ca.pem"])
    before = proxy.handshakes
    with Emulator() as emu, GigaChat(**client_settings(emu, scope="GIGACHAT_API_CORP", coordinator=url)) as client:
        assert client.completion("hi").choices[0].message.content
        hook = client._fleet
        assert hook is not None
        assert hook.coordinator.kind == "redis" and hook.coordinator.held(f"{hook.prefix}:chat") == 0
        assert PASSWORD not in repr(client) + repr(hook) + repr(hook.coordinator)
    assert proxy.handshakes > before  # the client really went through TLS
    coord = connect(url)
    facts = coord.check()
    assert facts["tls"] is True and facts["leases"] == "ok"
    assert PASSWORD not in str(facts)
    coord.close()


@pytest.mark.parametrize("case", ["wrong password", "no password", "unknown CA", "no CA given"])
def test_rediss_failures_are_clear_and_never_show_the_password(
    case: str, proxy: TLSProxy, server: RedisServer, pki: dict[str, Path]
) -> None:
    if case == "wrong password":
        url, expected = _url(proxy.port, "wrong-Pw-123", pki["ca.pem"]), "refused the credentials"
    elif case == "no password":
        url, expected = f"rediss://127.0.0.1:{proxy.port}/0?ssl_ca_certs={pki['ca.pem']}", "requires a password"
    elif case == "unknown CA":  # a server whose certificate another CA signed
        with TLSProxy(server.port, pki["stranger.pem"], pki["stranger.key"]) as stranger:
            _fails(_url(stranger.port, PASSWORD, pki["ca.pem"]), "certificate verification failed")
        return
    else:  # verification is on by default: the system's CAs do not know the test CA
        url, expected = _url(proxy.port, PASSWORD, None), "certificate verification failed"
    _fails(url, expected)


def _fails(url: str, expected: str) -> None:
    port = url.split("@")[-1].split("/")[0] if "@" in url else url.split("//")[1].split("/")[0]
    with Emulator() as emu, GigaChat(**client_settings(emu, scope="GIGACHAT_API_CORP", coordinator=url)) as client:
        with pytest.raises(CoordinatorError, match=expected) as info:
            client.completion("hi")
        assert "rediss://" in str(info.value) and port in str(info.value)  # names the coordinator
        _no_password(info.value, PASSWORD, "wrong-Pw-123")
        assert emu.stats()["responses"].get("200", 0) <= 1  # nothing generated without the coordinator
    coord = connect(url)
    with pytest.raises(CoordinatorError, match=expected) as checked:
        coord.check()
    _no_password(checked.value, PASSWORD, "wrong-Pw-123")
    coord.close()


def test_doctor_explains_coordinator_failures(
    proxy: TLSProxy, server: RedisServer, pki: dict[str, Path], tmp_path: Path
) -> None:
    from gigapy._config import load_settings, secret_args
    from gigapy.cli._common import State
    from gigapy.cli._doctor import Doctor

    (tmp_path / "a-file").write_text("not a directory")
    cases = {
        "tls ok": (_url(proxy.port, PASSWORD, pki["ca.pem"]), "ok", "redis_version"),
        "wrong password": (_url(proxy.port, "wrong-Pw-123", pki["ca.pem"]), "fail", "password"),
        "no CA": (_url(proxy.port, PASSWORD, None), "fail", "ssl_ca_certs"),
        "plain to TLS": (f"redis://:{PASSWORD}@127.0.0.1:{proxy.port}/0", "fail", "reachable"),
        "unreachable": (f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0", "fail", "reachable"),
        "file ok": (f"file://{tmp_path / 'fleet'}", "ok", "mode"),
        "file unusable": (f"file://{tmp_path / 'a-file'}", "fail", "GIGACHAT_COORDINATOR"),
    }
    for name, (url, verdict, needle) in cases.items():
        settings = load_settings(secret_args({"credentials": DEMO_CREDENTIALS, "coordinator": url}), env={})
        doctor = Doctor(State(), timeout=5.0)
        doctor.coordinator(settings)
        [step] = doctor.steps
        text = f"{step.detail} {step.fix}"
        assert PASSWORD not in text and "wrong-Pw-123" not in text
        assert step.verdict == verdict, (name, step)
        assert needle in text, (name, step)
        assert step.detail.startswith(("coordinator ", "rediss://", "redis://", "file://")), (name, step)
