"""docs/openai.md lists every parameter with the fate the code gives it."""

from __future__ import annotations

import pytest

from gigapy._translate.anthropic import MESSAGES_PARAMETERS
from gigapy._translate.chat import PARAMETERS
from gigapy._translate.embeddings import EMBEDDING_PARAMETERS
from gigapy._translate.responses import RESPONSES_PARAMETERS

from ..conftest import ROOT

DOC = (ROOT / "docs" / "openai.md").read_text(encoding="utf-8")
TABLES = {
    "Chat Completions": PARAMETERS,
    "Responses": RESPONSES_PARAMETERS,
    "Messages": MESSAGES_PARAMETERS,
    "Embeddings": EMBEDDING_PARAMETERS,
}


@pytest.mark.parametrize("api", sorted(TABLES))
def test_every_parameter_is_documented_with_its_fate(api: str) -> None:
    for name, (fate, how) in TABLES[api].items():
        assert f"| `{name}` | {fate} | {how} |" in DOC, f"{api}: {name}"
