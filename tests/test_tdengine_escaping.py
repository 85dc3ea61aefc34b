"""Writes sent as multi-table INSERT text, escaped, land byte for byte on a real TDengine.

A small Write goes to TDengine as one INSERT text (``sql.insert_text``: strings as
``sql.literal``), a large one bound to a prepared statement. Both must store exactly what
was given, whatever payloads (valid JSON: the service checks) and series keys (any UTF-8
without control characters: the service checks) hold: backslashes, quotes of both kinds,
newlines between JSON tokens and escaped in strings, unicode of every plane.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdcache_server.model import Record, SeriesKey, Window
from mdcache_server.store.tdengine import TDengineStore, sql
from mdcache_server.store.tdengine.store import TDengineConnection

from .conftest import tdengine_test_url

pytestmark = pytest.mark.tdengine

NASTY = [
    "\\",
    "'",
    '"',
    "\\'",
    "''",
    "\\\\",
    "\n",
    "\\n",
    "%",
    "_",
    "`",
    ";",
    "--",
    "é",
    "贵州",
    "😀",
]
# Any text without control characters (the service refuses them in keys), nasty parts likely.
plain = st.lists(
    st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=4)
    | st.sampled_from([n for n in NASTY if n.isprintable()]),
    min_size=1,
    max_size=6,
).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.sampled_from(NASTY), children, max_size=4)
    ),
    max_leaves=12,
)
# JSON text as an upstream sends it: compact, indented (raw newlines), or ASCII-escaped.
payloads = st.builds(
    lambda value, style: json.dumps(value, **style),
    json_values,
    st.sampled_from(
        [{"ensure_ascii": False}, {"indent": 2, "ensure_ascii": False}, {"ensure_ascii": True}]
    ),
)


@pytest.fixture(scope="module")
def conn() -> Iterator[TDengineConnection]:
    for url in tdengine_test_url():
        connection = TDengineStore.from_url(url).connect()
        connection.ensure_schema()
        yield connection
        connection.close()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    symbol=plain,
    data_type=plain,
    values=st.lists(payloads, min_size=1, max_size=5),
    bound=st.booleans(),
)
def test_what_is_written_is_read_back_byte_for_byte(
    conn: TDengineConnection,
    monkeypatch: pytest.MonkeyPatch,
    symbol: str,
    data_type: str,
    values: list[str],
    bound: bool,
) -> None:
    key = SeriesKey(symbol, data_type, "1d")
    records = [Record(1_700_000_000_000 + i, p) for i, p in enumerate(values)]
    with monkeypatch.context() as m:
        if bound:  # as a large Write is sent
            m.setattr(sql, "TEXT_INSERT_MAX_CHARS", 0)
        conn.write([(key, records)])
    (read,) = conn.read([key], Window(None, None))
    assert read.records == records
    assert key in {k for k, _ in conn.list_series()}
    conn.drop_series([key])


def test_a_literal_escapes_exactly_backslashes_and_quotes() -> None:
    assert sql.literal('it\'s a \\ "x"\n') == "'it\\'s a \\\\ \"x\"\n'"
