"""A docs page that explains an example quotes it: every Python excerpt on the page must be taken
from the example's source (or its tests), so the page cannot drift from the code it explains.

An excerpt may leave lines out (a docstring, a log call, ``...``) and add end-of-line comments;
every line it does show must be in the source, in the same order. Layout does not count: the
formatter reflows a dedented excerpt, which has room for longer lines.
"""

from __future__ import annotations

import re
from pathlib import Path


def _code(line: str) -> str:
    """The line without its comment and its layout ('' for a blank, comment or ``...`` line)."""
    line = re.sub(r"\s+#(?![^\"']*[\"']\s*[,)]?\s*$).*$", "", line)  # a trailing comment
    code = re.sub(r"\s+", "", line)
    return "" if code in ("", "...") or code.startswith("#") else code


def _shows(excerpt: str, source: str) -> bool:
    """Whether each code line of ``excerpt`` is in ``source``, in order (reflowed lines are joined:
    a line is looked up together with the ones that continue it)."""
    flat = "".join(_code(line) for line in source.splitlines())
    position = 0
    for line in excerpt.splitlines():
        code = _code(line)
        if not code:
            continue
        found = flat.find(code, position)
        if found < 0:
            return False
        position = found + len(code)
    return True


def assert_page_quotes(page: Path, *sources: Path, at_least: int) -> None:
    """Every ```python block of ``page`` is shown as it is in one of ``sources``."""
    texts = [source.read_text() for source in sources]
    excerpts = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.DOTALL)
    assert len(excerpts) >= at_least
    for excerpt in excerpts:
        names = ", ".join(source.name for source in sources)
        assert any(_shows(excerpt, text) for text in texts), (
            f"{page.name} shows code that {names} do not have:\n{excerpt}"
        )
