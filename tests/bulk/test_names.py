"""The bulk runner has a name of its own (``gigapy.bulk``, ``gigapy bulk``); the old names keep
working, and the sync/async client classes come in consistently named pairs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gigapy
import gigapy.batch
import gigapy.bulk

BIN = Path(sys.executable).parent


def test_bulk_names_are_the_batch_runner() -> None:
    assert gigapy.bulk.run_bulk is gigapy.batch.run_batch
    assert gigapy.bulk.BulkSummary is gigapy.batch.BatchSummary
    assert gigapy.bulk.BulkAborted is gigapy.batch.BatchAborted is gigapy.errors.BatchAborted
    assert gigapy.bulk.BulkWriteError is gigapy.errors.BatchWriteError
    assert set(gigapy.bulk.__all__) <= set(dir(gigapy.bulk))


def test_the_cli_has_a_bulk_alias() -> None:
    proc = subprocess.run([str(BIN / "gigapy"), "bulk", "--help"], capture_output=True, text=True,
                          timeout=60, check=False)
    batch = subprocess.run([str(BIN / "gigapy"), "batch", "--help"], capture_output=True, text=True,
                           timeout=60, check=False)
    assert proc.returncode == 0 and batch.returncode == 0, proc.stderr + batch.stderr
    assert "--concurrency" in proc.stdout and "--concurrency" in batch.stdout


def test_sync_and_async_classes_come_in_pairs() -> None:
    pairs = [("GigaChat", "AsyncGigaChat"), ("ChatV2", "AsyncChatV2"), ("AssistantsAPI", "AsyncAssistantsAPI"),
             ("ThreadsAPI", "AsyncThreadsAPI"), ("Conversation", "AsyncConversation"), ("Stream", "AsyncStream")]
    for sync_name, async_name in pairs:
        sync_cls, async_cls = getattr(gigapy, sync_name), getattr(gigapy, async_name)
        assert (sync_cls.__name__, async_cls.__name__) == (sync_name, async_name)
    client = gigapy.AsyncGigaChat(credentials="c2VjcmV0OnNlY3JldA==", base_url="http://127.0.0.1:9/api/v1")
    assert isinstance(client.assistants, gigapy.AsyncAssistantsAPI) and isinstance(client.v2, gigapy.AsyncChatV2)
    assert isinstance(client.threads, gigapy.AsyncThreadsAPI)
    from gigapy._clients import async_client

    assert async_client.AssistantsAPI is gigapy.AsyncAssistantsAPI  # the previous names stay
