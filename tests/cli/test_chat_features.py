"""``gigapy chat``: kept conversations (--continue, /load), --top-p, attachments (-a, /attach),
built-in tools (--tool, v2 API) and reasoning effort; what reaches the emulator is checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pexpect
import pytest

from tests.cli.conftest import GIGAPY, Invoke


def chat_bodies(emu: Any) -> list[tuple[str, dict[str, Any]]]:
    """(path, JSON body) of every chat request the emulator received."""
    return [(r.path, json.loads(r.body)) for r in emu.requests if r.path.endswith("/chat/completions")]


def test_a_conversation_is_kept_and_continue_goes_on_with_it(cli: Invoke, emu: Any, config_dir: Path) -> None:
    first = cli("chat", "Меня зовут Алекс.")
    assert first.exit_code == 0, first.output
    last = config_dir / "chats" / "last.json"
    assert last.stat().st_mode & 0o777 == 0o600
    assert [m["role"] for m in json.loads(last.read_text(encoding="utf-8"))["messages"]] == ["user", "assistant"]
    second = cli("chat", "--continue", "Как меня зовут?")
    assert second.exit_code == 0, second.output
    assert "Алекс" in second.stdout  # the model saw the earlier turn
    sent = chat_bodies(emu)[-1][1]["messages"]
    assert [m["content"] for m in sent][:1] == ["Меня зовут Алекс."] and len(sent) == 3
    assert len(json.loads(last.read_text(encoding="utf-8"))["messages"]) == 4


def test_no_history_keeps_nothing_and_continue_without_one_explains(cli: Invoke, config_dir: Path) -> None:
    assert cli("chat", "--no-history", "Привет").exit_code == 0
    assert not (config_dir / "chats").exists()
    result = cli("chat", "--continue", "Привет")
    assert result.exit_code == 2
    assert "no conversation at" in result.stderr


def test_top_p_and_reasoning_effort_are_sent(cli: Invoke, emu: Any) -> None:
    result = cli("chat", "--top-p", "0.3", "--reasoning-effort", "low", "--json", "Сколько будет 2+2?")
    assert result.exit_code == 0, result.output
    body = chat_bodies(emu)[-1][1]
    assert body["top_p"] == 0.3
    assert "low" in json.dumps(body)  # the reasoning effort, in the service's field


def test_attachments_are_uploaded_and_attached(cli: Invoke, emu: Any, tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("Кодовое слово: ананас.", encoding="utf-8")
    result = cli("chat", "-a", str(note), "Что в файле?")
    assert result.exit_code == 0, result.output
    (message,) = [m for m in chat_bodies(emu)[-1][1]["messages"] if m["role"] == "user"]
    (file_id,) = message["attachments"]
    uploads = [r for r in emu.requests if r.path.endswith("/files") and r.method == "POST"]
    assert len(uploads) == 1 and b"note.txt" in uploads[0].body
    assert file_id in json.dumps(chat_bodies(emu)[-1][1])


@pytest.mark.parametrize(("args", "message"), [
    (["-a", "{tmp}"], "a directory"), (["-a", "{tmp}/none.txt"], "file not found"),
    (["--tool", "web_serch"], "did you mean web_search?"), (["--top-p", "x"], "--top-p"),
])
def test_bad_chat_options_are_refused_before_anything_is_sent(cli: Invoke, emu: Any, tmp_path: Path,
                                                              args: list[str], message: str) -> None:
    result = cli("chat", *(a.format(tmp=tmp_path) for a in args), "Привет")
    assert result.exit_code == 2
    assert message in result.output
    assert chat_bodies(emu) == [] and emu.stats()["api_requests"].get("POST /api/v1/files") is None


def test_a_built_in_tool_uses_the_v2_api(cli: Invoke, emu: Any) -> None:
    result = cli("chat", "--tool", "web_search", "Найди новости про Python")
    assert result.exit_code == 0, result.output
    path, body = chat_bodies(emu)[-1]
    assert "/v2/" in path
    assert "web_search" in json.dumps(body["tools"])
    assert "поиска" in result.stdout  # the emulator's web search answer


def test_load_attach_and_history_in_an_interactive_chat(emu: Any, subprocess_env: dict[str, str],
                                                        tmp_path: Path) -> None:
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps({"model": "GigaChat-2-Max", "messages": [
        {"role": "user", "content": "Меня зовут Ольга."},
        {"role": "assistant", "content": "Приятно познакомиться, Ольга!"}]}, ensure_ascii=False), encoding="utf-8")
    note = tmp_path / "note.txt"
    note.write_text("Кодовое слово: ананас.", encoding="utf-8")
    child = pexpect.spawn(GIGAPY, ["chat"], env=subprocess_env, encoding="utf-8", timeout=30, dimensions=(24, 100))
    child.expect("you> ")
    child.sendline(f"/load {tmp_path / 'nope.json'}")
    child.expect("no conversation at")  # an error, and the chat goes on
    child.expect("you> ")
    child.sendline(f"/load {saved}")
    child.expect("loaded 2 messages \\(model GigaChat-2-Max\\)")
    child.expect("you> ")
    child.sendline(f"/attach {note}")
    child.expect("attached .* to the next message")
    child.expect("you> ")
    child.sendline("Как меня зовут?")
    child.expect("Ольга")
    child.expect("you> ")
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    _, body = chat_bodies(emu)[-1]
    assert body["model"] == "GigaChat-2-Max"
    assert body["messages"][-1]["attachments"]
    config = Path(subprocess_env["GIGAPY_CONFIG_DIR"])
    assert "Как меня зовут?" in (config / "chats" / "input_history").read_text(encoding="utf-8")
    kept = json.loads((config / "chats" / "last.json").read_text(encoding="utf-8"))
    assert len(kept["messages"]) == 4
    # and --continue in a new interactive chat picks it up
    child = pexpect.spawn(GIGAPY, ["chat", "--continue"], env=subprocess_env, encoding="utf-8", timeout=30)
    child.expect("going on with 2 earlier messages")
    child.expect("you> ")
    child.sendline("/exit")
    child.expect(pexpect.EOF)
