"""A Griffe extension for the documentation site: Sphinx roles in docstrings become links or code.

The docstrings say ``:meth:`send``` or ``:class:`~fearless.Sender``` (readable in ``help()`` and
in the source); mkdocstrings renders docstrings as Markdown, where the role would show as
``:meth:send``. Once the whole package is loaded, this rewrites every role, changing nothing in
the source:

- if its target is a name the API reference documents (a public name of ``fearless`` or
  ``fearless.testing``, or a public member declared on one), it becomes a link to that entry:
  an *optional* autorefs cross-reference (mkdocs-autorefs), shown as inline code;
- anything else (a private name, a member inherited from a private base, a name from anyio)
  becomes plain inline code.

A target is looked up as the docstrings write it: a member of the class the docstring belongs to
(``:meth:`send``` in ``Sender``), a dotted path from ``fearless`` (``:meth:`ActorSystem.spawn```),
a name of ``fearless.testing``, or a full path, private modules mapped to the public name
(``fearless._channels._channel.channel`` is ``fearless.channel``). Since only documented targets
are linked, and the links are optional, an unresolved one never fails ``mkdocs build --strict``.

It also tidies two things of the public classes that the source needs and the reader does not:

- a class that refuses construction (an ``__init__`` raising "has no public constructor", such as
  the endpoints that ``fearless.channel`` makes) shows no ``(*args, **kwargs)`` signature; its
  docstring gets a line naming what makes it instead, taken from that error message;
- "Bases:" lists only public classes: a private base (``_Endpoint``, ``LoopBound``,
  ``_FearlessError`` ...) is an implementation detail the reference does not document.

mkdocs.yml loads it (``extensions:``).
"""

from __future__ import annotations

import html
import re
from typing import Any

from griffe import Alias, Class, Expr, Extension, GriffeLoader, Module, Object

# :role:`target`, :role:`~dotted.target` (show the last part), :role:`text <target>`.
ROLE = re.compile(
    r":(?:py:)?(?:func|meth|class|attr|exc|data|mod|obj|const):`(~?)([^`<]+?)(?:\s*<([^>]+)>)?`"
)
PACKAGE = "fearless"
PUBLIC_MODULES = ("fearless", "fearless.testing")
# The error a refusing __init__ raises: "Sender has no public constructor; use fearless.channel()".
REFUSAL = re.compile(r"has no public constructor[;:]\s*use ([^\"]+?)\"")
FACTORY = re.compile(r"^([\w.]+)\(\)$")


def _target(obj: Object | Alias) -> Object | Alias | None:
    """What an alias points at, or ``None`` if it cannot be resolved (outside the package)."""
    try:
        return obj.final_target if isinstance(obj, Alias) else obj
    except Exception:  # griffe raises AliasResolutionError / CyclicAliasError
        return None


