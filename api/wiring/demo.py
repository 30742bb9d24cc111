"""`orders demo`: a realistic batch of orders placed through the API over HTTP.

Each order is one customer's story: placed with a few products, sometimes amended (a product added,
another removed), then mostly paid, often shipped, now and then cancelled. The stories run a few at
a time over keep-alive connections, with a progress bar; the summary counts what each step did.

It acts as staff with the token it is given (the one `orders serve` prints at start, say), so it
needs nothing from the server's configuration; `--url` is the service's base URL or its GraphQL
endpoint, whichever was copied.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

CONCURRENCY = 8
CUSTOMERS = 40
CARRIERS = ("DHL", "UPS", "FedEx", "PostNL")

CATALOG: tuple[tuple[str, str, str], ...] = (
    ("sku-kettle", "Electric kettle", "34.90"),
    ("sku-mug", "Ceramic mug", "8.50"),
    ("sku-beans", "Coffee beans 1 kg", "21.00"),
    ("sku-grinder", "Burr grinder", "89.00"),
    ("sku-filter", "Paper filters (100)", "4.25"),
    ("sku-scale", "Kitchen scale", "19.99"),
    ("sku-tea", "Green tea 250 g", "11.40"),
    ("sku-press", "French press", "27.50"),
    ("sku-spoon", "Measuring spoon", "2.99"),
    ("sku-tin", "Storage tin", "12.00"),
)

RESULT = """__typename ... on CommandAccepted { version } ... on CommandError { code message }"""
MUTATIONS = {
    name: f"mutation($input: {name[0].upper()}{name[1:]}Input!) "
    f"{{ {name}(input: $input) {{ {RESULT} }} }}"
    for name in ("placeOrder", "takePayment", "shipOrder", "cancelOrder", "addItem", "removeItem")
}


GRAPHQL_PATH = "/graphql"

REFUSED_TOKEN = {
    "UNAUTHENTICATED": "the server refused the token",
    "FORBIDDEN": "the token is not a staff token",
}
"""What a refusal of the caller means for the demo, by its error code."""


class DemoError(RuntimeError):
    """The API refused a demo request in a way a healthy server would not."""


class TokenRefused(DemoError):
    """The server does not take the demo's token as staff's: no use retrying."""


def graphql_endpoint(url: str) -> str:
    """The GraphQL endpoint of `url`: the service's base URL (`http://host:port`) or the endpoint
    itself (`http://host:port/graphql`), with or without a trailing slash."""
    base = url.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"--url must be an http:// or https:// URL, got {url!r}")
    return base if base.endswith(GRAPHQL_PATH) else base + GRAPHQL_PATH


@dataclass(slots=True)
class _Lines:
    """An order's lines as the demo tracks them, to pay the right total."""

    items: dict[str, tuple[str, Decimal, int]]

    @property
    def total(self) -> Decimal:
        return sum((price * qty for _, price, qty in self.items.values()), Decimal("0.00"))


def _line(product: tuple[str, str, str], qty: int) -> dict[str, Any]:
    product_id, name, price = product
    return {"productId": product_id, "name": name, "price": price, "qty": qty}


