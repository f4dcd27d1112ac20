"""Every public exception pickles to an equal copy, and sits where the module docstring draws it.

Pickling is what process pools (and a remote layer) do to an exception on its way back to the
caller: a copy that fails to unpickle, or unpickles with another message or other attributes,
replaces the error the caller should have seen.
"""

from __future__ import annotations

import builtins
import pickle
import threading
from collections.abc import Callable
from typing import Any, cast

import anyio
import pytest

import fearless
from fearless import (
    ActorNameTaken,
    ActorStartError,
    ActorStopped,
    AwaitInCriticalSectionError,
    DeadlockError,
    EventLoopBlockingError,
    HandlerFailed,
    Lagged,
    LinkedActorFailed,
    MailboxFull,
    MessageDropped,
    RestartIntensityExceeded,
    SendBrokenError,
    SendClosedError,
    Terminated,
    _exceptions,
)

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


class _LiveRef:
    """Stands in for the ``ActorRef`` in a ``Terminated`` notice: it has a ``name``, and, like a
    handle on a live actor, it cannot be pickled (it holds a lock)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()


def _linked_failed(name: str, reason: str, error: BaseException | None) -> LinkedActorFailed:
    notice = Terminated(ref=cast(Any, _LiveRef(name)), reason=cast(Any, reason), error=error)
    return LinkedActorFailed(notice)


EXAMPLES: dict[type[BaseException], list[Callable[[], BaseException]]] = {
    SendClosedError: [lambda: SendClosedError((1, "two", None)), lambda: SendClosedError(())],
    SendBrokenError: [lambda: SendBrokenError((b"x", 3.5))],
    Lagged: [lambda: Lagged(7)],
    EventLoopBlockingError: [lambda: EventLoopBlockingError("send_blocking on a loop's thread")],
    AwaitInCriticalSectionError: [lambda: AwaitInCriticalSectionError("awaited in lock()")],
    MailboxFull: [lambda: MailboxFull("worker", {"job": 1})],
    ActorStopped: [lambda: ActorStopped("worker")],
    MessageDropped: [lambda: MessageDropped("worker", ("job", 2), "drop_newest")],
    DeadlockError: [lambda: DeadlockError("'a' asked itself")],
    LinkedActorFailed: [
        lambda: _linked_failed("linked", "failed", ValueError("boom")),
        lambda: _linked_failed("linked", "killed", None),
        lambda: _linked_failed("outer", "failed", _linked_failed("inner", "failed", KeyError(1))),
    ],
    HandlerFailed: [
        lambda: HandlerFailed("worker"),
        lambda: HandlerFailed("worker", KeyboardInterrupt()),
    ],
    ActorStartError: [
        lambda: ActorStartError("worker"),
        lambda: ActorStartError("worker", ValueError("bad config")),
    ],
    RestartIntensityExceeded: [
        lambda: RestartIntensityExceeded("sup", 3, 5.0, None),
        lambda: RestartIntensityExceeded(
            "top", 1, 0.5, RestartIntensityExceeded("mid", 2, 1.0, KeyError("k"))
        ),
    ],
    ActorNameTaken: [lambda: ActorNameTaken("worker")],
}
"""Representative instances of every exported exception (a new one needs an entry here)."""

LEFT_BEHIND: dict[type[BaseException], frozenset[str]] = {
    LinkedActorFailed: frozenset({"terminated"}),
}
"""Attributes that deliberately do not travel (they hold live objects): ``None`` in the copy."""


def _exported_exceptions() -> set[type[BaseException]]:
    return {
        obj
        for obj in (getattr(fearless, name) for name in fearless.__all__)
        if isinstance(obj, type) and issubclass(obj, BaseException)
    }


def _public_attributes(exc: BaseException) -> list[str]:
    own = set(dir(BaseException))  # args, with_traceback, add_note
    return sorted(name for name in dir(exc) if not name.startswith("_") and name not in own)


def _view(value: object, *, expected_copy: bool = False) -> object:
    """What of ``value`` a pickled copy must reproduce: for an exception its type, ``args``,
    message and public attributes (recursively: exceptions compare by identity); anything else
    as is. ``expected_copy``: the attributes in ``LEFT_BEHIND`` are expected to be ``None``."""
    if isinstance(value, BaseException):
        left_behind = LEFT_BEHIND.get(type(value), frozenset()) if expected_copy else frozenset()
        attributes = {
            name: None
            if name in left_behind
            else _view(getattr(value, name), expected_copy=expected_copy)
            for name in _public_attributes(value)
        }
        return type(value), value.args, str(value), attributes
    if isinstance(value, tuple):
        return tuple(_view(item, expected_copy=expected_copy) for item in value)
    return value


CASES = [
    pytest.param(factory, id=f"{cls.__name__}-{i}")
    for cls, factories in EXAMPLES.items()
    for i, factory in enumerate(factories)
]


def test_every_exported_exception_has_an_example() -> None:
    """A new exported exception fails here until EXAMPLES builds one (and so pickles it)."""
    exported = _exported_exceptions()
    assert exported, "fearless exports no exception: the lookup is broken"
    assert set(EXAMPLES) == exported


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("factory", CASES)
def test_an_exception_unpickles_to_an_equal_copy(
    factory: Callable[[], BaseException], protocol: int
) -> None:
    original = factory()
    copy = pickle.loads(pickle.dumps(original, protocol=protocol))
    assert type(copy) is type(original)
    assert copy.args == original.args
    assert str(copy) == str(original)
    assert _public_attributes(copy) == _public_attributes(original)
    assert _view(copy) == _view(original, expected_copy=True)


@pytest.mark.parametrize("factory", CASES)
def test_notes_travel_with_the_exception(factory: Callable[[], BaseException]) -> None:
    original = factory()
    original.add_note("while handling job 7")
    copy = pickle.loads(pickle.dumps(original))
    assert copy.__notes__ == ["while handling job 7"]


def test_send_closed_error_keeps_its_unsent_items() -> None:
    """The case that once came back with the message's 46 characters as its unsent items."""
    copy = pickle.loads(pickle.dumps(SendClosedError((1,))))
    assert copy.unsent == (1,)
    assert copy.item == 1
    assert str(copy) == "this sender is closed; 1 item(s) were not sent"


