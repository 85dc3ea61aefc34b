"""Each rule of the partition checker shown to catch a violation: a history that passes every
rule, then the same history doctored to break one rule, which the checker must then report
(and only that rule). These need no namespaces and run everywhere."""

from __future__ import annotations

import copy

import pytest

from mdcache_client import Series

from . import checker
from .history import Delivery, History, Read, Stream, Write

A = Series("P0", "quote", "tick")
B = Series("P1", "quote", "tick")


def good() -> tuple[History, dict[Series, dict[int, str]]]:
    """Two writers, reads after their acks, a stream per replica, a cut and a heal."""
    h = History()
    h.writes += [
        Write("w0", "r1", 1.0, 1.1, 5.0, {A: [(100, '{"a":1}'), (101, '{"a":2}')]}),
        Write("w1", "r2", 1.0, 1.2, 5.0, {B: [(100, '{"b":"é"}')]}),
        Write("w0", "r2", 2.0, 2.1, 5.0, {A: [(102, '{"a":3}')]}),
        Write("w0", "r1", 3.0, 8.0, 5.0, {A: [(103, '{"a":4}')]}, "DEADLINE_EXCEEDED: late"),
        Write("w1", "r1", 4.0, 4.5, 5.0, {B: [(101, '{"b":2}')]}, "UNAVAILABLE: cut"),
        Write("w0", "r1", 10.5, 10.6, 5.0, {A: [(104, '{"a":5}')]}),
        Write("w1", "r2", 10.2, 10.4, 5.0, {B: [(102, '{"b":3}')]}),
    ]
    h.reads += [
        Read("r0", "r1", 1.5, 1.6, 5.0, A, True, answer=[(101, '{"a":2}')]),
        Read(
            "r1",
            "r2",
            2.5,
            2.6,
            5.0,
            A,
            False,
            100,
            110,
            [(100, '{"a":1}'), (101, '{"a":2}'), (102, '{"a":3}')],
        ),
        Read("r2", "r1", 2.05, 2.2, 5.0, A, True, answer=[(101, '{"a":2}')]),  # began before ack
        Read("r3", "r2", 9.0, 9.1, 5.0, B, True, answer=[(101, '{"b":2}')]),  # failed write seen
        Read("r4", "r1", 9.5, 10.0, 5.0, B, True, error="UNAVAILABLE: store"),
        Read("r5", "r1", 11.0, 11.05, 5.0, A, True, answer=[(104, '{"a":5}')]),
        Read("r6", "r2", 10.3, 10.35, 5.0, B, True, answer=[(101, '{"b":2}')]),
    ]
    s1 = Stream("s1", "r1", [A], 0.5)
    s1.deliveries = [
        Delivery(A, rec, 1.2 + i, False)
        for i, rec in enumerate(
            [
                (100, '{"a":1}'),
                (101, '{"a":2}'),
                (102, '{"a":3}'),
                (103, '{"a":4}'),
                (104, '{"a":5}'),
            ]
        )
    ]
    s2 = Stream("s2", "r2", [B], 0.5)
    s2.deliveries = [
        Delivery(B, (100, '{"b":"é"}'), 1.3, True),
        Delivery(B, (102, '{"b":3}'), 11, False),
    ]
    h.streams += [s1, s2]
    h.mark("cut", 3.0, "r1 from TDengine")
    h.mark("heal", 10.0)
    stored = {
        A: {100: '{"a":1}', 101: '{"a":2}', 102: '{"a":3}', 103: '{"a":4}', 104: '{"a":5}'},
        B: {100: '{"b":"é"}', 101: '{"b":2}', 102: '{"b":3}'},
    }
    return h, stored


def rules(
    h: History, stored: dict[Series, dict[int, str]], promise: checker.Promise | None = None
) -> set[str]:
    return {v.rule.split(" ")[0] for v in checker.check(h, stored, promise)}


def test_a_good_history_passes_every_rule() -> None:
    h, stored = good()
    assert checker.check(h, stored) == []
    assert checker.recovery(h, ["r1", "r2"]) == {
        "r1": {"write": 0.6, "read": 1.05},
        "r2": {"write": 0.4, "read": 0.35},
    }


def test_a_lost_acknowledged_record_is_caught() -> None:
    h, stored = good()
    del stored[A][102]
    found = checker.lost(h, stored)
    assert [v.rule for v in found] == ["lost"]
    assert "ts=102" in found[0].detail
    assert rules(h, stored) == {"lost"}


def test_an_altered_byte_is_caught() -> None:
    h, stored = good()
    stored[B][100] = '{"b":"e"}'  # é lost its accent
    assert rules(h, stored) == {"lost"}


def test_a_lost_unacknowledged_record_is_not_a_violation() -> None:
    h, stored = good()
    del stored[A][103]  # its Write failed DEADLINE_EXCEEDED: it may or may not be stored
    assert checker.lost(h, stored) == []


def test_a_stale_latest_read_is_caught() -> None:
    h, stored = good()
    h.reads[5].answer = [(102, '{"a":3}')]  # began at 11.0, after 104 was acknowledged
    found = checker.stale(h, checker.Strict())
    assert len(found) == 1
    assert "ts=104 was due" in found[0].detail
    assert rules(h, stored) == {"stale"}


