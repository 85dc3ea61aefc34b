"""Read with ``adjust``: forward (qfq) and backward (hfq) prices computed on read from raw
bars and a factor series, on every store: against values worked by hand, and against
Yahoo's own Adj Close (split- and dividend-adjusted) of shared/data, through a plain Read,
weeks, an earlier as-of time and a replica; and the remembered answers refreshed when a
factor arrives."""

from __future__ import annotations

import csv
import json
from datetime import UTC, date, datetime
from pathlib import Path

import grpc
import pytest

from mdcache.v1 import cache_pb2 as pb
from mdcache_client import AsyncClient, InvalidArgumentError, MdcacheError, Record, Series
from mdcache_server.app import Server
from mdcache_server.errors import InvalidArgument
from mdcache_server.resample.adjust import Adjust, Adjustment, Factors
from mdcache_server.resample.bars import DEFAULT_SUMMED, Fields

from .support import caught_up, running

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SPY = SHARED_DATA / "us_daily_mplfinance" / "yahoofinance-SPY-20080101-20180101.csv"
BARS = Series("600519.SH", "kline", "1d")
FACTORS = Series("600519.SH", "adj_factor", "1d")  # the convention
CENT = 0.005


def day_ms(text: str) -> int:
    return (
        int(datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC).timestamp()) * 1000
    )


def bar(o: float, h: float, low: float, c: float, vol: int = 1000, **more: object) -> str:
    return json.dumps({"open": o, "high": h, "low": low, "close": c, "vol": vol, **more})


def factor(value: float) -> str:
    return json.dumps({"adj_factor": value})


# Four days of raw bars; a dividend on the third day (factor 1.0 -> 1.25), another on the
# fourth (1.25 -> 1.5). Hand-computed: backward = price x factor; forward = price x factor
# / 1.5 (the latest); forward as of the second day = price x factor / 1.0.
DAYS = ["2020-01-06", "2020-01-07", "2020-01-08", "2020-01-09"]
RAW = [bar(10, 12, 9, 11), bar(11, 13, 10, 12), bar(9.6, 10, 9, 9.8), bar(8, 8.4, 7.6, 8.2)]
FACTOR_DAYS = [("2020-01-06", 1.0), ("2020-01-08", 1.25), ("2020-01-09", 1.5)]
BACKWARD_CLOSES = [11.0, 12.0, 12.25, 12.299999999999999]
FORWARD_CLOSES = [11 / 1.5, 12 / 1.5, 9.8 * 1.25 / 1.5, 8.2]


# -- the math (resample/adjust.py) -------------------------------------------------------


def test_the_factor_in_force_is_the_latest_at_or_before_else_the_first() -> None:
    factors = Factors([100, 200, 300], [1.0, 2.0, 4.0])
    assert [factors.at(t) for t in (50, 100, 199, 200, 250, 300, 10**12)] == [1, 1, 1, 2, 2, 4, 4]


def test_prices_by_hand_backward_forward_and_as_of() -> None:
    factors = Factors([day_ms(d) for d, _ in FACTOR_DAYS], [f for _, f in FACTOR_DAYS])
    ts = [day_ms(d) for d in DAYS]
    back = Adjustment.of(Adjust.BACKWARD, factors, None).payloads(ts, RAW, "series[0]")
    assert [json.loads(p)["close"] for p in back] == [11 * 1.0, 12 * 1.0, 9.8 * 1.25, 8.2 * 1.5]
    assert [json.loads(p)["close"] for p in back] == BACKWARD_CLOSES
    fwd = Adjustment.of(Adjust.FORWARD, factors, None).payloads(ts, RAW, "series[0]")
    assert [json.loads(p)["close"] for p in fwd] == FORWARD_CLOSES
    assert json.loads(fwd[0]) == {
        "open": 10 / 1.5,
        "high": 12 / 1.5,
        "low": 9 / 1.5,
        "close": 11 / 1.5,
        "vol": 1000,
    }  # volume as stored
    as_of = Adjustment.of(Adjust.FORWARD, factors, day_ms("2020-01-07"))
    closes = [json.loads(p)["close"] for p in as_of.payloads(ts, RAW, "series[0]")]
    assert closes == [11.0, 12.0, 9.8 * 1.25, 8.2 * 1.5]


