"""Incremental server-sent events decoder: bytes in, events out (sans-IO).

Follows the WHATWG event-stream rules: CR, LF and CRLF line ends (a CRLF split across two
network chunks counts once), multi-line ``data:``, ``:`` comments, ``event:``, ``id:`` and
``retry:`` fields, one optional space after the colon. Data stays ``bytes`` until the
consumer parses it, so a UTF-8 character split across network chunks is never broken.

Work is linear in the input: a partial line is kept as a list of pieces and joined once
when its line end arrives, never rescanned. ``max_event_size`` bounds the memory one event
(or one unterminated line) may take.
"""

from __future__ import annotations

from typing import NamedTuple

from .numbers import MAX_WAIT, server_number

DEFAULT_MAX_EVENT_SIZE = 16 * 1024 * 1024


class SSEEvent(NamedTuple):
    """One dispatched event: ``event`` is None when the server sent no ``event:`` field."""

    event: str | None
    data: bytes
    id: str | None = None
    retry: int | None = None


_new_event = tuple.__new__  # SSEEvent(...) without the generated __new__'s Python frame


class SSEDecodeError(ValueError):
    """The byte stream is not a valid event stream (for example, an event is too large)."""


class SSEDecoder:
    """Feed it network chunks with :meth:`feed`; it returns the events completed so far."""

    __slots__ = (
        "_data",
        "_data_size",
        "_event",
        "_id",
        "_last_id",
        "_pending",
        "_pending_size",
        "_retry",
        "_skip_lf",
        "max_event_size",
    )

    def __init__(self, max_event_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        self.max_event_size = max_event_size
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._skip_lf = False
        self._data: list[bytes] = []
        self._data_size = 0
        self._event: str | None = None
        self._id: str | None = None
        self._last_id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume one chunk of bytes; return the events it completed (maybe none)."""
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if not chunk:
            return []
        if b"\n" not in chunk and b"\r" not in chunk:
            self._pending.append(chunk)
            self._pending_size += len(chunk)
            if self._pending_size + self._data_size > self.max_event_size:
                raise SSEDecodeError(f"event larger than max_event_size ({self.max_event_size} bytes)")
            return []
        if self._pending:
            self._pending.append(chunk)
            buf = b"".join(self._pending)
            self._pending.clear()
            self._pending_size = 0
        else:
            buf = chunk
        if b"\r" in buf or self._data or self._event is not None or self._id is not None or self._retry is not None:
            lines = buf.splitlines()
            last = buf[-1]
            if last == 13:  # a CR at the very end: a LF opening the next chunk belongs to it
                self._skip_lf = True
            elif last != 10:  # the last line is not finished yet
                tail = lines.pop()
                self._pending.append(tail)
                self._pending_size = len(tail)
            events: list[SSEEvent] = []
            self._lines(lines, events)
        else:
            events = self._blocks(buf)
        if self._pending_size + self._data_size > self.max_event_size:
            raise SSEDecodeError(f"event larger than max_event_size ({self.max_event_size} bytes)")
        return events

    def _blocks(self, buf: bytes) -> list[SSEEvent]:
        """The common case: LF line ends and no event half read. Events are the blocks between
        blank lines; a block that is one ``data: `` line becomes an event without a pass per line
        (others, and an ``id:`` or ``retry:`` left by a block without data, go line by line)."""
        blocks = buf.split(b"\n\n")
        rest = blocks.pop()  # after the last blank line: lines of an event not finished yet
        limit = self.max_event_size
        n = len(blocks)
        if (
            n
            and blocks[0][:6] == b"data: "
            and self._id is None
            and self._retry is None
            # no block holds a line end, and every one after the first starts with "data: "
            # (with no other line end, each "\n\n" is a block boundary): checked in C
            and buf.count(b"\n") == 2 * n + rest.count(b"\n")
            and buf.count(b"\n\ndata: ") == n - 1 + (rest[:6] == b"data: ")
        ):
            if max(map(len, blocks)) - 5 > limit:
                raise SSEDecodeError(f"event larger than max_event_size ({limit} bytes)")
            last_id = self._last_id
            events = [_new_event(SSEEvent, (None, block[6:], last_id, None)) for block in blocks]
            blocks = []
        else:
            events = []
        for block in blocks:
            if block[:6] == b"data: " and b"\n" not in block and self._id is None and self._retry is None:
                if len(block) - 5 > limit:
                    raise SSEDecodeError(f"event larger than max_event_size ({limit} bytes)")
                events.append(_new_event(SSEEvent, (None, block[6:], self._last_id, None)))
            else:
                lines = block.split(b"\n")
                lines.append(b"")
                self._lines(lines, events)
        if rest:
            lines = rest.split(b"\n")
            tail = lines.pop()  # b"" when the rest ends with its line end
            if tail:
                self._pending.append(tail)
                self._pending_size = len(tail)
            self._lines(lines, events)
        return events

    def _lines(self, lines: list[bytes], events: list[SSEEvent]) -> None:
        data = self._data
        for line in lines:
            if line[:5] == b"data:":  # the common line, handled here rather than in _field()
                value = line[6:] if line[5:6] == b" " else line[5:]
                data.append(value)
                self._data_size += len(value) + 1
                if self._data_size > self.max_event_size:
                    raise SSEDecodeError(f"event larger than max_event_size ({self.max_event_size} bytes)")
            elif line:
                self._field(line)
            elif data:
                events.append(self._dispatch())
                data = self._data
            else:
                self._event = None

    def _field(self, line: bytes) -> None:
        if line.startswith(b"data:"):
            value = line[6:] if line[5:6] == b" " else line[5:]
            self._data.append(value)
            self._data_size += len(value) + 1
            if self._data_size > self.max_event_size:
                raise SSEDecodeError(f"event larger than max_event_size ({self.max_event_size} bytes)")
            return
        if line[0] == 58:  # ':' comment
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"event":
            self._event = value.decode("utf-8", "replace")
        elif name == b"data":  # "data" with no colon: an empty data line
            self._data.append(b"")
            self._data_size += 1
        elif name == b"id":
            if b"\0" not in value:
                self._id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():  # int() would refuse 5,000 digits: the number guard
            self._retry = int(server_number(value, low=0.0, high=MAX_WAIT * 1000, default=0.0))

    def _dispatch(self) -> SSEEvent:
        data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
        if self._id is not None:
            self._last_id = self._id
        event = _new_event(SSEEvent, (self._event, data, self._last_id, self._retry))
        self._data = []
        self._data_size = 0
        self._event = None
        self._id = None
        self._retry = None
        return event

    def flush(self) -> list[SSEEvent]:
        """End of input: dispatch an event whose final blank line never came.

        (Strict SSE discards it; being lenient keeps a last ``data: [DONE]`` that a
        server sent without the trailing blank line.)
        """
        self._skip_lf = False
        if self._pending:
            line = b"".join(self._pending)
            self._pending.clear()
            self._pending_size = 0
            self._field(line)
        return [self._dispatch()] if self._data else []

    def has_partial(self) -> bool:
        """True when bytes of an unfinished event are buffered (the stream ended mid-event)."""
        return bool(self._pending or self._data)