def test_a_stale_window_read_is_caught() -> None:
    h, stored = good()
    h.reads[1].answer = [(100, '{"a":1}'), (101, '{"a":2}')]  # 102 acknowledged at 2.1
    assert rules(h, stored) == {"stale"}


def test_a_miss_after_an_acknowledged_write_is_stale() -> None:
    h, stored = good()
    h.reads[0].answer = []
    assert rules(h, stored) == {"stale"}


def test_a_truncated_window_is_not_judged_incomplete() -> None:
    h, _stored = good()
    h.reads[1].answer = [(100, '{"a":1}')]
    h.reads[1].truncated = True
    assert checker.stale(h, checker.Strict()) == []


def test_a_bounded_promise_allows_staleness_within_its_bound_only() -> None:
    h, _stored = good()
    h.reads[5].answer = [(102, '{"a":3}')]  # 104 acked at 10.6, read at 11.0: 400 ms
    assert checker.stale(h, checker.Bounded(500)) == []
    found = checker.stale(h, checker.Bounded(300))
    assert [v.rule for v in found] == ["stale (bounded)"]


def test_read_your_writes_holds_the_caller_to_its_own_writes_at_once() -> None:
    h, _stored = good()
    h.reads[5].answer = [(102, '{"a":3}')]
    assert checker.stale(h, checker.ReadYourWrites(500)) == []  # another caller's write
    h.reads[5].caller = "w0"  # the writer of 104 reads its own series
    found = checker.stale(h, checker.ReadYourWrites(500))
    assert [v.rule for v in found] == ["stale (read-your-writes)"]


def test_an_answer_no_write_carried_is_caught() -> None:
    h, stored = good()
    h.reads[0].answer = [(101, '{"a":"forged"}')]
    found = checker.wrong(h)
    assert len(found) == 1
    assert "forged" in found[0].detail
    assert "wrong" in rules(h, stored)


def test_a_record_outside_the_window_is_caught() -> None:
    h, _stored = good()
    h.reads[1].start_ms, h.reads[1].end_ms = 101, 110
    assert [v.rule for v in checker.wrong(h)] == ["wrong"]


@pytest.mark.parametrize(
    "error",
    [
        "UNKNOWN: Exception calling application",
        "INTERNAL: boom",
        "NOT_FOUND: x",
        "EXCEPTION: KeyError('a')",
    ],
)
def test_a_failure_other_than_unavailable_or_deadline_is_caught(error: str) -> None:
    h, stored = good()
    h.reads[4].error = error
    found = checker.failures(h)
    assert len(found) == 1
    assert error in found[0].detail
    assert rules(h, stored) == {"failure"}


def test_a_failure_past_its_deadline_is_caught() -> None:
    h, _stored = good()
    h.writes[4].end = h.writes[4].start + 5.0 + checker.DEADLINE_SLACK + 0.1
    found = checker.failures(h)
    assert len(found) == 1
    assert "after 6.1 s" in found[0].detail


def test_a_gap_in_a_stream_is_caught() -> None:
    h, _stored = good()
    del h.streams[0].deliveries[2]  # (102) acknowledged, never given
    found = checker.streams(h)
    assert len(found) == 1
    assert "never given, first ts=102" in found[0].detail


def test_a_duplicate_in_a_stream_is_caught() -> None:
    h, _stored = good()
    h.streams[1].deliveries.append(copy.copy(h.streams[1].deliveries[0]))
    found = checker.streams(h)
    assert len(found) == 1
    assert "1 duplicate(s)" in found[0].detail


def test_a_duplicate_of_an_unacknowledged_record_is_caught_too() -> None:
    h, _stored = good()
    h.streams[0].deliveries.append(copy.copy(h.streams[0].deliveries[3]))  # (103) failed
    assert "duplicate" in checker.streams(h)[0].detail


def test_records_out_of_acknowledged_order_are_caught() -> None:
    h, _stored = good()
    d = h.streams[0].deliveries
    d[1], d[2] = d[2], d[1]
    found = checker.streams(h)
    assert len(found) == 1
    assert "out of acknowledged order" in found[0].detail


def test_a_stream_ended_by_an_error_is_caught() -> None:
    h, stored = good()
    h.streams[1].error = "RESOURCE_EXHAUSTED: fell 10001 changes behind"
    assert rules(h, stored) == {"stream"}


def test_no_recovery_after_the_heal_is_reported_as_none() -> None:
    h, _ = good()
    h.writes = [w for w in h.writes if w.replica != "r2" or w.end < 10.0]
    assert checker.recovery(h, ["r2"]) == {"r2": {"write": None, "read": 0.35}}


def test_a_record_given_under_another_series_is_caught() -> None:
    h, _ = good()
    h.streams[1].deliveries.append(Delivery(B, (101, '{"a":2}'), 12.0, False))  # A's record
    found = checker.streams(h)
    assert len(found) == 1
    assert "no Write carried for this series, first ts=101" in found[0].detail
