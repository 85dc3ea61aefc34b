"""Network namespaces for partition tests: a three-node TDengine cluster and two
``mdcache serve`` replicas, each in a namespace of its own, joined by two bridges.

::

    root namespace (the workload, the checker)
      ├── bridge A  10.231.N.0/24     clients  <-> replicas      root .254, r1 .11, r2 .12
      └── bridge B  10.231.N+1.0/24   replicas <-> TDengine      root .254, r1 .11, r2 .12,
                                                                 td1 .1, td2 .2, td3 .3

Each replica has two interfaces, one on each bridge, so its link to TDengine (B) is cut
while clients still reach it (A). Cuts are of two kinds, neither needing iptables (which
is not assumed) nor netem (not available here):

- a link down: the root side of a veth, ``ip link set ... down``; the namespace keeps its
  address, its peers see silence (no reset), as with a pulled cable;
- a cut between two namespaces only: a ``blackhole`` route to the other's address in each
  of them, so that they drop what they send each other and still reach everyone else.

Names carry the prefix ``mdp`` and the pid of the run that made them (``mdp<pid>...``), so
that :func:`remove_leftovers` removes what a run that died left behind (its pid gone), and
nothing of a run still going. Traffic goes only to addresses inside these namespaces.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

PREFIX = "mdp"
PORT = 6030  # each node's, inside its own namespace
MDCACHE_PORT = 50051  # each replica's, inside its own namespace
T = TypeVar("T")
NAME = re.compile(rf"^{PREFIX}(\d+)")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


def in_ns(ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return ip("netns", "exec", ns, *args, check=check)


def unavailable() -> str:
    """Why namespaces cannot be made here ('' when they can)."""
    if os.geteuid() != 0:
        return "partition tests need root (network namespaces, veths, a bridge)"
    if shutil.which("ip") is None:
        return "partition tests need iproute2's ip"
    if shutil.which("socat") is None:
        return "partition tests need socat (apt-get install socat): tdengine-start's relay"
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    ip("netns", "del", probe, check=False)
    return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ns_pids(ns: str) -> list[int]:
    out = ip("netns", "pids", ns, check=False).stdout
    return [int(p) for p in out.split()]


def _kill_ns(ns: str) -> None:
    """Ends every process left in one of our namespaces (by pid), then removes it."""
    for sig in (signal.SIGKILL,):
        for pid in _ns_pids(ns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    deadline = time.monotonic() + 10
    while _ns_pids(ns) and time.monotonic() < deadline:
        time.sleep(0.1)
    ip("netns", "del", ns, check=False)


def remove_leftovers(owner: int | None = None) -> list[str]:
    """Removes namespaces and links named by this harness whose run has ended (or, with
    ``owner``, those of that run). Returns what it removed."""

    def ours(name: str) -> bool:
        match = NAME.match(name)
        if match is None:
            return False
        pid = int(match.group(1))
        return pid == owner if owner is not None else not _alive(pid)

    removed: list[str] = []
    for line in ip("netns", "list", check=False).stdout.splitlines():
        ns = line.split()[0] if line.split() else ""
        if ours(ns):
            _kill_ns(ns)
            removed.append(ns)
    for line in ip("-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(":")
        if len(parts) < 2:
            continue
        link = parts[1].strip().split("@")[0]
        if ours(link):
            ip("link", "del", link, check=False)
            removed.append(link)
    return removed


def free_subnets() -> int:
    """N such that neither 10.231.N.0/24 nor 10.231.N+1.0/24 is in use here."""
    used = ip("-o", "addr", "show", check=False).stdout + ip("route", check=False).stdout
    taken = {int(m) for m in re.findall(r"10\.231\.(\d+)\.", used)}
    start = (os.getpid() % 100) * 2
    for step in range(0, 254, 2):
        n = (start + step) % 254
        if n not in taken and n + 1 not in taken:
            return n
    raise RuntimeError("no free 10.231.N.0/24 pair")


@dataclass
class Node:
    """A taosd in a namespace of its own (tdengine-start with TDENGINE_FQDN)."""

    name: str  # td1..td3
    ns: str
    veth: str  # the root side on bridge B
    address: str
    folder: Path
    home: Path
    first_ep: str
    pid: int = 0

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{PORT}"

    def _starting(self, timeout: int) -> subprocess.Popen[str]:
        env = {
            **os.environ,
            "TDENGINE_FQDN": self.address,
            "TDENGINE_FIRST_EP": self.first_ep,
            "TDENGINE_START_TIMEOUT": str(timeout),
        }
        return subprocess.Popen(
            ["ip", "netns", "exec", self.ns, str(self.home / "tdengine-start"), str(self.folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )

    def start(self, timeout: int = 90) -> None:
        """Starts taosd (and its socat relay) and waits until it answers."""
        proc = self._starting(timeout)
        out, _ = proc.communicate(timeout=timeout + 60)
        self.pid = int((self.folder / "taosd.pid").read_text()) if proc.returncode == 0 else 0
        if proc.returncode != 0:
            raise RuntimeError(f"{self.name} did not start: {out}")

    def start_background(self, timeout: int = 120) -> subprocess.Popen[str]:
        """Starts taosd without waiting for it to answer (a node cut off cannot reach the
        cluster to answer): returns once its process runs; tdengine-start goes on waiting."""
        pidfile = self.folder / "taosd.pid"
        pidfile.unlink(missing_ok=True)
        proc = self._starting(timeout)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, ValueError):
                self.pid = int(pidfile.read_text())
                return proc
            time.sleep(0.1)
        proc.kill()
        raise RuntimeError(f"{self.name}: no taosd.pid within 30 s")

    def alive(self) -> bool:
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, IndexError):
            return False
        return state not in ("Z", "X")

    def kill(self) -> None:
        """SIGKILL, as a machine losing power; the relay stays (tdengine-start replaces it)."""
        if self.pid and self.alive():
            os.kill(self.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        (self.folder / "taosd.pid").unlink(missing_ok=True)

    def stop(self) -> None:
        subprocess.run(
            ["ip", "netns", "exec", self.ns, str(self.home / "tdengine-stop"), str(self.folder)],
            capture_output=True,
            timeout=90,
            check=False,
        )


class Replica:
    """``mdcache serve`` in a namespace of its own, listening on its bridge-A address."""

    def __init__(self, name: str, ns: str, address: str, store_url: str, log: Path) -> None:
        self.name, self.ns, self.address, self.store_url = name, ns, address, store_url
        self.log = log
        self.proc: subprocess.Popen[str] | None = None
        self.events: list[dict[str, Any]] = []
        self._serving = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def target(self) -> str:
        return f"{self.address}:{MDCACHE_PORT}"

    def start(self, timeout: float = 90) -> None:
        self._serving.clear()
        environ = {k: v for k, v in os.environ.items() if not k.startswith("MDCACHE_")}
        self.proc = subprocess.Popen(
            [
                *("ip", "netns", "exec", self.ns),
                *(sys.executable, "-m", "mdcache_server", "serve"),
                *("--listen", self.target, "--log-format", "json"),
                *("--store", self.store_url, "--health-interval", "0.5"),
                *("--replica-id", self.name),
            ],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            env=environ,
            text=True,
            cwd=self.log.parent,  # a core dump lands beside its log, not in the checkout
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._serving.wait(timeout):
            raise RuntimeError(f"replica {self.name} did not serve; see {self.log}")

    def _read(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        with self.log.open("a") as out:
            for line in self.proc.stderr:
                out.write(line)
                out.flush()
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    self.events.append(event)
                    if event.get("event") == "serving":
                        self._serving.set()

    def crashed(self) -> str:
        """Why the replica ended on its own ('' while it runs or after a clean stop)."""
        code = self.proc.poll() if self.proc is not None else None
        return "" if code is None else f"replica {self.name} exited {code}; see {self.log}"

    def stop(self) -> str:
        """SIGTERM, and waits; returns '' after a clean exit, else what happened."""
        if self.proc is None:
            return ""
        ended = self.crashed()  # before this stop: it died by itself
        if not ended:
            self.proc.send_signal(signal.SIGTERM)
            try:
                code = self.proc.wait(30)
                ended = "" if code == 0 else f"replica {self.name} exited {code} on SIGTERM"
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                ended = f"replica {self.name} did not stop within 30 s of SIGTERM"
        if self._reader is not None:
            self._reader.join(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return ended


@dataclass
class Cut:
    """One fault's cuts, undone by :meth:`heal` (links up, blackhole routes removed)."""

    links: list[str] = field(default_factory=list)
    routes: list[tuple[str, str]] = field(default_factory=list)  # (namespace, address)

    def heal(self) -> None:
        for link in self.links:
            ip("link", "set", link, "up", check=False)
        for ns, address in self.routes:
            in_ns(ns, "ip", "route", "del", "blackhole", f"{address}/32", check=False)
        self.links, self.routes = [], []


