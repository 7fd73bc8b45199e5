"""Runner, ids, limits, stats and request log, CLI, HTTPS and mTLS, routing."""

from __future__ import annotations

import logging
import re
import ssl
import uuid
from pathlib import Path

import httpx
import pytest
import trustme

from gigapy.emulator import (
    DEMO_CREDENTIALS,
    SCOPE_PERS,
    Emulator,
    EmulatorConfig,
    EmulatorProcess,
    config_from_args,
    create_app,
    wait_until,
)

from .conftest import Api, oauth


def test_urls_and_public_names(emu: Emulator) -> None:
    assert emu.url == f"http://127.0.0.1:{emu.port}"
    assert emu.base_url == emu.url + "/api/v1"
    assert emu.auth_url == emu.url + "/api/v2/oauth"
    assert emu.credentials == DEMO_CREDENTIALS
    assert EmulatorConfig().port == 8443 and EmulatorConfig().token_ttl == 1800.0
    assert EmulatorConfig().limits == {"GIGACHAT_API_PERS": 1, "GIGACHAT_API_B2B": 10, "GIGACHAT_API_CORP": 10}
    assert create_app().router is not None


def test_ids_are_echoed_or_generated(api: Api) -> None:
    sent = {"X-Request-ID": "req-1", "X-Session-ID": "sess-1", "X-Client-ID": "client-1"}
    echoed = api.get("models", headers=sent)
    assert {k: echoed.headers[k] for k in sent} == sent
    generated = api.get("models")
    for name in sent:
        assert uuid.UUID(generated.headers[name]).version == 4
    error = api.get("models/nope", headers={"X-Request-ID": "req-2"})
    assert error.status_code == 404 and error.headers["X-Request-ID"] == "req-2"


@pytest.mark.parametrize("path", ["/api/v1/models", "/v1/models", "/api/v2/chat/completions", "/v2/chat/completions"])
def test_both_path_styles(api: Api, path: str) -> None:
    if path.endswith("models"):
        assert api.get(path).status_code == 200
    else:
        body = {"model": "GigaChat", "messages": [{"role": "user", "content": [{"text": "hi"}]}]}
        assert api.post(path, json=body).status_code == 200


def test_unknown_routes_are_json_404(http: httpx.Client) -> None:
    response = http.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"status": 404, "message": "Not Found"}


def test_stats_and_request_log(emu: Emulator, api: Api, http: httpx.Client) -> None:
    emu.reset_stats()
    oauth(http)
    http.post("/api/v1/token", auth=("gigapy-demo", "gigapy-demo-password"))
    api.chat("Exact body please", headers={"X-Trace": "t-1"})
    api.get("models")
    stats = emu.stats()
    assert stats["oauth_requests"] == 1 and stats["token_requests"] == 1
    assert stats["api_requests"] == {"chat": 1, "models": 1}
    assert stats["open_connections"] >= 1 and stats["inflight"] == 0
    http.get("/__emulator__/stats")  # admin calls are neither counted nor logged
    requests = emu.requests
    assert [r.path for r in requests] == [
        "/api/v2/oauth",
        "/api/v1/token",
        "/api/v1/chat/completions",
        "/api/v1/models",
    ]
    chat = requests[2]
    assert chat.method == "POST" and chat.headers["x-trace"] == "t-1"
    assert chat.headers["Authorization"] == f"Bearer {api.token}"
    assert chat.json() == {"model": "GigaChat", "messages": [{"role": "user", "content": "Exact body please"}]}
    assert http.get("/__emulator__/stats").json()["api_requests"] == {"chat": 1, "models": 1}
    logged = http.get("/__emulator__/requests").json()["requests"]
    assert logged[2]["body"] == chat.body.decode()
    emu.reset_stats()
    assert emu.stats()["api_requests"] == {} and len(emu.requests) == 0
    assert http.post("/__emulator__/reset").json()["oauth_requests"] == 0


def test_request_log_is_bounded_and_truncated() -> None:
    with Emulator(request_log_size=5) as emu:
        api = Api(emu)
        for _ in range(10):
            api.get("models")
        api.chat("x" * 100_000)
        assert len(emu.requests) == 5
        assert len(emu.requests[-1].body) == 64 * 1024
        api.close()


def test_admin_expire_tokens() -> None:
    with Emulator() as emu, httpx.Client(base_url=emu.url) as client:
        api = Api(emu)
        assert client.post("/__emulator__/expire-tokens").status_code == 200
        assert api.get("models").json()["message"] == "Token has expired"
        api.close()


