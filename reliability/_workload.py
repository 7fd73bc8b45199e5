"""The mixed workload: a seeded plan of operations, the reference answers, and one record per request.

Every request ends in exactly one outcome:

* ``ok``: it succeeded and its content is right (a completion equals the reference answer for
  its prompt, a stream's text equals it, vectors equal the reference vectors, a download
  returns the uploaded bytes);
* ``typed``: it raised a :class:`gigapy.GigaChatError` subclass after its retry budget;
* ``failure``: anything else: another exception type, wrong content, or no end within the
  per-request bound (a hang).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gigapy import AsyncGigaChat, GigaChat, GigaChatError, StreamError

KINDS = ("completion", "stream", "embedding", "upload", "download")
#: Share of operations per kind; a ``file`` operation is two requests (upload, then download).
MIX = (("completion", 0.35), ("stream", 0.30), ("embedding", 0.22), ("file", 0.13))

_TOPICS_RU = ("реки Сибири", "озеро Байкал", "космические станции", "древний Рим", "кофейни у моря",
              "северное сияние", "паровые машины", "горы Кавказа", "шахматные дебюты", "пчёлы и мёд",
              "вулканы Камчатки", "старые маяки")
_TOPICS_EN = ("tidal energy", "medieval castles", "coral reefs", "jazz harmony", "desert plants",
              "bridge engineering", "ancient libraries", "migrating birds", "glass making", "rainforests",
              "chess endgames", "lighthouses")
_ASKS_RU = ("Расскажи коротко про {t}.", "Что интересного можно узнать про {t}? Вопрос {n}.",
            "Объясни школьнику, что такое {t}, в трёх предложениях.")
_ASKS_EN = ("Tell me briefly about {t}.", "What is surprising about {t}? Question {n}.",
            "Explain {t} to a child in three sentences.")


def prompt_pool(seed: int, size: int = 48) -> list[str]:
    """Distinct prompts, half Russian, half English (answers of a few to a dozen chunks)."""
    rng = random.Random(f"prompts-{seed}")
    out: list[str] = []
    for n in range(size):
        topics, asks = (_TOPICS_RU, _ASKS_RU) if n % 2 == 0 else (_TOPICS_EN, _ASKS_EN)
        out.append(rng.choice(asks).format(t=rng.choice(topics), n=n))
    return out


def text_pool(seed: int, size: int = 64) -> list[str]:
    """Short texts to embed."""
    rng = random.Random(f"texts-{seed}")
    words = [w for t in _TOPICS_RU + _TOPICS_EN for w in t.split()]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(2, 12))) + f" #{i}" for i in range(size)]


def file_body(index: int, seed: int) -> bytes:
    """A deterministic text file of 200 B to 24 KiB."""
    rng = random.Random(f"file-{seed}-{index}")
    line = f"файл {index}: строка для проверки целостности / integrity line {rng.random():.12f}\n"
    return (line * max(1, rng.randint(2, 24_000) // len(line.encode()))).encode("utf-8")


@dataclass(frozen=True)
class Op:
    """One planned operation (``file`` = upload + download of the same bytes)."""

    index: int
    kind: str
    prompt: int = 0
    inputs: tuple[int, ...] = ()


def plan(requests: int, seed: int, prompts: int, texts: int) -> list[Op]:
    """Operations adding up to exactly ``requests`` requests, in a seeded random order."""
    rng = random.Random(f"plan-{seed}")
    ops: list[Op] = []
    count = 0
    kinds, weights = zip(*MIX, strict=True)
    while count < requests:
        kind = rng.choices(kinds, weights)[0]
        if kind == "file" and requests - count < 2:
            kind = "completion"
        i = len(ops)
        if kind == "embedding":
            ops.append(Op(i, kind, inputs=tuple(rng.randrange(texts) for _ in range(rng.randint(1, 4)))))
        else:
            ops.append(Op(i, kind, prompt=rng.randrange(prompts)))
        count += 2 if kind == "file" else 1
    return ops


@dataclass
class Reference:
    """What the deterministic emulator answers: text per prompt, vector per text."""

    answers: list[str]
    vectors: list[list[float]]
    requests: int = 0  # requests it took to get them (faults included)


async def _until_ok(fn: Callable[[], Awaitable[Any]], attempts: int = 30) -> tuple[Any, int]:
    last: BaseException | None = None
    for n in range(1, attempts + 1):
        try:
            return await fn(), n
        except GigaChatError as exc:  # faults are on: ask again
            last = exc
            await asyncio.sleep(0.05)
    raise RuntimeError(f"no reference answer after {attempts} attempts: {last}")


async def fetch_reference(client: AsyncGigaChat, prompts: list[str], texts: list[str]) -> Reference:
    """Ask each prompt once as a plain (non-stream) completion and embed each text once; then use
    every other kind of request once, so that first-use costs land before the baseline."""
    answers: list[str] = []
    sent = 0
    for prompt in prompts:
        answer, n = await _until_ok(lambda p=prompt: client.completion(p))  # type: ignore[misc]
        answers.append(answer.text)
        sent += n
    emb, n = await _until_ok(lambda: client.embedding(texts))
    sent += n

    async def stream() -> None:
        async with client.completion_stream(prompts[0]) as s:
            async for _ in s:
                pass

    async def file() -> None:
        uploaded = await client.upload_file(file_body(-1, 0), filename="warm-up.txt", content_type="text/plain")
        await client.download_file(uploaded.id)

    for warm in (stream, file):
        _, n = await _until_ok(warm)
        sent += n
    return Reference(answers, [list(v) for v in emb.vectors], sent)


# --- per-request accounting ------------------------------------------------------------------

@dataclass(slots=True)
class Record:
    """The outcome of one request."""

    kind: str
    client: str = "async"  # async | sync
    outcome: str = "failure"  # ok | typed | failure
    error: str | None = None  # class name (typed) or what went wrong (failure)
    retries: int = 0  # retries the client logged for this request
    refreshes: int = 0  # 401 -> token refresh -> repeat
    retries_taken: int | None = None  # what the result object says (successes)
    started: float = 0.0
    elapsed: float = 0.0
    # streams only
    chunks: int = 0
    role_chunks: int = 0
    duplicated: bool = False  # a chunk delivered twice: text not a prefix, or a second role chunk
    complete: bool = False
    detail: str = ""
    upload_started: float = 0.0  # downloads only: when the upload of this file started


_box: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("chaos_box", default=None)


class ClientLog(logging.Handler):
    """Counts, per request (via a context variable), the retries and refreshes gigapy logs,
    and counts the token fetches the client makes."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.token_fetches: list[float] = []  # monotonic times of the client's token fetches
        self.orphan_retries = 0
        self.token_retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.msg if isinstance(record.msg, str) else ""
        box = _box.get()
        if "failed with" in msg and "retry" in msg:
            url = str(record.args[1]) if isinstance(record.args, tuple) and len(record.args) > 1 else ""
            if url.endswith("/oauth"):  # a token fetch this request happened to lead: not its own retry
                self.token_retries += 1
            elif box is None:
                self.orphan_retries += 1
            else:
                box[0] += 1
        elif "refreshing the access token" in msg:
            if box is not None:
                box[1] += 1
        elif msg.startswith("%s %s -> %d") and len(record.args or ()) > 1:
            url = str(record.args[1])  # type: ignore[index]
            if url.endswith("/oauth"):
                self.token_fetches.append(time.monotonic())

    def __enter__(self) -> ClientLog:
        logger = logging.getLogger("gigapy")
        self._saved = (logger.level, logger.propagate)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logger = logging.getLogger("gigapy")
        logger.removeHandler(self)
        logger.setLevel(self._saved[0])
        logger.propagate = self._saved[1]


