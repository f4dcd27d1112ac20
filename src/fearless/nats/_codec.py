"""Encoding: JSON by msgspec, decoded into the declared type; never pickle.

JSON rather than MessagePack: a publisher in any language (or the ``nats`` command line) can
write a valid item, and a payload can be read in a log. msgspec's JSON is fast enough that the
network dominates (about a microsecond for a small struct, against hundreds for a stored publish).

An item is checked at the sender by decoding what was encoded: a ``str`` sent on a channel of
``int`` fails at ``send`` with ``TypeError``, not later at some receiver in another process. What a
receiver cannot decode (a foreign or malicious publisher, an older schema) is an
:class:`Undecodable`: reported, never delivered as an item.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from typing import Any, Generic, TypeVar

try:
    import msgspec
    import nats  # noqa: F401  (checked here, imported where used)
except ImportError as exc:  # pragma: no cover - every test run has the extra
    message = f"fearless.nats needs the nats extra (pip install 'fearless[nats]'): no {exc.name}"
    raise ImportError(message) from None

__all__ = ["Codec", "Undecodable"]

T = TypeVar("T")

logger = logging.getLogger("fearless.nats")

# How many undecodable payloads a receiver keeps for inspection (the oldest are dropped; the
# statistics count them all).
KEEP_UNDECODABLE = 100


@dataclasses.dataclass(frozen=True)
class Undecodable:
    """A payload that did not decode into the channel's type: where it came from and why."""

    subject: str
    payload: bytes
    error: str
    sequence: int | None = None


class Codec(Generic[T]):
    """Encodes items of one declared type and decodes payloads into it."""

    def __init__(self, item_type: Any) -> None:
        self.item_type = item_type
        try:
            self._decoder: msgspec.json.Decoder[T] = msgspec.json.Decoder(item_type)
        except TypeError as exc:
            raise TypeError(
                f"fearless.nats cannot encode items of type {item_type!r}: {exc}"
            ) from None
        self._encoder = msgspec.json.Encoder()
        self.undecodable: deque[Undecodable] = deque(maxlen=KEEP_UNDECODABLE)
        self.undecodable_count = 0

    def encode(self, item: T) -> bytes:
        """The payload for ``item``; ``TypeError`` if it is not a valid ``item_type``."""
        try:
            payload = self._encoder.encode(item)
            self._decoder.decode(payload)
        except (TypeError, msgspec.ValidationError) as exc:
            raise TypeError(f"{item!r} is not a valid {_name(self.item_type)}: {exc}") from None
        return payload

    def decode(self, payload: bytes) -> T:
        """The item; ``msgspec.DecodeError`` (or its ``ValidationError``) if it does not decode."""
        return self._decoder.decode(payload)

    def report(self, subject: str, payload: bytes, error: Exception, sequence: int | None) -> None:
        """Record a payload that did not decode: logged, counted, kept for inspection."""
        self.undecodable_count += 1
        entry = Undecodable(subject, bytes(payload[:4096]), str(error), sequence)
        self.undecodable.append(entry)
        logger.warning(
            "fearless.nats: dropped a payload on %s that is not a valid %s: %s",
            subject,
            _name(self.item_type),
            error,
        )


def _name(item_type: Any) -> str:
    return getattr(item_type, "__name__", None) or repr(item_type)