class Topology:
    """The namespaces, bridges, veths, nodes and replicas of one run; :meth:`remove` undoes
    all of it (also after a partial :meth:`build`)."""

    def __init__(self, folder: Path, home: Path) -> None:
        self.folder, self.home = folder, home
        self.tag = f"{PREFIX}{os.getpid()}"
        n = free_subnets()
        self.net_a, self.net_b = f"10.231.{n}", f"10.231.{n + 1}"
        self.bridge_a, self.bridge_b = f"{self.tag}A", f"{self.tag}B"
        first = f"{self.net_b}.1:{PORT}"
        self.nodes = [
            Node(
                f"td{i}",
                f"{self.tag}-td{i}",
                f"{self.tag}t{i}",
                f"{self.net_b}.{i}",
                folder / f"td{i}",
                home,
                first,
            )
            for i in (1, 2, 3)
        ]
        self.replicas: list[Replica] = []
        self.cuts: list[Cut] = []
        self.crashes: list[str] = []  # replicas that died, or did not stop cleanly

    # -- building -------------------------------------------------------------------------

    def _bridge(self, name: str, address: str) -> None:
        ip("link", "add", name, "type", "bridge")
        ip("addr", "add", f"{address}/24", "dev", name)
        ip("link", "set", name, "up")

    def _attach(self, ns: str, root_side: str, inside: str, bridge: str, address: str) -> None:
        ip("link", "add", root_side, "type", "veth", "peer", "name", inside, "netns", ns)
        ip("link", "set", root_side, "master", bridge, "up")
        in_ns(ns, "ip", "addr", "add", f"{address}/24", "dev", inside)
        in_ns(ns, "ip", "link", "set", inside, "up")

    def build(self) -> None:
        remove_leftovers()  # of runs that crashed
        self._bridge(self.bridge_a, f"{self.net_a}.254")
        self._bridge(self.bridge_b, f"{self.net_b}.254")
        for node in self.nodes:
            ip("netns", "add", node.ns)
            in_ns(node.ns, "ip", "link", "set", "lo", "up")
            self._attach(node.ns, node.veth, "eth0", self.bridge_b, node.address)
        for i in (1, 2):
            ns = f"{self.tag}-r{i}"
            ip("netns", "add", ns)
            in_ns(ns, "ip", "link", "set", "lo", "up")
            self._attach(ns, f"{self.tag}r{i}a", "etha", self.bridge_a, f"{self.net_a}.1{i}")
            self._attach(ns, f"{self.tag}r{i}b", "ethb", self.bridge_b, f"{self.net_b}.1{i}")

    def start_cluster(self) -> None:
        for node in self.nodes:
            node.start()
        for node in self.nodes[1:]:
            self.query(f'CREATE DNODE "{node.endpoint}"')
        self.wait("3 dnodes ready", lambda: self.ready("ins_dnodes") == 3)
        for dnode in (2, 3):
            self.wait(f"an mnode on dnode {dnode}", functools.partial(self._mnode_on, dnode))
        self.wait("3 mnodes ready", lambda: self.ready("ins_mnodes") == 3)

    def _mnode_on(self, dnode: int) -> bool:
        self.query(f"CREATE MNODE ON DNODE {dnode}")
        return True

    def url(self, database: str, **options: str) -> str:
        endpoints = ",".join(node.endpoint for node in self.nodes)
        query = "&".join(f"{k}={v}" for k, v in options.items())
        return f"taos://root:taosdata@{endpoints}/{database}" + (f"?{query}" if query else "")

    def start_replicas(self, store_url: str) -> list[Replica]:
        self.replicas = [
            Replica(
                f"r{i}",
                f"{self.tag}-r{i}",
                f"{self.net_a}.1{i}",
                store_url,
                self.folder / f"replica-r{i}.log",
            )
            for i in (1, 2)
        ]
        for replica in self.replicas:
            replica.start()
        return self.replicas

    def restart_replicas(self) -> None:
        """Each replica stopped and started again (a fresh change-feed consumer), so that a
        fault starts from what any deployment starts from, whatever the last one left."""
        for replica in self.replicas:
            ended = replica.stop()
            if ended:
                self.crashes.append(ended)
            replica.start()

    # -- the cluster, from the root namespace (bridge B) ----------------------------------

    def query(self, statement: str) -> list[tuple[Any, ...]]:
        """Through the first node that answers (taospy, from the root namespace)."""
        import taos

        errors = []
        for node in self.nodes:
            if not node.alive():
                continue
            try:
                conn = taos.connect(host=node.address, port=PORT, user="root", password="taosdata")
            except Exception as exc:  # a node cut off: the next one
                errors.append(f"{node.name}: {exc}")
                continue
            try:
                return list(conn.query(statement).fetch_all())
            finally:
                conn.close()
        raise RuntimeError(f"no node answered {statement!r}: {errors}")

    def ready(self, table: str) -> int:
        rows = self.query(f"SELECT status FROM information_schema.{table}")  # noqa: S608
        return sum(1 for (status,) in rows if status == "ready")

    def wait(self, what: str, check: Callable[[], object], seconds: float = 120) -> float:
        started = time.monotonic()
        while True:
            with contextlib.suppress(Exception):  # a node starting or cut: ask again
                if check():
                    return time.monotonic() - started
            if time.monotonic() - started > seconds:
                raise AssertionError(f"cluster: {what} not within {seconds:g} s")
            time.sleep(0.5)

    def wait_for(self, get: Callable[[], T], seconds: float = 60) -> T:
        """``get()``'s value once it raises no more (a cluster settling after a heal)."""
        started = time.monotonic()
        while True:
            try:
                return get()
            except Exception:
                if time.monotonic() - started > seconds:
                    raise
            time.sleep(0.5)

    def whole(self) -> float:
        """Waits until every dnode and mnode is ready; returns how long it took."""
        return self.wait(
            "3 dnodes and 3 mnodes ready",
            lambda: self.ready("ins_dnodes") == 3 and self.ready("ins_mnodes") == 3,
        )

    def leader_node(self, database: str) -> Node:
        """The node holding the leader of the database's (first) vgroup."""
        columns = "v1_dnode, v1_status, v2_dnode, v2_status, v3_dnode, v3_status"
        where = f"db_name = '{database}'"
        rows = self.query(f"SELECT {columns} FROM information_schema.ins_vgroups WHERE {where}")  # noqa: S608
        for row in rows:
            for dnode, status in zip(row[0::2], row[1::2], strict=True):
                if str(status).startswith("leader"):
                    endpoint = self.query(
                        f"SELECT endpoint FROM information_schema.ins_dnodes WHERE id = {dnode}"  # noqa: S608
                    )[0][0]
                    return next(n for n in self.nodes if n.endpoint == endpoint)
        raise AssertionError(f"no vgroup leader of {database}: {rows}")

    # -- faults ---------------------------------------------------------------------------

    def isolate(self, node: Node) -> Cut:
        """The node's link down: cut from every other node, replica and the root."""
        ip("link", "set", node.veth, "down")
        cut = Cut(links=[node.veth])
        self.cuts.append(cut)
        return cut

    def cut_between(self, a: list[tuple[str, str]], b: list[tuple[str, str]]) -> Cut:
        """Each (namespace, address) of ``a`` cut from each of ``b`` and back (blackhole
        routes on both sides); both still reach everyone else."""
        cut = Cut()
        self.cuts.append(cut)
        for ns, _ in a:
            for _, address in b:
                in_ns(ns, "ip", "route", "add", "blackhole", f"{address}/32")
                cut.routes.append((ns, address))
        for ns, _ in b:
            for _, address in a:
                in_ns(ns, "ip", "route", "add", "blackhole", f"{address}/32")
                cut.routes.append((ns, address))
        return cut

    def cut_from_store(self, replica: Replica) -> Cut:
        """The replica's bridge-B link down: no TDengine node reaches it, clients still do."""
        link = f"{self.tag}{replica.name}b"
        ip("link", "set", link, "down")
        cut = Cut(links=[link])
        self.cuts.append(cut)
        return cut

    def heal(self) -> None:
        for cut in self.cuts:
            cut.heal()
        self.cuts = []

    # -- removing -------------------------------------------------------------------------

    def remove(self) -> None:
        """Replicas stopped, nodes stopped, namespaces, veths and bridges removed; each
        step whatever the one before did."""
        with contextlib.suppress(Exception):
            self.heal()
        for replica in self.replicas:
            with contextlib.suppress(Exception):
                replica.stop()
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.kill()  # data thrown away: no need for a clean stop
            with contextlib.suppress(Exception):
                node.stop()  # the relay
        remove_leftovers(owner=os.getpid())


@contextlib.contextmanager
def topology(folder: Path, home: Path) -> Iterator[Topology]:
    """A built :class:`Topology`, removed whatever happens."""
    topo = Topology(folder, home)
    try:
        topo.build()
        yield topo
    finally:
        topo.remove()
