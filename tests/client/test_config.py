"""Settings: constructor > GIGACHAT_* env > defaults; early, named, secret-free errors."""

from __future__ import annotations

import base64

import pytest

from gigapy import ConfigurationError, GigaChat, Timeout
from gigapy._config import load_settings

KEY = base64.b64encode(b"0a6d4c55-1111-4b6e-9a8e-3f0c2d7b1a22:2e7f9c1d-2222-4c3b-8d5e-1a2b3c4d5e6f").decode()


def test_defaults_are_the_documented_ones() -> None:
    s = load_settings({"credentials": KEY}, env={})
    assert s.base_url == "https://api.giga.chat/v1"
    assert s.auth_url == "https://ngw.devices.sberbank.ru:9443/api/v2/oauth"
    assert s.scope == "GIGACHAT_API_PERS"
    assert s.model == "GigaChat-2"
    assert s.max_retries == 2
    assert s.verify_ssl_certs is True


def test_every_setting_reads_its_gigachat_variable() -> None:
    env = {
        "GIGACHAT_CREDENTIALS": KEY,
        "GIGACHAT_SCOPE": "GIGACHAT_API_CORP",
        "GIGACHAT_MODEL": "GigaChat-2-Max",
        "GIGACHAT_BASE_URL": "http://127.0.0.1:1/api/v1/",
        "GIGACHAT_AUTH_URL": "http://127.0.0.1:1/api/v2/oauth",
        "GIGACHAT_TIMEOUT": "12.5",
        "GIGACHAT_MAX_RETRIES": "5",
        "GIGACHAT_VERIFY_SSL_CERTS": "false",
        "GIGACHAT_PROFANITY_CHECK": "true",
        "GIGACHAT_FLAGS": '["a", "b"]',
        "GIGACHAT_USER": "u",
        "GIGACHAT_PASSWORD": "p",
        "GIGACHAT_ACCESS_TOKEN": "tok",
        "GIGACHAT_MAX_CONNECTIONS": "7",
    }
    s = load_settings({}, env=env)
    assert s.scope == "GIGACHAT_API_CORP"
    assert s.model == "GigaChat-2-Max"
    assert s.base_url == "http://127.0.0.1:1/api/v1"
    assert s.timeout == Timeout(12.5, 12.5, 12.5, 12.5)
    assert (s.max_retries, s.verify_ssl_certs, s.profanity_check, s.flags) == (5, False, True, ("a", "b"))
    assert s.user == "u"
    assert s.password is not None and s.password.get_secret_value() == "p"
    assert s.max_connections == 7
    assert load_settings({"scope": "GIGACHAT_API_B2B"}, env=env).scope == "GIGACHAT_API_B2B"  # kwargs win


def test_file_settings_read_their_variables(tmp_path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    env = {
        "GIGACHAT_CREDENTIALS": KEY,
        "GIGACHAT_CA_BUNDLE_FILE": str(ca),
        "GIGACHAT_CERT_FILE": str(ca),
        "GIGACHAT_KEY_FILE": str(ca),
        "GIGACHAT_KEY_FILE_PASSWORD": "kp",
    }
    s = load_settings({}, env=env)
    assert (s.ca_bundle_file, s.cert_file, s.key_file) == (str(ca), str(ca), str(ca))
    assert s.key_file_password is not None and "kp" not in repr(s)


@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        ({"credentials": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"}, "credentials", "access token"),
        ({"credentials": "a.b.c.d.e"}, "credentials", "access token"),
        ({"credentials": "0a6d4c55-1111-4b6e-9a8e-3f0c2d7b1a22"}, "credentials", "bare Client ID"),
        ({"credentials": "not base64 at all!"}, "credentials", "not valid base64"),
        ({"credentials": base64.b64encode(b"no-colon").decode()}, "credentials", "client_id:client_secret"),
        ({"credentials": "   "}, "credentials", "empty"),
        ({"credentials": KEY, "scope": "gigachat_api_pers"}, "scope", "upper case"),
        ({"credentials": KEY, "scope": "GIGACHAT_API_PERSONAL"}, "scope", "did you mean GIGACHAT_API_PERS"),
        ({"credentials": KEY, "base_url": "api.giga.chat/v1"}, "base_url", "http:// or https://"),
        ({"credentials": KEY, "timeout": 0}, "timeout", "> 0"),
        ({"credentials": KEY, "timeout": "fast"}, "timeout", "number"),
        ({"credentials": KEY, "max_retries": -1}, "max_retries", ">= 0"),
        ({"credentials": KEY, "verify_ssl_certs": "yes"}, "verify_ssl_certs", "True or False"),
        ({"credentials": KEY, "ca_bundle_file": "/no/such/file.pem"}, "ca_bundle_file", "file not found"),
        ({"credentials": KEY, "flags": "abc"}, "flags", "list of strings"),
        ({"user": "u"}, "password", "together"),
        ({}, "credentials", "no way to authenticate"),
    ],
)
def test_bad_settings_fail_at_construction(kwargs: dict, field: str, fragment: str, monkeypatch) -> None:
    for var in ("GIGACHAT_CREDENTIALS", "GIGACHAT_USER", "GIGACHAT_PASSWORD", "GIGACHAT_ACCESS_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ConfigurationError) as info:
        GigaChat(**kwargs)
    assert info.value.field == field
    assert fragment in str(info.value)
    secret = kwargs.get("credentials")
    if secret and secret.strip():
        assert secret not in str(info.value)


@pytest.mark.parametrize(
    ("var", "value", "fragment"),
    [
        ("GIGACHAT_TIMEOUT", "soon", "number"),
        ("GIGACHAT_MAX_RETRIES", "two", "integer"),
        ("GIGACHAT_VERIFY_SSL_CERTS", "maybe", "true or false"),
        ("GIGACHAT_FLAGS", "[broken", "JSON list"),
    ],
)
def test_bad_environment_values_name_the_variable(var: str, value: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings({}, env={"GIGACHAT_CREDENTIALS": KEY, var: value})
    assert info.value.field == var
    assert fragment in str(info.value)


def test_secrets_never_show_in_repr() -> None:
    client = GigaChat(
        credentials=KEY,
        password="hunter2-pass",
        user="bob",
        access_token="tok-123-secret",
        base_url="http://127.0.0.1:9/api/v1",
    )
    for text in (repr(client), repr(client.settings), str(client.settings)):
        for secret in (KEY, "hunter2-pass", "tok-123-secret"):
            assert secret not in text
    client.close()


def test_timeout_from_the_environment_by_phase() -> None:
    env = {"GIGACHAT_ACCESS_TOKEN": "t"}
    assert load_settings({}, {**env, "GIGACHAT_TIMEOUT": "30"}).timeout == Timeout(30, 30, 30, 30, None)
    got = load_settings({}, {**env, "GIGACHAT_TIMEOUT": "read=120, total=600"}).timeout
    assert got == Timeout(connect=10, read=120, write=60, pool=60, total=600)
    assert load_settings({}, {**env, "GIGACHAT_TIMEOUT": "total=none;read=5"}).timeout.total is None
    for bad in ("read=abc", "bogus=1", "total=0", "total=inf", "read", "=5", "5s"):
        with pytest.raises(ConfigurationError, match="GIGACHAT_TIMEOUT"):
            load_settings({}, {**env, "GIGACHAT_TIMEOUT": bad})
