"""The graphql-ws reference client (Node.js, the npm package) subscribing to the server."""

from __future__ import annotations

import json
import queue
import subprocess
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.clients.conftest import WEB, pay_order, place_order, ship_order
from tests.e2e.gql import new_id
from tests.support.live_server import LiveServer

ORDER_EVENTS = "subscription($id: ID!) { orderEvents(id: $id) { type version } }"
ORDER_UPDATED = "subscription($id: ID!) { orderUpdated(id: $id) { id status version } }"


class NodeSubscriber:
    """`web/clients/subscribe.mjs` running, its JSON lines read as they come."""

    def __init__(self, node: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [node, str(WEB / "clients" / "subscribe.mjs"), *args],
            cwd=WEB,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[dict[str, object]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.strip():
                self.lines.put(json.loads(line))

    def next(self, within: float = 15.0) -> dict[str, object]:
        """The next message it printed."""
        try:
            message = self.lines.get(timeout=within)
        except queue.Empty:
            raise AssertionError(f"the subscriber printed nothing within {within} s") from None
        assert message["event"] != "error", message
        return message

    def results(self, count: int) -> list[Any]:
        """The payloads of the next `count` results."""
        out: list[Any] = []
        while len(out) < count:
            message = self.next()
            if message["event"] == "next":
                out.append(message["payload"])
        return out

    def finish(self) -> None:
        """Waits for its `done` and a clean exit."""
        assert self.next()["event"] == "done"
        assert self.process.wait(timeout=15) == 0

    def stop(self) -> None:
        """Ends it (if it is still running) and closes its pipes."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=15)
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


Subscribe = Callable[[str, dict[str, object], int], NodeSubscriber]


@pytest.fixture
def subscriber(node: str, server: LiveServer, staff_token: str) -> Iterator[Subscribe]:
    """Starts the reference client on one subscription (QUERY, VARIABLES, results expected)."""
    started: list[NodeSubscriber] = []

    def start(query: str, variables: dict[str, object], count: int) -> NodeSubscriber:
        sub = NodeSubscriber(
            node, server.ws_url, staff_token, query, json.dumps(variables), str(count)
        )
        started.append(sub)
        assert sub.next()["event"] == "connected"
        return sub

    yield start
    for sub in started:
        sub.stop()


def test_order_events_history_then_live(subscriber: Subscribe, api: httpx.Client) -> None:
    order_id = new_id()
    place_order(api, order_id, price="5.00", qty=1)
    sub = subscriber(ORDER_EVENTS, {"id": order_id}, 3)
    history = sub.results(1)
    pay_order(api, order_id, "5.00")
    ship_order(api, order_id)
    live = sub.results(2)
    assert [r["data"]["orderEvents"] for r in history + live] == [
        {"type": "OrderPlaced", "version": 1},
        {"type": "PaymentTaken", "version": 2},
        {"type": "OrderShipped", "version": 3},
    ]
    sub.finish()


def test_order_updated_current_view_then_changes(subscriber: Subscribe, api: httpx.Client) -> None:
    order_id = new_id()
    place_order(api, order_id, price="5.00", qty=1)
    sub = subscriber(ORDER_UPDATED, {"id": order_id}, 2)
    (current,) = sub.results(1)
    pay_order(api, order_id, "5.00")
    (paid,) = sub.results(1)
    views = [current["data"]["orderUpdated"], paid["data"]["orderUpdated"]]
    assert views == [
        {"id": order_id, "status": "PENDING", "version": 1},
        {"id": order_id, "status": "PAID", "version": 2},
    ]
    sub.finish()
