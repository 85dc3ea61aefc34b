"""Subscribe (blocking flavour): the followed series' records, across reconnects.

How it resumes, and what both flavours share: :mod:`mdcache_client._live`.

Generated from _live_aio.py by scripts/gen-sync-client; do not edit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc

from mdcache_client._concurrency import Backoff, Cancelled
from mdcache_client._errors import from_rpc_error
from mdcache_client._live import BACKOFF, StreamedRecord, _Following, _giving_up


class Subscription(_Following):
    """``for change in Subscription(...)``: reconnects after UNAVAILABLE."""

    def __iter__(self) -> Iterator[StreamedRecord]:
        return self._changes()

    def __enter__(self) -> Subscription:
        return self

    def open(self) -> None:
        """Subscribes now, returning once the server follows the series: a write made
        after this is given. (Iterating subscribes too, without waiting.)"""
        if self._call is None:
            self._subscribe()
        with contextlib.suppress(grpc.RpcError):  # raised again, or retried, when iterated
            self._call.initial_metadata()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _changes(self) -> Iterator[StreamedRecord]:
        backoff = Backoff(*BACKOFF)
        while not self._closed:
            call = self._call
            if call is None or call.done():
                call = self._subscribe()
            try:
                for message in call:
                    backoff.reset()
                    change = self.state.take(message)
                    if change is not None:
                        yield change
                return
            except Cancelled:  # closing an asyncio call raises it (a blocking one: never)
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
            backoff.wait()
