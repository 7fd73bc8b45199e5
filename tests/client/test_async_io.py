"""The async client never blocks the event loop with file I/O."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from gigapy import AsyncGigaChat
from gigapy.testing import client_settings

MB = 1024 * 1024


class SlowFile(io.BytesIO):
    """A file on a slow disk: every read takes 150 ms (blocking); it records the threads that read it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.readers: set[int] = set()

    def read(self, size: int | None = -1) -> bytes:
        self.readers.add(threading.get_ident())
        time.sleep(0.15)
        return super().read(size)


@pytest.mark.parametrize("kind", ["path", "fileobj"])
def test_large_upload_and_download_do_not_block_the_loop(
    emu: Any, tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    data = b"\xff\xd8\xff\xe0" + bytes(range(256)) * (14 * MB // 256)  # a 14 MB "JPEG"
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    ticks = 0

    async def heartbeat(stop: asyncio.Event) -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.005)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        # a blocking 150 ms read on the loop would show; 0.5 s leaves room for a loaded machine's preemption
        loop.slow_callback_duration = 0.5 if kind == "fileobj" else 0.1
        stop = asyncio.Event()
        beat = asyncio.create_task(heartbeat(stop))
        async with AsyncGigaChat(**client_settings(emu)) as client:
            source: Any = path if kind == "path" else SlowFile(data)
            uploaded = await client.upload_file(source, filename="photo.jpg")
            assert uploaded.bytes == len(data)
            if kind == "fileobj":  # exact, whatever the load: no read ran on the loop's thread
                assert source.readers and threading.get_ident() not in source.readers
            target = tmp_path / "copy.jpg"
            await client.download_file(uploaded.id, target)
            assert target.read_bytes() == data
        stop.set()
        await beat

    with caplog.at_level(logging.WARNING, logger="asyncio"):
        asyncio.run(main(), debug=True)
    slow = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
    assert slow == [], slow
    assert ticks > 10  # the loop kept running other tasks during the transfer
