"""Every page with a Python block is run by a test: each page of docs/ (and README.md) that has a
```python block must be in ``COVERED_BY``, and the module it names must exist and mention the
page's path (a page is checked by a module that says which page it checks).

A page listed here that does not exist yet is fine (pages and their tests are written on several
branches at once); an existing page with a Python block that is not listed fails. An entry may be
a glob (``docs/howto/*.md``): then the module must mention the page's path or the glob's folder.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

COVERED_BY: dict[str, tuple[str, ...]] = {
    "README.md": ("tests/test_readme.py",),
    "docs/index.md": ("tests/docs/test_docs_pages.py",),
    "docs/channels.md": ("tests/docs/test_docs_pages.py",),
    "docs/select.md": ("tests/docs/test_docs_pages.py",),
    "docs/broadcast.md": ("tests/docs/test_docs_pages.py",),
    "docs/cells.md": ("tests/docs/test_docs_pages.py",),
    "docs/threads.md": ("tests/threads/test_docs_threads.py", "tests/docs/test_docs_pages.py"),
    "docs/actors.md": ("tests/test_docs_actors.py",),
    "docs/supervision.md": ("tests/test_docs_supervision.py", "tests/docs/test_docs_pages.py"),
    "docs/nats.md": ("tests/remote/test_docs_nats.py",),
    "docs/remote-actors.md": ("tests/remote/test_docs_remote_actors.py",),
    "docs/benchmarks.md": ("tests/docs/test_docs_pages.py",),
    "docs/comparison.md": ("tests/docs/test_docs_pages.py",),
    "docs/design/README.md": ("tests/docs/test_docs_pages.py",),
    "docs/design/concurrency.md": ("tests/docs/test_docs_pages.py",),
    "docs/design/supervision.md": ("tests/docs/test_docs_pages.py",),
    "docs/getting-started.md": ("tests/docs/test_docs_guides.py",),
    "docs/howto/*.md": ("tests/docs/test_docs_guides.py",),
    "docs/examples/inventory.md": ("tests/examples/test_inventory_service.py",),
    "docs/examples/chat.md": ("tests/examples/test_chat_server.py",),
}

PYTHON_BLOCK = re.compile(r"^\s*```python\s*$", re.M)


def pages_with_python() -> list[str]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [
        page.relative_to(ROOT).as_posix()
        for page in pages
        if page.is_file() and PYTHON_BLOCK.search(page.read_text(encoding="utf-8"))
    ]


def entry_for(page: str) -> str | None:
    """The entry of ``COVERED_BY`` that lists ``page``: its own path first, then a glob."""
    if page in COVERED_BY:
        return page
    globs = [entry for entry in COVERED_BY if "*" in entry and fnmatch.fnmatchcase(page, entry)]
    return globs[0] if globs else None


def test_the_scan_finds_the_pages_it_must() -> None:
    """If the block pattern or the walk broke, every page would look block-free and pass."""
    assert {"README.md", "docs/actors.md", "docs/channels.md"} <= set(pages_with_python())


@pytest.mark.parametrize("page", pages_with_python())
def test_every_page_with_a_python_block_names_the_test_that_runs_it(page: str) -> None:
    entry = entry_for(page)
    assert entry is not None, f"{page} has a ```python block; add it to COVERED_BY with its test"
    mentions = {page}
    if "*" in entry:
        mentions.add(entry.rsplit("/", 1)[0])
    for module in COVERED_BY[entry]:
        path = ROOT / module
        assert path.is_file(), f"{page} is covered by {module}, which does not exist"
        source = path.read_text(encoding="utf-8")
        assert any(text in source for text in mentions), f"{module} never mentions {page}"


def test_every_listed_test_module_is_a_test_module() -> None:
    for modules in COVERED_BY.values():
        for module in modules:
            assert module.startswith("tests/"), module
            assert Path(module).name.startswith("test_"), module
            assert module.endswith(".py"), module
