"""Bulk runs when requests fail: the retry rule for requests that may have reached the model, the
circuit breaker for a service that cannot be reached, every line checked before the first request,
OpenAI batch lines, and bad input that is not a failure."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gigapy.batch import BatchAborted, default_errors_path, detect_kind, run_batch

from .test_batch_runner import chat_line, client_for, read_ids, run, write_jsonl

GIGAPY = str(Path(sys.executable).with_name("gigapy"))


def _chat_requests(emu: Any) -> int:
    return int(emu.stats()["api_requests"].get("chat", 0))


def _closed_port() -> int:
    with socket.socket() as sock:  # bound, then closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GIGAPY, *args], env={**env, "PYTHONDONTWRITEBYTECODE": "1"}, capture_output=True,
                          text=True, timeout=120, check=False)


# --- may have reached the model ------------------------------------------------------------------

@pytest.mark.hostile("no_double")
@pytest.mark.parametrize("fault", ["502", "504", "drop"])
def test_a_line_that_may_have_reached_the_model_is_not_sent_twice(emu: Any, tmp_path: Path, fault: str) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [chat_line(0)])
    out = tmp_path / "out.jsonl"
    emu.reset_stats()
    emu.faults.enqueue(fault, routes=["chat/completions"])
    summary = asyncio.run(run(emu, src, out, retries=5))
    assert _chat_requests(emu) == 1  # one request reached the emulator: neither the client nor the runner re-sent it
    assert summary.failed == 1 and summary.done == 0 and summary.retries == 0
    [record] = [json.loads(line) for line in default_errors_path(out).read_bytes().splitlines()]
    assert record["id"] == "r0" and record["error"]["attempts"] == 1


@pytest.mark.hostile("no_double")
@pytest.mark.parametrize("fault", ["502", "504", "drop"])
def test_opted_in_a_line_is_sent_again(emu: Any, tmp_path: Path, fault: str) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [chat_line(0)])
    out = tmp_path / "out.jsonl"
    emu.reset_stats()
    emu.faults.enqueue(fault, routes=["chat/completions"])
    summary = asyncio.run(run(emu, src, out, client_kw={"max_retries": 0}, retry_non_idempotent=True))
    assert _chat_requests(emu) == 2 and summary.done == 1 and summary.retries == 1  # the runner's own retry
    assert read_ids(out) == ["r0"]


@pytest.mark.hostile("no_double")
def test_the_client_setting_is_the_default_of_a_run(emu: Any, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [chat_line(0)])
    out = tmp_path / "out.jsonl"
    emu.reset_stats()
    emu.faults.enqueue("504", routes=["chat/completions"])
    summary = asyncio.run(run(emu, src, out, client_kw={"retry_non_idempotent": True}))
    assert summary.done == 1 and _chat_requests(emu) == 2


@pytest.mark.hostile("no_double")
def test_cli_504_is_not_resent_by_default_and_is_with_the_flag(
        emu: Any, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [chat_line(0)])
    out = tmp_path / "out.jsonl"
    emu.reset_stats()
    emu.faults.enqueue("504", routes=["chat/completions"])
    first = _cli(["batch", str(src), "-o", str(out), "--no-progress"], subprocess_env)
    assert first.returncode == 1, first.stderr
    assert _chat_requests(emu) == 1 and read_ids(default_errors_path(out)) == ["r0"]
    assert "--retry-failed" in first.stdout

    emu.faults.enqueue("504", routes=["chat/completions"])
    second = _cli(["batch", str(src), "-o", str(out), "--no-progress", "--retry-failed", "--retry-non-idempotent"],
                  subprocess_env)
    assert second.returncode == 0, second.stderr
    assert _chat_requests(emu) == 3 and read_ids(out) == ["r0"] and read_ids(default_errors_path(out)) == []


@pytest.mark.hostile("no_double")
@pytest.mark.parametrize("opt_in", [False, True])
def test_embed_many_does_not_resend_a_batch_after_a_504(emu: Any, make_client: Any, opt_in: bool) -> None:
    from gigapy import InternalServerError

    texts = [f"текст {i}" for i in range(6)]
    emu.reset_stats()
    emu.faults.enqueue("504", routes=["embeddings"])
    client = make_client(max_retries=0, retry_non_idempotent=opt_in)  # only embed_many's own retries act
    if opt_in:
        assert len(client.embed_many(texts, batch_size=6, batch_retries=2)) == 6
        assert emu.stats()["api_requests"]["embeddings"] == 2
    else:
        with pytest.raises(InternalServerError) as info:
            client.embed_many(texts, batch_size=6, batch_retries=2)
        assert info.value.status_code == 504 and emu.stats()["api_requests"]["embeddings"] == 1


@pytest.mark.hostile("no_double")
@pytest.mark.parametrize("opt_in", [False, True])
def test_async_embed_many_does_not_resend_a_batch_after_a_504(emu: Any, opt_in: bool) -> None:
    from gigapy import InternalServerError

    async def go() -> Any:
        client = client_for(emu, max_retries=0, retry_non_idempotent=opt_in)
        try:
            return await client.embed_many(["раз", "два", "три"], batch_size=3, batch_retries=2)
        finally:
            await client.aclose()

    emu.reset_stats()
    emu.faults.enqueue("504", routes=["embeddings"])
    if opt_in:
        assert len(asyncio.run(go())) == 3 and emu.stats()["api_requests"]["embeddings"] == 2
    else:
        with pytest.raises(InternalServerError):
            asyncio.run(go())
        assert emu.stats()["api_requests"]["embeddings"] == 1


def test_embed_many_still_retries_what_never_reached_the_model(emu: Any, make_client: Any) -> None:
    emu.faults.set("retry_after:0")
    emu.faults.enqueue("503", "500", routes=["embeddings"])
    client = make_client(max_retries=0)
    assert len(client.embed_many(["раз", "два"], batch_size=2, batch_retries=2)) == 2
    assert emu.stats()["api_requests"]["embeddings"] == 3


def test_may_have_reached_model() -> None:
    from gigapy import errors

    def status(code: int) -> errors.APIStatusError:
        return errors.InternalServerError("x", status_code=code)

    assert errors.may_have_reached_model(status(502)) and errors.may_have_reached_model(status(504))
    assert not any(errors.may_have_reached_model(status(c)) for c in (500, 503))
    assert not errors.may_have_reached_model(errors.RateLimitError("x", status_code=429))
    assert errors.may_have_reached_model(errors.APIConnectionError("x", sent=True))
    assert not errors.may_have_reached_model(errors.APIConnectionError("x"))
    assert errors.may_have_reached_model(errors.APITimeoutError("x", phase="read"))
    assert not errors.may_have_reached_model(errors.APITimeoutError("x", phase="connect"))
    assert errors.may_have_reached_model(errors.StreamError("x"))
    assert errors.may_have_reached_model(errors.APIResponseValidationError("x"))
    assert not errors.may_have_reached_model(errors.InvalidArgumentError("f", "bad"))


@pytest.mark.hostile("no_double")
def test_the_core_marks_what_was_sent(emu: Any, make_client: Any) -> None:
    from gigapy import APIConnectionError, errors

    emu.faults.enqueue("drop", routes=["chat"])
    with pytest.raises(APIConnectionError) as dropped:
        make_client().completion("Привет")
    assert dropped.value.sent and errors.may_have_reached_model(dropped.value)
    refused = make_client(base_url=f"http://127.0.0.1:{_closed_port()}/api/v1", max_retries=0)
    with pytest.raises(APIConnectionError) as never:
        refused.count_tokens("раз")
    assert not never.value.sent and not errors.may_have_reached_model(never.value)


# --- the circuit breaker ---------------------------------------------------------------------------

def test_an_unreachable_service_stops_the_run_and_a_plain_rerun_continues(emu: Any, tmp_path: Path) -> None:
    n = 200
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(n)))
    out = tmp_path / "out.jsonl"
    dead = {"base_url": f"http://127.0.0.1:{_closed_port()}/api/v1"}
    with pytest.raises(BatchAborted) as caught:
        asyncio.run(run(emu, src, out, concurrency=8, client_kw=dead))
    message = str(caught.value)
    assert "cannot reach the service" in message and "not recorded as failed" in message
    summary = caught.value.summary
    assert summary.failed == 0 and summary.done == 0 and summary.remaining == n
    assert read_ids(default_errors_path(out)) == []  # no id of an unsent request in the errors file

    emu.reset_stats()
    again = asyncio.run(run(emu, src, out, concurrency=8))  # a plain rerun, no --retry-failed
    assert again.done == n and again.failed == 0 and _chat_requests(emu) == n


def test_breaker_stops_after_a_few_requests_not_after_every_line(emu: Any, tmp_path: Path) -> None:
    """The run ends after a handful of connection attempts, however long the input: its time does not
    grow with the number of lines (a relative bound: 2,000 lines cost no more than 4x what 20 cost)."""
    import time

    dead = {"base_url": f"http://127.0.0.1:{_closed_port()}/api/v1", "max_retries": 0}
    times = []
    for n in (20, 2000):
        src = write_jsonl(tmp_path / f"in{n}.jsonl", (chat_line(i) for i in range(n)))
        started = time.monotonic()
        with pytest.raises(BatchAborted) as caught:
            asyncio.run(run(emu, src, tmp_path / f"out{n}.jsonl", concurrency=4, client_kw=dead))
        times.append(time.monotonic() - started)
        assert caught.value.summary.remaining == n
    assert times[1] < 4 * times[0] + 1.0


def test_cli_unreachable_host_exits_with_advice_and_keeps_the_errors_file_clean(
        emu: Any, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(30)))
    out = tmp_path / "out.jsonl"
    env = {**subprocess_env, "GIGACHAT_BASE_URL": f"http://127.0.0.1:{_closed_port()}/api/v1"}
    first = _cli(["batch", str(src), "-o", str(out), "--no-progress"], env)
    assert first.returncode not in (0, 1), first.stderr
    assert "cannot reach the service" in first.stderr and "rerun the same command" in first.stderr
    assert read_ids(default_errors_path(out)) == []
    second = _cli(["batch", str(src), "-o", str(out), "--no-progress", "--json"], subprocess_env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["done"] == 30


# --- every line checked before the first request -----------------------------------------------------

def _msg(**fields: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "Привет"}], **fields}


BAD_REQUESTS = [
    (_msg(temprature=0.5), "temprature", 'did you mean "temperature"'),
    ({"messages": [{"role": "usr", "content": "x"}]}, "messages[0].role", "unknown role"),
    (_msg(top_p=3), "top_p", "top_p"),
    (_msg(max_tokens=-1), "max_tokens", "max_tokens"),
    ({"messages": []}, "messages", "messages"),
]


def test_every_line_is_checked_before_the_first_request(emu: Any, tmp_path: Path) -> None:
    lines = [chat_line(i) for i in range(5)] + [{"id": f"b{i}", "request": req} for i, (req, _, _) in
                                                 enumerate(BAD_REQUESTS)]
    src = write_jsonl(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    # the service is unreachable: the run stops at the first requests, yet the bad lines at the end are reported
    dead = {"base_url": f"http://127.0.0.1:{_closed_port()}/api/v1", "max_retries": 0}
    with pytest.raises(BatchAborted) as caught:
        asyncio.run(run(emu, src, out, concurrency=2, client_kw=dead))
    summary = caught.value.summary
    assert summary.rejected == len(BAD_REQUESTS) and summary.done == 0
    records = {r["id"]: r for r in map(json.loads, default_errors_path(out).read_bytes().splitlines())}
    assert sorted(records) == [f"b{i}" for i in range(len(BAD_REQUESTS))]
    for i, (_, field, word) in enumerate(BAD_REQUESTS):
        error = records[f"b{i}"]["error"]
        assert records[f"b{i}"]["line"] == 6 + i and error["attempts"] == 0
        assert error["field"] == field and word in error["message"], error
    assert any(w.startswith("line 6 not sent: temprature") for w in summary.warnings), summary.warnings


def test_bad_input_is_no_failure_to_retry_and_a_fixed_line_runs_on_a_plain_rerun(
        emu: Any, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [chat_line(0), {"id": "b", "request": _msg(temprature=0.5)}])
    out = tmp_path / "out.jsonl"
    first = _cli(["batch", str(src), "-o", str(out), "--no-progress"], subprocess_env)
    assert first.returncode == 1
    assert "--retry-failed" not in first.stdout  # rerunning cannot help bad input
    assert "1 lines could not be sent" in first.stdout and "line 2 not sent" in first.stdout
    write_jsonl(src, [chat_line(0), {"id": "b", "request": _msg(temperature=0.5)}])
    emu.reset_stats()
    second = _cli(["batch", str(src), "-o", str(out), "--no-progress", "--json"], subprocess_env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["done"] == 2 and _chat_requests(emu) == 1
    assert read_ids(default_errors_path(out)) == []


def test_messages_show_no_python_syntax(emu: Any, tmp_path: Path, subprocess_env: dict[str, str]) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "x", "request": {"prompt": "hi"}}])
    with pytest.raises(Exception) as caught:
        detect_kind(src)
    assert "kind=" not in str(caught.value) and "'" not in str(caught.value)
    proc = _cli(["batch", str(src), "-o", str(tmp_path / "out.jsonl"), "--no-progress"], subprocess_env)
    assert proc.returncode == 2
    assert "chat or embeddings" in proc.stderr and "kind=" not in proc.stderr and "'chat'" not in proc.stderr


# --- OpenAI batch lines ------------------------------------------------------------------------------

def _openai(cid: str, url: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"custom_id": cid, "method": "POST", "url": url, "body": body}


def test_openai_batch_lines_run(emu: Any, tmp_path: Path) -> None:
    chat = [_openai(f"o{i}", "/v1/chat/completions",
                    {"model": "GigaChat", "max_completion_tokens": 50, "temperature": 0.2,
                     "messages": [{"role": "system", "content": "Кратко."},
                                  {"role": "user", "content": [{"type": "text", "text": f"Вопрос {i}"}]}]})
            for i in range(4)]
    src = write_jsonl(tmp_path / "in.jsonl", chat)
    out = tmp_path / "out.jsonl"
    emu.reset_stats()
    summary = asyncio.run(run(emu, src, out))
    assert summary.done == 4 and summary.failed == 0 and _chat_requests(emu) == 4
    first = json.loads(out.read_bytes().splitlines()[0])
    assert first["id"].startswith("o") and first["response"]["choices"][0]["message"]["content"]

    emb = write_jsonl(tmp_path / "emb.jsonl", [_openai("e0", "/v1/embeddings",
                                                       {"model": "Embeddings", "input": ["раз", "два"]})])
    assert detect_kind(emb) == "embeddings"
    done = asyncio.run(run(emu, emb, tmp_path / "emb.out.jsonl"))
    assert done.done == 1


def test_openai_lines_that_cannot_run_say_why(emu: Any, tmp_path: Path) -> None:
    lines = [
        _openai("u", "/v1/responses", {"model": "GigaChat", "input": "hi"}),
        _openai("l", "/v1/chat/completions", {"model": "GigaChat", "messages": [{"role": "user", "content": "x"}],
                                              "logit_bias": {"1": 2}}),
        {"custom_id": "n", "url": "/v1/chat/completions"},
        _openai("ok", "/v1/chat/completions", {"model": "GigaChat", "messages": [{"role": "user", "content": "x"}]}),
    ]
    src = write_jsonl(tmp_path / "in.jsonl", lines)
    out = tmp_path / "out.jsonl"
    summary = asyncio.run(run(emu, src, out))
    assert summary.done == 1 and summary.rejected == 3
    records = {r["id"]: r["error"] for r in map(json.loads, default_errors_path(out).read_bytes().splitlines())}
    assert "only /v1/chat/completions and /v1/embeddings" in records["u"]["message"]
    assert records["l"]["field"] == "body.logit_bias"
    assert records["n"]["field"] == "body" and "missing" in records["n"]["message"]


def test_run_batch_checks_its_new_argument(emu: Any, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [chat_line(0)])

    async def go() -> Any:
        client = client_for(emu)
        try:
            return await run_batch(client, src, tmp_path / "out.jsonl", retry_non_idempotent=False)
        finally:
            await client.aclose()

    assert asyncio.run(go()).done == 1
