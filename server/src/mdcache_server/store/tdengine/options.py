"""The TDengine store's URL, parsed and validated once into :class:`TDengineOptions`.

::

    taos://user:password@host:6030/dbname?keep_days=36500&duration_days=365   native (libtaos)
    taos://user:password@host:6030/dbname?max_retry_wait_ms=2000              (libtaos retries)
    taos://user:password@h1:6030,h2:6030,h3:6030/dbname?replica=3&vgroups=4  a cluster
    taosws://user:password@host:6041/dbname?conn_retries=2                   WebSocket

Everything that reaches SQL from here is checked strictly: the database name is
an identifier, every number is an integer in TDengine's documented range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, unquote, urlsplit

from mdcache_server.errors import ConfigError

NATIVE: Final = "taos"
WEBSOCKET: Final = "taosws"
DEFAULT_PORTS: Final = {NATIVE: 6030, WEBSOCKET: 6041}
DATABASE_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
DEFAULT_KEEP_DAYS: Final = 36_500  # 100 years: every timestamp the service accepts is inside KEEP
# A year a data file group: a year of daily bars is one or two groups to read, not 37. On
# 3.2.2.2 with 10^7 rows (2,000 series of daily bars), a 250-bar window read in 17.2 ms at
# DURATION 10 and 1.5 ms at 365 (0.8 ms at 10^4 rows either way), and building the 10^7
# rows took 135 s against 62 s (bench/PROFILE.md, 2026-12-07).
DEFAULT_DURATION_DAYS: Final = 365
MAX_KEEP_DAYS: Final = 365_000
MAX_DURATION_DAYS: Final = 3_650
# Documented DSN parameters of taos-ws-py; passed through as strings, as it requires.
WS_PARAMS: Final = ("conn_retries", "retry_backoff_ms", "retry_backoff_max_ms")
COMMON_PARAMS: Final = (
    "keep_days",
    "duration_days",
    "wal_level",
    "max_retry_wait_ms",
    "replica",
    "vgroups",
)
REPLICAS: Final = (1, 3)  # what TDengine 3 accepts
MAX_VGROUPS: Final = 1024
# How long libtaos retries a request that found no server before it fails (its
# maxRetryWaitTime, 10 s by default): a call is answered UNAVAILABLE within a few of these,
# and a worker is not held 10 s by each call while the server is down.
DEFAULT_MAX_RETRY_WAIT_MS: Final = 2_000


@dataclass(frozen=True, slots=True)
class TDengineOptions:
    """Where the TDengine store lives and how its database is created."""

    scheme: str
    endpoints: tuple[tuple[str, int], ...]  # (host, port), tried in order to connect
    user: str
    password: str = field(repr=False)
    database: str
    keep_days: int = DEFAULT_KEEP_DAYS
    duration_days: int = DEFAULT_DURATION_DAYS
    wal_level: int = 2  # 2: fsync before a write is answered, as SQLite's synchronous=FULL
    max_retry_wait_ms: int = DEFAULT_MAX_RETRY_WAIT_MS  # native only: libtaos' maxRetryWaitTime
    replica: int | None = None  # None: TDengine's default (1)
    vgroups: int | None = None  # None: TDengine's default
    ws_params: tuple[tuple[str, str], ...] = ()

    @property
    def host(self) -> str:
        """The first endpoint's host."""
        return self.endpoints[0][0]

    @property
    def port(self) -> int:
        """The first endpoint's port."""
        return self.endpoints[0][1]

    @property
    def address(self) -> str:
        """``scheme://host:port[,host:port...]/db`` for logs (no credentials)."""
        hosts = ",".join(f"{h}:{p}" for h, p in self.endpoints)
        return f"{self.scheme}://{hosts}/{self.database}"


def _endpoints(text: str, default_port: int) -> tuple[tuple[str, int], ...]:
    """``host1:port1,host2,[::1]:port3`` as (host, port) pairs."""
    found = []
    for item in text.split(","):
        host, port = item, ""
        if item.startswith("["):  # [IPv6]:port
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":")
        elif ":" in item:
            host, _, port = item.rpartition(":")
        if not host or not re.fullmatch(r"[A-Za-z0-9._:-]{1,253}", host):
            raise ConfigError(f"tdengine URL: bad host {item!r} in {text!r}")
        if port and not (re.fullmatch(r"[0-9]{1,5}", port) and 0 < int(port) < 65536):
            raise ConfigError(f"tdengine URL: bad port {port!r} in {text!r}")
        found.append((host, int(port) if port else default_port))
    return tuple(found)


