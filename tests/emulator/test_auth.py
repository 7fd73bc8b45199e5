"""OAuth, user/password tokens and bearer checks."""

from __future__ import annotations

import base64
import time
import uuid

import httpx
import pytest

from gigapy.emulator import (
    DEMO_CREDENTIALS,
    DEMO_PASSWORD,
    DEMO_USER,
    SCOPE_CORP,
    SCOPE_PERS,
    Account,
    Emulator,
    wait_until,
)

from .conftest import Api, oauth


def test_oauth_returns_a_jwe_like_token_with_ms_expiry(http: httpx.Client) -> None:
    before = time.time()
    response = oauth(http, SCOPE_PERS)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"access_token", "expires_at"}
    parts = body["access_token"].split(".")
    assert len(parts) == 5
    assert base64.urlsafe_b64decode(parts[0] + "==") == b'{"cty":"jwt","enc":"A256CBC-HS512","alg":"RSA-OAEP-256"}'
    assert before * 1000 + 1799_000 <= body["expires_at"] <= time.time() * 1000 + 1801_000


def test_oauth_accepts_bearer_scheme_like_gigachat_node(http: httpx.Client) -> None:
    hdrs = {"Authorization": f"Bearer {DEMO_CREDENTIALS}", "RqUID": str(uuid.uuid4())}
    assert http.post("/api/v2/oauth", headers=hdrs, data={"scope": SCOPE_CORP}).status_code == 200


@pytest.mark.parametrize("rquid", [None, "not-a-uuid", "6f0b1291-c7f3-13c6-bb2e-9f3efb2dc98e"])
def test_oauth_requires_uuid4_rquid(http: httpx.Client, rquid: str | None) -> None:
    hdrs = {"Authorization": f"Basic {DEMO_CREDENTIALS}"}
    if rquid:
        hdrs["RqUID"] = rquid
    response = http.post("/api/v2/oauth", headers=hdrs, data={"scope": SCOPE_PERS})
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("key", "scope", "status", "code", "message"),
    [
        ("%%%not-base64%%%", SCOPE_PERS, 400, 4, "Can't decode 'Authorization' header"),
        (base64.b64encode(b"no-colon-here").decode(), SCOPE_PERS, 400, 4, "Can't decode 'Authorization' header"),
        (DEMO_CREDENTIALS, "", 400, 5, "scope is empty"),
        (DEMO_CREDENTIALS, "GIGACHAT_API_NOPE", 400, 1, "scope data format invalid"),
        (base64.b64encode(b"someone:wrong").decode(), SCOPE_PERS, 401, 6, "credentials doesn't match db data"),
    ],
)
def test_oauth_errors_use_code_and_message(
    http: httpx.Client, key: str, scope: str, status: int, code: int, message: str
) -> None:
    response = oauth(http, scope, key)
    assert response.status_code == status
    assert response.json() == {"code": code, "message": message}


def test_oauth_scope_not_granted_is_code_7() -> None:
    account = Account("11111111-2222-4333-8444-555555555555", "secret", frozenset({SCOPE_PERS}))
    with Emulator(accounts=(account,)) as emu, httpx.Client(base_url=emu.url) as http:
        assert oauth(http, SCOPE_PERS, account.credentials).status_code == 200
        response = oauth(http, SCOPE_CORP, account.credentials)
        assert response.status_code == 400
        assert response.json() == {"code": 7, "message": "scope from db not fully includes consumed scope"}


def test_demo_account_can_be_disabled() -> None:
    with Emulator(demo_account=False) as emu, httpx.Client(base_url=emu.url) as http:
        assert oauth(http).status_code == 401


def test_oauth_rate_limit_per_key() -> None:
    with Emulator(oauth_rps_limit=3) as emu, httpx.Client(base_url=emu.url) as http:
        statuses = [oauth(http).status_code for _ in range(8)]
        assert statuses[:3] == [200, 200, 200]
        assert 429 in statuses
        limited = next(r for r in (oauth(http) for _ in range(3)) if r.status_code == 429)
        assert limited.headers["Retry-After"] == "1"


def test_user_password_token_on_classic_host_only(http: httpx.Client) -> None:
    before = time.time()
    response = http.post("/api/v1/token", auth=(DEMO_USER, DEMO_PASSWORD))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"tok", "exp"}
    assert before + 1799 <= body["exp"] <= time.time() + 1801  # seconds, not ms
    models = http.get("/api/v1/models", headers={"Authorization": f"Bearer {body['tok']}"})
    assert models.status_code == 200
    assert http.post("/v1/token", auth=(DEMO_USER, DEMO_PASSWORD)).status_code == 404
    wrong = http.post("/api/v1/token", auth=(DEMO_USER, "wrong"))
    assert wrong.status_code == 401
    assert wrong.json() == {"status": 401, "message": "Unauthorized"}


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nope", "Basic abc", "Bearer a.b.c.d.e"])
def test_missing_or_unknown_bearer_is_unauthorized(http: httpx.Client, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    for path in ("/api/v1/models", "/v1/models", "/api/v1/balance"):
        response = http.get(path, headers=headers)
        assert response.status_code == 401
        assert response.json() == {"status": 401, "message": "Unauthorized"}
        assert response.headers["Content-Type"] == "application/json; charset=utf-8"


def test_expired_tokens() -> None:
    with Emulator() as emu:
        api = Api(emu)
        assert api.get("models").status_code == 200
        emu.expire_tokens()
        response = api.get("models")
        assert response.status_code == 401
        assert response.json() == {"status": 401, "message": "Token has expired"}
        api.close()


def test_token_ttl_is_configurable() -> None:
    with Emulator(token_ttl=0.2) as emu:
        api = Api(emu)
        assert api.get("models").status_code == 200
        wait_until(lambda: api.get("models").status_code == 401, 5, 0.05, what="the token expires")
        assert api.get("models").json()["message"] == "Token has expired"
        api.close()


def test_restart_forgets_tokens_unless_state_is_kept() -> None:
    emu = Emulator().start()
    try:
        api = Api(emu)
        port = emu.port
        emu.restart(keep_state=True)
        assert emu.port == port
        assert api.get("models").status_code == 200
        emu.restart()
        assert emu.port == port
        assert api.get("models").json() == {"status": 401, "message": "Unauthorized"}
        api.close()
    finally:
        emu.stop()


def test_token_store_is_capped() -> None:
    with Emulator(max_tokens_stored=20, oauth_rps_limit=1000) as emu, httpx.Client(base_url=emu.url) as http:
        for _ in range(60):
            assert oauth(http).status_code == 200
        assert emu.stats()["tokens"] <= 20
