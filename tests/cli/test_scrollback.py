"""Long streamed answers in a small real terminal: every line reaches the scrollback once.

The real ``gigapy`` executable runs in a pseudo-terminal (pexpect) of 6 or 8 rows; what it
writes is fed to a VT100 emulator (pyte) that keeps the lines scrolled off the top, so the test
reads the scrollback a user would scroll through, and compares it with the answer rendered once.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pexpect
import pyte
import pytest
from rich.console import Console
from rich.markdown import Markdown

from gigapy import GigaChat
from gigapy.testing import client_settings
from tests.cli.conftest import GIGAPY

pytestmark = [pytest.mark.timeout(90), pytest.mark.serial]

COLS = 40


def scrollback(output: str, rows: int) -> list[str]:
    """Every line of the terminal after ``output``: scrolled off the top, then the screen."""
    screen = pyte.HistoryScreen(COLS, rows, history=100_000, ratio=0.5)
    stream = pyte.Stream(screen)
    stream.feed(output.replace("\n", "\r\n") if "\r\n" not in output else output)
    top = ["".join(line[x].data for x in range(COLS)).rstrip() for line in screen.history.top]
    return [*top, *(line.rstrip() for line in screen.display)]


def rendered(text: str) -> list[str]:
    """The answer as rich renders it once at the terminal's width (non-blank lines)."""
    console = Console(file=io.StringIO(), width=COLS, color_system=None)
    lines = console.render_lines(Markdown(text), console.options, pad=False)
    return [s for s in ("".join(seg.text for seg in line).rstrip() for line in lines) if s.strip()]


def run_in_terminal(args: list[str], env: dict[str, str], rows: int, program: str = GIGAPY) -> tuple[str, int]:
    child = pexpect.spawn(program, args, env=env, encoding="utf-8", timeout=60, dimensions=(rows, COLS))
    child.expect(pexpect.EOF)
    child.close()
    return str(child.before), int(child.exitstatus or 0)


def test_an_answer_taller_than_the_terminal_shows_each_line_once(emu: Any, subprocess_env: dict[str, str]) -> None:
    prompt = "Напиши код на Python для сортировки"
    with GigaChat(**client_settings(emu)) as client:
        answer = client.completion(prompt).text
    expected = rendered(answer)
    assert len(expected) > 8  # taller than the 6-row terminal
    emu.faults.set("chunk_delay_ms:15", routes=["chat/completions"])  # many redraws while it streams
    output, code = run_in_terminal(["chat", prompt], subprocess_env, rows=6)
    assert code == 0
    lines = [line for line in scrollback(output, 6) if line.strip()]
    assert lines.count(expected[0]) == 1
    assert lines == expected


def test_a_60_line_answer_leaves_60_lines_of_scrollback(
    emu: Any, subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    # An exact answer length needs the emulator's X-Emulator-Answer-Tokens header, which the command
    # does not send: the same streaming function runs from a script, in the same kind of terminal.
    script = tmp_path / "long_answer.py"
    script.write_text(
        "import os\n"
        "from gigapy import GigaChat\n"
        "from gigapy.cli._chat import stream_answer\n"
        "with GigaChat(default_headers={'X-Emulator-Answer-Tokens': '550'}) as client:\n"
        "    text = stream_answer(client, [{'role': 'user', 'content': 'Расскажи про реки'}], 'GigaChat-2', {}, True)\n"
        "open(os.environ['ANSWER_FILE'], 'w', encoding='utf-8').write(text)\n",
        encoding="utf-8",
    )
    env = dict(subprocess_env, ANSWER_FILE=str(tmp_path / "answer.txt"))
    emu.faults.set("chunk_delay_ms:5", routes=["chat/completions"])
    output, code = run_in_terminal([str(script)], env, rows=6, program=sys.executable)
    assert code == 0, output
    expected = rendered((tmp_path / "answer.txt").read_text(encoding="utf-8"))
    assert 50 <= len(expected) <= 90
    lines = [line for line in scrollback(output, 6) if line.strip()]
    assert lines == expected  # about 60 lines, each once (the live display alone printed ~1,500)


def test_ctrl_c_mid_answer_leaves_the_partial_answer_once(emu: Any, subprocess_env: dict[str, str]) -> None:
    emu.faults.set("chunk_delay_ms:250", routes=["chat/completions"])
    child = pexpect.spawn(GIGAPY, ["chat"], env=subprocess_env, encoding="utf-8", timeout=30, dimensions=(6, COLS))
    child.logfile_read = log = io.StringIO()
    child.expect("you> ")
    child.sendline("Расскажи подробно про историю Москвы и её улицы")
    child.expect("Москвы»")  # the answer streams, and has wrapped past the first line
    child.expect(r"\S+ \S+ \S+")
    child.sendintr()
    child.expect("answer interrupted")
    child.expect("you> ")
    emu.faults.clear()
    child.sendline("/exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    lines = scrollback(log.getvalue(), 6)
    start = next(i for i, line in enumerate(lines) if line.startswith("ы и её улицы") or "улицы" in line) + 1
    end = next(i for i, line in enumerate(lines) if "answer interrupted" in line)
    partial = [line for line in lines[start:end] if line.strip()]
    assert partial, lines
    assert len(partial) == len(set(partial)), lines  # no line of the partial answer is printed twice
    assert lines[end - 1].strip() or lines[end - 2].strip()  # at most one blank line before the notice