def _int_option(options: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = options.pop(name, None)
    if text is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", text) or not low <= int(text) <= high:
        raise ConfigError(
            f"tdengine URL: {name} must be an integer in [{low}, {high}], not {text!r}"
        )
    return int(text)


def _query(query: str) -> dict[str, str]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise ConfigError(f"tdengine URL: bad query string {query!r}: {exc}") from None
    options: dict[str, str] = {}
    for key, value in pairs:
        if key in options:
            raise ConfigError(f"tdengine URL: option {key!r} given twice")
        options[key] = value
    return options


def parse_url(url: str) -> TDengineOptions:
    """Parses ``taos://`` or ``taosws://`` URLs; raises ConfigError naming what is wrong.

    >>> parse_url("taosws://root:taosdata@td:6041/market").port
    6041
    """
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise ConfigError(f"tdengine URL must start with taos:// or taosws://, not {url!r}")
    if parts.fragment:
        raise ConfigError("tdengine URL: a fragment (#...) means nothing here")
    userinfo, _, hostlist = parts.netloc.rpartition("@")
    endpoints = _endpoints(hostlist or "localhost", DEFAULT_PORTS[parts.scheme])
    if parts.scheme == WEBSOCKET and len(endpoints) > 1:
        raise ConfigError(
            "tdengine URL: taosws:// takes one taosAdapter endpoint; a cluster's "
            "endpoints are for taos://"
        )
    user, has_password, password = userinfo.partition(":")
    database = unquote(parts.path).removeprefix("/")
    if not DATABASE_NAME.fullmatch(database):
        raise ConfigError(
            "tdengine URL needs a database name of letters, digits and _ (not starting with "
            f"a digit, at most 64): {parts.scheme}://user:password@host:port/dbname, not "
            f"path {parts.path!r}"
        )
    options = _query(parts.query)
    keep = _int_option(options, "keep_days", DEFAULT_KEEP_DAYS, 1, MAX_KEEP_DAYS)
    # A third of a short KEEP at most, by default (KEEP must be 3 x DURATION or more).
    default_duration = max(min(DEFAULT_DURATION_DAYS, keep // 3), 1)
    duration = _int_option(options, "duration_days", default_duration, 1, MAX_DURATION_DAYS)
    if keep < 3 * duration:
        raise ConfigError(
            f"tdengine URL: keep_days ({keep}) must be at least 3 x duration_days ({duration})"
        )
    wal_level = _int_option(options, "wal_level", 2, 1, 2)
    retry_wait = _int_option(options, "max_retry_wait_ms", DEFAULT_MAX_RETRY_WAIT_MS, 100, 600_000)
    replica = _int_option(options, "replica", 0, 1, 3) if "replica" in options else None
    if replica is not None and replica not in REPLICAS:
        raise ConfigError(f"tdengine URL: replica must be 1 or 3, not {replica}")
    vgroups = _int_option(options, "vgroups", 0, 1, MAX_VGROUPS) if "vgroups" in options else None
    ws_params: list[tuple[str, str]] = []
    if parts.scheme == WEBSOCKET:
        for name in WS_PARAMS:
            if name in options:
                ws_params.append((name, str(_int_option(options, name, 0, 0, 3_600_000))))
    if options:
        known = COMMON_PARAMS + (WS_PARAMS if parts.scheme == WEBSOCKET else ())
        raise ConfigError(
            f"tdengine URL: unknown option(s) {', '.join(sorted(options))} for "
            f"{parts.scheme}://; known: {', '.join(known)}"
        )
    return TDengineOptions(
        scheme=parts.scheme,
        endpoints=endpoints,
        user=unquote(user) if userinfo else "root",
        password=unquote(password) if has_password else "taosdata",
        # TDengine folds unquoted names to lower case; metadata queries need the folded name.
        database=database.lower(),
        keep_days=keep,
        duration_days=duration,
        wal_level=wal_level,
        max_retry_wait_ms=retry_wait,
        replica=replica,
        vgroups=vgroups,
        ws_params=tuple(ws_params),
    )
