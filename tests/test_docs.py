"""The documentation site builds with `mkdocs build --strict` (every page in the nav, every link and
anchor resolved, the API reference generated from the public modules' docstrings), and every
`python` block of the guide pages runs as written against the emulator (`py` blocks are shown only).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gigapy.emulator import DEMO_CREDENTIALS

from .conftest import ROOT

DOCS = ROOT / "docs"
BIN = Path(sys.executable).parent
# the pages written as a guide; docs/cli.md, emulator.md and openai.md keep their own checks, and
# ray.md's blocks run on the Ray cluster tests/test_ray.py starts (one cluster start, not two)
GUIDE_PAGES = sorted(
    [
        DOCS / "index.md",
        DOCS / "langchain.md",
        DOCS / "llama-index.md",
        *(p for d in ("guide", "help", "migration", "ru") for p in (DOCS / d).glob("*.md")),
    ]
)


def _blocks() -> list[tuple[str, str]]:
    found = []
    for page in GUIDE_PAGES:
        text = page.read_text(encoding="utf-8")
        for n, code in enumerate(re.findall(r"^ *```python\n(.*?)^ *```", text, re.M | re.S)):
            indent = len(code) - len(code.lstrip(" "))
            found.append((f"{page.relative_to(DOCS)}:{n}", "\n".join(line[indent:] for line in code.splitlines())))
    return found


ALL_BLOCKS = _blocks()
# scripts run one by one; blocks that define tests run together in one pytest session (one start-up)
SCRIPTS = [pytest.param(code, id=name) for name, code in ALL_BLOCKS if "def test_" not in code]
TEST_BLOCKS = [(name, code) for name, code in ALL_BLOCKS if "def test_" in code]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    return out, proc.stderr


def test_the_site_builds_strictly_without_a_warning(site: tuple[Path, str]) -> None:
    out, log = site
    assert "WARNING" not in log, log
    for page in (
        "index.html",
        "cli/index.html",
        "emulator/index.html",
        "openai/index.html",
        "guide/quickstart/index.html",
        "guide/setup/index.html",
        "guide/tls/index.html",
        "help/faq/index.html",
        "migration/gigachat-sdk/index.html",
        "migration/langchain-gigachat/index.html",
        "langchain/index.html",
        "llama-index/index.html",
        "ru/quickstart/index.html",
        "ru/setup/index.html",
        "ru/tls/index.html",
        "ru/faq/index.html",
    ):
        assert (out / page).is_file(), page


@pytest.mark.parametrize(
    ("page", "names"),
    [
        ("clients", ["gigapy.GigaChat.completion_stream", "gigapy.AsyncGigaChat.embed_many", "gigapy.Timeout"]),
        ("streams", ["gigapy.Stream.get_final_completion", "gigapy.AsyncStream.text_stream"]),
        ("errors", ["gigapy.errors.RateLimitError", "gigapy.errors.TLSVerificationError"]),
        ("types", ["gigapy.types.ChatCompletion", "gigapy.types.Embeddings"]),
        ("schema", ["gigapy.schema.function_schema"]),
        ("tools", ["gigapy.tools.ToolRun"]),
        ("batch", ["gigapy.batch.run_batch", "gigapy.batch.BatchSummary"]),
        ("testing", ["gigapy.testing.gigachat_emulator"]),
        ("integrations", ["gigapy.integrations.langchain.ChatGigaChat", "gigapy.integrations.llama_index.GigaChatLLM"]),
        ("emulator", ["gigapy.emulator.Emulator"]),
    ],
)
def test_the_api_reference_documents_the_public_names(site: tuple[Path, str], page: str, names: list[str]) -> None:
    html = (site[0] / "reference" / page / "index.html").read_text(encoding="utf-8")
    for name in names:
        assert f'id="{name}"' in html, name
    assert 'id="gigapy._' not in html, "the reference shows public paths only"
    assert not re.search(r":(meth|class|func|attr|exc|data):(<code>|`)", html), "Sphinx roles are rendered"
    assert "Bases:" not in html, "no private base classes"


def test_the_reference_and_guides_name_no_private_module() -> None:
    for page in DOCS.rglob("*.md"):
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"gigapy\._|::: gigapy\.[a-z_.]*\._", text), page


def test_setup_tls_and_faq_exist_in_russian_and_link_each_other() -> None:
    for english, russian in (
        ("guide/quickstart.md", "ru/quickstart.md"),
        ("guide/setup.md", "ru/setup.md"),
        ("guide/tls.md", "ru/tls.md"),
        ("help/faq.md", "ru/faq.md"),
    ):
        en, ru = (DOCS / english).read_text(encoding="utf-8"), (DOCS / russian).read_text(encoding="utf-8")
        assert f"(../{russian})" in en and f"(../{english})" in ru
        letters = re.findall(r"[А-Яа-яЁё]", re.sub(r"```.*?```", "", ru, flags=re.S))
        assert len(letters) > 0.5 * len(re.findall(r"[A-Za-zА-Яа-яЁё]", re.sub(r"```.*?```", "", ru, flags=re.S)))


@pytest.fixture
def env(emu: Any, tmp_path: Path) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith(("GIGACHAT_", "GIGAPY_"))}
    values.update(
        GIGACHAT_CREDENTIALS=DEMO_CREDENTIALS,
        GIGACHAT_BASE_URL=emu.base_url,
        GIGACHAT_AUTH_URL=emu.auth_url,
        GIGAPY_CONFIG_DIR=str(tmp_path / "config"),
    )
    return values


@pytest.mark.parametrize("code", SCRIPTS)
def test_every_python_block_of_the_guides_runs(code: str, env: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "block.py"
    script.write_text(code, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, f"{code}\n--- stderr ---\n{proc.stderr}\n{proc.stdout}"
    assert "Traceback" not in proc.stderr


def test_every_test_block_of_the_guides_passes(env: dict[str, str], tmp_path: Path) -> None:
    for name, code in TEST_BLOCKS:  # one file per block, so a failure names its page
        slug = re.sub(r"\W+", "_", name)
        (tmp_path / f"test_{slug}.py").write_text(code, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    for name, code in TEST_BLOCKS:
        for test in re.findall(r"^def (test_\w+)", code, re.M):
            assert re.search(rf"PASSED \S*{re.escape(test)}\b", proc.stdout), (name, test, proc.stdout)


def test_the_guides_have_runnable_blocks() -> None:
    assert len(SCRIPTS) >= 20 and len(TEST_BLOCKS) >= 4
