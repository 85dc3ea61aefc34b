"""Limits that keep answers within the gRPC message size: a Read pages instead of failing."""

from __future__ import annotations

import json
from pathlib import Path

from mdcache_client import AsyncClient, Record, Series
from mdcache_server.app import Server
from mdcache_server.store.url import open_store

from .support import server_config, settled


async def test_a_read_larger_than_a_message_is_truncated_and_pages_on(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cache.sqlite3'}"
    server = Server(server_config(url, max_message_bytes="300000"), open_store(url))
    await server.start()
    await settled(server)
    try:
        async with AsyncClient(f"127.0.0.1:{server.port}") as client:
            series = Series("600519", "fund_flow", "1m")
            big = [
                Record(1_700_000_000_000 + i, json.dumps("流" * 20_000, ensure_ascii=False))
                for i in range(20)
            ]
            for record in big:  # each 60 KB: all twenty would be 1.2 MB
                await client.write(series, [record])
            pages, start = [], None
            while True:
                page = await client.read(series, start_ms=start)
                assert 0 < len(page.records) <= 4
                pages.append(page.records)
                if not page.truncated:
                    break
                start = page.records[-1].ts_ms + 1
            assert [r for p in pages for r in p] == big
            assert len(pages) >= 5
    finally:
        await server.stop(grace=1)
