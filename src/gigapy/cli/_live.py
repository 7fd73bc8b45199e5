"""Streamed markdown on a terminal that keeps the scrollback clean.

A live display taller than the terminal cannot be redrawn in place: the lines that scrolled off
are printed again on every refresh (an 8-line answer in a 6-row terminal repeats its first line
a dozen times). ``MarkdownStream`` prints each finished markdown block once, as ordinary output,
and live-renders only the block still being written, cut to what fits on the screen: the lines
of that block that no longer fit are printed once too. The live part is therefore never taller
than the terminal, and every line of the answer reaches the scrollback exactly once.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.segment import Segment


def split_blocks(text: str) -> tuple[list[str], str]:
    """(finished top-level markdown blocks, the unfinished tail) of ``text``.

    Every top-level block but the last is finished: later text cannot change it. The last one
    may still grow (a paragraph, a list, a code fence not closed yet).
    """
    from markdown_it import MarkdownIt

    lines = text.splitlines(keepends=True)
    starts = [tok.map[0] for tok in MarkdownIt("commonmark").enable("table").parse(text)
              if tok.level == 0 and tok.map is not None and tok.nesting >= 0]
    if len(starts) < 2:
        return [], text
    blocks = ["".join(lines[a:b]) for a, b in itertools.pairwise(starts)]
    return blocks, "".join(lines[starts[-1]:])


class MarkdownStream:
    """Render a growing markdown text on ``console``: finished parts once, the tail live."""

    def __init__(self, console: Console, refresh_per_second: float = 12.0) -> None:
        from rich.live import Live

        self.console = console
        self.interval = 1.0 / refresh_per_second
        self.text = ""
        self._offset = 0  #: characters of ``text`` already printed as finished blocks
        self._blocks = 0  #: finished blocks printed
        self._committed = 0  #: lines of the current tail block already printed for good
        self._last = 0.0
        self._live = Live(console=console, auto_refresh=False, transient=False, vertical_overflow="crop",
                          redirect_stdout=False, redirect_stderr=False)

    def __enter__(self) -> MarkdownStream:
        self._echo = _quiet_keyboard()
        self._drawing = False
        self._pending = False
        self._sigint: Any = None
        with contextlib.suppress(ValueError):  # only the main thread may handle signals
            self._sigint = signal.signal(signal.SIGINT, self._on_sigint)
        self._live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._drawing = True  # also when interrupted: what is on the screen stays, nothing is printed twice
        try:
            try:
                self._flush(final=exc[0] is None)
            finally:
                self._live.stop()
        finally:
            self._echo()
            if self._sigint is not None:
                signal.signal(signal.SIGINT, self._sigint)

    def update(self, text: str) -> None:
        """The whole text so far (redrawn at most ``refresh_per_second`` times a second)."""
        self.text = text
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._drawing = True
            try:
                self._flush(final=False)
            finally:
                self._drawing = False
            if self._pending:
                self._pending = False
                raise KeyboardInterrupt

    def _on_sigint(self, signum: int, frame: Any) -> None:
        """Ctrl-C: stop at once while waiting for the answer, or right after a redraw.

        A KeyboardInterrupt in the middle of a redraw leaves its output in rich's buffer, and the
        next draw prints it again: the interrupt waits until the redraw is complete.
        """
        if self._drawing:
            self._pending = True
            return
        raise KeyboardInterrupt

    # --- rendering ---------------------------------------------------------------------------

    def _render(self, markdown: str) -> list[list[Segment]]:
        from rich.markdown import Markdown

        options = self.console.options
        return self.console.render_lines(Markdown(markdown), options, pad=False)

    def _tail_lines(self, markdown: str) -> list[list[Segment]]:
        if not markdown.strip():
            return []
        lines = self._render(markdown)
        while lines and _blank(lines[0]):
            lines.pop(0)
        while lines and _blank(lines[-1]):
            lines.pop()
        return [[], *lines] if self._blocks else lines  # one blank line between blocks, as rich puts

    def _print(self, lines: list[list[Segment]]) -> None:
        if lines:
            self.console.print(_Lines(lines, end=True), soft_wrap=True)

    def _show(self, lines: list[list[Segment]]) -> None:
        self._live.update(_Lines(lines), refresh=True)

    def _flush(self, final: bool) -> None:
        blocks, _ = split_blocks(self.text[self._offset:])
        for block in blocks:
            self._print(self._tail_lines(block)[self._committed:])
            self._committed = 0
            self._blocks += 1
            self._offset += len(block)
        lines = self._tail_lines(self.text[self._offset:])
        if not self.console.is_terminal:  # no live display: the tail is printed once, at the end
            self._show(lines if final else [])
            return
        # the live part must fit on the screen: lines above it are printed once and left alone
        keep = max(1, self.console.size.height - 2)
        if len(lines) - self._committed > keep:
            cut = len(lines) - keep
            self._print(lines[self._committed:cut])
            self._committed = cut
        self._show(lines[self._committed:])


def _quiet_keyboard() -> Any:
    """Stop the terminal echoing keys (``^C``, type-ahead) into the live display; returns the undo.

    An echoed ``^C`` at the end of a full-width line moves the cursor to a new line, and the
    redraw then leaves the top line of the live part behind, printed twice. Keys typed while the
    answer streams still reach the next prompt; only their echo is held back.
    """
    import sys

    try:
        import termios

        fd = sys.stdin.fileno()
        if not os.isatty(fd):
            return lambda: None
        before = termios.tcgetattr(fd)
        quiet = list(before)
        quiet[3] &= ~(termios.ECHO | termios.ECHOCTL)
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
    except (ImportError, OSError, ValueError, AttributeError):  # Windows, no terminal, a test runner's stdin
        return lambda: None

    def restore() -> None:
        with contextlib.suppress(OSError):
            termios.tcsetattr(fd, termios.TCSANOW, before)

    return restore


def _blank(line: list[Segment]) -> bool:
    """Whether a rendered line shows nothing (a code block's padding has a background: not blank)."""
    return not "".join(seg.text for seg in line).strip() and not any(
        seg.style is not None and seg.style.bgcolor is not None for seg in line)


class _Lines:
    """Pre-rendered lines as a renderable."""

    def __init__(self, lines: list[list[Segment]], end: bool = False) -> None:
        self.lines = lines
        self.end = end  #: a newline after the last line too (printed output; not the live part)

    def __rich_console__(self, console: Console, options: Any) -> Any:
        from rich.segment import Segment

        for index, line in enumerate(self.lines):
            yield from line
            if self.end or index < len(self.lines) - 1:
                yield Segment.line()
