"""The API reference of the documentation site (docs/reference/*.md) leaves out no public name.

Each name of ``fearless``, ``fearless.testing`` and ``fearless.nats`` is documented by a
``::: fearless.Name`` line (mkdocstrings renders it from the docstring); a new export that no
page names would be missing from the site, and this fails.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import fearless
import fearless.nats
import fearless.testing

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference"
DIRECTIVE = re.compile(r"^:::\s+(\S+)\s*$", re.MULTILINE)


def documented() -> set[str]:
    """Every dotted path named by a ``:::`` line of the reference pages."""
    return {
        path
        for page in sorted(REFERENCE.glob("*.md"))
        for path in DIRECTIVE.findall(page.read_text(encoding="utf-8"))
    }


def test_every_name_in_fearless_all_has_a_reference_entry() -> None:
    missing = sorted(name for name in fearless.__all__ if f"fearless.{name}" not in documented())
    assert not missing, f"not in any ::: line of docs/reference/*.md: {missing}"


def test_every_public_name_of_fearless_testing_has_a_reference_entry() -> None:
    """Its ``__all__``, and any public class or function defined there but left out of it."""
    public = set(fearless.testing.__all__) | {
        name
        for name, value in vars(fearless.testing).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == "fearless.testing"
    }
    missing = sorted(name for name in public if f"fearless.testing.{name}" not in documented())
    assert not missing, f"not in any ::: line of docs/reference/*.md: {missing}"


def test_every_name_in_fearless_nats_all_has_a_reference_entry() -> None:
    """Its ``__all__``, and any public class or function its modules define and leave out of it
    (a name reachable only as ``fearless.nats._channel.X`` would be missing from the site)."""
    public = set(fearless.nats.__all__) | {
        name
        for name, value in vars(fearless.nats).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__.startswith("fearless.nats")
    }
    missing = sorted(name for name in public if f"fearless.nats.{name}" not in documented())
    assert not missing, f"not in any ::: line of docs/reference/*.md: {missing}"


def test_every_reference_entry_names_a_public_object() -> None:
    """A ``:::`` line naming something that is gone (a rename, a typo) fails here, not only in the
    strict site build."""
    public = {f"fearless.{name}" for name in fearless.__all__}
    public |= {"fearless", "fearless.testing"}
    public |= {f"fearless.testing.{name}" for name in fearless.testing.__all__}
    public |= {f"fearless.nats.{name}" for name in fearless.nats.__all__}
    unknown = sorted(documented() - public)
    assert not unknown, f"::: lines in docs/reference/*.md that name no public object: {unknown}"
