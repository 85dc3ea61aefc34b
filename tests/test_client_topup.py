"""get_or_load tops up: only the missing ranges go to the loader, shared, empty ones remembered."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import UTC, datetime

from mdcache_client import AsyncClient, Client, Record, Series, Source, Window, ranges_loader
from mdcache_client._flight_aio import AsyncRangeFlight
from mdcache_client._flight_sync import RangeFlight
from mdcache_client._topup import _Recent
from mdcache_server.app import Server

from .market_data import aapl_daily_2017

DAY = 86_400_000
HOLIDAYS = 3 * DAY
SERIES, BARS = aapl_daily_2017()
JANUARY = Window(int(datetime(2017, 1, 1, tzinfo=UTC).timestamp() * 1000), BARS[19].ts_ms or 0)
JANUARY_BARS = [b for b in BARS if b.ts_ms in JANUARY]


def stamp(record: Record) -> int:
    assert record.ts_ms is not None
    return record.ts_ms


class Upstream:
    """A loader that records the windows it was asked for and answers the true bars."""

    def __init__(self, records: Sequence[Record] = BARS) -> None:
        self.records = list(records)
        self.asked: list[Window] = []

    def load(self, series: Series, window: Window) -> list[Record]:
        self.asked.append(window)
        return [r for r in self.records if r.ts_ms in window]

    async def aload(self, series: Series, window: Window) -> list[Record]:
        return self.load(series, window)


async def test_only_the_missing_last_day_is_loaded(client: AsyncClient) -> None:
    await client.write(SERIES, JANUARY_BARS[:-1])
    upstream = Upstream()
    month = Window(stamp(JANUARY_BARS[0]), JANUARY.end_ms)  # the first bar to the last
    result = await client.get_or_load(SERIES, month, upstream.aload)
    assert upstream.asked == [Window(stamp(JANUARY_BARS[-2]) + 1, month.end_ms)]
    assert (result.source, result.records) == (Source.LOADER, JANUARY_BARS)
    again = await client.get_or_load(SERIES, month, upstream.aload)
    assert (again.source, again.records, len(upstream.asked)) == (Source.CACHE, JANUARY_BARS, 1)


async def test_a_gap_inside_is_loaded_alone(client: AsyncClient) -> None:
    held = JANUARY_BARS[:5] + JANUARY_BARS[12:]  # Jan 10 to Jan 19 missing: 9 days
    await client.write(SERIES, held)
    upstream = Upstream()
    result = await client.get_or_load(SERIES, JANUARY, upstream.aload, tolerance_ms=HOLIDAYS)
    assert upstream.asked == [Window(stamp(JANUARY_BARS[4]) + 1, stamp(JANUARY_BARS[12]) - 1)]
    assert (result.source, result.records) == (Source.LOADER, JANUARY_BARS)
    assert (await client.read(SERIES)).records == JANUARY_BARS  # the gap was written back


async def test_with_no_tolerance_only_edges_are_judged(client: AsyncClient) -> None:
    held = JANUARY_BARS[:5] + JANUARY_BARS[12:]
    await client.write(SERIES, held)
    upstream = Upstream()
    window = Window(stamp(JANUARY_BARS[0]), stamp(JANUARY_BARS[-1]))
    result = await client.get_or_load(SERIES, window, upstream.aload)
    assert (result.source, result.records, upstream.asked) == (Source.CACHE, held, [])


async def test_a_range_answered_empty_is_remembered(server: Server) -> None:
    target = f"127.0.0.1:{server.port}"
    halted = Window(stamp(JANUARY_BARS[-1]) + 1, stamp(JANUARY_BARS[-1]) + 10 * DAY)
    window = Window(JANUARY.start_ms, halted.end_ms)  # ends in a suspension: no bars
    upstream = Upstream(JANUARY_BARS)
    async with AsyncClient(target, empty_range_seconds=60) as client:
        await client.write(SERIES, JANUARY_BARS)
        first = await client.get_or_load(SERIES, window, upstream.aload, tolerance_ms=HOLIDAYS)
        second = await client.get_or_load(SERIES, window, upstream.aload, tolerance_ms=HOLIDAYS)
    assert (first.source, second.source) == (Source.LOADER, Source.CACHE)
    assert first.records == second.records == JANUARY_BARS
    assert upstream.asked == [halted]
    async with AsyncClient(target, empty_range_seconds=0.2) as client:
        await client.get_or_load(SERIES, window, upstream.aload, tolerance_ms=HOLIDAYS)
        await asyncio.sleep(0.3)  # forgotten: asked again
        await client.get_or_load(SERIES, window, upstream.aload, tolerance_ms=HOLIDAYS)
    assert upstream.asked == [halted] * 3
    async with AsyncClient(target, empty_range_seconds=0) as client:  # not remembered at all
        await client.get_or_load(SERIES, window, upstream.aload, tolerance_ms=HOLIDAYS)
        await client.get_or_load(SERIES, window, upstream.aload, tolerance_ms=HOLIDAYS)
    assert upstream.asked == [halted] * 5


async def test_a_range_reaching_the_present_is_not_remembered_empty(client: AsyncClient) -> None:
    await client.write(SERIES, JANUARY_BARS)
    now = int(datetime.now(UTC).timestamp() * 1000)
    window = Window(JANUARY.start_ms, now + DAY)
    upstream = Upstream(JANUARY_BARS)
    for _ in range(2):
        await client.get_or_load(SERIES, window, upstream.aload, tolerance_ms=HOLIDAYS)
    assert upstream.asked == [Window(stamp(JANUARY_BARS[-1]) + 1, window.end_ms)] * 2


async def test_overlapping_concurrent_calls_share_the_overlap(client: AsyncClient) -> None:
    await client.write(SERIES, JANUARY_BARS[:2])
    release, asked = asyncio.Event(), [asyncio.Event(), asyncio.Event()]
    upstream = Upstream()

    async def slow(series: Series, window: Window) -> list[Record]:
        records = upstream.load(series, window)
        asked[len(upstream.asked) - 1].set()
        await release.wait()
        return records

    early = Window(JANUARY.start_ms, stamp(JANUARY_BARS[9]))  # Jan 1 to Jan 13
    late = Window(JANUARY.start_ms, JANUARY.end_ms)  # Jan 1 to Jan 31
    first = asyncio.create_task(client.get_or_load(SERIES, early, slow, tolerance_ms=HOLIDAYS))
    await asked[0].wait()
    second = asyncio.create_task(client.get_or_load(SERIES, late, slow, tolerance_ms=HOLIDAYS))
    await asked[1].wait()
    release.set()
    a, b = await asyncio.gather(first, second)
    after_held = stamp(JANUARY_BARS[1]) + 1
    assert upstream.asked == [
        Window(after_held, early.end_ms),  # the first call's
        Window(early.end_ms + 1, late.end_ms),  # the second's, less the overlap in flight
    ]
    assert (a.records, b.records) == (JANUARY_BARS[:10], JANUARY_BARS)
    assert {a.source, b.source} == {Source.LOADER}


async def test_a_ranges_loader_gets_every_range_in_one_call(client: AsyncClient) -> None:
    await client.write(SERIES, JANUARY_BARS[5:12])
    asked: list[list[Window]] = []

    @ranges_loader
    async def fetch(series: Series, ranges: Sequence[Window]) -> list[Record]:
        asked.append(list(ranges))
        return [r for r in JANUARY_BARS if any(r.ts_ms in w for w in ranges)]

    result = await client.get_or_load(SERIES, JANUARY, fetch, tolerance_ms=HOLIDAYS)
    assert result.records == JANUARY_BARS
    assert asked == [
        [
            Window(JANUARY.start_ms, stamp(JANUARY_BARS[5]) - 1),
            Window(stamp(JANUARY_BARS[11]) + 1, JANUARY.end_ms),
        ]
    ]


async def test_a_window_after_what_is_held_is_loaded_without_a_hole(client: AsyncClient) -> None:
    upstream = Upstream()
    week = Window(stamp(JANUARY_BARS[0]), stamp(JANUARY_BARS[4]))
    await client.get_or_load(SERIES, week, upstream.aload)
    today = Window(stamp(JANUARY_BARS[7]), stamp(JANUARY_BARS[7]))  # 2 bars later, alone
    await client.get_or_load(SERIES, today, upstream.aload)
    assert upstream.asked[-1] == Window(week.end_ms + 1, today.end_ms)
    wider = Window(week.start_ms, today.end_ms)
    result = await client.get_or_load(SERIES, wider, upstream.aload)
    assert (result.source, result.records) == (Source.CACHE, JANUARY_BARS[:8])


def blocking_overlap(target: str) -> tuple[list[Window], list[list[Record]]]:
    upstream = Upstream()
    both = threading.Barrier(2)
    lock = threading.Lock()

    def slow(series: Series, window: Window) -> list[Record]:
        with lock:
            records = upstream.load(series, window)
        if len(upstream.asked) == 1:
            both.wait(timeout=5)  # the second call starts while this load is in flight
        return records

    early = Window(JANUARY.start_ms, stamp(JANUARY_BARS[9]))
    with Client(target, timeout=10) as client:
        answers: list[list[Record]] = []

        def second() -> None:
            both.wait(timeout=5)
            answers.append(list(client.get_or_load(SERIES, JANUARY, slow).records))

        thread = threading.Thread(target=second)
        thread.start()
        answers.append(list(client.get_or_load(SERIES, early, slow).records))
        thread.join()
    return upstream.asked, answers


async def test_blocking_calls_share_the_overlap(server: Server) -> None:
    asked, answers = await asyncio.to_thread(blocking_overlap, f"127.0.0.1:{server.port}")
    early_end = stamp(JANUARY_BARS[9])
    assert asked == [
        Window(JANUARY.start_ms, early_end),
        Window(early_end + 1, JANUARY.end_ms),
    ]
    assert sorted(answers, key=len) == [JANUARY_BARS[:10], JANUARY_BARS]


async def test_a_hole_left_beside_a_lone_window_is_filled_later(server: Server) -> None:
    """The cache holds a week; a process that saw none of it loads a lone later day: the
    two days between are a hole no edge shows. A later window across it asks for them."""
    target = f"127.0.0.1:{server.port}"
    async with AsyncClient(target) as client:
        await client.write(SERIES, JANUARY_BARS[:5])
        upstream = Upstream()
        lone = Window(stamp(JANUARY_BARS[7]), stamp(JANUARY_BARS[7]))
        await client.get_or_load(SERIES, lone, upstream.aload)
        assert upstream.asked == [lone]
        wider = Window(stamp(JANUARY_BARS[0]), lone.end_ms)
        result = await client.get_or_load(SERIES, wider, upstream.aload)
        assert upstream.asked[1:] == [Window(stamp(JANUARY_BARS[4]) + 1, lone.start_ms - 1)]
        assert (result.source, result.records) == (Source.LOADER, JANUARY_BARS[:8])
        again = await client.get_or_load(SERIES, wider, upstream.aload)
        assert (again.source, len(upstream.asked)) == (Source.CACHE, 2)


async def test_a_hole_before_a_later_window_start_is_not_forgotten(server: Server) -> None:
    """The lone day leaves days 5-6 unknown; a window from day 6 loads day 6 only (its
    start edge): day 5 is still a hole, and a window across it asks for it."""
    async with AsyncClient(f"127.0.0.1:{server.port}") as client:
        await client.write(SERIES, JANUARY_BARS[:5])
        upstream = Upstream()
        lone = Window(stamp(JANUARY_BARS[7]), stamp(JANUARY_BARS[7]))
        await client.get_or_load(SERIES, lone, upstream.aload)
        later = Window(stamp(JANUARY_BARS[6]), lone.end_ms)
        await client.get_or_load(SERIES, later, upstream.aload)
        assert upstream.asked[1:] == [Window(later.start_ms, lone.start_ms - 1)]
        wider = Window(stamp(JANUARY_BARS[0]), lone.end_ms)
        result = await client.get_or_load(SERIES, wider, upstream.aload)
        assert upstream.asked[2:] == [Window(stamp(JANUARY_BARS[4]) + 1, later.start_ms - 1)]
        assert result.records == JANUARY_BARS[:8]


class Loads:
    """Work for a range flight: records which ranges it was given; answers a bar each."""

    def __init__(self) -> None:
        self.given: list[list[Window]] = []

    def load(self, ranges: list[Window]) -> list[Record]:
        self.given.append(ranges)
        return [Record(r.start_ms, "{}") for r in ranges]

    async def aload(self, ranges: list[Window]) -> list[Record]:
        return self.load(ranges)


EARLY, LATE = Window(0, 9), Window(10, 19)
WHOLE = Window(0, 19)


async def test_a_load_that_ends_between_a_read_and_its_loads_is_shared() -> None:
    """B reads the cache while A's load is in flight; A ends (written back, but after B's
    read) before B asks for its ranges: B takes A's records, and loads only the rest."""
    flight, work = AsyncRangeFlight(), Loads()
    with flight.watching(SERIES) as b:  # B reads: nothing held
        with flight.watching(SERIES) as a:
            assert await flight.load(SERIES, [EARLY], work.aload, a) == [Record(0, "{}")]
        got = await flight.load(SERIES, [WHOLE], work.aload, b)
    assert work.given == [[EARLY], [LATE]]
    assert sorted(stamp(r) for r in got) == [0, 10]
    with flight.watching(SERIES) as c:  # read after A ended: its read has A's records
        await flight.load(SERIES, [EARLY], work.aload, c)
    assert work.given[-1] == [EARLY]


