"""``gigapy certs`` against a local HTTPS server: a trustme CA plays the Russian Trusted Root CA."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

from gigapy._transports.certs import PINNED_SHA256, fingerprint, normalize_fingerprint, to_der
from gigapy._transports.tls import russian_ca_path
from gigapy.emulator import Emulator
from tests.cli.conftest import Invoke


@dataclass
class Pki:
    root_pem: Path  # the stand-in for the Russian Trusted Root CA
    root_sha256: str
    other_pem: Path  # a different CA: the "wrong" certificate, and the download server's issuer
    server_pem: Path  # the download server's certificate and key (issued by the other CA)
    emu_cert: Path  # the emulator's certificate (issued by the root)
    emu_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    root, other = trustme.CA(), trustme.CA()
    root.cert_pem.write_to_path(str(d / "root.pem"))
    other.cert_pem.write_to_path(str(d / "other.pem"))
    other.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    leaf = root.issue_cert("127.0.0.1", "localhost")
    leaf.private_key_pem.write_to_path(str(d / "emu.key"))
    (d / "emu.pem").write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    return Pki(d / "root.pem", fingerprint(to_der((d / "root.pem").read_bytes())), d / "other.pem",
               d / "server.pem", d / "emu.pem", d / "emu.key")


@pytest.fixture(scope="module")
def server(pki: Pki) -> Iterator[str]:
    """https://127.0.0.1:PORT serving /root.crt (PEM), /root.der and /wrong.crt."""
    files = {"/root.crt": pki.root_pem.read_bytes(), "/root.der": to_der(pki.root_pem.read_bytes()),
             "/wrong.crt": pki.other_pem.read_bytes()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(pki.server_pem))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_pinned_fingerprint_is_the_published_one() -> None:
    assert normalize_fingerprint(PINNED_SHA256.replace(":", "").lower()) == PINNED_SHA256


def test_wrong_fingerprint_is_refused_and_nothing_stored(cli: Invoke, pki: Pki, server: str) -> None:
    env: dict[str, str | None] = {"GIGACHAT_CA_BUNDLE_FILE": str(pki.other_pem)}
    result = cli("certs", "install", "--url", f"{server}/wrong.crt", "--sha256", pki.root_sha256, extra_env=env)
    assert result.exit_code == 1
    assert "nothing was stored" in result.stderr
    assert not russian_ca_path().exists()
    assert not russian_ca_path().parent.exists()
    # The real pin refuses the test CA too.
    real = cli("certs", "install", "--url", f"{server}/root.crt", extra_env=env)
    assert real.exit_code == 1 and not russian_ca_path().exists()


def test_install_status_path_and_uninstall(cli: Invoke, pki: Pki, server: str) -> None:
    env: dict[str, str | None] = {"GIGAPY_CERTS_URL": f"{server}/root.crt", "GIGAPY_CERTS_SHA256": pki.root_sha256,
                                  "GIGACHAT_CA_BUNDLE_FILE": str(pki.other_pem)}
    before = cli("certs", "status", extra_env=env)
    assert before.exit_code == 1 and "not installed" in before.stdout
    result = cli("certs", "install", extra_env=env)
    assert result.exit_code == 0, result.output
    assert "matches the pinned fingerprint" in result.stdout
    assert "could not be verified" not in result.stdout
    assert russian_ca_path().read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    status = cli("certs", "status", "--json", extra_env=env)
    assert status.exit_code == 0
    assert '"matches_pin": true' in status.stdout
    again = cli("certs", "install", extra_env=env)
    assert "already installed" in again.stdout
    assert cli("certs", "path").stdout.strip() == str(russian_ca_path())
    assert cli("certs", "uninstall").exit_code == 0
    assert not russian_ca_path().exists()


def test_unverifiable_download_is_accepted_only_by_the_pin(cli: Invoke, pki: Pki, server: str) -> None:
    env: dict[str, str | None] = {"GIGAPY_CERTS_URL": f"{server}/root.der", "GIGAPY_CERTS_SHA256": pki.root_sha256}
    result = cli("certs", "install", extra_env=env)  # the server's CA is not trusted here
    assert result.exit_code == 0, result.output
    assert "could not be verified" in result.stdout
    assert russian_ca_path().exists()


def test_install_from_file(cli: Invoke, pki: Pki) -> None:
    result = cli("certs", "install", "--from-file", str(pki.root_pem), "--sha256", pki.root_sha256)
    assert result.exit_code == 0, result.output
    wrong = cli("certs", "install", "--from-file", str(pki.other_pem), "--sha256", pki.root_sha256)
    assert wrong.exit_code == 1


def test_installed_ca_is_trusted_by_the_client(cli: Invoke, pki: Pki) -> None:
    with Emulator(limits=None, tls_cert=str(pki.emu_cert), tls_key=str(pki.emu_key)) as emu:
        urls = ["--base-url", emu.base_url, "--auth-url", emu.auth_url]
        assert emu.base_url.startswith("https://")
        refused = cli(*urls, "models")
        assert refused.exit_code == 3
        assert "gigapy certs install" in refused.stderr
        installed = cli("certs", "install", "--from-file", str(pki.root_pem), "--sha256", pki.root_sha256)
        assert installed.exit_code == 0, installed.output
        trusted = cli(*urls, "models", "--json")  # no ca_bundle_file anywhere
        assert trusted.exit_code == 0, trusted.output
        assert "GigaChat-2" in trusted.stdout
