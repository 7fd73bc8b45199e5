"""mkdocs hooks for the documentation site (mkdocs.yml: ``hooks``).

Some docstrings use Sphinx cross-reference roles (``:class:`StreamError```). The site renders
docstrings as Google style, where such a role would show up literally ("`:meth:`close`"), so the
role is dropped and the name kept as code (``~a.b.C`` shows as ``C``, as Sphinx does).
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:meth|class|func|attr|mod|exc|data|obj|const):<code>(~?)\.?([^<]*)</code>")


def _plain(match: re.Match[str]) -> str:
    short, name = match.group(1), match.group(2)
    return f"<code>{name.rsplit('.', 1)[-1] if short else name}</code>"


def on_page_content(html: str, **kwargs: Any) -> str:
    """Drop Sphinx roles left in rendered docstrings."""
    return _ROLE.sub(_plain, html)
