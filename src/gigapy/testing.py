"""pytest plugin: a running GigaChat emulator and ready clients for your own tests.

Installed with gigapy and loaded automatically by pytest. Fixtures:

``gigachat_emulator``
    A :class:`gigapy.emulator.Emulator` on a free 127.0.0.1 port, shared by the whole
    session (concurrency and OAuth rate limits lifted, so tests may run requests in parallel
    and create clients freely).
``gigachat_client``
    A :class:`gigapy.GigaChat` connected to it; closed after the test.
``async_gigachat_client``
    A :class:`gigapy.AsyncGigaChat` connected to it; closed after the test.
``gigachat_faults``
    The emulator's fault controller, cleared after the test:
    ``gigachat_faults.enqueue("500")`` makes the next request fail with a 500.

Example::

    def test_my_bot(gigachat_client):
        answer = my_bot(gigachat_client, "Привет")
        assert answer

Nothing is imported until a fixture is used, so the plugin costs nothing otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from gigapy import AsyncGigaChat, GigaChat
    from gigapy.emulator import Emulator


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


@pytest.fixture(scope="session")
def gigachat_emulator() -> Iterator[Emulator]:
    """A running GigaChat emulator (no concurrency or OAuth rate limits) for the whole test session."""
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
def gigachat_client(gigachat_emulator: Emulator) -> Iterator[GigaChat]:
    """A sync client connected to the emulator."""
    from gigapy import GigaChat

    with GigaChat(**client_settings(gigachat_emulator)) as client:
        yield client


@pytest.fixture
def async_gigachat_client(gigachat_emulator: Emulator) -> Iterator[AsyncGigaChat]:
    """An async client connected to the emulator (use it inside your event loop)."""
    from gigapy import AsyncGigaChat

    client = AsyncGigaChat(**client_settings(gigachat_emulator))
    yield client
    client._transport.close_nowait()
