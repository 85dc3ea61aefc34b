"""Configuration: one frozen object, built once in ``main()`` from flags and environment.

Each setting has a flag, an environment variable and a default; a flag wins over
the environment, which wins over the default. Nothing else reads ``os.environ``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mdcache_server.cache.retention import RetentionRules
from mdcache_server.errors import ConfigError
from mdcache_server.model import RESPONSE_ROOM, Limits
from mdcache_server.resample import calendar as trading
from mdcache_server.resample.bars import SUMMED
from mdcache_server.resample.rules import parse_summed
from mdcache_server.tokens import Tokens, parse_file, parse_list


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError("must be 0 or more")
    return value


def _retention(text: str) -> RetentionRules:
    return RetentionRules.parse(text)


def _workers(text: str) -> int:
    """A positive number, or ``auto`` (0 here, chosen by store once the URL is known)."""
    return 0 if text == "auto" else _positive_int(text)


def _processes(text: str) -> int:
    """A positive number, or ``auto``: the cores this process may run on."""
    return len(os.sched_getaffinity(0)) if text == "auto" else _positive_int(text)


def _choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return text

    return parse


def split_host_port(text: str) -> tuple[str, int]:
    """``127.0.0.1:9464``, ``[::]:9464`` or ``:9464`` (every interface) -> host, port."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:9464")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 (":PORT" is every interface)


def _host_port_or_off(text: str) -> str:
    if text:
        split_host_port(text)
    return text


def _pem_file(marker: str) -> Callable[[str], Path | None]:
    """A readable PEM file holding ``-----BEGIN <marker>``; empty text is no file."""

    def parse(text: str) -> Path | None:
        if not text:
            return None
        try:
            content = Path(text).read_text(errors="replace")
        except OSError as exc:
            raise ValueError(exc.strerror or str(exc)) from None
        if f"-----BEGIN {marker}" not in content:
            raise ValueError(f"not a PEM file with a {marker}")
        return Path(text)

    return parse


def _optional_path(text: str) -> Path | None:
    return Path(text) if text else None


