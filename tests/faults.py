"""A real store with faults switched on and off: a part handed to the server, not a patch."""

from __future__ import annotations

import threading
from typing import Any, cast

from mdcache_server.store.base import Store, StoreConnection


class FaultyStore:
    """The real store, whose connections raise ``error()`` from the methods named in
    ``failing`` while ``broken`` is set (as a driver handing back a type nobody expected)."""

    def __init__(self, store: Store, failing: set[str], error: type[Exception]) -> None:
        self.store = store
        self.failing = failing
        self.error = error
        self.broken = threading.Event()
        self.name = store.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)  # what the store says of itself

    def connect(self) -> StoreConnection:
        conn, fault = self.store.connect(), self

        class Faulty:
            def __getattr__(self, name: str) -> Any:
                method = getattr(conn, name)
                if name not in fault.failing:
                    return method

                def call(*args: Any, **kwargs: Any) -> Any:
                    if fault.broken.is_set():
                        raise fault.error(f"{name}: a fault of the test")
                    return method(*args, **kwargs)

                return call

        return cast(StoreConnection, Faulty())

    def as_store(self) -> Store:
        return cast(Store, self)
