"""CliRunner tests of every per-operation command, the global options and error handling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Invoke

CORP = "GIGACHAT_API_CORP"


def data(result: Any) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- app basics -------------------------------------------------------------------------------

def test_help_lists_every_command(cli: Invoke) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    for name in ("chat", "models", "model", "embed", "tokens", "balance", "files", "image", "ai-check",
                 "validate-function", "batches", "batch", "doctor", "certs", "emulator", "profile"):
        assert name in result.stdout, name


def test_version(cli: Invoke) -> None:
    from gigapy import __version__

    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"gigapy {__version__}"


def test_main_version_fast_path(capsys: pytest.CaptureFixture[str]) -> None:
    from gigapy.cli import main

    main(["--version"])
    assert capsys.readouterr().out.startswith("gigapy ")


def test_subcommand_help(cli: Invoke) -> None:
    for cmd in (["chat"], ["files"], ["files", "upload"], ["batches", "results"], ["batch"], ["profile", "set"]):
        result = cli(*cmd, "--help")
        assert result.exit_code == 0, (cmd, result.output)
        assert "Usage" in result.stdout


# --- models, embeddings, tokens, balance --------------------------------------------------------

def test_models_table_and_json(cli: Invoke) -> None:
    result = cli("models")
    assert result.exit_code == 0
    assert "GigaChat-2-Max" in result.stdout
    payload = data(cli("models", "--json"))
    assert payload["object"] == "list"
    assert any(m["id"] == "Embeddings" for m in payload["data"])


def test_model(cli: Invoke) -> None:
    assert "GigaChat-2-Pro" in cli("model", "GigaChat-2-Pro").stdout
    assert data(cli("model", "GigaChat-2-Pro", "--json"))["id"] == "GigaChat-2-Pro"


def test_unknown_model_is_one_line_error(cli: Invoke) -> None:
    result = cli("model", "NoSuchModel")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: 404")
    assert "Traceback" not in result.output


def test_embed(cli: Invoke) -> None:
    result = cli("embed", "hello", "мир")
    assert result.exit_code == 0
    assert "1024" in result.stdout
    payload = data(cli("embed", "hello", "мир", "--json"))
    assert len(payload["data"]) == 2
    assert len(payload["data"][0]["embedding"]) == 1024


def test_embed_reads_stdin_lines(cli: Invoke) -> None:
    payload = data(cli("embed", "--json", input="one\ntwo\n\nthree\n"))
    assert [d["index"] for d in payload["data"]] == [0, 1, 2]


def test_tokens(cli: Invoke) -> None:
    result = cli("tokens", "hello world")
    assert result.exit_code == 0 and "11" in result.stdout
    payload = data(cli("tokens", "hello world", "Привет", "--json"))
    assert [p["characters"] for p in payload] == [11, 6]


def test_balance(cli: Invoke) -> None:
    assert "GigaChat" in cli("balance").stdout
    payload = data(cli("balance", "--json"))
    assert {b["usage"] for b in payload["balance"]} >= {"GigaChat"}


def test_balance_on_pay_as_you_go_explains(cli: Invoke) -> None:
    result = cli("balance", scope=CORP)
    assert result.exit_code == 1
    assert "403" in result.stderr
    assert "prepaid" in result.stderr


# --- files and images -------------------------------------------------------------------------

def test_files_lifecycle(cli: Invoke, tmp_path: Path) -> None:
    src = tmp_path / "notes.txt"
    src.write_text("hello gigapy\n", encoding="utf-8")
    uploaded = data(cli("files", "upload", str(src), "--json"))
    file_id = uploaded["id"]
    assert uploaded["filename"] == "notes.txt"
    assert file_id in cli("files", "list").stdout
    assert any(f["id"] == file_id for f in data(cli("files", "list", "--json")))
    assert data(cli("files", "info", file_id, "--json"))["bytes"] == src.stat().st_size
    target = tmp_path / "copy.txt"
    result = cli("files", "download", file_id, "-o", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_bytes() == src.read_bytes()
    assert data(cli("files", "delete", file_id, "--json"))["deleted"] is True
    gone = cli("files", "info", file_id)
    assert gone.exit_code == 1 and "404" in gone.stderr


def test_files_upload_missing_file(cli: Invoke, tmp_path: Path) -> None:
    result = cli("files", "upload", str(tmp_path / "nope.txt"))
    assert result.exit_code == 2
    assert "file not found" in result.stderr


def test_image(cli: Invoke, tmp_path: Path) -> None:
    target = tmp_path / "cat.jpg"
    result = cli("image", "Нарисуй рыжего кота", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert target.read_bytes()[:2] == b"\xff\xd8"  # a JPEG
    payload = data(cli("image", "кота", "-o", str(tmp_path / "two.jpg"), "--json"))
    assert payload["images"][0]["bytes"] > 0


def test_image_keeps_an_existing_file_unless_forced(cli: Invoke, emu: Any, tmp_path: Path) -> None:
    target = tmp_path / "cat.jpg"
    target.write_bytes(b"my own photo")
    before = len(emu.requests)
    refused = cli("image", "Нарисуй кота", "-o", str(target))
    assert refused.exit_code == 2 and "--force" in refused.stderr and str(target) in refused.stderr
    assert target.read_bytes() == b"my own photo" and len(emu.requests) == before  # nothing was sent
    forced = cli("image", "Нарисуй кота", "-o", str(target), "--force")
    assert forced.exit_code == 0, forced.output
    assert target.read_bytes()[:2] == b"\xff\xd8"


# --- AI check, functions ------------------------------------------------------------------------

def test_ai_check(cli: Invoke) -> None:
    text = "Таким образом, в целом это важно. Кот сидел на окне."
    result = cli("ai-check", text, scope=CORP)
    assert result.exit_code == 0, result.output
    assert "category" in result.stdout
    payload = data(cli("ai-check", text, "--json", scope=CORP))
    assert payload["characters"] == len(text)


def test_ai_check_on_prepaid_scope_explains(cli: Invoke) -> None:
    result = cli("ai-check", "text")
    assert result.exit_code == 1
    assert "GIGACHAT_API_CORP" in result.stderr


def test_validate_function(cli: Invoke, tmp_path: Path) -> None:
    fn = {"name": "get_weather", "description": "Weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City"}}}}
    path = tmp_path / "fn.json"
    path.write_text(json.dumps(fn), encoding="utf-8")
    result = cli("validate-function", str(path))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("valid")
    assert data(cli("validate-function", "--json", input=json.dumps(fn)))["status"] == 200


def test_validate_function_bad_json(cli: Invoke) -> None:
    result = cli("validate-function", "{not json")
    assert result.exit_code == 2
    assert "not valid JSON" in result.stderr


# --- batches API -------------------------------------------------------------------------------

def test_batches_api(cli: Invoke, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    lines = [{"id": f"r{i}", "request": {"messages": [{"role": "user", "content": f"hi {i}"}]}} for i in range(3)]
    src.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    created = data(cli("batches", "create", str(src), "--json", scope=CORP))
    batch_id = created["id"]
    assert batch_id in cli("batches", "list", scope=CORP).stdout
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = data(cli("batches", "get", batch_id, "--json", scope=CORP))
        if got["status"] == "completed":
            break
        time.sleep(0.1)
    assert got["status"] == "completed"
    table = cli("batches", "results", batch_id, scope=CORP)
    assert table.exit_code == 0 and "r1" in table.stdout
    results = data(cli("batches", "results", batch_id, "--json", scope=CORP))
    assert sorted(r["id"] for r in results) == ["r0", "r1", "r2"]
    out = tmp_path / "out.jsonl"
    written = cli("batches", "results", batch_id, "-o", str(out), scope=CORP)
    assert written.exit_code == 0, written.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(line["id"] for line in lines) == ["r0", "r1", "r2"]
    assert all("choices" in line["response"] for line in lines)
    shown = cli("batches", "get", batch_id, scope=CORP).stdout
    assert batch_id in shown and got["output_file_id"] in shown


@pytest.mark.parametrize("area", ["batches", "files"])
def test_list_tables_keep_every_id_whole_in_80_columns(cli: Invoke, tmp_path: Path, area: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    src = tmp_path / ("in.jsonl" if area == "batches" else "a-rather-long-file-name-for-the-table.txt")
    src.write_text(json.dumps({"id": "a", "request": {"messages": [{"role": "user", "content": "hi"}]}}) + "\n",
                   encoding="utf-8")
    create = ("batches", "create") if area == "batches" else ("files", "upload")
    ids = [data(cli(*create, str(src), "--json", scope=CORP))["id"] for _ in range(3)]
    listed = cli(area, "list", scope=CORP)
    assert listed.exit_code == 0
    assert all(batch_id in listed.stdout for batch_id in ids), listed.stdout
    assert max(len(line) for line in listed.stdout.splitlines()) <= 80


def test_batches_on_prepaid_scope_explains(cli: Invoke) -> None:
    result = cli("batches", "list")
    assert result.exit_code == 1
    assert "GIGACHAT_API_CORP" in result.stderr


# --- global options and errors -------------------------------------------------------------------

def test_no_credentials_points_to_the_emulator(cli: Invoke) -> None:
    result = cli("models", extra_env={"GIGACHAT_CREDENTIALS": None})
    assert result.exit_code == 2
    assert "GIGACHAT_CREDENTIALS" in result.stderr
    assert "gigapy --emulator" in result.stderr
    assert "Traceback" not in result.output


def test_pasted_access_token_is_spotted_and_never_echoed(cli: Invoke) -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlc2lnbmF0dXJl"
    result = cli("models", extra_env={"GIGACHAT_CREDENTIALS": token})
    assert result.exit_code == 2
    assert "access token" in result.stderr
    assert token not in result.output


def test_connection_refused_is_one_line(cli: Invoke) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = cli("--base-url", f"http://127.0.0.1:{port}/api/v1", "--auth-url", f"http://127.0.0.1:{port}/oauth",
                 "--max-retries", "0", "models")
    assert result.exit_code == 3
    assert result.stderr.startswith("error:")
    assert "doctor" in result.stderr
    assert "Traceback" not in result.output


def test_debug_shows_traceback(cli: Invoke) -> None:
    result = cli("--debug", "model", "NoSuchModel")
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert "error: 404" in result.stderr


def test_bad_scope_is_a_usage_error(cli: Invoke) -> None:
    result = cli("--scope", "gigachat_api_pers", "models")
    assert result.exit_code == 2
    assert "GIGACHAT_API_PERS" in result.stderr


def test_global_model_option(cli: Invoke) -> None:
    payload = data(cli("--model", "GigaChat-2-Max", "chat", "Привет", "--json"))
    assert payload["model"].startswith("GigaChat-2-Max")


def test_emulator_flag_needs_no_credentials(cli: Invoke) -> None:
    result = cli("--emulator", "chat", "Привет!", extra_env={"GIGACHAT_CREDENTIALS": None,
                                                             "GIGACHAT_BASE_URL": None, "GIGACHAT_AUTH_URL": None})
    assert result.exit_code == 0, result.output
    assert result.stdout.strip()


def test_emulator_command_help(cli: Invoke) -> None:
    result = cli("emulator", "--help")
    assert result.exit_code == 0
    assert "--faults" in result.stdout and "gigapy emulator" in result.stdout


def test_emulator_command_rejects_bad_options(cli: Invoke) -> None:
    result = cli("emulator", "--faults", "bogus:1")
    assert result.exit_code == 2


def test_emulator_command_serves_until_ctrl_c(subprocess_env: dict[str, str]) -> None:
    import re
    import signal
    import subprocess

    from tests.cli.conftest import GIGAPY

    proc = subprocess.Popen([GIGAPY, "emulator", "--port", "0", "--no-limits"], env=subprocess_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", banner)
        assert match, banner
        url = match.group(0)
        env = {**subprocess_env, "GIGACHAT_BASE_URL": url + "/api/v1", "GIGACHAT_AUTH_URL": url + "/api/v2/oauth"}
        models = subprocess.run([GIGAPY, "models", "--json"], env=env, capture_output=True, text=True, timeout=30,
                                check=False)
        assert models.returncode == 0, models.stderr
        assert "GigaChat-2" in models.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)
    assert proc.returncode == 0