def test_a_load_that_ends_between_a_read_and_its_loads_is_shared_blocking() -> None:
    flight, work = RangeFlight(), Loads()
    with flight.watching(SERIES) as b:
        with flight.watching(SERIES) as a:
            assert flight.load(SERIES, [EARLY], work.load, a) == [Record(0, "{}")]
        got = flight.load(SERIES, [WHOLE], work.load, b)
    assert work.given == [[EARLY], [LATE]]
    assert sorted(stamp(r) for r in got) == [0, 10]
    with flight.watching(SERIES) as c:
        flight.load(SERIES, [EARLY], work.load, c)
    assert work.given[-1] == [EARLY]


def test_ended_loads_are_kept_only_for_the_callers_that_read_before_them() -> None:
    recent: _Recent[str] = _Recent()
    first = recent.mark()
    recent.loads.append((EARLY, "a"))
    second = recent.mark()
    recent.loads.append((LATE, "b"))
    assert recent.since(first) == [(EARLY, "a"), (LATE, "b")]
    assert recent.since(second) == [(LATE, "b")]
    assert not recent.release(first)
    assert recent.loads == [(LATE, "b")]  # nobody left who read before "a" ended
    assert recent.since(second) == [(LATE, "b")]
    assert recent.release(second)  # nobody left: the series' entry goes