class Checked(Exception):
    """Wrong content in a successful response (a failure, never a typed error)."""


async def measured(record: Record, body: Callable[[Record], Awaitable[Any]], bound: float) -> Any:
    """Run one request under the per-request time bound and classify how it ended."""
    box = [0, 0]
    token = _box.set(box)
    record.started = time.monotonic()
    try:
        task = asyncio.ensure_future(body(record))  # the task copies the context: the box is shared
    finally:
        _box.reset(token)
    value = None
    try:
        done, _ = await asyncio.wait({task}, timeout=bound)
        if not done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            record.outcome, record.error = "failure", f"no result within {bound:g} s (hang)"
        else:
            exc = task.exception()
            if exc is None:
                value = task.result()
                record.outcome = "ok"
            elif isinstance(exc, Checked):
                record.outcome, record.error = "failure", f"wrong content: {exc}"
            elif isinstance(exc, GigaChatError):
                record.outcome, record.error = "typed", type(exc).__name__
                record.detail = str(exc)[:300]
            else:
                record.outcome, record.error = "failure", f"untyped {type(exc).__module__}.{type(exc).__name__}: {exc}"
    finally:
        record.elapsed = time.monotonic() - record.started
        record.retries, record.refreshes = box
    return value


def measured_sync(record: Record, body: Callable[[Record], Any], bound: float) -> Any:
    """The sync twin of :func:`measured`: run one request in this thread and classify it. A sync
    call cannot be cancelled, so the client's ``total`` timeout ends it; one that took longer than
    ``bound`` counts as hung all the same."""
    box = [0, 0]
    token = _box.set(box)  # this thread's context: the client logs in this thread
    record.started = time.monotonic()
    value = None
    try:
        value = body(record)
        record.outcome = "ok"
    except Checked as exc:
        record.outcome, record.error = "failure", f"wrong content: {exc}"
    except GigaChatError as exc:
        record.outcome, record.error = "typed", type(exc).__name__
        record.detail = str(exc)[:300]
    except Exception as exc:  # classified: any other exception is a failure
        record.outcome, record.error = "failure", f"untyped {type(exc).__module__}.{type(exc).__name__}: {exc}"
    finally:
        _box.reset(token)
        record.elapsed = time.monotonic() - record.started
        record.retries, record.refreshes = box
    if record.elapsed > bound:
        record.outcome, record.error = "failure", f"no result within {bound:g} s (hang)"
    return value


