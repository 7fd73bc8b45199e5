"""The offline GigaChat API emulator: the real service's behaviour on loopback, no credentials needed.

Quick start::

    from gigapy.emulator import Emulator

    with Emulator() as emu:  # a free port on 127.0.0.1, in a background thread
        print(emu.base_url, emu.auth_url, emu.credentials)

or from a shell: ``python -m gigapy.emulator --port 8443``. See docs/emulator.md.
"""

from ._app import create_app
from ._cli import build_parser, config_from_args
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
from ._runner import Emulator, run
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
    "FaultController",
    "RecordedRequest",
    "build_parser",
    "config_from_args",
    "count_tokens",
    "create_app",
    "run",
]
