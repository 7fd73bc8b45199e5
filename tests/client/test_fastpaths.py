"""The sync fast paths that use httpx/httpcore internals: active on the versions they know, and
``GIGAPY_FASTPATH=0`` falls back to the public httpx path, which still works."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import httpcore
import httpx

from gigapy.testing import client_settings

CHECK = """
import json, sys
from gigapy import GigaChat
from gigapy._transports import fastpath_httpx
settings = json.loads(sys.argv[1])
with GigaChat(**settings) as client:
    answer = client.completion("Привет").choices[0].message.content
    transport = client._transport
    pool = transport.client._transport._pool
    print(json.dumps({"direct": transport._direct, "bounded": isinstance(pool._network_backend,
                      fastpath_httpx._Backend), "answer": bool(answer)}))
"""


def _run(settings: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    import json
    import os

    proc = subprocess.run(
        [sys.executable, "-c", CHECK, json.dumps(settings)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **env},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_fast_paths_are_active_on_the_known_versions(emu: Any) -> None:
    from gigapy._transports.fastpath_httpx import KNOWN_VERSIONS

    assert httpx.__version__.startswith(KNOWN_VERSIONS["httpx"]), httpx.__version__
    assert httpcore.__version__.startswith(KNOWN_VERSIONS["httpcore"]), httpcore.__version__
    settings = {k: v for k, v in client_settings(emu).items() if isinstance(v, (str, int, float, bool))}
    assert _run(settings, {"GIGAPY_FASTPATH": "1"}) == {"direct": True, "bounded": True, "answer": True}


def test_the_switch_falls_back_to_public_httpx_and_still_works(emu: Any) -> None:
    settings = {k: v for k, v in client_settings(emu).items() if isinstance(v, (str, int, float, bool))}
    assert _run(settings, {"GIGAPY_FASTPATH": "0"}) == {"direct": False, "bounded": False, "answer": True}
