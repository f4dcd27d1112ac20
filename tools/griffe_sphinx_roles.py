"""A Griffe extension for the documentation site: Sphinx roles in docstrings become inline code.

The docstrings say ``:meth:`send``` or ``:class:`~fearless.Sender``` (readable in ``help()`` and
in the source); mkdocstrings renders docstrings as Markdown, where the role would show as
``:meth:send``. This turns each role into plain inline code (``send``, ``Sender``) while the site
is built, and changes nothing in the source. mkdocs.yml loads it (``extensions:``).
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, GriffeLoader, Object

# :role:`target`, :role:`~dotted.target` (show the last part), :role:`text <target>`.
ROLE = re.compile(
    r":(?:py:)?(?:func|meth|class|attr|exc|data|mod|obj|const):`(~?)([^`<]+?)(?:\s*<[^>]+>)?`"
)


def _code(match: re.Match[str]) -> str:
    tilde, target = match.group(1), match.group(2).strip()
    if tilde:
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


class SphinxRolesAsCode(Extension):
    """Rewrites Sphinx cross-reference roles in every loaded docstring as inline code."""

    def on_object(self, *, obj: Object, loader: GriffeLoader, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_code, obj.docstring.value)
