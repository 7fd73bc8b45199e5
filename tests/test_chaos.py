"""The chaos soak at small scale: the properties RELIABILITY.md reports, asserted.

One emulator subprocess with the soak's fault mix (10% 5xx, 5% 429 with Retry-After, 2% dropped
connections, 2% mid-stream drops, 20 s tokens) serves a few hundred mixed requests through one
AsyncGigaChat, and at the same time through one GigaChat shared by four threads, while ``gigapy
batch`` runs on a small file, is SIGKILLed once and rerun; the
emulator is SIGKILLed and restarted once mid-run. ``python -m reliability`` is the full-size run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from reliability import FAULTS, SoakConfig, SoakResult, run_soak

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> SoakResult:
    config = SoakConfig(
        requests=400,
        concurrency=16,
        sync_requests=150,
        sync_threads=4,
        batch_lines=200,
        batch_concurrency=8,
        minutes=1.0,
        workdir=Path(tmp_path_factory.mktemp("chaos")),
    )
    return run_soak(config)


def _verdict(soak: SoakResult, key: str) -> None:
    (verdict,) = [v for v in soak.verdicts() if v.key == key]
    assert verdict.passed, f"{verdict.name}: {verdict.evidence}"


def test_the_soak_runs_against_the_brief_fault_mix(soak: SoakResult) -> None:
    cmd = soak.emulator_command
    assert cmd[cmd.index("--faults") + 1] == FAULTS
    assert cmd[cmd.index("--token-ttl") + 1] == "20" and "--no-limits" in cmd
    assert soak.error is None
    stats = soak.emulator_stats
    assert stats["faults_injected"] > 0
    assert {"429", "499", "500", "502", "503", "504"} <= set(stats["responses"])  # 499 = connection dropped
    assert sum(r.retries for r in soak.records) > 0


def test_every_request_ends_as_a_success_or_a_typed_error(soak: SoakResult) -> None:
    _verdict(soak, "typed")
    assert soak.count("ok") > 0.85 * len(soak.records)
    assert {r.kind for r in soak.records} == {"completion", "stream", "embedding", "upload", "download"}


def test_the_sync_client_is_soaked_from_several_threads_alongside(soak: SoakResult) -> None:
    sync = soak.by_client("sync")
    assert len(sync) >= 150 - soak.not_sent  # every planned sync request was sent
    assert {r.kind for r in sync} == {"completion", "stream", "embedding", "upload", "download"}
    assert sum(r.outcome == "ok" for r in sync) > 0.85 * len(sync)
    assert [r for r in sync if r.outcome == "failure"] == []
    assert sum(r.retries for r in sync) > 0  # it met the faults too, and retried
    first_sync = min(r.started for r in sync)
    last_async = max(r.started for r in soak.by_client("async"))
    assert first_sync < last_async  # at the same time as the async load, not after it


def test_batch_delivers_every_input_id_exactly_once_across_sigkill(soak: SoakResult) -> None:
    _verdict(soak, "exactly_once")
    batch = soak.batch
    assert batch is not None
    assert batch.runs[0].killed and batch.runs[0].returncode == -9
    assert batch.bad_in_errors == batch.expected_bad > 0  # requests the service rejects land in the errors file
    assert 0 < batch.bad_with_404 <= batch.bad_in_errors  # a 404, or the gateway fault that kept it from a retry


def test_no_stream_chunk_is_delivered_twice(soak: SoakResult) -> None:
    _verdict(soak, "streams")


def test_the_client_survives_an_emulator_restart(soak: SoakResult) -> None:
    _verdict(soak, "restart")


def test_sockets_return_to_the_baseline(soak: SoakResult) -> None:
    _verdict(soak, "sockets")


def test_memory_returns_to_the_baseline(soak: SoakResult) -> None:
    _verdict(soak, "memory")


def test_the_soak_is_bounded_in_time(soak: SoakResult) -> None:
    _verdict(soak, "time")
    assert soak.duration < 45
