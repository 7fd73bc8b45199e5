"""The offline GigaChat API emulator: the real service's behaviour on loopback, no credentials needed.

Quick start::

    from gigapy.emulator import Emulator

    with Emulator() as emu:  # a free port on 127.0.0.1, in a background thread
        print(emu.base_url, emu.auth_url, emu.credentials)

or from a shell: ``python -m gigapy.emulator --port 8443`` (``EmulatorProcess`` starts that
process for you, ready when entered). See docs/emulator.md.
"""

from ._app import create_app
from ._cli import build_parser, config_from_args, main
from ._config import (
    DEMO_CREDENTIALS,
    DEMO_PASSWORD,
    DEMO_USER,
    SCOPE_B2B,
    SCOPE_CORP,
    SCOPE_PERS,
    Account,
    CertAccount,
    EmulatorConfig,
)
from ._engine import BLACKLIST_TRIGGER
from ._faults import FaultController
from ._process import EmulatorProcess, free_port, wait_until
from ._runner import Emulator, env_lines, run
from ._state import RecordedRequest
from ._textgen import count_tokens

__all__ = [
    "BLACKLIST_TRIGGER",
    "DEMO_CREDENTIALS",
    "DEMO_PASSWORD",
    "DEMO_USER",
    "SCOPE_B2B",
    "SCOPE_CORP",
    "SCOPE_PERS",
    "Account",
    "CertAccount",
    "Emulator",
    "EmulatorConfig",
    "EmulatorProcess",
    "FaultController",
    "RecordedRequest",
    "build_parser",
    "config_from_args",
    "count_tokens",
    "create_app",
    "env_lines",
    "free_port",
    "main",
    "run",
    "wait_until",
]
