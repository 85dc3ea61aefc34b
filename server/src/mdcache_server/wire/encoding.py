"""Tags, varints and sizes of the contract's wire format, each written once.

Plain protobuf encoding of ``mdcache.v1`` (field numbers from ``cache.proto``), written
out so that a store needs no generated code; ``tests/test_wire.py`` checks what is made
of them against the generated code byte for byte. Every tag here is one byte (field
numbers below 16).
"""

from __future__ import annotations

from typing import Final

VARINT: Final = 0  # protobuf wire types
LENGTH_DELIMITED: Final = 2


def tag(field_number: int, wire_type: int) -> bytes:
    """A field's tag: one byte for the field numbers of this contract (1 to 15)."""
    return bytes(((field_number << 3) | wire_type,))


TAG_BYTES: Final = 1

# A record in an answer: SeriesResult.records (tag, length, Record), and in it the Record's
# ts_ms (tag, varint) and payload (tag, length, UTF-8), the payload left out when empty.
RECORDS: Final = tag(3, LENGTH_DELIMITED)  # SeriesResult.records = 3
TS: Final = tag(1, VARINT)  # Record.ts_ms = 1
PAYLOAD: Final = tag(2, LENGTH_DELIMITED)  # Record.payload = 2
RECORD_TAGS: Final = 3  # tags in a record with a payload: RECORDS, TS, PAYLOAD

# The rest of a Read answer around the records.
RESULTS: Final = tag(1, LENGTH_DELIMITED)  # ReadResponse.results = 1
SERIES: Final = tag(1, LENGTH_DELIMITED)  # SeriesResult.series = 1
HIT: Final = tag(2, VARINT) + b"\x01"  # SeriesResult.hit = 2, true
TRUNCATED: Final = tag(4, VARINT) + b"\x01"  # SeriesResult.truncated = 4, true

# Bytes a record adds to an answer besides its payload, at most: three tags, two lengths
# of up to 3 bytes (a record is far under 2 MiB) and a ts_ms up to 2099 in 6 bytes (15),
# rounded up. Sizing an answer within the message limit counts this much per record (the
# memory a record takes in the hot tier is another measure: cache/hot.py).
RECORD_OVERHEAD: Final = 16

_U64 = (1 << 64) - 1
VARINT_BITS: Final = 7  # payload bits per varint byte
MAX_VARINT_BYTES: Final = 10  # a negative int64, as its two's complement


def varint_limit(width: int) -> int:
    """The smallest number a varint of ``width`` bytes cannot hold."""
    return 1 << (VARINT_BITS * width)


def varint(n: int) -> bytes:
    """A base-128 varint; a negative int64 as its two's complement (ten bytes)."""
    n &= _U64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


SMALL_LIMIT: Final = varint_limit(2)  # lengths of almost every record: one or two bytes
SMALL: Final = tuple(varint(n) for n in range(SMALL_LIMIT))


def length(n: int) -> bytes:
    """A length prefix (a varint)."""
    return SMALL[n] if n < SMALL_LIMIT else varint(n)
