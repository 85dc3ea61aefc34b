"""The ceiling on TDengine: the bare gRPC floor doing TDengine alone's work, and no more.

Its Write turns the request into TDengine alone's multi-row INSERT text (``bench.tdfloor``:
every series of the call in one statement, payloads escaped) and executes it; its Read
runs TDengine alone's query for the window (or the latest record) and answers the
pre-built ``ReadResponse`` the floor answers, so it does not even build its answer from
the rows. Both run on a worker thread (``run_in_executor`` on a pool of 2, each thread
with its own taospy connection), as every store call of a server must: a call to
libtaos blocks.

It checks nothing, holds nothing and follows no feed: where mdcache is measured against
TDengine alone (no gRPC, in the benchmark's process), this shows how much of the gap is
gRPC's and the thread hop's. (mdcache's store fetches result blocks column-wise, faster
than taospy's ``fetch_all``, so a cold Read of mdcache can pass it where the fetch weighs.)

``python -m bench.tdceiling --port P --responses F --tdengine taos://...@host:port --db D``
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

from bench import floor, taosd, tdfloor
from mdcache.v1 import cache_pb2 as pb
from mdcache_server.model import SeriesKey
from mdcache_server.store.tdengine.naming import series_table


class CeilingServicer(floor.FloorServicer):
    def __init__(self, responses: dict[int, pb.ReadResponse], base: str, db: str) -> None:
        super().__init__(responses)
        self.base, self.db = base, db
        self.workers = ThreadPoolExecutor(2, thread_name_prefix="ceiling")
        self.local = threading.local()

    def _conn(self) -> Any:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = taosd.connect(self.base)
        return conn

    def _write(self, request: pb.WriteRequest) -> int:
        batch = [(_key(entry.series), entry.records) for entry in request.series]
        self._conn().execute(tdfloor.insert_text(self.db, batch))
        return sum(len(records) for _, records in batch)

    def _read(self, request: pb.ReadRequest) -> pb.ReadResponse:
        table = f"{self.db}.{series_table(_key(request.series[0]))}"
        if request.HasField("start_ms"):
            query = tdfloor.window_query(table, request.start_ms, request.end_ms, request.limit)
        else:
            query = tdfloor.latest_query(table)
        self._conn().query(query).fetch_all()
        return self.responses.get(request.limit, self.empty)

    async def Write(
        self, request: pb.WriteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.WriteResponse:
        loop = asyncio.get_running_loop()
        return pb.WriteResponse(
            written=await loop.run_in_executor(self.workers, self._write, request)
        )

    async def Read(
        self, request: pb.ReadRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ReadResponse:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.workers, self._read, request)


def _key(key: pb.SeriesKey) -> SeriesKey:
    return SeriesKey(key.symbol, key.data_type, key.timeframe)


async def serve(port: int, responses: dict[int, pb.ReadResponse], base: str, db: str) -> None:
    conn = taosd.connect(base)
    try:
        tdfloor.create(conn, db)
    finally:
        conn.close()
    await floor.serve_until_signalled(CeilingServicer(responses, base, db), port)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tdceiling", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--responses", type=Path, required=True)
    parser.add_argument("--tdengine", required=True, help="taos://user:password@host:port")
    parser.add_argument("--db", required=True, help="a database of its own (dropped first)")
    args = parser.parse_args()
    responses = floor.load_responses(args.responses)
    asyncio.run(serve(args.port, responses, args.tdengine, args.db))


if __name__ == "__main__":
    main()
