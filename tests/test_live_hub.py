"""The subscription hub alone: what it keeps for resuming, and for how long."""

from __future__ import annotations

import pytest

from mdcache_server.live import hub as hub_module
from mdcache_server.live.hub import Hub
from mdcache_server.model import Record, SeriesKey

KEY = SeriesKey("600519", "quote", "tick")


def test_changes_are_kept_for_resuming_while_streams_come_and_go() -> None:
    hub = Hub(ring=3)
    stream = hub.open([KEY], "")
    hub.close(stream)
    hub.publish([(KEY, [Record(1, "1"), Record(2, "2")])])
    again = hub.open([KEY], "")
    assert [c.record.ts_ms for c in hub.since(again, 0) or []] == [1, 2]
    hub.publish([(KEY, [Record(3, "3"), Record(4, "4")])])
    assert hub.since(again, 0) is None  # seq 1 fell out of the ring of 3
    assert [c.seq for c in hub.since(again, 1) or []] == [2, 3, 4]


def test_with_no_stream_for_a_while_nothing_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = Hub()
    stream = hub.open([KEY], "")
    hub.close(stream)
    monkeypatch.setattr(hub_module, "RESUME_SECONDS", 0.0)
    hub.publish([(KEY, [Record(1, "1"), Record(1, "again"), Record(2, "2")])])
    assert hub.seq == 2  # numbered all the same (a timestamp twice counts once)
    later = hub.open([KEY], "")
    assert hub.since(later, 0) is None  # a resume from before: FAILED_PRECONDITION
    assert hub.since(later, 2) == []


def test_the_ring_is_bounded_by_payload_bytes() -> None:
    hub = Hub(ring_bytes=10)
    stream = hub.open([KEY], "")
    hub.publish([(KEY, [Record(i, "12345") for i in range(5)])])
    assert [c.seq for c in hub.since(stream, 3) or []] == [4, 5]
    assert hub.since(stream, 2) is None


async def test_the_same_value_again_is_left_out_while_the_ring_holds_it() -> None:
    """TDengine's log held one Write twice once (libtaos sent a submit again to a new
    leader; issue 26, fault 4): a stream gets each value once. A new value at the same
    timestamp, and a value written back, are changes and come again."""
    hub = Hub(ring=4)
    other = SeriesKey("000001", "quote", "tick")
    stream = hub.open([KEY, other], "")
    hub.publish([(KEY, [Record(1, "a")])])
    hub.publish([(KEY, [Record(1, "a")])])  # the log's second copy
    hub.publish([(other, [Record(1, "a")])])  # another series: its own record
    hub.publish([(KEY, [Record(1, "b")]), (KEY, [Record(1, "a")])])  # changed, changed back
    got = [(c.series, c.record) for c in stream.pending]
    assert got == [
        (KEY, Record(1, "a")),
        (other, Record(1, "a")),
        (KEY, Record(1, "b")),
        (KEY, Record(1, "a")),
    ]
    assert [c.seq for c in stream.pending] == [1, 2, 3, 4]
    hub.publish([(other, [Record(t, "x")]) for t in range(2, 6)])  # KEY's fall out
    hub.publish([(KEY, [Record(1, "a")])])  # no longer held: given (at most once more)
    assert stream.pending[-1].record == Record(1, "a")
    assert hub.repeats == 1
    assert set(hub._latest) == {(c.series, c.record.ts_ms) for c in hub._ring}


async def test_a_publish_is_taken_whole_unless_it_finds_the_buffer_full() -> None:
    """A relay's batch may be larger than a stream's buffer: a stream that has room when
    it begins takes it whole; one still holding a full buffer at the next is cut."""
    hub = Hub(buffer=2)
    stream = hub.open([KEY], "")
    hub.publish([(KEY, [Record(t, str(t)) for t in range(1, 6)])])  # 5 into a buffer of 2
    assert [(await stream.next()).record.ts_ms for _ in range(3)] == [1, 2, 3]
    hub.publish([(KEY, [Record(6, "6")])])  # 2 unsent: full, so cut
    with pytest.raises(Exception, match="fell 3 changes behind"):
        await stream.next()
    assert not stream.pending  # the memory is freed at once


async def test_a_horizon_waits_for_the_writes_in_flight_when_asked() -> None:
    """A replay's read can see a Write stored and not yet published: the horizon (up to
    which a live change may repeat what the replay sent) comes only once it is."""
    hub = Hub()
    hub.open([KEY], "")
    with hub.writing():  # stored, not yet published
        horizon = hub.horizon()
        with hub.writing():  # began after the horizon was asked: not waited for
            pass
        assert not horizon.done()
        hub.publish([(KEY, [Record(1, "1")])])
        assert not horizon.done()
    assert horizon.done()
    assert horizon.result() == 1  # its change counts as early
    hub.publish([(KEY, [Record(2, "2")])])
    assert hub.horizon().result() == 2  # nothing in flight: at once
