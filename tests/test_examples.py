"""Every script in examples/ runs as a user runs it: a subprocess whose GIGACHAT_* point at the
session's emulator. The FastAPI example is served by uvicorn on 127.0.0.1 and read with httpx.
"""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gigapy.emulator import DEMO_CREDENTIALS

from .conftest import ROOT

EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))


def example_env(emulator: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIGACHAT_", "GIGAPY_"))}
    env.update(
        GIGACHAT_CREDENTIALS=DEMO_CREDENTIALS,
        GIGACHAT_BASE_URL=emulator.base_url,
        GIGACHAT_AUTH_URL=emulator.auth_url,
        GIGACHAT_SCOPE="GIGACHAT_API_PERS",
        PYTHONIOENCODING="utf-8",
    )
    return env


def run(
    emu: Any, script: str, *args: str, stdin: str | None = None, cwd: Path | None = None, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        input=stdin,
        cwd=cwd,
        env=example_env(emu),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if ok:
        assert proc.returncode == 0, f"{script} {args}\n--- stderr ---\n{proc.stderr}\n--- stdout ---\n{proc.stdout}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_the_examples_are_the_six_promised() -> None:
    assert SCRIPTS == ["agent.py", "bulk_job.py", "chat_bot.py", "extract.py", "fastapi_stream.py", "rag.py"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_each_example_says_what_it_shows_and_how_to_run_it_on_the_emulator(script: str) -> None:
    source = (EXAMPLES / script).read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(source))
    assert doc, script
    assert "Shows:" in doc and "against the emulator" in doc, script
    assert 'eval "$(gigapy emulator --env' in doc and f"examples/{script}" in doc, script
    assert "gigapy._" not in source, "examples use the public API only"


def test_chat_bot_remembers_the_conversation_and_saves_it(emu: Any, tmp_path: Path) -> None:
    history = tmp_path / "history.json"
    first = run(emu, "chat_bot.py", "--history", str(history), stdin="Привет! Меня зовут Аня.\nКак меня зовут?\n")
    replies = [line for line in first.stdout.splitlines() if line.startswith("bot> ")]
    assert len(replies) == 2 and "Аня" in replies[1], first.stdout
    saved = json.loads(history.read_text(encoding="utf-8"))
    assert [m["role"] for m in saved] == ["user", "assistant", "user", "assistant"]
    # the next run picks the conversation up: the model still knows the name
    second = run(emu, "chat_bot.py", "--history", str(history), stdin="Напомни, как меня зовут?\n")
    assert "restored 4 messages" in second.stdout
    assert "Аня" in next(line for line in second.stdout.splitlines() if line.startswith("bot> "))
    sent = [r for r in emu.requests if r.path.endswith("/chat/completions")][-1]
    assert "Аня" in json.dumps(json.loads(sent.body), ensure_ascii=False), "the restored history was sent"
    reset = run(emu, "chat_bot.py", stdin="Меня зовут Аня.\n/reset\nКак меня зовут?\n")
    assert "Аня" not in [line for line in reset.stdout.splitlines() if line.startswith("bot> ")][-1]


def test_rag_finds_the_passage_and_reuses_its_index(emu: Any, tmp_path: Path) -> None:
    index = tmp_path / "index.json"
    questions = {"Какая глубина у Байкала?": 0, "Кто создал язык Python?": 3, "Куда впадает Волга?": 2}
    out = run(emu, "rag.py", "--index", str(index), *questions).stdout
    found = [int(line.split(":")[1].split(",")[0]) for line in out.splitlines() if line.startswith("sources:")]
    assert found == list(questions.values()), out
    assert out.count("\nA: ") == len(questions)
    assert json.loads(index.read_text(encoding="utf-8"))["vectors"]
    emu.reset_stats()
    run(emu, "rag.py", "--index", str(index), "Какая гора самая высокая в России?")
    embedded = [json.loads(r.body)["input"] for r in emu.requests if r.path.endswith("/embeddings")]
    assert len(embedded) == 1 and "гора" in json.dumps(embedded[0], ensure_ascii=False), "only the question"


def test_agent_calls_the_functions_the_question_needs(emu: Any) -> None:
    out = run(emu, "agent.py", "Какая погода в Казани?", "Сколько будет 1500 рублей в юанях?").stdout
    assert "called get_weather({'city': " in out, out
    assert "called convert_currency({'amount': 1500" in out, out
    assert out.count("answer: ") == 2
    sent = [json.loads(r.body) for r in emu.requests if r.path.endswith("/chat/completions")]
    names = {f["name"] for body in sent for f in body.get("functions", [])}
    assert names == {"get_weather", "convert_currency", "local_time"}
    assert any(m["role"] == "function" for body in sent for m in body["messages"]), "results went back"


def test_extract_prints_validated_orders(emu: Any) -> None:
    texts = ["Иван Петров, ivan@example.com, хочет 3 ноутбука к пятнице", "Анна из ООО Ромашка: 10 кресел"]
    out = run(emu, "extract.py", texts[0], "-", stdin=texts[1] + "\n").stdout
    orders = [json.loads(line) for line in out.splitlines()]
    assert len(orders) == 2
    for order in orders:
        assert set(order) == {"customer", "email", "phone", "items", "deadline"}
        assert order["customer"] and order["items"]
        assert all(isinstance(i["name"], str) and i["quantity"] >= 1 for i in order["items"])


def test_bulk_job_runs_everything_once_and_a_rerun_has_nothing_left(emu: Any, tmp_path: Path) -> None:
    first = run(emu, "bulk_job.py", "--count", "40", "--concurrency", "8", cwd=tmp_path)
    assert json.loads(first.stdout.splitlines()[0]) | {"tokens": 0} == {
        "total": 40,
        "done": 40,
        "failed": 0,
        "skipped": 0,
        "tokens": 0,
    }
    lines = (tmp_path / "answers.jsonl").read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == sorted(f"item-{i}" for i in range(40))
    emu.reset_stats()
    second = run(emu, "bulk_job.py", "--count", "40", cwd=tmp_path)
    assert json.loads(second.stdout.splitlines()[0])["skipped"] == 40
    assert not [r for r in emu.requests if r.path.endswith("/chat/completions")], "nothing is sent twice"
    assert len((tmp_path / "answers.jsonl").read_text(encoding="utf-8").splitlines()) == 40


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def fastapi_url(gigachat_emulator: Any) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "fastapi_stream.py"), "--host", "127.0.0.1", "--port", str(port)],
        env=example_env(gigachat_emulator),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                httpx.get(url + "/docs", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
        assert "Traceback" not in err, err


def events(response: httpx.Response) -> list[tuple[str, Any]]:
    """(event name, data) for each server-sent event, read as it arrives."""
    out, name = [], "message"
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            out.append((name, json.loads(line[6:])))
            name = "message"
    return out


def test_fastapi_endpoint_streams_the_answer(fastapi_url: str) -> None:
    with httpx.stream(
        "POST", fastapi_url + "/chat", json={"message": "Расскажи подробно про озеро Байкал"}, timeout=60
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-request-id"]
        got = events(response)
    texts = [data["text"] for name, data in got if name == "message"]
    assert len(texts) > 1, "the answer arrives in pieces, not as one body"
    assert "Байкал" in "".join(texts)
    assert got[-1][0] == "done" and got[-1][1]["finish_reason"] == "stop"


def test_fastapi_endpoint_turns_errors_into_statuses_and_events(fastapi_url: str, gigachat_faults: Any) -> None:
    assert httpx.post(fastapi_url + "/chat", json={"message": ""}, timeout=30).status_code == 422
    gigachat_faults.enqueue("402", routes=["/chat/completions"])
    refused = httpx.post(fastapi_url + "/chat", json={"message": "Привет"}, timeout=30)
    assert refused.status_code == 402 and refused.json()["error"]
    gigachat_faults.enqueue("stream_drop", routes=["/chat/completions"])
    with httpx.stream("POST", fastapi_url + "/chat", json={"message": "Расскажи про Волгу"}, timeout=60) as response:
        assert response.status_code == 200
        got = events(response)
    assert got[-1][0] == "error" and got[-1][1]["message"], got
