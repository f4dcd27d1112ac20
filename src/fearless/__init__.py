"""fearless: Rust's fearless concurrency, for Python's async code (asyncio, uvloop and trio).

Channels (``channel``, ``select``, ``broadcast``, ``oneshot``, ``merge``, ``fan_out``), atomic cells
(``AtomicCell``, ``Guarded``, ``ShardedCounter``, ...), the same channels and cells from OS threads
(the ``*_blocking`` calls; ``thread_group`` starts, stops and joins the threads), and actors: an
``Actor[M]`` handles its messages one at a time in its own task, reaches what the framework offers
through ``self.context`` (an ``ActorContext``; every other attribute name is the user's), and lives
in an ``ActorSystem``, restarted when it fails (within a restart budget of its own, or as a
``Supervisor`` tree says). The guides are in ``docs/``; ``fearless.testing`` has a fake clock, a
probe and a harness for testing actors.

Every public name is re-exported here from a private module; ``tests/test_public_api.py`` pins the
set.
"""

from ._actors._actor import Actor as Actor
from ._actors._ask import ErrorReply as ErrorReply
from ._actors._clock import Clock as Clock
from ._actors._context import ActorContext as ActorContext
from ._actors._mailbox import Mailbox as Mailbox
from ._actors._mailbox import MailboxStatistics as MailboxStatistics
from ._actors._mailbox import OverflowPolicy as OverflowPolicy
from ._actors._messages import ActorSnapshot as ActorSnapshot
from ._actors._messages import DeadLetter as DeadLetter
from ._actors._messages import DeadLetterReason as DeadLetterReason
from ._actors._messages import Request as Request
from ._actors._messages import SystemSnapshot as SystemSnapshot
from ._actors._messages import Terminated as Terminated
from ._actors._ref import ActorRef as ActorRef
from ._actors._ref import Ref as Ref
from ._actors._supervision import Backoff as Backoff
from ._actors._supervision import ChildInfo as ChildInfo
from ._actors._supervision import ChildSpec as ChildSpec
from ._actors._supervision import DeleteChild as DeleteChild
from ._actors._supervision import Directive as Directive
from ._actors._supervision import GetOrStartChild as GetOrStartChild
from ._actors._supervision import RestartChild as RestartChild
from ._actors._supervision import RestartType as RestartType
from ._actors._supervision import StartChild as StartChild
from ._actors._supervision import Strategy as Strategy
from ._actors._supervision import Supervisor as Supervisor
from ._actors._supervision import TerminateChild as TerminateChild
from ._actors._supervision import WhichChildren as WhichChildren
from ._actors._system import ActorSystem as ActorSystem
from ._cells._atomic import AtomicBool as AtomicBool
from ._cells._atomic import AtomicCell as AtomicCell
from ._cells._atomic import AtomicInt as AtomicInt
from ._cells._atomic import CellStatistics as CellStatistics
from ._cells._guarded import Guarded as Guarded
from ._cells._guarded import GuardedSection as GuardedSection
from ._cells._queue import ArrayQueue as ArrayQueue
from ._cells._queue import ConcurrentStack as ConcurrentStack
from ._cells._sharded import ShardedCounter as ShardedCounter
from ._channels._base import DEFAULT_YIELD_EVERY as DEFAULT_YIELD_EVERY
from ._channels._base import Receiver as Receiver
from ._channels._bridge import iterate_in_thread as iterate_in_thread
from ._channels._broadcast import BroadcastSender as BroadcastSender
from ._channels._broadcast import BroadcastStatistics as BroadcastStatistics
from ._channels._broadcast import Subscription as Subscription
from ._channels._broadcast import SubscriptionStatistics as SubscriptionStatistics
from ._channels._broadcast import broadcast as broadcast
from ._channels._channel import channel as channel
from ._channels._compat import MemoryObjectReceiveStream as MemoryObjectReceiveStream
from ._channels._compat import MemoryObjectSendStream as MemoryObjectSendStream
from ._channels._compat import create_memory_object_stream as create_memory_object_stream
from ._channels._endpoints import ChannelReceiver as ChannelReceiver
from ._channels._endpoints import Sender as Sender
from ._channels._fanout import fan_out as fan_out
from ._channels._merge import MergedReceiver as MergedReceiver
from ._channels._merge import MergeStatistics as MergeStatistics
from ._channels._merge import merge as merge
from ._channels._oneshot import OneshotReceiver as OneshotReceiver
from ._channels._oneshot import OneshotSender as OneshotSender
from ._channels._oneshot import oneshot as oneshot
from ._channels._select import Branch as Branch
from ._channels._select import Recv as Recv
from ._channels._select import Send as Send
from ._channels._select import select as select
from ._channels._select import select_nowait as select_nowait
from ._channels._state import ChannelStatistics as ChannelStatistics
from ._channels._threads import ThreadGroup as ThreadGroup
from ._channels._threads import ThreadGroupStatistics as ThreadGroupStatistics
from ._channels._threads import thread_group as thread_group
from ._exceptions import ActorNameTaken as ActorNameTaken
from ._exceptions import ActorStartError as ActorStartError
from ._exceptions import ActorStopped as ActorStopped
from ._exceptions import AwaitInCriticalSectionError as AwaitInCriticalSectionError
from ._exceptions import DeadlockError as DeadlockError
from ._exceptions import EventLoopBlockingError as EventLoopBlockingError
from ._exceptions import HandlerFailed as HandlerFailed
from ._exceptions import Lagged as Lagged
from ._exceptions import LinkedActorFailed as LinkedActorFailed
from ._exceptions import MailboxFull as MailboxFull
from ._exceptions import MessageDropped as MessageDropped
from ._exceptions import RestartIntensityExceeded as RestartIntensityExceeded
from ._exceptions import SendBrokenError as SendBrokenError
from ._exceptions import SendClosedError as SendClosedError

