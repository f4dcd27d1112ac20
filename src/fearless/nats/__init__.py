"""fearless beyond one process, over NATS with JetStream: ``pip install 'fearless[nats]'``.

``async with fearless.nats.connect(system="shop") as node:`` joins the system ``shop`` (with no
URL, on an embedded server: :class:`NatsServer`). A node opens durable channels
(``await node.open_channel("jobs", Job, capacity=1000)``) whose senders and receivers are anyio
object streams, in any number of processes. The guide is docs/nats.md.

The NATS client (nats-py) is an asyncio library: on trio it runs on a private asyncio loop in a
thread of its own, and the API is the same on every backend.
"""

from ._actors import Publication as Publication
from ._actors import RemoteError as RemoteError
from ._actors import RemoteRef as RemoteRef
from ._broadcast import Publisher as Publisher
from ._cells import CellStatistics as CellStatistics
from ._cells import DistributedCell as DistributedCell
from ._cells import DistributedInt as DistributedInt
from ._cells import UndecodableValue as UndecodableValue
from ._channel import ChannelDeleted as ChannelDeleted
from ._channel import ChannelEnded as ChannelEnded
from ._channel import Delivery as Delivery
from ._channel import DurableReceiver as DurableReceiver
from ._channel import DurableSender as DurableSender
from ._channel import PayloadTooLarge as PayloadTooLarge
from ._channel import ReceiverStatistics as ReceiverStatistics
from ._channel import SenderStatistics as SenderStatistics
from ._codec import Undecodable as Undecodable
from ._node import ConnectFailed as ConnectFailed
from ._node import Node as Node
from ._node import connect as connect
from ._registry import REPORTED_WITHIN as REPORTED_WITHIN
from ._registry import ClusterSnapshot as ClusterSnapshot
from ._registry import PublishedActor as PublishedActor
from ._server import NatsServer as NatsServer
from ._server import NatsServerError as NatsServerError
from ._server import find_nats_server as find_nats_server

__all__ = [
    "REPORTED_WITHIN",
    "CellStatistics",
    "ChannelDeleted",
    "ChannelEnded",
    "ClusterSnapshot",
    "ConnectFailed",
    "Delivery",
    "DistributedCell",
    "DistributedInt",
    "DurableReceiver",
    "DurableSender",
    "NatsServer",
    "NatsServerError",
    "Node",
    "PayloadTooLarge",
    "Publication",
    "PublishedActor",
    "Publisher",
    "ReceiverStatistics",
    "RemoteError",
    "RemoteRef",
    "SenderStatistics",
    "Undecodable",
    "UndecodableValue",
    "connect",
    "find_nats_server",
]
