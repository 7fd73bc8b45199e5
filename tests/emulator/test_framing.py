"""SSE framing on the wire, read with a plain socket (no HTTP library): one event per write.

The service writes each event as it is generated; clients such as gigachat-node split events on
network reads, so every read boundary must fall on an event boundary and ``data: [DONE]`` must
come in a write of its own. aiohttp sends each ``write()`` as one HTTP chunk, so the chunked
framing shows the writes exactly.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from gigapy.emulator import SCOPE_B2B, Emulator

from .conftest import Api

V1 = {"model": "GigaChat", "messages": [{"role": "user", "content": "Tell me about rivers"}], "stream": True}
V2 = {
    "model": "GigaChat-2-Max",
    "messages": [{"role": "user", "content": [{"text": "Tell me about rivers"}]}],
    "stream": True,
}
HOOKS = {"X-Emulator-Answer-Tokens": "12", "X-Emulator-Chunk-Tokens": "2"}


@dataclass
class Wire:
    """What one raw HTTP exchange looked like: the reads, and the body's chunks with their offsets."""

    head: bytes
    reads: list[bytes]
    chunks: list[bytes]
    #: Raw offsets (from the start of the response) where each chunk's framing ends.
    chunk_ends: list[int]

    @property
    def read_ends(self) -> list[int]:
        ends, total = [], 0
        for data in self.reads:
            total += len(data)
            ends.append(total)
        return ends


def _dechunk(raw: bytes, start: int) -> tuple[list[bytes], list[int]]:
    chunks, ends, pos = [], [], start
    while True:
        line_end = raw.index(b"\r\n", pos)
        size = int(raw[pos:line_end].split(b";")[0], 16)
        data_start = line_end + 2
        pos = data_start + size + 2
        assert raw[data_start + size : pos] == b"\r\n"
        ends.append(pos)
        if size == 0:
            return chunks, ends
        chunks.append(raw[data_start : data_start + size])


def exchange(emu: Emulator, token: str, path: str, body: dict[str, object], headers: dict[str, str]) -> Wire:
    """POST with a hand-written HTTP/1.1 request; record every ``recv`` as it came."""
    payload = json.dumps(body).encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{emu.port}",
        f"Authorization: Bearer {token}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    reads: list[bytes] = []
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            data = sock.recv(1 << 20)
            if not data:
                break
            reads.append(data)
    raw = b"".join(reads)
    head_end = raw.index(b"\r\n\r\n") + 4
    head = raw[:head_end]
    assert b"Transfer-Encoding: chunked" in head, head
    chunks, chunk_ends = _dechunk(raw, head_end)
    assert chunk_ends[-1] == len(raw)
    return Wire(head, reads, chunks, chunk_ends)


def sse_blocks(data: bytes) -> list[bytes]:
    """The complete SSE events in ``data`` (each ends with a blank line)."""
    assert data.endswith(b"\n\n"), data[-40:]
    return [block + b"\n\n" for block in data[:-2].split(b"\n\n")]


@pytest.fixture(scope="module")
def paced() -> Iterator[tuple[Emulator, str]]:
    """An emulator whose model takes 80 ms per 2-token chunk, so the kernel has no reason to coalesce."""
    with Emulator(limits=None, ttft=0.08, tokens_per_second=25) as emu:
        api = Api(emu, SCOPE_B2B)
        yield emu, api.token
        api.close()


@pytest.mark.parametrize(
    ("path", "body"), [("/api/v1/chat/completions", V1), ("/v2/chat/completions", V2)], ids=["v1", "v2"]
)
def test_each_event_is_its_own_write_by_default(emu: Emulator, api: Api, path: str, body: dict[str, object]) -> None:
    wire = exchange(emu, api.token, path, body, HOOKS)
    assert len(wire.chunks) >= 6
    for chunk in wire.chunks:  # one write = one HTTP chunk = exactly one event
        assert len(sse_blocks(chunk)) == 1, chunk
    if path.startswith("/api/v1"):
        assert wire.chunks[-1] == b"data: [DONE]\n\n"
        assert b"[DONE]" not in b"".join(wire.chunks[:-1])
    else:
        assert wire.chunks[-1].startswith(b"event: response.message.done\n")
    # every read ends where a write ended: on an event boundary (or at the end of the headers)
    boundaries = {len(wire.head), *wire.chunk_ends}
    assert set(wire.read_ends) <= boundaries, (wire.read_ends, sorted(boundaries))


@pytest.mark.parametrize(
    ("path", "body"), [("/api/v1/chat/completions", V1), ("/v2/chat/completions", V2)], ids=["v1", "v2"]
)
def test_paced_events_arrive_one_per_read(paced: tuple[Emulator, str], path: str, body: dict[str, object]) -> None:
    emu, token = paced
    wire = exchange(emu, token, path, body, HOOKS)
    assert set(wire.read_ends) <= {len(wire.head), *wire.chunk_ends}
    # event chunks as raw (start, end) ranges; the last range is the terminating 0-size chunk
    starts = [len(wire.head), *wire.chunk_ends[:-1]]
    events = list(zip(starts[:-1], wire.chunk_ends[:-1], strict=True))
    read_starts = [0, *wire.read_ends[:-1]]
    per_read = [
        sum(1 for s, e in events if s < end and e > start)
        for start, end in zip(read_starts, wire.read_ends, strict=True)
    ]
    # TCP_NODELAY and one flushed write per event: reads hold one event each (a reader held up for 80 ms
    # on a loaded machine may see two at once, once)
    assert sum(per_read) == len(events) == len(wire.chunks)
    assert sum(1 for n in per_read if n > 1) <= 1 and max(per_read) <= 2, per_read
    assert sum(1 for n in per_read if n == 1) >= len(events) - 2, per_read


def test_packing_is_an_explicit_option() -> None:
    with Emulator(limits=None, pack_stream=True) as emu:
        api = Api(emu, SCOPE_B2B)
        wire = exchange(emu, api.token, "/api/v1/chat/completions", V1, HOOKS)
        api.close()
    assert len(wire.chunks) == 1  # every event, [DONE] included, in one write
    assert sse_blocks(wire.chunks[0])[-1] == b"data: [DONE]\n\n"