__all__ = [
    "DEFAULT_YIELD_EVERY",
    "Actor",
    "ActorContext",
    "ActorNameTaken",
    "ActorRef",
    "ActorSnapshot",
    "ActorStartError",
    "ActorStopped",
    "ActorSystem",
    "ArrayQueue",
    "AtomicBool",
    "AtomicCell",
    "AtomicInt",
    "AwaitInCriticalSectionError",
    "Backoff",
    "Branch",
    "BroadcastSender",
    "BroadcastStatistics",
    "CellStatistics",
    "ChannelReceiver",
    "ChannelStatistics",
    "ChildInfo",
    "ChildSpec",
    "Clock",
    "ConcurrentStack",
    "DeadLetter",
    "DeadLetterReason",
    "DeadlockError",
    "DeleteChild",
    "Directive",
    "ErrorReply",
    "EventLoopBlockingError",
    "GetOrStartChild",
    "Guarded",
    "GuardedSection",
    "HandlerFailed",
    "Lagged",
    "LinkedActorFailed",
    "Mailbox",
    "MailboxFull",
    "MailboxStatistics",
    "MemoryObjectReceiveStream",
    "MemoryObjectSendStream",
    "MergeStatistics",
    "MergedReceiver",
    "MessageDropped",
    "OneshotReceiver",
    "OneshotSender",
    "OverflowPolicy",
    "Receiver",
    "Recv",
    "Ref",
    "Request",
    "RestartChild",
    "RestartIntensityExceeded",
    "RestartType",
    "Send",
    "SendBrokenError",
    "SendClosedError",
    "Sender",
    "ShardedCounter",
    "StartChild",
    "Strategy",
    "Subscription",
    "SubscriptionStatistics",
    "Supervisor",
    "SystemSnapshot",
    "TerminateChild",
    "Terminated",
    "ThreadGroup",
    "ThreadGroupStatistics",
    "WhichChildren",
    "broadcast",
    "channel",
    "create_memory_object_stream",
    "fan_out",
    "iterate_in_thread",
    "merge",
    "oneshot",
    "select",
    "select_nowait",
    "thread_group",
]

# The installed distribution's version, read on first use (importlib.metadata costs ~18 ms to
# import, more than a tenth of importing fearless) and then kept as a module global.
__version__: str


def __getattr__(name: str) -> str:
    if name != "__version__":
        raise AttributeError(f"module 'fearless' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("fearless")
    except PackageNotFoundError:  # a source tree on sys.path, never installed
        found = "0+unknown"
    globals()["__version__"] = found
    return found
