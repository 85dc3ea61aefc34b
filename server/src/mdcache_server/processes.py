"""``mdcache serve --processes N``: N server processes on one port, under one parent.

One Python process serves on one core. The parent binds the listening address once
(so that port 0 becomes one port for all), then starts N children, each a whole
``mdcache serve`` (a replica of the same store with its own hot tier and worker pool)
listening on that port with SO_REUSEPORT, which gRPC sets on Linux: the kernel spreads
incoming *connections* over the children (calls on one connection stay with its child).

The parent forwards SIGTERM and SIGINT to every child, waits for all of them to drain,
and exits 0 (1 if a child failed to drain). A child that dies meanwhile is started again
after a backoff that doubles from 0.5 s to 30 s while it keeps dying (``child_exited``,
``child_restarted``). Each child is named ``<replica>#<i>`` among the replicas (so
their counters in the store add up), and serves metrics on the metrics port plus ``i``.
"""

from __future__ import annotations

import asyncio
import ctypes
import signal
import socket
import sys
import time
from collections.abc import Sequence

import structlog

from mdcache_server.config import Config, split_host_port

log = structlog.get_logger(__name__)
FIRST_DELAY = 0.5
MAX_DELAY = 30.0
CHILD = [sys.executable, "-m", "mdcache_server", "serve"]
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with_parent() -> None:
    """In the child before it runs: SIGTERM when the parent dies, even killed (Linux), so
    that no child outlives it and holds the port."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def reserve(listen: str) -> tuple[socket.socket, str]:
    """Binds the address with SO_REUSEPORT (not listening: no connection is queued on it)
    and keeps it, so the port stays this host's for children started later; returns it
    and the address with the port chosen."""
    host, port = split_host_port(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    return sock, f"{shown}:{bound}"


def child_args(config: Config, argv: Sequence[str], listen: str, index: int) -> list[str]:
    """The child's command line: the parent's, with one process, the port, a name."""
    replica = f"{config.replica_id or socket.gethostname() + ':' + listen.rsplit(':', 1)[1]}"
    extra = ["--processes", "1", "--listen", listen, "--replica-id", f"{replica}#{index}"]
    if config.subscribe_relay == "auto":
        extra += ["--subscribe-relay", "on"]  # the children are replicas of one store
    if config.metrics_listen:
        host, port = split_host_port(config.metrics_listen)
        extra += ["--metrics-listen", f"{host}:{port + index if port else 0}"]
    return [*CHILD, *argv, *extra]


class Parent:
    """Starts the children, keeps them running, and stops them on a signal."""

    def __init__(self, config: Config, argv: Sequence[str]) -> None:
        self.config = config
        self.argv = list(argv)
        self.stopping = asyncio.Event()
        self.failed = False

    async def run(self) -> int:
        sock, listen = reserve(self.config.listen)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        log.info("processes_starting", processes=self.config.processes, listen=listen)
        try:
            await asyncio.gather(*(self._keep(i, listen) for i in range(self.config.processes)))
        finally:
            sock.close()
        log.info("processes_stopped", processes=self.config.processes, failed=self.failed)
        return 1 if self.failed else 0

    async def _keep(self, index: int, listen: str) -> None:
        """Runs child ``index`` until stopping; restarts it when it dies."""
        delay = FIRST_DELAY
        while not self.stopping.is_set():
            began = time.monotonic()
            proc = await asyncio.create_subprocess_exec(
                *child_args(self.config, self.argv, listen, index), preexec_fn=_die_with_parent
            )
            log.info("child_started", child=index, pid=proc.pid)
            stop = asyncio.ensure_future(self.stopping.wait())
            done = asyncio.ensure_future(proc.wait())
            await asyncio.wait([stop, done], return_when=asyncio.FIRST_COMPLETED)
            if not done.done():
                proc.send_signal(signal.SIGTERM)  # drains, then exits
                code = await done
                stop.cancel()
                log.info("child_stopped", child=index, pid=proc.pid, code=code)
                if code != 0:
                    self.failed = True
                return
            stop.cancel()
            if time.monotonic() - began >= MAX_DELAY:
                delay = FIRST_DELAY  # it ran a good while: not a crash loop
            log.error(
                "child_exited", child=index, pid=proc.pid, code=done.result(), restart_in=delay
            )
            try:
                await asyncio.wait_for(self.stopping.wait(), delay)
                return
            except TimeoutError:
                pass
            delay = min(delay * 2, MAX_DELAY)
            log.info("child_restarted", child=index)
