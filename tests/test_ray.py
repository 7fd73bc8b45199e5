"""gigapy.ray on a real local Ray cluster (2 CPUs, one per module) against an emulator that allows
10 concurrent requests and whose generation time occupies them, through a file coordinator."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

# Ray binds its servers (GCS, raylet, workers) to the node's address; the loopback one, as on a
# laptop, keeps them on 127.0.0.1. Read when ray is imported, and inherited by its processes.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
import ray

from gigapy.emulator import Emulator
from gigapy.errors import ConfigurationError, InvalidArgumentError
from gigapy.ray import COLUMNS, GigaChatConfig, GigaChatUDF, build_processor
from gigapy.testing import client_settings

from .conftest import ROOT

# a Ray start and a dataset run take tens of seconds on a loaded 2-core machine (pytest-timeout
# counts the module's cluster start into its first test)
pytestmark = pytest.mark.timeout(300)

GEN = 0.05  # seconds every answer occupies its slot
LIMIT = 10  # the emulator's concurrency for the CORP scope (and the coordinator's ceiling)
CORP = "GIGACHAT_API_CORP"


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, Any]]:
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the pid-recording stage below
    context = ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield dict(context.address_info)
    ray.shutdown()


@pytest.fixture(scope="module")
def quota_emu() -> Iterator[Emulator]:
    with Emulator(ttft=GEN, tokens_per_second=0, batch_delay=0.05) as emu:
        yield emu


def _config(emu: Emulator, tmp_path: Path, **overrides: Any) -> GigaChatConfig:
    values: dict[str, Any] = {
        "settings": client_settings(emu, scope=CORP),
        "coordinator": f"file://{tmp_path / 'fleet'}?lease_ttl=2",
        "concurrency": 2,
        "requests_per_actor": 8,  # 2 x 8 = 16 > 10: the coordinator, not the actors, holds the quota
        "batch_size": 50,
        "params": {"max_tokens": 20},
    }
    values.update(overrides)
    return GigaChatConfig(**values)


def _items(n: int) -> list[dict[str, Any]]:
    return [{"id": i, "prompt": f"question {i}", "params": None} for i in range(n)]


class PidStage(GigaChatUDF):
    """The stage, telling the test its actors' pids (a file per actor process)."""

    def __init__(self, config: GigaChatConfig, pid_dir: str) -> None:
        super().__init__(config)
        Path(pid_dir, str(os.getpid())).touch()


def test_every_row_once_under_the_quota_with_error_columns(
    cluster: dict[str, Any], quota_emu: Emulator, tmp_path: Path
) -> None:
    n = 1000
    items = _items(n)
    bad = {7: {"prompt": ""}, 123: {"params": {"temperature": -1.0}}, 500: {"params": {"model": "NoSuchModel"}}}
    for i, change in bad.items():
        items[i].update(change)
    quota_emu.reset_stats()
    processor = build_processor(_config(quota_emu, tmp_path), postprocess=lambda row: {**row, "seen": True})
    rows = processor(ray.data.from_items(items)).take_all()
    stats = quota_emu.stats()
    ids = Counter(r["id"] for r in rows)
    assert set(ids) == set(range(n)) and set(ids.values()) == {1}  # every row once, none lost
    assert all(r["seen"] for r in rows) and all(set(COLUMNS) <= set(r) for r in rows)
    assert stats["slots_peak"] <= LIMIT  # the emulator's own count of requests in flight
    assert stats["responses"].get("429", 0) == 0
    errors = {r["id"]: r for r in rows if r["status"] == "error"}
    assert set(errors) == set(bad)
    assert errors[7]["error_type"] == "InvalidArgumentError" and "prompt" in errors[7]["error"]
    assert errors[123]["error_type"] == "InvalidArgumentError" and "temperature" in errors[123]["error"]
    assert errors[500]["error_type"] == "NotFoundError" and errors[500]["status_code"] == 404
    assert errors[500]["request_id"]
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["answer"] and r["request_id"] and r["model"] for r in ok)
    assert all(r["total_tokens"] == r["prompt_tokens"] + r["completion_tokens"] > 0 for r in ok)
    assert all(r["error"] is None and r["status_code"] is None for r in ok)
    assert stats["slots_peak"] >= 2  # the actors ran requests side by side, not one at a time


def test_a_killed_actor_loses_and_duplicates_nothing(
    cluster: dict[str, Any], quota_emu: Emulator, tmp_path: Path
) -> None:
    n = 400
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    config = _config(quota_emu, tmp_path)
    quota_emu.reset_stats()
    killed: list[int] = []
    killed_at: list[float] = []

    def chat_requests() -> int:
        return int(quota_emu.stats()["api_requests"].get("chat", 0))

    def killer() -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not killed:
            pids = sorted(int(p.name) for p in pid_dir.iterdir())
            if pids and chat_requests() >= n // 4:
                os.kill(pids[0], signal.SIGKILL)
                killed_at.append(time.monotonic())
                killed.append(pids[0])
                return
            time.sleep(0.02)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    kwargs = config.map_batches_kwargs()
    kwargs["fn_constructor_kwargs"] = {"config": config, "pid_dir": str(pid_dir)}
    rows = ray.data.from_items(_items(n)).map_batches(PidStage, **kwargs).take_all()
    finished = time.monotonic()
    thread.join(timeout=10)
    assert killed, "no actor was killed"
    assert killed_at[0] < finished  # mid-run
    assert len(list(pid_dir.iterdir())) >= 3  # the two actors, and the one Ray started in the dead one's place
    assert chat_requests() >= n
    ids = Counter(r["id"] for r in rows)
    assert set(ids) == set(range(n)) and set(ids.values()) == {1}
    assert all(r["status"] == "ok" and r["answer"] for r in rows)
    assert quota_emu.stats()["slots_peak"] <= LIMIT


