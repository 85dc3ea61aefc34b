"""How an acknowledged Write reaches the hub: directly, or through the store's change feed.

The composition root (``app.compose``) picks one and hands it to the servicer:

- :class:`Direct`: this process's Writes are published as they are acknowledged. Enough
  where no other replica writes to the store (one server on its SQLite file).
- :class:`Relayed`: a Write's records go to the store's change feed, and the relay
  (``live/relay.py``) publishes what comes out of it, every replica's writes in the
  store's order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from mdcache_server.live.hub import Hub
from mdcache_server.live.relay import Relay
from mdcache_server.model import Record, SeriesKey

Batches = Sequence[tuple[SeriesKey, Sequence[Record]]]


class Delivery(Protocol):
    """The way from a stored Write to the streams of :attr:`hub`."""

    @property
    def hub(self) -> Hub:
        """The hub the Writes reach."""

    async def acknowledged(self, batches: Batches) -> None:
        """A Write stored, before it is answered."""

    async def ready(self) -> None:
        """Returns once every write acknowledged from now on will reach the streams."""

    def horizon(self) -> asyncio.Future[int]:
        """The hub's ``seq`` by which every change stored before this call is published."""


class Direct:
    """Publishes each Write of this process as it is acknowledged."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    async def acknowledged(self, batches: Batches) -> None:
        self.hub.publish(batches)

    async def ready(self) -> None:
        return

    def horizon(self) -> asyncio.Future[int]:
        return self.hub.horizon()


class Relayed:
    """Hands each Write to the store's change feed; the relay publishes every replica's."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.hub = relay.hub

    async def acknowledged(self, batches: Batches) -> None:
        changes = [
            (series, Record(r.ts_ms, r.payload))
            for series, records in batches
            for r in {r.ts_ms: r for r in records}.values()  # a timestamp twice: the last
        ]
        await self.relay.acknowledged(changes)

    async def ready(self) -> None:
        await self.relay.ready()

    def horizon(self) -> asyncio.Future[int]:
        """Once the Writes in flight now are handed over, and the feed has given what
        was handed to it by then."""
        result: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def then() -> None:
            if result.done():
                return
            self.relay.horizon().add_done_callback(
                lambda mark: None if result.done() else result.set_result(mark.result())
            )

        self.hub.settled(then)
        return result
