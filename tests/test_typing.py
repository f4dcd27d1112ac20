"""Type-level checks, run by mypy --strict over tests/ (never executed at run time).

If variance or the ``channel[T](n)`` typing broke, mypy would flag the lines below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anyio.abc import ObjectReceiveStream, ObjectSendStream

    import fearless

    def senders_are_contravariant(tx: fearless.Sender[float]) -> None:
        narrower: fearless.Sender[int] = tx  # a sender of floats accepts ints
        as_anyio: ObjectSendStream[int] = tx
        del narrower, as_anyio

    def receivers_are_covariant(rx: fearless.Receiver[int]) -> None:
        wider: fearless.Receiver[float] = rx  # a receiver of ints yields floats
        as_anyio: ObjectReceiveStream[complex] = rx
        del wider, as_anyio

    async def factories_are_typed() -> None:
        tx, rx = fearless.channel[int](10)
        tx.send_nowait(1)
        got: int = await rx.receive()
        batch: list[int] = await rx.receive_many(5)
        merged = fearless.merge(rx)
        also: int = await merged.receive()
        atx, arx = fearless.create_memory_object_stream[str](5)
        text: str = await arx.receive()
        await atx.send(text)
        # clone() keeps the concrete class, as anyio's does
        atx2: fearless.MemoryObjectSendStream[str] = atx.clone()
        arx2: fearless.MemoryObjectReceiveStream[str] = arx.clone()
        del atx2, arx2
        del got, batch, also

    class _Msg:
        pass

    class _Ping(_Msg, fearless.Request[int]):
        pass

    class _Pinger(fearless.Actor[_Msg]):
        async def handle(self, message: _Msg) -> int:
            return 1

    async def actor_refs_are_typed(system: fearless.ActorSystem) -> None:
        ref = await system.spawn(_Pinger)
        as_msg: fearless.ActorRef[_Msg] = ref
        narrower: fearless.ActorRef[_Ping] = ref  # contravariant: a ref to _Msg takes a _Ping
        ref.tell(_Msg())
        await ref.send(_Ping())
        answer: int = await ref.ask(_Ping())  # typed by Request[int]
        anything = await ref.ask(_Msg())  # a message that is not a Request: Any
        ref.tell(1)  # type: ignore[arg-type]
        del as_msg, narrower, answer, anything
