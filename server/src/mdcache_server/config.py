"""Configuration: one frozen object, built once in ``main()`` from flags and environment.

Each setting is declared once, as a field of :class:`Config` whose metadata holds its flag,
environment variable, default, parser and group; :data:`SETTINGS` lists them in that order
(``mdcache serve --help`` and the generated configuration page of the docs read it). A flag
wins over the environment, which wins over the default. Nothing else reads ``os.environ``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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


# The groups of settings, as an operator thinks of them: (title, description), in the order
# `mdcache serve --help` and the configuration page show them.
SERVING = ("serving", "the gRPC address, TLS, bearer tokens, stopping")
STORE = ("store", "where records are kept, and how the server waits for the store")
POOL = ("pool and limits", "worker threads, queues, and the size of calls")
CACHE = ("cache", "the hot tier in front of the store, warming, hit statistics")
RETENTION = ("retention and capacity", "how long records are kept, how many the store holds")
RESAMPLING = ("resampled reads", "trading sessions, markets, summed fields")
SUBSCRIBE = ("subscribe", "live streams and the relay of other replicas' writes")
LOGS = ("logs and metrics", "log events, and the Prometheus endpoint")
PROCESSES = ("processes and replicas", "server processes on one port, replica names")
GROUPS: tuple[tuple[str, str], ...] = (
    SERVING,
    STORE,
    POOL,
    CACHE,
    RETENTION,
    RESAMPLING,
    SUBSCRIBE,
    LOGS,
    PROCESSES,
)


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: a field of :class:`Config`, with its flag, variable, default and parser."""

    name: str  # the Config field's name
    flag: str
    env: str
    default: str
    parse: Callable[[str], Any]
    help: str
    group: tuple[str, str]
    secret: bool = False  # never shown in an error message


_SETTING = "setting"  # the key of a Config field's metadata that holds its Setting


def _declare(
    flag: str,
    env: str,
    default: str,
    parse: Callable[[str], Any],
    help: str,
    group: tuple[str, str],
    *,
    secret: bool = False,
) -> dict[str, Setting]:
    """A Config field's metadata: its setting, named after the field by :data:`SETTINGS`."""
    return {_SETTING: Setting("", flag, env, default, parse, help, group, secret)}