class StreamCheck:
    """Checks every delivered chunk of one stream against the reference answer as it arrives."""

    def __init__(self, expected: str, record: Record) -> None:
        self.expected = expected
        self.record = record
        self.parts: list[str] = []
        self.text_len = 0

    def chunk(self, chunk: Any) -> None:
        record = self.record
        record.chunks += 1
        for choice in chunk.choices:
            if choice.delta.role:
                record.role_chunks += 1
            piece = choice.delta.content or ""
            if piece:
                if not self.expected.startswith(piece, self.text_len):
                    record.duplicated = True
                self.parts.append(piece)
                self.text_len += len(piece)

    def error(self, exc: StreamError) -> None:
        if exc.chunks_received != self.record.chunks:
            raise Checked(f"StreamError says {exc.chunks_received} chunks, {self.record.chunks} were delivered") \
                from exc

    def finish(self) -> None:
        record = self.record
        if record.role_chunks > 1:
            record.duplicated = True
        if record.duplicated:
            raise Checked(f"a chunk was delivered twice ({record.role_chunks} role chunks; text is not a prefix "
                          "of the answer)")
        text = "".join(self.parts)
        if text != self.expected:
            raise Checked(f"the finished stream's text differs from the reference ({len(text)} vs "
                          f"{len(self.expected)})")


