"""Field-level access rules (strawberry permissions), per CONTRACT "Access".

Each permission raises `Unauthenticated` (no valid caller) or `Forbidden` (a caller without the
right) itself, so the client sees the right `extensions.code`.
"""

from __future__ import annotations

from typing import Any

from strawberry.permission import BasePermission
from strawberry.types import Info
from strawberry.types.unset import UNSET

from api.graphql.context import AppContext
from api.http.auth import Forbidden, Principal, Unauthenticated
from domain.validation import ID_PATTERN


def _principal(info: Info[AppContext, None]) -> Principal:
    principal = info.context.principal
    if principal is None:
        raise Unauthenticated()
    return principal


def _order_id(kwargs: dict[str, Any]) -> str | None:
    if "id" in kwargs:
        return str(kwargs["id"])
    order_input = kwargs.get("input")
    order_id = getattr(order_input, "order_id", None)
    return None if order_id is None else str(order_id)


class SignedIn(BasePermission):
    """Any valid caller: what the command then may do is the domain's to judge (a customer
    cancels only its own orders: `domain.decide.check_owner`)."""

    message = "Authentication required: send a valid Bearer token."

    def has_permission(self, source: Any, info: Info[AppContext, None], **kwargs: Any) -> bool:
        """Whether there is a caller."""
        _principal(info)
        return True


class IsStaff(BasePermission):
    """Staff only."""

    message = "Only staff may do this."

    def has_permission(self, source: Any, info: Info[AppContext, None], **kwargs: Any) -> bool:
        """Whether the caller is staff."""
        if not _principal(info).is_staff:
            raise Forbidden(self.message)
        return True


class PlacesForSelf(BasePermission):
    """A customer places orders for itself only (`input.customerId` = its `sub`)."""

    message = "A customer may only place orders for itself."

    def has_permission(self, source: Any, info: Info[AppContext, None], **kwargs: Any) -> bool:
        """Whether the caller may place the order in `input`."""
        order_input = kwargs.get("input")
        customer_id = getattr(order_input, "customer_id", None)
        if not _principal(info).may_act_for(None if customer_id is None else str(customer_id)):
            raise Forbidden(self.message)
        return True


class OwnsOrder(BasePermission):
    """Staff, or the customer who placed the order named by `id` or `input.orderId`.

    An order that does not exist has no owner to protect: the field itself answers (null, an
    empty list). But anyone may place that id a moment later, even while the field waits or
    reads, so this check alone never lets a value through: reads check the owner again on what
    they return (`ensure_owner`). Commands do not use it: `decide` refuses a customer's command
    on another customer's order. Ownership never changes once an order exists.
    """

    message = "This order belongs to another customer."
    allow_missing = True

    async def has_permission(
        self, source: Any, info: Info[AppContext, None], **kwargs: Any
    ) -> bool:
        """Whether the caller may act on or read the order."""
        principal = _principal(info)
        if principal.is_staff:
            return True
        order_id = _order_id(kwargs)
        if order_id is None:
            raise Forbidden(self.message)
        if ID_PATTERN.fullmatch(order_id) is None:
            # Not an id at all: the field refuses it without reading a stream of that name.
            return True
        owner = await info.context.repository.customer_of(order_id)
        if owner is None and self.allow_missing:
            return True
        if owner != principal.sub:
            raise Forbidden(self.message)
        return True


class OwnsExistingOrder(OwnsOrder):
    """Like `OwnsOrder`, but a customer may not watch an order that does not exist yet: a live
    feed would otherwise deliver the events of whoever places that id later."""

    message = "A customer may only watch its own, existing orders."
    allow_missing = False


def ensure_owner(principal: Principal | None, customer_id: str | None) -> None:
    """Refuse (`Forbidden`) to hand a customer a value of another customer's order: the check on
    what a read returns, whatever the permission saw before the read."""
    if principal is None:
        raise Unauthenticated()
    if not principal.may_act_for(customer_id):
        raise Forbidden(OwnsOrder.message)


def acting_customer(principal: Principal | None) -> str | None:
    """Whom a command about an existing order comes from, for `decide`'s ownership rule: the
    customer's id, or None for staff (who act on any order)."""
    if principal is None or principal.is_staff:
        return None
    return principal.sub


def _customer_id(kwargs: dict[str, Any]) -> str | None:
    value = kwargs.get("customer_id")
    return None if value is None or value is UNSET else str(value)


class ReadsOwnOrders(BasePermission):
    """Staff list any orders; a customer lists its own only: without `customerId` the list is
    restricted to them (`visible_customer`), with another customer's id it is refused."""

    message = "A customer may only list its own orders."

    def has_permission(self, source: Any, info: Info[AppContext, None], **kwargs: Any) -> bool:
        """Whether the caller may list the orders of the `customerId` asked for."""
        principal = _principal(info)
        requested = _customer_id(kwargs)
        if requested is not None and not principal.may_act_for(requested):
            raise Forbidden(self.message)
        return True


class WatchesOwnOrders(ReadsOwnOrders):
    """Staff watch any orders; a customer its own only, as `ReadsOwnOrders` lists them: without
    `customerId` the feed is restricted to them (`visible_customer`), with another customer's id
    it is refused."""

    message = "A customer may only watch its own orders."


def visible_customer(principal: Principal | None, requested: str | None) -> str | None:
    """The customer filter a listing really uses: a customer's own id whatever it asked for
    (the permission already refused another's), staff's choice otherwise."""
    if principal is None or principal.is_staff:
        return requested
    return principal.sub