LIMITS = Limits()  # where the defaults of the limits that are also settings are written
SQLITE_FILE = "mdcache.sqlite3"  # the default store: this file in the data directory


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    flag: str
    env: str
    default: str
    parse: Callable[[str], Any]
    help: str
    secret: bool = False  # never shown in an error message


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "listen",
        "--listen",
        "MDCACHE_LISTEN",
        "[::]:50051",
        str,
        "address to serve gRPC on (port 0 picks a free port)",
    ),
    Setting(
        "tls_cert",
        "--tls-cert",
        "MDCACHE_TLS_CERT",
        "",
        _pem_file("CERTIFICATE"),
        "PEM certificate chain: serve TLS (with --tls-key)",
    ),
    Setting(
        "tls_key",
        "--tls-key",
        "MDCACHE_TLS_KEY",
        "",
        _pem_file("PRIVATE KEY"),
        "PEM private key of the TLS certificate",
    ),
    Setting(
        "tls_client_ca",
        "--tls-client-ca",
        "MDCACHE_TLS_CLIENT_CA",
        "",
        _pem_file("CERTIFICATE"),
        "PEM certificates of the CAs whose client certificates are required (mutual TLS)",
    ),
    Setting(
        "tokens_file",
        "--tokens-file",
        "MDCACHE_TOKENS_FILE",
        "",
        _optional_path,
        "file of bearer tokens, a line `token role` each (role read or write)",
    ),
    Setting(
        "tokens",
        "--tokens",
        "MDCACHE_TOKENS",
        "",
        parse_list,
        "bearer tokens as token:role,... (prefer the variable or the file to the flag)",
        secret=True,
    ),
    Setting(
        "keepalive_min_interval",
        "--keepalive-min-interval",
        "MDCACHE_KEEPALIVE_MIN_INTERVAL_SECONDS",
        "10",
        _positive_float,
        "shortest interval between a client's keepalive pings that the server accepts",
    ),
    Setting(
        "data_dir",
        "--data-dir",
        "MDCACHE_DATA_DIR",
        "./mdcache-data",
        Path,
        "directory of the default SQLite file",
    ),
    Setting(
        "store_url",
        "--store",
        "MDCACHE_STORE_URL",
        "",
        str,
        f"store URL; default sqlite:///<data dir>/{SQLITE_FILE}",
    ),
    Setting(
        "workers",
        "--workers",
        "MDCACHE_WORKERS",
        "auto",
        _workers,
        "worker threads, each with its own store connection (auto: 2 for SQLite, whose calls "
        "hold the GIL, 8 for TDengine, whose calls wait on the network)",
    ),
    Setting(
        "max_pending",
        "--max-pending",
        "MDCACHE_MAX_PENDING",
        "256",
        _positive_int,
        "store calls that may wait for a worker before RESOURCE_EXHAUSTED",
    ),
    Setting(
        "max_concurrent_calls",
        "--max-concurrent-calls",
        "MDCACHE_MAX_CONCURRENT_CALLS",
        "1024",
        _positive_int,
        "calls in progress at once (each holds its request); more are RESOURCE_EXHAUSTED",
    ),
    Setting(
        "grace_seconds",
        "--grace",
        "MDCACHE_GRACE_SECONDS",
        "10",
        _positive_float,
        "on SIGTERM/SIGINT, how long in-flight calls may take to finish",
    ),
    Setting(
        "startup_timeout",
        "--startup-timeout",
        "MDCACHE_STARTUP_TIMEOUT_SECONDS",
        "60",
        _positive_float,
        "how long to retry a store that is not ready at start-up",
    ),
    Setting(
        "health_interval",
        "--health-interval",
        "MDCACHE_HEALTH_INTERVAL_SECONDS",
        "5",
        _positive_float,
        "seconds between store probes that drive gRPC health",
    ),
    Setting(
        "max_message_bytes",
        "--max-message-bytes",
        "MDCACHE_MAX_MESSAGE_BYTES",
        str(LIMITS.max_response_bytes + RESPONSE_ROOM),
        _positive_int,
        "largest gRPC message accepted or sent",
    ),
    Setting(
        "max_records_per_write",
        "--max-records-per-write",
        "MDCACHE_MAX_RECORDS_PER_WRITE",
        str(LIMITS.max_records_per_write),
        _positive_int,
        "records in one Write call, over all its series",
    ),
    Setting(
        "max_read_records",
        "--max-read-records",
        "MDCACHE_MAX_READ_RECORDS",
        str(LIMITS.max_read_records),
        _positive_int,
        "records in one Read answer, over all its series",
    ),
    Setting(
        "log_level",
        "--log-level",
        "MDCACHE_LOG_LEVEL",
        "info",
        _choice("debug", "info", "warning", "error"),
        "least severe log event written",
    ),
    Setting(
        "log_format",
        "--log-format",
        "MDCACHE_LOG_FORMAT",
        "auto",
        _choice("auto", "json", "console"),
        "log lines as JSON, or for a terminal (auto: console on a terminal, else JSON)",
    ),
    Setting(
        "slow_call_ms",
        "--slow-call-ms",
        "MDCACHE_SLOW_CALL_MS",
        "100",
        _non_negative_float,
        "a call that succeeds is logged at info when it takes this long or longer, else at "
        "debug (0: every call at info); failed calls are always logged",
    ),
    Setting(
        "subscribe_buffer",
        "--subscribe-buffer",
        "MDCACHE_SUBSCRIBE_BUFFER",
        "10000",
        _positive_int,
        "changes a Subscribe stream may have unsent; a subscriber further behind is cut "
        "(RESOURCE_EXHAUSTED) and resumes from its last seq",
    ),
    Setting(
        "subscribe_relay",
        "--subscribe-relay",
        "MDCACHE_SUBSCRIBE_RELAY",
        "auto",
        _choice("auto", "on", "off"),
        "push every replica's writes to this server's subscribers through the store's "
        "change feed (TDengine: its subscriptions; SQLite: a journal beside the file); "
        "auto: on for TDengine and for --processes above 1, off for one SQLite server",
    ),
    Setting(
        "subscribe_poll_ms",
        "--subscribe-poll-ms",
        "MDCACHE_SUBSCRIBE_POLL_MS",
        "10",
        _positive_float,
        "how long the relay waits for changes in one poll: on SQLite, how often a replica "
        "looks in the journal for the others' writes (its own are pushed at once)",
    ),
    Setting(
        "hot_tier_bytes",
        "--hot-tier-bytes",
        "MDCACHE_HOT_TIER_BYTES",
        str(256 * 1024 * 1024),
        _non_negative_int,
        "memory for whole series held in front of the store (0: off)",
    ),
    Setting(
        "hot_tier_max_age",
        "--hot-tier-max-age",
        "MDCACHE_HOT_TIER_MAX_AGE_SECONDS",
        "2",
        _positive_float,
        "a held series is read again after this long (bounds how long a "
        "write through another replica stays unseen)",
    ),
    Setting(
        "hot_tier_max_series_records",
        "--hot-tier-max-series-records",
        "MDCACHE_HOT_TIER_MAX_SERIES_RECORDS",
        "50000",
        _positive_int,
        "a series with more records is never held",
    ),
    Setting(
        "retention",
        "--retention",
        "MDCACHE_RETENTION",
        "*=7,kline=0",
        _retention,
        "days to keep records by data_type[/timeframe], by their timestamp; 0 keeps",
    ),
    Setting(
        "retention_interval",
        "--retention-interval",
        "MDCACHE_RETENTION_INTERVAL_SECONDS",
        "3600",
        _positive_float,
        "seconds between retention runs (one runs at start-up)",
    ),
    Setting(
        "max_records",
        "--max-records",
        "MDCACHE_MAX_RECORDS",
        "0",
        _non_negative_int,
        "records the store may hold; past it least recently read series go (0: no bound)",
    ),
    Setting(
        "capacity_interval",
        "--capacity-interval",
        "MDCACHE_CAPACITY_INTERVAL_SECONDS",
        "30",
        _positive_float,
        "seconds between capacity checks",
    ),
    Setting(
        "usage_flush_interval",
        "--usage-flush-interval",
        "MDCACHE_USAGE_FLUSH_SECONDS",
        "10",
        _positive_float,
        "seconds between flushes of hit statistics to the store",
    ),
    Setting(
        "warm_seconds",
        "--warm-seconds",
        "MDCACHE_WARM_SECONDS",
        "10",
        _non_negative_float,
        "at start-up, time to spend loading the hottest series into the hot tier",
    ),
    Setting(
        "replica_id",
        "--replica-id",
        "MDCACHE_REPLICA_ID",
        "",
        str,
        "this process's name among replicas sharing a store (default: host:port)",
    ),
    Setting(
        "calendars",
        "--calendars",
        "MDCACHE_CALENDARS",
        trading.DEFAULT_CALENDARS,
        trading.parse_calendars,
        "trading sessions of each market, for resampled reads: name=Zone HH:MM-HH:MM ...;name=...",
    ),
    Setting(
        "markets",
        "--markets",
        "MDCACHE_MARKETS",
        trading.DEFAULT_MARKETS,
        trading.MarketRules.parse,
        "the market of a symbol: .SUFFIX=market, SYMBOL=market, *=default market",
    ),
    Setting(
        "summed_fields",
        "--summed-fields",
        "MDCACHE_SUMMED_FIELDS",
        SUMMED,
        parse_summed,
        "payload fields added up when bars are resampled (any case)",
    ),
    Setting(
        "processes",
        "--processes",
        "MDCACHE_PROCESSES",
        "1",
        _processes,
        "server processes sharing the port (SO_REUSEPORT), each a replica of the store; "
        "auto: one per core available",
    ),
    Setting(
        "metrics_listen",
        "--metrics-listen",
        "MDCACHE_METRICS_LISTEN",
        "",
        _host_port_or_off,
        "address to serve Prometheus metrics on, e.g. 127.0.0.1:9464 (default: off)",
    ),
)


