"""Subscribe (asyncio flavour): the followed series' records, across reconnects.

How it resumes, and what both flavours share: :mod:`mdcache_client._live`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc

from mdcache_client._concurrency import AsyncBackoff, AsyncCancelled
from mdcache_client._errors import from_rpc_error
from mdcache_client._live import BACKOFF, StreamedRecord, _Following, _giving_up


class AsyncSubscription(_Following):
    """``async for change in AsyncSubscription(...)``: reconnects after UNAVAILABLE."""

    def __aiter__(self) -> AsyncIterator[StreamedRecord]:
        return self._changes()

    async def __aenter__(self) -> AsyncSubscription:
        return self

    async def open(self) -> None:
        """Subscribes now, returning once the server follows the series: a write made
        after this is given. (Iterating subscribes too, without waiting.)"""
        if self._call is None:
            self._subscribe()
        with contextlib.suppress(grpc.RpcError):  # raised again, or retried, when iterated
            await self._call.initial_metadata()

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def _changes(self) -> AsyncIterator[StreamedRecord]:
        backoff = AsyncBackoff(*BACKOFF)
        while not self._closed:
            call = self._call
            if call is None or call.done():
                call = self._subscribe()
            try:
                async for message in call:
                    backoff.reset()
                    change = self.state.take(message)
                    if change is not None:
                        yield change
                return
            except AsyncCancelled:  # closing an asyncio call raises it (a blocking one: never)
                if self._closed:
                    return
                raise
            except grpc.RpcError as exc:
                if self._closed:
                    return
                if _giving_up(exc, self.state):
                    raise from_rpc_error(exc) from None
            finally:
                call.cancel()
                self._call = None
            await backoff.wait()
