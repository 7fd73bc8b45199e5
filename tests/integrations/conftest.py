"""The integrations share one client pair per settings across tests (as a long-lived app does), and
those clients remember uploaded attachments by content hash. The plugin's per-test emulator reset
would delete those files under them, so these tests keep the session emulator's state."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _gigachat_isolation() -> None:
    """Overrides the gigapy plugin's per-test reset for this directory (no reset)."""