def test_linked_actor_failed_travels_without_its_terminated_notice() -> None:
    """The notice holds a handle on a live actor, which cannot be pickled; the name, reason and
    error travel instead, and the copy's ``terminated`` is None."""
    error = ValueError("boom")
    original = _linked_failed("linked", "failed", error)
    assert original.terminated.ref.name == "linked"
    with pytest.raises(TypeError):
        pickle.dumps(original.terminated)
    copy = pickle.loads(pickle.dumps(original))
    assert copy.terminated is None
    assert (copy.name, copy.reason) == ("linked", "failed")
    assert type(copy.error) is ValueError
    assert copy.error.args == ("boom",)
    assert str(copy) == "linked actor 'linked' failed"
    assert original.terminated is not None  # pickling did not strip the original


def test_restart_intensity_exceeded_copy_keeps_its_cause_as_its_cause() -> None:
    original = RestartIntensityExceeded("sup", 3, 5.0, KeyError("k"))
    copy = pickle.loads(pickle.dumps(original))
    assert isinstance(copy.cause, KeyError)
    assert copy.__cause__ is copy.cause


def test_actor_start_error_pickles_even_when_its_cause_cannot() -> None:
    """The cause is only in the message (and ``__cause__``, which pickle leaves out), so a cause
    that cannot be pickled does not stop the error from travelling."""

    class Unpicklable(Exception):
        def __init__(self) -> None:
            super().__init__("factory failed")
            self.lock = threading.Lock()

    cause = Unpicklable()
    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):
        pickle.dumps(cause)
    copy = pickle.loads(pickle.dumps(ActorStartError("worker", cause)))
    assert str(copy) == "actor 'worker' failed to start: Unpicklable: factory failed"
    assert copy.name == "worker"


class _Shutdown(ActorStopped):
    """A subclass whose constructor takes other parameters than its base's."""

    def __init__(self) -> None:
        super().__init__("the whole system")
        self.when = "at shutdown"


def test_a_subclass_with_another_constructor_pickles_too() -> None:
    copy = pickle.loads(pickle.dumps(_Shutdown()))
    assert type(copy) is _Shutdown
    assert (copy.name, copy.when) == ("the whole system", "at shutdown")
    assert str(copy) == str(_Shutdown())


# -- the hierarchy ------------------------------------------------------------------------------

_TREE_UNITS = ("│   ", "    ", "├── ", "└── ")


def _drawn_tree() -> dict[str, str | None]:
    """Each class the module docstring draws, with the class it is drawn under (None: a root)."""
    doc = _exceptions.__doc__
    assert doc is not None
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    parents: dict[str, str | None] = {}
    path: list[str] = []
    for line in block.splitlines():
        line = line.removeprefix("    ")  # the literal block's indent
        depth = 0
        while line[4 * depth : 4 * depth + 4] in _TREE_UNITS:
            depth += 1
        name = line[4 * depth :].split()[0]
        del path[depth:]
        parents[name] = path[-1] if path else None
        path.append(name)
    return parents


def _resolve(name: str) -> type[BaseException]:
    if name.startswith("anyio."):
        obj = getattr(anyio, name.removeprefix("anyio."))
    elif hasattr(builtins, name):
        obj = getattr(builtins, name)
    else:
        obj = getattr(fearless, name)
    assert isinstance(obj, type), name
    assert issubclass(obj, BaseException), name
    return obj


def _nearest_public_base(cls: type) -> type:
    return next(base for base in cls.__mro__[1:] if not base.__name__.startswith("_"))


DRAWN = _drawn_tree()


def test_the_drawing_shows_every_exported_exception() -> None:
    drawn = {_resolve(name) for name in DRAWN}
    assert _exported_exceptions() <= drawn
    assert {cls for cls in drawn if cls.__module__.startswith("fearless")} == (
        _exported_exceptions()
    )


@pytest.mark.parametrize(
    ("child", "parent"),
    [(child, parent) for child, parent in DRAWN.items() if parent is not None],
)
def test_each_exception_derives_from_the_class_it_is_drawn_under(child: str, parent: str) -> None:
    assert _nearest_public_base(_resolve(child)) is _resolve(parent)


@pytest.mark.parametrize(
    ("factory", "anyio_type"),
    [
        (lambda: MailboxFull("worker", 1), anyio.WouldBlock),
        (lambda: SendClosedError((1,)), anyio.ClosedResourceError),
        (lambda: SendBrokenError((1,)), anyio.BrokenResourceError),
        (lambda: ActorStopped("worker"), anyio.BrokenResourceError),
    ],
)
def test_code_written_against_anyio_catches_the_fearless_error(
    factory: Callable[[], BaseException], anyio_type: type[BaseException]
) -> None:
    with pytest.raises(anyio_type):
        raise factory()
