"""The SSE decoder: framing rules, any chunking gives the same events, linear time, size limit."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gigapy._core.sse import SSEDecodeError, SSEDecoder, SSEEvent


def decode(*chunks: bytes, max_event_size: int | None = None) -> list[SSEEvent]:
    dec = SSEDecoder() if max_event_size is None else SSEDecoder(max_event_size)
    out: list[SSEEvent] = []
    for chunk in chunks:
        out.extend(dec.feed(chunk))
    return out


def test_recorded_v1_framing() -> None:
    raw = b'data: {"a":1}\n\ndata: {"a":2}\n\ndata: [DONE]\n\n'
    assert [e.data for e in decode(raw)] == [b'{"a":1}', b'{"a":2}', b"[DONE]"]


def test_named_events_and_multiline_data() -> None:
    raw = b"event: response.message.delta\ndata: line1\ndata: line2\n\nevent: done\ndata: x\n\n"
    events = decode(raw)
    assert events == [SSEEvent("response.message.delta", b"line1\nline2"), SSEEvent("done", b"x")]


@pytest.mark.parametrize("eol", [b"\n", b"\r", b"\r\n"])
def test_every_line_ending(eol: bytes) -> None:
    raw = b"event: e" + eol + b"data: 1" + eol + eol + b"data: 2" + eol + eol
    assert decode(raw) == [SSEEvent("e", b"1"), SSEEvent(None, b"2")]


def test_crlf_split_across_chunks_counts_once() -> None:
    # "data: a\r" | "\ndata: b\r\n\r\n" is one event with two data lines, not two events
    assert decode(b"data: a\r", b"\ndata: b\r\n\r\n") == [SSEEvent(None, b"a\nb")]


def test_comments_ids_retry_and_no_space_after_colon() -> None:
    raw = b": keep-alive\nid: 7\nretry: 1500\ndata:x\n\n"
    assert decode(raw) == [SSEEvent(None, b"x", "7", 1500)]


def test_event_without_data_is_not_dispatched() -> None:
    assert decode(b"event: ping\n\n", b"data: y\n\n") == [SSEEvent(None, b"y")]


def test_utf8_character_split_across_chunks() -> None:
    payload = 'data: {"t":"Привет"}\n\n'.encode()
    cut = payload.index("и".encode()) + 1  # in the middle of a two-byte character
    (event,) = decode(payload[:cut], payload[cut:])
    assert event.data.decode() == '{"t":"Привет"}'


def test_flush_dispatches_an_unterminated_last_event() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: 1\n\ndata: [DONE]") == [SSEEvent(None, b"1")]
    assert dec.flush() == [SSEEvent(None, b"[DONE]")]
    assert dec.flush() == []


def test_partial_event_is_reported() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"data: incomplete") == []
    assert dec.has_partial()


def test_max_event_size_is_enforced_for_lines_and_events() -> None:
    with pytest.raises(SSEDecodeError, match="max_event_size"):
        decode(b"data: " + b"x" * 2000, max_event_size=1000)  # one unterminated line
    with pytest.raises(SSEDecodeError, match="max_event_size"):
        decode(*(b"data: " + b"y" * 100 + b"\n" for _ in range(20)), max_event_size=1000)  # many data lines


def test_64_mib_event_decodes_in_linear_time() -> None:
    size = 64 * 1024 * 1024
    chunk = b"a" * 65536

    def run(total: int) -> float:
        dec = SSEDecoder(max_event_size=size * 2)
        start = time.perf_counter()
        dec.feed(b"data: ")
        for _ in range(total // len(chunk)):
            dec.feed(chunk)
        (event,) = dec.feed(b"\n\n")
        assert len(event.data) == total
        return time.perf_counter() - start

    small, big = run(size // 8), run(size)
    # linear: 8x the data costs about 8x the time (quadratic would be ~64x); generous bound
    assert big < small * 24 + 0.5


EVENTS = st.lists(
    st.tuples(
        st.one_of(st.none(), st.sampled_from(["response.message.delta", "response.message.done", "error"])),
        st.lists(
            st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=30),
            min_size=1,
            max_size=3,
        ),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(events=EVENTS, eol=st.sampled_from(["\n", "\r", "\r\n"]), cuts=st.lists(st.integers(0, 10_000), max_size=12))
def test_any_chunking_gives_the_same_events(
    events: list[tuple[str | None, list[str]]], eol: str, cuts: list[int]
) -> None:
    text = ""
    for name, lines in events:
        if name is not None:
            text += f"event: {name}{eol}"
        text += "".join(f"data: {line}{eol}" for line in lines) + eol
    raw = text.encode()
    expected = decode(raw)
    assert [e.data.decode() for e in expected] == ["\n".join(lines) for _, lines in events]
    points = sorted({c % (len(raw) + 1) for c in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)])]
    assert decode(*pieces) == expected
    assert decode(*(raw[i : i + 1] for i in range(len(raw)))) == expected


def reference(raw: bytes) -> list[SSEEvent]:
    """A plain line-at-a-time reading of the same rules, written for the test: the decoder's
    block fast path and its line path must both agree with it."""
    text = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = text.split(b"\n")
    tail = lines.pop()  # an unterminated last line: read as a field at the end of input
    out: list[SSEEvent] = []
    data: list[bytes] = []
    event = ident = last_id = retry = None

    def field(line: bytes) -> None:
        nonlocal event, ident, retry
        if line[:1] == b":":
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
        elif name == b"id" and b"\0" not in value:
            ident = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            retry = int(value)

    def dispatch() -> None:
        nonlocal event, ident, last_id, retry
        if ident is not None:
            last_id = ident
        out.append(SSEEvent(event, b"\n".join(data), last_id, retry))
        data.clear()
        event = ident = retry = None

    for line in lines:
        if line:
            field(line)
        elif data:
            dispatch()
        else:
            event = None
    if tail:
        field(tail)
    if data:
        dispatch()
    return out


LINE = st.one_of(
    st.builds(lambda v: b"data: " + v, st.sampled_from([b"{}", b'{"a":"data: x"}', b"[DONE]", b"", b"x y"])),
    st.sampled_from(
        [
            b"data:no-space",
            b"data",
            b"event: delta",
            b"event:",
            b"id: 7",
            b"id: a\0b",
            b"retry: 1500",
            b"retry: x",
            b": comment",
            b":",
            b"unknown: 1",
            b"data: \xd0\x9f",
        ]
    ),
)
BLOCKS = st.lists(st.lists(LINE, min_size=0, max_size=4), min_size=1, max_size=10)


@settings(max_examples=300, deadline=None)
@given(
    blocks=BLOCKS,
    eol=st.sampled_from([b"\n", b"\r", b"\r\n"]),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
    end=st.sampled_from([b"", b"\n", b"\n\n", b"data: tail"]),
)
def test_every_field_kind_and_chunking_agrees_with_a_line_reading(
    blocks: list[list[bytes]], eol: bytes, cuts: list[int], end: bytes
) -> None:
    raw = b"".join(b"".join(line + eol for line in block) + eol for block in blocks) + end.replace(b"\n", eol)
    expected = reference(raw)
    points = sorted({c % (len(raw) + 1) for c in cuts})
    pieces = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)])]
    dec = SSEDecoder()
    got = [event for piece in pieces for event in dec.feed(piece)] + dec.flush()
    assert got == expected


def test_max_event_size_holds_on_the_block_path() -> None:
    block = b"data: " + b"z" * 999 + b"\n\n"  # 999 bytes of data + its line end fit 1000
    assert [len(e.data) for e in decode(block * 3, max_event_size=1000)] == [999] * 3
    with pytest.raises(SSEDecodeError, match="max_event_size"):
        decode(block + b"data: " + b"z" * 1000 + b"\n\n", max_event_size=1000)


def test_the_last_id_carries_into_plain_blocks_of_later_reads() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"id: 7\ndata: a\n\n") == [SSEEvent(None, b"a", "7")]
    assert dec.feed(b"data: b\n\ndata: c\n\n") == [SSEEvent(None, b"b", "7"), SSEEvent(None, b"c", "7")]
    assert dec.feed(b"retry: 5\n\n") == []  # a retry without data waits for the next event
    assert dec.feed(b"data: d\n\ndata: e\n\n") == [SSEEvent(None, b"d", "7", 5), SSEEvent(None, b"e", "7")]