@dataclass(frozen=True, slots=True)
class Config:
    """The server's configuration; build it with :meth:`load`. Each field but ``limits`` is
    a setting, declared once here with its flag, variable, default, parser and group
    (:data:`SETTINGS` lists them)."""

    listen: str = field(
        metadata=_declare(
            "--listen",
            "MDCACHE_LISTEN",
            "[::]:50051",
            str,
            "address to serve gRPC on (port 0 picks a free port)",
            SERVING,
        )
    )
    tls_cert: Path | None = field(
        metadata=_declare(
            "--tls-cert",
            "MDCACHE_TLS_CERT",
            "",
            _pem_file("CERTIFICATE"),
            "PEM certificate chain: serve TLS (with --tls-key)",
            SERVING,
        )
    )
    tls_key: Path | None = field(
        metadata=_declare(
            "--tls-key",
            "MDCACHE_TLS_KEY",
            "",
            _pem_file("PRIVATE KEY"),
            "PEM private key of the TLS certificate",
            SERVING,
        )
    )
    tls_client_ca: Path | None = field(
        metadata=_declare(
            "--tls-client-ca",
            "MDCACHE_TLS_CLIENT_CA",
            "",
            _pem_file("CERTIFICATE"),
            "PEM certificates of the CAs whose client certificates are required (mutual TLS)",
            SERVING,
        )
    )
    tokens_file: Path | None = field(
        metadata=_declare(
            "--tokens-file",
            "MDCACHE_TOKENS_FILE",
            "",
            _optional_path,
            "file of bearer tokens, a line `token role` each (role read or write)",
            SERVING,
        )
    )
    tokens: Tokens = field(
        metadata=_declare(
            "--tokens",
            "MDCACHE_TOKENS",
            "",
            parse_list,
            "bearer tokens as token:role,... (prefer the variable or the file to the flag)",
            SERVING,
            secret=True,
        )
    )
    keepalive_min_interval: float = field(
        metadata=_declare(
            "--keepalive-min-interval",
            "MDCACHE_KEEPALIVE_MIN_INTERVAL_SECONDS",
            "10",
            _positive_float,
            "shortest interval between a client's keepalive pings that the server accepts",
            SERVING,
        )
    )
    grace_seconds: float = field(
        metadata=_declare(
            "--grace",
            "MDCACHE_GRACE_SECONDS",
            "10",
            _positive_float,
            "on SIGTERM/SIGINT, how long in-flight calls may take to finish",
            SERVING,
        )
    )
    data_dir: Path = field(
        metadata=_declare(
            "--data-dir",
            "MDCACHE_DATA_DIR",
            "./mdcache-data",
            Path,
            "directory of the default SQLite file",
            STORE,
        )
    )
    store_url: str = field(
        metadata=_declare(
            "--store",
            "MDCACHE_STORE_URL",
            "",
            str,
            f"store URL; default sqlite:///<data dir>/{SQLITE_FILE}",
            STORE,
        )
    )
    startup_timeout: float = field(
        metadata=_declare(
            "--startup-timeout",
            "MDCACHE_STARTUP_TIMEOUT_SECONDS",
            "60",
            _positive_float,
            "how long to retry a store that is not ready at start-up",
            STORE,
        )
    )
    health_interval: float = field(
        metadata=_declare(
            "--health-interval",
            "MDCACHE_HEALTH_INTERVAL_SECONDS",
            "5",
            _positive_float,
            "seconds between store probes that drive gRPC health",
            STORE,
        )
    )
    workers: int = field(
        metadata=_declare(
            "--workers",
            "MDCACHE_WORKERS",
            "auto",
            _workers,
            "worker threads, each with its own store connection (auto: 2 for SQLite, whose calls "
            "hold the GIL, 8 for TDengine, whose calls wait on the network)",
            POOL,
        )
    )
    max_pending: int = field(
        metadata=_declare(
            "--max-pending",
            "MDCACHE_MAX_PENDING",
            "256",
            _positive_int,
            "store calls that may wait for a worker before RESOURCE_EXHAUSTED",
            POOL,
        )
    )
    max_concurrent_calls: int = field(
        metadata=_declare(
            "--max-concurrent-calls",
            "MDCACHE_MAX_CONCURRENT_CALLS",
            "1024",
            _positive_int,
            "calls in progress at once (each holds its request); more are RESOURCE_EXHAUSTED",
            POOL,
        )
    )
    max_message_bytes: int = field(
        metadata=_declare(
            "--max-message-bytes",
            "MDCACHE_MAX_MESSAGE_BYTES",
            str(LIMITS.max_response_bytes + RESPONSE_ROOM),
            _positive_int,
            "largest gRPC message accepted or sent",
            POOL,
        )
    )
    max_records_per_write: int = field(
        metadata=_declare(
            "--max-records-per-write",
            "MDCACHE_MAX_RECORDS_PER_WRITE",
            str(LIMITS.max_records_per_write),
            _positive_int,
            "records in one Write call, over all its series",
            POOL,
        )
    )
    max_read_records: int = field(
        metadata=_declare(
            "--max-read-records",
            "MDCACHE_MAX_READ_RECORDS",
            str(LIMITS.max_read_records),
            _positive_int,
            "records in one Read answer, over all its series",
            POOL,
        )
    )
    hot_tier_bytes: int = field(
        metadata=_declare(
            "--hot-tier-bytes",
            "MDCACHE_HOT_TIER_BYTES",
            str(256 * 1024 * 1024),
            _non_negative_int,
            "memory for whole series held in front of the store (0: off)",
            CACHE,
        )
    )
    hot_tier_max_age: float = field(
        metadata=_declare(
            "--hot-tier-max-age",
            "MDCACHE_HOT_TIER_MAX_AGE_SECONDS",
            "60",
            _positive_float,
            "a held series is read again from the store this long after it was read (a "
            "safety net for writes that pass neither through this server nor the change "
            "feed: see the docs' Cache behaviour)",
            CACHE,
        )
    )
    read_freshness: float = field(
        metadata=_declare(
            "--read-freshness",
            "MDCACHE_READ_FRESHNESS_SECONDS",
            "1",
            _positive_float,
            "replicas sharing a store: every acknowledged Write shows in every replica's "
            "Reads within this many seconds (a replica whose change feed is not known "
            "current within it answers from the store)",
            CACHE,
        )
    )
    read_consistency: str = field(
        metadata=_declare(
            "--read-consistency",
            "MDCACHE_READ_CONSISTENCY",
            "bounded",
            _choice("bounded", "strict"),
            "replicas sharing a store, for Reads that do not ask: bounded (--read-freshness, "
            "and read-your-writes with the session token) or strict (every Write "
            "acknowledged before the Read, at the cost of a round of the change feed)",
            CACHE,
        )
    )
    clock_skew: float = field(
        metadata=_declare(
            "--clock-skew",
            "MDCACHE_CLOCK_SKEW_SECONDS",
            "0.05",
            _non_negative_float,
            "how far the clocks of replicas may disagree: a session token names when its "
            "Write was acknowledged, and another replica allows this much",
            CACHE,
        )
    )
    hot_tier_max_series_records: int = field(
        metadata=_declare(
            "--hot-tier-max-series-records",
            "MDCACHE_HOT_TIER_MAX_SERIES_RECORDS",
            "50000",
            _positive_int,
            "a series with more records is never held",
            CACHE,
        )
    )
    warm_seconds: float = field(
        metadata=_declare(
            "--warm-seconds",
            "MDCACHE_WARM_SECONDS",
            "10",
            _non_negative_float,
            "at start-up, time to spend loading the hottest series into the hot tier",
            CACHE,
        )
    )
    usage_flush_interval: float = field(
        metadata=_declare(
            "--usage-flush-interval",
            "MDCACHE_USAGE_FLUSH_SECONDS",
            "10",
            _positive_float,
            "seconds between flushes of hit statistics to the store",
            CACHE,
        )
    )
    retention: RetentionRules = field(
        metadata=_declare(
            "--retention",
            "MDCACHE_RETENTION",
            "*=7,kline=0,adj_factor=0",
            _retention,
            "days to keep records by data_type[/timeframe], by their timestamp; 0 keeps",
            RETENTION,
        )
    )
    retention_interval: float = field(
        metadata=_declare(
            "--retention-interval",
            "MDCACHE_RETENTION_INTERVAL_SECONDS",
            "3600",
            _positive_float,
            "seconds between retention runs (one runs at start-up)",
            RETENTION,
        )
    )
    max_records: int = field(
        metadata=_declare(
            "--max-records",
            "MDCACHE_MAX_RECORDS",
            "0",
            _non_negative_int,
            "records the store may hold; past it least recently read series go (0: no bound)",
            RETENTION,
        )
    )
    capacity_interval: float = field(
        metadata=_declare(
            "--capacity-interval",
            "MDCACHE_CAPACITY_INTERVAL_SECONDS",
            "30",
            _positive_float,
            "seconds between capacity checks",
            RETENTION,
        )
    )
    calendars: Mapping[str, trading.Calendar] = field(
        metadata=_declare(
            "--calendars",
            "MDCACHE_CALENDARS",
            trading.DEFAULT_CALENDARS,
            trading.parse_calendars,
            "trading sessions of each market, for resampled reads: "
            "name=Zone HH:MM-HH:MM ...;name=...",
            RESAMPLING,
        )
    )
    markets: trading.MarketRules = field(
        metadata=_declare(
            "--markets",
            "MDCACHE_MARKETS",
            trading.DEFAULT_MARKETS,
            trading.MarketRules.parse,
            "the market of a symbol: .SUFFIX=market, SYMBOL=market, *=default market",
            RESAMPLING,
        )
    )
    summed_fields: frozenset[str] = field(
        metadata=_declare(
            "--summed-fields",
            "MDCACHE_SUMMED_FIELDS",
            SUMMED,
            parse_summed,
            "payload fields added up when bars are resampled (any case)",
            RESAMPLING,
        )
    )
    subscribe_buffer: int = field(
        metadata=_declare(
            "--subscribe-buffer",
            "MDCACHE_SUBSCRIBE_BUFFER",
            "10000",
            _positive_int,
            "changes a Subscribe stream may have unsent; a subscriber further behind is cut "
            "(RESOURCE_EXHAUSTED) and resumes from its last seq",
            SUBSCRIBE,
        )
    )
    subscribe_relay: str = field(
        metadata=_declare(
            "--subscribe-relay",
            "MDCACHE_SUBSCRIBE_RELAY",
            "auto",
            _choice("auto", "on", "off"),
            "follow the store's change feed (TDengine: its subscriptions; SQLite: a journal "
            "beside the file) to push every replica's writes to this server's subscribers "
            "and keep its hot tier current; auto: on for TDengine and for --processes above "
            "1, off for one SQLite server (off: only where this server is the only writer; "
            "on SQLite it then locks the file against other servers)",
            SUBSCRIBE,
        )
    )
    subscribe_poll_ms: float = field(
        metadata=_declare(
            "--subscribe-poll-ms",
            "MDCACHE_SUBSCRIBE_POLL_MS",
            "10",
            _positive_float,
            "how long the relay waits for changes in one poll: on SQLite, how often a replica "
            "looks in the journal for the others' writes (its own are pushed at once)",
            SUBSCRIBE,
        )
    )
    log_level: str = field(
        metadata=_declare(
            "--log-level",
            "MDCACHE_LOG_LEVEL",
            "info",
            _choice("debug", "info", "warning", "error"),
            "least severe log event written",
            LOGS,
        )
    )
    log_format: str = field(
        metadata=_declare(
            "--log-format",
            "MDCACHE_LOG_FORMAT",
            "auto",
            _choice("auto", "json", "console"),
            "log lines as JSON, or for a terminal (auto: console on a terminal, else JSON)",
            LOGS,
        )
    )
    slow_call_ms: float = field(
        metadata=_declare(
            "--slow-call-ms",
            "MDCACHE_SLOW_CALL_MS",
            "100",
            _non_negative_float,
            "a call that succeeds is logged at info when it takes this long or longer, else at "
            "debug (0: every call at info); failed calls are always logged",
            LOGS,
        )
    )
    metrics_listen: str = field(
        metadata=_declare(
            "--metrics-listen",
            "MDCACHE_METRICS_LISTEN",
            "",
            _host_port_or_off,
            "address to serve Prometheus metrics on, e.g. 127.0.0.1:9464 (default: off)",
            LOGS,
        )
    )
    processes: int = field(
        metadata=_declare(
            "--processes",
            "MDCACHE_PROCESSES",
            "1",
            _processes,
            "server processes sharing the port (SO_REUSEPORT), each a replica of the store; "
            "auto: one per core available",
            PROCESSES,
        )
    )
    replica_id: str = field(
        metadata=_declare(
            "--replica-id",
            "MDCACHE_REPLICA_ID",
            "",
            str,
            "this process's name among replicas sharing a store (default: host:port)",
            PROCESSES,
        )
    )
    limits: Limits  # from the max_* settings and the defaults of model.Limits

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
        if values["processes"] > 1 and values["subscribe_relay"] == "off":
            raise ConfigError(
                "--subscribe-relay off with --processes above 1: the processes are replicas "
                "of one store, each must follow its change feed (on, or auto)"
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


SETTINGS: tuple[Setting, ...] = tuple(
    dataclasses.replace(f.metadata[_SETTING], name=f.name)
    for f in dataclasses.fields(Config)
    if _SETTING in f.metadata
)


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
    """Adds a flag for every setting, in argument groups, with its variable and default in
    the help."""
    for title, description in GROUPS:
        group = parser.add_argument_group(title, description)
        for s in SETTINGS:
            if s.group == (title, description):
                group.add_argument(
                    s.flag, dest=s.name, default=None, metavar=s.name.upper(), help=described(s)
                )
