"""Bulk runs that lose nothing: thousands to millions of chat or embeddings requests run from your
machine, resumable and exactly once (``gigapy bulk`` / ``gigapy batch`` on the command line).

This is the bulk runner's own name; "batch" in gigapy otherwise means the service's ``/batches``
API (``client.create_batch()``, ``run_via_batches_api``). The runner lives in :mod:`gigapy.batch`
(its first home, which keeps working); the names here are the same objects::

    import asyncio
    from gigapy import AsyncGigaChat
    from gigapy.bulk import run_bulk

    async def main():
        async with AsyncGigaChat() as client:
            summary = await run_bulk(client, "requests.jsonl", "answers.jsonl", concurrency=32)
            print(summary.done, summary.failed)

    asyncio.run(main())
"""

from __future__ import annotations

from .batch import (
    BatchAborted,
    BatchProgress,
    BatchSummary,
    BatchWriteError,
    default_errors_path,
    detect_kind,
    run_batch,
    run_via_batches_api,
    write_batch_results,
)

#: :func:`gigapy.batch.run_batch` under the runner's own name.
run_bulk = run_batch
BulkSummary = BatchSummary
BulkProgress = BatchProgress
BulkAborted = BatchAborted
BulkWriteError = BatchWriteError

__all__ = [
    "BulkAborted",
    "BulkProgress",
    "BulkSummary",
    "BulkWriteError",
    "default_errors_path",
    "detect_kind",
    "run_bulk",
    "run_via_batches_api",
    "write_batch_results",
]
