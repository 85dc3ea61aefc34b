"""The floor: a bare grpc.aio server of the same contract that does no work at all.

Its Write only counts the records it was sent. Its Read answers a pre-built
``ReadResponse`` chosen by the request's ``limit``: the very answers mdcache gave to the
same requests, so sizes are byte for byte the same.
What it costs is what the Python gRPC stack costs (parse the request, serialize the
answer, HTTP/2), and so what no Python gRPC server of this contract can beat.

With ``--hop`` its Read takes the pre-built answer from a worker thread
(``run_in_executor`` on a pool of 2, the usual asyncio idiom), doing nothing there: what
the stack allows a server whose reads must leave the event loop, as every store call of
mdcache does. With ``--hop-work-us N`` the worker also hashes a buffer for about N µs
with the GIL released (``hashlib`` releases it for buffers over 2 KiB), standing in for a
store read of that length (SQLite's answer to a year of bars takes 100-160 µs).

``python -m bench.floor --port 50100 --responses responses.json [--hop] [--hop-work-us N]``
where the file maps a limit to a base64 serialized ReadResponse.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import signal
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc

from mdcache.v1 import cache_pb2 as pb
from mdcache.v1 import cache_pb2_grpc as pb_grpc


class FloorServicer(pb_grpc.MarketDataCacheServicer):
    def __init__(self, responses: dict[int, pb.ReadResponse]) -> None:
        self.responses = responses
        self.empty = pb.ReadResponse()

    async def Read(
        self, request: pb.ReadRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ReadResponse:
        return self.responses.get(request.limit, self.empty)

    async def Write(
        self, request: pb.WriteRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.WriteResponse:
        return pb.WriteResponse(written=sum(len(entry.records) for entry in request.series))

    async def Purge(
        self, request: pb.PurgeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.PurgeResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the floor only reads and writes")

    async def Stats(
        self, request: pb.StatsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.StatsResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the floor only reads and writes")

    async def Subscribe(
        self, request: pb.SubscribeRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.SubscribeResponse]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the floor only reads and writes")
        yield pb.SubscribeResponse()  # never: a generator, as a stream's handler is


class HopFloorServicer(FloorServicer):
    """The floor whose Read fetches its answer on a worker thread, after ``work`` bytes of
    hashing there (none by default)."""

    def __init__(self, responses: dict[int, pb.ReadResponse], work: bytes = b"") -> None:
        super().__init__(responses)
        self.workers = ThreadPoolExecutor(2, thread_name_prefix="floor-hop")
        self.work = work

    def _answer(self, limit: int) -> pb.ReadResponse:
        if self.work:
            hashlib.sha256(self.work).digest()
        return self.responses.get(limit, self.empty)

    async def Read(
        self, request: pb.ReadRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ReadResponse:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.workers, self._answer, request.limit)


def work_buffer(micros: float) -> bytes:
    """A buffer that sha256 hashes in about ``micros`` µs on this machine (best of 5)."""
    if micros <= 0:
        return b""
    probe = b"x" * (1 << 20)
    best = min(_timed(lambda: hashlib.sha256(probe).digest()) for _ in range(5))
    return b"x" * max(int(len(probe) * micros / 1e6 / best), 4096)


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def load_responses(path: Path) -> dict[int, pb.ReadResponse]:
    raw = json.loads(path.read_text())
    return {int(k): pb.ReadResponse.FromString(base64.b64decode(v)) for k, v in raw.items()}


def save_responses(path: Path, responses: dict[int, bytes]) -> None:
    path.write_text(
        json.dumps({str(k): base64.b64encode(v).decode() for k, v in responses.items()})
    )


async def serve(
    port: int, responses: dict[int, pb.ReadResponse], *, hop: bool = False, work_us: float = 0
) -> None:
    servicer = (
        HopFloorServicer(responses, work_buffer(work_us))
        if hop or work_us
        else FloorServicer(responses)
    )
    await serve_until_signalled(servicer, port)


async def serve_until_signalled(servicer: pb_grpc.MarketDataCacheServicer, port: int) -> None:
    """A grpc.aio server of ``servicer`` on loopback ``port``, until SIGTERM or SIGINT."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ]
    )
    pb_grpc.add_MarketDataCacheServicer_to_server(servicer, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--responses", type=Path, required=True)
    parser.add_argument("--hop", action="store_true", help="Read answers from a worker thread")
    parser.add_argument(
        "--hop-work-us", type=float, default=0, help="µs of GIL-free work on that thread a Read"
    )
    args = parser.parse_args()
    responses = load_responses(args.responses)
    asyncio.run(serve(args.port, responses, hop=args.hop, work_us=args.hop_work_us))


if __name__ == "__main__":
    main()