def test_volume_takes_the_inverse_factor_when_asked_and_other_fields_stay() -> None:
    factors = Factors([0, 10], [1.0, 2.0])
    adjust = Adjustment.of(Adjust.FORWARD, factors, None, volume=True)
    payload = json.dumps(
        {
            "Open": 4,
            "High": 5,
            "Low": 3,
            "Close": 4,
            "Volume": 300,
            "amount": 1200,
            "pre_close": 4,
            "Adj Close": 3.9,
        }
    )
    got = json.loads(adjust.payloads([5], [payload], "series[0]")[0])
    assert got == {
        "Open": 2.0,
        "High": 2.5,
        "Low": 1.5,
        "Close": 2.0,
        "Volume": 600.0,
        "amount": 1200,
        "pre_close": 4,
        "Adj Close": 3.9,
    }
    fields = adjust.fields(Fields([5, 10], [payload, payload], DEFAULT_SUMMED, "series[0]"))
    assert fields.columns[3] == [2.0, 4.0]
    assert fields.sums[fields.summed.index("Volume")] == [600.0, 300.0]
    assert fields.sums[fields.summed.index("amount")] == [1200, 1200]


def test_a_factor_record_without_a_positive_number_names_the_field() -> None:
    for payload in ('{"adj_factor": 0}', '{"close": 1}', '{"factor": "1.2"}', "[1]"):
        with pytest.raises(InvalidArgument, match="adj_factor") as caught:
            Factors.parse([1], [payload], "adjust_factors")
        assert caught.value.field == "adjust_factors"
    assert Factors.parse([1, 2], ['{"factor": 2}', '{"ADJ_FACTOR": 3.5}'], "f").values == [2, 3.5]


# -- through the server, on every store ----------------------------------------------------


async def write_hand_example(client: AsyncClient) -> None:
    await client.write(BARS, [Record(day_ms(d), p) for d, p in zip(DAYS, RAW, strict=True)])
    await client.write(FACTORS, [Record(day_ms(d), factor(f)) for d, f in FACTOR_DAYS])


def closes(result: object) -> list[float]:
    return [r.json()["close"] for r in result.records]  # type: ignore[attr-defined]


@pytest.fixture(params=["hot tier", "store only"])
def server_settings(request: pytest.FixtureRequest) -> dict[str, str]:
    """Each test through the hot tier (held copies, parsed fields, remembered answers) and
    with it off (every read from the store)."""
    return {"hot_tier_bytes": "0"} if request.param == "store only" else {}


async def test_adjusted_reads_answer_the_hand_computed_prices(client: AsyncClient) -> None:
    await write_hand_example(client)
    assert closes(await client.read(BARS)) == [11, 12, 9.8, 8.2]  # raw: nothing stored changed
    assert closes(await client.read(BARS, adjust="backward")) == BACKWARD_CLOSES
    assert closes(await client.read(BARS, adjust="hfq")) == BACKWARD_CLOSES
    assert closes(await client.read(BARS, adjust="qfq")) == FORWARD_CLOSES
    as_of = await client.read(BARS, adjust="forward", as_of_ms=day_ms("2020-01-07"))
    assert closes(as_of) == [11.0, 12.0, 9.8 * 1.25, 8.2 * 1.5]
    # the window's end is the default as-of time: the factor in force on the 8th is 1.25
    to_8th = await client.read(BARS, adjust="forward", end_ms=day_ms("2020-01-08"))
    assert closes(to_8th) == [11 / 1.25, 12 / 1.25, 9.8 * 1.25 / 1.25]
    newest = await client.read(BARS, adjust="forward", newest_first=True, limit=2)
    assert closes(newest) == FORWARD_CLOSES[:1:-1]
    vols = await client.read(BARS, adjust="backward", adjust_volume=True)
    assert [r.json()["vol"] for r in vols.records] == [1000.0, 1000.0, 800.0, 1000 / 1.5]
    week = await client.read(BARS, adjust="backward", resample="1w")
    assert [r.json() for r in week.records] == [
        {"open": 10.0, "high": 13.0, "low": 9.0, "close": 8.2 * 1.5, "vol": 4000}
    ]


