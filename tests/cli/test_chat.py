"""``gigapy chat`` through CliRunner: one-shot, JSON, stdin, and the interactive commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.cli.conftest import Invoke


def test_one_shot_streams_plain_text(cli: Invoke, emu: Any) -> None:
    result = cli("chat", "Привет!")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip()
    assert "\x1b[" not in result.stdout  # piped: plain text, no terminal codes
    chat = [r for r in emu.requests if r.path.endswith("/chat/completions")]
    assert chat and json.loads(chat[-1].body)["stream"] is True


def test_json_prints_the_final_completion(cli: Invoke) -> None:
    result = cli("chat", "Привет!", "--json", "--temperature", "0.5", "--max-tokens", "50")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["choices"][0]["message"]["role"] == "assistant"
    assert payload["usage"]["total_tokens"] > 0


def test_system_prompt_and_model_are_sent(cli: Invoke, emu: Any) -> None:
    result = cli("chat", "Привет", "--system", "Отвечай кратко", "-m", "GigaChat-2-Pro")
    assert result.exit_code == 0, result.output
    body = json.loads([r for r in emu.requests if r.path.endswith("/chat/completions")][-1].body)
    assert body["model"] == "GigaChat-2-Pro"
    assert body["messages"][0] == {"role": "system", "content": "Отвечай кратко"}


def test_prompt_from_stdin(cli: Invoke, emu: Any) -> None:
    result = cli("chat", input="Сколько будет 2+2?\n")
    assert result.exit_code == 0, result.output
    body = json.loads([r for r in emu.requests if r.path.endswith("/chat/completions")][-1].body)
    assert body["messages"][-1]["content"].strip() == "Сколько будет 2+2?"


def test_prompt_and_stdin_are_combined(cli: Invoke, emu: Any) -> None:
    result = cli("chat", "Кратко перескажи:", input="Длинный текст про кота.")
    assert result.exit_code == 0, result.output
    body = json.loads([r for r in emu.requests if r.path.endswith("/chat/completions")][-1].body)
    assert body["messages"][-1]["content"] == "Кратко перескажи:\n\nДлинный текст про кота."


def test_no_prompt_is_a_usage_error(cli: Invoke) -> None:
    result = cli("chat", input="")
    assert result.exit_code == 2
    assert "no prompt" in result.stderr


def test_bad_temperature_is_named(cli: Invoke) -> None:
    result = cli("chat", "hi", "--temperature", "0")
    assert result.exit_code == 2
    assert "temperature" in result.stderr


def test_interactive_commands(cli: Invoke, emu: Any, tmp_path: Path) -> None:
    saved = tmp_path / "chat.json"
    script = "\n".join([
        "/help",
        "/system Ты кот",
        "/model GigaChat-2-Max",
        "Привет",
        "Как дела?",
        f"/save {saved}",
        "/reset",
        "/system",
        "/model",
        "/bogus",
        "/exit",
    ]) + "\n"
    result = cli("chat", "-i", input=script)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "/reset" in out and "model: GigaChat-2-Max" in out and "unknown command /bogus" in out
    conversation = json.loads(saved.read_text(encoding="utf-8"))
    assert conversation["model"] == "GigaChat-2-Max"
    roles = [m["role"] for m in conversation["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant"]
    assert conversation["messages"][0]["content"] == "Ты кот"
    chat = [json.loads(r.body) for r in emu.requests if r.path.endswith("/chat/completions")]
    assert len(chat[-1]["messages"]) == 4  # the second question carried the history
    sessions = {r.headers.get("X-Session-ID") for r in emu.requests if r.path.endswith("/chat/completions")}
    assert len(sessions) == 1 and None not in sessions  # one session id: the prompt cache is reused
    assert "system prompt: Ты кот" in out  # /reset kept the system prompt


def test_interactive_error_does_not_end_the_chat(cli: Invoke) -> None:
    script = "/model NoSuchModel\nПривет\n/model GigaChat-2\nПривет\n"
    result = cli("chat", "-i", input=script)
    assert result.exit_code == 0, result.output
    assert "error: 404" in result.stdout
    assert result.stdout.count("you> ") >= 4


def test_interactive_json_is_refused(cli: Invoke) -> None:
    result = cli("chat", "-i", "--json", input="")
    assert result.exit_code == 2


def test_reasoning_and_session_flags(cli: Invoke, emu: Any) -> None:
    result = cli("chat", "Почему небо голубое?", "--reasoning-effort", "high", "--reasoning-max-tokens", "20",
                 "--session-id", "cli-session", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["choices"][0]["message"]["reasoning_content"]
    request = [r for r in emu.requests if r.path.endswith("/chat/completions")][-1]
    body = json.loads(request.body)
    assert (body["reasoning_effort"], body["reasoning_max_tokens"]) == ("high", 20)
    assert request.headers["X-Session-ID"] == "cli-session"
    streamed = cli("chat", "Привет", "--reasoning-effort", "low", "--session-id", "cli-session")
    assert streamed.exit_code == 0, streamed.output
    request = [r for r in emu.requests if r.path.endswith("/chat/completions")][-1]
    assert request.headers["X-Session-ID"] == "cli-session" and json.loads(request.body)["stream"] is True


def test_session_id_is_kept_across_reset(cli: Invoke, emu: Any) -> None:
    result = cli("chat", "-i", "--session-id", "fixed-1", input="Привет\n/reset\nЕщё раз\n/exit\n")
    assert result.exit_code == 0, result.output
    sessions = [r.headers.get("X-Session-ID") for r in emu.requests if r.path.endswith("/chat/completions")][-2:]
    assert sessions == ["fixed-1", "fixed-1"]
    env_run = cli("chat", "Привет", extra_env={"GIGACHAT_SESSION_ID": "from-env"})
    assert env_run.exit_code == 0, env_run.output
    assert [r for r in emu.requests if r.path.endswith("/chat/completions")][-1].headers["X-Session-ID"] == "from-env"


def test_bad_reasoning_budget_is_named(cli: Invoke) -> None:
    result = cli("chat", "hi", "--reasoning-max-tokens", "0")
    assert result.exit_code == 2
    assert "reasoning_max_tokens" in result.stderr