@dataclass(frozen=True, slots=True)
class Config:
    """The server's configuration; build it with :meth:`load` (every default is in
    :data:`SETTINGS`, with its flag, variable and validator)."""

    listen: str
    tls_cert: Path | None
    tls_key: Path | None
    tls_client_ca: Path | None
    tokens_file: Path | None
    tokens: Tokens
    keepalive_min_interval: float
    data_dir: Path
    store_url: str
    workers: int  # 0 (auto): the store's default_workers, chosen by app.compose
    max_pending: int
    max_concurrent_calls: int
    grace_seconds: float
    startup_timeout: float
    health_interval: float
    max_message_bytes: int
    max_records_per_write: int
    max_read_records: int
    log_level: str
    log_format: str
    slow_call_ms: float
    subscribe_buffer: int
    subscribe_relay: str
    subscribe_poll_ms: float
    hot_tier_bytes: int
    hot_tier_max_age: float
    hot_tier_max_series_records: int
    retention: RetentionRules
    retention_interval: float
    max_records: int
    capacity_interval: float
    usage_flush_interval: float
    warm_seconds: float
    replica_id: str
    processes: int
    metrics_listen: str
    calendars: Mapping[str, trading.Calendar]
    markets: trading.MarketRules
    summed_fields: frozenset[str]
    limits: Limits

    @classmethod
    def load(cls, flags: Mapping[str, Any], environ: Mapping[str, str]) -> Config:
        """Flags (``None`` when not given) over environment over defaults; raises ConfigError."""
        values: dict[str, Any] = {}
        for s in SETTINGS:
            given = flags.get(s.name)
            text = str(given) if given is not None else environ.get(s.env, s.default)
            source = s.flag if given is not None else s.env
            try:
                values[s.name] = s.parse(text)
            except ValueError as exc:
                shown = "<hidden>" if s.secret else repr(text)
                raise ConfigError(f"{source}={shown}: {exc}") from None
        values.update(_security(values))
        unknown = values["markets"].markets() - set(values["calendars"])
        if unknown:
            raise ConfigError(
                f"MDCACHE_MARKETS names markets without a calendar: {sorted(unknown)}"
            )
        if not values["store_url"]:
            values["store_url"] = f"sqlite:///{values['data_dir'] / SQLITE_FILE}"
        values["limits"] = dataclasses.replace(
            LIMITS,
            max_records_per_write=values["max_records_per_write"],
            max_read_records=values["max_read_records"],
            max_response_bytes=values["max_message_bytes"] - RESPONSE_ROOM,
        )
        return cls(**values)


