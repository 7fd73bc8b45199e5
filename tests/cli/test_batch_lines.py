"""gigapy.batch, line by line: every kind of input line that cannot be sent, and resume that
trusts only whole result lines (a property test over torn, glued and garbage lines)."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gigapy import InvalidArgumentError
from gigapy._bulk_files import Files, dump_line
from gigapy.batch import _prepare, default_errors_path, run_batch, write_batch_results
from gigapy.types import BatchResult
from tests.cli.test_batch_runner import chat_line, client_for, read_ids, run, write_jsonl


def _msg(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def _line(obj: Any) -> bytes:
    return json.dumps(obj).encode() + b"\n"  # ensure_ascii: a lone surrogate becomes a \\udXXX escape


#: (line bytes, the key it is accounted under, the field named, a word of the reason) per bad line
BAD_LINES: list[tuple[bytes, str | int, str, str]] = [
    (b"{oops\n", "L", "line", "not valid JSON"),
    (_line({"id": 5, "request": _msg("a")}), "L", "id", "non-empty string"),
    (_line({"id": ["x"], "request": _msg("a")}), "L", "id", "an array"),
    (_line({"request": _msg("a")}), "L", "id", "missing"),
    (b"[1, 2]\n", "L", "line", "JSON object"),
    (b"\xff\xfe" + _line({"id": "u", "request": _msg("a")}), "L", "line", "UTF-8"),
    (b'{"id": "n", "request": {"messages": [{"role": "user", "content": "a\x00b"}]}}\n', "L", "line", "NUL"),
    (_line({"id": "s1", "request": _msg("hi \ud83d")}), "s1", "request.messages[0].content", "lone surrogate"),
    (_line({"id": "bad\udc00id", "request": _msg("a")}), "L", "id", "lone surrogate"),
    (_line({"id": "s2", "request": _msg("ok"), "meta": {"note": "\udc00"}}), "s2", "meta.note", "UTF-8"),
    (_line({"id": "s3", "request": {**_msg("ok"), "\ud800k": 1}}), "s3", "request", "a key"),
    (_line({"id": "nr", "request": "hello"}), "nr", "request", "must be an object"),
    (b'{"id": "nan", "request": {"messages": [], "temperature": NaN}}\n', "L", "line", "NaN"),
    (b'{"id": "inf", "request": {"messages": [], "top_p": 1e999}}\n', "L", "line", "too large"),
    (_line({"id": "emb", "request": {"input": ["x"]}}), "emb", "request.messages", "needs \"messages\""),
    (_line({"id": "hot", "request": {**_msg("a"), "temperature": "hot"}}), "hot", "temperature", "number"),
    (b"[" * 100_000 + b"\n", "L", "line", "nested too deeply"),
]


@pytest.mark.hostile("unencodable")
def test_every_kind_of_bad_line_goes_to_the_errors_file_and_nothing_is_sent(emu: Any, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    good = [_line(chat_line(0)), _line(chat_line(1))]
    lines = [good[0], b"\n", *(raw for raw, *_ in BAD_LINES), good[1], _line(chat_line(1, model="Other"))]
    src.write_bytes(b"".join(lines))
    out = tmp_path / "out.jsonl"
    errs = default_errors_path(out)
    emu.reset_stats()
    summary = asyncio.run(run(emu, src, out, concurrency=3))
    assert emu.stats()["api_requests"].get("chat", 0) == 2  # r0 and r1; no bad line, no duplicate
    assert summary.done == 2 and summary.failed == len(BAD_LINES) == summary.rejected
    assert summary.completed_this_run == 2 and summary.total == 2 + len(BAD_LINES)
    assert summary.duplicate_ids == ("r1",)
    assert sorted(read_ids(out)) == ["r0", "r1"]

    records = {r["line"]: r for r in map(json.loads, errs.read_bytes().splitlines())}
    assert len(records) == len(BAD_LINES)
    for lineno, (_, key, name, word) in enumerate(BAD_LINES, start=3):
        record = records[lineno]
        assert record["id"] == (None if key == "L" else key), lineno
        error = record["error"]
        assert error["class"] == "InvalidArgumentError" and error["attempts"] == 0 and error["status"] is None
        assert error["field"] == (f"line {lineno}" if name == "line" else name), (lineno, error)
        assert word in error["message"], (lineno, error["message"])

    before = errs.read_bytes()
    emu.reset_stats()
    again = asyncio.run(run(emu, src, out))  # bad input is checked again (not skipped as a failure), one line each
    assert (again.done, again.failed, again.rejected, again.completed_this_run) == (2, len(BAD_LINES),
                                                                                    len(BAD_LINES), 0)
    assert errs.read_bytes() == before and not emu.stats()["api_requests"].get("chat")

    retried = asyncio.run(run(emu, src, out, retry_failed=True))  # still bad: refused again, one line each
    assert retried.rejected == len(BAD_LINES) and not emu.stats()["api_requests"].get("chat")
    assert sorted(json.loads(r)["line"] for r in errs.read_bytes().splitlines()) == sorted(records)


@pytest.mark.hostile("unencodable")
def test_a_fixed_line_runs_and_its_old_error_goes(emu: Any, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(_line(chat_line(0)) + b"{oops\n" + _line({"id": "s", "request": _msg("cut \ud83d")}))
    out = tmp_path / "out.jsonl"
    assert asyncio.run(run(emu, src, out)).failed == 2
    src.write_bytes(_line(chat_line(0)) + _line(chat_line(1)) + _line({"id": "s", "request": _msg("whole 🙂")}))
    fixed = asyncio.run(run(emu, src, out, retry_failed=True))
    assert fixed.done == 3 and fixed.failed == 0
    assert sorted(read_ids(out)) == ["r0", "r1", "s"]
    assert read_ids(default_errors_path(out)) == []  # line 2 is a good line now: its old record went too
    assert fixed.total == 3


def test_detect_kind_names_a_bad_first_line(tmp_path: Path) -> None:
    from gigapy.batch import detect_kind

    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\xff\n")
    with pytest.raises(InvalidArgumentError, match=r"in\.jsonl:1: not valid UTF-8"):
        detect_kind(src)


@pytest.mark.hostile("unencodable")
def test_lines_that_cannot_be_encoded_are_still_written_as_valid_json() -> None:
    line = dump_line({"id": "r1", "error": {"message": "server said \ud83d"}})
    assert json.loads(line)["error"]["message"] == "server said \ud83d"
    assert line.endswith(b"\n") and line.decode("ascii")


@pytest.mark.hostile("one_lock")
def test_input_that_is_the_output_by_a_hard_link_is_refused(emu: Any, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", [chat_line(0)])
    os.link(src, tmp_path / "out.jsonl")
    with pytest.raises(InvalidArgumentError, match="different files"):
        asyncio.run(run(emu, src, tmp_path / "out.jsonl"))
    assert src.read_bytes() == (tmp_path / "out.jsonl").read_bytes()


def test_a_failing_progress_callback_stops_the_run_and_keeps_what_finished(emu: Any, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(100)))
    out = tmp_path / "out.jsonl"
    emu.faults.set("latency_ms:10", routes=["chat/completions"])
    calls = []

    def progress(p: Any) -> None:
        calls.append(p)
        if len(calls) == 3:
            raise RuntimeError("progress display broke")

    with pytest.raises(RuntimeError, match="progress display broke"):
        asyncio.run(run(emu, src, out, concurrency=2, on_progress=progress, progress_interval=0.02))
    ids = read_ids(out)
    assert len(ids) == len(set(ids)) < 100


def test_write_batch_results_twice_adds_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    results = [BatchResult(id="a", status_code=200, body={"choices": []}),
               BatchResult(id="b", status_code=400, error={"status": 400, "message": "bad"})]
    assert write_batch_results(results, out) == (1, 1)
    assert write_batch_results(results, out) == (0, 0)
    assert read_ids(out) == ["a"] and read_ids(default_errors_path(out)) == ["b"]


# --- resume trusts only whole lines -------------------------------------------------------------

def _record(i: int, text: str) -> bytes:
    return (json.dumps({"id": f"r{i}", "response": {"choices": [{"message": {"content": text}}]}},
                       ensure_ascii=False, separators=(",", ":")) + "\n").encode()


GARBAGE = [b"garbage\n", b"{}\n", b"[1]\n", b'{"id":5,"response":{}}\n', b'{"id":"r0","response":"text"}\n',
           b'{"id":"r1"}\n', b'{"response":{}}\n', b"\xff\xfe\n", b'{"id":"r2","error":{}}\n', b"null\n"]


@st.composite
def damaged_outputs(draw: st.DrawFn) -> tuple[int, bytes, set[str], list[bytes]]:
    """(n, the damaged OUTPUT, the ids with a whole valid line, the lines a repair must set aside)."""
    n = draw(st.integers(1, 10))
    texts = draw(st.lists(st.text(min_size=0, max_size=12), min_size=n, max_size=n))
    pieces: list[tuple[bytes, str | None]] = []  # (line, id when it is an intact result line)
    i = 0
    while i < n:
        line = _record(i, texts[i])
        op = draw(st.sampled_from(["keep", "keep", "tear", "tear_brace", "merge", "garbage", "twice"]))
        if op == "keep":
            pieces.append((line, f"r{i}"))
        elif op == "tear":  # a short write, then a newline from the next write
            pieces.append((line[:draw(st.integers(1, len(line) - 2))] + b"\n", None))
        elif op == "tear_brace":  # torn right after a '}' (looks complete at a glance)
            cuts = [k + 1 for k, c in enumerate(line[:-2]) if c == ord("}")]
            pieces.append((line[:draw(st.sampled_from(cuts))] + b"\n", None) if cuts else (line, f"r{i}"))
        elif op == "merge" and i + 1 < n:  # two records glued without a newline
            pieces.append((line[:-1] + _record(i + 1, texts[i + 1]), None))
            i += 1
        elif op == "garbage":
            pieces.append((draw(st.sampled_from(GARBAGE)), None))
            pieces.append((line, f"r{i}"))
        else:  # "twice", or a merge on the last record: the line, and later the same line again
            pieces.append((line, f"r{i}"))
            pieces.append((line, None))
        i += 1
    data = b"".join(p for p, _ in pieces)
    cut = draw(st.one_of(st.just(len(data)), st.integers(0, len(data))))  # a torn tail (kill -9)
    done: set[str] = set()
    aside: list[bytes] = []
    offset = 0
    for piece, rid in pieces:
        end = offset + len(piece)
        if end <= cut:  # a complete line
            if rid is not None and rid not in done:
                done.add(rid)
            else:
                aside.append(piece)  # garbage, torn, glued, or a second line for an id
        offset = end
    return n, data[:cut], done, aside


@pytest.mark.hostile("whole_lines")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_outputs())
def test_resume_counts_exactly_the_ids_with_a_whole_valid_line(case: tuple[int, bytes, set[str], list[bytes]]) -> None:
    n, data, expected, aside = case
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        src = write_jsonl(d / "in.jsonl", (chat_line(i) for i in range(n)))
        out = d / "out.jsonl"
        out.write_bytes(data)
        with Files(src, out, None) as files:
            job = _prepare(files, "auto", False)
        assert job.done == expected
        assert job.skip == expected and job.total == n
        kept = out.read_bytes()
        assert sorted(read_ids(out)) == sorted(expected)  # every line left is whole and valid, each id once
        assert all(json.loads(line)["response"] for line in kept.splitlines())
        corrupt = d / "out.jsonl.corrupt"
        assert (corrupt.read_bytes() if corrupt.exists() else b"") == b"".join(aside)  # nothing complete is lost
        assert bool(job.warnings) == bool(aside)
        with Files(src, out, None) as files:  # a second look changes nothing
            again = _prepare(files, "auto", False)
        assert again.done == expected and out.read_bytes() == kept and not again.warnings


@pytest.mark.hostile("whole_lines")
def test_resume_after_damage_runs_each_missing_id_once(emu: Any, tmp_path: Path) -> None:
    n = 12
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(n)))
    out = tmp_path / "out.jsonl"
    r = [_record(i, "ok") for i in range(n)]
    # whole r0; r1 glued to r2; garbage; r3 torn after a brace; whole r4, r4 again; r5 torn at the end
    out.write_bytes(r[0] + r[1][:-1] + r[2] + b"garbage\n" + r[3][:r[3].index(b"}") + 1] + b"\n" + r[4] + r[4]
                    + r[5][:20])
    errs = default_errors_path(out)
    err_a = _line({"id": "r6", "error": {"class": "X"}})
    errs.write_bytes(err_a[:-1] + _line({"id": "r7", "error": {"class": "X"}}) + _line({"id": "r8", "error": {}}))
    emu.reset_stats()
    summary = asyncio.run(run(emu, src, out, concurrency=4))
    # whole lines: r0 and r4 in OUTPUT, r8 in the errors file; everything else runs once
    assert summary.skipped == 3 and summary.done == n - 1 and summary.failed == 1
    assert emu.stats()["api_requests"]["chat"] == n - 3
    done, failed = read_ids(out), read_ids(errs)
    assert len(done) == len(set(done)) and sorted(done + failed) == sorted(f"r{i}" for i in range(n))
    assert failed == ["r8"] and len(summary.warnings) == 2


@pytest.mark.hostile("whole_lines")
def test_a_run_on_a_clean_output_rewrites_nothing(emu: Any, tmp_path: Path) -> None:
    src = write_jsonl(tmp_path / "in.jsonl", (chat_line(i) for i in range(5)))
    out = tmp_path / "out.jsonl"
    asyncio.run(run(emu, src, out))
    inode = out.stat().st_ino

    async def again() -> Any:
        client = client_for(emu)
        try:
            return await run_batch(client, src, out)
        finally:
            await client.aclose()

    assert asyncio.run(again()).skipped == 5
    assert out.stat().st_ino == inode and not (tmp_path / "out.jsonl.corrupt").exists()


def test_via_batches_api_submits_no_bad_line(emu: Any, tmp_path: Path) -> None:
    from gigapy.batch import run_via_batches_api

    src = tmp_path / "in.jsonl"
    src.write_bytes(_line(chat_line(0)) + b"{oops\n" + _line({"id": "s", "request": _msg("cut \ud83d")})
                    + _line(chat_line(1)) + _line({"id": "e", "request": {"input": ["x"]}}))
    out = tmp_path / "out.jsonl"

    async def go() -> tuple[Any, int]:
        client = client_for(emu, scope="GIGACHAT_API_CORP")
        try:
            before = {b.id for b in await client.get_batches()}
            summary = await run_via_batches_api(client, src, out, poll_interval=0.05)
            created = [b for b in await client.get_batches() if b.id not in before]
            return summary, sum(b.request_counts.total for b in created)
        finally:
            await client.aclose()

    summary, submitted = asyncio.run(go())
    assert submitted == 2  # r0 and r1 only
    assert (summary.done, summary.failed, summary.rejected, summary.completed_this_run) == (2, 3, 3, 2)
    records = [json.loads(line) for line in default_errors_path(out).read_bytes().splitlines()]
    assert [(r["id"], r["line"]) for r in records] == [(None, 2), ("s", 3), ("e", 5)]
    again = asyncio.run(go())  # the bad lines are checked again (bad input is no failure to skip), none sent
    assert again[1] == 0 and again[0].skipped == 2 and again[0].rejected == 3
    assert [json.loads(line) for line in default_errors_path(out).read_bytes().splitlines()] == records
