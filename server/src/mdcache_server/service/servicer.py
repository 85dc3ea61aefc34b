"""The MarketDataCache servicer: one structlog event per call, errors mapped by one table.

A call that fails is logged at warning (error for INTERNAL); one that succeeds at info
when it took ``slow_call_ms`` or longer, else at debug: at thousands of calls a second an
info line for each would cost the server a fifth of its time and the disk gigabytes a day
(the Prometheus metrics count every call).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import structlog
from google.protobuf.message import DecodeError, Message

from mdcache.v1 import cache_pb2 as pb
from mdcache_server.cache import usage
from mdcache_server.cache.coherence import Token
from mdcache_server.cache.policy import CachePolicy, CacheStats, SessionReader
from mdcache_server.config import setting
from mdcache_server.errors import InvalidArgument, MdcacheError, StoreError, StoreUnavailable
from mdcache_server.live.delivery import Delivery, Direct
from mdcache_server.live.hub import Hub
from mdcache_server.metrics import Metrics
from mdcache_server.model import Limits, SeriesKey, SeriesRead
from mdcache_server.resample.adjust import Adjustment
from mdcache_server.resample.parsed import ParsedFields
from mdcache_server.resample.rules import Resampling
from mdcache_server.service import adjusted, resampled, subscribe, validation
from mdcache_server.service.answers import Answers
from mdcache_server.service.responses import read_response
from mdcache_server.service.status import status_for

T = TypeVar("T")
M = TypeVar("M", bound=Message)
log = structlog.get_logger("mdcache.rpc")
INTERNAL_MESSAGE = "internal error; the server log has the details"
SESSION_HEADER = "mdcache-session-token"  # a Read's session token (WriteResponse's)
CONSISTENCY = {  # ReadRequest.consistency: strict, or None for the server's default
    pb.CONSISTENCY_UNSPECIFIED: None,
    pb.CONSISTENCY_BOUNDED: False,
    pb.CONSISTENCY_STRICT: True,
}
# A call with a deadline is answered this long before it, so that an UNAVAILABLE for a store
# that does not answer reaches the caller instead of its own DEADLINE_EXCEEDED.
DEADLINE_MARGIN_S = 0.05
SLOW_CALL_MS = float(setting("slow_call_ms").default)  # for a servicer made without a config


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _describe(series: list[SeriesKey]) -> str:
    """The series of a call for the log: the first one, and how many more."""
    first = "/".join(series[0])
    return first if len(series) == 1 else f"{first} (+{len(series) - 1})"


def stats_response(
    stats: CacheStats,
    top_n: int,
    calls: Counter[str],
    errors: Counter[str],
    resampled_reads: int = 0,
) -> pb.StatsResponse:
    hot = stats.hot_tier
    return pb.StatsResponse(
        records=stats.counts.records,
        symbols=stats.counts.symbols,
        series=stats.counts.series,
        hits=stats.usage.hits,
        misses=stats.usage.misses,
        hit_rate=stats.usage.hit_rate,
        hot_symbols=[
            pb.SymbolReads(symbol=s, reads=n) for s, n in stats.usage.hottest_symbols(top_n)
        ],
        uptime_seconds=stats.uptime_seconds,
        store=stats.store,
        store_version=stats.store_version,
        counting_since_ms=stats.usage.since_ms,
        hot_tier=pb.HotTier(
            enabled=hot.enabled,
            bytes=hot.bytes,
            capacity_bytes=hot.capacity_bytes,
            series=len(hot),
            hits=hot.hits,
            misses=hot.misses,
            evictions=hot.evictions,
        ),
        evicted_series=stats.evicted_series,
        evicted_records=stats.evicted_records,
        replicas=stats.usage.replicas,
        retention=[
            pb.RetentionRule(data_type=k, days=d) for k, d in sorted(stats.retention.days.items())
        ],
        calls=[
            pb.MethodCalls(method=m, calls=n, errors=errors[m]) for m, n in sorted(calls.items())
        ],
        resampled_reads=resampled_reads,
    )


async def _within(remaining: float, call: Awaitable[T]) -> T:
    """Awaits ``call`` until just before the caller's deadline: a store that does not answer
    by then is unavailable to this call (a Write's commit goes on, shielded, and is simply
    not acknowledged)."""
    try:
        async with asyncio.timeout(max(remaining - DEADLINE_MARGIN_S, 0)) as limit:
            return await call
    except TimeoutError:
        if not limit.expired():
            raise
    raise StoreUnavailable(
        f"the store did not answer within the call's deadline ({remaining:.3g}s)"
    )


def parsed(kind: type[M], request: bytes | M) -> M:
    """The request, parsed here from the bytes gRPC hands over (``methods.py``): a body
    that is not the message is INVALID_ARGUMENT naming ``request``. A caller in process
    (``bench/micro.py``) may hand the message itself."""
    if not isinstance(request, bytes):
        return request
    try:
        return kind.FromString(request)
    except DecodeError as exc:
        raise InvalidArgument("request", f"not a serialized {kind.DESCRIPTOR.full_name}") from exc


class MarketDataCacheServicer:
    """Validates, calls the cache policy, answers. Served through ``methods.add_to_server``:
    every method parses the request's bytes itself; Read answers with bytes it serialized
    itself."""

    def __init__(
        self,
        cache: CachePolicy,
        limits: Limits,
        now_ms: Callable[[], int] = wall_ms,
        metrics: Metrics | None = None,
        slow_call_ms: float = SLOW_CALL_MS,
        answers: Answers | None = None,
        resampling: Resampling | None = None,
        live: Delivery | None = None,
    ) -> None:
        self.cache = cache
        self.limits = limits
        self.now_ms = now_ms
        self.metrics = metrics
        self.slow_seconds = slow_call_ms / 1000
        self.log_every_call = log.is_enabled_for(logging.DEBUG)  # logging is set up by now
        self.answers = answers if answers is not None else Answers(0)
        self.live = live if live is not None else Direct(Hub())
        self.hub = self.live.hub
        self.calls: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.resampling = resampling if resampling is not None else Resampling.default()
        self.parsed = ParsedFields(self.resampling.summed)  # held series' bar fields
        self.resampled_reads = 0  # series reads answered resampled

    async def _serve(
        self,
        method: str,
        context: grpc.aio.ServicerContext[Any, Any],
        handle: Callable[[dict[str, Any]], Awaitable[T]],
    ) -> T:
        """Runs ``handle``, logs one event for the call, and turns any error into its status."""
        fields: dict[str, Any] = {}
        started = time.perf_counter()
        error: Exception
        remaining = None if context is None else context.time_remaining()  # None: in process
        try:
            if remaining is None:
                response = await handle(fields)
            else:
                response = await _within(remaining, handle(fields))
        except MdcacheError as exc:
            status, error = status_for(exc), exc
        except Exception as exc:  # noqa: BLE001 (the boundary: nothing unexpected reaches the client)
            status, error = grpc.StatusCode.INTERNAL, exc
        else:
            self._succeeded(method, time.perf_counter() - started, fields)
            return response
        seconds = time.perf_counter() - started
        self.calls[method] += 1
        self.errors[method] += 1
        if self.metrics is not None:
            self.metrics.call(method, status.name, seconds)
        internal = status is grpc.StatusCode.INTERNAL
        log.log(
            logging.ERROR if internal else logging.WARNING,
            "rpc",
            method=method,
            status=status.name,
            duration_ms=round(seconds * 1000, 3),
            error=str(error),
            exc_info=error if internal and not isinstance(error, StoreError) else None,
            **fields,
        )
        await context.abort(status, INTERNAL_MESSAGE if internal else str(error))

    def _succeeded(
        self,
        method: str,
        seconds: float,
        fields: dict[str, Any] | Callable[[], dict[str, Any]],
    ) -> None:
        self.calls[method] += 1
        if self.metrics is not None:
            self.metrics.call(method, "OK", seconds)
        if seconds >= self.slow_seconds or self.log_every_call:
            if callable(fields):  # made only when logged
                fields = fields()
            log.log(
                logging.INFO if seconds >= self.slow_seconds else logging.DEBUG,
                "rpc",
                method=method,
                status="OK",
                duration_ms=round(seconds * 1000, 3),
                **fields,
            )

    def _token(self) -> str:
        """The session token of a change acknowledged now (``cache/coherence.py``)."""
        return str(Token(wall_ms(), self.hub.epoch))

    def _session(self, context: grpc.aio.ServicerContext[Any, Any]) -> Token | None:
        """The caller's session token, where replicas share the store (else it changes
        nothing: every change passes through this server)."""
        if self.cache.coherence is None:
            return None
        for key, value in context.invocation_metadata() or ():
            if key == SESSION_HEADER:
                return Token.parse(value if isinstance(value, str) else value.decode())
        return None

    def _count_resampled(self, series: int) -> None:
        if series:
            self.resampled_reads += series
            if self.metrics is not None:
                self.metrics.resampled_reads += series

    async def Write(
        self, request: bytes | pb.WriteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.WriteResponse:
        async def handle(fields: dict[str, Any]) -> pb.WriteResponse:
            message = parsed(pb.WriteRequest, request)
            batches = validation.write_request(message, self.limits, self.now_ms)
            fields["series"] = _describe([key for key, _ in batches])
            with self.hub.writing():  # stored, then pushed (a replay's horizon waits)
                fields["rows"] = written = await self.cache.write(batches)
                await self.live.acknowledged(batches)  # pushed to subscribers
            return pb.WriteResponse(written=written, session_token=self._token())

        return await self._serve("Write", context, handle)

    async def Read(self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        """Served with the request's bytes: a request answered before from
        held series, whose copies are unchanged, gets the same answer again."""
        started = time.perf_counter()
        token = self._session(context)
        again = self.answers.get(request)
        if again is not None and await self.cache.read_again(
            again.series, again.held, again.hits, token, again.strict
        ):
            if self.metrics is not None:
                self.metrics.reads(again.hits)
            self._count_resampled(again.resampled)
            self._succeeded(
                "Read",
                time.perf_counter() - started,
                lambda: {"series": _describe(list(again.series)), "rows": again.rows},
            )
            return again.answer

        async def handle(fields: dict[str, Any]) -> bytes:
            message = parsed(pb.ReadRequest, request)
            query = validation.read_request(message, self.limits, self.now_ms)
            fields["series"] = _describe(query.series)
            strict = CONSISTENCY[message.consistency]
            reader = SessionReader(self.cache, token, strict)
            asked = adjusted.asked(message, query, self.limits)
            factor_keys: list[SeriesKey] = []
            factor_reads: list[SeriesRead] = []
            adjustments: list[Adjustment | None] = []
            if asked is not None:  # the factors, read through the cache as any series
                fields["adjust"] = asked.mode.value
                adjustments, factor_keys, factor_reads = await adjusted.adjustments(
                    reader, asked, self.limits
                )
            resampled_series = 0
            if message.resample:
                fields["resample"] = message.resample
                adjust = None
                if asked is not None:
                    adjust = adjusted.fields_adjuster(adjustments, asked, query.series)
                response, fields["rows"], results = await resampled.read(
                    reader, message, query, self.resampling, self.limits, self.parsed, adjust
                )
                resampled_series = len(results)
                self._count_resampled(resampled_series)
            else:
                results = await reader.read(query.series, query.window)
                answered = results
                if asked is not None:
                    answered = adjusted.adjusted(results, adjustments, asked, query.series)
                response, fields["rows"] = read_response(
                    message.series, answered, self.limits.max_response_bytes
                )
            results = [*results, *factor_reads]  # the answer depends on the factors too
            if self.metrics is not None:
                self.metrics.reads([bool(result.records) for result in results])
            if not message.last_days:  # an answer that does not depend on the clock
                self.answers.remember(
                    request,
                    response,
                    [*query.series, *factor_keys],
                    results,
                    fields["rows"],
                    resampled_series,
                    strict,
                )
            return response

        return await self._serve("Read", context, handle)

    async def Subscribe(
        self, request: bytes | pb.SubscribeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.SubscribeResponse]:
        """Streams the series' records as they are written (``service.subscribe``)."""
        started = time.perf_counter()
        sent = 0
        self.calls["Subscribe"] += 1
        try:
            request = parsed(pb.SubscribeRequest, request)
            opened = lambda: context.send_initial_metadata((("mdcache-stream", self.hub.epoch),))  # noqa: E731
            stream = subscribe.serve(self.live, self.cache, request, self.limits, opened)
            async for message in stream:
                sent += 1
                yield message
        except MdcacheError as exc:
            status = status_for(exc)
            self.errors["Subscribe"] += 1
            log.warning("rpc", method="Subscribe", status=status.name, sent=sent, error=str(exc))
            await context.abort(status, str(exc))
        except Exception as exc:  # the boundary: nothing unexpected reaches the client
            self.errors["Subscribe"] += 1
            log.error("rpc", method="Subscribe", status="INTERNAL", sent=sent, exc_info=exc)
            await context.abort(grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE)
        finally:
            seconds = time.perf_counter() - started
            log.debug("subscribe_ended", sent=sent, duration_ms=round(seconds * 1000, 3))

    async def Purge(
        self, request: bytes | pb.PurgeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.PurgeResponse:
        async def handle(fields: dict[str, Any]) -> pb.PurgeResponse:
            purge = validation.purge_request(
                parsed(pb.PurgeRequest, request), self.limits, self.now_ms
            )
            fields.update(symbol=purge.symbol, data_type=purge.data_type, cutoff_ms=purge.before_ms)
            fields["rows"] = deleted = await self.cache.purge(purge)
            return pb.PurgeResponse(
                deleted=deleted, cutoff_ms=purge.before_ms, session_token=self._token()
            )

        return await self._serve("Purge", context, handle)

    async def Stats(
        self, request: bytes | pb.StatsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.StatsResponse:
        async def handle(fields: dict[str, Any]) -> pb.StatsResponse:
            message = parsed(pb.StatsRequest, request)
            top_n = validation.stats_request(message)
            stats = await self.cache.snapshot()
            if message.reset:
                await usage.reset(self.cache)
            return stats_response(stats, top_n, self.calls, self.errors, self.resampled_reads)

        return await self._serve("Stats", context, handle)