async def test_factors_named_by_the_caller_and_read_many(client: AsyncClient) -> None:
    await write_hand_example(client)
    mine = Series("600519.SH", "my_factors", "1d")
    await client.write(mine, [Record(day_ms(DAYS[0]), '{"factor": 2}')])
    got = await client.read(BARS, adjust="backward", adjust_factors=mine)
    assert closes(got) == [22, 24, 19.6, 16.4]
    other = Series("600000.SH", "kline", "1d")
    await client.write(other, [Record(day_ms(DAYS[0]), bar(1, 1, 1, 1))])
    await client.write(Series("600000.SH", "adj_factor", "1d"), [Record(0, factor(3))])
    both = await client.read_many([BARS, other], adjust="backward")
    assert [closes(r) for r in both] == [BACKWARD_CLOSES, [3.0]]  # each its own symbol's


async def test_bad_adjusted_reads_name_the_field(client: AsyncClient) -> None:
    await client.write(BARS, [Record(day_ms(DAYS[0]), bar(1, 2, 1, 2))])
    with pytest.raises(MdcacheError) as caught:
        await client.read(BARS, adjust="forward")
    assert caught.value.code is grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.details.startswith("adjust_factors: series[0] 600519.SH/kline/1d has bars")
    assert (await client.read(Series("000000.SH", "kline", "1d"), adjust="forward")).hit is False
    await client.write(FACTORS, [Record(day_ms(DAYS[0]), '{"adj": 1}')])
    bad = r"^INVALID_ARGUMENT: adjust_factors: the record of 600519.SH/adj_factor/1d at ts_ms"
    with pytest.raises(InvalidArgumentError, match=bad):
        await client.read(BARS, adjust="forward")
    await client.write(FACTORS, [Record(day_ms(DAYS[0]), factor(1.5))])
    quotes = Series("600519.SH", "quote", "tick")
    await client.write(quotes, [Record(day_ms(DAYS[0]), '{"price": 1}')])
    with pytest.raises(InvalidArgumentError, match=r"series\[0\]\.payload\.open: missing"):
        await client.read(quotes, adjust="backward", adjust_factors=FACTORS)
    with pytest.raises(InvalidArgumentError, match="adjust_as_of_ms: only forward"):
        await client.read(BARS, adjust="backward", as_of_ms=1)
    with pytest.raises(InvalidArgumentError, match="adjust_volume: given without adjust"):
        await client.read(BARS, adjust_volume=True)
    with pytest.raises(InvalidArgumentError, match="adjust_factors: given without adjust"):
        await client.read(BARS, adjust_factors=FACTORS)
    with pytest.raises(
        InvalidArgumentError, match=r"adjust_factors: series\[0\] cannot be its own"
    ):
        await client.read(FACTORS, adjust="backward")
    with pytest.raises(ValueError, match="adjust: 'sideways'"):
        await client.read(BARS, adjust="sideways")


