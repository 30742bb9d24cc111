"""The server on its own (`python -m tests.support.esdb_server`) and across restarts of the same
data."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from esdbclient import AsyncEventStoreDBClient, EventStoreDBClient, NewEvent, StreamState

from tests.support.esdb_server.fixture import run_test_server

ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        assert process.poll() is None, "the server exited"
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("the server did not start listening")


def test_module_entry_point_serves_clients(tmp_path: Path) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.esdb_server",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_until_listening(port, process)
        client = EventStoreDBClient(f"esdb://127.0.0.1:{port}?Tls=false&DefaultDeadline=10")
        try:
            stream = f"s-{uuid.uuid4()}"
            client.append_to_stream(
                stream, current_version=StreamState.NO_STREAM, events=[NewEvent(type="A", data=b"")]
            )
            assert [e.type for e in client.get_stream(stream)] == ["A"]
        finally:
            client.close()
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr.decode()


async def test_groups_and_checkpoints_survive_a_restart(tmp_path: Path) -> None:
    stream = f"s-{uuid.uuid4()}"
    async with run_test_server(tmp_path) as url:
        client = AsyncEventStoreDBClient(url)
        await client.connect()
        await client.append_to_stream(
            stream,
            current_version=StreamState.NO_STREAM,
            events=[NewEvent(type=f"E{i}", data=b"") for i in range(3)],
        )
        await client.create_subscription_to_stream("g", stream, min_checkpoint_count=1)
        await client.close()
    async with run_test_server(tmp_path) as url:
        client = AsyncEventStoreDBClient(url)
        await client.connect()
        try:
            info = await client.get_subscription_info("g", stream)
            assert info.min_checkpoint_count == 1
            subscription = await client.read_subscription_to_stream("g", stream)
            async with subscription:
                first = await asyncio.wait_for(anext(subscription), 5)
            assert first.type == "E0"
        finally:
            await client.close()
