"""pytest plugin: a running GigaChat emulator and ready clients for your own tests.

Installed with gigapy and loaded automatically by pytest. Fixtures:

``gigachat_emulator``
    A :class:`gigapy.emulator.Emulator` on a free 127.0.0.1 port, shared by the whole
    session (concurrency and OAuth rate limits lifted, so tests may run requests in parallel
    and create clients freely). **Its state is reset before every test that uses it**
    (files, batches, assistants, threads, balance, faults, counters; issued tokens stay
    valid), so nothing one test does is seen by the next. Set ``gigachat_isolation = none``
    in the pytest ini file to share state across the session instead.
``gigachat_fresh_emulator``
    A private emulator started for one test and stopped after it (full isolation, and the
    place for ``Emulator(...)`` settings of your own: override this fixture).
``gigachat_client``
    A :class:`gigapy.GigaChat` connected to the emulator, with fast retries; closed after the test.
``async_gigachat_client``
    A :class:`gigapy.AsyncGigaChat` connected to it, with fast retries.
``gigachat_faults``
    The emulator's fault controller, cleared after the test:
    ``gigachat_faults.enqueue("503")`` makes the next request fail with a 503.
``gigachat_env``
    ``GIGACHAT_*`` variables pointing at the emulator, for code that builds ``GigaChat()``
    itself; every client made during the test retries fast.

Retries against the emulator are fast (:func:`fast_retries`): three 503s cost milliseconds,
not the production backoff (0.5 s, 1 s, 2 s), and ``retries_taken`` still counts them.

Nothing is imported until a fixture is used, so the plugin costs nothing otherwise.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from gigapy import AsyncGigaChat, GigaChat
    from gigapy.emulator import Emulator

__all__ = [
    "FAST_RETRY_DELAY",
    "async_gigachat_client",
    "client_settings",
    "fast_retries",
    "fast_retry_policy",
    "gigachat_client",
    "gigachat_emulator",
    "gigachat_env",
    "gigachat_faults",
    "gigachat_fresh_emulator",
]

C = TypeVar("C")

#: The longest wait between two attempts under :func:`fast_retries`, seconds.
FAST_RETRY_DELAY = 0.002


def client_settings(emulator: Emulator, **overrides: Any) -> dict[str, Any]:
    """Constructor arguments that point a gigapy client at ``emulator``."""
    from gigapy.emulator import DEMO_CREDENTIALS

    settings: dict[str, Any] = {
        "credentials": DEMO_CREDENTIALS,
        "scope": "GIGACHAT_API_PERS",
        "base_url": emulator.base_url,
        "auth_url": emulator.auth_url,
    }
    settings.update(overrides)
    return settings


def _policy_class() -> type:
    """The client's RetryPolicy with every wait cut to FAST_RETRY_DELAY (made once)."""
    cached: type | None = getattr(_policy_class, "cached", None)
    if cached is not None:
        return cached
    from gigapy._core.flow import RetryPolicy

    base: Any = RetryPolicy

    class FastRetryPolicy(base):  # type: ignore[misc]
        """The client's retry rules (which statuses, how many times, Retry-After limits) with
        every wait cut to at most FAST_RETRY_DELAY."""

        __slots__ = ()

        def backoff(self, attempt: int) -> float:
            return min(float(base.backoff(self, attempt)), FAST_RETRY_DELAY)

        def delay_for_status(self, response: Any, attempt: int, repeatable: bool = True) -> float | None:
            delay = base.delay_for_status(self, response, attempt, repeatable)
            return None if delay is None else min(float(delay), FAST_RETRY_DELAY)

    _policy_class.cached = FastRetryPolicy  # type: ignore[attr-defined]
    return FastRetryPolicy


def fast_retry_policy(policy: Any) -> Any:
    """``policy`` (a client's retry policy) with every wait cut to :data:`FAST_RETRY_DELAY`."""
    cls = _policy_class()
    if isinstance(policy, cls):
        return policy
    values = {f.name: getattr(policy, f.name) for f in dataclasses.fields(policy)}
    return cls(**values)