async def test_an_unknown_adjust_value_is_invalid(server: Server) -> None:
    request = pb.ReadRequest(
        series=[pb.SeriesKey(symbol="A", data_type="kline", timeframe="1d")], adjust=7
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        read = channel.unary_unary(
            "/mdcache.v1.MarketDataCache/Read",
            request_serializer=pb.ReadRequest.SerializeToString,
            response_deserializer=pb.ReadResponse.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await read(request)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "adjust: unknown value 7"


async def test_a_new_factor_refreshes_the_remembered_answer(
    server: Server, client: AsyncClient, server_settings: dict[str, str]
) -> None:
    await write_hand_example(client)
    await caught_up(server)  # the Writes are merged: the first Read's fills are not doubtful
    first = await client.read(BARS, adjust="forward")
    again = await client.read(BARS, adjust="forward")
    assert closes(again) == closes(first) == FORWARD_CLOSES
    remembered = len(server.servicer.answers)
    assert remembered == (0 if server_settings else 1)  # from held copies only
    await client.write(FACTORS, [Record(day_ms("2020-01-10"), factor(3.0))])  # a dividend
    after = await client.read(BARS, adjust="forward")
    assert closes(after) == [c * 1.5 / 3.0 for c in FORWARD_CLOSES]
    assert closes(await client.read(BARS)) == [11, 12, 9.8, 8.2]  # no stored bar changed


# -- Yahoo's Adj Close (shared/data) -------------------------------------------------------


def spy_rows(first: str = "2015-01-01", last: str = "2017-12-31") -> list[dict[str, str]]:
    with SPY.open(newline="") as f:
        return [row for row in csv.DictReader(f) if first <= row["Date"] <= last]


def spy_series(rows: list[dict[str, str]]) -> tuple[list[Record], list[Record]]:
    """The raw bars (as ``mdcache load`` writes them) and factors AdjClose / Close."""
    bars, factors = [], []
    for row in rows:
        ts = day_ms(row["Date"])
        values = {k: (int(v) if k == "Volume" else float(v)) for k, v in row.items() if k != "Date"}
        bars.append(Record(ts, json.dumps({"Date": row["Date"], **values})))
        factors.append(Record(ts, factor(float(row["Adj Close"]) / float(row["Close"]))))
    return bars, factors


SPY_BARS = Series("SPY", "kline", "1d")
SPY_FACTORS = Series("SPY", "adj_factor", "1d")
needs_spy = pytest.mark.skipif(not SPY.is_file(), reason=f"no {SPY} on this machine")


def assert_cents(got: list[float], want: list[float]) -> None:
    assert len(got) == len(want)
    off = [(i, g, w) for i, (g, w) in enumerate(zip(got, want, strict=True)) if abs(g - w) > CENT]
    assert not off, off[:5]


@needs_spy
async def test_backward_adjusted_close_is_yahoos_adj_close_through_every_path(
    store_url: str,
) -> None:
    rows = spy_rows()
    adj = [float(r["Adj Close"]) for r in rows]
    bars, factors = spy_series(rows)
    on = {"subscribe_relay": "on"}  # replicas follow the change feed (SQLite: the journal)
    async with running(store_url, **on) as (_, writer), running(store_url, **on) as (_, replica):
        await writer.write(SPY_BARS, bars)
        await writer.write(SPY_FACTORS, factors)
        for client in (writer, replica):  # plain, then again (a remembered answer)
            for _ in range(2):
                days = await client.read(SPY_BARS, adjust="backward")
                assert_cents([r.json()["Close"] for r in days.records], adj)
                assert closes_raw(days) == [r["Date"] for r in rows]
            weeks = await client.read(SPY_BARS, adjust="backward", resample="1w")
            last_of_week: dict[tuple[int, int], float] = {}
            for r in rows:
                last_of_week[date.fromisoformat(r["Date"]).isocalendar()[:2]] = float(
                    r["Adj Close"]
                )
            assert_cents([r.json()["Close"] for r in weeks.records], list(last_of_week.values()))
            # forward as of 2016-06-30: relative to that day's factor, its close as traded
            as_of = rows.index(next(r for r in rows if r["Date"] == "2016-06-30"))
            base = float(rows[as_of]["Close"]) / adj[as_of]
            fwd = await client.read(SPY_BARS, adjust="forward", as_of_ms=day_ms("2016-06-30"))
            assert_cents([r.json()["Close"] for r in fwd.records], [a * base for a in adj])
            assert abs(fwd.records[as_of].json()["Close"] - float(rows[as_of]["Close"])) < 1e-9
        # a factor arrives through one replica: the next adjusted Read of that session
        # (its token) through the other shows it (the dividend's factor from the ex-date
        # on; forward: history scaled)
        before = await replica.read(SPY_BARS, adjust="forward")
        ex_date = day_ms("2018-01-02")
        last = json.loads(factors[-1].payload)["adj_factor"]
        await writer.write(SPY_FACTORS, [Record(ex_date, factor(last * 1.01))])
        replica.session_token = writer.session_token
        for client in (replica, writer):
            after = await client.read(SPY_BARS, adjust="forward")
            assert_cents(
                [r.json()["Close"] for r in after.records],
                [r.json()["Close"] / 1.01 for r in before.records],
            )
            assert after.records[-1].json()["Close"] != before.records[-1].json()["Close"]


def closes_raw(result: object) -> list[str]:
    return [r.json()["Date"] for r in result.records]  # type: ignore[attr-defined]


async def test_the_default_retention_keeps_old_factors_as_it_keeps_bars(store_url: str) -> None:
    """Factors of 2020 are years older than the 7 days kept of most data: the default rules
    keep them (``adj_factor=0``), or adjusted Reads would fail after the next run."""
    async with running(store_url) as (_, client):
        await write_hand_example(client)
    async with running(store_url) as (server, client):  # its start-up run is over
        assert server.config.retention.days["adj_factor"] == 0
        assert closes(await client.read(BARS, adjust="backward")) == BACKWARD_CLOSES
