"""``gigapy doctor`` verdicts and fixes, and settings profiles."""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path
from typing import Any

import trustme

from gigapy.emulator import SCOPE_PERS, Account, Emulator
from tests.cli.conftest import Invoke

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl"


def steps(result: Any) -> dict[str, dict[str, Any]]:
    payload = json.loads(result.stdout)
    return {s["name"]: s for s in payload["steps"]}


def test_doctor_all_green(cli: Invoke) -> None:
    result = cli("doctor")
    assert result.exit_code == 0, result.output
    assert "all checks passed" in result.stdout
    by_name = steps(cli("doctor", "--json"))
    for name in ("settings", "credentials", "scope", "DNS auth host", "TCP auth host", "token", "models", "balance"):
        assert by_name[name]["verdict"] == "ok", (name, by_name[name])
    assert by_name["TLS auth host"]["verdict"] == "skip"


def test_doctor_on_pay_as_you_go_skips_balance(cli: Invoke) -> None:
    by_name = steps(cli("doctor", "--json", scope="GIGACHAT_API_CORP"))
    assert by_name["balance"]["verdict"] == "skip"
    assert "pay-as-you-go" in by_name["balance"]["detail"]


def test_doctor_spots_a_pasted_access_token(cli: Invoke) -> None:
    result = cli("doctor", extra_env={"GIGACHAT_CREDENTIALS": JWT})
    assert result.exit_code == 1
    assert JWT not in result.output
    by_name = steps(cli("doctor", "--json", extra_env={"GIGACHAT_CREDENTIALS": JWT}))
    assert by_name["credentials"]["verdict"] == "fail"
    assert "access token" in by_name["credentials"]["detail"]
    assert "GIGACHAT_ACCESS_TOKEN" in by_name["credentials"]["fix"]
    assert by_name["token"]["verdict"] == "skip"
    assert by_name["TCP auth host"]["verdict"] == "ok"  # the network is still checked


def test_doctor_spots_a_bare_client_secret(cli: Invoke) -> None:
    by_name = steps(cli("doctor", "--json", extra_env={"GIGACHAT_CREDENTIALS": "c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f"}))
    assert "Client ID or Client Secret" in by_name["credentials"]["detail"]


def test_doctor_turns_oauth_code_7_into_advice() -> None:
    from typer.testing import CliRunner

    from gigapy.cli._app import app

    personal = Account("11111111-2222-4333-8444-555555555555", "secret-of-a-personal-key", frozenset({SCOPE_PERS}))
    with Emulator(limits=None, accounts=(personal,)) as emu:
        env = {"GIGACHAT_CREDENTIALS": personal.credentials, "GIGACHAT_BASE_URL": emu.base_url,
               "GIGACHAT_AUTH_URL": emu.auth_url, "GIGACHAT_SCOPE": "GIGACHAT_API_CORP"}
        result = CliRunner().invoke(app, ["doctor", "--json"], env=env)
    assert result.exit_code == 1
    token = steps(result)["token"]
    assert token["verdict"] == "fail"
    assert "GIGACHAT_API_PERS" in token["fix"] and "scope" in token["fix"]


def test_doctor_wrong_secret_is_code_6(cli: Invoke) -> None:
    wrong = base64.b64encode(b"7f3e0c52-9b1d-4a6e-8c2f-3d5b6a7e8f90:not-the-secret").decode()
    token = steps(cli("doctor", "--json", extra_env={"GIGACHAT_CREDENTIALS": wrong}))["token"]
    assert token["verdict"] == "fail"
    assert "wrong or revoked" in token["fix"]


def test_doctor_unreachable_host(cli: Invoke) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/v1"
    result = cli("--base-url", url, "--auth-url", url, "doctor", "--json", "--timeout", "1")
    assert result.exit_code == 1
    by_name = steps(result)
    assert by_name["TCP auth host"]["verdict"] == "fail" and by_name["TCP auth host"]["fix"]
    assert by_name["token"]["verdict"] == "skip"