class DemoClient:
    """Sends the demo's mutations as staff and counts what happened."""

    def __init__(self, http: httpx.AsyncClient, endpoint: str, rng: random.Random) -> None:
        self.http = http
        self.endpoint = endpoint
        self.rng = rng
        self.counts: Counter[str] = Counter()

    async def command(self, name: str, payload: dict[str, Any]) -> None:
        """Send one mutation; anything but CommandAccepted is an error of the demo."""
        response = await self.http.post(
            self.endpoint, json={"query": MUTATIONS[name], "variables": {"input": payload}}
        )
        body = _json_object(response)
        for error in body.get("errors") or ():
            code = (error.get("extensions") or {}).get("code")
            if code in REFUSED_TOKEN:
                raise TokenRefused(f"{REFUSED_TOKEN[code]} ({code}: {error.get('message')})")
        if response.status_code != 200:
            raise DemoError(f"{name}: HTTP {response.status_code}: {response.text[:300]}")
        result = (body.get("data") or {}).get(name)
        if body.get("errors") or result is None or result["__typename"] != "CommandAccepted":
            raise DemoError(f"{name}: {body.get('errors') or result}")
        self.counts[name] += 1

    async def story(self, n: int, run: str) -> None:
        """One order's life: place, maybe amend, then pay and ship, or cancel."""
        rng = self.rng
        order_id = f"demo-{run}-{n:05d}"
        picked = rng.sample(CATALOG, rng.randint(1, 4))
        lines = _Lines({p[0]: (p[1], Decimal(p[2]), rng.randint(1, 3)) for p in picked})
        await self.command(
            "placeOrder",
            {
                "orderId": order_id,
                "customerId": f"customer-{rng.randrange(CUSTOMERS) + 1}",
                "items": [_line(p, lines.items[p[0]][2]) for p in picked],
            },
        )
        if rng.random() < 0.25:
            await self._amend(order_id, lines)
        roll = rng.random()
        if roll < 0.08:
            await self._cancel(order_id, "customer changed their mind")
            return
        if roll < 0.15:
            return  # left pending: not every cart is paid
        payment = {"orderId": order_id, "amount": str(lines.total), "method": rng.choice(
            ("card", "paypal", "ideal")
        ), "transactionId": f"tx-{uuid.uuid4().hex[:12]}"}  # fmt: skip
        await self.command("takePayment", payment)
        roll = rng.random()
        if roll < 0.06:
            await self._cancel(order_id, "out of stock")
        elif roll < 0.75:
            await self.command(
                "shipOrder",
                {
                    "orderId": order_id,
                    "trackingId": f"TRK{rng.randrange(10**9):09d}",
                    "carrier": rng.choice(CARRIERS),
                },
            )

    async def _amend(self, order_id: str, lines: _Lines) -> None:
        spare = [p for p in CATALOG if p[0] not in lines.items]
        if spare:
            product = self.rng.choice(spare)
            qty = self.rng.randint(1, 2)
            await self.command("addItem", {"orderId": order_id, "item": _line(product, qty)})
            lines.items[product[0]] = (product[1], Decimal(product[2]), qty)
        if len(lines.items) > 1 and self.rng.random() < 0.5:
            product_id = self.rng.choice(sorted(lines.items))
            await self.command("removeItem", {"orderId": order_id, "productId": product_id})
            del lines.items[product_id]

    async def _cancel(self, order_id: str, reason: str) -> None:
        await self.command("cancelOrder", {"orderId": order_id, "reason": reason})


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object; a DemoError naming the status when it is not one (a proxy's
    HTML page, a 404 from a wrong URL)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise DemoError(
            f"{response.request.url}: HTTP {response.status_code}, not a GraphQL answer: "
            f"{response.text[:200]!r}"
        )
    return body


async def run_demo(*, url: str, count: int, token: str, seed: int | None = None) -> int:
    """Place `count` orders through the API at `url` (base URL or endpoint) as the staff member
    whose bearer `token` is given; 0 on success, 1 on a refusal."""
    console = Console(stderr=True)
    # One log line per request would bury the progress bar.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    endpoint = graphql_endpoint(url)
    run = uuid.uuid4().hex[:6]
    token = token.strip().removeprefix("Bearer ").strip()
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    started = time.monotonic()
    async with httpx.AsyncClient(headers=headers, timeout=30.0, trust_env=False) as http:
        client = DemoClient(http, endpoint, random.Random(seed))
        numbers = iter(range(count))
        columns = (BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*Progress.get_default_columns()[:1], *columns, console=console) as bar:
            task = bar.add_task("placing orders", total=count)

            async def worker() -> None:
                for n in numbers:  # shared iterator: each story runs once
                    await client.story(n, run)
                    bar.advance(task)

            try:
                await asyncio.gather(*(worker() for _ in range(min(CONCURRENCY, max(count, 1)))))
            except TokenRefused as error:
                console.print(
                    f"[red]demo stopped:[/red] {error}. Pass a staff token for this server: "
                    "`orders serve` prints one at start (event=ready_token role=staff)."
                )
                return 1
            except (DemoError, httpx.HTTPError) as error:
                console.print(f"[red]demo stopped:[/red] {error}")
                return 1
    table = Table(title=f"demo: {count} orders in {time.monotonic() - started:.1f} s")
    table.add_column("command")
    table.add_column("accepted", justify="right")
    for name in MUTATIONS:
        table.add_row(name, str(client.counts[name]))
    console.print(table)
    return 0
