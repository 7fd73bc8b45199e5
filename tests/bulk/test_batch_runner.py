"""gigapy.batch as a library: exactly once, resume, errors file, AIMD, fatal errors, stop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from gigapy import AsyncGigaChat, InvalidArgumentError
from gigapy.batch import (
    AdaptiveLimiter,
    BatchAborted,
    BatchProgress,
    default_errors_path,
    detect_kind,
    run_batch,
    run_via_batches_api,
)
from gigapy.emulator import DEMO_CREDENTIALS

from ..conftest import async_wait_until


def chat_line(i: int, model: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"messages": [{"role": "user", "content": f"Вопрос номер {i}"}]}
    if model:
        request["model"] = model
    return {"id": f"r{i}", "request": request}


def write_jsonl(path: Path, items: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items), encoding="utf-8")
    return path


def read_ids(path: Path) -> list[str]:
    if not path.exists():
        return []
    # split on b"\n" only: str.splitlines() also breaks at U+0085 and U+2028, which JSON keeps raw
    return [json.loads(line)["id"] for line in path.read_bytes().split(b"\n") if line.strip()]


def client_for(emu: Any, **kw: Any) -> AsyncGigaChat:
    settings: dict[str, Any] = {"credentials": DEMO_CREDENTIALS, "base_url": emu.base_url, "auth_url": emu.auth_url,
                                "scope": "GIGACHAT_API_PERS"}
    settings.update(kw)
    return AsyncGigaChat(**settings)


async def run(emu: Any, *args: Any, client_kw: dict[str, Any] | None = None, **kw: Any) -> Any:
    client = client_for(emu, **(client_kw or {}))
    try:
        return await run_batch(client, *args, **kw)
    finally:
        await client.aclose()


def test_default_errors_path() -> None:
    assert default_errors_path("out.jsonl") == Path("out.errors.jsonl")
    assert default_errors_path("dir/out.txt") == Path("dir/out.txt.errors.jsonl")


def test_chat_batch_writes_every_answer(emu: Any, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(40)))
    out = tmp_path / "out.jsonl"
    seen: list[BatchProgress] = []
    summary = asyncio.run(run(emu, src, out, concurrency=6, on_progress=seen.append, progress_interval=0.01))
    assert sorted(read_ids(out)) == sorted(f"r{i}" for i in range(40))
    assert summary.done == 40 and summary.failed == 0 and summary.total == 40 and not summary.interrupted
    assert summary.tokens > 0 and summary.requests_per_second > 0
    first = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert list(first) == ["id", "response"]
    assert first["response"]["choices"][0]["message"]["role"] == "assistant"
    assert seen and seen[-1].finished == 40
    assert not default_errors_path(out).exists()


def test_embeddings_batch_is_detected(emu: Any, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", ({"id": f"e{i}", "request": {"input": [f"text {i}", "more"],
                                                                          "model": "Embeddings"}} for i in range(10)))
    assert detect_kind(src) == "embeddings"
    out = tmp_path / "out.jsonl"
    summary = asyncio.run(run(emu, src, out, concurrency=4))
    assert summary.done == 10
    line = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert len(line["response"]["data"]) == 2 and len(line["response"]["data"][0]["embedding"]) == 1024


def test_resume_skips_done_ids_and_repairs_a_torn_line(emu: Any, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(20)))
    out = tmp_path / "out.jsonl"
    done = [{"id": f"r{i}", "response": {"choices": []}} for i in range(8)]
    out.write_bytes(b"".join(json.dumps(d).encode() + b"\n" for d in done) + b'{"id":"r8","response":{"cho')
    emu.reset_stats()
    summary = asyncio.run(run(emu, src, out, concurrency=4))
    ids = read_ids(out)
    assert sorted(ids) == sorted(f"r{i}" for i in range(20))
    assert len(ids) == len(set(ids)) == 20
    assert summary.skipped == 8 and summary.completed_this_run == 12
    chat_calls = emu.stats()["api_requests"].get("chat", 0)
    assert chat_calls == 12


def test_failures_go_to_the_errors_file_and_are_not_rerun(emu: Any, tmp_path: Path) -> None:
    lines = [chat_line(i) for i in range(10)] + [chat_line(100, model="NoSuchModel"), chat_line(101, model="Nope")]
    src = write_jsonl(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    summary = asyncio.run(run(emu, src, out, concurrency=4))
    assert summary.done == 10 and summary.failed == 2
    errors = [json.loads(line) for line in default_errors_path(out).read_text(encoding="utf-8").splitlines()]
    assert sorted(e["id"] for e in errors) == ["r100", "r101"]
    error = errors[0]["error"]
    assert error["class"] == "NotFoundError" and error["status"] == 404 and error["request_id"]
    assert error["attempts"] == 1  # a 404 is not retried
    emu.reset_stats()
    again = asyncio.run(run(emu, src, out, concurrency=4))
    assert again.completed_this_run == 0 and again.failed == 2
    assert not emu.stats()["api_requests"].get("chat")


def test_retry_failed_moves_recovered_ids_out_of_the_errors_file(emu: Any, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(12)))
    out = tmp_path / "out.jsonl"
    emu.faults.enqueue("422", "422", "422", routes=["chat/completions"])  # not retryable: straight to errors
    first = asyncio.run(run(emu, src, out, concurrency=1))
    assert first.failed == 3 and first.done == 9
    errors_file = default_errors_path(out)
    assert len(read_ids(errors_file)) == 3
    emu.faults.enqueue("422", routes=["chat/completions"])  # one of the three fails again
    second = asyncio.run(run(emu, src, out, concurrency=1, retry_failed=True))
    assert second.completed_this_run == 3
    assert second.done == 11 and second.failed == 1
    out_ids, err_ids = read_ids(out), read_ids(errors_file)
    assert len(err_ids) == 1 and err_ids[0] not in out_ids
    assert sorted(out_ids + err_ids) == sorted(f"r{i}" for i in range(12))


def test_transient_failures_are_retried(emu: Any, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(6)))
    out = tmp_path / "out.jsonl"
    emu.faults.enqueue("500", "503", "429", "500html", routes=["chat/completions"])
    summary = asyncio.run(run(emu, src, out, concurrency=4, client_kw={"max_retries": 0}, retries=5))
    assert summary.done == 6 and summary.failed == 0
    assert summary.retries >= 4


def test_aimd_backs_off_on_429_and_stays_under_the_cap(emu: Any, tmp_path: Path) -> None:
    emu.faults.set("429:0.3,retry_after:0,latency_ms:5", routes=["chat/completions"])
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(60)))
    out = tmp_path / "out.jsonl"
    seen: list[BatchProgress] = []
    summary = asyncio.run(run(emu, src, out, concurrency=12, retries=20, client_kw={"max_retries": 0},
                              on_progress=seen.append, progress_interval=0.005))
    assert summary.done == 60 and summary.failed == 0
    assert summary.rate_limited > 0
    limits = [p.concurrency for p in seen]
    assert min(limits) < 12 and max(limits) <= 12
    assert all(p.in_flight <= 12 for p in seen)


def test_adaptive_limiter_unit() -> None:
    async def scenario() -> None:
        limiter = AdaptiveLimiter(8, cooldown=0.0)
        for _ in range(8):
            await limiter.acquire()
        assert limiter.active == 8
        limiter.congestion()
        assert limiter.limit == 4
        for _ in range(8):
            limiter.release()
        for _ in range(100):
            limiter.success()
        assert limiter.limit == 8  # grows back, never above the cap
        limiter.congestion()
        limiter.congestion()
        limiter.congestion()
        limiter.congestion()
        assert limiter.limit == 1  # never below one

        waiter = asyncio.ensure_future(limiter.acquire())
        await limiter.acquire()
        await asyncio.sleep(0)
        assert not waiter.done()
        waiter.cancel()
        await asyncio.gather(waiter, return_exceptions=True)
        limiter.release()
        assert limiter.active == 0

    asyncio.run(scenario())


def test_bad_credentials_abort_without_filling_the_errors_file(emu: Any, tmp_path: Path) -> None:
    import base64

    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(30)))
    out = tmp_path / "out.jsonl"
    wrong = base64.b64encode(b"00000000-0000-0000-0000-000000000000:wrong").decode()
    with pytest.raises(BatchAborted) as caught:
        asyncio.run(run(emu, src, out, client_kw={"credentials": wrong}))
    assert "401" in str(caught.value)
    assert caught.value.summary.done == 0
    assert not default_errors_path(out).exists()


def test_malformed_input_lines_go_to_the_errors_file(emu: Any, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(chat_line(0)) + "\n\n{oops\n" + json.dumps({"id": 5, "request": {}}) + "\n",
                   encoding="utf-8")
    out = tmp_path / "out.jsonl"
    summary = asyncio.run(run(emu, src, out))
    assert summary.done == 1 and summary.failed == 2 and summary.rejected == 2 and summary.total == 3
    errors = [json.loads(line) for line in default_errors_path(out).read_text(encoding="utf-8").splitlines()]
    assert [(e["id"], e["line"], e["error"]["field"]) for e in errors] == [(None, 3, "line 3"), (None, 4, "id")]
    assert errors[0]["error"]["message"].startswith("line 3: not valid JSON")
    assert errors[1]["error"]["message"] == "id: must be a non-empty string; got the number 5"
    assert all(e["error"]["attempts"] == 0 for e in errors)


def test_duplicate_ids_run_once(emu: Any, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [chat_line(1), chat_line(2), chat_line(1)])
    out = tmp_path / "out.jsonl"
    summary = asyncio.run(run(emu, src, out))
    assert summary.total == 2 and summary.duplicate_ids == ("r1",)
    assert sorted(read_ids(out)) == ["r1", "r2"]


def test_corrupt_middle_line_is_set_aside(emu: Any, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [chat_line(1)])
    out = tmp_path / "out.jsonl"
    out.write_text('garbage\n{"id":"r9","response":{}}\n', encoding="utf-8")
    summary = asyncio.run(run(emu, src, out))
    assert summary.done == 1 and len(summary.warnings) == 1 and "line 1" in summary.warnings[0]
    assert read_ids(out) == ["r9", "r1"]
    assert (tmp_path / "out.jsonl.corrupt").read_bytes() == b"garbage\n"


def test_stop_event_saves_what_finished(emu: Any, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(200)))
    out = tmp_path / "out.jsonl"
    emu.faults.set("latency_ms:20", routes=["chat/completions"])

    async def stopped_early() -> Any:
        stop = asyncio.Event()

        def progress(p: BatchProgress) -> None:
            if p.done >= 10:
                stop.set()

        return await run(emu, src, out, concurrency=4, stop=stop, on_progress=progress, progress_interval=0.01)

    first = asyncio.run(stopped_early())
    assert first.interrupted and 10 <= first.done < 200
    assert len(read_ids(out)) == first.done
    emu.faults.clear()
    second = asyncio.run(run(emu, src, out, concurrency=8))
    assert not second.interrupted and second.done == 200
    ids = read_ids(out)
    assert len(ids) == len(set(ids)) == 200


@pytest.mark.hostile("one_lock")
def test_two_runs_on_one_output_are_refused(emu: Any, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(30)))
    out = tmp_path / "out.jsonl"
    emu.faults.set("latency_ms:30", routes=["chat/completions"])

    async def both() -> list[Any]:
        first = asyncio.ensure_future(run(emu, src, out, concurrency=2))

        async def answering() -> bool:  # the first run holds the output: its first answers are written
            return out.exists() and out.stat().st_size > 0

        await async_wait_until(answering)
        second = asyncio.ensure_future(run(emu, src, out, concurrency=2))
        return await asyncio.gather(first, second, return_exceptions=True)

    a, b = asyncio.run(both())
    assert not isinstance(a, BaseException) and a.done == 30
    assert isinstance(b, InvalidArgumentError) and "another run" in str(b)


def test_via_batches_api(emu: Any, tmp_path: Path) -> None:
    lines = [chat_line(i) for i in range(7)] + [chat_line(50, model="NoSuchModel")]
    src = write_jsonl(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    out.write_text(json.dumps({"id": "r0", "response": {"choices": []}}) + "\n", encoding="utf-8")
    seen: list[BatchProgress] = []

    async def go() -> Any:
        client = client_for(emu, scope="GIGACHAT_API_CORP")
        try:
            return await run_via_batches_api(client, src, out, batch_size=3, poll_interval=0.05,
                                             on_progress=seen.append)
        finally:
            await client.aclose()

    summary = asyncio.run(go())
    assert summary.done == 7 and summary.failed == 1 and summary.skipped == 1
    assert sorted(read_ids(out)) == sorted(f"r{i}" for i in range(7))
    assert read_ids(default_errors_path(out)) == ["r50"]
    assert seen and seen[-1].finished == 8
    assert not (tmp_path / ".out.jsonl.batches.json").exists()
    batches = [r for r in emu.requests if r.path.endswith("/batches") and r.method == "POST"]
    assert len(batches) == 3  # 7 pending lines in batches of 3


def test_via_batches_api_resumes_polling_without_resubmitting(emu: Any, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(4)))
    out = tmp_path / "out.jsonl"

    async def go(max_wait: float | None) -> Any:
        client = client_for(emu, scope="GIGACHAT_API_CORP")
        try:
            return await run_via_batches_api(client, src, out, poll_interval=0.05, max_wait=max_wait)
        finally:
            await client.aclose()

    first = asyncio.run(go(0.01))  # gives up before the service finishes
    assert first.interrupted
    assert (tmp_path / ".out.jsonl.batches.json").exists()
    emu.reset_stats()
    second = asyncio.run(go(None))
    assert second.done == 4 and not second.interrupted
    assert not [r for r in emu.requests if r.path.endswith("/batches") and r.method == "POST"]
    assert sorted(read_ids(out)) == ["r0", "r1", "r2", "r3"]
