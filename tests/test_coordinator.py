"""The fleet coordinator on its three real backends: memory, a state file, a real redis-server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from gigapy.coordinator import Coordinator, LeaseTimeout, Pool, PoolMember, _seal, connect
from gigapy.errors import ConfigurationError, CoordinatorError
from gigapy.types.auth import AccessToken

from .redis_server import RedisServer

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer(password="s3cret-pass") as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture(params=["memory", "file", "redis"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "file":
        return f"file://{tmp_path / 'fleet'}"
    return str(request.getfixturevalue("redis_url"))


def _token(value: str, life: float) -> AccessToken:
    token = AccessToken.model_validate({"access_token": value, "expires_at": int((time.time() + life) * 1000)})
    token._lifetime = life
    return token


def test_leases_never_exceed_the_ceiling(backend_url: str) -> None:
    coord = connect(backend_url)
    active = peak = 0
    lock = threading.Lock()

    def worker() -> None:
        nonlocal active, peak
        for _ in range(15):
            with coord.acquire("acct:chat", 3, timeout=20):
                with lock:
                    active += 1
                    peak = max(peak, active)
                time.sleep(0.002)
                with lock:
                    active -= 1

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert peak == 3  # used fully, never more
    assert coord.held("acct:chat") == 0
    coord.close()


def test_async_leases_bound_gather(backend_url: str) -> None:
    coord = connect(backend_url)
    active = peak = done = 0

    async def one() -> None:
        nonlocal active, peak, done
        async with await coord.aacquire("acct:chat", 4, timeout=20):
            active += 1
            peak = max(peak, active)
            await asyncio.sleep(0.003)
            active -= 1
            done += 1

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(40)))

    asyncio.run(main())
    assert (peak, done) == (4, 40)
    coord.close()


def test_lease_timeout_names_the_key(backend_url: str) -> None:
    coord = connect(backend_url)
    held = coord.acquire("acct:chat", 1)
    with pytest.raises(LeaseTimeout, match="acct:chat"):
        coord.acquire("acct:chat", 1, timeout=0.05)
    held.release()
    coord.acquire("acct:chat", 1, timeout=1).release()
    coord.close()


_HOLDER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {src!r})
    from gigapy.coordinator import connect
    coord = connect({url!r}, lease_ttl={ttl})
    leases = [coord.acquire("acct:chat", 10) for _ in range(3)]
    print("ready", flush=True)
    time.sleep(60)
""")


@pytest.mark.parametrize("kind", ["file", "redis"])
def test_sigkilled_process_frees_its_leases_after_the_ttl(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"file://{tmp_path / 'fleet'}" if kind == "file" else str(request.getfixturevalue("redis_url"))
    ttl = 1.0
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER.format(src=SRC, url=url, ttl=ttl)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        coord = connect(url)
        time.sleep(ttl * 1.5)  # beyond one TTL: the heartbeat keeps the live process's leases
        assert coord.held("acct:chat") == 3
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        killed = time.monotonic()
        while coord.held("acct:chat") and time.monotonic() - killed < 30:
            time.sleep(0.05)
        freed_after = time.monotonic() - killed
        assert coord.held("acct:chat") == 0
        assert freed_after <= ttl * 3  # at most one TTL after the last heartbeat, plus slack
        coord.close()
    finally:
        proc.kill()
        proc.wait(timeout=10)


_FETCHER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {src!r})
    from gigapy.coordinator import connect
    from gigapy.types.auth import AccessToken
    coord = connect({url!r})
    def fetch():
        with open({log!r}, "a") as fh:
            fh.write("fetch\\n")
        time.sleep(0.3)
        expires = int((time.time() + 600) * 1000)
        token = AccessToken.model_validate({{"access_token": "tok-fleet-1", "expires_at": expires}})
        token._lifetime = 600.0
        return token
    got = coord.token("acct-1", b"the-authorization-key", fetch)
    print(got.access_token.get_secret_value(), round(got._lifetime), flush=True)
