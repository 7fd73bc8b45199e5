"""The real ``gigapy`` executable in a pseudo-terminal (pexpect): interactive chat, progress bar, Ctrl-C."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pexpect
import pytest

from tests.bulk.test_batch_runner import chat_line, read_ids, write_jsonl
from tests.cli.conftest import GIGAPY

pytestmark = pytest.mark.timeout(60)


def spawn(args: list[str], env: dict[str, str], timeout: float = 20) -> pexpect.spawn:
    return pexpect.spawn(GIGAPY, args, env=env, encoding="utf-8", timeout=timeout, dimensions=(40, 120))


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    return int(child.exitstatus if child.exitstatus is not None else 128 + (child.signalstatus or 0))


def test_interactive_chat_in_a_terminal(emu: Any, subprocess_env: dict[str, str], tmp_path: Path) -> None:
    saved = tmp_path / "conversation.json"
    child = spawn(["chat", "--system", "Ты вежливый помощник"], subprocess_env)
    child.expect("Chat with GigaChat-2")
    child.expect("you> ")
    child.sendline("Привет")
    child.expect("Здравствуйте")
    child.expect("you> ")
    child.sendline("/model GigaChat-2-Max")
    child.expect("model: GigaChat-2-Max")
    child.expect("you> ")
    child.sendline("Как дела?")
    child.expect("you> ")
    child.sendline(f"/save {saved}")
    child.expect("saved 5 messages")
    child.expect("you> ")
    child.sendeof()  # Ctrl-D ends the chat
    assert finish(child) == 0
    conversation = json.loads(saved.read_text(encoding="utf-8"))
    assert [m["role"] for m in conversation["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert conversation["model"] == "GigaChat-2-Max"


def test_ctrl_c_stops_an_answer_but_not_the_chat(emu: Any, subprocess_env: dict[str, str]) -> None:
    emu.faults.set("chunk_delay_ms:300", routes=["chat/completions"])
    child = spawn(["chat"], subprocess_env)
    child.expect("you> ")
    child.sendline("Расскажи длинную историю про кота, который жил на крыше и смотрел на звёзды")
    child.expect_exact("\x1b[?25l")  # the live answer display has started
    child.sendintr()
    child.expect("answer interrupted")
    child.expect("you> ")
    emu.faults.clear()
    child.sendintr()  # Ctrl-C at the prompt drops the line, the chat goes on
    child.expect("Ctrl-D to quit")
    child.expect("you> ")
    child.sendline("/exit")
    assert finish(child) == 0


def test_one_shot_on_a_terminal_renders_markdown(subprocess_env: dict[str, str]) -> None:
    child = spawn(["chat", "Привет!"], subprocess_env)
    child.expect("Здравствуйте")
    assert finish(child) == 0


def test_batch_progress_bar_in_a_terminal(emu: Any, subprocess_env: dict[str, str], tmp_path: Path) -> None:
    emu.faults.set("latency_ms:25", routes=["chat/completions"])
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(120)))
    out = tmp_path / "out.jsonl"
    child = spawn(["batch", str(src), "-o", str(out), "-c", "4"], subprocess_env)
    child.expect(r"━.*\d+/120\S* \S*\d+ failed.*req/s.*tokens.*ETA")
    child.expect("finished: 120/120 done")
    assert finish(child) == 0
    assert len(read_ids(out)) == 120


def test_ctrl_c_stops_a_batch_cleanly_and_a_rerun_resumes(emu: Any, subprocess_env: dict[str, str],
                                                           tmp_path: Path) -> None:
    emu.faults.set("latency_ms:25", routes=["chat/completions"])
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(300)))
    out = tmp_path / "out.jsonl"
    child = spawn(["batch", str(src), "-o", str(out), "-c", "4"], subprocess_env)
    child.expect(r"\b[1-9]\d*/300")  # some answers are in (a Ctrl-C at 0/300 would leave nothing to resume)
    child.sendintr()
    child.expect("stopping")
    child.expect("interrupted: ")
    child.expect("rerun the same command to resume")
    assert finish(child) == 130
    first = read_ids(out)
    assert 0 < len(first) < 300
    emu.faults.clear()
    again = spawn(["batch", str(src), "-o", str(out), "-c", "8"], subprocess_env)
    again.expect("finished: 300/300 done")
    assert finish(again) == 0
    ids = read_ids(out)
    assert len(ids) == len(set(ids)) == 300