class Reference:
    """The documented names of the package, and where each canonical (private) path is shown."""

    def __init__(self, pkg: Module) -> None:
        self.documented: set[str] = {PACKAGE}
        self.public: dict[str, str] = {}  # canonical path -> public path
        for module_path in PUBLIC_MODULES:
            module = pkg if module_path == PACKAGE else pkg.get_member(module_path.split(".", 1)[1])
            for name in sorted(module.exports or ()):
                member = module.members.get(name)
                target = _target(member) if member is not None else None
                if target is None:
                    continue
                public = f"{module_path}.{name}"
                self.documented.add(public)
                self.public.setdefault(target.path, public)
                if isinstance(target, Class):
                    for attr, value in target.members.items():
                        if attr.startswith("_") or isinstance(value, Alias):
                            continue
                        self.documented.add(f"{public}.{attr}")
                        self.public.setdefault(value.path, f"{public}.{attr}")

    def shown_as(self, path: str) -> str:
        """``path`` with its longest canonical prefix replaced by the public path."""
        parts = path.split(".")
        for cut in range(len(parts), 0, -1):
            prefix = ".".join(parts[:cut])
            if prefix in self.public:
                return ".".join([self.public[prefix], *parts[cut:]])
        return path

    def resolve(self, target: str, context: Object) -> str | None:
        """The documented identifier ``target`` names, seen from ``context``'s docstring."""
        target = target.lstrip(".")
        candidates = []
        owner: Object | None = context if isinstance(context, Class) else context.parent
        if isinstance(owner, Class):
            candidates.append(f"{self.shown_as(owner.path)}.{target}")
        candidates += [
            self.shown_as(target),
            f"{PACKAGE}.{target}",
            f"{PACKAGE}.testing.{target}",
        ]
        return next((c for c in candidates if c in self.documented), None)

    def rewrite(self, text: str, context: Object) -> str:
        def role(match: re.Match[str]) -> str:
            tilde, shown, explicit = match.group(1), match.group(2).strip(), match.group(3)
            target = (explicit or shown).strip()
            if tilde:
                shown = shown.rsplit(".", 1)[-1]
            return self.link(target, context, shown)

        return ROLE.sub(role, text)

    def link(self, path: str, context: Object, shown: str | None = None) -> str:
        """Inline code (``shown``, else ``path``), linked if ``path`` names a documented
        object."""
        shown = path if shown is None else shown
        identifier = self.resolve(path, context)
        if identifier is None:
            return f"`{shown}`"
        return (
            f'<autoref identifier="{html.escape(identifier)}" optional>'
            f"<code>{html.escape(shown)}</code></autoref>"
        )

    def is_private(self, base: str | Expr) -> bool:
        """Whether a base class is one of the package's undocumented classes."""
        path = base.canonical_path if isinstance(base, Expr) else base
        return path.startswith(f"{PACKAGE}.") and self.shown_as(path) not in self.documented


def _refusal(cls: Class) -> str | None:
    """What makes instances of ``cls``, if its ``__init__`` refuses construction (the text
    after "use" in its error message; a ``{self._factory}`` read from the class), else None."""
    init = cls.all_members.get("__init__")
    found = REFUSAL.search((init.source or "") if init is not None else "")
    if init is None or found is None:
        return None
    how = found.group(1).strip()
    if "{self._factory}" in how:
        factory = cls.all_members.get("_factory")
        value = getattr(factory, "value", None)
        if value is None:
            return None
        how = how.replace("{self._factory}", str(value).strip("'\""))
    return how


def _walk(obj: Object) -> Any:
    yield obj
    for member in obj.members.values():
        if not isinstance(member, Alias):
            yield from _walk(member)


class SphinxRolesAsCode(Extension):
    """Rewrites Sphinx cross-reference roles in every docstring of the package as links into the
    API reference (or inline code); hides refused constructors and private bases."""

    def on_package(self, *, pkg: Module, loader: GriffeLoader, **kwargs: Any) -> None:
        if pkg.path != PACKAGE:
            return
        reference = Reference(pkg)
        for obj in _walk(pkg):
            if obj.docstring is not None:
                obj.docstring.value = reference.rewrite(obj.docstring.value, obj)
        classes = [
            (public, target)
            for canonical, public in reference.public.items()
            if public.rsplit(".", 1)[0] in PUBLIC_MODULES
            and isinstance(target := loader.modules_collection.get_member(canonical), Class)
        ]
        # First every refusal (an __init__ may be inherited from a private base), then the edits.
        refusals = {public: (cls, _refusal(cls)) for public, cls in classes}
        for cls, how in refusals.values():
            if how is None:
                continue
            owner = cls.all_members["__init__"].parent
            if isinstance(owner, Class) and "__init__" in owner.members:
                owner.del_member("__init__")
            factory = FACTORY.match(how)
            made_by = reference.link(factory.group(1), cls, f"{how}") if factory else how
            note = (
                f"Not constructed directly (calling the class raises `TypeError`): use {made_by}."
            )
            if cls.docstring is not None:
                cls.docstring.value = f"{cls.docstring.value.rstrip()}\n\n{note}"
        for _, cls in classes:
            cls.bases = [base for base in cls.bases if not reference.is_private(base)]
