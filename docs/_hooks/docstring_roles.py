"""MkDocs hook: render the reST habits of docstrings as Markdown would mean them.

The API pages render docstrings as Markdown, where ``:class:`PolySpec``` would show as
":class:" followed by the name. This turns the rendered ``:class:<code>X</code>``
(likewise ``:func:``, ``:meth:``, ``:attr:``, ``:mod:``, ``:data:``, ``:exc:``) into
``<code>X</code>``, and a paragraph ending in reST's literal-block marker ("is::")
into one ending in a single colon (the indented block after it is already code).
The site check fails on any role or marker left visible.
"""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|data|exc|obj):(?=<code)")
LITERAL_MARKER = re.compile(r"(\S)::(\s*</p>)")


def on_page_content(html: str, **kwargs: Any) -> str:
    """Remove role prefixes in front of inline code and literal-block markers at paragraph ends."""
    return LITERAL_MARKER.sub(r"\1:\2", ROLE.sub("", html))