def test_concurrency_limits() -> None:
    slow = {
        "model": "GigaChat",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "update_interval": 0.05,
    }
    with Emulator() as emu:
        api = Api(emu, SCOPE_PERS)
        headers = {"Authorization": f"Bearer {api.token}", "X-Emulator-Answer-Tokens": "20"}
        with (
            httpx.Client(base_url=emu.url) as other,
            api.http.stream("POST", api.url("chat/completions"), json=slow, headers=headers) as streaming,
        ):
            limited = other.get("/api/v1/models", headers={"Authorization": f"Bearer {api.token}"})
            assert limited.status_code == 429
            assert limited.json() == {"status": 429, "message": "Too many requests"}
            assert limited.headers["Retry-After"] == "1"
            assert emu.stats()["inflight"] == 1
            streaming.read()
        assert api.get("models").status_code == 200
        api.close()
    with Emulator(limits=None) as emu:
        api = Api(emu, SCOPE_PERS)
        headers = {"Authorization": f"Bearer {api.token}", "X-Emulator-Answer-Tokens": "20"}
        with (
            httpx.Client(base_url=emu.url) as other,
            api.http.stream("POST", api.url("chat/completions"), json=slow, headers=headers) as streaming,
        ):
            assert other.get("/api/v1/models", headers={"Authorization": f"Bearer {api.token}"}).status_code == 200
            streaming.read()
        api.close()


def test_config_from_args() -> None:
    config = config_from_args(
        ["--port", "9000", "--token-ttl", "60", "--no-limits", "--faults", "500:0.5", "--seed", "3"]
    )
    assert (config.port, config.token_ttl, config.limits, config.faults, config.seed) == (9000, 60, None, "500:0.5", 3)
    assert config_from_args([]).limits is not None
    with pytest.raises(SystemExit):
        config_from_args(["--tls-cert", "x.pem"])
    with pytest.raises(SystemExit):
        config_from_args(["--faults", "teapot:1"])


def test_python_m_gigapy_emulator() -> None:
    emu = EmulatorProcess("--no-limits", port=0).start()
    try:
        text = wait_until(lambda: emu.output if DEMO_CREDENTIALS in emu.output else "", what="the banner")
        base = re.search(r"(http://127\.0\.0\.1:\d+)/api/v1\n", text)
        assert base, text
        assert base.group(1) == emu.url
        assert f"{emu.auth_url}" in text and DEMO_CREDENTIALS in text
        with httpx.Client(base_url=emu.url) as http:
            token = oauth(http).json()["access_token"]
            assert http.get("/api/v1/models", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        assert emu.stop() == 0


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("client@example.com")
    root = tmp_path_factory.mktemp("tls")
    paths = {name: root / f"{name}.pem" for name in ("ca", "cert", "key", "client")}
    ca.cert_pem.write_to_path(paths["ca"])
    server.cert_chain_pems[0].write_to_path(paths["cert"])
    server.private_key_pem.write_to_path(paths["key"])
    client.private_key_and_cert_chain_pem.write_to_path(paths["client"])
    return paths


def test_https(tls_files: dict[str, Path]) -> None:
    with Emulator(tls_cert=str(tls_files["cert"]), tls_key=str(tls_files["key"])) as emu:
        assert emu.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(tls_files["ca"]))
        with httpx.Client(base_url=emu.url, verify=context) as http:
            assert oauth(http).status_code == 200


def test_mtls_rejects_clients_without_a_certificate(tls_files: dict[str, Path]) -> None:
    with Emulator(
        tls_cert=str(tls_files["cert"]), tls_key=str(tls_files["key"]), client_ca=str(tls_files["ca"])
    ) as emu:
        anonymous = ssl.create_default_context(cafile=str(tls_files["ca"]))
        with httpx.Client(base_url=emu.url, verify=anonymous) as http, pytest.raises(httpx.TransportError):
            oauth(http)
        known = ssl.create_default_context(cafile=str(tls_files["ca"]))
        known.load_cert_chain(str(tls_files["client"]))
        with httpx.Client(base_url=emu.url, verify=known) as http:
            assert oauth(http).status_code == 200


def test_stop_closes_connections() -> None:
    emu = Emulator().start()
    api = Api(emu)
    assert emu.stats()["open_connections"] == 1
    emu.stop()
    with pytest.raises(httpx.TransportError):
        api.get("models")
    api.close()


def test_client_disconnect_mid_stream_frees_the_slot(caplog: pytest.LogCaptureFixture) -> None:
    body = {
        "model": "GigaChat",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "update_interval": 0.02,
    }
    with Emulator() as emu, caplog.at_level(logging.WARNING):
        api = Api(emu, SCOPE_PERS)
        headers = {"Authorization": f"Bearer {api.token}", "X-Emulator-Answer-Tokens": "100"}
        with api.http.stream("POST", api.url("chat/completions"), json=body, headers=headers) as response:
            next(response.iter_bytes())
        wait_until(lambda: emu.stats()["inflight"] == 0, 5, what="the stream's slot is released")
        assert api.get("models").status_code == 200  # the PERS slot was released
        api.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
