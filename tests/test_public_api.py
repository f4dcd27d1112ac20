"""The public surface is exactly what ``fearless.__all__`` says, and every name is documented."""

from __future__ import annotations

import inspect

import pytest

import fearless

EXPECTED = {
    "Directive",
    "OverflowPolicy",
    "RestartType",
    "Strategy",
    "Backoff",
    "ChildInfo",
    "ChildSpec",
    "DeleteChild",
    "ErrorReply",
    "GetOrStartChild",
    "RestartChild",
    "RestartIntensityExceeded",
    "StartChild",
    "Supervisor",
    "TerminateChild",
    "WhichChildren",
    "Actor",
    "ActorContext",
    "ActorNameTaken",
    "ActorRef",
    "ActorSnapshot",
    "ActorStartError",
    "ActorStopped",
    "ActorSystem",
    "Clock",
    "DeadLetter",
    "DeadLetterReason",
    "DeadlockError",
    "HandlerFailed",
    "LinkedActorFailed",
    "Mailbox",
    "MailboxFull",
    "MailboxStatistics",
    "MessageDropped",
    "Ref",
    "Request",
    "SystemSnapshot",
    "Terminated",
    "ShardedCounter",
    "GuardedSection",
    "Guarded",
    "ConcurrentStack",
    "AwaitInCriticalSectionError",
    "ArrayQueue",
    "Branch",
    "OneshotReceiver",
    "OneshotSender",
    "Recv",
    "Send",
    "oneshot",
    "select",
    "select_nowait",
    "DEFAULT_YIELD_EVERY",
    "AtomicBool",
    "AtomicCell",
    "AtomicInt",
    "CellStatistics",
    "BroadcastSender",
    "BroadcastStatistics",
    "ChannelReceiver",
    "ChannelStatistics",
    "EventLoopBlockingError",
    "Lagged",
    "MemoryObjectReceiveStream",
    "MemoryObjectSendStream",
    "MergeStatistics",
    "MergedReceiver",
    "Receiver",
    "SendBrokenError",
    "SendClosedError",
    "Sender",
    "Subscription",
    "SubscriptionStatistics",
    "broadcast",
    "channel",
    "create_memory_object_stream",
    "fan_out",
    "iterate_in_thread",
    "merge",
    "ThreadGroup",
    "ThreadGroupStatistics",
    "thread_group",
}


def test_all_is_pinned() -> None:
    assert set(fearless.__all__) == EXPECTED


def test_the_version_is_the_installed_distributions_and_not_in_all() -> None:
    """``fearless.__version__`` is a module dunder, like ``__doc__``: not part of ``__all__``."""
    from importlib.metadata import version

    assert fearless.__version__ == version("fearless")
    assert "__version__" not in fearless.__all__


def test_a_source_tree_that_was_never_installed_has_a_placeholder_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.metadata

    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    installed = fearless.__version__  # read now, so that monkeypatch puts it back afterwards
    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    monkeypatch.delitem(vars(fearless), "__version__")
    assert fearless.__version__ == "0+unknown"
    monkeypatch.undo()
    assert fearless.__version__ == installed


def test_every_public_name_exists_and_is_documented() -> None:
    for name in fearless.__all__:
        obj = getattr(fearless, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"fearless.{name} has no docstring"


def test_every_public_async_method_documents_cancellation() -> None:
    """Rule: every public async function's docstring says what cancellation does."""
    missing = []
    for name in fearless.__all__:
        obj = getattr(fearless, name)
        if not inspect.isclass(obj):
            continue
        for attr, member in vars(obj).items():
            if attr.startswith("_") or not inspect.iscoroutinefunction(member):
                continue
            doc = inspect.getdoc(member) or ""
            if "ancel" not in doc:
                missing.append(f"{name}.{attr}")
    assert missing == []


def test_no_module_outside_the_backend_seam_imports_asyncio_or_trio() -> None:
    """asyncio and trio specifics live in fearless/_backend.py only, and nats-py's asyncio loop in
    fearless/nats/_loop.py (the NATS client's side of the same seam)."""
    import ast
    from pathlib import Path

    root = Path(fearless.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path.relative_to(root).as_posix() in {"_backend.py", "nats/_loop.py"}:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(root)}: {n}"
                for n in names
                if n.split(".")[0] in {"asyncio", "trio"}
            ]
    assert offenders == []
