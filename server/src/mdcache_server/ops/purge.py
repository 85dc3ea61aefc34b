"""``mdcache purge``: delete records older than a cutoff, for every symbol or one."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TextIO

from mdcache_client import MdcacheError
from mdcache_server.ops.command import (
    Command,
    UsageError,
    add_connection,
    add_json,
    connect,
    target,
)
from mdcache_server.ops.stats import utc
from mdcache_server.ops.units import count, plural


def cutoff(text: str) -> int:
    """``--before``: epoch milliseconds, or an ISO date or time (UTC unless it says otherwise)."""
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither epoch milliseconds nor an ISO date such as 2024-01-31 "
            "or 2024-01-31T09:30:00+08:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() * 1000)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_connection(parser)
    when = parser.add_mutually_exclusive_group(required=True)
    when.add_argument(
        "--older-than-days",
        type=int,
        metavar="DAYS",
        help="delete records whose timestamp is more than DAYS days ago",
    )
    when.add_argument(
        "--before",
        type=cutoff,
        metavar="WHEN",
        help="delete records stamped before WHEN: 2024-01-31, 2024-01-31T09:30:00+08:00 "
        "(UTC unless given) or epoch milliseconds",
    )
    parser.add_argument("--symbol", default="", help="only this symbol")
    parser.add_argument("--data-type", default="", help="only this data_type (kline, quote...)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    add_json(parser)


def _scope(args: argparse.Namespace) -> str:
    when = (
        f"older than {plural(args.older_than_days, 'day')}"
        if args.before is None
        else f"stamped before {utc(args.before)}"
    )
    pairs = (("symbol", args.symbol), ("data_type", args.data_type))
    only = [f"{name} {value}" for name, value in pairs if value]
    return when + (f" ({', '.join(only)})" if only else "")


def run(args: argparse.Namespace, environ: Mapping[str, str], out: TextIO, err: TextIO) -> int:
    server = target(args, environ)
    if args.older_than_days is not None and args.older_than_days <= 0:
        raise UsageError("--older-than-days must be at least 1")
    try:
        with connect(args, environ, timeout=args.timeout) as client:
            deleted = client.purge(
                before_ms=args.before,
                older_than_days=args.older_than_days or 0,
                symbol=args.symbol,
                data_type=args.data_type,
            )
    except MdcacheError as exc:
        err.write(f"mdcache purge: {server}: {exc}\n")
        return 1
    if args.json:
        report = {
            "deleted": deleted,
            "before_ms": args.before,
            "older_than_days": args.older_than_days,
            "symbol": args.symbol or None,
            "data_type": args.data_type or None,
        }
        out.write(json.dumps(report) + "\n")
    else:
        out.write(f"purged {count(deleted)} records {_scope(args)}\n")
    return 0


COMMAND = Command(
    name="purge",
    help="delete records older than a cutoff",
    description="Delete records older than a cutoff (by the record's own timestamp), for every\n"
    "symbol or for one symbol and/or data_type; prints how many were deleted.",
    add_arguments=add_arguments,
    run=run,
)
