"""Secrets and bad input in the CLI: no secret in any output or log line (DEBUG on), and bad input is
rejected with one clear line naming what was wrong, before anything is sent."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from gigapy.emulator import DEMO_CREDENTIALS, DEMO_PASSWORD, DEMO_USER

from ..conftest import LogCapture

KEY_PASSWORD = "kp-secret-42"
WRONG_KEY = base64.b64encode(b"7f3e0c52-9b1d-4a6e-8c2f-3d5b6a7e8f90:not-the-secret").decode()


def test_no_secret_in_any_cli_output_or_log(cli: Any, emu: Any, tmp_path: Path, captured: LogCapture) -> None:
    batch_in = tmp_path / "in.jsonl"
    batch_in.write_text(json.dumps({"id": "a", "request": {"messages": [{"role": "user", "content": "Привет"}]}})
                        + "\n", encoding="utf-8")
    long_text = "Искусственный интеллект помогает людям решать сложные задачи каждый день. " * 3
    runs = [
        ("--debug", "chat", "Привет"), ("--debug", "chat", "--json", "Привет"), ("--debug", "models", "--json"),
        ("--debug", "model", "GigaChat-2"), ("--debug", "embed", "текст"), ("--debug", "tokens", "текст"),
        ("--debug", "balance"), ("--debug", "files", "list"),
        ("--debug", "image", "Нарисуй кота", "-o", str(tmp_path / "cat.jpg")),
        ("--debug", "doctor"), ("--debug", "doctor", "--json"),
        ("--debug", "--scope", "GIGACHAT_API_CORP", "ai-check", long_text),
        ("--debug", "--scope", "GIGACHAT_API_CORP", "batches", "list", "--json"),
        ("--debug", "batch", str(batch_in), "-o", str(tmp_path / "out.jsonl")),
        ("profile", "show"),
    ]
    outputs: list[str] = []
    extra = {"GIGAPY_LOG": "debug", "GIGACHAT_KEY_FILE_PASSWORD": KEY_PASSWORD}
    for args in runs:
        result = cli(*args, extra_env=extra)
        outputs += [result.output, repr(result.exception)]
        assert result.exit_code in (0, 1), (args, result.output)
    user_env = {**extra, "GIGACHAT_CREDENTIALS": None, "GIGACHAT_USER": DEMO_USER, "GIGACHAT_PASSWORD": DEMO_PASSWORD}
    for args in (("--debug", "models"), ("--debug", "doctor")):
        outputs.append(cli(*args, extra_env=user_env).output)
    bad = cli("--debug", "models", extra_env={**extra, "GIGACHAT_CREDENTIALS": WRONG_KEY})
    assert bad.exit_code != 0
    outputs.append(bad.output)
    emu.expire_tokens()
    outputs.append(cli("--debug", "models", extra_env=extra).output)

    issued = list(emu.state.tokens._tokens)
    assert issued
    haystack = "\n".join(outputs + captured.lines)
    assert len(captured.lines) > 20  # DEBUG logging was on
    for label, secret in [("credentials", DEMO_CREDENTIALS), ("wrong key", WRONG_KEY), ("password", DEMO_PASSWORD),
                          ("key password", KEY_PASSWORD)] + [("access token", t) for t in issued]:
        assert secret not in haystack, f"{label} leaked"
    assert "Bearer " not in haystack
    assert "Basic " not in haystack


BAD: list[tuple[tuple[str, ...], str]] = [
    (("chat", "--temperature", "0", "Привет"), "temperature"),
    (("chat", "--max-tokens", "0", "Привет"), "max_tokens"),
    (("chat", "--temperature", "hot", "Привет"), "temperature"),
    (("--scope", "GIGACHAT_API_PERSONAL", "models"), "GIGACHAT_API_PERS"),
    (("--base-url", "api.giga.chat/v1", "models"), "base_url"),
    (("--timeout", "0", "models"), "timeout"),
    (("--max-retries", "-1", "models"), "max_retries"),
    (("model", ""), "model"),
    (("embed",), "text"),
    (("files", "upload", "/no/such/file.pdf"), "file"),
    (("files", "info", ""), "file_id"),
    (("files", "download", "x", "-o", "/no/such/dir/x.bin"), "path"),
    (("validate-function", "{not json"), "JSON"),
    (("batch", "/no/such/input.jsonl", "-o", "out.jsonl"), "input"),
    (("batch", "in.jsonl", "-o", "out.jsonl", "--kind", "speech"), "kind"),
    (("batch", "in.jsonl", "-o", "out.jsonl", "--concurrency", "0"), "concurrency"),
    (("--profile", "nope", "models"), "nope"),
]


@pytest.mark.parametrize(("args", "named"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_cli_bad_input(cli: Any, emu: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...],
                       named: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.jsonl").write_text('{"id": "a", "request": {"messages": [{"role": "user", "content": "x"}]}}\n')
    before = len(emu.requests)
    result = cli(*args)
    assert result.exit_code == 2, result.output
    text = result.output.strip()
    assert named in text, text
    assert "Traceback" not in text
    assert len(emu.requests) == before  # nothing was sent


def test_malformed_credentials_get_a_hint(cli: Any, emu: Any) -> None:
    before = len(emu.requests)
    token_like = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"
    result = cli("models", extra_env={"GIGACHAT_CREDENTIALS": token_like})
    assert result.exit_code == 2
    assert "access token" in result.output
    assert token_like not in result.output
    assert len(emu.requests) == before