def test_doctor_tls_chain_and_the_russian_ca(cli: Invoke, tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    cert, key, ca_pem = tmp_path / "emu.pem", tmp_path / "emu.key", tmp_path / "ca.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_pem))
    with Emulator(limits=None, tls_cert=str(cert), tls_key=str(key)) as emu:
        urls = ["--base-url", emu.base_url, "--auth-url", emu.auth_url]
        failing = cli(*urls, "doctor", "--json")
        assert failing.exit_code == 1
        tls = steps(failing)["TLS auth host"]
        assert tls["verdict"] == "fail" and "gigapy certs install" in tls["fix"]
        assert steps(failing)["Russian Trusted Root CA"]["verdict"] == "warn"
        passing = cli(*urls, "doctor", "--json", extra_env={"GIGACHAT_CA_BUNDLE_FILE": str(ca_pem)})
        assert passing.exit_code == 0, passing.output
        assert steps(passing)["TLS auth host"]["verdict"] == "ok"


# --- profiles ---------------------------------------------------------------------------------

def test_profiles_set_show_list_unset(cli: Invoke, config_dir: Path) -> None:
    from gigapy.emulator import DEMO_CREDENTIALS

    assert "no profiles" in cli("profile", "list").stdout
    assert cli("profile", "set", "work", "scope", "GIGACHAT_API_CORP").exit_code == 0
    result = cli("profile", "set", "work", "credentials", input=DEMO_CREDENTIALS + "\n")
    assert result.exit_code == 0, result.output
    assert DEMO_CREDENTIALS not in result.output  # asked for without echo, shown masked
    shown = cli("profile", "show", "work", "--json")
    assert json.loads(shown.stdout) == {"scope": "GIGACHAT_API_CORP", "credentials": "********"}
    assert DEMO_CREDENTIALS not in cli("profile", "show", "work").stdout
    assert json.loads(cli("profile", "list", "--json").stdout) == ["work"]
    config = config_dir / "config.ini"
    assert config.stat().st_mode & 0o777 == 0o600
    assert cli("profile", "path").stdout.strip() == str(config)
    assert cli("profile", "unset", "work", "scope").exit_code == 0
    assert "scope" not in json.loads(cli("profile", "show", "work", "--json").stdout)
    assert cli("profile", "unset", "work").exit_code == 0
    assert cli("profile", "show", "work").exit_code == 1


def test_profile_set_refuses_a_bad_key_and_bad_credentials(cli: Invoke) -> None:
    assert cli("profile", "set", "x", "colour", "red").exit_code == 2
    bad = cli("profile", "set", "x", "credentials", JWT)
    assert bad.exit_code == 2 and "access token" in bad.stderr and JWT not in bad.output


def test_profile_selects_settings(cli: Invoke) -> None:
    cli("profile", "set", "corp", "scope", "GIGACHAT_API_CORP")
    # the CORP scope has no balance: the profile's scope was used, over GIGACHAT_SCOPE
    assert cli("--profile", "corp", "balance").exit_code == 1
    assert cli("balance").exit_code == 0
    assert cli("balance", extra_env={"GIGAPY_PROFILE": "corp"}).exit_code == 1
    # an explicit option beats the profile
    assert cli("--profile", "corp", "--scope", "GIGACHAT_API_PERS", "balance").exit_code == 0


def test_default_section_is_below_the_environment(cli: Invoke) -> None:
    cli("profile", "set", "default", "scope", "GIGACHAT_API_CORP")
    assert cli("balance").exit_code == 0  # GIGACHAT_SCOPE (PERS) wins over [default]
    assert cli("balance", extra_env={"GIGACHAT_SCOPE": None}).exit_code == 1  # now [default] applies


def test_unknown_profile(cli: Invoke) -> None:
    result = cli("--profile", "nope", "models")
    assert result.exit_code == 2  # a settings mistake
    assert "no profile 'nope'" in result.stderr
