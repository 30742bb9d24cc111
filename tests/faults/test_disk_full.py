"""Disk full under the embedded store (DATA_DIR on a small tmpfs, filled up): commands answer
UNAVAILABLE (never an internal error, never an acknowledgement that was not made durable),
/healthz reports the write path down, and both recover once space returns."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.gql import PLACE, GraphQLClient, Orders, error_codes, item, new_id
from tests.faults.conftest import health, running_service, until


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "8m") -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory: Path) -> Path:
    """Take every free byte of the filesystem (the file is the space to give back)."""
    filler = directory / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (1 << 20, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while os.write(descriptor, b"\0" * size):
                    pass
    finally:
        os.close(descriptor)
    return filler


async def place(gql: GraphQLClient, order_id: str) -> str:
    """'ok', or 'unavailable'; anything else fails the test."""
    payload = {"orderId": order_id, "customerId": "c-1", "items": [item()]}
    result = await gql.execute(PLACE, {"input": payload})
    codes = error_codes(result)
    if not codes:
        assert result["data"]["placeOrder"]["__typename"] == "CommandAccepted", result
        return "ok"
    assert codes == ["UNAVAILABLE"], result
    assert result["errors"][0]["extensions"]["part"] == "eventStore"
    return "unavailable"


async def test_disk_full_answers_unavailable_and_recovers(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "data"), running_service(tmp_path) as service:
        async with httpx.AsyncClient(base_url=service.url, timeout=20.0, trust_env=False) as http:
            gql = GraphQLClient(http, service.token())
            acknowledged = []
            for _ in range(5):
                order_id = new_id("disk")
                assert await place(gql, order_id) == "ok"
                acknowledged.append(order_id)
            filler = fill(service.data_dir)
            outcomes = []
            for _ in range(300):  # the WAL may still hold a few pages: write until it fails
                order_id = new_id("disk")
                outcome = await place(gql, order_id)
                outcomes.append(outcome)
                if outcome == "ok":
                    acknowledged.append(order_id)
                elif outcomes.count("unavailable") >= 3:
                    break
            assert "unavailable" in outcomes, "writes never failed on a full disk"
            status, details = await health(http, service.token())
            assert status == 503, details
            assert details["writes"] == "unavailable", details
            filler.unlink()

            async def writes_again() -> bool:
                order_id = new_id("disk")
                if await place(gql, order_id) == "ok":
                    acknowledged.append(order_id)
                    return True
                return False

            recovered = await until(writes_again, within=15, what="writes after space returned")

            async def healthy() -> bool:
                return (await health(http, service.token()))[0] == 200

            await until(healthy, within=15, what="health after space returned")
            orders = Orders(gql)
            for order_id in acknowledged:  # every acknowledgement is in the log
                events = await orders.order_events(order_id)
                assert [e["type"] for e in events] == ["OrderPlaced"], order_id
            print(
                f"writes back {recovered:.2f} s after space returned; {outcomes.count('ok')} "
                "writes fitted after the fill"
            )
        assert "Traceback" not in service.log()
