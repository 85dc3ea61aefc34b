"""The servers of one SQLite file, told apart by a lock beside it (``<file>-servers``).

A server that follows no change feed (``--subscribe-relay off``, or ``auto`` with one
process) keeps copies in its hot tier that only its own Writes change: a second server
writing the file would leave them stale past every freshness bound, unseen. So such a
server must be the file's only one, and takes the lock alone; servers that follow the
feed (the journal beside the file) take it together. A server whose claim conflicts does
not start, and says which setting to change. The lock is ``flock``'s: the kernel drops it
when the process ends, however it ends, and it is one per open file, so two servers in
one process conflict as two processes would.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from mdcache_server.errors import ConfigError

RELAY_ON = "start every server of one file with --subscribe-relay on, or one with --processes N"


class FileClaim:
    """This server's place among the file's servers, held until :meth:`release`."""

    def __init__(self, path: Path, *, alone: bool) -> None:
        self.path = Path(f"{path}-servers")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _take(self._fd, path, alone=alone)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # drops the lock


def _take(fd: int, db: Path, *, alone: bool) -> None:
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if alone else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    if not alone:
        raise ConfigError(
            f"another mdcache server serves {db} without following its change feed "
            "(--subscribe-relay off, or auto with one process): its hot tier would miss "
            f"this server's writes; restart it with --subscribe-relay on ({RELAY_ON})"
        )
    try:  # who holds it: servers following the feed (shared), or one alone (exclusive)?
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ConfigError(
            f"another mdcache server serves {db} alone: each would keep copies the other's "
            f"writes never reach; {RELAY_ON}"
        ) from None
    fcntl.flock(fd, fcntl.LOCK_UN)
    raise ConfigError(
        f"other mdcache servers serve {db}, following its change feed: this one, not "
        f"following it (--subscribe-relay off, or auto with one process), would keep copies "
        f"their writes never reach; {RELAY_ON}"
    )