def _security(values: dict[str, Any]) -> dict[str, Any]:
    """Checks the TLS and token settings together; reads the tokens file."""
    if (values["tls_cert"] is None) != (values["tls_key"] is None):
        raise ConfigError("MDCACHE_TLS_CERT and MDCACHE_TLS_KEY go together: give both or none")
    if values["tls_client_ca"] is not None and values["tls_cert"] is None:
        raise ConfigError("MDCACHE_TLS_CLIENT_CA needs MDCACHE_TLS_CERT and MDCACHE_TLS_KEY")
    path = values["tokens_file"]
    if path is None:
        return {}
    if values["tokens"]:
        raise ConfigError("give MDCACHE_TOKENS or MDCACHE_TOKENS_FILE, not both")
    try:
        return {"tokens": parse_file(path)}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"MDCACHE_TOKENS_FILE={str(path)!r}: {exc}") from None


def setting(name: str) -> Setting:
    """The setting of that name (for commands that take some of the server's settings)."""
    for s in SETTINGS:
        if s.name == name:
            return s
    raise KeyError(name)


def described(s: Setting) -> str:
    """A setting's help, with its variable and default."""
    return f"{s.help} [env {s.env}, default {s.default or 'see help'}]"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds a flag for every setting, with its variable and default in the help."""
    for s in SETTINGS:
        parser.add_argument(
            s.flag, dest=s.name, default=None, metavar=s.name.upper(), help=described(s)
        )