def sync_completion(client: GigaChat, prompt: str, expected: str, record: Record) -> None:
    answer = client.completion(prompt)
    record.retries_taken = answer.retries_taken
    if answer.text != expected:
        raise Checked(f"completion text differs from the reference ({len(answer.text)} vs {len(expected)} chars)")


def sync_stream(client: GigaChat, prompt: str, expected: str, record: Record) -> None:
    check = StreamCheck(expected, record)
    try:
        with client.completion_stream(prompt) as stream:
            record.retries_taken = stream.retries_taken
            for chunk in stream:
                check.chunk(chunk)
        record.complete = True
    except StreamError as exc:
        check.error(exc)
        raise
    finally:
        if record.role_chunks > 1:
            record.duplicated = True
    check.finish()


def sync_embedding(client: GigaChat, texts: list[str], expected: list[list[float]], record: Record) -> None:
    emb = client.embedding(texts)
    record.retries_taken = emb.retries_taken
    vectors = emb.vectors
    if len(vectors) != len(expected) or any(list(a) != b for a, b in zip(vectors, expected, strict=True)):
        raise Checked("vectors differ from the reference")


def sync_upload(client: GigaChat, body: bytes, name: str, out: Uploaded, record: Record) -> None:
    file = client.upload_file(body, filename=name, content_type="text/plain")
    record.retries_taken = file.retries_taken
    if file.bytes not in (None, len(body)):
        raise Checked(f"upload reports {file.bytes} bytes, sent {len(body)}")
    out.file_id = file.id


def sync_download(client: GigaChat, file_id: str, body: bytes, record: Record) -> None:
    data = client.download_file(file_id)
    if data != body:
        raise Checked(f"download returned {len(data)} bytes that differ from the {len(body)} uploaded")


async def do_completion(client: AsyncGigaChat, prompt: str, expected: str, record: Record) -> None:
    answer = await client.completion(prompt)
    record.retries_taken = answer.retries_taken
    if answer.text != expected:
        raise Checked(f"completion text differs from the reference ({len(answer.text)} vs {len(expected)} chars)")


async def do_stream(client: AsyncGigaChat, prompt: str, expected: str, record: Record) -> None:
    """Stream one answer; every delivered chunk is checked against the reference as it arrives."""
    check = StreamCheck(expected, record)
    try:
        async with client.completion_stream(prompt) as stream:
            record.retries_taken = stream.retries_taken
            async for chunk in stream:
                check.chunk(chunk)
        record.complete = True
    except StreamError as exc:
        check.error(exc)
        raise
    finally:
        if record.role_chunks > 1:
            record.duplicated = True
    check.finish()


async def do_embedding(client: AsyncGigaChat, texts: list[str], expected: list[list[float]], record: Record) -> None:
    emb = await client.embedding(texts)
    record.retries_taken = emb.retries_taken
    vectors = emb.vectors
    if len(vectors) != len(expected) or any(list(a) != b for a, b in zip(vectors, expected, strict=True)):
        raise Checked("vectors differ from the reference")


@dataclass
class Uploaded:
    file_id: str | None = None


async def do_upload(client: AsyncGigaChat, body: bytes, name: str, out: Uploaded, record: Record) -> None:
    file = await client.upload_file(body, filename=name, content_type="text/plain")
    record.retries_taken = file.retries_taken
    if file.bytes not in (None, len(body)):
        raise Checked(f"upload reports {file.bytes} bytes, sent {len(body)}")
    out.file_id = file.id


async def do_download(client: AsyncGigaChat, file_id: str, body: bytes, record: Record) -> None:
    data = await client.download_file(file_id)
    if data != body:
        raise Checked(f"download returned {len(data)} bytes that differ from the {len(body)} uploaded")


@dataclass
class Tally:
    """Records as they arrive, plus a little live state for progress lines."""

    records: list[Record] = field(default_factory=list)
    ops_done: int = 0

    def add(self, record: Record) -> None:
        self.records.append(record)
