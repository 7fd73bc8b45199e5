"""Shared test helpers: paths to the reference material and emulator-backed client factories.

The emulator fixtures come from gigapy's own pytest plugin (``gigapy.testing``), so these
tests also exercise what users get.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gigapy import AsyncGigaChat, GigaChat, clear_token_cache
from gigapy.emulator import wait_until as wait_until  # the one deadline poll (tests import it from here)
from gigapy.testing import client_settings

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "reference"
RECORDINGS = SHARED / "recordings"

needs_shared = pytest.mark.skipif(not RECORDINGS.is_dir(), reason="../shared/reference is not present")

T = TypeVar("T")


async def async_wait_until(
    predicate: Callable[[], Awaitable[Any]], timeout: float = 10.0, interval: float = 0.02
) -> Any:
    """:func:`wait_until` for an async predicate (TimeoutError after ``timeout`` seconds)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() >= deadline:
            raise TimeoutError(f"not true within {timeout} s: {predicate}")
        await asyncio.sleep(interval)


def run(coro: Awaitable[T]) -> T:
    """Run a coroutine in a fresh event loop."""
    return asyncio.run(coro)  # type: ignore[arg-type]


class LogCapture(logging.Handler):
    """Every log record, formatted and with all its attributes (for secret scans)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        self.lines.append(repr(record.__dict__))


@pytest.fixture
def captured() -> Iterator[LogCapture]:
    """Capture every record of every logger at DEBUG during the test."""
    handler = LogCapture()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    for name in ("gigapy", "httpx", "httpcore", "aiohttp", "asyncio"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old)
    for name in ("gigapy", "httpx", "httpcore", "aiohttp", "asyncio"):
        logging.getLogger(name).setLevel(logging.NOTSET)


@pytest.fixture(autouse=True)
def _fresh_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts with an empty token cache, clean emulator stats and no faults."""
    clear_token_cache()
    if "gigachat_emulator" in request.fixturenames:
        emu = request.getfixturevalue("gigachat_emulator")
        emu.faults.clear()
        emu.reset_stats()
        yield
        emu.faults.clear()
    else:
        yield


@pytest.fixture
def emu(gigachat_emulator: Any) -> Any:
    """The session's emulator (short name)."""
    return gigachat_emulator


@pytest.fixture
def make_client(emu: Any) -> Iterator[Callable[..., GigaChat]]:
    """Factory of sync clients pointed at the emulator; all closed after the test."""
    made: list[GigaChat] = []

    def make(**overrides: Any) -> GigaChat:
        client = GigaChat(**client_settings(emu, **overrides))
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def make_async(emu: Any) -> Callable[..., AsyncGigaChat]:
    """Factory of async clients pointed at the emulator (create and close them in your loop)."""

    def make(**overrides: Any) -> AsyncGigaChat:
        return AsyncGigaChat(**client_settings(emu, **overrides))

    return make
