"""gigachat-node 2.4.5 (npm ``gigachat-node``), a client nobody here wrote, works against the emulator.

It talks HTTPS only (its hosts are hard-coded; the script points them at the emulator) and splits
stream events on network reads, so its ``completionStream`` ends only when every event, and
``data: [DONE]`` on its own, arrives in a write of its own. The package is installed from npm at
test time into a cache directory outside the repository. Without node or npm the test is skipped;
with them, a failed install fails the test.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from gigapy.emulator import DEMO_CREDENTIALS, SCOPE_PERS, Emulator

from .conftest import Api

PACKAGE, VERSION = "gigachat-node", "2.4.5"
SCRIPT = Path(__file__).with_name("node") / "gigachat_node_client.js"
CACHE = Path(os.environ.get("GIGAPY_TEST_CACHE", tempfile.gettempdir())) / "gigapy-test-cache"


def _tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed")
    return node, npm


def install_gigachat_node(npm: str) -> Path:
    """``npm install gigachat-node@2.4.5`` into the cache (once); any failure fails loudly."""
    target = CACHE / f"{PACKAGE}-{VERSION}"
    manifest = target / "node_modules" / PACKAGE / "package.json"
    if not manifest.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f"{PACKAGE}-", dir=CACHE))
        proc = subprocess.run(
            [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund", "--no-save", f"{PACKAGE}@{VERSION}"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if proc.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            pytest.fail(f"npm install {PACKAGE}@{VERSION} failed:\n{proc.stdout}\n{proc.stderr}")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    installed = json.loads(manifest.read_text())["version"]
    assert installed == VERSION, f"{manifest} is version {installed}"
    return target


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    root = tmp_path_factory.mktemp("node-tls")
    paths = {name: root / f"{name}.pem" for name in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(paths["ca"])
    server.cert_chain_pems[0].write_to_path(paths["cert"])
    server.private_key_pem.write_to_path(paths["key"])
    return paths


@pytest.fixture(scope="module")
def https_emu(tls: dict[str, Path]) -> Iterator[Emulator]:
    """HTTPS with a test CA, default limits and framing (PERS scope: one request at a time)."""
    with Emulator(tls_cert=str(tls["cert"]), tls_key=str(tls["key"])) as emu:
        yield emu


def run_node(
    emu: Emulator, tls: dict[str, Path], tmp_path: Path, stream_ms: int = 15_000
) -> subprocess.CompletedProcess[str]:
    """Run the script; its stdout is a JSON report (see node/gigachat_node_client.js)."""
    node, npm = _tools()
    module_dir = install_gigachat_node(npm)
    upload = tmp_path / "notes.txt"
    upload.write_text("Заметки о реках.\n", encoding="utf-8")
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(tls["ca"])}  # verification stays on (isIgnoreTSL: false)
    proc = subprocess.run(
        [node, str(SCRIPT), str(module_dir), emu.base_url, emu.auth_url, DEMO_CREDENTIALS, str(upload), str(stream_ms)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    return proc


def test_gigachat_node_against_the_emulator(https_emu: Emulator, tls: dict[str, Path], tmp_path: Path) -> None:
    proc = run_node(https_emu, tls, tmp_path)
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    assert report["token"]["hasToken"] and report["token"]["expiresAt"] > 10**12  # ms
    # completionStream ends, with the whole text, event by event
    assert report["stream"]["text"] == report["completion"]
    assert report["stream"]["chunks"] >= 3
    assert report["count"] == "1, 2, 3, 4, 5"
    assert "GigaChat" in report["models"] and "Embeddings" in report["models"]
    assert report["embeddings"] == [1024, 1024]
    assert report["tokens"][0]["object"] == "tokens" and report["tokens"][0]["tokens"] > 0
    assert report["balance"]
    assert report["upload"]["filename"] == "notes.txt" and report["upload"]["bytes"] > 0
    assert report["listed"] and report["info"] == "notes.txt"
    assert report["image"]["jpeg"] and report["image"]["bytes"] > 1000
    assert report["deleted"] is True
    # the same answer as any other client gets
    api = Api(https_emu, SCOPE_PERS, verify=ssl.create_default_context(cafile=str(tls["ca"])))
    assert report["completion"] == api.chat("Расскажи про реки и озёра").json()["choices"][0]["message"]["content"]
    api.close()


def test_packed_events_break_gigachat_node(tls: dict[str, Path], tmp_path: Path) -> None:
    """The control: with many events per write (``pack_stream``), its stream never ends."""
    with Emulator(tls_cert=str(tls["cert"]), tls_key=str(tls["key"]), pack_stream=True) as emu:
        proc = run_node(emu, tls, tmp_path, stream_ms=2_000)
    assert proc.returncode != 0
    assert "completionStream: no end" in proc.stderr or "SyntaxError" in proc.stderr, proc.stderr