""")


@pytest.mark.parametrize("kind", ["file", "redis"])
def test_one_token_fetch_for_the_whole_fleet(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = f"file://{tmp_path / 'fleet'}" if kind == "file" else str(request.getfixturevalue("redis_url"))
    log = tmp_path / "fetches.log"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _FETCHER.format(src=SRC, url=url, log=str(log))], stdout=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    outs = [p.communicate(timeout=60)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert log.read_text().count("fetch") == 1
    assert {o[0] for o in outs} == {"tok-fleet-1"}
    assert all(550 <= int(o[1]) <= 600 for o in outs)  # the remaining lifetime travels with it


def test_tokens_in_redis_are_sealed(redis_url: str) -> None:
    coord = connect(redis_url)
    coord.token("acct-1", b"key-A", lambda: _token("plain-token-value", 300))
    raw = redis.Redis.from_url(redis_url)
    dumped = b"".join(bytes(v) for k in raw.keys("*") for v in raw.hgetall(k).values() if raw.type(k) == b"hash")
    raw.close()
    assert b"plain-token-value" not in dumped
    # another process with the same key reads it; one with another key cannot, and fetches its own
    assert (
        connect(redis_url).token("acct-1", b"key-A", lambda: _token("never", 300)).access_token.get_secret_value()
        == "plain-token-value"
    )
    fetched: list[int] = []

    def other() -> AccessToken:
        fetched.append(1)
        return _token("other", 300)

    assert connect(redis_url).token("acct-1", b"key-B", other).access_token.get_secret_value() == "other"
    assert fetched == [1]
    coord.close()


def test_seal_rejects_tampering() -> None:
    key = _seal.derive_key(b"secret", "ns")
    blob = _seal.seal(key, b"payload")
    assert _seal.unseal(key, blob) == b"payload"
    assert _seal.unseal(_seal.derive_key(b"other", "ns"), blob) is None
    assert _seal.unseal(key, blob[:-1] + bytes([blob[-1] ^ 1])) is None
    assert _seal.seal(key, b"payload") != blob  # a fresh nonce each time


def test_invalidated_token_is_refetched_once(backend_url: str) -> None:
    coord = connect(backend_url)
    values = iter(["first", "second"])
    fetch = lambda: _token(next(values), 300)  # noqa: E731
    first = coord.token("acct", b"k", fetch)
    coord.invalidate_token("acct", b"k", first.access_token)
    second = coord.token("acct", b"k", fetch)
    assert second.access_token.get_secret_value() == "second"
    coord.close()


def test_throttle_backs_off_the_whole_fleet_once_and_grows_back(backend_url: str) -> None:
    if backend_url == "memory://":
        a = b = connect(backend_url)
    else:
        a, b = connect(backend_url), connect(backend_url)
    for _ in range(5):  # five processes see 429 at once: one cut, not five
        a.acquire("acct:chat", 10).release("throttled")
    assert b.limit("acct:chat", 10) == 5.0
    held = [b.acquire("acct:chat", 10) for _ in range(5)]
    assert b.try_acquire("acct:chat", 10) is None  # the fleet now stops at 5
    for lease in held:
        lease.release(None)
    time.sleep(1.1)  # after the cooldown healthy answers grow the limit back
    for _ in range(60):
        b.acquire("acct:chat", 10).release("ok")
    assert a.limit("acct:chat", 10) == 10.0
    a.close()
    b.close()


def test_pool_weights_and_overflow(backend_url: str) -> None:
    coord = connect(backend_url)
    pool = Pool(
        [
            PoolMember("main", weight=3, limit=50),
            PoolMember("side", weight=1, limit=50),
            PoolMember("spare", limit=5, overflow=True, settings={"credentials": "c2VjcmV0"}),
        ]
    )
    counts: dict[str, int] = {}
    for _ in range(400):
        with coord.acquire_member(pool) as lease:
            assert lease.member is not None
            counts[lease.member.name] = counts.get(lease.member.name, 0) + 1
    assert "spare" not in counts
    assert 2.0 < counts["main"] / counts["side"] < 4.5
    small = Pool([PoolMember("a", limit=1), PoolMember("b", limit=1), PoolMember("spare", limit=1, overflow=True)])
    got = [coord.acquire_member(small) for _ in range(3)]
    assert sorted(lease.member.name for lease in got if lease.member) == ["a", "b", "spare"]
    with pytest.raises(LeaseTimeout):
        coord.acquire_member(small, timeout=0.05)
    assert "c2VjcmV0" not in repr(pool)
    for lease in got:
        lease.release()
    coord.close()


def test_pool_member_checks_name_the_field() -> None:
    with pytest.raises(Exception, match="weight"):
        PoolMember("x", weight=0)
    with pytest.raises(Exception, match="limit"):
        PoolMember("x", limit=0)
    with pytest.raises(Exception, match="unique"):
        Pool([PoolMember("x"), PoolMember("x")])


@pytest.fixture(params=["file", "redis"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return f"file://{tmp_path / 'fleet'}"
    return str(request.getfixturevalue("redis_url"))


def _claims_open(*coords: Coordinator) -> None:
    """Wait until the store grants claims (a new store waits its recovery grace once)."""
    for coord in coords:
        wait = coord.claim_wait()
        assert wait <= coord.recovery_grace
        time.sleep(wait)


def test_claims_are_exclusive_and_lapse_with_their_holder(shared_url: str) -> None:
    backend_url = shared_url
    a, b = connect(backend_url, lease_ttl=0.5), connect(backend_url, lease_ttl=0.5)
    _claims_open(a, b)
    assert a.claim("job", "id-1")
    assert not b.claim("job", "id-1")
    a.finish("job", ["id-1"])
    assert not b.claim("job", "id-1")  # done: nobody runs it again
    assert b.done("job", ["id-1", "id-2"]) == [True, False]
    assert a.claim("job", "id-2")
    a._stop.set()  # a stops beating, as a killed process would
    a._claims.clear()
    deadline = time.monotonic() + 10
    while not b.claim("job", "id-2") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert time.monotonic() < deadline
    b.close()


def test_item_states_tell_done_busy_and_lapsed_claims_apart_in_one_call(shared_url: str) -> None:
    """What a worker waiting on other workers' ids asks instead of re-claiming each one."""
    a, b = connect(shared_url, lease_ttl=0.5), connect(shared_url, lease_ttl=0.5)
    _claims_open(a, b)
    assert b.item_states("job", []) == []
    assert a.claim_item("job", "finished") == "new"
    a.finish("job", ["finished"])
    assert a.claim_item("job", "running") == "new"
    assert a.claim_item("job", "given-back") == "new"
    a.unclaim("job", "given-back")
    assert b.item_states("job", ["finished", "running", "given-back", "never"]) == ["done", "busy", "free", "free"]
    assert b.claim_item("job", "running") == "busy"  # the look took no claim of its own
    a._stop.set()  # a stops beating, as a killed process would: its claim lapses
    a._claims.clear()
    deadline = time.monotonic() + 10
    while b.item_states("job", ["running"]) != ["free"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert b.item_states("job", ["running", "finished"]) == ["free", "done"]
    assert b.claim_item("job", "running") == "again"
    b.close()


def test_redis_outage_falls_back_to_local_limits_and_recovers(tmp_path: Path) -> None:
    with RedisServer() as server:
        coord = connect(server.url, lease_ttl=1.0)
        other = connect(server.url, lease_ttl=1.0)
        other._ensure_heartbeat()
        coord._ensure_heartbeat()
        coord._beat()  # the fleet has two members: local limits are half the ceiling
        held = coord.acquire("acct:chat", 10)
        server.stop()
        during = [coord.try_acquire("acct:chat", 10) for _ in range(8)]
        assert coord.degraded
        # local limits: half the ceiling for a fleet of two, less the lease still held from before
        assert sum(lease is not None for lease in during) == 4
        held.release()  # a lease taken before the outage is given back without an error
        for lease in during:
            if lease is not None:
                lease.release()
        server.start()
        deadline = time.monotonic() + 15
        while coord.degraded and time.monotonic() < deadline:
            coord.held("acct:chat")  # any call probes the backend once a second
            time.sleep(0.1)
        assert not coord.degraded
        assert coord.fallbacks == 1
        lease = coord.acquire("acct:chat", 10, timeout=5)
        assert other.held("acct:chat") == 1  # shared again
        lease.release()
        coord.close()
        other.close()


def test_password_urls_and_redaction(redis_server: RedisServer, redis_url: str) -> None:
    good = connect(redis_url)
    facts = good.check()
    assert facts["backend"] == "redis" and facts["leases"] == "ok"
    assert "s3cret-pass" not in repr(good) and "s3cret-pass" not in str(facts)
    bad = connect(redis_url.replace("s3cret-pass", "wrong"))
    with pytest.raises(CoordinatorError, match="refused the credentials") as info:
        bad.check()
    assert "wrong" not in str(info.value).replace("wrong password", "")
    with pytest.raises(CoordinatorError, match="refused the credentials"):  # not a silent fallback
        bad.acquire("acct:chat", 1)
    assert not bad.degraded
    good.close()
    bad.close()


@pytest.mark.parametrize(
    ("url", "field_text"),
    [
        ("mongodb://x", "unknown coordinator"),
        ("file://", "needs a directory"),
        ("redis://127.0.0.1:1/0?lease_ttl=abc", "lease_ttl"),
        ("memory://?lease_ttl=0", "lease_ttl"),
    ],
)
def test_bad_urls_name_the_setting(url: str, field_text: str) -> None:
    with pytest.raises(ConfigurationError, match=field_text) as info:
        connect(url)
    assert info.value.field == "coordinator"


def test_file_state_is_private(tmp_path: Path) -> None:
    coord = connect(f"file://{tmp_path / 'fleet'}")
    coord.token("acct", b"k", lambda: _token("file-token-value", 300))
    state = tmp_path / "fleet" / "state.json"
    assert state.stat().st_mode & 0o077 == 0
    assert b"file-token-value" not in state.read_bytes()
    assert coord.check()["backend"] == "file"
    coord.close()


def test_coordinator_repr_hides_passwords(redis_url: str) -> None:
    from gigapy.coordinator._redis import redacted

    coord = connect(redis_url)
    assert isinstance(coord, Coordinator)
    port = redis_url.rsplit(":", 1)[1].split("/")[0]
    assert repr(coord) == f"Coordinator('redis://:***@127.0.0.1:{port}/0', backend='redis')"
    coord.close()
    assert redacted("rediss://user:pw@host:6380/0") == "rediss://user:***@host:6380/0"
    assert redacted("redis://:pw@host/0") == "redis://:***@host/0"


def test_doctor_checks_the_coordinator(redis_url: str, tmp_path: Path) -> None:
    from gigapy.emulator import DEMO_CREDENTIALS, Emulator

    gigapy = str(Path(sys.executable).parent / "gigapy")
    with Emulator() as emu:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIGACHAT_", "GIGAPY_"))}
        env.update(
            GIGACHAT_CREDENTIALS=DEMO_CREDENTIALS,
            GIGACHAT_BASE_URL=emu.base_url,
            GIGACHAT_AUTH_URL=emu.auth_url,
            GIGAPY_CONFIG_DIR=str(tmp_path),
        )
        verdicts = {}
        for label, url in (("good", redis_url), ("bad", redis_url.replace("s3cret-pass", "wrong-pass"))):
            env["GIGACHAT_COORDINATOR"] = url
            done = subprocess.run([gigapy, "doctor", "--json"], env=env, capture_output=True, text=True, timeout=60)
            assert "s3cret-pass" not in done.stdout + done.stderr
            assert "wrong-pass" not in done.stdout + done.stderr
            steps = {step["name"]: step for step in json.loads(done.stdout)["steps"]}
            verdicts[label] = steps["coordinator"]
    assert verdicts["good"]["verdict"] == "ok" and "redis_version" in verdicts["good"]["detail"]
    assert verdicts["bad"]["verdict"] == "fail" and verdicts["bad"]["fix"]


@pytest.mark.parametrize("loss", ["file-wiped", "redis-flushed", "redis-restarted", "redis-snapshot"])
def test_a_store_that_lost_its_state_grants_no_claim_until_the_fleet_has_republished(loss: str, tmp_path: Path) -> None:
    from gigapy.coordinator._coordinator import RECOVERY_GRACE

    server = RedisServer().start() if loss.startswith("redis") else None
    url = f"file://{tmp_path / 'fleet'}" if server is None else server.url
    a, b = connect(url, lease_ttl=1.0), connect(url, lease_ttl=1.0)
    try:
        finished: list[str] = []
        republished = threading.Event()

        def republish() -> None:  # what a batch worker does: its files say what it finished
            a.finish("job", finished)
            republished.set()

        a.on_state_lost(republish)
        _claims_open(a, b)
        for item in ("early", "late"):
            assert a.claim("job", item)
            a.finish("job", [item])
            finished.append(item)
            if server is not None and item == "early" and loss == "redis-snapshot":
                redis.Redis.from_url(url).save()  # the snapshot the server comes back from
        assert a.claim("job", "running")  # in flight at a when the store loses its state
        assert b.claim_item("job", "late") == "done"
        if loss == "file-wiped":
            (tmp_path / "fleet" / "state.json").unlink()
        elif loss == "redis-flushed":
            redis.Redis.from_url(url).flushall()  # no process ever sees an error
        else:
            assert server is not None
            server.stop()
            server.start()  # empty, or from the snapshot holding "early" but not "late"
        answers = [b.claim_item("job", "late")]
        assert answers == ["busy"]  # b noticed the new epoch in that very call
        assert b.losses == 1 and b.recovered
        assert republished.wait(10)  # a's heartbeat noticed on its own
        assert a.losses == 1
        deadline = time.monotonic() + RECOVERY_GRACE * 5
        while answers[-1] == "busy" and time.monotonic() < deadline:
            time.sleep(0.05)
            answers.append(b.claim_item("job", "fresh"))
        assert answers[-1] == "new" and len(answers) > 2  # no claim during the grace, then claims again
        assert b.claim_item("job", "late") == "done"  # republished
        assert b.claim_item("job", "early") == "done"
        assert b.claim_item("job", "running") == "busy"  # a took its claim back
        assert a.claim_item("job", "other") == "new"
    finally:
        a.close()
        b.close()
        if server is not None:
            server.close()