def fast_retries(client: C) -> C:
    """Make ``client`` (a GigaChat or AsyncGigaChat) wait almost nothing between retries; returns it.

    The same attempts are made, for the same statuses and errors, and ``retries_taken`` counts
    them: only the backoff and Retry-After waits shrink. For tests only.
    """
    core = getattr(client, "_core", None)
    if core is None or not hasattr(core, "policy"):
        raise TypeError(f"fast_retries() needs a GigaChat or AsyncGigaChat, not {type(client).__name__}")
    core.policy = fast_retry_policy(core.policy)
    return client


def _fast_retries_everywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every client built until the test ends retries fast (``with_options`` copies included)."""
    from gigapy import AsyncGigaChat, GigaChat  # noqa: F401 - loads the client modules, whose RetryPolicy is swapped

    fast = _policy_class()
    original = fast.__mro__[1]
    # the client modules that build a policy look RetryPolicy up by name: they get the fast one
    for module in list(sys.modules.values()):
        name = getattr(module, "__name__", "")
        if name.startswith("gigapy.") and name != original.__module__ \
                and getattr(module, "RetryPolicy", None) is original:
            monkeypatch.setattr(module, "RetryPolicy", fast)


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ``gigachat_isolation`` ini setting."""
    parser.addini("gigachat_isolation", "gigapy emulator between tests: 'reset' (default: its state is "
                  "cleared before each test) or 'none' (shared by the session)", default="reset")


def _isolation(config: pytest.Config) -> str:
    value = str(config.getini("gigachat_isolation") or "reset").strip().lower()
    if value not in ("reset", "none"):
        raise pytest.UsageError(f"gigachat_isolation must be 'reset' or 'none', not {value!r}")
    return value


@pytest.fixture(scope="session")
def gigachat_emulator() -> Iterator[Emulator]:
    """A running GigaChat emulator (no concurrency or OAuth rate limits) for the whole test session."""
    from gigapy.emulator import Emulator

    with Emulator(limits=None, oauth_rps_limit=None) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _gigachat_isolation(request: pytest.FixtureRequest) -> None:
    """Reset the session emulator before each test that uses it (unless gigachat_isolation = none)."""
    if "gigachat_emulator" in request.fixturenames and _isolation(request.config) == "reset":
        request.getfixturevalue("gigachat_emulator").reset()


@pytest.fixture
def gigachat_fresh_emulator() -> Iterator[Emulator]:
    """A private emulator for one test (stopped after it); override it for other settings."""
    from gigapy.emulator import Emulator

    with Emulator(limits=None, oauth_rps_limit=None) as emulator:
        yield emulator


@pytest.fixture
def gigachat_faults(gigachat_emulator: Emulator) -> Iterator[Any]:
    """The emulator's fault injection, reset after the test."""
    gigachat_emulator.faults.clear()
    yield gigachat_emulator.faults
    gigachat_emulator.faults.clear()


@pytest.fixture
def gigachat_client(gigachat_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[GigaChat]:
    """A sync client connected to the emulator (fast retries, also for clients made from it)."""
    from gigapy import GigaChat

    _fast_retries_everywhere(monkeypatch)
    with fast_retries(GigaChat(**client_settings(gigachat_emulator))) as client:
        yield client


@pytest.fixture
def async_gigachat_client(gigachat_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[AsyncGigaChat]:
    """An async client connected to the emulator (fast retries; use it inside your event loop)."""
    from gigapy import AsyncGigaChat

    _fast_retries_everywhere(monkeypatch)
    client = fast_retries(AsyncGigaChat(**client_settings(gigachat_emulator)))
    yield client
    client._transport.close_nowait()


@pytest.fixture
def gigachat_env(gigachat_emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """``GIGACHAT_*`` set for the emulator (other GIGACHAT_* variables removed); every client
    built during the test retries fast. Returns the variables set."""
    import os

    for name in list(os.environ):
        if name.startswith("GIGACHAT_"):
            monkeypatch.delenv(name)
    values = {
        "GIGACHAT_CREDENTIALS": client_settings(gigachat_emulator)["credentials"],
        "GIGACHAT_SCOPE": "GIGACHAT_API_PERS",
        "GIGACHAT_BASE_URL": gigachat_emulator.base_url,
        "GIGACHAT_AUTH_URL": gigachat_emulator.auth_url,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    _fast_retries_everywhere(monkeypatch)
    return values
