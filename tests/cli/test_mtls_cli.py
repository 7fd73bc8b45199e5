"""The CLI with mTLS-only access (profiles, environment, ``doctor``'s certificate checks) and the
``functions convert`` / ``filter check`` commands, against emulators on loopback."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from gigapy.emulator import BLACKLIST_TRIGGER, CertAccount, Emulator
from tests.cli.conftest import Invoke

KEY_PASSWORD = "cli-bank-key-pass-2c3d"
NO_AUTH = {"GIGACHAT_CREDENTIALS": None, "GIGACHAT_AUTH_URL": None, "GIGACHAT_SCOPE": None}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("cli-pki")
    ca = trustme.CA()
    files: dict[str, str] = {}

    def write(name: str, data: bytes) -> None:
        (root / name).write_bytes(data)
        files[name] = str(root / name)

    write("ca.pem", ca.cert_pem.bytes())
    write("server.pem", ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.bytes())
    old = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    for name, extra in (("bank", {}), ("other", {}), ("expired", {"not_after": old})):
        cert = ca.issue_cert(f"{name}.test", common_name="bank-client" if name != "other" else "other", **extra)
        write(f"{name}.crt", cert.cert_chain_pems[0].bytes())
        write(f"{name}.key", cert.private_key_pem.bytes())
        key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
        write(f"{name}.enc.key", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.BestAvailableEncryption(KEY_PASSWORD.encode())))
    write("garbage.key", b"this is no key\n")
    return files


@pytest.fixture(scope="module")
def bank(pki: dict[str, str]) -> Iterator[Emulator]:
    with Emulator(limits=None, tls_cert=pki["server.pem"], tls_key=pki["server.pem"], client_ca=pki["ca.pem"],
                  mtls_only=True, cert_accounts=(CertAccount("CN=bank-client", "bank-1"),)) as emu:
        yield emu


def cert_env(bank: Emulator, pki: dict[str, str], cert: str = "bank.crt", key: str = "bank.enc.key",
             password: str | None = KEY_PASSWORD) -> dict[str, str | None]:
    return {**NO_AUTH, "GIGACHAT_BASE_URL": bank.base_url, "GIGACHAT_CA_BUNDLE_FILE": pki["ca.pem"],
            "GIGACHAT_CERT_FILE": pki[cert], "GIGACHAT_KEY_FILE": pki[key], "GIGACHAT_KEY_FILE_PASSWORD": password}


def steps(result: Any) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in json.loads(result.stdout)["steps"]}


def test_a_certificate_only_profile_works(cli: Invoke, bank: Emulator, pki: dict[str, str], config_dir: Path,
                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bank.reset_stats()
    monkeypatch.chdir(Path(pki["bank.crt"]).parent)
    for key, value in (("base_url", bank.base_url), ("ca_bundle_file", "ca.pem"), ("cert_file", "bank.crt"),
                       ("key_file", "bank.enc.key")):
        assert cli("profile", "set", "bank", key, value, extra_env=NO_AUTH).exit_code == 0
    result = cli("profile", "set", "bank", "key_file_password", input=KEY_PASSWORD + "\n", extra_env=NO_AUTH)
    assert result.exit_code == 0 and KEY_PASSWORD not in result.output
    stored = (config_dir / "config.ini").read_text()
    assert f"cert_file = {pki['bank.crt']}" in stored  # kept absolute: the profile works from anywhere
    missing = cli("profile", "set", "bank", "key_file", str(tmp_path / "nope.key"), extra_env=NO_AUTH)
    assert missing.exit_code == 2 and "file not found" in missing.output
    monkeypatch.chdir(tmp_path)
    models = cli("--profile", "bank", "models", "--json", extra_env=NO_AUTH)
    assert models.exit_code == 0, models.output
    assert "GigaChat-2" in {m["id"] for m in json.loads(models.stdout)["data"]}
    chat = cli("--profile", "bank", "chat", "Привет", extra_env=NO_AUTH)
    assert chat.exit_code == 0 and chat.stdout.strip()
    by_name = steps(cli("--profile", "bank", "doctor", "--json", extra_env=NO_AUTH))
    assert by_name["auth mode"]["detail"].startswith("mTLS only")
    assert by_name["client certificate"]["verdict"] == "ok"
    assert bank.stats()["oauth_requests"] == 0
    assert all("Authorization" not in r.headers for r in bank.requests)


def test_doctor_reports_the_mode_and_checks_the_pair(cli: Invoke, bank: Emulator, pki: dict[str, str]) -> None:
    result = cli("doctor", "--json", extra_env=cert_env(bank, pki))
    assert result.exit_code == 0, result.output
    by_name = steps(result)
    assert "client certificate identifies the account" in by_name["auth mode"]["detail"]
    assert by_name["credentials"]["verdict"] == "skip" and by_name["scope"]["verdict"] == "skip"
    cert = by_name["client certificate"]
    assert cert["verdict"] == "ok" and "CN=bank-client" in cert["detail"] and "bank.enc.key matches" in cert["detail"]
    assert by_name["TLS API host"]["verdict"] == "ok"
    assert "auth host" not in " ".join(by_name)  # no token is fetched: the OAuth host is not probed
    assert by_name["token"]["verdict"] == "skip" and "mTLS-only" in by_name["token"]["detail"]
    assert by_name["models"]["verdict"] == "ok"
    assert KEY_PASSWORD not in result.output


@pytest.mark.parametrize(("env", "says"), [
    ({"cert": "bank.crt", "key": "other.key", "password": None}, "other.key is not the private key of cert_file"),
    ({"cert": "expired.crt", "key": "expired.key", "password": None}, "expired on 2020-01-01"),
    ({"cert": "bank.crt", "key": "garbage.key", "password": None}, "garbage.key holds no PEM private key"),
    ({"cert": "bank.crt", "key": "bank.enc.key", "password": "not-it"}, "bank.enc.key: wrong key_file_password"),
    ({"cert": "bank.crt", "key": "bank.enc.key", "password": None}, "bank.enc.key is encrypted"),
    ({"cert": "garbage.key", "key": "bank.key", "password": None}, "garbage.key holds no PEM certificate"),
])
def test_doctor_names_the_file_that_is_wrong(cli: Invoke, bank: Emulator, pki: dict[str, str],
                                              env: dict[str, Any], says: str) -> None:
    result = cli("doctor", "--json", extra_env=cert_env(bank, pki, env["cert"], env["key"], env["password"]))
    assert result.exit_code == 1
    by_name = steps(result)
    cert = by_name["client certificate"]
    assert cert["verdict"] == "fail" and says in cert["detail"], cert
    assert cert["fix"]
    assert by_name["token"]["verdict"] == "skip" and "client certificate" in by_name["token"]["detail"]
    assert "not-it" not in result.output
    human = cli("doctor", extra_env=cert_env(bank, pki, env["cert"], env["key"], env["password"]))
    assert says.split(" ")[0] in human.stdout


def test_doctor_an_unmapped_certificate_fails_at_the_api(cli: Invoke, bank: Emulator, pki: dict[str, str]) -> None:
    by_name = steps(cli("doctor", "--json", extra_env=cert_env(bank, pki, "other.crt", "other.key", None)))
    assert by_name["client certificate"]["verdict"] == "ok"
    assert by_name["models"]["verdict"] == "fail" and "other.crt" in by_name["models"]["detail"]
    assert "client certificate" in by_name["models"]["fix"]


def test_functions_convert_command(cli: Invoke, tmp_path: Path) -> None:
    spec = {"openapi": "3.0.0", "paths": {"/weather": {"get": {
        "operationId": "get_weather", "summary": "Погода в городе",
        "parameters": [{"name": "city", "in": "query", "required": True, "schema": {"type": "string"}}]}}}}
    path = tmp_path / "weather.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    table = cli("functions", "convert", str(path))
    assert table.exit_code == 0, table.output
    assert "get_weather" in table.stdout and "city*" in table.stdout
    raw = cli("functions", "convert", str(path), "--json")
    assert json.loads(raw.stdout)["functions"][0]["parameters"]["required"] == ["city"]
    piped = cli("functions", "convert", "-", "--json", input=json.dumps(spec))
    assert json.loads(piped.stdout) == json.loads(raw.stdout)
    assert cli("functions", "convert", str(tmp_path / "missing.json")).exit_code == 2
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"openapi": "3.0.0", "paths": {}}), encoding="utf-8")
    failed = cli("functions", "convert", str(broken))
    assert failed.exit_code == 1 and "no paths" in failed.output


def test_filter_check_command(cli: Invoke) -> None:
    clean = cli("filter", "check", "Как испечь блины?")
    assert clean.exit_code == 0 and clean.stdout.startswith("clean")
    flagged = cli("filter", "check", f"текст {BLACKLIST_TRIGGER}", "--json")
    assert flagged.exit_code == 1 and json.loads(flagged.stdout)["is_profane"] is True
    assert cli("filter", "check", f"текст {BLACKLIST_TRIGGER}", "--no-blacklist").exit_code == 0