def test_the_docs_example_runs_on_the_cluster(cluster: dict[str, Any], quota_emu: Emulator, tmp_path: Path) -> None:
    page = (ROOT / "docs" / "ray.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", page, re.M | re.S)
    assert blocks
    # Ray's own variables stay (its auth token, if the cluster set one): the example joins this cluster
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIGACHAT_", "GIGAPY_"))}
    env.update(
        RAY_ADDRESS=cluster["address"],
        GIGACHAT_CREDENTIALS=client_settings(quota_emu)["credentials"],
        GIGACHAT_SCOPE=CORP,
        GIGACHAT_BASE_URL=quota_emu.base_url,
        GIGACHAT_AUTH_URL=quota_emu.auth_url,
        GIGAPY_CONFIG_DIR=str(tmp_path / "config"),
    )
    for code in blocks:
        script = tmp_path / "example.py"
        script.write_text(code, encoding="utf-8")
        proc = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=150
        )
        assert proc.returncode == 0, f"{code}\n--- stderr ---\n{proc.stderr[-3000:]}\n{proc.stdout}"


# --- the stage without Ray: the same class in this test's event loop ---------------------------------


def test_the_stage_runs_a_batch_in_any_format(quota_emu: Emulator, tmp_path: Path) -> None:
    config = _config(quota_emu, tmp_path, coordinator=None, system="Answer briefly.")
    table = pa.table({"id": [1, 2], "prompt": ["hi", "hello"]})
    messages = pa.table({"id": [4], "prompt": [[{"role": "user", "content": "hello"}]]})

    async def main() -> tuple[Any, Any, Any, Any]:
        stage = GigaChatUDF(config)
        try:
            return (
                await stage.process(table),
                await stage.process(table.to_pandas()),
                await stage.process({"id": [3], "prompt": ["hey"]}),
                await stage.process(messages),
            )
        finally:
            await stage.aclose()

    arrow, frame, columns, listed = asyncio.run(main())
    assert arrow.column_names == ["id", "prompt", *COLUMNS]
    assert arrow.column("status").to_pylist() == ["ok", "ok"]
    assert arrow.schema.field("total_tokens").type == pa.int64()
    assert list(frame["status"]) == ["ok", "ok"] and list(frame["id"]) == [1, 2]
    assert list(columns["status"]) == ["ok"] and list(columns["id"]) == [3]
    assert listed.column("status").to_pylist() == ["ok"]
    sent = [r for r in quota_emu.requests if r.path.endswith("/chat/completions")][-1]
    assert b"Answer briefly." in sent.body  # the system message went first


def test_the_batches_api_route_answers_rows_and_reports_bad_ones(quota_emu: Emulator, tmp_path: Path) -> None:
    config = _config(quota_emu, tmp_path, via_batches_api=True, batch_poll_interval=0.05)
    table = pa.table(
        {
            "id": [0, 1, 2, 3],
            "prompt": ["one", "", "three", "four"],
            "params": [None, None, {"model": "NoSuchModel"}, None],
        }
    )

    async def main() -> Any:
        stage = GigaChatUDF(config)
        try:
            first = await stage.process(table)
            again = await stage.process(table)  # a retried task: the same rows find the same job
            return first, again
        finally:
            await stage.aclose()

    before = quota_emu.stats()["batches"]
    first, again = asyncio.run(main())
    rows = first.to_pylist()
    assert [r["status"] for r in rows] == ["ok", "error", "error", "ok"]
    assert rows[1]["error_type"] == "InvalidArgumentError" and rows[1]["batch_id"] is None
    assert rows[2]["error_type"] == "BatchJobError" and rows[2]["status_code"] == 404
    assert rows[0]["batch_id"] == rows[3]["batch_id"] == rows[2]["batch_id"]
    assert rows[0]["answer"] and rows[0]["total_tokens"] > 0
    assert quota_emu.stats()["batches"] == before + 1  # one job, not paid twice
    assert again.column("batch_id").to_pylist() == first.column("batch_id").to_pylist()


def test_bad_config_raises_naming_the_field_and_hides_secrets(quota_emu: Emulator, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="requests_per_actor"):
        GigaChatConfig(requests_per_actor=0)
    with pytest.raises(InvalidArgumentError, match=r"params\.messages"):
        GigaChatConfig(params={"messages": []})
    with pytest.raises(ConfigurationError, match=r"settings\.scope"):
        GigaChatConfig(settings={"scope": "NOPE"})
    with pytest.raises(ConfigurationError, match=r"settings\.coordinator"):
        GigaChatConfig(coordinator="ftp://x")
    with pytest.raises(InvalidArgumentError, match="preprocess"):
        build_processor(_config(quota_emu, tmp_path), preprocess="row")  # type: ignore[arg-type]
    config = _config(quota_emu, tmp_path, coordinator="redis://user:s3cret-pw@127.0.0.1:1/0")
    secret = client_settings(quota_emu)["credentials"]
    for shown in (repr(config), repr(GigaChatUDF(config)), str(config)):
        assert secret not in shown and "s3cret-pw" not in shown
