"""Upcasting: reading events written in older shapes in today's shape, without rewriting the log.

Every read path decodes through `application.codec`, which calls `upcast` here: the one place where
old shapes become current ones. Upcasters are registered per (event type, schema version they read)
and chained: a v1 payload goes through the v1 step, then the v2 step, ... up to
`CURRENT_SCHEMA_VERSION`. A step nobody registered means the type's shape did not change at that
bump (the version is global to the log's metadata, not per type), so the payload passes unchanged.

Legacy payloads reach the upcasters parsed decimal-preservingly (JSON numbers with a fraction or an
exponent as `Decimal`), so money written as a JSON number keeps its exact text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from domain.events import order_id_of

CURRENT_SCHEMA_VERSION = 2
"""The schema version this code writes (CONTRACT section 1) and upcasts every older one to."""

LEGACY_SCHEMA_VERSION = 1
"""What an event whose metadata carries no `schemaVersion` was written at."""


class UnknownSchemaVersion(Exception):
    """An event of a known type written at a schema version this code does not know (newer code
    than this, or a version that never existed): never guessed at."""

    def __init__(self, event_type: str, schema_version: object) -> None:
        self.event_type = event_type
        self.schema_version = schema_version
        super().__init__(
            f"{event_type} at schema version {schema_version!r} is not one this code can read "
            f"(it reads 1 to {CURRENT_SCHEMA_VERSION})"
        )


class MalformedLegacyEvent(ValueError):
    """A legacy payload that does not have the shape its schema version promises."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UpcastContext:
    """What an upcaster may need besides the payload: where the event was read from."""

    stream: str


Upcaster = Callable[[dict[str, Any], UpcastContext], dict[str, Any]]
"""Turns a payload of schema version v into version v + 1."""


class UpcasterRegistry:
    """Upcasters keyed by (event type, the schema version they read), applied as a chain."""

    def __init__(self, current_version: int) -> None:
        self._current = current_version
        self._steps: dict[tuple[str, int], Upcaster] = {}

    @property
    def current_version(self) -> int:
        """The version every payload comes out at."""
        return self._current

    def register(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorator: the step that reads `event_type` at `from_version` and returns
        `from_version + 1`."""
        if not 1 <= from_version < self._current:
            raise ValueError(f"no step from version {from_version} (current {self._current})")

        def add(upcaster: Upcaster) -> Upcaster:
            key = (event_type, from_version)
            if key in self._steps:
                raise ValueError(f"an upcaster for {event_type} v{from_version} exists already")
            self._steps[key] = upcaster
            return upcaster

        return add

    def steps(self) -> Mapping[tuple[str, int], Upcaster]:
        """Every registered step (read-only view, for tests and docs)."""
        return dict(self._steps)

    def upcast(
        self, event_type: str, schema_version: int, data: dict[str, Any], *, stream: str
    ) -> dict[str, Any]:
        """`data` of an `event_type` written at `schema_version`, in the current shape."""
        if not 1 <= schema_version <= self._current:
            raise UnknownSchemaVersion(event_type, schema_version)
        context = UpcastContext(stream=stream)
        for version in range(schema_version, self._current):
            step = self._steps.get((event_type, version))
            if step is not None:
                data = step(data, context)
        return data


REGISTRY = UpcasterRegistry(CURRENT_SCHEMA_VERSION)
"""The registry every read path uses (pure data, built once at import)."""


def upcast(
    event_type: str, schema_version: int, data: dict[str, Any], *, stream: str
) -> dict[str, Any]:
    """`data` of an event written at `schema_version`, in the current schema's shape."""
    return REGISTRY.upcast(event_type, schema_version, data, stream=stream)


def exact_decimal_text(value: object) -> str:
    """A JSON number (parsed decimal-preservingly) as the exact decimal string of its text, in
    positional notation: `25.10` -> "25.10", `1e2` -> "100", `7` -> "7"."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise MalformedLegacyEvent(f"expected a JSON number, got {value!r}")
    number = Decimal(value)
    if not number.is_finite():
        raise MalformedLegacyEvent(f"not a finite number: {value!r}")
    return format(number, "f")


LEGACY_ITEM_NAME = "Unknown"
LEGACY_ITEM_PRICE = "0"


@REGISTRY.register("OrderPlaced", 1)
def _order_placed_v1(data: dict[str, Any], context: UpcastContext) -> dict[str, Any]:
    """CONTRACT section 1: v1 items are bare product ids and the total a JSON number; the order id
    was only ever in the stream name."""
    items = data.get("items")
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise MalformedLegacyEvent(f"OrderPlaced v1 items must be product ids, got {items!r}")
    customer_id = data.get("customerId")
    if not isinstance(customer_id, str):
        raise MalformedLegacyEvent(f"OrderPlaced v1 customerId must be a string: {customer_id!r}")
    return {
        "orderId": order_id_of(context.stream),
        "customerId": customer_id,
        "items": [
            {"id": product_id, "name": LEGACY_ITEM_NAME, "price": LEGACY_ITEM_PRICE, "qty": 1}
            for product_id in items
        ],
        "total": exact_decimal_text(data.get("total")),
    }
