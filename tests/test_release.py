"""The package is release-ready: `python -m build` makes an sdist and a wheel, `twine check` passes,
and the wheel installs into a fresh venv (its dependencies from the package index) and runs the demo.

The wheel is built from the sdist (build's default), so the sdist is proven buildable too.
"""

from __future__ import annotations

import email
import hashlib
import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import gigapy

from .conftest import ROOT, SHARED

VERSION = gigapy.__version__


def _run(cmd: list[str], timeout: float, **kwargs: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{' '.join(cmd)}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    return proc  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], timeout=300)
    return out


@pytest.fixture(scope="module")
def sdist(dist: Path) -> Path:
    return dist / f"gigapy-{VERSION}.tar.gz"


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    return dist / f"gigapy-{VERSION}-py3-none-any.whl"


def test_build_makes_one_sdist_and_one_wheel(dist: Path, sdist: Path, wheel: Path) -> None:
    assert sorted(p.name for p in dist.iterdir()) == sorted([sdist.name, wheel.name])


def test_twine_check_passes(dist: Path) -> None:
    proc = _run([sys.executable, "-m", "twine", "check", "--strict", *map(str, sorted(dist.iterdir()))], timeout=120)
    assert proc.stdout.count("PASSED") == 2, proc.stdout


def test_the_sdist_holds_the_sources_and_nothing_else(sdist: Path) -> None:
    with tarfile.open(sdist) as tar:
        members = {m.name.split("/", 1)[1]: m for m in tar.getmembers() if "/" in m.name and m.isfile()}
        contents = {name: tar.extractfile(m).read() for name, m in members.items()}  # type: ignore[union-attr]
    for needed in (
        "pyproject.toml",
        "README.md",
        "LICENSE",
        "CHANGELOG.md",
        "mkdocs.yml",
        "PKG-INFO",
        "src/gigapy/__init__.py",
        "src/gigapy/py.typed",
        "src/gigapy/emulator/__init__.py",
        "tests/conftest.py",
        "docs/index.md",
        "docs/cli.md",
        "examples/chat_bot.py",
    ):
        assert needed in contents, needed
    tops = {name.split("/", 1)[0] for name in contents}
    assert tops <= {
        "src",
        "tests",
        "docs",
        "examples",
        "mkdocs.yml",
        "docs_hooks.py",
        "README.md",
        "CHANGELOG.md",
        "LICENSE",
        "pyproject.toml",
        "PKG-INFO",
        ".gitignore",
    }, tops
    for name in contents:
        parts = set(name.split("/"))
        assert not parts & {".venv", ".git", "__pycache__", "site", "node_modules", ".hypothesis", ".mypy_cache"}, name
        assert not name.endswith((".pyc", ".whl", ".tar.gz")), name
    # no copy of the reference material the tests read from ../shared
    # (files of a few bytes, such as an empty __init__.py, say nothing about where they came from)
    shared = {
        hashlib.sha256(p.read_bytes()).hexdigest(): p.name
        for p in SHARED.rglob("*")
        if p.is_file() and p.stat().st_size >= 64
    }
    assert SHARED.is_dir() == bool(shared)
    copies = [name for name, data in contents.items() if hashlib.sha256(data).hexdigest() in shared]
    assert copies == []
    assert not [name for name in contents if "/recordings/" in name or "/cassettes/" in name]


def test_the_wheel_holds_the_typed_package_and_its_entry_points(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        meta = email.message_from_bytes(zf.read(f"gigapy-{VERSION}.dist-info/METADATA"))
        entry_points = zf.read(f"gigapy-{VERSION}.dist-info/entry_points.txt").decode()
    assert "gigapy/py.typed" in names
    assert "gigapy/emulator/__init__.py" in names and "gigapy/cli/__init__.py" in names
    assert {n.split("/", 1)[0] for n in names} == {"gigapy", f"gigapy-{VERSION}.dist-info"}, "only the package"
    assert not [n for n in names if n.endswith(".pyc")]
    assert f"gigapy-{VERSION}.dist-info/licenses/LICENSE" in names
    assert "gigapy = gigapy.cli:main" in entry_points and "[pytest11]" in entry_points
    assert meta["Name"] == "gigapy" and meta["Version"] == VERSION
    assert meta["License-Expression"] == "MIT"
    assert meta["Description-Content-Type"] == "text/markdown"
    requires = meta.get_all("Requires-Dist") or []
    for dep in ("httpx", "aiohttp", "pydantic", "certifi"):
        assert any(r.startswith(dep) and "extra ==" not in r for r in requires), dep
    assert {"cli", "docs", "dev"} <= set(meta.get_all("Provides-Extra") or [])


def test_the_wheel_installs_into_a_fresh_venv_and_runs_the_demo(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False, clear=True)
    python = env_dir / "bin" / "python"
    # this pip installs into the new venv (``--python``: no ensurepip there, which costs more than the
    # install); the dependencies come from the package index, fast from pip's cache on a second run
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-compile",
            "--disable-pip-version-check",
            f"{wheel}[cli]",
        ],
        timeout=400,
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GIGACHAT_", "GIGAPY_", "PYTHON", "VIRTUAL_ENV"))}
    clean["GIGAPY_CONFIG_DIR"] = str(tmp_path / "config")
    where = _run(
        [str(python), "-c", "import gigapy; print(gigapy.__file__, gigapy.__version__)"],
        timeout=60,
        cwd=tmp_path,
        env=clean,
    )
    location, version = where.stdout.split()
    assert Path(location).is_relative_to(env_dir) and version == VERSION
    chat = _run(
        [str(env_dir / "bin" / "gigapy"), "--emulator", "chat", "Привет! Что ты умеешь?"],
        timeout=120,
        cwd=tmp_path,
        env=clean,
    )
    assert len(chat.stdout.strip()) > 20, chat.stdout
    assert "Traceback" not in chat.stderr
